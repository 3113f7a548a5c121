"""TopK with a constant k: k selection rounds, each one linalg.generic reduction.

Round r picks, among the elements ordered after round r-1's pick in the total order
(value descending -- ascending for `largest=0` -- then index ascending), the first one.
The order is total, so ties go to the lower index as the spec requires, every element is
picked at most once, and no sentinel value can collide with real data; the combine step is
order independent, so the reduction may run in any order. Output is always sorted.
"""

from __future__ import annotations

import numpy as np

from ...ir import arith_d, ir, linalg_d, tensor_d
from ..emitter import etype_of, is_float, shape_of
from ..registry import Unsupported, lowers

_I64 = lambda: ir.IntegerType.get_signless(64)  # noqa: E731


def _preds(et, unsigned):
    """(greater, less, equal) scalar comparisons for element type `et`."""
    if is_float(et):
        f = arith_d.CmpFPredicate
        return (lambda a, b: arith_d.cmpf(f.OGT, a, b), lambda a, b: arith_d.cmpf(f.OLT, a, b),
                lambda a, b: arith_d.cmpf(f.OEQ, a, b))
    i = arith_d.CmpIPredicate
    gt, lt = (i.ugt, i.ult) if unsigned else (i.sgt, i.slt)
    return (lambda a, b: arith_d.cmpi(gt, a, b), lambda a, b: arith_d.cmpi(lt, a, b),
            lambda a, b: arith_d.cmpi(i.eq, a, b))


def _before(cmp, va, ia, vb, ib):
    """(va, ia) comes before (vb, ib): a better value, or the same value at a lower index."""
    better, _, eq = cmp
    lower = arith_d.cmpi(arith_d.CmpIPredicate.slt, ia, ib)
    return arith_d.ori(better(va, vb), arith_d.andi(eq(va, vb), lower))


def _maps(with_prev):
    full = ir.AffineMap.get_identity(2)
    row = ir.AffineMap.get(2, 0, [ir.AffineDimExpr.get(0)])
    return ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in [full] + [row] * (2 if with_prev else 0) + [row] * 2])


def _round(e, v, prev, cmp):
    """One selection round over v [R, N]: (values [R], indices [R] as i64)."""
    rows, et = shape_of(v)[0], etype_of(v)
    inputs = [v] + (list(prev) if prev else [])
    inits = [tensor_d.EmptyOp([rows], et).result, e.const(np.full([rows], -1, np.int64))]
    iters = ir.ArrayAttr.get([ir.Attribute.parse(f"#linalg.iterator_type<{t}>") for t in ("parallel", "reduction")])
    op = linalg_d.GenericOp([ir.RankedTensorType.get([rows], et), ir.RankedTensorType.get([rows], _I64())],
                            inputs, inits, _maps(bool(prev)), iters)
    block = op.regions[0].blocks.append(*[etype_of(x) for x in inputs], et, _I64())
    with ir.InsertionPoint(block):
        x, acc_v, acc_i = block.arguments[0], block.arguments[-2], block.arguments[-1]
        j = arith_d.index_cast(_I64(), linalg_d.IndexOp(1).result)
        empty = arith_d.cmpi(arith_d.CmpIPredicate.slt, acc_i, arith_d.constant(_I64(), 0))
        take = arith_d.ori(empty, _before(cmp, x, j, acc_v, acc_i))
        if prev:  # only elements after the previous pick
            take = arith_d.andi(take, _before(cmp, block.arguments[1], block.arguments[2], x, j))
        linalg_d.YieldOp([arith_d.select(take, x, acc_v), arith_d.select(take, j, acc_i)])
    return op.results[0], op.results[1]


def _concat_cols(e, cols):
    rows = shape_of(cols[0])[0]
    parts = [e.reshape(c, (rows, 1)) for c in cols]
    if len(parts) == 1:
        return parts[0]
    return e.op("tosa.concat", parts, ir.RankedTensorType.get([rows, len(parts)], etype_of(parts[0])),
                axis=ir.IntegerAttr.get(ir.IntegerType.get_signless(32), 1))


def _topk(cx, x, k, axis, largest):
    e = cx.e
    axis = axis % x.rank
    if not 0 < k <= x.shape[axis]:
        raise Unsupported(f"TopK with k = {k} on an axis of {x.shape[axis]} elements")
    perm = [d for d in range(x.rank) if d != axis] + [axis]
    inv = list(np.argsort(perm))
    lead = [x.shape[d] for d in perm[:-1]]
    v = e.reshape(e.transpose(x.value, perm), (int(np.prod(lead, dtype=np.int64)), x.shape[axis]))
    cmp = _preds(etype_of(v), x.dtype.kind == "u")
    if not largest:
        cmp = (cmp[1], cmp[0], cmp[2])
    vals, idxs, prev = [], [], None
    for _ in range(k):
        prev = _round(e, v, prev, cmp)
        vals.append(prev[0]), idxs.append(prev[1])
    return [e.transpose(e.reshape(_concat_cols(e, c), (*lead, k)), inv) for c in (vals, idxs)]


@lowers("TopK", since=10, notes="constant k; always sorted")
def topk(cx, x, k, *, axis=-1, largest=1, sorted=1):
    return _topk(cx, x, int(k.const_list()[0]), axis, largest)


@lowers("TopK", since=1)
def topk_v1(cx, x, *, k, axis=-1):
    return _topk(cx, x, int(k), axis, 1)
