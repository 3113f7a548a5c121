"""Single-op ONNX models compiled for the host and checked against onnxruntime.

Every table row is one small model: an op, its inputs and its attributes. An input is a
shape (a float32 graph input), an `In` (a typed graph input, optionally with chosen values),
a numpy array (an initializer, i.e. a compile-time constant) or `None` (an omitted optional
input). Attribute-free unary and binary ops share one model per row, one output per op, so
a mismatch names the op. Floats must match within 1e-4 * max(1, max|ref|); integers exactly.
Bool inputs and outputs are cast from/to int32 inside the model (see `_graph_input`).
`test_unsupported` checks that variants dgc does not lower fail with a clean DgcError.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import dgc
from conftest import check_on_target, run_model
from dgc.verifier import compare, random_inputs, reference

_W = np.random.default_rng(1)  # weights: fixed at import, the table order is fixed too


@dataclasses.dataclass(frozen=True)
class In:
    """A graph input; `lo`/`hi` draw uniform values (integers for int dtypes), `values` fixes them."""

    shape: tuple
    dtype: str = "float32"
    lo: float | None = None
    hi: float | None = None
    values: tuple | None = None

    def sample(self, rng) -> np.ndarray | None:
        if self.values is not None:
            return np.array(self.values, dtype=self.dtype).reshape(self.shape)
        if self.lo is None:
            return None
        if np.dtype(self.dtype).kind in "iu":
            return rng.integers(self.lo, self.hi + 1, self.shape).astype(self.dtype)
        return rng.uniform(self.lo, self.hi, self.shape).astype(self.dtype)


@dataclasses.dataclass(frozen=True)
class Case:
    ops: tuple  # one node per op, all on the same inputs
    ins: tuple
    attrs: dict
    opset: int = 17
    outs: int = 1


def case(id, op, *ins, opset=17, outs=1, marks=(), **attrs):
    return pytest.param(Case((op,), ins, attrs, opset, outs), id=id, marks=marks)


def multi(id, ops, *ins, opset=17, **attrs):
    return pytest.param(Case(tuple(ops), ins, attrs, opset), id=id)


def W(*shape, dtype=np.float32):
    return _W.standard_normal(shape).astype(dtype)


def I64(*values):
    return np.array(values, dtype=np.int64)


def F32(values):
    return np.array(values, dtype=np.float32)


# ---- building and checking ----------------------------------------------------------------

def _graph_input(x) -> In:
    """A row's input as the graph declares it: a bool travels as a 0/1 int32 cast inside,
    because bool graph inputs and outputs abort the MLIR build (memref<...xi1>)."""
    x = x if isinstance(x, In) else In(x)
    return In(x.shape, "int32", 0, 1, x.values) if x.dtype == "bool" else x


def _inputs(ins):
    """Node input names, graph inputs, initializers and the Casts that make bools."""
    names, inputs, inits, casts = [], [], [], []
    for i, x in enumerate(ins):
        name = f"x{i}" if x is not None else ""
        if isinstance(x, np.ndarray):
            inits.append(numpy_helper.from_array(x, name))
        elif x is not None:
            g = _graph_input(x)
            et = helper.np_dtype_to_tensor_dtype(np.dtype(g.dtype))
            inputs.append(helper.make_tensor_value_info(name, et, g.shape))
            if isinstance(x, In) and x.dtype == "bool":
                casts.append(helper.make_node("Cast", [name], [f"{name}_b"], name=f"{name}_bool", to=TensorProto.BOOL))
                name = f"{name}_b"
        names.append(name)
    while names and not names[-1]:
        names.pop()
    return names, inputs, inits, casts


def _model(nodes, inputs, outs, inits, opset) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_value_info(y, onnx.TypeProto()) for y in outs],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # onnxruntime 1.31 reads IR <= 13; onnx 1.23 writes 14
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def build(c: Case) -> onnx.ModelProto:
    """One node per op of `c`; output types come from ONNX shape inference; bool outputs
    are cast to int32 (see `_graph_input`)."""
    names, inputs, inits, nodes = _inputs(c.ins)
    outs = []
    for op in c.ops:
        ys = [f"{op}_y{k}" if len(c.ops) > 1 else f"y{k}" for k in range(c.outs)]
        nodes.append(helper.make_node(op, names, ys, name=f"{op.lower()}_node", **c.attrs))
        outs += ys
    model = _model(nodes, inputs, outs, inits, c.opset)
    bools = {o.name for o in model.graph.output if o.type.tensor_type.elem_type == TensorProto.BOOL}
    if not bools:
        return model
    nodes += [helper.make_node("Cast", [y], [f"{y}_i32"], name=f"{y}_int", to=TensorProto.INT32)
              for y in outs if y in bools]
    return _model(nodes, inputs, [f"{y}_i32" if y in bools else y for y in outs], inits, c.opset)


def check(c: Case, tmp_path):
    """check_on_target on host, with the inputs' chosen values where a row gives them."""
    model = build(c)
    graph_ins = [_graph_input(x) for x in c.ins if isinstance(x, (tuple, In))]
    if all(x.lo is None and x.values is None for x in graph_ins):
        return check_on_target(model, "host", tmp_path)
    res = dgc.compile(model, "host", name="m")
    rng = np.random.default_rng(0)
    feeds = [x.sample(rng) for x in graph_ins]
    feeds = [d if f is None else f for f, d in zip(feeds, random_inputs(res.spec, 0))]
    obj = tmp_path / "m.o"
    obj.write_bytes(res.object)
    got = run_model(res.spec, str(obj), res.target, feeds, str(tmp_path))
    bad = [r for r in compare(res.spec, got, reference(model, res.spec, feeds)) if not r.ok]
    assert not bad, "; ".join(f"{r.name}: max abs err {r.max_abs:.3g} > {r.limit:.3g}" for r in bad)


# ---- convolution ----------------------------------------------------------------------------

X8 = (1, 3, 8, 8)
CONV = [
    case("3x3", "Conv", X8, W(4, 3, 3, 3), W(4)),
    case("kernel-shape-attr", "Conv", X8, W(4, 3, 3, 3), W(4), kernel_shape=[3, 3]),
    case("batch2-1x1", "Conv", (2, 3, 5, 5), W(4, 3, 1, 1), W(4)),
    case("pads-sym", "Conv", X8, W(4, 3, 3, 3), W(4), pads=[1, 1, 1, 1]),
    case("pads-asym", "Conv", X8, W(4, 3, 3, 3), W(4), pads=[0, 1, 2, 0]),
    case("same-upper-s2", "Conv", X8, W(4, 3, 3, 3), W(4), auto_pad="SAME_UPPER", strides=[2, 2]),
    case("same-lower-s2", "Conv", X8, W(4, 3, 3, 3), W(4), auto_pad="SAME_LOWER", strides=[2, 2]),
    case("same-upper-k4", "Conv", X8, W(2, 3, 4, 4), W(2), auto_pad="SAME_UPPER"),
    case("same-lower-k4", "Conv", X8, W(2, 3, 4, 4), W(2), auto_pad="SAME_LOWER"),
    case("valid-s3", "Conv", (1, 3, 10, 10), W(4, 3, 3, 3), W(4), auto_pad="VALID", strides=[3, 3]),
    case("s2-leftover", "Conv", X8, W(4, 3, 3, 3), W(4), strides=[2, 2]),
    case("s3-pads", "Conv", X8, W(4, 3, 3, 3), W(4), strides=[3, 3], pads=[1, 1, 1, 1]),
    case("dil2", "Conv", (1, 3, 9, 9), W(4, 3, 3, 3), W(4), dilations=[2, 2]),
    case("dil2-s2-pads", "Conv", (1, 3, 9, 9), W(4, 3, 3, 3), W(4), dilations=[2, 2], strides=[2, 2],
         pads=[2, 1, 2, 1]),
    case("no-bias", "Conv", X8, W(4, 3, 3, 3), pads=[1, 1, 1, 1]),
    case("kernel-2x3-s1x2", "Conv", (1, 3, 7, 9), W(4, 3, 2, 3), W(4), strides=[1, 2]),
    case("kernel-5x1-s3x1", "Conv", (1, 3, 11, 6), W(2, 3, 5, 1), W(2), strides=[3, 1], pads=[1, 0, 0, 0]),
    case("depthwise", "Conv", (1, 4, 8, 8), W(4, 1, 3, 3), W(4), group=4, pads=[1, 1, 1, 1]),
    case("depthwise-m2-s2", "Conv", (1, 3, 9, 9), W(6, 1, 3, 3), W(6), group=3, strides=[2, 2]),
    case("grouped-2", "Conv", (1, 4, 6, 6), W(6, 2, 3, 3), W(6), group=2),
    case("grouped-3-pads-s2", "Conv", (1, 6, 7, 7), W(6, 2, 3, 3), group=3, strides=[2, 2],
         pads=[1, 0, 1, 2]),
    case("w-input", "Conv", X8, (4, 3, 3, 3), (4,), pads=[1, 1, 1, 1]),
    case("depthwise-w-input", "Conv", (1, 4, 6, 6), (8, 1, 3, 3), group=4),
    case("grouped-w-input", "Conv", (1, 4, 6, 6), (4, 2, 3, 3), (4,), group=2),
    case("1d", "Conv", (1, 3, 10), W(4, 3, 3), W(4)),
    case("1d-pads-s2-dil2", "Conv", (2, 3, 11), W(4, 3, 3), W(4), pads=[2, 1], strides=[2], dilations=[2]),
    case("1d-depthwise", "Conv", (1, 3, 10), W(3, 1, 3), W(3), group=3, pads=[1, 1]),
    case("1d-grouped", "Conv", (1, 4, 9), W(6, 2, 2), W(6), group=2, strides=[2]),
    case("1d-same-lower", "Conv", (1, 3, 10), W(2, 3, 4), auto_pad="SAME_LOWER"),
]


@pytest.mark.parametrize("c", CONV)
def test_conv(c, tmp_path):
    check(c, tmp_path)


# ---- pooling --------------------------------------------------------------------------------

def _pools(op, tag="", **extra):
    """The window variants both pooling ops share."""
    p = lambda id, x, **kw: case(f"{op}{tag}-{id}", op, x, **kw, **extra)  # noqa: E731
    return [
        p("k2s2", X8, kernel_shape=[2, 2], strides=[2, 2]),
        p("k3s2-floor", X8, kernel_shape=[3, 3], strides=[2, 2]),
        p("k3s2-ceil", X8, kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        p("k3s2-ceil-pads", X8, kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, pads=[1, 1, 1, 1]),
        p("k2s3-ceil", (1, 2, 8, 10), kernel_shape=[2, 2], strides=[3, 3], ceil_mode=1),
        p("pads-asym", X8, kernel_shape=[3, 3], pads=[0, 1, 2, 0]),
        p("same-upper", X8, kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        p("same-lower", X8, kernel_shape=[2, 2], strides=[1, 1], auto_pad="SAME_LOWER"),
        p("valid", (1, 2, 9, 9), kernel_shape=[3, 3], strides=[2, 2], auto_pad="VALID"),
        p("nonsquare", (1, 2, 7, 9), kernel_shape=[2, 3], strides=[1, 2], pads=[1, 0, 0, 1]),
        p("1d", (1, 3, 10), kernel_shape=[3], strides=[2], pads=[1, 1]),
        p("1d-ceil", (2, 3, 10), kernel_shape=[2], strides=[3], ceil_mode=1),
    ]


POOL = _pools("MaxPool") + _pools("AveragePool") + _pools("AveragePool", "-cip1", count_include_pad=1) + [
    case("MaxPool-dil2", "MaxPool", (1, 2, 9, 9), kernel_shape=[2, 2], dilations=[2, 2]),
    case("MaxPool-dil2-s2-pads-ceil", "MaxPool", (1, 2, 10, 10), kernel_shape=[3, 2], dilations=[2, 3],
         strides=[2, 2], pads=[1, 1, 1, 0], ceil_mode=1),
    case("MaxPool-1d-dil2", "MaxPool", (1, 2, 11), kernel_shape=[3], dilations=[2]),
    case("AveragePool-same-upper-cip1", "AveragePool", X8, kernel_shape=[3, 3], strides=[2, 2],
         auto_pad="SAME_UPPER", count_include_pad=1),
    case("MaxPool-uint8-dil2", "MaxPool", In((1, 2, 6, 6), "uint8", lo=0, hi=255), kernel_shape=[2, 2],
         dilations=[2, 2], pads=[1, 1, 0, 0]),
    case("MaxPool-uint8", "MaxPool", In((1, 2, 6, 6), "uint8", lo=0, hi=255), kernel_shape=[3, 3], strides=[2, 2]),
    case("MaxPool-int8", "MaxPool", In((1, 2, 6, 6), "int8"), kernel_shape=[2, 2], pads=[1, 1, 0, 0]),
    case("AveragePool-19-dil2-pads", "AveragePool", (1, 2, 9, 9), kernel_shape=[2, 3], dilations=[2, 2],
         pads=[1, 1, 1, 1], opset=19),
    case("AveragePool-19-dil2-cip1-ceil", "AveragePool", (1, 2, 9, 9), kernel_shape=[3, 2], dilations=[2, 2],
         strides=[2, 2], pads=[1, 0, 1, 1], count_include_pad=1, ceil_mode=1, opset=19),
    multi("global", ["GlobalAveragePool", "GlobalMaxPool"], (2, 3, 5, 4)),
    multi("global-1d", ["GlobalAveragePool", "GlobalMaxPool"], (2, 3, 7)),
]


@pytest.mark.parametrize("c", POOL)
def test_pool(c, tmp_path):
    check(c, tmp_path)


# ---- Gemm and MatMul ------------------------------------------------------------------------

GEMM = [
    case("basic", "Gemm", (3, 4), W(4, 5), W(5)),
    case("transA", "Gemm", (4, 3), W(4, 5), W(5), transA=1),
    case("transB", "Gemm", (3, 4), W(5, 4), W(5), transB=1),
    case("transAB-alpha", "Gemm", (4, 3), W(5, 4), W(3, 5), transA=1, transB=1, alpha=0.5),
    case("alpha-beta-c-mn", "Gemm", (3, 4), W(4, 5), W(3, 5), alpha=1.5, beta=-2.0),
    case("c-1xn", "Gemm", (3, 4), W(4, 5), W(1, 5), beta=0.5),
    case("c-mx1", "Gemm", (3, 4), W(4, 5), W(3, 1)),
    case("c-scalar", "Gemm", (3, 4), W(4, 5), np.array(0.75, np.float32)),
    case("no-c", "Gemm", (3, 4), W(4, 5), alpha=2.0),
    case("beta0", "Gemm", (3, 4), W(4, 5), W(5), beta=0.0),
    case("b-input-transB", "Gemm", (3, 4), (5, 4), W(5), transB=1, alpha=0.7),
    case("all-inputs", "Gemm", (4, 3), (4, 5), (3, 5), transA=1, alpha=0.3, beta=1.7),
    case("c-input-n", "Gemm", (3, 4), (5, 4), (5,), transB=1, beta=-1.0),
]

MATMUL = [
    case("2d", "MatMul", (3, 4), (4, 5)),
    case("2d-const", "MatMul", (3, 4), W(4, 5)),
    case("3d-2d", "MatMul", (2, 3, 4), W(4, 5)),
    case("3d-3d", "MatMul", (2, 3, 4), (2, 4, 5)),
    case("4d-bcast", "MatMul", (2, 1, 3, 4), (1, 3, 4, 5)),
    case("3d-bcast-lhs", "MatMul", (1, 3, 4), W(2, 4, 5)),
    case("4d-3d", "MatMul", (2, 2, 3, 4), (2, 4, 5)),
    case("2d-3d", "MatMul", (3, 4), (2, 4, 5)),
    case("1d-2d", "MatMul", (4,), W(4, 5)),
    case("2d-1d", "MatMul", (3, 4), (4,)),
    case("1d-1d", "MatMul", (4,), (4,)),  # a 0-d output
    case("1d-3d", "MatMul", (4,), (2, 4, 5)),
    case("3d-1d", "MatMul", (2, 3, 4), W(4)),
    case("int32", "MatMul", In((3, 4), "int32", lo=-9, hi=9), In((4, 5), "int32", lo=-9, hi=9)),
    case("int64-batched-const", "MatMul", In((2, 3, 4), "int64", lo=-9, hi=9), I64(*range(-10, 10)).reshape(4, 5)),
]


@pytest.mark.parametrize("c", GEMM + MATMUL)
def test_gemm_matmul(c, tmp_path):
    check(c, tmp_path)


# ---- elementwise ----------------------------------------------------------------------------

ARITH = ["Add", "Sub", "Mul", "Div", "Max", "Min"]
COMPARE = ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"]
SMALL = dict(lo=-3, hi=3)  # small integers: equal pairs happen, and floats compare equal too
BINARY = [
    multi("arith-bcast", ARITH, (2, 3, 4), (3, 1)),
    multi("arith-rank-lhs", ARITH, (4,), In((2, 3, 4), lo=0.5, hi=2)),
    multi("arith-scalar-const", ARITH, (2, 3), np.array(-1.5, np.float32)),
    multi("arith-const-lhs", ARITH, W(3, 1), In((2, 1, 4), lo=0.5, hi=3)),
    multi("arith-scalar-input", ARITH, (), In((2, 3), lo=-3, hi=-0.5)),
    multi("arith-int32", ["Add", "Sub", "Mul", "Max", "Min"], In((2, 3), "int32"), In((3,), "int32")),
    multi("arith-int64", ["Add", "Sub", "Mul", "Max", "Min"], In((2, 3), "int64"), np.array([5, -7, 0], np.int64)),
    case("div-int32", "Div", In((3, 4), "int32", -50, 50), In((4,), "int32", values=(3, -4, 7, -1))),
    *[case(f"div-{t}", "Div", In((3, 4), t, lo=lo, hi=120), In((4,), t, values=v))
      for t, lo, v in [("int8", -120, (3, -4, 7, -1)), ("int16", -120, (5, 2, -9, 1)),
                       ("uint8", 0, (3, 4, 250, 1)), ("uint16", 0, (7, 2, 9, 1))]],
    case("div-int64", "Div", In((3, 4), "int64", -50, 50), np.array([[2], [-3], [5]], np.int64)),
    case("pow", "Pow", In((2, 3, 4), lo=0.1, hi=3), (3, 1)),
    case("pow-int-exponent", "Pow", (2, 3, 4), np.array([2.0, 3.0, -1.0, 0.0], np.float32)),
    case("pow-int-exponent-input", "Pow", (2, 3), In((3,), "int64", lo=-2, hi=3)),
    case("pow-int32", "Pow", In((2, 3), "int32", lo=-5, hi=5), np.array([0, 1, 3], np.int32)),
    case("pow-int32-float-exponent", "Pow", In((2, 3), "int32", lo=-5, hi=5), F32([2, 5, 0])),
    case("pow-int64-input", "Pow", In((3, 5), "int64", values=(0, 3, -2, 5, -1, 7, -1, 0, -3, 1, 2, 1, 9, 2, 2)),
         In((5,), "int64", values=(0, 1, 2, 7, -2))),  # no 0 ** negative: undefined
    case("equal-bool", "Equal", In((2, 3), "bool"), In((3,), "bool")),
    case("pow-int32-float-input", "Pow", In((2, 4), "int32", values=(-3, 4, -2, 2, 3, 2, 1, -1)),
         In((4,), values=(2, 0.5, 3, -1))),
    case("pow-int32-fractional-const", "Pow", In((2, 3), "int32", lo=0, hi=9), F32([0.5, 1, 2.5])),
    case("pow-sqrt", "Pow", In((2, 3), lo=0, hi=5), np.array(0.5, np.float32)),
    multi("variadic-3", ["Max", "Min", "Sum", "Mean"], (2, 3, 4), (3, 1), (4,)),
    multi("variadic-1", ["Max", "Min", "Sum", "Mean"], (2, 3)),
    multi("compare-float", COMPARE, In((2, 3, 4), **SMALL), In((3, 1), **SMALL)),
    multi("compare-int64", COMPARE, In((2, 3), "int64", **SMALL), In((3,), "int64", **SMALL)),
    multi("compare-uint8", COMPARE, In((3, 4), "uint8", lo=0, hi=255), In((4,), "uint8", values=(0, 100, 200, 255))),
    multi("compare-const", COMPARE, (2, 3), np.array(0.0, np.float32)),
    multi("logic", ["And", "Or", "Xor", "Equal"], In((2, 3, 4), "bool"), In((3, 1), "bool")),  # shared bools
    case("not", "Not", In((2, 3), "bool")),
    multi("minmax-uint8", ["Max", "Min"], In((3, 4), "uint8", lo=0, hi=255), In((4,), "uint8", lo=0, hi=255)),
    case("where", "Where", In((2, 3, 4), "bool"), (3, 4), np.array(-1.0, np.float32)),
    case("where-int", "Where", In((3, 1), "bool"), In((3, 4), "int32"), In((4,), "int32")),
    case("where-const-cond", "Where", np.array([True, False, True]), (2, 3), (2, 1)),
]


@pytest.mark.parametrize("c", BINARY)
def test_binary(c, tmp_path):
    check(c, tmp_path)


# ---- unary and activations ------------------------------------------------------------------

SMOOTH = ["Sigmoid", "Tanh", "Erf", "Exp", "Sin", "Cos", "Softplus", "Softsign", "HardSwish"]
TIES = (-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -0.49, 0.51, 3.7, -3.7, 0.0, -0.0, 1e-3, 7.5, -7.5, 2.4999)
UNARY = [
    multi("normal", SMOOTH + ["Relu", "Abs", "Neg", "Floor", "Ceil", "Round", "Sign", "Reciprocal"], (2, 3, 4)),
    multi("wide", SMOOTH, In((4, 50), lo=-12, hi=12)),
    multi("positive", ["Log", "Sqrt", "Reciprocal"], In((4, 50), lo=0.01, hi=50)),
    multi("ties", ["Round", "Floor", "Ceil", "Sign", "Abs", "Relu"], In((16,), values=TIES)),
    multi("int32", ["Abs", "Neg", "Sign", "Relu"], In((3, 5), "int32")),
    multi("identity", ["Identity", "Dropout"], (2, 3)),
    case("dropout-mask", "Dropout", (2, 3), F32(0.3), outs=2),
    case("dropout-training-ratio0", "Dropout", (2, 3), F32(0.0), np.array(True), outs=2),
    case("leaky-relu", "LeakyRelu", (2, 3, 4)),
    case("leaky-relu-alpha", "LeakyRelu", (2, 3, 4), alpha=0.3),
    case("prelu-bcast", "PRelu", (2, 3, 4), W(3, 1)),
    case("prelu-last", "PRelu", (2, 3, 4), W(4)),
    case("prelu-input", "PRelu", (2, 3, 4), (3, 4)),
    case("hard-sigmoid", "HardSigmoid", In((2, 30), lo=-5, hi=5)),
    case("hard-sigmoid-ab", "HardSigmoid", In((2, 30), lo=-5, hi=5), alpha=0.5, beta=0.2),
    case("elu", "Elu", (2, 3, 4)),
    case("elu-alpha", "Elu", (2, 3, 4), alpha=0.4),
    case("selu", "Selu", (2, 3, 4)),
    case("selu-ag", "Selu", (2, 3, 4), alpha=1.2, gamma=0.8),
    case("clip-none", "Clip", (2, 3)),
    case("clip-min", "Clip", (2, 3, 4), F32(-0.5)),
    case("clip-max", "Clip", (2, 3, 4), None, F32(0.25)),
    case("clip-both", "Clip", (2, 3, 4), F32(-0.5), F32(0.75)),
    case("clip-inputs", "Clip", (2, 3, 4), (), ()),
    case("clip-int32", "Clip", In((3, 5), "int32"), np.array(-20, np.int32), np.array(30, np.int32)),
    case("clip-min-above-max", "Clip", (2, 3, 4), F32(0.5), F32(-0.25)),
    case("clip-uint8", "Clip", In((3, 4), "uint8", lo=0, hi=255), np.array(100, np.uint8), np.array(200, np.uint8)),
    case("clip-6-attrs", "Clip", (2, 3, 4), opset=6, min=-0.3, max=0.6),
    case("clip-6-min", "Clip", (2, 3, 4), opset=6, min=0.1),
    case("clip-6-none", "Clip", (2, 3, 4), opset=6),
]


@pytest.mark.parametrize("c", UNARY)
def test_unary(c, tmp_path):
    check(c, tmp_path)


# ---- softmax and normalization ----------------------------------------------------------

X3 = (2, 3, 5)
WIDE3 = In(X3, lo=-30, hi=30)
POSITIVE = dict(lo=0.1, hi=2)
NORM = [
    *[case(f"{op}-axis{a}", op, WIDE3, axis=a) for op in ("Softmax", "LogSoftmax") for a in (-1, 0, 1)],
    case("Softmax-default", "Softmax", WIDE3),
    *[case(f"{op}-11-axis{a}", op, WIDE3, opset=11, axis=a) for op in ("Softmax", "LogSoftmax") for a in (0, 1, -1)],
    case("Softmax-11-default", "Softmax", (2, 3, 4, 2), opset=11),
    case("batchnorm-2d", "BatchNormalization", (4, 3), W(3), W(3), W(3), F32([0.5, 1.0, 2.0])),
    case("batchnorm-4d", "BatchNormalization", (2, 3, 4, 5), W(3), W(3), W(3), F32([0.5, 1.0, 2.0]),
         epsilon=1e-3),
    case("batchnorm-inputs", "BatchNormalization", (2, 3, 4), (3,), (3,), (3,), In((3,), **POSITIVE)),
    case("layernorm-last", "LayerNormalization", X3, W(5), W(5)),
    case("layernorm-axis1", "LayerNormalization", X3, W(3, 5), W(3, 5), axis=1, epsilon=1e-3),
    case("layernorm-axis-2-no-bias", "LayerNormalization", X3, W(3, 5), axis=-2),
    case("layernorm-axis0", "LayerNormalization", X3, W(2, 3, 5), axis=0),
    case("layernorm-bcast-scale", "LayerNormalization", X3, W(1, 5), W(5), axis=1),
    case("layernorm-stats", "LayerNormalization", X3, (5,), (5,), outs=3),
    case("instancenorm-4d", "InstanceNormalization", (2, 3, 4, 5), W(3), W(3)),
    case("instancenorm-3d", "InstanceNormalization", (2, 3, 6), (3,), (3,), epsilon=1e-2),
]


@pytest.mark.parametrize("c", NORM)
def test_norm(c, tmp_path):
    check(c, tmp_path)


# ---- data movement ----------------------------------------------------------------------

X4 = (4, 6, 5)
BIG = np.iinfo(np.int64).max
TENSOR = [
    case("reshape-0-minus1", "Reshape", (2, 3, 4), I64(0, -1)),
    case("reshape-0-0-2-minus1", "Reshape", (2, 3, 4), I64(0, 0, 2, -1)),
    case("reshape-minus1-4", "Reshape", (2, 3, 4), I64(-1, 4)),
    case("reshape-bool", "Reshape", In((2, 3, 4), "bool"), I64(4, 6)),
    *[case(f"flatten-axis{a}", "Flatten", (2, 3, 4), axis=a) for a in (0, 1, 2, 3, -1)],
    case("squeeze-axes", "Squeeze", (2, 1, 3, 1), I64(1)),
    case("squeeze-all", "Squeeze", (2, 1, 3, 1)),
    case("squeeze-negative", "Squeeze", (2, 1, 3, 1), I64(-1, 1)),
    case("squeeze-11-attr", "Squeeze", (2, 1, 3, 1), axes=[3], opset=11),
    case("unsqueeze-11-attr", "Unsqueeze", (2, 3), axes=[1, -1], opset=11),
    case("unsqueeze", "Unsqueeze", (2, 3), I64(0, 3)),
    case("unsqueeze-negative", "Unsqueeze", (2, 3), I64(-1)),
    case("transpose-default", "Transpose", (2, 3, 4)),
    case("transpose-perm", "Transpose", (2, 3, 4), perm=[1, 2, 0]),
    case("transpose-4d-int64", "Transpose", In((2, 3, 4, 5), "int64"), perm=[0, 2, 3, 1]),
    case("transpose-bool", "Transpose", In((2, 3, 4), "bool"), perm=[2, 0, 1]),
    case("concat-inputs", "Concat", (2, 3), (2, 4), axis=1),
    case("concat-const-neg-axis", "Concat", (2, 3, 2), W(2, 3, 1), (2, 3, 3), axis=-1),
    case("concat-axis0-int32", "Concat", In((1, 3), "int32"), np.arange(6, dtype=np.int32).reshape(2, 3), axis=0),
    case("concat-bool", "Concat", In((2, 2), "bool"), np.array([[True], [False]]), axis=1),
    case("split-equal", "Split", (2, 6, 3), axis=1, outs=3),
    case("split-sizes", "Split", (2, 6, 3), I64(1, 2, 3), axis=1, outs=3),
    case("split-negative-axis", "Split", (2, 6, 5), I64(4, 1), axis=-1, outs=2),
    case("split-18-num-outputs-uneven", "Split", (2, 7), axis=1, num_outputs=3, outs=3, opset=18),
    case("slice-negative", "Slice", X4, I64(1, -4), I64(3, -1), I64(0, 1)),
    case("slice-steps", "Slice", X4, I64(0, 1, 4), I64(4, 6, 0), I64(0, 1, 2), I64(2, 3, -2)),
    case("slice-reverse", "Slice", X4, I64(-1), I64(-BIG), I64(1), I64(-1)),
    case("slice-reverse-step", "Slice", X4, I64(5, 10), I64(0, -10), I64(1, 0), I64(-2, -3)),
    case("slice-axes-subset", "Slice", X4, I64(2), I64(BIG), I64(-1)),
    case("slice-no-axes", "Slice", X4, I64(1, 2), I64(3, 5)),
    case("slice-clamped", "Slice", X4, I64(-100, 2), I64(100, 2000), I64(0, 2), I64(3, 1)),
    case("gather-const", "Gather", (5, 3), I64(0, 2, 4)),
    case("gather-contiguous", "Gather", (5, 3), I64(1, 2, 3)),
    case("gather-negative-axis1", "Gather", (2, 5, 3), I64(-1, 0, -3), axis=1),
    case("gather-scalar", "Gather", (2, 5, 3), np.array(-2, np.int64), axis=1),
    case("gather-2d-indices-axis2", "Gather", (2, 3, 5), I64(4, 0, 1, 1).reshape(2, 2), axis=-1),
    case("gather-runtime", "Gather", (6, 3), In((2, 4), "int64", lo=-6, hi=5)),
    case("gather-runtime-axis1-int32", "Gather", (2, 6, 3), In((5,), "int32", lo=-6, hi=5), axis=1),
    case("gather-embedding", "Gather", W(10, 4), In((3, 2), "int64", lo=0, hi=9)),
    case("pad", "Pad", (2, 3, 4), I64(0, 1, 2, 0, 2, 1), F32(1.5)),
    case("pad-18-axes", "Pad", (2, 3, 4), I64(1, 2, 0, 3), F32(0.5), I64(0, -1), opset=18),
    case("pad-value-input", "Pad", (2, 3), I64(1, 0, 0, 2), ()),
    *[case(f"pad-{m}", "Pad", (3, 4, 5), I64(0, 2, 1, 1, 3, 4), mode=m) for m in ("reflect", "edge")],
    case("pad-wrap-19", "Pad", (3, 4), I64(2, 1, 3, 4), mode="wrap", opset=19),
    case("pad-edge-negative", "Pad", (3, 5), I64(2, -1, -1, 3), mode="edge"),
    case("pad-no-value", "Pad", (2, 3), I64(1, 0, 0, 2)),
    case("pad-negative", "Pad", (3, 5), I64(-1, 2, 1, -2), F32(-1.0)),
    case("pad-int32", "Pad", In((2, 3), "int32"), I64(1, 1, 1, 1), np.array(7, np.int32)),
    case("expand", "Expand", (3, 1), I64(2, 3, 4)),
    case("expand-lower-rank-shape", "Expand", (1, 4), I64(3, 1)),
    case("expand-int64", "Expand", In((2, 1, 1), "int64"), I64(2, 1, 3, 1)),
    case("tile", "Tile", (2, 3, 1), I64(2, 1, 3)),
    case("tile-int32", "Tile", In((2, 3), "int32"), I64(1, 2)),
    case("tile-bool", "Tile", In((2, 3), "bool"), I64(2, 1)),
]
CAST = [
    case(f"cast-{src}-{dst}", "Cast", In((3, 8), src, **rng), to=helper.np_dtype_to_tensor_dtype(np.dtype(dst)))
    for src, dst, rng in [
        ("float32", "int32", dict(lo=-9, hi=9)), ("float32", "int64", dict(lo=-9, hi=9)),
        ("float32", "int8", dict(lo=-9, hi=9)), ("float32", "uint8", dict(lo=0, hi=200)),
        ("float32", "bool", dict(values=(0.0, -0.0, 0.5, -2, 1, 0, 3, 0) * 3)),
        ("float32", "float64", {}), ("int32", "float32", {}), ("int64", "int32", {}),
        ("int32", "int64", {}), ("int32", "bool", dict(lo=-1, hi=1)), ("bool", "float32", {}),
        ("bool", "int64", {}), ("uint8", "float32", dict(lo=0, hi=255)), ("int8", "int32", {}),
    ]
]


@pytest.mark.parametrize("c", TENSOR + CAST)
def test_tensor(c, tmp_path):
    check(c, tmp_path)


# ---- reductions -------------------------------------------------------------------------

REDUCE_ATTR = ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
               "ReduceSumSquare", "ReduceLogSumExp"]  # axes is an attribute until opset 18
RX = In((2, 3, 4), lo=0.2, hi=1.5)  # positive: ReduceLogSum is defined, products stay moderate
REDUCE = [
    case("sum-axis1", "ReduceSum", (2, 3, 4), I64(1)),
    case("sum-axes-keepdims0", "ReduceSum", (2, 3, 4), I64(0, -1), keepdims=0),
    case("sum-all", "ReduceSum", (2, 3, 4)),
    case("sum-all-keepdims0", "ReduceSum", (2, 3, 4), keepdims=0),
    case("sum-empty-noop", "ReduceSum", (2, 3, 4), I64(), noop_with_empty_axes=1),
    case("sum-noop-no-axes", "ReduceSum", (2, 3, 4), noop_with_empty_axes=1, keepdims=0),
    case("sum-11-attr-axes", "ReduceSum", (2, 3, 4), axes=[0, 2], keepdims=0, opset=11),
    case("sum-int64", "ReduceSum", In((3, 4), "int64"), I64(1), keepdims=0),
    multi("axis1", REDUCE_ATTR, RX, axes=[1]),
    multi("axes-0-2-keepdims0", REDUCE_ATTR, RX, axes=[0, -1], keepdims=0),
    multi("all", REDUCE_ATTR + ["ReduceLogSum"], RX),
    case("max-int32-neg-axis", "ReduceMax", In((3, 4), "int32"), axes=[-1], keepdims=0),
    case("mean-int32-truncates", "ReduceMean", In((3, 4), "int32"), axes=[1]),
    multi("minmax-uint8", ["ReduceMax", "ReduceMin"], In((3, 4), "uint8", lo=0, hi=255), axes=[1]),
    case("min-int32", "ReduceMin", In((3, 4), "int32"), axes=[0]),
    case("logsum-axis1", "ReduceLogSum", RX, axes=[1], keepdims=0),
    case("logsumexp-wide", "ReduceLogSumExp", In((3, 6), lo=-60, hi=60), axes=[1]),
    case("mean-18-axes-input", "ReduceMean", (2, 3, 4), I64(-1), opset=18, keepdims=0),
    case("max-18-noop", "ReduceMax", (2, 3, 4), opset=18, noop_with_empty_axes=1),
    case("argmax", "ArgMax", (3, 4, 5)),
    case("argmax-axis-1-keepdims0", "ArgMax", (3, 4, 5), axis=-1, keepdims=0),
    case("argmin-axis1", "ArgMin", (3, 4, 5), axis=1),
    case("argmax-last-ties", "ArgMax", In((4, 6), "int32", lo=0, hi=2), axis=1, select_last_index=1),
    case("argmin-last-ties", "ArgMin", In((4, 6), "int32", lo=0, hi=2), axis=0, select_last_index=1,
         keepdims=0),
    multi("arg-uint8", ["ArgMax", "ArgMin"], In((3, 4), "uint8", lo=0, hi=255), axis=1),
    multi("arg-int8-extremes", ["ArgMax", "ArgMin"], In((2, 3), "int8", values=(5, -128, 127, -128, 0, -1)), axis=1),
    case("argmax-first-ties", "ArgMax", In((4, 6), "int32", lo=0, hi=2), axis=1),
]


@pytest.mark.parametrize("c", REDUCE)
def test_reduce(c, tmp_path):
    check(c, tmp_path)


# ---- variants dgc refuses with a clean error ----------------------------------------------

UNSUPPORTED = [
    case("conv-3d", "Conv", (1, 2, 4, 4, 4), W(2, 2, 2, 2, 2)),
    case("maxpool-indices", "MaxPool", X8, kernel_shape=[2, 2], outs=2),
    # ONNX shape inference counts a 4th window starting past the input; onnxruntime does not.
    case("maxpool-ceil-window-past-end", "MaxPool", (1, 2, 9, 10), kernel_shape=[2, 2], strides=[3, 3],
         ceil_mode=1),
    case("reshape-runtime-shape", "Reshape", (2, 3), In((2,), "int64")),
    case("pad-reflect-too-wide", "Pad", (2, 3), I64(0, 3, 0, 0), mode="reflect"),
    case("dropout-training", "Dropout", (2, 3), F32(0.3), np.array(True)),
    case("batchnorm-training", "BatchNormalization", (2, 3), W(3), W(3), W(3), F32([1, 2, 3]),
         training_mode=1, outs=3),
]


@pytest.mark.parametrize("c", UNSUPPORTED)
def test_unsupported(c):
    with pytest.raises(dgc.DgcError, match="not supported|cannot be compiled|needs|static shape"):
        dgc.compile(build(c), "host", name="m")
