"""Initial values of tiled accumulators kept in registers, not stored and loaded back.

A tile whose output starts from a fused init (the conv bias broadcast, a fill) reads, after
vectorization on tensors:

    %i = vector.transfer_write %bias, %tile           (the whole tile)
    %s = tensor.extract_slice %i                      (the whole tile, unit dims dropped)
    %a = vector.transfer_read %s                      (the accumulators' first value)
    ... reduction loops ...
    %r = vector.transfer_write %acc, %s               (the whole tile again)
    tensor.insert_slice %r into %i                    (the whole tile)

Bufferized, the first write is a store of every accumulator that the last write overwrites,
and the read loads back what was just stored. Here the read becomes the written vector (a
shape_cast) and the whole-tile writes take the tile from before the init, which leaves the
init write without uses: it disappears.
"""

from __future__ import annotations

from dgc.ir import constant_op, ir, ops_named, vector_d


def run(module) -> None:
    for op in ops_named(module.operation, {"vector.transfer_write"}):
        _forward(op)


def _rank(value) -> int:
    return len(ir.RankedTensorType(value.type).shape)


def _whole(op, tensor, vtype, indices, rest: int) -> bool:
    """The transfer `op` reads or writes all of `tensor` in order: zero indices, identity
    map, in bounds, no mask (`rest` = operands expected after the indices)."""
    tt = ir.RankedTensorType(tensor.type)
    if not tt.has_static_shape or list(tt.shape) != list(ir.VectorType(vtype).shape):
        return False
    if len(op.operands) != 1 + len(indices) + rest + (1 if op.name.endswith("write") else 0):
        return False
    amap = ir.AffineMapAttr(op.attributes["permutation_map"]).value
    if str(amap) != str(ir.AffineMap.get_identity(len(tt.shape))):
        return False
    if "in_bounds" in op.attributes and not all(
            ir.BoolAttr(b).value for b in ir.ArrayAttr(op.attributes["in_bounds"])):
        return False
    zeros = [constant_op(v) for v in indices]
    return all(c is not None and ir.IntegerAttr(c.attributes["value"]).value == 0 for c in zeros)


def _whole_read(op) -> bool:
    src = op.operands[0]
    n = _rank(src)
    return _whole(op, src, op.results[0].type, list(op.operands[1:1 + n]), 1)


def _whole_write_into(op, value) -> bool:
    """`op` is a transfer_write overwriting all of `value` (its destination)."""
    if op.name != "vector.transfer_write" or op.operands[1] != value:
        return False
    n = _rank(value)
    return _whole(op, value, op.operands[0].type, list(op.operands[2:2 + n]), 0)


def _whole_slice(op, big) -> bool:
    """extract_slice of / insert_slice into `big` covering all of it (unit dims may drop)."""
    if op.name == "tensor.extract_slice":
        if len(op.operands) != 1:
            return False
    elif op.name != "tensor.insert_slice" or len(op.operands) != 2 or op.operands[1] != big:
        return False
    return (all(o == 0 for o in op.attributes["static_offsets"])
            and all(s == 1 for s in op.attributes["static_strides"])
            and list(op.attributes["static_sizes"]) == list(ir.RankedTensorType(big.type).shape))


def _forward(write) -> None:
    dest = write.operands[1]
    if not isinstance(dest.type, ir.RankedTensorType) or len(write.results) != 1:
        return
    if not _whole(write, dest, write.operands[0].type, list(write.operands[2:2 + _rank(dest)]), 0):
        return
    init, value = write.results[0], write.operands[0]
    reads, slices, overwrites = [], [], []
    for use in init.uses:
        user = use.owner
        if user.name == "vector.transfer_read" and _whole_read(user):
            reads.append(user)
        elif user.name == "tensor.insert_slice" and _whole_slice(user, init):
            overwrites.append(user)
        elif _whole_write_into(user, init):
            overwrites.append(user)
        elif user.name == "tensor.extract_slice" and _whole_slice(user, init):
            part = user.results[0]
            for u in part.uses:
                if u.owner.name == "vector.transfer_read" and _whole_read(u.owner):
                    reads.append(u.owner)
                elif not _whole_write_into(u.owner, part):
                    return
            slices.append(user)
        else:
            return
    if not reads:
        return
    for read in reads:
        rtype = read.results[0].type
        if rtype == value.type:
            read.results[0].replace_all_uses_with(value)
        else:
            with ir.InsertionPoint(read), read.location:
                read.results[0].replace_all_uses_with(vector_d.shape_cast(rtype, value))
        read.erase()
    # what is left of the init's uses overwrite all of it: any version of the tile will do
    for op in slices:
        op.operands[0] = dest
    for op in overwrites:
        op.operands[1] = dest
    write.erase()
