"""Matmul columns padded to whole vectors: constant weights with N columns, N not a multiple of
the vector lanes, get zero columns up to N' (whole vectors, `padded`), and the result is the
first N columns of the N'-column product.

Why: a register block's width must divide N (no partial tiles, `schedule._cols`), and only
widths of one or 2, 4, 8... whole registers vectorize cleanly; any other length LLVM takes
apart into pieces (a 15-float vector on AVX-512: an 8-, a 4-, a 2- and a 1-float load and
three inserts per step). N = 120 (LeNet's fc1) left one 15-float column block, one
accumulation chain: fc1 was ~28% of LeNet's time on Zen 4. With 128 columns the block is
whole registers, several accumulators. Cost: K x (N' - N) zero weights in read-only data
(LeNet: 13 KB; 1000 classes: 0.8%) and N' - N wasted lanes; bare-metal targets (flash) and
targets without vectors keep their weights as they are.

The slice of the padded result is a view (a strided subview after bufferization, no copy);
its consumers (bias, activation) read the N columns through it."""

from __future__ import annotations

import numpy as np

from dgc.ir import ir, linalg_d, ops_named, tensor_d

MATMULS = ("linalg.matmul", "linalg.batch_matmul")


def run(module, ctx) -> None:
    target = ctx.target
    lanes = target.vector_bits // 32
    if target.bare_metal or lanes < 4:
        return
    for op in ops_named(module.operation, MATMULS):
        _pad(op, lanes, ctx)


def padded(n: int, lanes: int) -> int:
    """The columns a matmul of n columns gets (n when it stays as it is): the next multiple
    of 8, 4, 2 or 1 vectors that wastes at most an eighth of n (the first that does; one
    vector always), so the column block can be several whole registers - a row vector times
    a matrix has one accumulation chain per register of its block (1000 classes: 1024, blocks
    of 8 registers; 1008 would leave blocks of one, each a chain of K dependent FMAs)."""
    if n <= lanes or n % lanes == 0:
        return n
    sizes = [-(-n // (k * lanes)) * k * lanes for k in (8, 4, 2)]
    return next((m for m in sizes if m - n <= n // 8), -(-n // lanes) * lanes)


def _weights(value, ctx):
    """The constant array behind `value` (through reshapes), in `value`'s shape, and the
    constant's blob key; (None, "") when it is not a constant."""
    from dgc.passes.schedule import _const_array, blob_key

    src = value
    while isinstance(src, ir.OpResult) and src.owner.name in ("tensor.expand_shape", "tensor.collapse_shape"):
        src = src.owner.operands[0]
    a = _const_array(src, ctx)
    if a is None:
        return None, ""
    return np.asarray(a).reshape(ir.ShapedType(value.type).shape), blob_key(src)


def _columns_last(op) -> bool:
    """Whether the output's last dim (N) is the weights' last dim and not one of A's (the
    default maps; a matmul whose maps transpose B reads N elsewhere)."""
    from dgc.passes.schedule import _dim_pos

    maps = [ir.AffineMapAttr(a).value for a in op.attributes["indexing_maps"]]
    a, b, out = ([_dim_pos(e) for e in m.results] for m in maps)
    return bool(out) and out[-1] is not None and b[-1] == out[-1] and out[-1] not in a


def _pad(op, lanes: int, ctx) -> None:
    from dgc.passes.schedule import new_const

    if not _columns_last(op):
        return
    a, b, init = op.operands[0], op.operands[1], op.operands[2]
    out_t = ir.RankedTensorType(op.results[0].type)
    f32 = ir.F32Type.get()
    if any(ir.RankedTensorType(v.type).element_type != f32 for v in (a, b, init)):
        return
    shape = list(out_t.shape)
    n = shape[-1]
    n2 = padded(n, lanes)
    if n2 == n or list(ir.ShapedType(b.type).shape)[-1] != n:
        return
    fill = init.owner if isinstance(init, ir.OpResult) else None
    if fill is None or fill.name != "linalg.fill":
        return
    w, key = _weights(b, ctx)
    if w is None:
        return
    pad = [(0, 0)] * (w.ndim - 1) + [(0, n2 - n)]
    with ir.InsertionPoint(op), op.location:
        wide = new_const(np.pad(w.astype(np.float32), pad), ctx, f"{key}_n{n2}")
        empty = tensor_d.EmptyOp(shape[:-1] + [n2], f32).result
        acc = linalg_d.fill(fill.operands[0], outs=[empty])
        make = linalg_d.batch_matmul if op.name == "linalg.batch_matmul" else linalg_d.matmul
        full = make(a, wide, outs=[acc])
        rank = len(shape)
        part = tensor_d.ExtractSliceOp(out_t, full, [], [], [], [0] * rank, shape, [1] * rank).result
    op.results[0].replace_all_uses_with(part)
    op.erase()
    if not list(fill.results[0].uses):
        empty_op = fill.operands[1].owner if isinstance(fill.operands[1], ir.OpResult) else None
        fill.erase()
        if empty_op is not None and empty_op.name == "tensor.empty" and not list(empty_op.results[0].uses):
            empty_op.erase()
