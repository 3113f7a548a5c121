"""Reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSumExp, ArgMax/ArgMin."""

from __future__ import annotations

import numpy as np

from ...ir import arith_d, ir, math_d
from ..emitter import etype_of, generic_map, is_float
from ..registry import lowers
from .elementwise import cast_value

_KIND = {"ReduceSum": "tosa.reduce_sum", "ReduceMean": "tosa.reduce_sum",
         "ReduceMax": "tosa.reduce_max", "ReduceMin": "tosa.reduce_min",
         "ReduceProd": "tosa.reduce_product", "ReduceL1": "tosa.reduce_sum",
         "ReduceL2": "tosa.reduce_sum", "ReduceSumSquare": "tosa.reduce_sum",
         "ReduceLogSumExp": "tosa.reduce_sum", "ReduceLogSum": "tosa.reduce_sum"}


def _axes(x, axes_input, axes_attr, noop):
    if axes_input is not None:
        axes = axes_input.const_list()
    elif axes_attr is not None:
        axes = list(axes_attr)
    else:
        axes = []
    if not axes:
        return [] if noop else list(range(x.rank))
    return sorted({int(a) % x.rank for a in axes})


def _empty_value(op, dtype):
    if dtype.kind == "f":
        lo, hi = -np.inf, np.inf
    else:
        lo, hi = (False, True) if dtype == np.bool_ else (np.iinfo(dtype).min, np.iinfo(dtype).max)
    return {"ReduceProd": 1, "ReduceMax": lo, "ReduceMin": hi, "ReduceLogSum": -np.inf,
            "ReduceLogSumExp": -np.inf, "ReduceMean": np.nan}.get(op, 0)


@lowers(*_KIND, since=1)
def reduce(cx, x, axes_in=None, *, axes=None, keepdims=1, noop_with_empty_axes=0):
    e, op = cx.e, cx.node.op_type
    ax = _axes(x, axes_in, axes, noop_with_empty_axes)
    if not ax:
        return x.value
    if any(x.shape[a] == 0 for a in ax):  # an empty reduction is the op's identity element
        return np.full(cx.out_shape(), _empty_value(op, x.dtype), dtype=x.dtype)
    v = x.value
    if op in ("ReduceL1",):
        v = e.unary("tosa.abs", v)
    if op in ("ReduceL2", "ReduceSumSquare"):
        v = e.elementwise("tosa.mul", v, v)
    unsigned = x.dtype.kind == "u" and op in ("ReduceMax", "ReduceMin")  # TOSA orders signed
    v = e.signed_order(v) if unsigned else v
    if op == "ReduceLogSumExp":
        mx = e.reduce("tosa.reduce_max", v, ax)
        s = e.reduce("tosa.reduce_sum", e.unary("tosa.exp", e.elementwise("tosa.sub", v, mx)), ax)
        y = e.elementwise("tosa.add", e.unary("tosa.log", s), mx)
    else:
        y = e.reduce(_KIND[op], v, ax)
        y = e.signed_order(y) if unsigned else y
    if op == "ReduceMean":
        count = int(np.prod([x.shape[a] for a in ax]))
        if is_float(etype_of(y)):
            y = e.elementwise("tosa.mul", y, e.scalar_like(1.0 / count, y))
        else:  # integer mean: the sum divided, truncating like onnxruntime
            div = arith_d.divui if x.dtype.kind == "u" else arith_d.divsi
            y = generic_map(e, [y, e.scalar_like(count, y)], etype_of(y), div)
    elif op == "ReduceL2":
        y = generic_map(e, [y], etype_of(y), lambda s: math_d.sqrt(s))
    elif op == "ReduceLogSum":
        y = e.unary("tosa.log", y)
    return e.reshape(y, cx.out_shape())


@lowers("ArgMax", "ArgMin")
def argmax(cx, x, *, axis=0, keepdims=1, select_last_index=0):
    e = cx.e
    axis = axis % x.rank
    v = x.value
    if select_last_index:
        v = e.op("tosa.reverse", [v], v.type, axis=ir.IntegerAttr.get(ir.IntegerType.get_signless(32), axis))
    if x.dtype.kind == "u":
        v = e.signed_order(v)  # tosa.argmax orders signed
    if cx.node.op_type == "ArgMin":  # reverse the order; ~x cannot overflow as -x does at INT_MIN
        v = e.unary("tosa.negate", v) if is_float(etype_of(v)) else e.unary("tosa.bitwise_not", v)
    shp = [d for i, d in enumerate(x.shape) if i != axis]
    i32 = ir.IntegerType.get_signless(32)
    idx = e.op("tosa.argmax", [v], ir.RankedTensorType.get(shp, i32),
               axis=ir.IntegerAttr.get(i32, axis))
    if select_last_index:
        idx = e.elementwise("tosa.sub", e.const(np.full([1] * len(shp), x.shape[axis] - 1, np.int32)), idx)
    return e.reshape(cast_value(e, idx, np.int64), cx.out_shape())
