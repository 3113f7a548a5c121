"""Static memory planning: every allocation becomes a view into ONE caller-given arena.

Contract: runs on bufferized IR with the model function `<name>_impl(inputs..., outputs...)`.
Each `memref.alloc`/`memref.alloca` (static shape) gets an offset chosen by liveness over the
function's top-level ops, from a buffer's first to its last use through views (best fit
among buffers whose lifetimes overlap). The function gains a trailing `memref<Nxi8>` arena
argument; a public wrapper `<name>_run(..., arena) -> i32` calling it is added. The arena
size is stored in `ctx.arena_size`.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from dgc.errors import PipelineError
from dgc.ir import arith_d, as_operation, func_d, ir, memref_d, ops_named

ALIGN = 16


@dataclasses.dataclass(frozen=True)
class Buffer:
    """One planned arena buffer: bytes (aligned), offset, lifetime as [first, last] top-level op
    positions of the model function, and the ONNX node that made it (its location)."""

    size: int
    offset: int
    start: int
    end: int
    node: str
_VIEW_OPS = {"memref.subview", "memref.expand_shape", "memref.collapse_shape", "memref.cast",
             "memref.reinterpret_cast", "memref.transpose", "memref.view"}
_ESCAPES = {"memref.extract_strided_metadata", "memref.extract_aligned_pointer_as_index"}
_DATA_ACCESS = {"llvm.load", "llvm.store", "memref.load", "memref.store"}


def _top_index(op, body_ops: dict) -> int:
    while op is not None and op not in body_ops:
        op = op.parent
    return body_ops[op] if op is not None else -1


def _address_uses(op, body_ops: dict) -> list[int]:
    """Top-level positions of everything computed from a buffer's raw address (hand-written
    pointer loops, e.g. dgc.passes.dsp_kernels): the forward slice of the address, up to the
    loads and stores through it (their values are data, not addresses)."""
    out, seen, work = [], set(), [op]
    while work:
        o = work.pop()
        if o in seen:
            continue
        seen.add(o)
        out.append(_top_index(o, body_ops))
        if o.name in _DATA_ACCESS:
            continue
        for r in o.results:
            work.extend(as_operation(u.owner) for u in r.uses)
    return out


def _lifetime(alloc, body_ops: dict) -> tuple[int, int]:
    """First and last top-level op using the buffer (through views). An allocation's content
    is undefined until written, so its lifetime starts at its first use, not where the alloc
    stands (bufferization may place allocs early, e.g. one written in place by an earlier op)."""
    first = last = _top_index(alloc, body_ops)
    work = [alloc.result]
    uses = []
    while work:
        v = work.pop()
        for use in v.uses:
            owner = use.owner
            if owner.name in _VIEW_OPS:
                work.extend(owner.results)
            elif owner.name in _ESCAPES:
                uses.extend(_address_uses(owner, body_ops))
            else:
                uses.append(_top_index(owner, body_ops))
    if uses:
        first, last = min(uses), max(uses)
    return first, last


def _nbytes(mtype) -> int:
    t = ir.MemRefType(mtype)
    if not t.has_static_shape:
        raise PipelineError(f"dynamic-shaped buffer {t} cannot be planned statically",
                            hint="pin input shapes with --input-shape")
    et = t.element_type
    width = ir.IntegerType(et).width if isinstance(et, ir.IntegerType) else \
        {"f16": 16, "bf16": 16, "f32": 32, "f64": 64}[str(et)]
    size = int(np.prod(t.shape, dtype=np.int64)) * max(1, width // 8)
    return -(-size // ALIGN) * ALIGN


def plan_offsets(buffers: list[tuple[int, int, int]], tries: int = 3000) -> tuple[list[int], int]:
    """buffers: (size, start, end) -> (offsets, arena size). Best-fit placement in a few
    orders (largest first, earliest first, longest-lived first, most overlapping first); unless
    one already reaches the lower bound, a local search then swaps pairs of the best order
    (seeded, so the result is deterministic) for up to `tries` placements. Smallest wins."""
    bound = lower_bound(buffers)
    overlap = [sum(b[0] for b in buffers if not (b[2] < a[1] or a[2] < b[1])) for a in buffers]
    keys = (lambda i: (-buffers[i][0], buffers[i][1]), lambda i: (buffers[i][1], -buffers[i][0]),
            lambda i: (buffers[i][1] - buffers[i][2], -buffers[i][0], buffers[i][1]),
            lambda i: (-overlap[i], -buffers[i][0], buffers[i][1]))
    best = None
    for key in keys:
        order = sorted(range(len(buffers)), key=lambda i: (key(i), i))
        offsets, total = _place(buffers, order)
        if best is None or total < best[1]:
            best = (offsets, total, order)
    rng = np.random.default_rng(0)
    n = len(buffers)
    for _ in range(tries if n > 2 else 0):
        if best[1] <= bound:
            break
        order = list(best[2])
        i, j = rng.integers(0, n, 2)
        order[i], order[j] = order[j], order[i]
        offsets, total = _place(buffers, order)
        if total < best[1]:
            best = (offsets, total, order)
    return best[0], best[1]


def node_name(loc) -> str:
    """The ONNX node name in an op's location (the importer's NameLoc), or ''."""
    text = str(loc)
    m = re.search(r'loc\("([^"]*)"', text)
    return m.group(1) if m else ""


def lower_bound(buffers: list[tuple[int, int, int]]) -> int:
    """The largest sum of sizes of buffers live at one top-level op (lifetimes inclusive): no
    placement of these buffers in this op order needs less."""
    events: dict[int, int] = {}
    for size, start, end in buffers:
        events[start] = events.get(start, 0) + size
        events[end + 1] = events.get(end + 1, 0) - size
    live = peak = 0
    for t in sorted(events):
        live += events[t]
        peak = max(peak, live)
    return peak


def _place(buffers, order) -> tuple[list[int], int]:
    placed, offsets = [], [0] * len(buffers)
    for i in order:
        size, start, end = buffers[i]
        busy = sorted((offsets[j], offsets[j] + buffers[j][0]) for j in placed
                      if not (buffers[j][2] < start or end < buffers[j][1]))
        best, cursor = None, 0
        for lo, hi in busy + [(1 << 62, 1 << 62)]:
            gap = lo - cursor
            if gap >= size and (best is None or gap < best[1]):
                best = (cursor, gap)
            cursor = max(cursor, hi)
        offsets[i] = best[0]
        placed.append(i)
    total = max((offsets[i] + buffers[i][0] for i in range(len(buffers))), default=0)
    return offsets, total


def _impl(module, name):
    for op in module.body.operations:
        op = op.operation
        if op.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == f"{name}_impl":
            return op
    raise PipelineError(f"function {name}_impl not found")


def _flatten_empty_args(fn) -> None:
    """Zero-element arguments become memref<0xT>: the bare-pointer ABI rejects shapes like
    3x0x4 (zero strides), and such tensors hold nothing to read or write anyway."""
    body = fn.regions[0].blocks[0]
    ftype = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
    inputs = list(ftype.inputs)
    for i, arg in enumerate(body.arguments):
        t = ir.MemRefType(arg.type)
        if 0 not in t.shape or len(t.shape) == 1:
            continue
        with ir.InsertionPoint.at_block_begin(body), fn.location:
            stand_in = memref_d.alloca(t, [], [])
        arg.replace_all_uses_with(stand_in)
        inputs[i] = ir.MemRefType.get([0], t.element_type)
        arg.set_type(inputs[i])
    fn.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(inputs, ftype.results))


def run(module, ctx) -> None:
    fn = _impl(module, ctx.name)
    _flatten_empty_args(fn)
    body = fn.regions[0].blocks[0]
    body_ops = {op.operation: i for i, op in enumerate(body.operations)}
    ctx.op_nodes = [node_name(op.location) for op in body.operations]
    allocs = ops_named(fn, {"memref.alloc", "memref.alloca"})
    buffers = [(_nbytes(a.result.type), *_lifetime(a, body_ops)) for a in allocs]
    offsets, total = plan_offsets(buffers)
    ctx.arena_size = total
    ctx.arena_lower_bound = lower_bound(buffers)
    ctx.buffers = [Buffer(size, off, start, end, node_name(a.location))
                   for a, (size, start, end), off in zip(allocs, buffers, offsets)]
    i8 = ir.IntegerType.get_signless(8)
    arena_t = ir.MemRefType.get([max(total, 1)], i8)
    arena = body.add_argument(arena_t, fn.location)
    ftype = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
    fn.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get([*ftype.inputs, arena_t], ftype.results))
    for alloc, off in zip(allocs, offsets):
        with ir.InsertionPoint(alloc), alloc.location:
            c = arith_d.constant(ir.IndexType.get(), off)
            view = memref_d.view(alloc.result.type, arena, c, [])
        alloc.result.replace_all_uses_with(view)
        alloc.erase()
    for d in ops_named(fn, {"memref.dealloc"}):
        d.erase()
    _add_entry(module, fn, ctx.name)


def _add_entry(module, impl, name) -> None:
    ftype = ir.FunctionType(ir.TypeAttr(impl.attributes["function_type"]).value)
    i32 = ir.IntegerType.get_signless(32)
    with ir.InsertionPoint(module.body), impl.location:
        entry = func_d.FuncOp(f"{name}_run", (list(ftype.inputs), [i32]))
        block = entry.add_entry_block()
        with ir.InsertionPoint(block):
            func_d.CallOp([], ir.FlatSymbolRefAttr.get(f"{name}_impl"), list(block.arguments))
            func_d.ReturnOp([arith_d.constant(i32, 0)])
