"""Loading: old opsets, symbolic dimensions pinned with --input-shape, constant folding of
PyTorch-style shape sub-graphs, optimization levels."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import dgc
from conftest import check_on_target, zoo_model
from dgc.errors import UsageError


def _opset7_cnn():
    """A CNN written against opset 7 ops (Reshape with a shape input, BatchNorm 7, Softmax 1)."""
    rng = np.random.default_rng(3)
    init = {
        "w": rng.standard_normal((4, 2, 3, 3)).astype(np.float32) * 0.4,
        "b": rng.standard_normal(4).astype(np.float32) * 0.1,
        "scale": (1 + 0.1 * rng.standard_normal(4)).astype(np.float32),
        "bias": (0.1 * rng.standard_normal(4)).astype(np.float32),
        "mean": (0.1 * rng.standard_normal(4)).astype(np.float32),
        "var": (1 + 0.1 * rng.random(4)).astype(np.float32),
        "shape": np.array([1, 64], np.int64),
        "fc": rng.standard_normal((64, 5)).astype(np.float32) * 0.2,
        "fcb": np.zeros(5, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"], name="bn",
                         epsilon=1e-3),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p", "shape"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["g"], name="fc"),
        helper.make_node("Softmax", ["g"], ["y"], name="softmax"),
    ]
    # IR version 3: every initializer is also a graph input, as old exporters wrote them
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])] + [
        helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in init.items()]
    graph = helper.make_graph(nodes, "opset7", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
                              [numpy_helper.from_array(v, k) for k, v in init.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)])
    model.ir_version = 3
    return model


def test_opset7_model(tmp_path):
    check_on_target(_opset7_cnn(), "host", tmp_path)


def test_opset11_zoo_model_on_cortex_m(tmp_path):
    check_on_target(zoo_model("old_opset_cnn"), "cortex-m4", tmp_path)


def _symbolic_batch():
    m = zoo_model("lenet5")
    m = onnx.ModelProto.FromString(m.SerializeToString())
    for vi in (m.graph.input[0], m.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_param = "batch"
    return m


def test_symbolic_dims_need_input_shape():
    with pytest.raises(UsageError, match=r"--input-shape input=Nx1x28x28"):
        dgc.compile(_symbolic_batch(), "host")


def test_input_shape_pins_batch(tmp_path):
    res, got, want = check_on_target(_symbolic_batch(), "host", tmp_path,
                                     input_shapes={"input": (3, 1, 28, 28)})
    assert res.spec.inputs[0].shape == (3, 1, 28, 28) and got[0].shape == (3, 10)


def test_torch_style_shape_chain_is_folded():
    res = dgc.compile(zoo_model("torch_style_mlp"), "host", emit=("mlir",), stop_after="import")
    assert "Shape" not in res.mlir and "tosa.reshape" in res.mlir


@pytest.mark.parametrize("level", [0, 1, 2])
def test_optimization_levels(level, tmp_path):
    check_on_target(zoo_model("ds_cnn"), "cortex-m7", tmp_path, opt_level=level)


@pytest.mark.parametrize("op,opset,mode", [("Resize", 10, "linear"), ("Resize", 10, "nearest"),
                                           ("Upsample", 9, "linear"), ("Upsample", 9, "nearest")])
def test_old_opset_resize_keeps_asymmetric_coordinates(op, opset, mode, tmp_path):
    """Opset <= 10 resizing must not silently become opset-11 half_pixel after conversion."""
    scales = numpy_helper.from_array(np.array([1, 1, 1.5, 2.5], np.float32), "s")
    node = helper.make_node(op, ["x", "s"], ["y"], name="resize", mode=mode)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 10])], [scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 5
    check_on_target(model, "host", tmp_path)


def test_repeated_and_passthrough_outputs(tmp_path):
    """One tensor as two graph outputs, and a graph input returned as an output."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("a", "b", "c")]
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Identity", ["r"], ["a"], name="id_a"),
             helper.make_node("Identity", ["r"], ["b"], name="id_b"),
             helper.make_node("Identity", ["x"], ["c"], name="id_c")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], outs), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    check_on_target(model, "host", tmp_path)
    check_on_target(model, "cortex-m4", tmp_path)
