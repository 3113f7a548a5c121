"""Quantization ONNX ops: Quantize/Dequantize/DynamicQuantizeLinear, MatMulInteger, ConvInteger,
QLinearMatMul, QLinearConv.

Integer results are exact. Products accumulate in int32: on int8 TOSA matmul/conv2d with zero-point
operands when every zero point is a compile-time scalar, else on int32 operands from which the
zero points were subtracted. Requantization is one elementwise linalg.generic in float32 (as
onnxruntime's MLAS does): scale, round half to even, add the zero point, saturate.

uint8 and int8 are both i8 in MLIR, so signedness comes from the ONNX dtype. TOSA's integer ops
are signed: a uint8 operand becomes int8 by flipping its top bit (x ^ 0x80 == x - 128) and its zero
point moves by -128, which leaves every difference x - zero_point unchanged.
"""

from __future__ import annotations

import numpy as np

from ...ir import arith_d, element_type, ir, math_d
from ..emitter import etype_of, generic_map, shape_of
from ..registry import Unsupported, lowers
from .nn import broadcast_to, fit_window, repeat_channels, spatial_pads

_INT_TYPES = ("int8", "uint8", "int16", "uint16", "int32")
_FLOAT_TYPES = ("float32", "float16")
_INT8 = ("int8", "uint8")
_I8_ZP_SHIFT = -128  # uint8 -> int8 bit flip, as a zero-point shift
_TO_NHWC, _TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


def _checked(dtype, allowed, what: str) -> np.dtype:
    name = np.dtype(dtype).name if dtype is not None else "unknown"
    if name not in allowed:
        raise Unsupported(f"{what} of type {name} is not supported (supported: {', '.join(allowed)})")
    return np.dtype(dtype)


# -- scalar pieces for linalg.generic bodies ------------------------------------------------------

def _int(s, width: int, unsigned: bool):
    """An integer scalar widened (or narrowed) to `width` bits."""
    t, sw = ir.IntegerType.get_signless(width), ir.IntegerType(s.type).width
    if sw == width:
        return s
    if sw > width:
        return arith_d.trunci(t, s)
    return (arith_d.extui if unsigned else arith_d.extsi)(t, s)


def _f32(s):
    """A float16/float32 or signed integer scalar as f32."""
    f32 = ir.F32Type.get()
    if isinstance(s.type, ir.F32Type):
        return s
    return (arith_d.extf if isinstance(s.type, ir.F16Type) else arith_d.sitofp)(f32, s)


def _clampf(r, lo: float, hi: float):
    """Clamp with ordered compares, so NaN becomes `lo` (fptosi of NaN would be poison)."""
    P, f = arith_d.CmpFPredicate, lambda v: arith_d.constant(r.type, v)  # noqa: E731
    r = arith_d.select(arith_d.cmpf(P.OGE, r, f(lo)), r, f(lo))
    return arith_d.select(arith_d.cmpf(P.OLE, r, f(hi)), r, f(hi))


def _wide(dtype) -> int:
    """Bits of the integer arithmetic that saturates into `dtype` without overflowing."""
    return 64 if np.dtype(dtype).itemsize >= 4 else 32


def _saturate(r, zp, dtype):
    """roundeven(r) + zp saturated to `dtype`'s range; r is f32, zp an integer of _wide(dtype) bits."""
    info, w = np.iinfo(dtype), _wide(dtype)
    it = ir.IntegerType.get_signless(w)
    bound = float(2 ** (w - 2))  # exact in f32, and far outside every quantized range
    i = arith_d.fptosi(it, _clampf(math_d.roundeven(r), -bound, bound))
    if zp is not None:
        i = arith_d.addi(i, zp)
    i = arith_d.maxsi(i, arith_d.constant(it, int(info.min)))
    i = arith_d.minsi(i, arith_d.constant(it, int(info.max)))
    return _int(i, info.bits, False)


# -- scales and zero points -------------------------------------------------------------------------

def _v(e, p) -> ir.Value:
    """A placed parameter (numpy array when constant) as an SSA value."""
    return e.const(p) if isinstance(p, np.ndarray) else p


def _place_axis(e, t, shape, axis: int, block: int = 0):
    """Scale/zero point `t` broadcastable against a tensor of `shape`: per tensor, per `axis`, or
    blocked along `axis` (each entry repeated `block` times, the last block cut short)."""
    rank = len(shape)
    if int(np.prod(t.shape)) == 1:
        return _reshaped(e, t, (1,) * rank)
    if not block:
        if len(t.shape) != 1 or t.shape[0] != shape[axis]:
            raise Unsupported(f"per-axis parameter '{t.name}' of shape {list(t.shape)} does not match "
                              f"axis {axis} of the input shape {list(shape)}")
        return _reshaped(e, t, tuple(shape[axis] if i == axis else 1 for i in range(rank)))
    want_blocks = -(-shape[axis] // block)
    if len(t.shape) != rank or t.shape[axis] != want_blocks or any(
            d != s for i, (d, s) in enumerate(zip(t.shape, shape)) if i != axis):
        raise Unsupported(f"blocked parameter '{t.name}' of shape {list(t.shape)} does not match input "
                          f"shape {list(shape)} with block_size {block} on axis {axis}")
    if t.const is not None:
        return np.ascontiguousarray(np.repeat(t.const, block, axis).take(range(shape[axis]), axis))
    split = list(t.shape[:axis + 1]) + [1] + list(t.shape[axis + 1:])
    v = e.reshape(t.value, split)
    mult = [block if i == axis + 1 else 1 for i in range(rank + 1)]
    split[axis + 1] = block
    v = e.op("tosa.tile", [v, e.shape_value(mult)], ir.RankedTensorType.get(split, etype_of(v)))
    full = list(shape)
    full[axis] = want_blocks * block
    return e.slice(e.reshape(v, full), [0] * rank, list(shape))


def _reshaped(e, t, shape):
    if t.const is not None:
        return np.ascontiguousarray(np.asarray(t.const).reshape(shape))
    return e.reshape(t.value, shape)


def _place_matrix(e, t, rank: int, kind: str):
    """A matmul scale/zero point: scalar, a 1-D vector per row ('row') or per column ('col') of
    the last two axes, or an N-D tensor broadcast as is."""
    if t is None:
        return None
    if int(np.prod(t.shape)) == 1:
        return _reshaped(e, t, (1,) * rank)
    if len(t.shape) == 1:
        if rank < 2:
            raise Unsupported(f"'{t.name}': a per-row/column parameter needs a matrix operand")
        n = t.shape[0]
        return _reshaped(e, t, (1,) * (rank - 2) + ((n, 1) if kind == "row" else (1, n)))
    return _reshaped(e, t, t.shape)


def _uniform(t) -> bool:
    """An absent zero point, or a constant one with a single value (per tensor in effect)."""
    c = None if t is None or t.const is None else np.asarray(t.const).ravel()
    return t is None or (c is not None and c.size > 0 and bool(np.all(c == c[0])))


def _scalar(t) -> int:
    return 0 if t is None else int(np.asarray(t.const).ravel()[0])


def _multiplier(e, s1, s2, den):
    """The requantization factor s1 * s2 / den (placed scales) in the scales' float type, as the
    reference computes it; constants fold in numpy."""
    if all(isinstance(p, np.ndarray) for p in (s1, s2, den)):
        return np.ascontiguousarray(s1 * s2 / den)
    vals = [_v(e, p) for p in (s1, s2, den)]
    return generic_map(e, vals, etype_of(vals[0]), lambda a, b, c: arith_d.divf(arith_d.mulf(a, b), c))


def _fixed_point(scale: np.ndarray):
    """(int32 multiplier, int8 shift) per scale, scale ~= multiplier * 2**-shift with a 31-bit
    multiplier (TOSA rescale, scale32); None when a scale is out of that range."""
    s = np.asarray(scale, np.float64).ravel()
    if np.any(~np.isfinite(s)) or np.any(s < 0):
        return None
    m, ex = np.frexp(s)  # s = m * 2**ex, 0.5 <= m < 1
    mult = np.round(m * 2.0**31).astype(np.int64)
    top = mult == 1 << 31
    mult[top] //= 2
    ex[top] += 1
    shift = 31 - ex.astype(np.int64)
    tiny = shift > 62  # below 2**-31: fewer multiplier bits at the largest shift
    mult[tiny] = np.round(s[tiny] * 2.0**62).astype(np.int64)
    shift[tiny] = 62
    mult[s == 0], shift[s == 0] = 0, 31
    if np.any(shift < 2):
        return None
    return mult.astype(np.int32), shift.astype(np.int8)


def _rescale(e, acc, mult, zp, dtype):
    """int32 accumulator -> int8 in integer arithmetic only (tosa.rescale: multiply by a 31-bit
    fixed-point multiplier, shift with round-half-up, add the zero point, saturate), when the
    scales are constants per tensor or per last axis and the zero point is one constant; else
    None. Against a float32 multiply and round-half-even (onnxruntime) the result differs by at
    most one step, at exact ties."""
    shape = shape_of(acc)
    if dtype != np.int8 or not isinstance(mult, np.ndarray) or \
            (zp is not None and (not isinstance(zp, np.ndarray) or np.unique(zp).size != 1)):
        return None
    if mult.size == 1:
        per_channel = False
    elif mult.size == shape[-1] and mult.shape[-1] == shape[-1]:
        per_channel = True
    else:
        return None
    fixed = _fixed_point(mult)
    if fixed is None:
        return None
    zpv = 0 if zp is None else int(np.asarray(zp).ravel()[0])
    return e.op("tosa.rescale", [acc, e.const(fixed[0]), e.const(fixed[1]), e.const(np.zeros([1], np.int32)),
                                 e.const(np.array([zpv], np.int8))],
                ir.RankedTensorType.get(list(shape), ir.IntegerType.get_signless(8)), scale32=True,
                rounding_mode=ir.Attribute.parse("#tosa.rounding_mode<SINGLE_ROUND>"), per_channel=per_channel,
                input_unsigned=False, output_unsigned=False)


def _requantize(e, acc, mult, zp, dtype):
    """int32 accumulator * multiplier -> saturated `dtype`: integer-only (_rescale) where it
    applies, else a float32 multiply in one linalg.generic; the zero point has the output's
    type."""
    fixed = _rescale(e, acc, mult, zp, dtype)
    if fixed is not None:
        return fixed
    ins = [acc, _v(e, mult)] + ([_v(e, zp)] if zp is not None else [])

    def body(a, m, *z):
        r = arith_d.mulf(_f32(a), _f32(m))
        return _saturate(r, _int(z[0], 32, dtype.kind == "u") if z else None, dtype)
    return generic_map(e, ins, element_type(dtype), body)


# -- QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear ---------------------------------------

_PRECISION = {1: np.float32, 10: np.float16}


def _qdq_inputs(e, x, scale, zp, axis, block):
    ax = axis % x.rank if x.rank else 0
    return [x.value] + [_v(e, _place_axis(e, t, x.shape, ax, block)) for t in (scale, zp) if t is not None]


@lowers("QuantizeLinear", since=10, notes="per tensor/axis/block; 8/16-bit int outputs, no float8/int4")
def quantize_linear(cx, x, scale, zp=None, *, axis=1, saturate=1, block_size=0, output_dtype=0,
                    precision=0):
    """y = saturate(roundeven(x / scale) + zp); the division is a true division, in the
    precision the reference uses (numpy promotion of x and scale, or `precision`)."""
    e = cx.e
    dtype = _checked(cx.out_dtype(), _INT_TYPES, "QuantizeLinear output")
    _checked(x.dtype, _FLOAT_TYPES + ("int32",), "QuantizeLinear input")
    _checked(scale.dtype, _FLOAT_TYPES + ("int32",), "QuantizeLinear scale")
    if precision and precision not in _PRECISION:
        raise Unsupported(f"QuantizeLinear precision {precision} is not supported (float32 or float16)")
    ct = np.dtype(_PRECISION[precision]) if precision else np.result_type(x.dtype, scale.dtype)
    half = ct == np.float16
    ins = _qdq_inputs(e, x, scale, zp, axis, block_size)
    w, zu = _wide(dtype), dtype.kind == "u"

    def body(xs, ss, *z):
        a, b = _f32(xs), _f32(ss)
        if half:  # f16 / f16 in f32, rounded to f16, is the correctly rounded f16 quotient
            a, b = _round_f16(a), _round_f16(b)
        q = arith_d.divf(a, b)
        return _saturate(_round_f16(q) if half else q, _int(z[0], w, zu) if z else None, dtype)
    return generic_map(e, ins, element_type(dtype), body)


def _round_f16(v):
    return arith_d.extf(ir.F32Type.get(), arith_d.truncf(ir.F16Type.get(), v))


@lowers("DequantizeLinear", since=10, notes="per tensor/axis/block; 8/16/32-bit int inputs, no float8/int4")
def dequantize_linear(cx, x, scale, zp=None, *, axis=1, block_size=0, output_dtype=0):
    """y = (x - zp) * scale: the difference is exact in integers, the product in float32."""
    e = cx.e
    _checked(x.dtype, _INT_TYPES, "DequantizeLinear input")
    _checked(scale.dtype, _FLOAT_TYPES, "DequantizeLinear scale")
    out = _checked(cx.out_dtype(), _FLOAT_TYPES, "DequantizeLinear output")
    ins = _qdq_inputs(e, x, scale, zp, axis, block_size)
    w, xu = _wide(x.dtype) if zp is not None else 32, x.dtype.kind == "u"

    def body(xs, ss, *z):
        d = _int(xs, w, xu)
        if z:
            d = arith_d.subi(d, _int(z[0], w, xu))
        y = arith_d.mulf(_f32(d), _f32(ss))
        return arith_d.truncf(ir.F16Type.get(), y) if out == np.float16 else y
    return generic_map(e, ins, element_type(out), body)


@lowers("DynamicQuantizeLinear", since=11)
def dynamic_quantize_linear(cx, x):
    """uint8 quantization with scale and zero point from the run-time range of x (including 0)."""
    e = cx.e
    _checked(x.dtype, ("float32",), "DynamicQuantizeLinear input")
    axes, big = list(range(x.rank)), float(np.finfo(np.float32).max)
    hi = e.clamp(e.reduce("tosa.reduce_max", x.value, axes), 0.0, big)
    lo = e.clamp(e.reduce("tosa.reduce_min", x.value, axes), -big, 0.0)
    f = lambda v: arith_d.constant(ir.F32Type.get(), v)  # noqa: E731

    def scale_body(h, l):
        span = arith_d.select(arith_d.cmpf(arith_d.CmpFPredicate.OEQ, h, l), f(1.0), arith_d.subf(h, l))
        return arith_d.divf(span, f(255.0))
    scale = generic_map(e, [hi, lo], ir.F32Type.get(), scale_body)
    zp = generic_map(e, [lo, scale], ir.IntegerType.get_signless(8), lambda l, s: _saturate(
        _clampf(arith_d.subf(f(0.0), arith_d.divf(l, s)), 0.0, 255.0), None, np.uint8))
    y = generic_map(e, [x.value, scale, zp], ir.IntegerType.get_signless(8),
                    lambda xs, s, z: _saturate(arith_d.divf(xs, s), _int(z, 32, True), np.uint8))
    return [y, e.reshape(scale, cx.out_shape(1)), e.reshape(zp, cx.out_shape(2))]


# -- integer operands ---------------------------------------------------------------------------------

def _as_int8(e, t):
    """An int8/uint8 input as int8 (numpy when constant) and the zero-point shift that applied."""
    if t.dtype == np.int8:
        return (t.const if t.const is not None else t.value), 0
    if t.const is not None:
        return (t.const.astype(np.int16) + _I8_ZP_SHIFT).astype(np.int8), _I8_ZP_SHIFT
    return e.elementwise("tosa.bitwise_xor", t.value, e.const(np.array([-128], np.int8))), _I8_ZP_SHIFT


def _minus_zp(e, t, zp):
    """t - zp in int32 (numpy when both are constant); `zp` is placed against `t`."""
    tu = t.dtype.kind == "u"
    if t.const is not None and (zp is None or isinstance(zp, np.ndarray)):
        return t.const.astype(np.int32) - (0 if zp is None else zp.astype(np.int32))
    ins = [t.value] + ([_v(e, zp)] if zp is not None else [])

    def body(s, *z):
        d = _int(s, 32, tu)
        return arith_d.subi(d, _int(z[0], 32, tu)) if z else d
    return generic_map(e, ins, ir.IntegerType.get_signless(32), body)


def _operands(e, pairs, placed):
    """(value, zero point) per (tensor, zp tensor) pair: int8 with scalar zero points when every
    zero point is a constant scalar, else int32 with the zero points subtracted."""
    if all(_uniform(z) for _, z in pairs):
        out = []
        for t, z in pairs:
            v, shift = _as_int8(e, t)
            out.append((v, np.array([_scalar(z) + shift], np.int8)))
        return out
    return [(_minus_zp(e, t, p), np.array([0], np.int32)) for (t, _), p in zip(pairs, placed)]


# -- MatMulInteger / QLinearMatMul --------------------------------------------------------------------

def _int_matmul(cx, a, b, azp, bzp):
    """numpy-style matmul of (a - azp) and (b - bzp), exact in int32, shaped as the node's output."""
    e = cx.e
    placed = [_place_matrix(e, azp, a.rank, "row"), _place_matrix(e, bzp, b.rank, "col")]
    (av, za), (bv, zb) = _operands(e, [(a, azp), (b, bzp)], placed)
    av, bv = _v(e, av), _v(e, bv)
    av = e.reshape(av, (1, a.shape[0])) if a.rank == 1 else av
    bv = e.reshape(bv, (b.shape[0], 1)) if b.rank == 1 else bv
    (*ba, m, k), (*bb, _, n) = shape_of(av), shape_of(bv)
    if not bb or all(d == 1 for d in bb):  # [..., M, K] x [K, N]: one big matmul
        nb, m = 1, int(np.prod(ba, dtype=np.int64)) * m
    else:
        batch = tuple(np.broadcast_shapes(tuple(ba), tuple(bb)))
        av, bv = (broadcast_to(e, v, batch + shape_of(v)[-2:]) for v in (av, bv))
        nb = int(np.prod(batch, dtype=np.int64))
    y = e.op("tosa.matmul", [e.reshape(av, (nb, m, k)), e.reshape(bv, (nb, k, n)), e.const(za), e.const(zb)],
             ir.RankedTensorType.get([nb, m, n], ir.IntegerType.get_signless(32)))
    return e.reshape(y, cx.out_shape())


@lowers("MatMulInteger", since=10)
def matmul_integer(cx, a, b, a_zero_point=None, b_zero_point=None):
    for t in (a, b):
        _checked(t.dtype, _INT8, "MatMulInteger input")
    return _int_matmul(cx, a, b, a_zero_point, b_zero_point)


@lowers("QLinearMatMul", since=10, notes="int8/uint8; fixed-point requantization to int8 with constant scales")
def qlinear_matmul(cx, a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    e = cx.e
    dtype = _checked(cx.out_dtype(), _INT8, "QLinearMatMul output")
    for t, allowed in ((a, _INT8), (b, _INT8), (a_scale, _FLOAT_TYPES), (b_scale, _FLOAT_TYPES),
                       (y_scale, _FLOAT_TYPES)):
        _checked(t.dtype, allowed, f"QLinearMatMul input '{t.name}'")
    acc = _int_matmul(cx, a, b, a_zero_point, b_zero_point)
    rank = len(cx.out_shape())
    mult = _multiplier(e, _place_matrix(e, a_scale, a.rank, "row"), _place_matrix(e, b_scale, b.rank, "col"),
                       _place_matrix(e, y_scale, rank, "row"))
    return _requantize(e, acc, mult, _place_matrix(e, y_zero_point, rank, "row"), dtype)


# -- ConvInteger / QLinearConv ----------------------------------------------------------------------

def _window_2d(x, w, dilations, pads, strides):
    """Kernel, strides, dilations and pads as 2-D (a 1-D convolution gets H = 1)."""
    nd = x.rank - 2
    if nd not in (1, 2):
        raise Unsupported(f"{nd}-D integer convolution is not supported (1-D and 2-D are)")
    if nd == 2:
        return list(w.shape[2:]), list(strides or [1, 1]), list(dilations or [1, 1]), pads
    pads = [0, pads[0], 0, pads[1]] if pads else None
    return [1, *w.shape[2:]], [1, *(strides or [1])], [1, *(dilations or [1])], pads


def _as_4d(e, p, shape):
    """An N-C-(H)-W operand (numpy or value) with H = 1 inserted for 1-D."""
    shape = tuple(shape[:2]) + (1,) * (4 - len(shape)) + tuple(shape[2:])
    return p.reshape(shape) if isinstance(p, np.ndarray) else e.reshape(p, shape)


def _weight(e, wv, rows, shape, perm):
    """Rows [lo, hi) of a 4-D conv weight, reshaped to `shape` and permuted for TOSA."""
    lo, hi = rows
    if isinstance(wv, np.ndarray):
        return e.const(np.ascontiguousarray(wv[lo:hi].reshape(shape).transpose(perm)))
    v = e.slice(wv, [lo, 0, 0, 0], [hi - lo, *shape_of(wv)[1:]])
    return e.transpose(e.reshape(v, shape), perm)


def _int_conv(cx, x, w, xzp, wzp, bias, auto_pad, dilations, group, pads, strides):
    """NHWC int32 sums of (x - xzp) * (w - wzp) over each window, plus the int32 bias."""
    e = cx.e
    kshape, st, dil, pads = _window_2d(x, w, dilations, pads, strides)
    placed = [None if xzp is None else _place_axis(e, xzp, x.shape, 1),
              None if wzp is None else _place_axis(e, wzp, w.shape, 0)]
    (xv, zx), (wv, zw) = _operands(e, [(x, xzp), (w, wzp)], placed)
    xv, wv = _v(e, _as_4d(e, xv, x.shape)), _as_4d(e, wv, w.shape)
    begin, end, out = spatial_pads(list(shape_of(xv)[2:]), kshape, st, dil, pads, auto_pad)
    xv, end = fit_window(e, e.transpose(xv, _TO_NHWC), begin, end, out, kshape, st, dil)
    n, cin, cout = x.shape[0], x.shape[1], w.shape[0]
    b = bias.value if bias is not None else e.const(np.zeros([cout], np.int32))
    pad = [begin[0], end[0], begin[1], end[1]]
    if zx.dtype == np.int8 and zx[0] and not zw[0] and isinstance(wv, np.ndarray) and \
            (bias is None or bias.const is not None):
        # Fold the input zero point out of the inner loop: sum((x - zx) * w) = sum(x * w) - zx * sum(w),
        # exact when the padding holds zx too; the constant zx * sum(w) goes into the bias.
        wsum = wv.astype(np.int64).reshape(cout, -1).sum(axis=1)
        bias0 = np.zeros(cout, np.int64) if bias is None else bias.const.astype(np.int64).reshape(cout)
        folded = bias0 - int(zx[0]) * wsum
        if np.abs(folded).max(initial=0) < 2**31 and int(np.prod(w.shape[1:])) < 2**17:
            b = e.const(folded.astype(np.int32))
            xv = e.pad(xv, [0, begin[0], begin[1], 0], [0, end[0], end[1], 0],
                       value=int(zx[0]))
            pad, zx = [0, 0, 0, 0], np.array([0], np.int8)
    zps = [e.const(zx), e.const(zw)]
    kw = dict(pad=pad, stride=st, dilation=dil, acc_type=ir.IntegerType.get_signless(32))
    rt = lambda c: ir.RankedTensorType.get([n, *out, c], ir.IntegerType.get_signless(32))  # noqa: E731
    if group == 1:
        wt = _weight(e, wv, (0, cout), (cout, cin, *kshape), (0, 2, 3, 1))
        return e.op("tosa.conv2d", [xv, wt, b, *zps], rt(cout), **kw)
    if group == cin:  # depthwise, channel multiplier m
        m = cout // cin
        if m > 1:  # multiplier 1 over repeated input channels (nn.repeat_channels), on every
            # target: the HWCM form keeps a 5-D int32 accumulator whole, 4 bytes an output
            # against 1 an input for the copy (20x20x16, m = 2: arena 64,000 -> 28,288 B;
            # 5.1x fewer cycles on AArch64, 3.1x Cortex-M55, 1.9x M7, 1.4x M4, 1.05x M0+)
            xv, m = repeat_channels(e, xv, m), 1
        wt = _weight(e, wv, (0, cout), (cout // m, m, *kshape), (2, 3, 0, 1))
        return e.op("tosa.depthwise_conv2d", [xv, wt, b, *zps], rt(cout), **kw)
    gin, gout, parts = cin // group, cout // group, []
    _, h, w_, _ = shape_of(xv)
    for g in range(group):  # one conv2d per group on a channel slice
        xs = e.slice(xv, [0, 0, 0, g * gin], [n, h, w_, gin])
        wt = _weight(e, wv, (g * gout, (g + 1) * gout), (gout, gin, *kshape), (0, 2, 3, 1))
        parts.append(e.op("tosa.conv2d", [xs, wt, e.slice(b, [g * gout], [gout]), *zps], rt(gout), **kw))
    return e.op("tosa.concat", parts, rt(cout), axis=ir.IntegerAttr.get(ir.IntegerType.get_signless(32), 3))


def _nchw(cx, y):
    return cx.e.reshape(cx.e.transpose(y, _TO_NCHW), cx.out_shape())


@lowers("ConvInteger", since=10, notes="1-D and 2-D")
def conv_integer(cx, x, w, x_zero_point=None, w_zero_point=None, *, auto_pad="NOTSET", dilations=None,
                 group=1, kernel_shape=None, pads=None, strides=None):
    for t in (x, w):
        _checked(t.dtype, _INT8, "ConvInteger input")
    return _nchw(cx, _int_conv(cx, x, w, x_zero_point, w_zero_point, None, auto_pad, dilations, group,
                               pads, strides))


@lowers("QLinearConv", since=10, notes="1-D and 2-D; fixed-point requantization to int8 with constant scales")
def qlinear_conv(cx, x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B=None, *,
                 auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    e = cx.e
    for t in (x, w):
        _checked(t.dtype, _INT8, "QLinearConv input")
    dtype = _checked(cx.out_dtype(), _INT8, "QLinearConv output")
    acc = _int_conv(cx, x, w, x_zero_point, w_zero_point, B, auto_pad, dilations, group, pads, strides)
    shape = shape_of(acc)
    mult = _multiplier(e, _place_axis(e, x_scale, shape, 3), _place_axis(e, w_scale, shape, 3),
                       _place_axis(e, y_scale, shape, 3))
    zp = None if y_zero_point is None else _place_axis(e, y_zero_point, shape, 3)
    y = _requantize(e, acc, mult, zp, dtype)
    return _nchw(cx, y)
