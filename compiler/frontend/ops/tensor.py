"""Data-movement ONNX ops: reshape family, transpose, concat/split/slice, gather, pad, expand.

Shape-like inputs (shape, axes, starts/ends, pads, repeats) must be compile-time constants;
the loader folds the sub-graphs that compute them.
"""

from __future__ import annotations

import numpy as np

from ...ir import ir
from ..emitter import etype_of, shape_of
from ..registry import Unsupported, lowers
from .elementwise import cast_value
from .nn import broadcast_to

_I32 = lambda: ir.IntegerType.get_signless(32)  # noqa: E731


@lowers("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def reshape_like(cx, x, *rest, axis=1, axes=None, allowzero=0):
    shape = cx.out_shape()
    if x.const is not None:
        return x.const.reshape(shape)
    return cx.e.reshape(x.value, shape)


@lowers("Transpose")
def transpose(cx, x, *, perm=None):
    perm = list(perm) if perm is not None else list(reversed(range(x.rank)))
    if x.const is not None:
        return np.ascontiguousarray(x.const.transpose(perm))
    return cx.e.transpose(x.value, perm)


@lowers("Concat")
def concat(cx, *xs, axis):
    xs = [x for x in xs if x is not None and 0 not in x.shape] or list(xs[:1])
    axis = axis % xs[0].rank
    if len(xs) == 1:
        return xs[0].value
    vals = [cx.e.bool_i8(x.value) for x in xs]  # an i1 graph input next to stored i8 bools
    rt = ir.RankedTensorType.get(list(cx.out_shape()), etype_of(vals[0]))
    return cx.e.op("tosa.concat", vals, rt,
                   axis=ir.IntegerAttr.get(_I32(), axis))


@lowers("Split", since=13)
def split(cx, x, split=None, *, axis=0, num_outputs=None):
    axis = axis % x.rank
    n_out = len(cx.node.output)
    sizes = split.const_list() if split is not None else [cx.out_shape(i)[axis] for i in range(n_out)]
    outs, start = [], 0
    for size in sizes:
        begin = [0] * x.rank
        begin[axis] = start
        shp = list(x.shape)
        shp[axis] = int(size)
        outs.append(cx.e.slice(x.value, begin, shp) if size else np.zeros(shp, x.dtype))
        start += int(size)
    return outs


@lowers("Slice", since=10)
def slice_(cx, x, starts, ends, axes=None, steps=None):
    st, en = starts.const_list(), ends.const_list()
    ax = axes.const_list() if axes is not None else list(range(len(st)))
    sp = steps.const_list() if steps is not None else [1] * len(st)
    index = [slice(None)] * x.rank
    for s, e_, a, p in zip(st, en, ax, sp):
        index[a % x.rank] = slice(int(s), int(e_), int(p))
    if x.const is not None:
        return np.ascontiguousarray(x.const[tuple(index)])
    return _strided_slice(cx.e, x.value, [sl.indices(d) for sl, d in zip(index, x.shape)])


def _strided_slice(e, v, ranges):
    """Slice with per-axis (start, stop, step) as from slice.indices()."""
    begin, size, flips, steps = [], [], [], []
    for axis, (s, t, p) in enumerate(ranges):
        n = max(0, len(range(s, t, p)))
        if p < 0:  # take the reversed window, then reverse it
            lo = s + (n - 1) * p if n else 0
            begin.append(lo), size.append((n - 1) * -p + 1 if n else 0), flips.append(axis)
            steps.append(-p)
        else:
            begin.append(s if n else 0), size.append((n - 1) * p + 1 if n else 0), steps.append(p)
    v = e.slice(v, begin, size)
    for axis in flips:
        v = e.op("tosa.reverse", [v], v.type, axis=ir.IntegerAttr.get(_I32(), axis))
    if any(p != 1 for p in steps):
        v = e.subsample(v, steps)
    return v


@lowers("Gather")
def gather(cx, data, indices, *, axis=0):
    e = cx.e
    axis = axis % data.rank
    if indices.const is None:
        return _gather_dynamic(cx, data, indices, axis)
    idx = np.asarray(indices.const).astype(np.int64)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    if data.const is not None:
        return np.take(data.const, idx, axis=axis)
    flat = idx.ravel()
    if flat.size == 1 or (flat.size and np.all(np.diff(flat) == 1)):  # contiguous: one slice
        begin = [0] * data.rank
        begin[axis] = int(flat[0])
        size = list(data.shape)
        size[axis] = int(flat.size)
        return e.reshape(e.slice(data.value, begin, size), cx.out_shape())
    return _tosa_gather(cx, data, e.const(flat.astype(np.int32).reshape(1, -1)), axis)


def _tosa_gather(cx, data, ind, axis):
    """tosa.gather on data viewed as [outer, K, inner] with indices [1 or outer, W] (i32)."""
    e = cx.e
    outer = int(np.prod(data.shape[:axis]))
    inner = int(np.prod(data.shape[axis + 1:]))
    v = e.reshape(data.value, (outer, data.shape[axis], inner))
    width = shape_of(ind)[1]
    if outer != 1:
        ind = broadcast_to(e, ind, (outer, width))
    g = e.op("tosa.gather", [v, ind], ir.RankedTensorType.get([outer, width, inner], etype_of(v)))
    return e.reshape(g, cx.out_shape())


def _gather_dynamic(cx, data, indices, axis):
    """Run-time indices: wrap negatives, cast to i32 (out-of-range indices are undefined)."""
    e = cx.e
    iv = e.reshape(cast_value(e, indices.value, np.int32), (1, int(np.prod(indices.shape))))
    neg = e.elementwise("tosa.greater", e.const(np.zeros([1, 1], np.int32)), iv,
                        out_etype=ir.IntegerType.get_signless(1))
    wrapped = e.elementwise("tosa.add", iv, e.const(np.full([1, 1], data.shape[axis], np.int32)))
    c, a, b = e.rank_align(neg, wrapped, iv)
    iv = e.op("tosa.select", [c, a, b], iv.type)
    return _tosa_gather(cx, data, iv, axis)


@lowers("Pad", since=11)
def pad(cx, x, pads, constant_value=None, axes=None, *, mode="constant"):
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise Unsupported(f"Pad mode '{mode}' is not supported (constant, reflect, edge and wrap are)")
    p = [int(v) for v in pads.const_list()]
    ax = [a % x.rank for a in axes.const_list()] if axes is not None else list(range(x.rank))
    lo, hi = [0] * x.rank, [0] * x.rank
    for i, a in enumerate(ax):
        lo[a], hi[a] = p[i], p[i + len(ax)]
    e, v = cx.e, x.value
    if min(lo + hi) < 0:  # negative pads crop
        begin = [max(0, -d) for d in lo]
        size = [s + min(0, a) + min(0, b) for s, a, b in zip(x.shape, lo, hi)]
        v = e.slice(v, begin, size)
        lo, hi = [max(0, d) for d in lo], [max(0, d) for d in hi]
    if mode != "constant":
        for axis in range(x.rank):
            v = _pad_axis(e, v, axis, lo[axis], hi[axis], mode)
        return v
    if constant_value is None or constant_value.const is not None:
        return e.pad(v, lo, hi, constant_value.const.item() if constant_value is not None else 0)
    inside = np.pad(np.ones(shape_of(v), np.bool_), list(zip(lo, hi)))  # run-time pad value
    c, a, b = e.rank_align(e.bool_i1(e.const(inside)), e.pad(v, lo, hi), constant_value.value)
    return e.op("tosa.select", [c, a, b], ir.RankedTensorType.get(list(inside.shape), etype_of(v)))


def _pad_axis(e, v, axis, lo, hi, mode):
    """reflect/edge/wrap padding of one axis: slices of `v` concatenated around it."""
    n = shape_of(v)[axis]
    if max(lo, hi) > (n - 1 if mode == "reflect" else n) or (mode == "edge" and n == 0):
        raise Unsupported(f"Pad mode '{mode}' with pads ({lo}, {hi}) wider than the axis ({n})")

    def take(start, count, reverse=False, repeat=1):
        begin, size = [0] * len(shape_of(v)), list(shape_of(v))
        begin[axis], size[axis] = start, count
        s = e.slice(v, begin, size)
        if reverse and count > 1:
            s = e.op("tosa.reverse", [s], s.type, axis=ir.IntegerAttr.get(_I32(), axis))
        if repeat > 1:
            mult = [1] * len(size)
            mult[axis] = repeat
            size[axis] *= repeat
            s = e.op("tosa.tile", [s, e.shape_value(mult)], ir.RankedTensorType.get(size, etype_of(v)))
        return s
    parts = {"reflect": (lambda: take(1, lo, True), lambda: take(n - 1 - hi, hi, True)),
             "edge": (lambda: take(0, 1, repeat=lo), lambda: take(n - 1, 1, repeat=hi)),
             "wrap": (lambda: take(n - lo, lo), lambda: take(0, hi))}[mode]
    pieces = ([parts[0]()] if lo else []) + [v] + ([parts[1]()] if hi else [])
    if len(pieces) == 1:
        return v
    shp = list(shape_of(v))
    shp[axis] += lo + hi
    return e.op("tosa.concat", pieces, ir.RankedTensorType.get(shp, etype_of(v)),
                axis=ir.IntegerAttr.get(_I32(), axis))


@lowers("Expand")
def expand(cx, x, shape):
    out = cx.out_shape()
    if x.const is not None:
        return np.broadcast_to(x.const, out).copy()
    return broadcast_to(cx.e, x.value, tuple(out))


@lowers("Tile")
def tile(cx, x, repeats):
    reps = [int(r) for r in repeats.const_list()]
    if x.const is not None:
        return np.tile(x.const, reps)
    rt = ir.RankedTensorType.get(list(cx.out_shape()), etype_of(x.value))
    return cx.e.op("tosa.tile", [x.value, cx.e.shape_value(reps)], rt)


@lowers("Shape")
def shape(cx, x, *, start=0, end=None):
    return np.array(x.shape[slice(start, end)], dtype=np.int64)


@lowers("Size")
def size(cx, x):
    return np.array(int(np.prod(x.shape)), dtype=np.int64)


@lowers("Constant")
def constant(cx, *, value=None, value_float=None, value_floats=None, value_int=None,
             value_ints=None, sparse_value=None, value_string=None, value_strings=None):
    if value is not None:
        return np.asarray(value)
    for v, dt in ((value_float, np.float32), (value_floats, np.float32), (value_int, np.int64),
                  (value_ints, np.int64)):
        if v is not None:
            return np.array(v, dtype=dt)
    raise Unsupported("Constant of this kind (sparse/string) is not supported")


@lowers("ConstantOfShape")
def constant_of_shape(cx, shape, *, value=None):
    v = np.asarray(value).ravel() if value is not None else np.zeros(1, np.float32)
    return np.full([int(d) for d in shape.const_list()], v[0], dtype=v.dtype)


@lowers("Range")
def range_(cx, start, limit, delta):
    s, l_, d = (t.const_list()[0] for t in (start, limit, delta))
    return np.arange(s, l_, d, dtype=start.dtype)


__all__ = ["cast_value"]
