"""LRN (local response normalization across channels), as in AlexNet/GoogLeNet exports.

y = x / (bias + alpha / size * sum_{c' in window(c)} x[c']^2) ^ beta, window of `size`
channels centred on c (floor((size-1)/2) before, ceil((size-1)/2) after).
"""

from __future__ import annotations

from ..emitter import shape_of
from ..registry import Unsupported, lowers


@lowers("LRN")
def lrn(cx, x, *, size, alpha=0.0001, beta=0.75, bias=1.0):
    e = cx.e
    if x.rank < 3:
        raise Unsupported(f"LRN on a rank-{x.rank} input is not supported")
    v = x.value
    sq = e.elementwise("tosa.mul", v, v)
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    lo, hi = [0] * x.rank, [0] * x.rank
    lo[1], hi[1] = before, after
    padded = e.pad(sq, lo, hi)
    shp = list(shape_of(v))
    total = None
    for k in range(size):  # the window sum as `size` shifted channel slices
        start = [0] * x.rank
        start[1] = k
        part = e.slice(padded, start, shp)
        total = part if total is None else e.elementwise("tosa.add", total, part)
    base = e.elementwise("tosa.add", e.elementwise("tosa.mul", total, e.scalar_like(alpha / size, total)),
                         e.scalar_like(bias, total))
    denom = e.elementwise("tosa.pow", base, e.scalar_like(beta, base))
    return e.elementwise("tosa.mul", v, e.unary("tosa.reciprocal", denom))
