"""Index-driven ONNX ops: DepthToSpace/SpaceToDepth, Trilu, CumSum, EyeLike, OneHot.

Also home of `loop`, a linalg.generic builder whose body sees the iteration indices and may
read any captured tensor with `tensor.extract` (what Resize and the masks here are built on).
Attribute-like inputs (k, axis, depth, values) must be compile-time constants.
"""

from __future__ import annotations

import numpy as np

from ...ir import arith_d, element_type, ir, linalg_d, tensor_d, tensor_type
from ..emitter import etype_of, is_float, shape_of
from ..registry import Unsupported, lowers


def _index():
    return ir.IndexType.get()


def _iterators(n_par: int, n_red: int) -> ir.ArrayAttr:
    kinds = ["parallel"] * n_par + ["reduction"] * n_red
    return ir.ArrayAttr.get([ir.Attribute.parse(f"#linalg.iterator_type<{k}>") for k in kinds])


def scalar(etype: ir.Type, v) -> ir.Value:
    """A scalar constant of `etype` (inside a body)."""
    return arith_d.constant(etype, float(v) if is_float(etype) else int(v))


def zero(etype: ir.Type) -> ir.Value:
    return scalar(etype, 0)


def loop(e, out_shape, out_etype, body, inputs=(), dims=(), reduce=(), init=None) -> ir.Value:
    """One linalg.generic over `out_shape` (parallel) plus trailing reduction dims `reduce`.

    `inputs[i]` is read at the iteration dims `dims[i]` (dim positions). `body(ix, *scalars)`
    gets the iteration indices, one scalar per input and, when reducing, the accumulator
    (started from the scalar `init`, default 0); it returns the new output scalar.
    """
    out_shape, n = [int(d) for d in out_shape], len(out_shape) + len(reduce)
    maps = [ir.AffineMap.get(n, 0, [ir.AffineDimExpr.get(d) for d in ds]) for ds in dims]
    maps.append(ir.AffineMap.get(n, 0, [ir.AffineDimExpr.get(d) for d in range(len(out_shape))]))
    out = tensor_d.EmptyOp(out_shape, out_etype).result
    if reduce:
        out = linalg_d.fill(scalar(out_etype, init or 0), outs=[out])
    op = linalg_d.GenericOp([out.type], list(inputs), [out],
                            ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps]),
                            _iterators(len(out_shape), len(reduce)))
    block = op.regions[0].blocks.append(*[etype_of(v) for v in inputs], out_etype)
    with ir.InsertionPoint(block):
        ix = [linalg_d.IndexOp(d).result for d in range(n)]
        scalars = list(block.arguments)[: len(inputs) + (1 if reduce else 0)]
        linalg_d.YieldOp([body(ix, *scalars)])
    return op.result


def icmp(pred: str, a: ir.Value, b: ir.Value) -> ir.Value:
    return arith_d.cmpi(getattr(arith_d.CmpIPredicate, pred), a, b)


def iconst(v: int) -> ir.Value:
    return arith_d.constant(_index(), int(v))


# -- DepthToSpace / SpaceToDepth: one reshape, one transpose, one reshape -----------------

def _permute(cx, x, split, perm):
    """Reshape `x` to `split`, permute, reshape to the output (numpy when constant)."""
    if x.const is not None:
        return np.ascontiguousarray(x.const.reshape(split).transpose(perm)).reshape(cx.out_shape())
    e = cx.e
    return e.reshape(e.transpose(e.reshape(x.value, split), perm), cx.out_shape())


def _check_4d(cx, x):
    if x.rank != 4:
        raise Unsupported(f"{cx.node.op_type} needs a 4-D input, got rank {x.rank}")


@lowers("DepthToSpace", since=1)
@lowers("DepthToSpace", since=11)
@lowers("DepthToSpace", since=13)
@lowers("DepthToSpace", since=28)
def depth_to_space(cx, x, *, blocksize, mode="DCR"):
    _check_4d(cx, x)
    b, c, h, w = x.shape
    bs = int(blocksize)
    if mode == "DCR":
        return _permute(cx, x, (b, bs, bs, c // (bs * bs), h, w), (0, 3, 4, 1, 5, 2))
    if mode == "CRD":
        return _permute(cx, x, (b, c // (bs * bs), bs, bs, h, w), (0, 1, 4, 2, 5, 3))
    raise Unsupported(f"DepthToSpace mode '{mode}' is not supported (DCR, CRD are)")


@lowers("SpaceToDepth", since=1)
@lowers("SpaceToDepth", since=13)
@lowers("SpaceToDepth", since=28)
def space_to_depth(cx, x, *, blocksize, mode="DCR"):
    _check_4d(cx, x)
    b, c, h, w = x.shape
    bs = int(blocksize)
    perm = {"DCR": (0, 3, 5, 1, 2, 4), "CRD": (0, 1, 3, 5, 2, 4)}.get(mode)
    if perm is None:
        raise Unsupported(f"SpaceToDepth mode '{mode}' is not supported (DCR, CRD are)")
    return _permute(cx, x, (b, c, h // bs, bs, w // bs, bs), perm)


# -- Trilu ---------------------------------------------------------------------------------

@lowers("Trilu", since=14)
def trilu(cx, x, k=None, *, upper=1):
    """Keep the elements with column - row >= k (upper) or <= k (lower) of the last two dims."""
    kk = int(k.const_list()[0]) if k is not None else 0
    if x.rank < 2:
        raise Unsupported(f"Trilu needs rank >= 2, got {x.rank}")
    if x.const is not None:
        return (np.triu if upper else np.tril)(x.const, kk)
    v, r = x.value, x.rank

    def body(ix, s):
        diag = arith_d.subi(ix[r - 1], ix[r - 2])
        keep = icmp("sge" if upper else "sle", diag, iconst(kk))
        return arith_d.select(keep, s, zero(etype_of(v)))
    return loop(cx.e, x.shape, etype_of(v), body, [v], [list(range(r))])


# -- CumSum: log2(n) shifted adds (Hillis-Steele) --------------------------------------------

def _shift_add(e, y, axis, s, reverse, add=True):
    """y[i] + y[i - s] along `axis` (y[i + s] when reversed), 0 past the edge; or the shifted
    term alone when not `add`."""
    shp, et = shape_of(y), etype_of(y)

    def body(ix, v):
        i = ix[axis]
        if reverse:
            src = arith_d.addi(i, iconst(s))
            inside = icmp("slt", src, iconst(shp[axis]))
        else:
            src = arith_d.subi(i, iconst(s))
            inside = icmp("sge", i, iconst(s))
        at = ix[:axis] + [arith_d.select(inside, src, i)] + ix[axis + 1:len(shp)]
        t = arith_d.select(inside, tensor_d.extract(y, at), zero(et))
        if not add:
            return t
        return (arith_d.addf if is_float(et) else arith_d.addi)(v, t)
    return loop(e, shp, et, body, [y], [list(range(len(shp)))])


@lowers("CumSum", since=11)
@lowers("CumSum", since=14)
def cumsum(cx, x, axis, *, exclusive=0, reverse=0):
    if x.dtype == np.bool_:
        raise Unsupported("CumSum of bool is not defined")
    ax = int(axis.const_list()[0]) % x.rank
    y, n, s = x.value, x.shape[ax], 1
    while s < n:
        y = _shift_add(cx.e, y, ax, s, reverse)
        s *= 2
    if exclusive:
        y = _shift_add(cx.e, y, ax, 1, reverse, add=False)
    return y


# -- EyeLike, OneHot -------------------------------------------------------------------------

@lowers("EyeLike", since=9)
@lowers("EyeLike", since=22)
def eye_like(cx, x, *, dtype=None, k=0):
    """Only the input's shape matters: a compile-time constant."""
    if x.rank != 2:
        raise Unsupported(f"EyeLike needs a 2-D input, got rank {x.rank}")
    eye = np.eye(x.shape[0], x.shape[1], k=int(k), dtype=np.dtype(cx.out_dtype()))
    if eye.dtype == np.float64:  # the emitter's constants narrow f64 to f32
        return arith_d.constant(tensor_type(eye.shape, eye.dtype), ir.DenseElementsAttr.get(eye))
    return eye


def _as_i64(v: ir.Value, unsigned: bool) -> ir.Value:
    """An index-like scalar as i64 (floats truncate, as ONNX casts them)."""
    i64, t = ir.IntegerType.get_signless(64), v.type
    if is_float(t):
        return arith_d.fptosi(i64, v)
    if ir.IntegerType(t).width == 64:
        return v
    return (arith_d.extui if unsigned else arith_d.extsi)(i64, v)


@lowers("OneHot", since=9)
@lowers("OneHot", since=11)
@lowers("OneHot", since=28)
def one_hot(cx, indices, depth, values, *, axis=-1):
    d = int(depth.const_list()[0])
    off, on = np.asarray(values.const).ravel()[:2]
    r = indices.rank + 1
    ax = axis % r
    if indices.const is not None:
        idx = np.expand_dims(np.asarray(indices.const).astype(np.int64), ax)
        idx = np.where(idx < 0, idx + d, idx)
        hot = idx == np.arange(d).reshape([d if i == ax else 1 for i in range(r)])
        return np.where(hot, on, off).astype(values.dtype)
    out_dtype = np.int8 if values.dtype == np.bool_ else values.dtype
    et = element_type(out_dtype)
    i64 = ir.IntegerType.get_signless(64)

    def body(ix, v):
        i = _as_i64(v, indices.dtype.kind == "u")
        wrapped = arith_d.select(icmp("slt", i, arith_d.constant(i64, 0)),
                                 arith_d.addi(i, arith_d.constant(i64, d)), i)
        hot = icmp("eq", wrapped, arith_d.index_cast(i64, ix[ax]))
        return arith_d.select(hot, scalar(et, on), scalar(et, off))
    return loop(cx.e, cx.out_shape(), et, body, [indices.value], [[i for i in range(r) if i != ax]])
