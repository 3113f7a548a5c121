"""ConvTranspose (1-D to 3-D).

Group 1 without dilation (the common decoder case) is tosa.transpose_conv2d, whose TOSA
decomposition multiplies no inserted zeros. Everything else is a regular convolution:
ConvTranspose(x, W) = Conv(z, W') where z is x with stride-1 zeros between its elements,
padded by (k_eff - 1 - pad) on each side (negative: cropped), and W' is W with input/output
channels swapped per group and the kernel flipped; nn.py's Conv lowering (1-D, 2-D) or
tosa.conv3d does the rest.
"""

from __future__ import annotations

import numpy as np

from ...ir import ir
from ..emitter import etype_of, shape_of
from ..registry import Tensor, Unsupported, lowers
from .nn import conv


def _pads(in_sizes, kernel, strides, dilations, out_pad, pads, auto_pad, output_shape):
    """(begin, end) pads per spatial dim, as the spec generates them from output_shape or
    auto_pad (SAME_UPPER puts the smaller half first), else the given ones."""
    n = len(in_sizes)
    if output_shape is None and auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        pads = list(pads) if pads and auto_pad != "VALID" else [0] * (2 * n)
        return pads[:n], pads[n:]
    want = list(output_shape)[-n:] if output_shape is not None else [i * s for i, s in zip(in_sizes, strides)]
    begin, end = [], []
    for i in range(n):
        k_eff = (kernel[i] - 1) * dilations[i] + 1
        total = strides[i] * (in_sizes[i] - 1) + out_pad[i] + k_eff - want[i]
        small = total // 2
        b = small if auto_pad == "SAME_UPPER" else total - small
        begin.append(b), end.append(total - b)
    return begin, end


def _dilate(e, v, strides):
    """NC(H)W value with stride-1 zeros inserted between the spatial elements."""
    if all(s == 1 for s in strides):
        return v
    shp = list(shape_of(v))
    nsp = len(strides)
    split = shp[:2] + [d for x, s in zip(shp[2:], strides) for d in (x, 1)]
    hi = [0, 0] + [p for s in strides for p in (0, s - 1)]
    v = e.pad(e.reshape(v, split), [0] * len(split), hi)
    full = shp[:2] + [x * s for x, s in zip(shp[2:], strides)]
    v = e.reshape(v, full)
    return e.slice(v, [0] * (2 + nsp), shp[:2] + [(x - 1) * s + 1 for x, s in zip(shp[2:], strides)])


def _crop(e, v, lo, hi):
    """Remove lo[i] / hi[i] spatial elements at the start / end (negative conv pads)."""
    if not any(lo) and not any(hi):
        return v
    shp = list(shape_of(v))
    size = shp[:2] + [d - a - b for d, a, b in zip(shp[2:], lo, hi)]
    return e.slice(v, [0, 0] + list(lo), size)


def _flipped_weight(e, w, group):
    """[C, M/g, k...] -> [M, C/g, k...] with the kernel reversed along every spatial axis."""
    c, mg, *k = w.shape
    shape = (group, c // group, mg, *k)
    perm = (0, 2, 1, *range(3, 3 + len(k)))
    out = (group * mg, c // group, *k)
    if w.const is not None:
        a = w.const.reshape(shape).transpose(perm).reshape(out)
        a = np.ascontiguousarray(a[(slice(None), slice(None)) + (slice(None, None, -1),) * len(k)])
        return Tensor(w.name, out, w.dtype, a, lambda: e.const(a))
    return Tensor(w.name, out, w.dtype, None, lambda: _flip_value(e, w.value, shape, perm, out))


def _flip_value(e, v, shape, perm, out):
    v = e.reshape(e.transpose(e.reshape(v, shape), perm), out)
    for axis in range(2, len(out)):
        v = e.op("tosa.reverse", [v], v.type, axis=ir.IntegerAttr.get(ir.IntegerType.get_signless(32), axis))
    return v


def _tosa_transpose_conv(cx, x, w, b, strides, begin, end):
    """group 1, no dilation: tosa.transpose_conv2d (its decomposition multiplies no
    inserted zeros); ONNX pads are negative TOSA out_pads, output_padding extends the end."""
    e = cx.e
    x4 = e.reshape(x.value, x.shape[:2] + (1,) * (4 - x.rank) + x.shape[2:])
    lift = (lambda v, fill: [fill, *v]) if x.rank == 3 else (lambda v, fill: list(v))  # 1-D: H = 1
    c, m, *k = w.shape
    k4, st, b4, e4 = lift(k, 1), lift(strides, 1), lift(begin, 0), lift(end, 0)
    if w.const is not None:
        wt = e.const(np.ascontiguousarray(w.const.reshape(c, m, *k4).transpose(1, 2, 3, 0)))
    else:
        wt = e.transpose(e.reshape(w.value, (c, m, *k4)), (1, 2, 3, 0))
    bias = b.value if b is not None else e.const(np.zeros([m], np.float32))
    xv = e.transpose(x4, (0, 2, 3, 1))
    n, ih, iw, _ = shape_of(xv)
    out = [(i - 1) * s + kk - p0 - p1 for i, s, kk, p0, p1 in zip((ih, iw), st, k4, b4, e4)]
    y = e.op("tosa.transpose_conv2d", [xv, wt, bias, e.zp(xv), e.zp(wt)],
             ir.RankedTensorType.get([n, *out, m], etype_of(xv)),
             out_pad=[-b4[0], -e4[0], -b4[1], -e4[1]], stride=st, acc_type=etype_of(xv))
    return e.reshape(e.transpose(y, (0, 3, 1, 2)), cx.out_shape())


def _conv3d(cx, z, wt, b, dil, group, pads):
    """Stride-1 tosa.conv3d (NDHWC) of the dilated input, one per group, concatenated."""
    e = cx.e
    xv = e.transpose(z, (0, 2, 3, 4, 1))
    n, *sp, c = shape_of(xv)
    cout, gin, *k = wt.shape
    gout = cout // group
    out = [d + p0 + p1 - (kk - 1) * dl for d, p0, p1, kk, dl in zip(sp, pads[:3], pads[3:], k, dil)]
    bias = b.value if b is not None else e.const(np.zeros([cout], np.float32))
    w5 = e.transpose(wt.value, (0, 2, 3, 4, 1))
    parts = []
    for g in range(group):
        xs = e.slice(xv, [0, 0, 0, 0, g * gin], [n, *sp, gin])
        ws = e.slice(w5, [g * gout, 0, 0, 0, 0], [gout, *k, gin])
        parts.append(e.op("tosa.conv3d", [xs, ws, e.slice(bias, [g * gout], [gout]), e.zp(xs), e.zp(ws)],
                          ir.RankedTensorType.get([n, *out, gout], etype_of(xv)),
                          pad=[p for pair in zip(pads[:3], pads[3:]) for p in pair], stride=[1, 1, 1],
                          dilation=dil, acc_type=etype_of(xv)))
    y = parts[0] if group == 1 else e.op(
        "tosa.concat", parts, ir.RankedTensorType.get([n, *out, cout], etype_of(xv)),
        axis=ir.IntegerAttr.get(ir.IntegerType.get_signless(32), 4))
    return e.reshape(e.transpose(y, (0, 4, 1, 2, 3)), cx.out_shape())


@lowers("ConvTranspose", notes="1-D, 2-D and 3-D")
def conv_transpose(cx, x, w, b=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                   output_padding=None, output_shape=None, pads=None, strides=None):
    e = cx.e
    nd = x.rank - 2
    if nd not in (1, 2, 3):
        raise Unsupported(f"ConvTranspose with {nd} spatial dimensions is not supported (1-D to 3-D are)")
    kernel = list(w.shape[2:])
    st, dil = list(strides or [1] * nd), list(dilations or [1] * nd)
    out_pad = list(output_padding or [0] * nd)
    begin, end = _pads(x.shape[2:], kernel, st, dil, out_pad, pads, auto_pad, output_shape)
    sizes = [s * (i - 1) + o + (k - 1) * d + 1 - p0 - p1
             for s, i, o, k, d, p0, p1 in zip(st, x.shape[2:], out_pad, kernel, dil, begin, end)]
    if sizes != list(cx.out_shape()[2:]):
        raise Unsupported(f"ConvTranspose: the pads give {sizes} output sizes, the model declares "
                          f"{list(cx.out_shape()[2:])}")
    if nd < 3 and group == 1 and all(d == 1 for d in dil) and all(p < k for p, k in zip(begin + end, kernel + kernel)):
        return _tosa_transpose_conv(cx, x, w, b, st, begin, [p - o for p, o in zip(end, out_pad)])
    lo = [(k - 1) * d - p for k, d, p in zip(kernel, dil, begin)]
    hi = [(k - 1) * d - p + o for k, d, p, o in zip(kernel, dil, end, out_pad)]
    z = _crop(e, _dilate(e, x.value, st), [max(0, -p) for p in lo], [max(0, -p) for p in hi])
    zt = Tensor(x.name, tuple(shape_of(z)), x.dtype, None, lambda: z)
    conv_pads = [max(0, p) for p in lo] + [max(0, p) for p in hi]
    if nd == 3:
        return _conv3d(cx, z, _flipped_weight(e, w, group), b, dil, group, conv_pads)
    return conv(cx, zt, _flipped_weight(e, w, group), b, dilations=dil, group=group, pads=conv_pads)
