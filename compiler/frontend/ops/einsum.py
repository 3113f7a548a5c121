"""Einsum: any equation, as diagonals + sums per operand, then pairwise batched matmuls.

Each operand first loses its repeated labels (diagonals, by strided subsampling), its
broadcast size-1 dims, and the labels no one else needs (reduce_sum). Operands are then
contracted left to right: [batch, M, K] x [batch, K, N] with tosa.matmul (floats), or
broadcast multiply + reduce_sum (integers, which tosa.matmul takes only as i8/i16).
"""

from __future__ import annotations

import numpy as np

from ...ir import ir
from ..emitter import etype_of, is_float, shape_of
from ..registry import Unsupported, lowers

_ELLIPSIS_LABELS = [chr(0x100 + i) for i in range(32)]  # never letters of an equation


def _parse(equation, ranks):
    """Label lists per operand and for the output, with '...' expanded to fresh labels."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise Unsupported(f"Einsum '{equation}' names {len(terms)} operands, got {len(ranks)}")
    n_ell = max([r - len(t.replace("...", "")) for t, r in zip(terms, ranks) if "..." in t] or [0])
    ins = [_expand(t, r - len(t.replace("...", "")), n_ell) for t, r in zip(terms, ranks)]
    if arrow:
        return ins, _expand(rhs, n_ell, n_ell)
    counts = {}
    for labels in ins:
        for c in labels:
            counts[c] = counts.get(c, 0) + 1
    once = sorted(c for c, n in counts.items() if n == 1 and c not in _ELLIPSIS_LABELS)
    return ins, _ELLIPSIS_LABELS[:n_ell] + once


def _expand(term, n, n_ell):
    """A term's labels; its '...' covers the last n of the n_ell broadcast labels."""
    head, dots, tail = term.partition("...")
    return list(head) + (_ELLIPSIS_LABELS[n_ell - n:n_ell] if dots else []) + list(tail)


def _diagonal(e, v, labels):
    """Remove repeated labels by taking diagonals of adjacent [n, n] axes."""
    while len(set(labels)) != len(labels):
        p = next(i for i, c in enumerate(labels) if labels.index(c) != i)
        first = labels.index(labels[p])
        order = [i for i in range(len(labels)) if i != p]
        order.insert(first + 1, p)
        v, labels = e.transpose(v, order), [labels[i] for i in order]
        v = _diag_axes(e, v, first)
        del labels[first + 1]
    return v, labels


def _diag_axes(e, v, axis):
    """The diagonal of axes (axis, axis+1), both of size n: of the n*n flattened elements
    every (n+1)-th, i.e. column 0 of the first (n-1)*(n+1) viewed as [n-1, n+1], plus the
    last element. (No padding: TOSA constants here would have to match f64/f16 too.)"""
    shp = list(shape_of(v))
    n, pre, post = shp[axis], shp[:axis], shp[axis + 2:]
    flat = e.reshape(v, pre + [n * n] + post)
    if n == 1:
        return flat
    zero = [0] * (len(pre) + 1 + len(post))
    head = e.slice(flat, zero, pre + [(n - 1) * (n + 1)] + post)
    head = e.reshape(head, pre + [n - 1, n + 1] + post)
    head = e.reshape(e.slice(head, zero + [0], pre + [n - 1, 1] + post), pre + [n - 1] + post)
    tail = e.slice(flat, zero[:axis] + [n * n - 1] + zero[axis + 1:], pre + [1] + post)
    return e.op("tosa.concat", [head, tail], ir.RankedTensorType.get(shp[:axis] + [n] + post, etype_of(v)),
                axis=ir.IntegerAttr.get(ir.IntegerType.get_signless(32), axis))


def _matmul(e, a, b):
    """tosa.matmul with zero points of the operands' own element type (f16/f64 too)."""
    et = etype_of(a)
    zt = ir.RankedTensorType.get([1], et)
    zp = e.op("tosa.const", [], zt, values=ir.DenseElementsAttr.get_splat(zt, ir.FloatAttr.get(et, 0.0)))
    (n, m, _), k = shape_of(a), shape_of(b)[2]
    return e.op("tosa.matmul", [a, b, zp, zp], ir.RankedTensorType.get([n, m, k], et))


def _drop(e, v, labels, gone, reduce):
    """Remove the labels in `gone`: summed (reduce) or squeezed (size-1 dims)."""
    axes = [i for i, c in enumerate(labels) if c in gone]
    if not axes:
        return v, labels
    if reduce:
        v = e.reduce("tosa.reduce_sum", v, axes)
    keep = [i for i in range(len(labels)) if i not in axes]
    return e.reshape(v, [shape_of(v)[i] for i in keep]), [labels[i] for i in keep]


def _sizes(ops):
    """label -> its largest size over all operands (size-1 dims broadcast)."""
    sizes = {}
    for v, labels in ops:
        for c, d in zip(labels, shape_of(v)):
            sizes[c] = max(sizes.get(c, 1), d)
    return sizes


def _prepare(e, ops, out):
    """Diagonals, then broadcast size-1 dims squeezed, then labels needed nowhere else summed."""
    ops = [_diagonal(e, v, list(lb)) for v, lb in ops]
    sizes = _sizes(ops)
    ops = [_drop(e, v, lb, {c for c, d in zip(lb, shape_of(v)) if d == 1 and sizes[c] > 1}, False)
           for v, lb in ops]
    result = []
    for k, (v, lb) in enumerate(ops):
        others = set(out).union(*[set(o[1]) for j, o in enumerate(ops) if j != k])
        result.append(_drop(e, v, lb, set(lb) - others, True))
    return result


def _contract(e, a, b, keep):
    """Contract two operands over their shared labels not in `keep`."""
    (va, la), (vb, lb) = a, b
    va, la = _drop(e, va, la, set(la) - set(lb) - keep, True)
    vb, lb = _drop(e, vb, lb, set(lb) - set(la) - keep, True)
    batch = [c for c in la if c in lb and c in keep]
    red = [c for c in la if c in lb and c not in keep]
    ma, nb = [c for c in la if c not in lb], [c for c in lb if c not in la]
    size = dict(zip(la, shape_of(va))) | dict(zip(lb, shape_of(vb)))
    dims = [int(np.prod([size[c] for c in g], dtype=np.int64)) for g in (batch, ma, red, nb)]
    va = e.reshape(e.transpose(va, [la.index(c) for c in batch + ma + red]), dims[:3])
    vb = e.reshape(e.transpose(vb, [lb.index(c) for c in batch + red + nb]), [dims[0], dims[2], dims[3]])
    if is_float(etype_of(va)):
        y = _matmul(e, va, vb)
    else:  # [B, M, K, 1] * [B, 1, K, N] summed over K
        y = e.elementwise("tosa.mul", e.reshape(va, dims[:3] + [1]), e.reshape(vb, [dims[0], 1] + dims[2:]))
        y = e.reduce("tosa.reduce_sum", y, [2], keepdims=False)
    labels = batch + ma + nb
    return e.reshape(y, [size[c] for c in labels]), labels


@lowers("Einsum", since=12, notes="float via tosa.matmul, integers via mul + reduce_sum")
def einsum(cx, *xs, equation):
    e = cx.e
    ins, out = _parse(equation, [x.rank for x in xs])
    ops = _prepare(e, [(x.value, lb) for x, lb in zip(xs, ins)], out)
    acc = ops[0]
    for k in range(1, len(ops)):
        keep = set(out).union(*[set(o[1]) for o in ops[k + 1:]])
        acc = _contract(e, acc, ops[k], keep)
    v, labels = _drop(e, *acc, set(acc[1]) - set(out), True)
    if sorted(labels) != sorted(out):
        raise Unsupported(f"Einsum '{equation}': output labels {out} do not match the inputs")
    return e.reshape(e.transpose(v, [labels.index(c) for c in out]), cx.out_shape())
