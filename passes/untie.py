"""One initial value per destination: duplicate shared init chains before bufferization.

CSE merges identical initialisations: two convolutions without bias both start from the same
zero-filled tensor (`linalg.fill` of one `tensor.empty`, or the `scf.forall` that fill was
tiled into). Bufferization must then give at most one of them that buffer and copies it for
the other, and `eliminate-empty-tensors` cannot make either compute into its consumer's
buffer (e.g. a slice of a Concat output). Here every extra use of such a value as a
destination operand gets its own clone of the chain, so each op again owns its output buffer:
a Concat's inputs are computed straight into the output's slices. A clone costs what the copy
it replaces cost (the fill runs into the new buffer instead of being copied into it).

Contract: tensor IR after the schedule stage, before bufferization; only pure init chains
(tensor.empty, linalg.fill, and scf.forall / linalg ops whose only tensor operands are such
chains) are cloned.
"""

from __future__ import annotations

from dgc.ir import as_operation, ir, ops_named, tensor_d

def run(module, ctx) -> None:
    changed = True
    while changed:
        changed = False
        for op in ops_named(module.operation, {"tensor.empty", "linalg.fill", "scf.forall"}):
            if _init_chain(op):
                changed |= _untie(op)
    for op in ops_named(module.operation, {"tensor.insert_slice"}):
        _into_slices(op)
    for op in ops_named(module.operation, {"scf.forall"}):
        _in_place(op)


def _in_place(forall) -> None:
    """A tiled elementwise op writing a fresh tensor.empty while reading, tile for tile, an
    input X of the same type that nothing else reads (a ReLU after a Concat, a residual Add):
    write into X instead - the body reads X's tile from the shared output, the matching
    extract/insert pair bufferizes in place and X's buffer is reused."""
    if len(forall.results) != 1:
        return
    init = forall.operands[len(forall.operands) - 1]
    empty = _owner(init)
    if not isinstance(empty, ir.Operation) or empty.name != "tensor.empty" or len(list(init.uses)) != 1:
        return
    body = forall.regions[0].blocks[0]
    out_arg = body.arguments[len(body.arguments) - 1]
    term = body.operations[len(body.operations) - 1]
    inserts = list(term.regions[0].blocks[0].operations)
    if len(inserts) != 1 or inserts[0].name != "tensor.parallel_insert_slice":
        return
    where = _subset(inserts[0])
    for x in _outside_values(forall, body):
        if x.type != init.type or not isinstance(_owner(x), ir.Operation):
            continue  # function arguments (the caller's inputs) are never written
        uses = [as_operation(u.owner) for u in x.uses]
        if not uses or not all(_inside(u, forall) and u.name == "tensor.extract_slice" and _subset(u) == where
                               for u in uses):
            continue
        for u in uses:
            u.operands[0] = out_arg
        forall.operands[len(forall.operands) - 1] = x
        empty.erase()
        return


def _subset(op):
    """(dynamic offset/size/stride operands, static attributes) of an extract_slice (after its
    source) or a parallel_insert_slice (after its source and destination)."""
    dyn = tuple(op.operands[2 if op.name == "tensor.parallel_insert_slice" else 1:])
    attrs = tuple(str(op.attributes[k]) for k in ("static_offsets", "static_sizes", "static_strides"))
    return tuple(_id(v) for v in dyn), attrs


def _id(value):
    return value.get_name() if hasattr(value, "get_name") else str(value)


def _inside(op, ancestor) -> bool:
    while op is not None:
        if op == ancestor:
            return True
        op = op.parent if hasattr(op, "parent") else None
    return False


def _outside_values(forall, body) -> list:
    """Tensor values defined outside `forall` and used inside its body."""
    seen, out = set(), []
    for op in ops_named(forall, {"tensor.extract_slice"}):
        v = op.operands[0]
        if isinstance(v.type, ir.RankedTensorType) and not _inside(_owner(v), forall) and _id(v) not in seen:
            seen.add(_id(v))
            out.append(v)
    return out


def _owner(value):
    return as_operation(value.owner)


def _root_chain(value):
    """The ops computing `value` into a tensor.empty through single-use destination chains
    (scf.forall shared_outs, linalg outs), from `value`'s producer to the empty; None if none."""
    chain = []
    while True:
        op = _owner(value)
        if not isinstance(op, ir.Operation) or len(list(value.uses)) != 1:
            return None
        chain.append(op)
        if op.name == "tensor.empty":
            return chain if not list(op.operands) else None
        if len(op.results) != 1:
            return None
        dests = [v for k, v in enumerate(op.operands) if _is_destination(op, k)]
        if len(dests) != 1:
            return None
        value = dests[0]


def _is_destination(op, k: int) -> bool:
    if op.name == "scf.forall":
        return k >= len(op.operands) - len(op.results)
    if op.name.startswith("linalg.") and "operandSegmentSizes" in op.attributes:
        return k >= list(ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"]))[0]
    return False


def _into_slices(ins) -> None:
    """`insert_slice %src into %dest` where %dest's chain of insert_slices starts at a static
    tensor.empty E (a Concat): compute %src straight into that slice of %dest. The ops computing
    %src move down to just before the insert (they have no other use), and the tensor.empty
    they computed into becomes `extract_slice %dest` at the same offsets - the matching
    extract/insert pair bufferizes in place. E moves to the top of the block (lifetimes start
    at first use, so this costs nothing)."""
    src, dest = ins.operands[0], ins.operands[1]
    root = dest
    while isinstance(_owner(root), ir.Operation) and _owner(root).name == "tensor.insert_slice":
        root = _owner(root).operands[1]
    base = _owner(root)
    if not isinstance(base, ir.Operation) or base.name != "tensor.empty" or list(base.operands):
        return
    chain = _root_chain(src)
    if chain is None or base in chain or any(op.parent != ins.parent for op in chain):
        return
    attrs = ins.attributes
    static = [list(ir.DenseI64ArrayAttr(attrs[k])) for k in ("static_offsets", "static_sizes", "static_strides")]
    if len(list(ins.operands)) != 2 or any(v == ir.ShapedType.get_dynamic_size() for part in static for v in part):
        return  # dynamic offsets: leave it
    first = base.block.operations[0]
    if first != base:
        base.move_before(first)
    empty = chain[-1]
    for op in reversed(chain[:-1]):  # the empty's consumer first
        op.move_before(ins)
    with ir.InsertionPoint(chain[-2] if len(chain) > 1 else ins), empty.location:
        sliced = tensor_d.extract_slice(empty.results[0].type, dest, [], [], [],
                                        static_offsets=static[0], static_sizes=static[1], static_strides=static[2])
    empty.results[0].replace_all_uses_with(sliced)
    empty.erase()


def _init_chain(op) -> bool:
    """An op computing an initial value from nothing: tensor.empty, or a fill/forall whose tensor
    operands are all init chains themselves (constants and index values allowed)."""
    if op.name == "tensor.empty":
        return True
    if op.name not in ("linalg.fill", "scf.forall") or len(op.results) != 1:
        return False
    for v in op.operands:
        if isinstance(v.type, ir.RankedTensorType):
            owner = _owner(v)
            if not isinstance(owner, ir.Operation) or not _init_chain(owner):
                return False
    return True


def _untie(op) -> bool:
    """Every use of `op`'s result as a destination but the first gets its own clone of `op`."""
    value = op.results[0]
    uses = [(as_operation(u.owner), u.operand_number) for u in value.uses]
    dests = [(user, n) for user, n in uses if _is_destination(user, n)]
    if len(uses) < 2 or not dests:
        return False
    keep = None if len(dests) < len(uses) else dests[0]  # another kind of use keeps the original
    changed = False
    for user, n in dests:
        if (user, n) == keep:
            continue
        clone = op.clone(ip=ir.InsertionPoint(user))
        user.operands[n] = clone.results[0]
        changed = True
    return changed
