"""BatchNormalization/Mul/Add folded into convolutions (dgc.passes.graph_rewrites) and NCHW
regions moved to NHWC (dgc.passes.layout): numerics against onnxruntime, which rewrites
fire (and which must not), and the transposes left in the IR of zoo models."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import dgc
from conftest import check_on_target, zoo_model
from dgc.frontend.load import load
from dgc.passes import graph_rewrites

_R = np.random.default_rng(7)


def _w(*shape, scale=0.3):
    return (_R.standard_normal(shape) * scale).astype(np.float32)


def _bn_params(c):
    return [(1 + 0.2 * _R.standard_normal(c)).astype(np.float32), _w(c, scale=0.1), _w(c, scale=0.1),
            (0.5 + _R.random(c)).astype(np.float32)]


class _G:
    """A tiny graph builder: constants become initializers, every node gets a name."""

    def __init__(self):
        self.nodes, self.inits = [], []

    def const(self, name, a):
        self.inits.append(numpy_helper.from_array(np.asarray(a), name))
        return name

    def node(self, op, ins, name, **attrs):
        self.nodes.append(helper.make_node(op, ins, [name], name=name, **attrs))
        return name

    def conv(self, x, name, cin, cout, k=3, group=1, bias=True, **attrs):
        ins = [x, self.const(f"{name}.w", _w(cout, cin // group, k, k))]
        if bias:
            ins.append(self.const(f"{name}.b", _w(cout, scale=0.1)))
        return self.node("Conv", ins, name, pads=[k // 2] * 4, group=group, **attrs)

    def bn(self, x, name, c):
        params = [self.const(f"{name}.{p}", a) for p, a in zip(("s", "b", "m", "v"), _bn_params(c))]
        return self.node("BatchNormalization", [x, *params], name, epsilon=1e-3)

    def model(self, x_shape, outs):
        graph = helper.make_graph(
            self.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return onnx.shape_inference.infer_shapes(m)  # output shapes


def _op_types(model):
    return [n.op_type for n in load(model).model.graph.node]


def _stage_ir(model, tmp_path, stage="tosa", **kw) -> dict[str, str]:
    """{stage name: IR text} for every stage up to `stage`."""
    out = tmp_path / "ir"
    dgc.compile(model, "host", name="m", stop_after=stage, dump_ir=str(out), **kw)
    return {re.sub(r"^\d+-", "", p.stem): p.read_text() for p in sorted(pathlib.Path(out).glob("*.mlir"))}


def _count(text, op):
    return len(re.findall(rf"= tosa\.{op}\b", text))


# ---- BatchNormalization and constant Mul/Add folded into the conv ---------------------------

def _conv_bn_relu_chain():
    g = _G()
    y = g.node("Relu", [g.bn(g.conv("x", "conv1", 3, 8), "bn1", 8)], "relu1")
    y = g.node("Relu", [g.bn(g.conv(y, "conv2", 8, 8, bias=False), "bn2", 8)], "relu2")
    return g.model([1, 3, 10, 10], [y])


def test_conv_bn_relu_chain(tmp_path):
    m = _conv_bn_relu_chain()
    assert _op_types(m) == ["Conv", "Relu", "Conv", "Relu"]
    assert [n.name for n in load(m).model.graph.node if n.op_type == "Conv"] == ["conv1", "conv2"]
    check_on_target(m, "host", tmp_path)


def test_residual_add_of_two_conv_branches(tmp_path):
    g = _G()
    x = g.node("Relu", [g.bn(g.conv("x", "stem", 4, 8), "stem_bn", 8)], "stem_relu")
    a = g.bn(g.conv(x, "a", 8, 8), "a_bn", 8)
    b = g.bn(g.conv(x, "b", 8, 8, k=1), "b_bn", 8)
    y = g.node("Relu", [g.node("Add", [a, b], "add")], "relu")
    y = g.node("Add", [g.conv(y, "head", 8, 8), x], "skip")
    m = g.model([1, 4, 9, 9], [y])
    assert "BatchNormalization" not in _op_types(m)
    check_on_target(m, "host", tmp_path)
    ir = _stage_ir(m, tmp_path)
    assert _count(ir["tosa"], "transpose") == 2  # the model's NCHW input and output only


def test_conv_output_with_two_consumers_is_not_folded(tmp_path):
    g = _G()
    c = g.conv("x", "conv", 3, 4)
    y = g.bn(c, "bn", 4)
    m = g.model([1, 3, 6, 6], [y, g.node("Sigmoid", [c], "side")])
    assert _op_types(m) == ["Conv", "BatchNormalization", "Sigmoid"]
    check_on_target(m, "host", tmp_path)


def test_conv_output_that_is_a_graph_output_is_not_folded():
    g = _G()
    c = g.conv("x", "conv", 3, 4)
    m = g.model([1, 3, 6, 6], [c, g.bn(c, "bn", 4)])
    assert _op_types(m) == ["Conv", "BatchNormalization"]


@pytest.mark.parametrize("trans_b,beta,bias", [(1, 1.0, "vec"), (0, 0.5, "row"), (1, 1.0, None), (0, 2.0, "scalar")])
def test_gemm_bn_folds_into_the_weights(trans_b, beta, bias, tmp_path):
    g = _G()
    b = g.const("fc.w", _w(12, 20) if trans_b else _w(20, 12))
    ins = ["x", b]
    if bias:
        ins.append(g.const("fc.b", {"vec": _w(12), "row": _w(1, 12), "scalar": _w(1)}[bias]))
    y = g.node("Gemm", ins, "fc", transB=trans_b, beta=beta, alpha=0.7)
    y = g.node("Relu", [g.node("Mul", [g.bn(y, "bn", 12), g.const("s", _w(12) + 1)], "mul")], "relu")
    m = g.model([3, 20], [y])
    assert _op_types(m) == ["Gemm", "Relu"]
    check_on_target(m, "host", tmp_path)


def test_gemm_with_a_full_bias_matrix_is_not_folded(tmp_path):
    g = _G()
    y = g.node("Gemm", ["x", g.const("fc.w", _w(20, 12)), g.const("fc.b", _w(3, 12))], "fc")
    m = g.model([3, 20], [g.bn(y, "bn", 12)])
    assert _op_types(m) == ["Gemm", "BatchNormalization"]
    check_on_target(m, "host", tmp_path)


@pytest.mark.parametrize("group,dilations", [(1, [1, 1]), (2, [1, 1]), (1, [2, 2])], ids=["g1", "g2", "dilated"])
def test_conv_transpose_bn(group, dilations, tmp_path):
    g = _G()
    w = g.const("ct.w", _w(4, 6 // group, 3, 3))
    ct = g.node("ConvTranspose", ["x", w, g.const("ct.b", _w(6))], "ct", strides=[2, 2], pads=[1, 1, 1, 1],
                group=group, dilations=dilations)
    m = g.model([1, 4, 5, 5], [g.bn(ct, "bn", 6)])
    assert _op_types(m) == ["ConvTranspose"]
    check_on_target(m, "host", tmp_path)


@pytest.mark.parametrize("group,cin,cout", [(2, 4, 6), (4, 4, 4), (4, 4, 8)], ids=["grouped", "depthwise", "multiplier"])
def test_grouped_conv_bn(group, cin, cout, tmp_path):
    g = _G()
    y = g.node("Relu", [g.bn(g.conv("x", "conv", cin, cout, group=group), "bn", cout)], "relu")
    m = g.model([1, cin, 7, 7], [y])
    assert _op_types(m) == ["Conv", "Relu"]
    check_on_target(m, "host", tmp_path)


@pytest.mark.parametrize("op,const,first", [
    ("Mul", _w(6, 1, 1), True), ("Mul", _w(1, 6, 1, 1), False), ("Add", _w(1, 6, 1, 1), True),
    ("Sub", _w(6, 1, 1), False), ("Div", np.float32(1.7), True), ("Mul", np.array([0.5], np.float32), True),
], ids=["mul_c11", "mul_1c11_first", "add_1c11", "sub_from_const", "div_scalar", "mul_rank1_scalar"])
def test_per_channel_constant_folds(op, const, first, tmp_path):
    g = _G()
    c, k = g.conv("x", "conv", 3, 6), g.const("k", const)
    y = g.node(op, [c, k] if first else [k, c], "affine")
    m = g.model([1, 3, 6, 6], [g.node("Relu", [y], "relu")])
    assert _op_types(m) == ["Conv", "Relu"]
    check_on_target(m, "host", tmp_path)


@pytest.mark.parametrize("const", [_w(1, 6, 6, 6), _w(6), _w(1, 1, 1, 6), _w(2, 6, 1, 1)],
                         ids=["full", "along_w", "last_axis", "batch_broadcast"])
def test_constants_not_per_channel_stay(const, tmp_path):
    g = _G()
    m = g.model([1, 3, 6, 6], [g.node("Mul", [g.conv("x", "conv", 3, 6), g.const("k", const)], "mul")])
    assert _op_types(m) == ["Conv", "Mul"]
    check_on_target(m, "host", tmp_path)


def test_shared_weights_are_not_modified():
    g = _G()
    w = g.const("w", _w(4, 4, 3, 3))
    a = g.node("Conv", ["x", w], "a", pads=[1] * 4)
    b = g.node("Conv", ["x", w], "b", pads=[1] * 4)
    m = g.model([1, 4, 5, 5], [g.node("Add", [g.bn(a, "bn", 4), b], "add")])
    lm = load(m)
    convs = [n for n in lm.model.graph.node if n.op_type == "Conv"]
    assert [n.input[1] for n in convs] == ["a_W_folded", "w"]
    np.testing.assert_array_equal(lm.consts["w"], numpy_helper.to_array(m.graph.initializer[0]))


# ---- layout: NCHW regions between convolutions run in NHWC -------------------------------------

def test_flatten_after_conv_keeps_a_transpose(tmp_path):
    g = _G()
    y = g.node("Relu", [g.conv("x", "conv", 3, 4)], "relu")
    f = g.node("Flatten", [y], "flatten")
    m = g.model([1, 3, 5, 5], [g.node("Gemm", [f, g.const("fc.w", _w(100, 3))], "fc")])
    check_on_target(m, "host", tmp_path)
    tosa = _stage_ir(m, tmp_path)["tosa"]
    assert _count(tosa, "transpose") == 2  # input, and NHWC -> NCHW before the flatten


@pytest.mark.parametrize("tail", ["global_pool", "concat", "pad", "slice", "transpose_nhwc", "transpose_other"])
def test_ops_around_the_region(tail, tmp_path):
    """Reduce/concat/pad/slice are rewritten with permuted axes; ONNX transposes compose."""
    g = _G()
    a = g.node("Relu", [g.conv("x", "a", 3, 4)], "relu_a")
    b = g.node("Sigmoid", [g.conv("x", "b", 3, 4, k=1)], "sig_b")
    if tail == "global_pool":
        y = g.node("GlobalAveragePool", [g.node("Add", [a, b], "add")], "gap")
    elif tail == "concat":
        y = g.conv(g.node("Concat", [a, b], "cat", axis=1), "c", 8, 4)
    elif tail == "pad":
        y = g.node("Pad", [a, g.const("pads", np.array([0, 1, 2, 0, 0, 1, 0, 3], np.int64))], "pad")
    elif tail == "slice":
        y = g.node("Slice", [a, g.const("st", np.array([1, 1], np.int64)), g.const("en", np.array([3, 5], np.int64)),
                             g.const("ax", np.array([1, 3], np.int64))], "slice")
    elif tail == "transpose_nhwc":
        y = g.node("Transpose", [g.node("Mul", [a, b], "mul")], "to_nhwc", perm=[0, 2, 3, 1])
    else:
        y = g.node("Transpose", [a], "swap_hw", perm=[0, 1, 3, 2])
    check_on_target(g.model([1, 3, 6, 7], [y]), "host", tmp_path)


def test_layout_alone_moves_bn_constants_to_nhwc(tmp_path, monkeypatch):
    """Without the ONNX folding the per-channel BN constants (dense_resource blobs) are
    permuted by the layout stage, and the code still matches onnxruntime."""
    monkeypatch.setattr(graph_rewrites, "run", lambda model, consts: None)
    g = _G()
    y = g.node("Relu", [g.bn(g.conv("x", "conv1", 3, 64), "bn1", 64)], "relu1")
    y = g.node("Relu", [g.bn(g.conv(y, "conv2", 64, 64, k=1), "bn2", 64)], "relu2")
    m = g.model([1, 3, 6, 6], [y])
    check_on_target(m, "host", tmp_path)
    ir = _stage_ir(m, tmp_path, stage="layout")
    assert _count(ir["import"], "mul") == 2 and _count(ir["import"], "transpose") == 4
    # the first BN's constants now broadcast along NHWC channels; the last BN feeds the NCHW
    # graph output, where moving it would only trade one transpose for another
    assert _count(ir["layout"], "transpose") == 2
    assert re.search(r"tosa.mul %\S+, %\S+, %\S+ : \(tensor<1x6x6x64xf32>, tensor<1x1x1x64xf32>", ir["layout"])


# (model, fold BN at load, transposes after import, left after layout and tosa): the input
# transpose stays unless it only moves a unit dim (ds_cnn's single input channel).
_ZOO = [("ds_cnn", True, 20, 0), ("resnet8", True, 20, 1), ("mobilenet_v1_025", True, 58, 1),
        ("mobilenet_v2", True, 104, 1), ("resnet18", False, 42, 1)]


@pytest.mark.parametrize("name,fold,imported,left", _ZOO, ids=[z[0] for z in _ZOO])
def test_zoo_models_run_nhwc_end_to_end(name, fold, imported, left, tmp_path, monkeypatch):
    model = zoo_model(name)
    if fold:
        assert "BatchNormalization" in {n.op_type for n in model.graph.node}
        assert "BatchNormalization" not in _op_types(model)
    else:
        monkeypatch.setattr(graph_rewrites, "run", lambda model, consts: None)
    ir = _stage_ir(model, tmp_path)
    assert _count(ir["import"], "transpose") == imported
    assert _count(ir["layout"], "transpose") == left
    assert _count(ir["tosa"], "transpose") == left


@pytest.mark.parametrize("fold,muls,adds", [(True, 1, 1), (False, 10, 10)], ids=["folded", "not_folded"])
def test_ds_cnn_batchnorm_mul_add(fold, muls, adds, tmp_path, monkeypatch):
    """ds_cnn's 9 BatchNormalizations cost a mul and an add each unless folded (the one mul
    and add left are the softmax's and the classifier's bias)."""
    if not fold:
        monkeypatch.setattr(graph_rewrites, "run", lambda model, consts: None)
    imported = _stage_ir(zoo_model("ds_cnn"), tmp_path, stage="import")["import"]
    assert (_count(imported, "mul"), _count(imported, "add")) == (muls, adds)


def test_int8_residual_adds_run_in_nhwc_with_each_requantization_in_its_conv(tmp_path):
    """int8 QDQ residual blocks (the importer's pointwise linalg.generic adds, a shortcut conv
    beside two convs): after elementwise fusion the adds run on the convs' NHWC results, no
    transposes around them, and each conv's int32 result is requantized by its own generic
    (none is fused into the add, which would keep an int32 tensor alive across the other
    branch); bit-exact against onnxruntime on the host and on Cortex-M7."""
    from dgc import zoo
    from dgc.quantize import quantize

    g = _G()
    x = g.node("Relu", [g.conv("x", "stem", 4, 8)], "stem_relu")
    a = g.node("Relu", [g.conv(x, "a1", 8, 8)], "a_relu")
    y = g.node("Relu", [g.node("Add", [g.conv(a, "a2", 8, 8), x], "add1")], "relu1")
    b = g.conv(g.node("Relu", [g.conv(y, "b1", 8, 16)], "b_relu"), "b2", 16, 16)
    y = g.node("Relu", [g.node("Add", [b, g.conv(y, "short", 8, 16, k=1)], "add2")], "relu2")
    f = g.model([1, 4, 8, 8], [y])
    m = quantize(f, [zoo.random_inputs(f, seed=i) for i in range(4)])
    ir = _stage_ir(m, tmp_path, stage="transposes")
    assert len(re.findall(r"= linalg\.transpose\b", ir["linalg"])) > 2  # around the NCHW adds
    assert len(re.findall(r"= linalg\.transpose\b", ir["transposes"])) == 2  # the model's input and output
    for ins in re.findall(r"linalg\.generic .*? ins\(([^)]*)\)", ir["transposes"]):
        assert len(re.findall(r"tensor<1x\d+x\d+x\d+xi32>", ins)) <= 1  # one conv's int32 result at most
    check_on_target(m, "host", tmp_path)
    check_on_target(m, "cortex-m7", tmp_path)
