"""Quantization ops compiled with dgc and compared exactly (integer outputs) with onnxruntime.

Each row is a single-op model. An input is an `In` (a graph input fed with the given array), a
numpy array (an initializer: scales and zero points are constants in real models) or None (an
omitted optional input). Rows whose variant onnxruntime lacks, or where it departs from the ONNX
reference, say which reference they use and why. Two small models also run on Cortex-M7.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import dgc
from conftest import require_tools, run_model
from dgc.verifier import exact_reference, ort_u8s8_exact, reference

_R = np.random.default_rng(7)  # data is drawn at import, in table order


@dataclasses.dataclass(frozen=True)
class In:
    value: np.ndarray


def q(shape, dtype):
    """Integers over the whole range of `dtype`."""
    info = np.iinfo(dtype)
    return _R.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


def f(*v, dtype=np.float32):
    return np.array(v if len(v) != 1 else v[0], dtype)


def u8(*v):
    return f(*v, dtype=np.uint8)


def i8(*v):
    return f(*v, dtype=np.int8)


def u(lo, hi, shape, dtype=np.float32):
    return _R.uniform(lo, hi, shape).astype(dtype)


def _ties(shape, scale):
    """Floats around the quantized range, a third of them exactly halfway between two steps."""
    x = _R.normal(0, 80 * scale, shape).astype(np.float32)
    k = _R.integers(-300, 300, shape)
    x.ravel()[::3] = ((k + 0.5) * scale).astype(np.float32).ravel()[::3]
    return x


def row(id, op, *ins, opset=21, ref="ort", outs=1, **attrs):
    return pytest.param(op, ins, attrs, opset, ref, outs, id=id)


MS = "com.microsoft"


def ms_row(id, op, *ins, out=None, **attrs):
    """A com.microsoft op (onnxruntime's QOperator contrib ops), compared with onnxruntime. ONNX
    infers no types for them: the output is declared `out` (by default the first input's dtype)."""
    out = np.dtype(out or ins[0].value.dtype)
    return pytest.param(f"{MS}.{op}", ins, attrs, 21, "ort", helper.np_dtype_to_tensor_dtype(out), id=id)


def _info(name, a):
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)


def _model(op, ins, attrs, opset, outs):
    names = [f"i{k}" if x is not None else "" for k, x in enumerate(ins)]
    domain, _, op = op.rpartition(".")
    node = helper.make_node(op, names, [f"y{k}" for k in range(outs if not domain else 1)], domain=domain or None,
                            **attrs)
    graph_in = [_info(n, x.value) for n, x in zip(names, ins) if isinstance(x, In)]
    inits = [numpy_helper.from_array(np.asarray(x), n) for n, x in zip(names, ins)
             if x is not None and not isinstance(x, In)]
    # a contrib row's `outs` is its output type; its shape has named dims (the rank of the first
    # input's, 2 for QGemm) for dgc to infer
    elem, shape, outs = (0, None, outs) if domain == "" else (
        outs, [f"d{k}" for k in range(2 if op == "QGemm" else ins[0].value.ndim)], 1)
    graph = helper.make_graph([node], op, graph_in, [helper.make_tensor_value_info(f"y{k}", elem, shape)
                                                     for k in range(outs)], inits)
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8  # onnxruntime 1.31 reads IR versions up to 13; onnx writes 14
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _run(model, inputs, target, tmp_path):
    require_tools(target)
    res = dgc.compile(model, target, name="m")
    obj = tmp_path / "m.o"
    obj.write_bytes(res.object)
    return res, run_model(res.spec, str(obj), res.target, inputs, str(tmp_path))


def _expected(model, res, ref, ins, inputs):
    if ref == "ort":  # as `dgc verify` takes it: onnx's evaluator where onnxruntime's kernels saturate
        exact = exact_reference(model, res.spec, inputs)
        return exact[0] if exact else reference(model, res.spec, inputs)
    if ref == "onnx":
        return ReferenceEvaluator(model).run(None, {i.name: x for i, x in zip(res.spec.inputs, inputs)})
    return ref(*[x.value if isinstance(x, In) else x for x in ins])


def _assert_same(res, got, want):
    """Bit-exact: integers by definition, floats because dgc rounds once where the reference does."""
    for t, g, w in zip(res.spec.outputs, got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.dtype, g.shape) == (w.dtype, w.shape), f"{t.name}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}"
        g, w = g.ravel(), w.ravel()
        bad = np.flatnonzero(g != w)
        assert not bad.size, f"{t.name}: {bad.size} of {g.size} differ, e.g. {g[bad[:4]]} vs {w[bad[:4]]}"


def _matmul_integer_rows(a, b, az, bz):
    """numpy MatMulInteger with the spec's per-row a / per-column b zero points (the onnx
    reference broadcasts a 1-D a_zero_point along K instead)."""
    az = az.reshape(-1, 1) if az.ndim == 1 else az
    return [(a.astype(np.int32) - az) @ (b.astype(np.int32) - bz)]


_QX = _ties((2, 3, 4, 5), 0.25)
_SB, _ZB = u(0.1, 1, (2, 3, 2, 5)), q((2, 3, 2, 5), np.int8)
_S3, _Z3 = f(0.25, 0.5, 0.125), u8(1, 128, 250)
_X8 = q((2, 3, 4, 5), np.uint8)

QUANTIZE = [
    row("q_u8", "QuantizeLinear", In(_QX), f(0.25), u8(3)),
    row("q_i8_opset10", "QuantizeLinear", In(_QX), f(0.25), i8(-3), opset=10),
    row("q_u16", "QuantizeLinear", In(_QX * 300), f(0.25), f(30000, dtype=np.uint16)),
    row("q_i16_runtime_params", "QuantizeLinear", In(_QX * 300), In(f(0.25)), In(f(-7, dtype=np.int16))),
    row("q_no_zp_output_dtype", "QuantizeLinear", In(_QX), f(0.25), output_dtype=TensorProto.INT8),
    row("q_axis", "QuantizeLinear", In(_QX), _S3, _Z3, axis=1, opset=13),
    row("q_axis_runtime", "QuantizeLinear", In(_QX), In(_S3), In(_Z3), axis=-3),
    row("q_blocked", "QuantizeLinear", In(_QX), _SB, _ZB, axis=2, block_size=3),
    row("q_blocked_runtime", "QuantizeLinear", In(_QX), In(_SB), In(_ZB), axis=2, block_size=3),
    # onnxruntime divides float16 in float32; the reference (and dgc) round the quotient to float16
    row("q_f16", "QuantizeLinear", In(_QX.astype(np.float16)), f(0.3, dtype=np.float16),
        u8(7), ref="onnx"),
    row("dq_u8", "DequantizeLinear", In(_X8), f(0.37), u8(131)),
    row("dq_axis_runtime", "DequantizeLinear", In(_X8), In(_S3), In(_Z3), axis=1),
    row("dq_blocked", "DequantizeLinear", In(_X8.view(np.int8)), _SB, _ZB, axis=2, block_size=3),
    row("dq_u16", "DequantizeLinear", In(q((3, 4), np.uint16)), f(0.37), f(40000, dtype=np.uint16)),
    row("dq_i32", "DequantizeLinear", In(_R.integers(-2**20, 2**20, (3, 4)).astype(np.int32)), f(1e-3)),
    row("dq_f16_scale", "DequantizeLinear", In(_X8), f(0.37, dtype=np.float16), u8(9)),
    row("dyn_q", "DynamicQuantizeLinear", In(u(-3, 5, (3, 7))), opset=11, outs=3),
    row("dyn_q_positive", "DynamicQuantizeLinear", In(u(1, 5, (10,))), opset=11, outs=3),
    # all zeros: the reference gives scale 1/255, onnxruntime 1 (the spec divides 0 by 0)
    row("dyn_q_zeros", "DynamicQuantizeLinear", In(np.zeros((4,), np.float32)), opset=11, outs=3,
        ref="onnx"),
]


def _qlmm(a, b, az, bz, yz, a_s=f(0.02), b_s=f(0.015), y_s=f(0.3)):
    return (a, a_s, az, b, b_s, bz, y_s, yz)


MATMUL = [
    row("qlmm_u8", "QLinearMatMul",
        *_qlmm(In(q((5, 16), np.uint8)), q((16, 7), np.uint8), u8(113), u8(114), u8(118))),
    row("qlmm_i8", "QLinearMatMul",
        *_qlmm(In(q((5, 16), np.int8)), q((16, 7), np.int8), i8(-14), i8(-13), i8(-9))),
    row("qlmm_u8_i8_batched", "QLinearMatMul",
        *_qlmm(In(q((2, 3, 5, 16), np.uint8)), In(q((3, 16, 7), np.int8)), u8(9), i8(-3), u8(120))),
    row("qlmm_3d_i8", "QLinearMatMul",  # 3-D x 3-D, constant int8 B (a transformer's batched matmul)
        *_qlmm(In(q((4, 6, 32), np.int8)), q((4, 32, 9), np.int8), i8(3), i8(0), i8(-2))),
    row("qlmm_per_column_b", "QLinearMatMul",
        *_qlmm(In(q((5, 16), np.uint8)), q((16, 7), np.int8), u8(9), q(7, np.int8), u8(120),
               b_s=u(0.01, 0.03, 7))),
    row("qlmm_runtime_params", "QLinearMatMul",
        *_qlmm(In(q((5, 16), np.uint8)), In(q((16, 7), np.int8)), In(u8([9])), In(i8([3])), In(u8([120])),
               a_s=In(f(0.02)))),
    # onnxruntime has no int8 x uint8 -> int8 kernel
    row("qlmm_i8_u8", "QLinearMatMul",
        *_qlmm(In(q((5, 16), np.int8)), q((16, 7), np.uint8), i8(-14), u8(200), i8(-9)), ref="onnx"),
    row("mmi_u8", "MatMulInteger", In(q((4, 3), np.uint8)), In(q((3, 2), np.uint8)), u8([12]),
        u8([0]), opset=10),
    row("mmi_i8_per_column", "MatMulInteger", In(q((5, 16), np.uint8)), In(q((16, 7), np.int8)),
        u8(3), q(7, np.int8), opset=10),
    row("mmi_1d_a", "MatMulInteger", In(q((16,), np.int8)), In(q((2, 16, 7), np.int8)), opset=10),
    row("mmi_1d_b", "MatMulInteger", In(q((3, 5, 16), np.int8)), In(q((16,), np.int8)), opset=10),
    # per-row a zero points: onnxruntime takes scalars only
    row("mmi_per_row", "MatMulInteger", In(q((2, 5, 16), np.int8)), In(q((16, 7), np.uint8)),
        q((2, 5, 1), np.int8), q(7, np.uint8), opset=10, ref=_matmul_integer_rows),
    row("mmi_per_row_1d", "MatMulInteger", In(q((5, 16), np.uint8)), In(q((16, 7), np.uint8)),
        q(5, np.uint8), q(7, np.uint8), opset=10, ref=_matmul_integer_rows),
]


def _qlc(x, w, wz, xdt=np.uint8, ydt=np.uint8, w_s=f(0.005), bias=True):
    cout = (w.value if isinstance(w, In) else w).shape[0]
    b = _R.integers(-5000, 5000, cout).astype(np.int32) if bias else None
    return (x, f(0.02), q((), xdt), w, w_s, wz, f(0.05), q((), ydt), b)


CONV = [
    row("qlc_u8_pads", "QLinearConv", *_qlc(In(q((1, 3, 9, 9), np.uint8)), q((4, 3, 3, 3), np.uint8),
                                            q((), np.uint8)), pads=[1, 1, 1, 1], opset=10),
    row("qlc_i8_strided_per_channel", "QLinearConv",
        *_qlc(In(q((2, 3, 9, 8), np.int8)), q((5, 3, 3, 3), np.int8), np.zeros(5, np.int8), np.int8, np.int8,
              u(0.002, 0.01, 5)), pads=[1, 0, 2, 1], strides=[2, 2], opset=10),
    row("qlc_u8_i8_dilated", "QLinearConv",
        *_qlc(In(q((1, 4, 10, 10), np.uint8)), q((6, 4, 3, 3), np.int8), np.zeros(6, np.int8),
              w_s=u(0.002, 0.01, 6)), dilations=[2, 2], pads=[2, 1, 2, 1], opset=10),
    row("qlc_depthwise", "QLinearConv", *_qlc(In(q((1, 4, 8, 8), np.uint8)), q((8, 1, 3, 3), np.uint8),
                                              q((), np.uint8), w_s=u(0.002, 0.01, 8)),
        group=4, pads=[1, 1, 1, 1], opset=10),
    row("qlc_grouped", "QLinearConv", *_qlc(In(q((1, 6, 7, 7), np.int8)), q((4, 3, 3, 3), np.int8),
                                            np.zeros(4, np.int8), np.int8, np.int8), group=2, opset=10),
    row("qlc_1d", "QLinearConv", *_qlc(In(q((1, 3, 20), np.uint8)), q((4, 3, 5), np.uint8), q((), np.uint8)),
        pads=[2, 2], strides=[2], opset=10),
    row("qlc_runtime_weight_no_bias", "QLinearConv",
        *_qlc(In(q((1, 3, 6, 6), np.uint8)), In(q((4, 3, 3, 3), np.int8)), q((), np.int8), bias=False),
        opset=10),
    row("qlc_per_channel_weight_zp", "QLinearConv",
        *_qlc(In(q((1, 3, 6, 6), np.uint8)), q((4, 3, 3, 3), np.uint8), q(4, np.uint8),
              w_s=u(0.002, 0.01, 4)),
        pads=[1, 1, 1, 1], opset=10),
    row("ci_runtime_zps", "ConvInteger", In(q((1, 4, 7, 7), np.uint8)), In(q((6, 2, 3, 3), np.uint8)),
        In(u8(100)), In(u8(7)), group=2, pads=[1, 1, 1, 1], opset=10),
    row("ci_i8_no_zps", "ConvInteger", In(q((1, 4, 7, 7), np.int8)), q((3, 4, 2, 2), np.int8),
        strides=[2, 1], opset=10),
    # per-channel weight zero points: onnxruntime takes scalars only
    row("ci_per_channel_weight_zp", "ConvInteger", In(q((1, 4, 7, 7), np.uint8)), q((6, 2, 3, 3), np.uint8),
        u8(100), q(6, np.uint8), group=2, pads=[1, 1, 1, 1], opset=10, ref="onnx"),
]


def _qadd(a, b, za, zb, zc, sa=f(0.02), sb=f(0.03), sc=f(0.045)):
    return (a, sa, za, b, sb, zb, sc, zc)


def _qpool(x, zx, zy, sx=f(0.02), sy=f(0.013)):
    return (x, sx, zx, sy, zy)


# Scales whose ratios put many results exactly on rounding ties (sa/sc = 1/2, sb/sc = 1/4).
_TIE = dict(sa=f(0.25), sb=f(0.125), sc=f(0.5))

CONTRIB = [
    ms_row("qadd_u8", "QLinearAdd", *_qadd(In(q((2, 3, 4, 5), np.uint8)), In(q((2, 3, 4, 5), np.uint8)),
                                           u8(128), u8(97), u8(131))),
    ms_row("qadd_i8_broadcast", "QLinearAdd", *_qadd(In(q((2, 3, 4, 5), np.int8)), In(q((3, 1, 5), np.int8)),
                                                     i8(-5), i8(17), i8(-128))),
    ms_row("qadd_i8_const_b", "QLinearAdd", *_qadd(In(q((4, 16), np.int8)), q((16,), np.int8), i8(0), i8(-3),
                                                   i8(11), sb=f(0.7))),
    ms_row("qadd_ties", "QLinearAdd", *_qadd(In(q((6, 40), np.int8)), In(q((6, 40), np.int8)), i8(3), i8(-6),
                                             i8(1), **_TIE)),
    ms_row("qavgpool_u8_pads", "QLinearAveragePool", *_qpool(In(q((1, 5, 9, 9), np.uint8)), u8(121), u8(7)),
           kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    ms_row("qavgpool_i8_count_pad_ceil", "QLinearAveragePool",
           *_qpool(In(q((2, 3, 8, 7), np.int8)), i8(-9), i8(4)), kernel_shape=[3, 2], strides=[2, 2],
           pads=[1, 0, 1, 1], count_include_pad=1, ceil_mode=1),
    ms_row("qavgpool_i8_ties", "QLinearAveragePool", *_qpool(In(q((1, 4, 8, 8), np.int8)), i8(0), i8(0),
                                                             sx=f(0.5), sy=f(0.5)), kernel_shape=[2, 2]),
    ms_row("qavgpool_1d", "QLinearAveragePool", *_qpool(In(q((2, 3, 11), np.uint8)), u8(100), u8(130)),
           kernel_shape=[4], strides=[3], pads=[1, 2]),
    ms_row("qavgpool_channels_last", "QLinearAveragePool", *_qpool(In(q((1, 6, 6, 4), np.int8)), i8(3), i8(-2)),
           kernel_shape=[2, 3], strides=[2, 1], channels_last=1),
    ms_row("qgap_u8", "QLinearGlobalAveragePool", *_qpool(In(q((2, 8, 5, 5), np.uint8)), u8(128), u8(120))),
    ms_row("qgap_i8_ties", "QLinearGlobalAveragePool", *_qpool(In(q((1, 16, 2, 2), np.int8)), i8(-1), i8(2),
                                                               sx=f(0.25), sy=f(0.25))),
    ms_row("qgap_channels_last", "QLinearGlobalAveragePool",
           *_qpool(In(q((1, 7, 7, 12), np.int8)), i8(5), i8(-3)), channels_last=1),
    ms_row("qgemm_u8_i8_bias_quantized", "QGemm", In(q((5, 32), np.uint8)), f(0.02), u8(120),
           q((10, 32), np.int8), u(0.002, 0.01, 10), np.zeros(10, np.int8),
           _R.integers(-3000, 3000, 10).astype(np.int32), f(0.04), u8(128), transB=1),
    ms_row("qgemm_i8_float_out", "QGemm", In(q((4, 24), np.int8)), f(0.02), i8(3), q((24, 6), np.int8),
           f(0.01), i8(0), _R.integers(-3000, 3000, 6).astype(np.int32), out=np.float32),
    ms_row("qgemm_alpha_transA", "QGemm", In(q((24, 4), np.int8)), f(0.02), i8(0), q((24, 6), np.int8),
           f(0.01), i8(0), None, f(0.05), i8(-7), transA=1, alpha=0.5),
    ms_row("qsoftmax_u8", "QLinearSoftmax", In(q((3, 10), np.uint8)), f(0.1), u8(128), f(1 / 256), u8(0), opset=13),
    ms_row("qsoftmax_i8_opset12", "QLinearSoftmax", In(q((2, 3, 5), np.int8)), f(0.2), i8(4), f(1 / 256),
           i8(-128), axis=1, opset=12),  # softmax over the flattened dims from axis on
]


@pytest.mark.parametrize("op,ins,attrs,opset,ref,outs", QUANTIZE + MATMUL + CONV + CONTRIB)
def test_quant_op_host(op, ins, attrs, opset, ref, outs, tmp_path):
    model = _model(op, ins, attrs, opset, outs)
    inputs = [x.value for x in ins if isinstance(x, In)]
    res, got = _run(model, inputs, "host", tmp_path)
    _assert_same(res, got, _expected(model, res, ref, ins, inputs))


def _qdq_conv_model():
    """x -> Q -> DQ -> Conv (weights: DQ of int8 constants, bias: DQ of int32 at scale x_scale *
    w_scale, as onnxruntime's quantizer writes them) -> Relu -> Q -> DQ -> Q: the shape of a
    statically quantized float model; its output stays uint8. (With a float bias onnxruntime
    quantizes the bias and dgc does not: results then differ by 1 step where dgc is closer.)"""
    w8 = q((4, 3, 3, 3), np.int8)
    ws = u(0.005, 0.02, 4)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w8", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("DequantizeLinear", ["b32", "bs"], ["bd"], axis=0),
        helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["rq"]),
        helper.make_node("DequantizeLinear", ["rq", "ys", "yz"], ["rd"]),
        helper.make_node("QuantizeLinear", ["rd", "ys", "yz"], ["y"]),
    ]
    inits = {"xs": f(0.02), "xz": u8(128), "w8": w8, "ws": ws, "wz": np.zeros(4, np.int8),
             "b32": _R.integers(-2000, 2000, 4).astype(np.int32), "bs": (f(0.02) * ws).astype(np.float32),
             "ys": f(0.01), "yz": u8(0)}
    x = u(-2, 2, (1, 3, 8, 8))
    graph = helper.make_graph(nodes, "qdq", [_info("x", x)], [_info("y", np.zeros((1, 4, 8, 8), np.uint8))],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model, [x]


def _qlinear_conv_model():
    """Two QLinearConvs (strided, then depthwise with per-channel scales) as an int8 network."""
    ins = _qlc(In(q((1, 3, 10, 10), np.uint8)), q((4, 3, 3, 3), np.uint8), q((), np.uint8))
    model = _model("QLinearConv", ins, {"pads": [1, 1, 1, 1], "strides": [2, 2]}, 10, 1)
    dw = [f(0.05), ins[7], q((8, 1, 3, 3), np.int8), u(0.002, 0.01, 8), np.zeros(8, np.int8), f(0.03),
          q((), np.uint8), _R.integers(-500, 500, 8).astype(np.int32)]
    names = ["y0"] + [f"d{k}" for k in range(1, 9)]
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), n) for n, v in zip(names[1:], dw))
    model.graph.node.append(helper.make_node("QLinearConv", names, ["z"], group=4, pads=[1, 1, 1, 1]))
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("z", TensorProto.UINT8, None))
    return onnx.shape_inference.infer_shapes(model, strict_mode=True), [ins[0].value]


MODELS = [pytest.param(*_qdq_conv_model(), id="qdq_conv"), pytest.param(*_qlinear_conv_model(), id="qlinear_conv")]


@pytest.mark.parametrize("model,inputs", MODELS)
def test_quant_model_cortex_m7(model, inputs, tmp_path):
    res, got = _run(model, inputs, "cortex-m7", tmp_path)
    _assert_same(res, got, reference(model, res.spec, inputs))


def _depthwise_chain_model(dt, c: int = 20, mult: int = 1):
    """Three depthwise QLinearConvs of `dt` (int8: weight zero point 0, folded by the importer;
    uint8: a weight zero point it cannot fold), c channels (20: a whole vector plus a partial
    one at 16 lanes), the first with channel multiplier `mult` (c x mult channels after it),
    the others 1; non-zero input zero points, per-channel scales and biases: 3x3 padded; 5x5
    stride 2 with asymmetric pads; 3x3 dilation 2."""
    x = In(q((1, c, 11, 9), dt))
    layers = [({"pads": [1, 1, 1, 1]}, 3), ({"pads": [2, 1, 2, 1], "strides": [2, 2]}, 5),
              ({"pads": [2, 2, 2, 2], "dilations": [2, 2]}, 3)]
    nodes, inits, prev = [], [], "x"
    for k, (attrs, kk) in enumerate(layers):
        cin, cout = c if k == 0 else c * mult, c * mult
        zp = (lambda v: i8(v)) if dt == np.int8 else (lambda v: u8(v + 128))
        wz = np.zeros(cout, np.int8) if dt == np.int8 else u8(100 + 20 * k)
        vals = [f(0.02 + 0.01 * k), zp(3 - 5 * k), q((cout, 1, kk, kk), dt), u(0.002, 0.01, cout),
                wz, f(0.05), zp(-7 + 4 * k), _R.integers(-3000, 3000, cout).astype(np.int32)]
        names = [f"l{k}_{j}" for j in range(len(vals))]
        inits += [numpy_helper.from_array(np.asarray(v), n) for n, v in zip(names, vals)]
        out = f"y{k}"
        nodes.append(helper.make_node("QLinearConv", [prev, *names[:2], names[2], names[3], names[4], names[5],
                                                      names[6], names[7]], [out], name=f"dw{k}", group=cin,
                                      **attrs))
        prev = out
    graph = helper.make_graph(nodes, "dw", [_info("x", x.value)],
                              [helper.make_tensor_value_info(prev, helper.np_dtype_to_tensor_dtype(np.dtype(dt)),
                                                             None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model, strict_mode=True), [x.value]


@pytest.mark.parametrize("target,dt", [
    *[pytest.param(t, dt, id=f"{t}-{dt.__name__}") for t in ("host", "x86-64-v3", "aarch64", "armv7a", "cortex-m0plus")
      for dt in (np.int8, np.uint8)],
    pytest.param("cortex-m7", np.uint8, id="cortex-m7-uint8")])  # the SMLAD kernel takes no zero point
def test_int8_depthwise_is_vectorized_without_dsp_kernels(target, dt, tmp_path):
    """On targets without SMLAD/Helium depthwise kernels, int8 depthwise convs (multiplier 1) are
    scheduled like float ones - channel vectors, the requantization fused into the conv's loops -
    and match onnxruntime exactly; uint8 weights with a zero point too (as int16 weights)."""
    model, inputs = _depthwise_chain_model(dt)
    res, got = _run(model, inputs, target, tmp_path)
    _assert_same(res, got, reference(model, res.spec, inputs))
    dws = [e for e in json.loads(res.schedule)["ops"] if e["key"].startswith("dw") and "#" not in e["key"]]
    assert [e["linalg"] for e in dws] == ["linalg.depthwise_conv_2d_nhwc_hwc"] * 3, dws
    assert all(e["dtype"] == ("i8,i32" if dt == np.int8 else "i8,i16,i32") and e["fuse"] for e in dws), dws
    if dgc.get_target(target).vector_bits > 32:
        assert all(e["vectorize"] and e["tile"][3] > 1 for e in dws), dws


@pytest.mark.parametrize("target", ["x86-64", "aarch64", "armv7a"])
def test_int8_depthwise_channel_vectors_fill_8_bytes(target, tmp_path):
    """On 128-bit SIMD an int8 depthwise conv takes channel blocks of at least 8 (when the
    channels allow: 32 here): a whole 64-bit load per window tap, not lanes loaded one by one
    (ARMv7-A, estimated cycles: MobileNet v1 0.25 int8 1.12x, DS-CNN int8 1.10x fewer; x86-64
    SSE2 DS-CNN int8 1.12x faster). Still exact against onnxruntime."""
    model, inputs = _depthwise_chain_model(np.int8, c=32)
    res, got = _run(model, inputs, target, tmp_path)
    _assert_same(res, got, reference(model, res.spec, inputs))
    dws = [e for e in json.loads(res.schedule)["ops"] if e["key"].startswith("dw") and "#" not in e["key"]]
    assert len(dws) == 3 and all(e["vectorize"] and e["tile"][3] >= 8 for e in dws), dws


@pytest.mark.parametrize("target,dt", [("host", np.int8), ("aarch64", np.uint8), ("cortex-m7", np.int8),
                                       ("cortex-m0plus", np.uint8)])
def test_int8_depthwise_channel_multiplier(target, dt, tmp_path):
    """An int8 depthwise conv with channel multiplier 2 runs as a multiplier-1 depthwise conv
    over its input's channels repeated, on every target: exact against onnxruntime, and the
    5-D int32 accumulator of TOSA's HWCM form (4 bytes an output, 12,672 B here) is never
    whole: with int8 weights the whole arena is smaller than it (15,840 B before, on every
    target; with uint8 weights another layer sets the peak). Where no SMLAD kernel takes it
    (all but Cortex-M7), the conv is scheduled over the 32 channels."""
    model, inputs = _depthwise_chain_model(dt, c=16, mult=2)
    res, got = _run(model, inputs, target, tmp_path)
    _assert_same(res, got, reference(model, res.spec, inputs))
    if dt == np.int8:
        assert res.spec.arena_size < 4 * 32 * 11 * 9, res.spec.arena_size
    if target != "cortex-m7":
        assert [op for op in json.loads(res.schedule)["ops"]
                if op["linalg"] == "linalg.depthwise_conv_2d_nhwc_hwc" and op["loops"][:4] == [1, 11, 9, 32]]


def test_verify_judges_runtime_u8_s8_matmuls_against_an_exact_reference(tmp_path):
    """A u8 x s8 MatMulInteger whose B is a runtime input: where onnxruntime's kernel
    saturates (x86 without VNNI: pairs of products summed in int16; large values here) the
    reference `dgc verify` takes is onnx's reference evaluator, named in its note, and equals
    numpy's exact product, as dgc's output does; elsewhere it is onnxruntime. A constant B is
    not a runtime one."""
    from dgc import verifier

    g = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"], name="mm")], "g",
                          [helper.make_tensor_value_info("a", TensorProto.UINT8, [4, 64]),
                           helper.make_tensor_value_info("b", TensorProto.INT8, [64, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [4, 8])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    assert verifier.saturating_u8s8_matmul(model) == "mm (MatMulInteger)"
    const = helper.make_model(helper.make_graph(
        g.node, "g", g.input[:1], g.output,
        [numpy_helper.from_array(np.ones((64, 8), np.int8), "b")]), opset_imports=model.opset_import)
    assert verifier.saturating_u8s8_matmul(const) is None  # onnxruntime's exact u8 x u8 path takes it
    # a QLinearMatMul saturates with a constant int8 B too (the per-column B of qlmm_per_column_b)
    (qlmm,) = [_model(*r.values[:4], r.values[5]) for r in MATMUL if r.id == "qlmm_per_column_b"]
    assert verifier.saturating_u8s8_matmul(qlmm) is not None
    rng = np.random.default_rng(3)
    a, b = rng.integers(200, 256, (4, 64)).astype(np.uint8), rng.integers(100, 128, (64, 8)).astype(np.int8)
    exact = a.astype(np.int32) @ b.astype(np.int32)
    res, (got,) = _run(model, [a, b], "host", tmp_path)
    assert np.array_equal(got, exact)
    ref = verifier.exact_reference(model, res.spec, [a, b])
    if ort_u8s8_exact():
        assert ref is None
        return
    (want,), note = ref
    assert np.array_equal(want, exact) and "reference evaluator" in note and "mm (MatMulInteger)" in note
    assert not np.array_equal(verifier.reference(model, res.spec, [a, b])[0], exact)  # onnxruntime's
    _, (cmp,) = verifier.verify(model, "host")
    assert cmp.ok and cmp.max_abs == 0 and "reference evaluator" in cmp.note, cmp
