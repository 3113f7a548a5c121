"""Padded inputs of convolutions and pools without a zero-filled copy of the whole tensor.

Bufferized as is, `tensor.pad` allocates the padded buffer, fills all of it with the pad
value and copies the input into its interior: for a 112x112x96 depthwise input that is three
full passes over 5 MB before the conv reads it once. Rewritten here instead:

    %e = tensor.empty                      (placed where the input's own buffer is created)
    %t = tensor.insert_slice %x into %e    (interior)
    per padded side: insert_slice (fill (extract_slice %t)) into %t   (borders only)

Only the borders are filled. `eliminate-empty-tensors` (first pass of the bufferize stage)
then lets the op that computes %x write straight into the interior of the padded buffer, so
inside a model the copy disappears too; from a function argument it remains one copy.
"""

from __future__ import annotations

from dgc.ir import arith_d, constant_op, ir, linalg_d, ops_named, tensor_d

_DYNAMIC = ir.ShapedType.get_dynamic_size


def run(module, ctx) -> None:
    for op in ops_named(module.operation, {"tensor.pad"}):
        _rewrite(op)


def _static(values, operands) -> list[int] | None:
    """Static low/high amounts; SSA operands are accepted when they are constants."""
    out, it = [], iter(operands)
    for v in values:
        if v != _DYNAMIC():
            out.append(v)
            continue
        owner = constant_op(next(it))
        if owner is None:
            return None
        out.append(ir.IntegerAttr(owner.attributes["value"]).value)
    return out


def _pad_value(op):
    """The attribute of the constant the pad region yields, or None."""
    block = op.regions[0].blocks[0]
    (value,) = block.operations[len(block.operations) - 1].operands
    owner = constant_op(value)
    return None if owner is None else owner.attributes["value"]


def _origin(value):
    """The tensor.empty whose buffer `value` is computed into (following destination
    operands of linalg ops, scf loops and insert_slice), or None."""
    while isinstance(value, ir.OpResult):
        op = value.owner
        if op.name == "tensor.empty":
            return op
        if op.name.startswith("linalg.") or op.name in ("scf.forall", "scf.for"):
            n = len(op.results)
            value = op.operands[len(op.operands) - n + value.result_number]
        elif op.name == "tensor.insert_slice":
            value = op.operands[1]
        else:
            return None
    return None


def _slice(offsets, sizes):
    """Static offsets and sizes, unit strides: keywords of extract_slice / insert_slice."""
    return dict(offsets=[], sizes=[], strides=[], static_offsets=offsets, static_sizes=sizes,
                static_strides=[1] * len(sizes))


def _rewrite(op) -> None:
    pad = op.opview
    rtype = ir.RankedTensorType(op.results[0].type)
    stype = ir.RankedTensorType(pad.source.type)
    low = _static(list(pad.static_low), list(pad.low))
    high = _static(list(pad.static_high), list(pad.high))
    value = _pad_value(op)
    if low is None or high is None or value is None or not rtype.has_static_shape \
            or not stype.has_static_shape:
        return
    shape, src_shape, elt = list(rtype.shape), list(stype.shape), rtype.element_type
    origin = _origin(pad.source)
    with op.location:
        with ir.InsertionPoint(origin if origin is not None else op):
            padded = tensor_d.EmptyOp(shape, elt).result
        with ir.InsertionPoint(op):
            t = tensor_d.InsertSliceOp(pad.source, padded, **_slice(low, src_shape)).result
            fill_value = arith_d.ConstantOp(elt, value).result
            for d in range(len(shape)):
                for start, size in ((0, low[d]), (shape[d] - high[d], high[d])):
                    if size <= 0:
                        continue
                    offsets = [0] * len(shape)
                    offsets[d] = start
                    sizes = list(shape)
                    sizes[d] = size
                    part = tensor_d.ExtractSliceOp(ir.RankedTensorType.get(sizes, elt), t,
                                                   **_slice(offsets, sizes)).result
                    filled = linalg_d.fill(fill_value, outs=[part])
                    t = tensor_d.InsertSliceOp(filled, t, **_slice(offsets, sizes)).result
    op.results[0].replace_all_uses_with(t)
    op.erase()
