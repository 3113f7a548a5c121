"""onnxruntime's com.microsoft quantized ops: QLinearAdd, QLinearAveragePool,
QLinearGlobalAveragePool, QGemm, QLinearSoftmax.

onnxruntime's quantizer writes them in the QOperator format, and dgc's QDQ fusion
(`passes/qdq.py`) turns DQ -> Add/AveragePool/GlobalAveragePool -> Q into them. Adds and pools
run in integers only: (x - zero point), or the exact int32 window sums of it, is multiplied by
the float32 scale ratio onnxruntime uses written as an integer multiplier and a power of two
(int32 products for adds, see `add_multipliers`; int64 for pools, where the multiplier is
exact), then rounded half to even like onnxruntime's float rounding. The result equals
onnxruntime's except within ~2^-12 (adds) or ~2^-16 (pools) of a rounding tie, where float32
arithmetic itself rounds either way. Where onnxruntime adds the output zero point before rounding
(QLinearAdd, windowed QLinearAveragePool) or after (global pools), so does dgc: the two differ
at exact ties.

QLinearSoftmax dequantizes, runs the float softmax and quantizes (as onnxruntime does in float).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ...ir import arith_d, element_type, ir, linalg_d, tensor_d
from ..contrib import DOMAIN
from ..emitter import generic_map, shape_of
from ..registry import Tensor, Unsupported, lowers
from .nn import _softmax, fit_window, spatial_pads
from .quant import (_FLOAT_TYPES, _INT8, _as_int8, _checked, _f32, _int, _int_matmul, _multiplier,
                    _place_matrix, _requantize, _saturate)

def _c(bits: int, v: int):
    return arith_d.constant(ir.IntegerType.get_signless(bits), int(v))


def _c64(v: int):
    return _c(64, v)


def _const_scalar(t, what: str, kind=float):
    """A per-tensor quantization parameter's value; zero points default to 0."""
    if t is None:
        return kind(0)
    if t.const is None or np.asarray(t.const).size != 1:
        raise Unsupported(f"{what} '{t.name}' must be a compile-time constant scalar (per-tensor quantization)")
    v = np.asarray(t.const).ravel()[0]
    return np.float32(v) if kind is float else int(v)


def exact_fixed(scale: np.float32, max_shift: int = 40):
    """(M, shift) with scale == M * 2**-shift exactly (M < 2**24) for a float32 scale; past
    `max_shift` the multiplier loses low bits instead (rounded). None for scales >= 2**23."""
    s = float(np.float32(scale))
    if s <= 0 or not math.isfinite(s):
        return (0, 1) if s == 0 else None
    m, ex = math.frexp(s)  # s = m * 2**ex, 0.5 <= m < 1, m has at most 24 bits
    mult, shift = int(m * 2**24), 24 - ex
    if shift > max_shift:
        mult, shift = int(round(mult / 2.0 ** (shift - max_shift))), max_shift
    if shift < 1:
        return None
    return mult, shift


def _round_shift(acc, shift: int, zp: int, zp_first: bool, dtype, bits: int = 64):
    """acc * 2**-shift (an i`bits` value) rounded half to even, plus zp (added before rounding when
    `zp_first`, after it otherwise), saturated to `dtype` (int8/uint8)."""
    c = functools.partial(_c, bits)
    if zp_first and zp:
        acc = arith_d.addi(acc, c(zp << shift))
    odd = arith_d.andi(arith_d.shrsi(acc, c(shift)), c(1))
    y = arith_d.shrsi(arith_d.addi(arith_d.addi(acc, c((1 << (shift - 1)) - 1)), odd), c(shift))
    if not zp_first and zp:
        y = arith_d.addi(y, c(zp))
    info = np.iinfo(dtype)
    y = arith_d.maxsi(y, c(int(info.min)))
    y = arith_d.minsi(y, c(int(info.max)))
    return arith_d.trunci(ir.IntegerType.get_signless(8), y)


# -- QLinearAdd -------------------------------------------------------------------------------------

@lowers("QLinearAdd", domain=DOMAIN, notes="int8/uint8, per-tensor constant scales; integer-only (int32 fixed point)")
def qlinear_add(cx, a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale, c_zero_point=None):
    """c = saturate(roundeven((a - za) * sa/sc + (b - zb) * sb/sc + zc))."""
    dtype = _checked(cx.out_dtype(), _INT8, "QLinearAdd output")
    for t in (a, b):
        if np.dtype(t.dtype) != dtype:
            raise Unsupported(f"QLinearAdd input '{t.name}' is {np.dtype(t.dtype).name}, the output {dtype.name}")
    sa, sb, sc = (_const_scalar(t, "scale") for t in (a_scale, b_scale, c_scale))
    za, zb, zc = (_const_scalar(t, "zero point", int) for t in (a_zero_point, b_zero_point, c_zero_point))
    ratios = [np.float32(sa / sc), np.float32(sb / sc)]  # float32 divisions, as onnxruntime's
    if not all(math.isfinite(float(r)) and r >= 0 for r in ratios) or max(ratios) >= 2.0**20:
        raise Unsupported(f"QLinearAdd scale ratios {[float(r) for r in ratios]} are out of range")
    ma, mb, shift = add_multipliers(*ratios, zc)
    unsigned = dtype.kind == "u"

    def body(x, y):
        acc = arith_d.addi(arith_d.muli(arith_d.subi(_int(x, 32, unsigned), _c(32, za)), _c(32, ma)),
                           arith_d.muli(arith_d.subi(_int(y, 32, unsigned), _c(32, zb)), _c(32, mb)))
        return _round_shift(acc, shift, zc, True, dtype, bits=32)
    return generic_map(cx.e, [a.value, b.value], element_type(dtype), body)


def add_multipliers(ra: np.float32, rb: np.float32, zc: int):
    """(Ma, Mb, shift): ra ~ Ma * 2**-shift and rb ~ Mb * 2**-shift with the largest shift that
    keeps 255 * (Ma + Mb) + |zc| * 2**shift + 2**shift, the worst |accumulator| of a QLinearAdd,
    inside int32 - 32-bit products, which every core multiplies in one instruction and MVE/NEON
    4 at a time. A ratio with at most ~21 significant bits is exact; otherwise a result can move
    by one step only within ~2**-12 of a rounding tie (where onnxruntime's float32 also wobbles)."""
    ra, rb = float(ra), float(rb)
    budget = 2**31 - 1
    shift = 1
    while shift < 40 and 255 * (ra + rb) * 2.0 ** (shift + 1) + (abs(zc) + 2) * 2.0 ** (shift + 1) + 512 < budget:
        shift += 1
    return int(round(ra * 2.0**shift)), int(round(rb * 2.0**shift)), shift


# -- QLinearAveragePool / QLinearGlobalAveragePool ---------------------------------------------------

def _pool_params(cx, x, x_scale, x_zero_point, y_scale, y_zero_point, what: str):
    dtype = _checked(cx.out_dtype(), _INT8, f"{what} output")
    _checked(x.dtype, _INT8, f"{what} input")
    sx, sy = _const_scalar(x_scale, "scale"), _const_scalar(y_scale, "scale")
    zx, zy = _const_scalar(x_zero_point, "zero point", int), _const_scalar(y_zero_point, "zero point", int)
    return dtype, sx, sy, zx, zy


def _requant_sums(e, sums, counts, divisors, sx, sy, zx, zy, zp_first, dtype):
    """NHWC int32 window sums of raw int8 values -> `dtype`: (sum - zx * count) * sx / (sy *
    divisor), where count (non-pad elements) and divisor are numpy [OH, OW] integers."""
    scales = np.float32(sx) / (np.float32(sy) * divisors.astype(np.float32))
    fixed = [exact_fixed(s) for s in scales.ravel()]
    if any(f is None for f in fixed):
        raise Unsupported(f"pooling scale ratio {float(scales.max())} is out of range")
    mults = np.array([f[0] for f in fixed], np.int64).reshape(divisors.shape)
    shifts = np.array([f[1] for f in fixed], np.int64).reshape(divisors.shape)
    # one shift for every position (the largest); multipliers scale up to match, exactly
    shift = int(shifts.max())
    mults = mults << (shift - shifts)
    bias = -zx * counts.astype(np.int64)
    oh, ow = divisors.shape
    uniform = np.all(mults == mults.flat[0]) and np.all(bias == bias.flat[0])
    ins = [sums] if uniform else [sums, e.const(mults.reshape(1, oh, ow, 1)), e.const(bias.reshape(1, oh, ow, 1))]

    def body(s, *mb):
        m, b = (mb if mb else (_c64(int(mults.flat[0])), _c64(int(bias.flat[0]))))
        return _round_shift(arith_d.muli(arith_d.addi(_int(s, 64, False), b), m), shift, zy, zp_first, dtype)
    return generic_map(e, ins, element_type(dtype), body)


def _window_sums(e, xv, kernel, st, dil, begin, end, out):
    """NHWC int32 sums over each window of the int8 NHWC `xv`, zero padded."""
    xp = e.pad(xv, [0, begin[0], begin[1], 0], [0, end[0], end[1], 0], value=0)
    xp, end2 = fit_window(e, xp, [0, 0], [0, 0], out, kernel, st, dil)
    if any(end2):
        xp = e.pad(xp, [0, 0, 0, 0], [0, end2[0], end2[1], 0], value=0)
    n, _, _, c = shape_of(xp)
    i32 = ir.IntegerType.get_signless(32)
    init = linalg_d.fill(arith_d.constant(i32, 0), outs=[tensor_d.EmptyOp([n, *out, c], i32).result])
    window = tensor_d.EmptyOp(list(kernel), i32).result
    return linalg_d.pooling_nhwc_sum(xp, window, outs=[init], strides=list(st), dilations=list(dil))


def _counts(in_hw, kernel, st, dil, begin, end, out):
    """Non-pad elements in each window, [OH, OW]."""
    mask = np.pad(np.ones(in_hw, np.int64), [(begin[0], end[0]), (begin[1], end[1])])
    need = [(o - 1) * s + (k - 1) * d + 1 for o, s, k, d in zip(out, st, kernel, dil)]
    mask = np.pad(mask, [(0, max(0, need[0] - mask.shape[0])), (0, max(0, need[1] - mask.shape[1]))])
    count = np.zeros(out, np.int64)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            count += mask[i * dil[0]::st[0], j * dil[1]::st[1]][:out[0], :out[1]]
    return count


def _int_avg_pool(cx, x, dtype, sx, sy, zx, zy, kernel, st, dil, pads, auto_pad, ceil_mode, count_include_pad,
                  channels_last):
    e = cx.e
    nd = x.rank - 2
    if nd not in (1, 2):
        raise Unsupported(f"{nd}-D quantized average pooling is not supported (1-D and 2-D are)")
    xv, _ = _as_int8(e, x)
    zx8 = zx - 128 if x.dtype == np.uint8 else zx  # the int8 view's zero point
    xv = xv if not isinstance(xv, np.ndarray) else e.const(xv)
    shape = list(x.shape)
    if channels_last:  # N H W C -> N C H W bookkeeping only: the sums run on NHWC anyway
        shape = [shape[0], shape[-1], *shape[1:-1]]
    else:
        xv = e.transpose(xv, (0, 2, 3, 1) if nd == 2 else (0, 2, 1))
    if nd == 1:
        xv = e.reshape(xv, (shape[0], 1, shape[2], shape[1]))
        kernel, st, dil = [1, *kernel], [1, *st], [1, *dil]
        pads = [0, pads[0], 0, pads[1]] if pads else None
    in_hw = list(shape_of(xv)[1:3])
    begin, end, out = spatial_pads(in_hw, kernel, st, dil, pads, auto_pad, ceil_mode)
    sums = _window_sums(e, xv, kernel, st, dil, begin, end, out)
    counts = _counts(in_hw, kernel, st, dil, begin, end, out)
    global_like = list(kernel) == in_hw and not any(begin) and not any(end)
    divisors = np.full(out, int(np.prod(kernel))) if count_include_pad else counts
    y = _requant_sums(e, sums, counts, divisors, sx, sy, zx8, zy, not global_like, dtype)
    if nd == 1:
        y = e.reshape(y, (shape[0], out[1], shape[1]))
    if not channels_last:
        y = e.transpose(y, (0, 3, 1, 2) if nd == 2 else (0, 2, 1))
    return e.reshape(y, cx.out_shape())


@lowers("QLinearAveragePool", domain=DOMAIN, notes="int8/uint8, 1-D and 2-D, per-tensor constant scales; integer-only")
def qlinear_average_pool(cx, x, x_scale, x_zero_point, y_scale, y_zero_point=None, *, kernel_shape,
                         auto_pad="NOTSET", ceil_mode=0, channels_last=0, count_include_pad=0, pads=None,
                         strides=None):
    dtype, sx, sy, zx, zy = _pool_params(cx, x, x_scale, x_zero_point, y_scale, y_zero_point, "QLinearAveragePool")
    nd = len(kernel_shape)
    return _int_avg_pool(cx, x, dtype, sx, sy, zx, zy, list(kernel_shape), list(strides or [1] * nd), [1] * nd,
                         pads, auto_pad, ceil_mode, count_include_pad, channels_last)


@lowers("QLinearGlobalAveragePool", domain=DOMAIN, notes="int8/uint8, 1-D and 2-D; integer-only")
def qlinear_global_average_pool(cx, x, x_scale, x_zero_point, y_scale, y_zero_point=None, *, channels_last=0):
    dtype, sx, sy, zx, zy = _pool_params(cx, x, x_scale, x_zero_point, y_scale, y_zero_point,
                                         "QLinearGlobalAveragePool")
    spatial = list(x.shape[1:-1] if channels_last else x.shape[2:])
    nd = len(spatial)
    return _int_avg_pool(cx, x, dtype, sx, sy, zx, zy, spatial, [1] * nd, [1] * nd, None, "NOTSET", 0, 0,
                         channels_last)


# -- QGemm ------------------------------------------------------------------------------------------

def _transposed(e, t: Tensor) -> Tensor:
    if t.const is not None:
        c = np.ascontiguousarray(t.const.T)
        return Tensor(t.name, c.shape, t.dtype, c, lambda: e.const(c))
    return Tensor(t.name, tuple(reversed(t.shape)), t.dtype, None, lambda: e.transpose(t.value, (1, 0)))


@lowers("QGemm", domain=DOMAIN, notes="int8/uint8; int8/uint8 or float output")
def qgemm(cx, a, a_scale, a_zero_point, b, b_scale, b_zero_point, c=None, y_scale=None, y_zero_point=None, *,
          alpha=1.0, transA=0, transB=0):
    """Y = alpha * (A - za) (B - zb) * sa * sb + C * sa * sb (C int32), quantized when y_scale is given."""
    e = cx.e
    for t in (a, b):
        _checked(t.dtype, _INT8, "QGemm input")
    a = _transposed(e, a) if transA else a
    b = _transposed(e, b) if transB else b
    acc = _int_matmul(cx, a, b, a_zero_point, b_zero_point)
    if c is not None:
        _checked(c.dtype, ("int32",), "QGemm input C")
        acc = e.elementwise("tosa.add", acc, c.value)
    sa, sb = _place_matrix(e, a_scale, 2, "row"), _place_matrix(e, b_scale, 2, "col")
    if alpha != 1.0:
        if not isinstance(sa, np.ndarray):
            raise Unsupported("QGemm with alpha != 1 needs a constant a_scale")
        sa = (sa * np.float32(alpha)).astype(np.float32)
    if y_scale is None:
        one = np.ones([1, 1], np.float32)
        mult = _multiplier(e, sa, sb, one)
        f32 = ir.F32Type.get()
        return generic_map(e, [acc, mult if not isinstance(mult, np.ndarray) else e.const(mult)], f32,
                           lambda s, m: arith_d.mulf(_f32(s), m))
    dtype = _checked(cx.out_dtype(), _INT8, "QGemm output")
    _checked(y_scale.dtype, _FLOAT_TYPES, "QGemm y_scale")
    mult = _multiplier(e, sa, sb, _place_matrix(e, y_scale, 2, "row"))
    return _requantize(e, acc, mult, _place_matrix(e, y_zero_point, 2, "row"), dtype)


# -- QLinearSoftmax ---------------------------------------------------------------------------------

@lowers("QLinearSoftmax", domain=DOMAIN, notes="int8/uint8; computed in float32")
def qlinear_softmax(cx, x, x_scale, x_zero_point, y_scale, y_zero_point=None, *, axis=-1, opset=13):
    e = cx.e
    dtype = _checked(cx.out_dtype(), _INT8, "QLinearSoftmax output")
    _checked(x.dtype, _INT8, "QLinearSoftmax input")
    sx, sy = _const_scalar(x_scale, "scale"), _const_scalar(y_scale, "scale")
    zx, zy = _const_scalar(x_zero_point, "zero point", int), _const_scalar(y_zero_point, "zero point", int)
    f32, unsigned = ir.F32Type.get(), x.dtype == np.uint8
    i32 = ir.IntegerType.get_signless(32)
    v = generic_map(e, [x.value], f32, lambda s: arith_d.mulf(
        _f32(arith_d.subi(_int(s, 32, unsigned), arith_d.constant(i32, zx))), arith_d.constant(f32, float(sx))))
    axis = axis % x.rank
    if opset < 13:  # softmax over the flattened trailing dims
        rows = int(np.prod(x.shape[:axis]))
        v = e.reshape(_softmax(e, e.reshape(v, (rows, int(np.prod(x.shape[axis:])))), 1), x.shape)
    else:
        v = _softmax(e, v, axis)
    return generic_map(e, [v], element_type(dtype), lambda s: _saturate(
        arith_d.divf(s, arith_d.constant(f32, float(sy))), arith_d.constant(i32, zy), dtype))
