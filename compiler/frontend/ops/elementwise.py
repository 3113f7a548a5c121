"""Elementwise ONNX ops: arithmetic, comparisons, activations, casts (NumPy broadcasting)."""

from __future__ import annotations

import numpy as np

from ...ir import arith_d, element_type, ir, math_d
from ..emitter import etype_of, generic_map, is_float, shape_of
from ..registry import Unsupported, lowers

_BINARY = {"Add": "tosa.add", "Sub": "tosa.sub", "Mul": "tosa.mul",
           "BitwiseAnd": "tosa.bitwise_and", "BitwiseOr": "tosa.bitwise_or",
           "BitwiseXor": "tosa.bitwise_xor"}
_UNARY = {"Exp": "tosa.exp", "Log": "tosa.log", "Tanh": "tosa.tanh", "Sigmoid": "tosa.sigmoid",
          "Erf": "tosa.erf", "Abs": "tosa.abs", "Neg": "tosa.negate", "Floor": "tosa.floor",
          "Ceil": "tosa.ceil", "Sin": "tosa.sin", "Cos": "tosa.cos",
          "Reciprocal": "tosa.reciprocal", "BitwiseNot": "tosa.bitwise_not"}
# op -> arith predicates for (float, signed, unsigned) operands
_COMPARE = {"Equal": ("OEQ", "eq", "eq"), "Greater": ("OGT", "sgt", "ugt"),
            "GreaterOrEqual": ("OGE", "sge", "uge"), "Less": ("OLT", "slt", "ult"),
            "LessOrEqual": ("OLE", "sle", "ule")}
_LOGIC = {"And": arith_d.andi, "Or": arith_d.ori, "Xor": arith_d.xori}


def _i1():
    return ir.IntegerType.get_signless(1)


def _i8():
    return ir.IntegerType.get_signless(8)


for _op, _tosa in _BINARY.items():
    def _binary(cx, a, b, *, _tosa=_tosa):
        return cx.e.elementwise(_tosa, a.value, b.value)
    lowers(_op, since=1)(_binary)

for _op, _tosa in _UNARY.items():
    def _unary(cx, x, *, _tosa=_tosa):
        return cx.e.unary(_tosa, x.value)
    lowers(_op, since=1)(_unary)

# Comparisons and logic ops produce stored bools (i8) in one linalg.generic: an i1 tensor
# between ops would be materialized by fusion when it has several users, and a memref of
# i1 cannot be lowered. TOSA compares are signed; arith predicates also cover unsigned ints.
for _op, _preds in _COMPARE.items():
    def _compare(cx, a, b, *, _preds=_preds):
        e = cx.e
        x, y = e.bool_i8(a.value), e.bool_i8(b.value)
        if is_float(etype_of(x)):
            pred = getattr(arith_d.CmpFPredicate, _preds[0])
            return generic_map(e, [x, y], _i8(), lambda p, q: arith_d.extui(_i8(), arith_d.cmpf(pred, p, q)))
        pred = getattr(arith_d.CmpIPredicate, _preds[2] if a.dtype.kind == "u" else _preds[1])
        return generic_map(e, [x, y], _i8(), lambda p, q: arith_d.extui(_i8(), arith_d.cmpi(pred, p, q)))
    lowers(_op, since=1)(_compare)

for _op, _fn in _LOGIC.items():
    def _logic(cx, a, b, *, _fn=_fn):
        e = cx.e
        return generic_map(e, [e.bool_i8(a.value), e.bool_i8(b.value)], _i8(), _fn)
    lowers(_op, since=1)(_logic)


@lowers("Not")
def not_(cx, x):
    e = cx.e
    return generic_map(e, [e.bool_i8(x.value)], _i8(), lambda p: arith_d.xori(p, arith_d.constant(_i8(), 1)))


@lowers("Div")
def div(cx, a, b):
    e = cx.e
    if is_float(etype_of(a.value)):
        if b.const is not None:
            return e.elementwise("tosa.mul", a.value, e.const((1.0 / b.const).astype(b.dtype)))
        return e.elementwise("tosa.mul", a.value, e.unary("tosa.reciprocal", b.value))
    # arith division at any width (tosa.intdiv is i32/i64 only), truncating like onnxruntime
    div_op = arith_d.divui if a.dtype.kind == "u" else arith_d.divsi
    return generic_map(e, [a.value, b.value], etype_of(a.value), lambda x, y: div_op(x, y))


@lowers("Pow")
def pow_(cx, base, exponent):
    """Base and exponent types may differ (opset 12+): the exponent takes the base's type."""
    e, bv = cx.e, base.value
    if is_float(etype_of(bv)):
        return e.elementwise("tosa.pow", bv, cast_value(e, exponent.value, base.dtype))
    if exponent.dtype.kind != "f":
        return _int_pow(e, bv, cast_value(e, exponent.value, base.dtype))
    if exponent.const is not None and np.all(exponent.const == np.trunc(exponent.const)):
        return _int_pow(e, bv, e.const(exponent.const.astype(base.dtype)))
    # int base, fractional float exponent: int(pow(float(b), x)); integral exponents stay exact
    xv = cast_value(e, exponent.value, np.float32)
    xi = cast_value(e, xv, base.dtype)
    frac = cast_value(e, e.elementwise("tosa.pow", cast_value(e, bv, np.float32), xv), base.dtype)
    integral = e.elementwise("tosa.equal", cast_value(e, xi, np.float32), xv, out_etype=_i1())
    return _select(e, integral, _int_pow(e, bv, xi), frac)


def _int_pow(e, b, x):
    """Exact integer power by square-and-multiply over every exponent bit (wrapping like C);
    a negative exponent truncates to 0 unless |base| == 1, as int(pow(b, x)) does."""
    et = etype_of(b)
    width = ir.IntegerType(et).width
    P = arith_d.CmpIPredicate

    def body(bs, xs):
        c = lambda v: arith_d.constant(et, v)  # noqa: E731
        neg = arith_d.cmpi(P.slt, xs, c(0))
        n = arith_d.select(neg, arith_d.subi(c(0), xs), xs)
        r, sq = c(1), bs
        for _ in range(width - 1):
            bit = arith_d.cmpi(P.ne, arith_d.andi(n, c(1)), c(0))
            r = arith_d.select(bit, arith_d.muli(r, sq), r)
            sq, n = arith_d.muli(sq, sq), arith_d.shrui(n, c(1))
        unit = arith_d.cmpi(P.eq, arith_d.muli(bs, bs), c(1))
        return arith_d.select(neg, arith_d.select(unit, r, c(0)), r)
    return generic_map(e, [b, x], et, body)


@lowers("Max", "Min", "Sum", "Mean")
def variadic(cx, *xs):
    op = cx.node.op_type
    if op in ("Max", "Min") and xs[0].dtype.kind == "u":  # TOSA's maximum/minimum are signed
        fn = arith_d.maxui if op == "Max" else arith_d.minui
        return _fold(xs[1:], xs[0].value, lambda acc, x: generic_map(cx.e, [acc, x.value], etype_of(acc), fn))
    name = {"Max": "tosa.maximum", "Min": "tosa.minimum", "Sum": "tosa.add", "Mean": "tosa.add"}[op]
    acc = _fold(xs[1:], xs[0].value, lambda acc, x: cx.e.elementwise(name, acc, x.value))
    if op == "Mean":
        acc = cx.e.elementwise("tosa.mul", acc, cx.e.scalar_like(1.0 / len(xs), acc))
    return acc


def _fold(items, acc, fn):
    for item in items:
        acc = fn(acc, item)
    return acc


@lowers("Sqrt")
def sqrt(cx, x):
    return generic_map(cx.e, [x.value], etype_of(x.value), lambda v: math_d.sqrt(v))


@lowers("Round")
def round_(cx, x):
    return generic_map(cx.e, [x.value], etype_of(x.value), lambda v: math_d.roundeven(v))


@lowers("Sign")
def sign(cx, x):
    e = cx.e
    v = x.value
    one, zero, m1 = (e.scalar_like(c, v) for c in (1, 0, -1))
    pos = e.elementwise("tosa.greater", v, zero, out_etype=_i1())
    neg = e.elementwise("tosa.greater", zero, v, out_etype=_i1())
    return _select(e, pos, one, _select(e, neg, m1, e.elementwise("tosa.mul", v, zero)))


def _select(e, cond, a, b):
    c, x, y = e.rank_align(cond, a, b)
    shape = np.broadcast_shapes(shape_of(c), shape_of(x), shape_of(y))
    return e.op("tosa.select", [c, x, y], ir.RankedTensorType.get(list(shape), etype_of(x)))


@lowers("Where")
def where(cx, cond, a, b):
    e = cx.e
    x, y = (e.bool_i8(t.value) for t in (a, b))

    def body(c, p, q):
        return arith_d.select(arith_d.cmpi(arith_d.CmpIPredicate.ne, c, arith_d.constant(_i8(), 0)), p, q)
    return generic_map(e, [e.bool_i8(cond.value), x, y], etype_of(x), body)


@lowers("Relu")
def relu(cx, x):
    v = x.value
    hi = np.finfo(np.float32).max if is_float(etype_of(v)) else np.iinfo(x.dtype).max
    return cx.e.clamp(v, 0, hi)


@lowers("Clip", since=11)
def clip(cx, x, lo=None, hi=None):
    e, v = cx.e, x.value
    if x.dtype.kind == "u":  # tosa.clamp compares signed
        for bound, fn in ((lo, arith_d.maxui), (hi, arith_d.minui)):
            v = generic_map(e, [v, bound.value], etype_of(v), fn) if bound is not None else v
        return v
    info = np.finfo(np.float32) if is_float(etype_of(v)) else np.iinfo(x.dtype)
    if (lo is None or lo.const is not None) and (hi is None or hi.const is not None):
        lov = info.min if lo is None else lo.const.item()
        hiv = info.max if hi is None else hi.const.item()
        return e.clamp(v, min(lov, hiv), hiv)  # min > max: everything becomes max, as min(max(x, lo), hi)
    if lo is not None:
        v = e.elementwise("tosa.maximum", v, lo.value)
    if hi is not None:
        v = e.elementwise("tosa.minimum", v, hi.value)
    return v


@lowers("Clip", since=1)
def clip_v6(cx, x, *, min=-3.4028234663852886e38, max=3.4028234663852886e38):
    return cx.e.clamp(x.value, min if min <= max else max, max)


@lowers("LeakyRelu")
def leaky_relu(cx, x, *, alpha=0.01):
    e, v = cx.e, x.value
    scaled = e.elementwise("tosa.mul", v, e.scalar_like(alpha, v))
    pos = e.elementwise("tosa.greater", v, e.scalar_like(0.0, v), out_etype=_i1())
    return _select(e, pos, v, scaled)


@lowers("PRelu")
def prelu(cx, x, slope):
    e, v = cx.e, x.value
    scaled = e.elementwise("tosa.mul", v, slope.value)
    pos = e.elementwise("tosa.greater", v, e.scalar_like(0.0, v), out_etype=_i1())
    return _select(e, pos, v, scaled)


def _affine(e, v, a, b):
    return e.elementwise("tosa.add", e.elementwise("tosa.mul", v, e.scalar_like(a, v)), e.scalar_like(b, v))


@lowers("HardSigmoid")
def hard_sigmoid(cx, x, *, alpha=0.2, beta=0.5):
    return cx.e.clamp(_affine(cx.e, x.value, alpha, beta), 0.0, 1.0)


@lowers("HardSwish")
def hard_swish(cx, x):
    e, v = cx.e, x.value
    return e.elementwise("tosa.mul", v, e.clamp(_affine(e, v, 1 / 6, 0.5), 0.0, 1.0))


@lowers("Elu")
def elu(cx, x, *, alpha=1.0):
    e, v = cx.e, x.value
    em1 = e.elementwise("tosa.sub", e.unary("tosa.exp", v), e.scalar_like(1.0, v))
    neg = e.elementwise("tosa.mul", em1, e.scalar_like(alpha, v))
    pos = e.elementwise("tosa.greater", v, e.scalar_like(0.0, v), out_etype=_i1())
    return _select(e, pos, v, neg)


@lowers("Selu")
def selu(cx, x, *, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875):
    v = elu(cx, x, alpha=alpha)
    return cx.e.elementwise("tosa.mul", v, cx.e.scalar_like(gamma, v))


@lowers("Softplus")
def softplus(cx, x):
    # log(1 + exp(x)) computed stably: max(x, 0) + log(1 + exp(-|x|))
    e, v = cx.e, x.value
    t = e.unary("tosa.exp", e.unary("tosa.negate", e.unary("tosa.abs", v)))
    lg = e.unary("tosa.log", e.elementwise("tosa.add", t, e.scalar_like(1.0, v)))
    return e.elementwise("tosa.add", e.clamp(v, 0.0, np.finfo(np.float32).max), lg)


@lowers("Softsign")
def softsign(cx, x):
    e, v = cx.e, x.value
    den = e.elementwise("tosa.add", e.unary("tosa.abs", v), e.scalar_like(1.0, v))
    return e.elementwise("tosa.mul", v, e.unary("tosa.reciprocal", den))


@lowers("Gelu", since=20)
def gelu(cx, x, *, approximate="none"):
    e, v = cx.e, x.value
    if approximate == "tanh":
        inner = e.elementwise("tosa.mul", v, e.elementwise(
            "tosa.add", e.scalar_like(1.0, v),
            e.elementwise("tosa.mul", e.elementwise("tosa.mul", v, v), e.scalar_like(0.044715, v))))
        t = e.unary("tosa.tanh", e.elementwise("tosa.mul", inner, e.scalar_like(np.sqrt(2 / np.pi), v)))
    else:
        t = e.unary("tosa.erf", e.elementwise("tosa.mul", v, e.scalar_like(1 / np.sqrt(2), v)))
    half = e.elementwise("tosa.mul", v, e.scalar_like(0.5, v))
    return e.elementwise("tosa.mul", half, e.elementwise("tosa.add", t, e.scalar_like(1.0, v)))


@lowers("Identity")
def identity(cx, x):
    return x.const if x.const is not None else x.value


@lowers("Dropout", since=12)
def dropout(cx, x, ratio=None, training_mode=None, *, seed=0):
    """Inference: the identity, with an all-true mask. Training drops at random: refused."""
    training = training_mode is not None and (training_mode.const is None or bool(training_mode.const))
    if training and (ratio is None or ratio.const is None or float(ratio.const) != 0.0):
        raise Unsupported("Dropout in training mode (random masks) is not supported")
    y = identity(cx, x)
    if len(cx.node.output) > 1 and cx.node.output[1]:
        return [y, np.ones(x.shape, np.bool_)]
    return y


@lowers("Dropout", since=1)
def dropout_v1(cx, x, *, is_test=0, ratio=0.5):
    """Before opset 12 (models the converter could not lift): inference, as onnxruntime runs it."""
    y = identity(cx, x)
    return [y, np.ones(x.shape, np.bool_)] if len(cx.node.output) > 1 and cx.node.output[1] else y


def cast_value(e, v, dst_dtype, src_unsigned=False, dst_unsigned=False):
    """Exact ONNX Cast semantics (float->int truncates), as one linalg.generic.

    A bool result is stored as i8 0/1 (see `Emitter.bool_i8`)."""
    src, dst = etype_of(v), element_type(dst_dtype)
    if src == dst:
        return v
    to_bool = isinstance(dst, ir.IntegerType) and ir.IntegerType(dst).width == 1
    out = ir.IntegerType.get_signless(8) if to_bool else dst

    def body(s):
        r = _convert(s, src, dst, src_unsigned, dst_unsigned)
        return arith_d.extui(out, r) if to_bool else r
    return generic_map(e, [v], out, body)


def _convert(s, src, dst, src_unsigned, dst_unsigned):
    """One scalar `s` of type `src` converted to `dst` with ONNX Cast semantics."""
    if is_float(src) and is_float(dst):
        wider = _fbits(dst) > _fbits(src)
        return arith_d.extf(dst, s) if wider else arith_d.truncf(dst, s)
    if is_float(src):
        if ir.IntegerType(dst).width == 1:
            return arith_d.cmpf(arith_d.CmpFPredicate.UNE, s, arith_d.constant(src, 0.0))
        return (arith_d.fptoui if dst_unsigned else arith_d.fptosi)(dst, s)
    sw = ir.IntegerType(src).width
    if is_float(dst):
        return (arith_d.uitofp if src_unsigned or sw == 1 else arith_d.sitofp)(dst, s)
    dw = ir.IntegerType(dst).width
    if dw == 1:
        return arith_d.cmpi(arith_d.CmpIPredicate.ne, s, arith_d.constant(src, 0))
    if dw < sw:
        return arith_d.trunci(dst, s)
    return (arith_d.extui if src_unsigned or sw == 1 else arith_d.extsi)(dst, s)


def _fbits(t):
    return {"f16": 16, "bf16": 16, "f32": 32, "f64": 64}[str(t)]


@lowers("Cast")
def cast(cx, x, *, to, saturate=1):
    dst = cx.out_dtype()
    if dst is None or np.dtype(dst).name not in {"float32", "float16", "float64", "int8", "uint8", "int16",
                                                  "uint16", "int32", "uint32", "int64", "uint64", "bool"}:
        raise Unsupported(f"Cast to ONNX type {to} is not supported")
    if x.const is not None:
        return x.const.astype(dst)
    return cast_value(cx.e, x.value, dst, x.dtype.kind == "u", np.dtype(dst).kind == "u")


@lowers("CastLike")
def cast_like(cx, x, like, *, saturate=1):
    return cast_value(cx.e, x.value, like.dtype, x.dtype.kind == "u", like.dtype.kind == "u")
