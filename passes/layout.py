"""Layout propagation on TOSA: the ops between two convolutions run in NHWC, not NCHW.

Contract: `run(module, ctx)` on the imported TOSA module, before the `tosa` stage. Values the
functions compute are unchanged; transposes are removed, moved or (rarely) added only where
that lowers the count of transposes that move data.

Why: the importer wraps every conv/pool as transpose(NCHW->NHWC) -> op -> transpose(NHWC->NCHW),
so the ops between two convs (activations, residual adds, per-channel mul/add, global pooling)
run in NCHW and cost two full transposes per layer. `tosa-reduce-transposes` only hoists
through elementwise ops and inline `dense` constants: not through our `dense_resource`
weights, nor through reduce/concat/pad.

Method: layout-agnostic ops (elementwise ones, and concat/reduce/reverse/pad/slice/tile whose
axis attribute or shape operands can be permuted) form connected regions (ops sharing an
input transpose belong to one region). For a region and a permutation P taken from the
transposes on its border, moving the region onto the un-transposed values removes the input
transposes transpose(x, P) that only feed it and the consumers transpose(., P^-1), and costs
one transpose per other input (transpose(v, P^-1)) and per result with other consumers
(transpose(r, P)); constants are permuted at compile time, and transposes that only move unit
dims are free (canonicalize makes them reshapes). A region is rewritten when it wins; repeat
until nothing does.
"""

from __future__ import annotations

import numpy as np

from dgc.frontend.emitter import Emitter, np_dtype_of
from dgc.ir import as_operation, ir, linalg_d

_ELEMENTWISE = frozenset("tosa." + n for n in (
    "add sub mul maximum minimum pow intdiv bitwise_and bitwise_or bitwise_xor bitwise_not "
    "logical_and logical_or logical_xor logical_not logical_left_shift logical_right_shift "
    "arithmetic_right_shift equal greater greater_equal select clamp sigmoid tanh erf exp log "
    "abs negate ceil floor reciprocal rsqrt cast sin cos").split())
_AXIS = frozenset("tosa." + n for n in (
    "concat reverse reduce_sum reduce_max reduce_min reduce_product reduce_all reduce_any").split())
_SHAPE_OPERANDS = {"tosa.pad": (1,), "tosa.slice": (1, 2), "tosa.tile": (1,)}  # tosa.const_shape
_KEPT_OPERANDS = {"tosa.mul": (2,), "tosa.negate": (1, 2), "tosa.pad": (2,)}  # shift, zero points, pad value
_DEAD_IF_UNUSED = frozenset({"tosa.const", "tosa.const_shape", "tosa.transpose", "tosa.reshape"})


def run(module, ctx) -> None:
    e = Emitter(ctx.name)
    e.blobs = ctx.blobs  # permuted weights go where llvm_finalize looks them up
    for block in _function_blocks(module):
        _propagate(block, e)


def _function_blocks(module) -> list:
    """The body of every func.func that is one block (the ones these rewrites take)."""
    return [fn.operation.regions[0].blocks[0] for fn in module.body.operations
            if fn.operation.name == "func.func" and len(fn.operation.regions[0].blocks) == 1]


def _propagate(block, e) -> None:
    for _ in range(4 * len(block.operations) + 1):  # every rewrite removes >= 1 transpose
        _cancel_pairs(block)
        _erase_dead(block)
        for region in _regions(block):
            perm = _best_perm(region)
            if perm is not None:
                _Rewrite(region, perm, e).apply()
                break
        else:
            break
    _free_to_reshape(block, e)
    _erase_dead(block)


# -- facts about ops and values ---------------------------------------------------------------

_op = as_operation


def _producer(v):
    return _op(v.owner) if isinstance(v, ir.OpResult) else None


def _perms(op) -> tuple[int, ...] | None:
    if op is None or op.name != "tosa.transpose":
        return None
    return tuple(ir.DenseI32ArrayAttr(op.attributes["perms"]))


def _inverse(perm) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def _shape(v) -> list[int]:
    return list(ir.RankedTensorType(v.type).shape)


def _permuted(shape, perm) -> list[int]:
    return [shape[p] for p in perm]


def _free(shape, perm) -> bool:
    """transpose(v, perm) moves no data: the non-unit dims keep their order."""
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


def _data_operands(op) -> list[int]:
    skip = _KEPT_OPERANDS.get(op.name, ()) + _SHAPE_OPERANDS.get(op.name, ())
    return [i for i in range(len(op.operands)) if i not in skip]


def _agnostic(op) -> bool:
    """Computes the same on permuted data operands, given permuted attributes/shape operands."""
    if op.name not in _ELEMENTWISE and op.name not in _AXIS and op.name not in _SHAPE_OPERANDS:
        return False
    if len(op.results) != 1 or not isinstance(op.result.type, ir.RankedTensorType):
        return False
    rank = len(_shape(op.result))
    if rank < 2 or any(not isinstance(op.operands[i].type, ir.RankedTensorType)
                       or len(_shape(op.operands[i])) != rank for i in _data_operands(op)):
        return False
    return all(_producer(op.operands[i]) is not None and _producer(op.operands[i]).name == "tosa.const_shape"
               for i in _SHAPE_OPERANDS.get(op.name, ()))


_GENERIC = "linalg.generic"


def _pointwise(op) -> bool:
    """A linalg.generic of one result, all loops parallel, whose operands are each read at the
    output's index (identity map, same shape) or are a broadcast scalar (all-ones shape, all-zero
    map), and whose body does not read the loop index: permuting every full operand and the
    result by one permutation computes the permuted result."""
    if len(op.results) != 1 or not isinstance(op.result.type, ir.RankedTensorType):
        return False
    shape = _shape(op.result)
    rank = len(shape)
    if rank < 2 or any(str(t) != "#linalg.iterator_type<parallel>" for t in op.attributes["iterator_types"]):
        return False
    identity = ir.AffineMap.get_identity(rank)
    for v, m in zip(op.operands, op.attributes["indexing_maps"]):
        amap = ir.AffineMapAttr(m).value
        if not isinstance(v.type, ir.RankedTensorType):
            return False
        if amap == identity and _shape(v) == shape:
            continue
        if not (all(d == 1 for d in _shape(v)) and all(
                isinstance(x.maybe_downcast(), ir.AffineConstantExpr) and x.maybe_downcast().value == 0
                for x in amap.results)):
            return False
    return not any(_op(o).name == "linalg.index" for o in op.regions[0].blocks[0].operations)


def _is_empty(v) -> bool:
    """A tensor.empty: its contents are never read, any layout is free."""
    op = _producer(v)
    return op is not None and op.name == "tensor.empty" and not op.operands


def _is_const(v) -> bool:
    """A tosa.const (possibly reshaped) whose data we can permute at compile time."""
    op = _producer(v)
    while op is not None and op.name == "tosa.reshape":
        op = _producer(op.operands[0])
    if op is None or op.name != "tosa.const":
        return False
    et = ir.RankedTensorType(v.type).element_type  # the types Emitter.const makes as they are
    return isinstance(et, (ir.F32Type, ir.F16Type)) or isinstance(et, ir.IntegerType) and et.width > 1


def _const_array(v, blobs) -> np.ndarray:
    op = _producer(v)
    if op.name == "tosa.reshape":
        return _const_array(op.operands[0], blobs).reshape(_shape(v))
    dense = op.attributes["values"]
    if not isinstance(dense, ir.DenseElementsAttr):  # dense_resource<KEY>: data in ctx.blobs
        text = str(dense)
        return blobs[text[len("dense_resource<"):text.index(">")]]
    if dense.is_splat:
        et = ir.RankedTensorType(v.type).element_type
        return np.full(_shape(v), dense.get_splat_value().value, dtype=np_dtype_of(et))
    return np.array(dense)


# -- cleanup ------------------------------------------------------------------------------------

def _cancel_pairs(block) -> None:
    """transpose(transpose(x, A), B) with B undoing A is x."""
    for op in [_op(o) for o in block.operations]:
        inner = _producer(op.operands[0]) if op.name == "tosa.transpose" else None
        a, b = _perms(inner), _perms(op)
        if a is not None and all(a[b[j]] == j for j in range(len(b))):
            op.result.replace_all_uses_with(inner.operands[0])


def _free_to_reshape(block, e) -> None:
    """Transposes that only move unit dims are reshapes (no data moves)."""
    for op in [_op(o) for o in block.operations]:
        if _perms(op) and _free(_shape(op.operands[0]), _perms(op)):
            with ir.InsertionPoint(op), op.location:
                op.result.replace_all_uses_with(e.reshape(op.operands[0], _shape(op.result)))
            op.erase()


def _erase_dead(block) -> None:
    for op in reversed([_op(o) for o in block.operations]):
        if op.name in _DEAD_IF_UNUSED and not any(True for _ in op.result.uses):
            op.erase()


# -- regions and their cost -----------------------------------------------------------------------

def _regions(block) -> list[list]:
    """Connected groups of agnostic ops, in block order (users of one transpose join)."""
    order = {op: i for i, op in enumerate(_op(o) for o in block.operations) if _agnostic(op)}
    parent = {op: op for op in order}

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for op in order:
        for i in _data_operands(op):
            p = _producer(op.operands[i])
            linked = [p] if p in order else [_op(u.owner) for u in p.result.uses] if _perms(p) else []
            for other in linked:
                if other in order:
                    parent[find(other)] = find(op)
    groups: dict = {}
    for op in order:
        groups.setdefault(find(op), []).append(op)
    return sorted((sorted(g, key=order.get) for g in groups.values()), key=lambda g: order[g[0]])


def _best_perm(region) -> tuple[int, ...] | None:
    members = set(region)
    cands = set()
    for op in region:
        cands |= {_perms(_producer(op.operands[i])) for i in _data_operands(op)}
        cands |= {_inverse(_perms(_op(u.owner))) for u in op.result.uses if _perms(_op(u.owner))}
    cands.discard(None)
    scores = {p: _score(region, members, p) for p in sorted(cands) if list(p) != sorted(p)}
    best = max(scores, key=scores.get, default=None)
    return best if best is not None and scores[best] > 0 else None


def _score(region, members, perm) -> int:
    """Transposes removed minus data-moving transposes added by rewriting `region` for `perm`."""
    inv, gain, cost, seen = _inverse(perm), 0, 0, set()
    for op in region:
        for i in _data_operands(op):
            v = op.operands[i]
            p = _producer(v)
            if p in members or v in seen:
                continue
            seen.add(v)
            if _perms(p) == perm:
                gain += all(_op(u.owner) in members for u in v.uses) and not _free(_shape(p.operands[0]), perm)
            elif not _is_const(v) and not _free(_shape(v), inv):
                cost += 1
        outside = [_op(u.owner) for u in op.result.uses if _op(u.owner) not in members]
        cancels = sum(_perms(u) == inv for u in outside)
        gain += cancels * (not _free(_shape(op.result), inv))
        if len(outside) > cancels and not _free(_permuted(_shape(op.result), inv), perm):
            cost += 1
    return gain - cost


# -- the rewrite ----------------------------------------------------------------------------------

class _Rewrite:
    """Rebuild `region` on un-transposed operands: old value r == transpose(new[r], perm)."""

    def __init__(self, region, perm, e: Emitter):
        self.region, self.members, self.e = region, set(region), e
        self.perm, self.inv = perm, _inverse(perm)
        self.new: dict = {}  # value of the region or its inputs -> the value in the new layout

    def apply(self) -> None:
        for op in self.region:
            with ir.InsertionPoint(op), op.location:
                self.new[op.result] = self._rebuild(op)
        for op in self.region:
            self._rewire(op)
        for op in reversed(self.region):
            op.erase()

    def _rebuild(self, op):
        operands = []
        for i, v in enumerate(op.operands):
            if i in _KEPT_OPERANDS.get(op.name, ()):
                operands.append(v)
            elif i in _SHAPE_OPERANDS.get(op.name, ()):
                operands.append(self._shape_operand(op.name, v))
            else:
                operands.append(self._input(v))
        attrs = {name: op.attributes[name] for name in op.attributes}
        if op.name in _AXIS:
            axis = self.perm[ir.IntegerAttr(attrs["axis"]).value]
            attrs["axis"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(32), axis)
        rt = ir.RankedTensorType(op.result.type)
        rtype = ir.RankedTensorType.get(_permuted(rt.shape, self.inv), rt.element_type)
        return ir.Operation.create(op.name, results=[rtype], operands=operands, attributes=attrs).result

    def _input(self, v):
        if v not in self.new:
            p = _producer(v)
            if _perms(p) == self.perm:
                self.new[v] = p.operands[0]
            elif _is_const(v):
                a = _const_array(v, self.e.blobs)
                self.new[v] = self.e.const(np.ascontiguousarray(np.transpose(a, self.inv)))
            else:
                self.new[v] = self.e.transpose(v, self.inv)
        return self.new[v]

    def _shape_operand(self, name, v):
        dims = np.array(ir.DenseElementsAttr(_producer(v).attributes["values"]), dtype=np.int64)
        if name == "tosa.pad":  # (low, high) per dim
            return self.e.shape_value(dims.reshape(-1, 2)[list(self.inv)].reshape(-1))
        return self.e.shape_value(dims[list(self.inv)])

    def _rewire(self, op) -> None:
        """Consumers outside the region: transpose(r, perm^-1) becomes the new value itself,
        anything else reads transpose(new, perm)."""
        new, back = self.new[op.result], None
        for user, index in [(_op(u.owner), u.operand_number) for u in op.result.uses]:
            if user in self.members:
                continue
            if _perms(user) == self.inv:
                user.result.replace_all_uses_with(new)
                user.erase()
                continue
            if back is None:
                with ir.InsertionPoint(op), op.location:
                    back = self.e.transpose(new, self.perm)
            user.operands[index] = back


# -- after elementwise fusion: pointwise generics between transposes ------------------------------

def run_linalg(module, ctx) -> None:
    """A pointwise linalg.generic (`_pointwise`) whose full inputs are all linalg.transpose(x, P)
    computes on the x's instead, when that removes more transposes than it adds: its results
    read through transpose(., P^-1) take the new result as it is, any other reader gets one
    transpose(new, P). On TOSA these are the importer's own generics (int8 QDQ residual adds)
    that `run` leaves alone: moved there, `linalg-fuse-elementwise-ops` would then fuse both
    convs' requantizations into the add, and one conv's int32 result would live across the
    other (ResNet-8 int8, Cortex-M7: +8.7 KB of arena). Done here, after that fusion, each conv
    keeps its requantization (ResNet-8 int8: 9 of 10 transposes gone, 1.9% fewer cycles)."""
    for block in _function_blocks(module):
        for op in [_op(o) for o in block.operations]:
            if op.name == _GENERIC and _pointwise(op):
                _sink_transposes(op)
        for op in reversed([_op(o) for o in block.operations]):
            if op.name in ("linalg.transpose", "tensor.empty") and not any(True for _ in op.results[0].uses):
                op.erase()


def _linalg_perm(op) -> tuple[int, ...] | None:
    if op is None or op.name != "linalg.transpose":
        return None
    return tuple(ir.DenseI64ArrayAttr(op.attributes["permutation"]))


def _sink_transposes(op) -> None:
    ins = int(ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"])[0])
    shape = _shape(op.result)
    full = [v for v in op.operands[:ins] if _shape(v) == shape]
    perms = {_linalg_perm(_producer(v)) for v in full}
    if not full or len(perms) != 1 or None in perms or not _is_empty(op.operands[ins]):
        return
    (perm,) = perms
    users = [_op(u.owner) for u in op.result.uses]
    inverse = [u for u in users if _linalg_perm(u) == _inverse(perm)]
    others = len(users) > len(inverse)
    freed = {_producer(v) for v in full if sum(1 for _ in v.uses) == 1}
    if len(freed) + len(inverse) <= others:
        return
    src = _shape(_producer(full[0]).operands[0])
    et = ir.RankedTensorType(op.result.type).element_type
    with ir.InsertionPoint(op), op.location:
        empty = ir.Operation.create("tensor.empty", results=[ir.RankedTensorType.get(src, et)]).result
        new = op.clone()
    for i, v in enumerate(op.operands[:ins]):
        if _shape(v) == shape:
            new.operands[i] = _producer(v).operands[0]
    new.operands[ins] = empty
    new.result.set_type(ir.RankedTensorType.get(src, et))
    for u in inverse:
        u.results[0].replace_all_uses_with(new.result)
        u.erase()
    if others:  # the old layout for them: transpose(new, P)
        with ir.InsertionPoint(op), op.location:
            init = ir.Operation.create("tensor.empty", results=[op.result.type]).result
            back = _op(linalg_d.transpose(new.result, outs=[init], permutation=list(perm))).results[0]
        op.result.replace_all_uses_with(back)
    op.erase()
