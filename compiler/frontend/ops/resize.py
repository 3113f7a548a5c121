"""Resize (opsets 10-19) and Upsample: every mode as precomputed taps, one axis at a time.

Shapes are static and roi/scales/sizes constant, so per resized axis the source indices and
weights of every output position are computed here in float64, exactly as the ONNX reference
does (edge clamping, exclude_outside, antialias footprints, tf_crop_and_resize extrapolation).
The IR then only gathers: nearest is one `linalg.generic` reading `x` at precomputed indices for
all axes at once (exact for every dtype); linear/cubic resample one axis per generic as a
weighted sum over the taps, in f32.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ...ir import arith_d, element_type, ir, math_d, tensor_d
from ..emitter import etype_of, generic_map, is_float, shape_of
from ..registry import Unsupported, lowers
from .layout import loop

_COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                "asymmetric", "tf_crop_and_resize", "tf_half_pixel_for_nn")
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
_POLICIES = ("stretch", "not_larger", "not_smaller")


@dataclasses.dataclass(frozen=True)
class Spec:
    """How one Resize node maps output coordinates to input taps."""

    mode: str = "nearest"
    coord: str = "half_pixel"
    nearest: str = "round_prefer_floor"
    cubic_a: float = -0.75
    exclude_outside: bool = False
    antialias: bool = False
    extrapolation: float = 0.0


@dataclasses.dataclass
class Taps:
    """One resized axis: out[o] = sum_t w[o, t] * x[idx[o, t]], or `extrap` where masked."""

    axis: int
    idx: np.ndarray  # [out, taps] int
    w: np.ndarray | None  # [out, taps] float64; None for nearest (one tap, weight 1)
    masked: np.ndarray | None  # [out] bool: tf_crop_and_resize positions outside the input


# -- source coordinates and taps (numpy, float64) -----------------------------------------

def source_coords(coord, out_w, in_w, scale, roi):
    """x_original of every output index, and the extrapolation mask (tf_crop_and_resize)."""
    y, out_f = np.arange(out_w, dtype=np.float64), scale * in_w
    if coord == "align_corners":
        return (np.zeros(out_w) if out_f == 1 else y * (in_w - 1) / (out_f - 1)), None
    if coord == "asymmetric":
        return y / scale, None
    if coord == "tf_half_pixel_for_nn":
        return (y + 0.5) / scale, None
    if coord == "pytorch_half_pixel":
        return (np.full(out_w, -0.5) if out_f == 1 else (y + 0.5) / scale - 0.5), None
    if coord == "half_pixel":
        return (y + 0.5) / scale - 0.5, None
    if coord == "half_pixel_symmetric":
        offset = in_w / 2 * (1 - out_w / out_f)
        return offset + (y + 0.5) / scale - 0.5, None
    lo, hi = roi  # tf_crop_and_resize
    x = (np.full(out_w, (hi - lo) * (in_w - 1) / 2) if out_f == 1
         else y * (hi - lo) * (in_w - 1) / (out_f - 1)) + lo * (in_w - 1)
    return x, (x < 0) | (x > in_w - 1)


def _cubic(a, t):
    """The cubic convolution kernel at distances |t|."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def coefficients(spec: Spec, ratios, scale):
    """[out, taps] weights for the fractional positions `ratios` in (0, 1]."""
    r = ratios[:, None]
    if spec.mode == "nearest":
        return _nearest_coeffs(spec.nearest, ratios, scale)
    if spec.antialias:
        s = min(scale, 1.0)
        start = int(np.floor((-1 if spec.mode == "linear" else -2) / s) + 1)
        t = (np.arange(start, 2 - start) - r) * s
        c = np.clip(1 - np.abs(t), 0, 1) if spec.mode == "linear" else _cubic(spec.cubic_a, t)
        return c / c.sum(axis=1, keepdims=True)
    if spec.mode == "linear":
        return np.concatenate([1 - r, r], axis=1)
    return _cubic(spec.cubic_a, np.concatenate([r + 1, r, 1 - r, 2 - r], axis=1))


def _nearest_coeffs(mode, ratios, scale):
    """Two taps (floor, ceil) with one weight 1: which one the nearest_mode picks."""
    if mode == "simple":  # Resize-10 / Upsample: floor when upsampling, ceil when downsampling
        mode = "ceil" if scale < 1 else "floor"
    ceil = {"round_prefer_floor": ratios > 0.5, "round_prefer_ceil": ratios >= 0.5,
            "floor": np.zeros(ratios.shape, bool), "ceil": np.ones(ratios.shape, bool)}[mode]
    ceil = ceil | (ratios == 1)  # an integral position is its own neighbour
    return np.stack([~ceil, ceil], axis=1).astype(np.float64)


def axis_taps(spec: Spec, axis, in_w, out_w, scale, roi) -> Taps:
    """Source indices and weights along one axis (the reference's neighbour rules)."""
    x, masked = source_coords(spec.coord, out_w, in_w, scale, roi)
    fl = np.floor(x)
    ratios = np.where(x == fl, 1.0, x - fl)
    coeffs = coefficients(spec, ratios, scale)
    n = coeffs.shape[1]
    # the n (even) neighbours nearest to x; an integral x takes the window on its left
    idx = (fl - n // 2 + (x != fl)).astype(np.int64)[:, None] + np.arange(n)
    if spec.exclude_outside:
        coeffs = np.where((idx < 0) | (idx >= in_w), 0.0, coeffs)
        total = coeffs.sum(axis=1, keepdims=True)
        coeffs = coeffs / np.where(total == 0, 1.0, total)
    idx = np.clip(idx, 0, in_w - 1)
    if masked is not None and not masked.any():
        masked = None
    if spec.mode == "nearest":
        return Taps(axis, idx[np.arange(out_w), coeffs.argmax(axis=1)][:, None], None, masked)
    used = np.any(coeffs != 0, axis=0)  # e.g. linear at integral positions needs one tap
    return Taps(axis, idx[:, used], coeffs[:, used], masked)


# -- which axes change, to what size, with which scale --------------------------------------

def plan(shape, axes, scales, sizes, policy):
    """(axes, scales, output sizes) of the resized axes, as the reference derives them."""
    r = len(shape)
    axes = [int(a) % r for a in axes] if axes is not None else list(range(r))
    ins = [shape[a] for a in axes]
    if sizes is None:
        sc = [float(s) for s in scales]
        return axes, sc, [int(s * i) for s, i in zip(sc, ins)]
    sizes = [int(s) for s in sizes]
    sc = [o / i for o, i in zip(sizes, ins)]
    if policy == "stretch":
        return axes, sc, sizes
    s = min(sc) if policy == "not_larger" else max(sc)
    return axes, [s] * len(axes), [int(s * i + 0.5) for i in ins]


def all_taps(spec: Spec, shape, axes, scales, outs, roi) -> list[Taps]:
    """Taps of every axis that changes, in the order of `axes` (as the reference applies them)."""
    taps = []
    for k, (a, s, o) in enumerate(zip(axes, scales, outs)):
        pair = (0.0, 1.0)
        if spec.coord == "tf_crop_and_resize" and roi is not None:
            pair = (roi[k], roi[k + len(axes)])  # numpy scalars: the reference's float32 rounding
        if math.isclose(s, 1.0) and o == shape[a] and pair == (0.0, 1.0):
            continue
        taps.append(axis_taps(spec, a, shape[a], o, s, pair))
    return taps


# -- IR: gathers and weighted sums ------------------------------------------------------------

def _index_cast(i: ir.Value) -> ir.Value:
    return arith_d.index_cast(ir.IndexType.get(), i)


def gather_nearest(e, v, taps: list[Taps], out_shape) -> ir.Value:
    """out[i] = v[idx_a(i_a) for resized axes a, i elsewhere]: one generic, any dtype."""
    inputs = [e.const(t.idx[:, 0].astype(np.int32)) for t in taps]

    def body(ix, *ids):
        at = list(ix)
        for t, i in zip(taps, ids):
            at[t.axis] = _index_cast(i)
        return tensor_d.extract(v, at)
    return loop(e, out_shape, etype_of(v), body, inputs, [[t.axis] for t in taps])


def _to_f32(s: ir.Value, unsigned: bool) -> ir.Value:
    f32, t = ir.F32Type.get(), s.type
    if t == f32:
        return s
    if is_float(t):
        return (arith_d.extf if isinstance(t, ir.F16Type) else arith_d.truncf)(f32, s)
    return (arith_d.uitofp if unsigned else arith_d.sitofp)(f32, s)


def resample(e, v, t: Taps, unsigned=False) -> ir.Value:
    """One axis: out[o] = sum_k w[o, k] * v[idx[o, k]], accumulated in f32."""
    shp, r = list(shape_of(v)), len(shape_of(v))
    shp[t.axis] = t.idx.shape[0]
    inputs = [e.const(t.idx.astype(np.int32)), e.const(t.w.astype(np.float32))]

    def body(ix, i, w, acc):
        at = ix[:r]
        at[t.axis] = _index_cast(i)
        return arith_d.addf(acc, arith_d.mulf(w, _to_f32(tensor_d.extract(v, at), unsigned)))
    return loop(e, shp, ir.F32Type.get(), body, inputs, [[t.axis, r]] * 2, reduce=[t.idx.shape[1]])


def extrapolate(e, v, taps: list[Taps], value, dtype) -> ir.Value:
    """Positions outside the crop (of any of `taps`' axes) take `value`."""
    r = len(shape_of(v))
    mask = np.zeros([1] * r, bool)
    for t in taps:
        if t.masked is not None:
            mask = mask | t.masked.reshape([-1 if d == t.axis else 1 for d in range(r)])
    if not mask.any():
        return v
    fill = np.full([1] * r, np.round(value) if np.dtype(dtype).kind in "iu" else value, dtype)
    return e.op("tosa.select", [e.bool_i1(e.const(mask)), e.const(fill), v], v.type)


def from_f32(e, v, dtype) -> ir.Value:
    """f32 results back to the input dtype; integers round half to even and saturate."""
    dtype, et = np.dtype(dtype), element_type(dtype)
    if dtype == np.float32:
        return v
    if dtype.kind == "f":
        narrow = arith_d.truncf if dtype.itemsize < 4 else arith_d.extf
        return generic_map(e, [v], et, lambda s: narrow(et, s))
    info, f32 = np.iinfo(dtype), ir.F32Type.get()
    hi = np.float32(info.max)
    hi = np.nextafter(hi, np.float32(0)) if hi > info.max else hi

    def body(s):
        s = arith_d.maximumf(math_d.roundeven(s), arith_d.constant(f32, float(info.min)))
        s = arith_d.minimumf(s, arith_d.constant(f32, float(hi)))
        return (arith_d.fptoui if dtype.kind == "u" else arith_d.fptosi)(et, s)
    return generic_map(e, [v], et, body)


def apply(cx, x, spec: Spec, taps: list[Taps], out_shape) -> ir.Value:
    """Run the taps on `x` (a Tensor) and return a value of `out_shape` and x's dtype."""
    e = cx.e
    if tuple(out_shape) != tuple(cx.out_shape()):
        raise Unsupported(f"Resize output shape {tuple(out_shape)} disagrees with the "
                          f"inferred {tuple(cx.out_shape())}")
    if not taps:
        return x.value
    if spec.mode == "nearest":
        v = gather_nearest(e, x.value, taps, out_shape)
        return extrapolate(e, v, taps, spec.extrapolation, x.dtype if x.dtype != np.bool_ else np.int8)
    if x.dtype == np.bool_:
        raise Unsupported(f"Resize mode '{spec.mode}' of a bool tensor")
    v = x.value
    for t in taps:
        v = extrapolate(e, resample(e, v, t, x.dtype.kind == "u"), [t], spec.extrapolation, np.float32)
    return from_f32(e, v, x.dtype)


# -- the ops ---------------------------------------------------------------------------------

def _optional(t):
    """An optional constant input: None when absent or empty."""
    if t is None:
        return None
    a = np.asarray(t.const if t.const is not None else t.const_list())
    return a.ravel() if a.size else None


def _check(**choices):
    """Each attribute value must be one of its valid choices."""
    valid = {"mode": ("nearest", "linear", "cubic"), "coordinate_transformation_mode": _COORD_MODES,
             "nearest_mode": _NEAREST_MODES, "keep_aspect_ratio_policy": _POLICIES}
    for what, value in choices.items():
        if value not in valid[what]:
            choices = ", ".join(valid[what])
            raise Unsupported(f"Resize {what} '{value}' is not supported ({choices} are)")


@lowers("Resize", since=11)
def resize(cx, x, roi=None, scales=None, sizes=None, *, antialias=0, axes=None,
           coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75, exclude_outside=0,
           extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
           nearest_mode="round_prefer_floor"):
    _check(mode=mode, coordinate_transformation_mode=coordinate_transformation_mode,
           nearest_mode=nearest_mode, keep_aspect_ratio_policy=keep_aspect_ratio_policy)
    spec = Spec(mode, coordinate_transformation_mode, nearest_mode, float(cubic_coeff_a),
                bool(exclude_outside), bool(antialias), float(extrapolation_value))
    sc, sz = _optional(scales), _optional(sizes)
    if (sc is None) == (sz is None):
        raise Unsupported("Resize needs exactly one of scales and sizes")
    ax, sc, outs = plan(x.shape, axes, sc, sz, keep_aspect_ratio_policy)
    taps = all_taps(spec, x.shape, ax, sc, outs, _optional(roi))
    return apply(cx, x, spec, taps, _out_shape(x.shape, ax, outs))


def _out_shape(shape, axes, outs):
    out = list(shape)
    for a, o in zip(axes, outs):
        out[a] = o
    return out


def _by_scales(cx, x, scales, mode):
    """Resize-10 and Upsample: asymmetric coordinates, nearest rounds down (up when shrinking)."""
    _check(mode=mode)
    spec = Spec(mode, "asymmetric", "simple")
    ax, sc, outs = plan(x.shape, None, scales, None, "stretch")
    return apply(cx, x, spec, all_taps(spec, x.shape, ax, sc, outs, None), _out_shape(x.shape, ax, outs))


@lowers("Resize", since=10)
def resize_10(cx, x, scales, *, mode="nearest"):
    return _by_scales(cx, x, scales.const_list(), mode)


@lowers("Upsample", since=7)
@lowers("Upsample", since=9)
def upsample(cx, x, scales_in=None, *, mode="nearest", scales=None):
    """Upsample-7 takes `scales` as an attribute, Upsample-9 as an input."""
    sc = scales_in.const_list() if scales_in is not None else scales
    if sc is None:
        raise Unsupported("Upsample needs scales")
    return _by_scales(cx, x, sc, "linear" if mode == "bilinear" else mode)
