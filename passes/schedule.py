"""The schedule stage: tiling, producer/consumer fusion and vectorization of Linalg ops.

Every compute op of the model (convolution, depthwise convolution, pooling, matmul, other
Linalg ops with a vectorizable innermost dimension) gets an `OpSchedule`: tile sizes for its
parallel loops (the register block), tile sizes for its reduction loops, whether to vectorize,
and whether to fuse its elementwise consumer (bias, ReLU/Clip, residual Add) and the producer
of its initial value into the same loop nest. Defaults are computed from the target's data
(f32 lanes per vector register, number of vector registers) - no target names are compared.

The schedules become ONE transform-dialect script (text built here, run by the transform
interpreter): per op, `tile_using_forall` on the fusion root, `fuse_into_containing_op` for the
producers, `tile_using_for` on the reductions, `decompose` (2-D windows -> 1-D), `vectorize`.
After bufferization `lower_vectors` hoists the accumulators out of the reduction loops into
registers and turns vector contractions into outer products (FMAs).

Users may override any field per ONNX node name or ONNX op type (`--schedule FILE`, JSON);
`--dump-schedule FILE` writes what was chosen in the same format.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
from dgc.errors import UsageError, read_json_file
from dgc.ir import attr_array, constant_op, ir, linalg_d, ops_named, vector_d
from dgc.passes import dsp_kernels
from dgc.passes import forward_writes
from mlir.dialects import affine as affine_d
from mlir.dialects import ub as ub_d

_ATTR = "dgc.sched"
_TILED = "dgc.tiled"
_CONV = "linalg.conv_2d_nhwc_hwcf"
_FHWC = "linalg.conv_2d_nhwc_fhwc"
_DW = "linalg.depthwise_conv_2d_nhwc_hwc"
_POOLS = ("linalg.pooling_nhwc_max", "linalg.pooling_nhwc_sum", "linalg.pooling_nhwc_min")
_MATMULS = ("linalg.matmul", "linalg.batch_matmul")
_WINDOWED = (_CONV, _DW, *_POOLS)
_ANCHORS = (*_WINDOWED, *_MATMULS, "linalg.transpose", "linalg.generic")
_FIELDS = ("tile", "reduce", "outer", "order", "vectorize", "fuse")
_LISTS = ("tile", "reduce", "outer")


@dataclasses.dataclass
class OpSchedule:
    key: str  # ONNX node name (+ '#k' when one node has several scheduled ops)
    op_type: str  # ONNX op type of the node ('' if unknown)
    linalg: str  # linalg op name
    loops: list[int]  # static loop ranges
    kinds: str  # 'p'/'r' per loop
    tile: list[int]  # parallel tile sizes (0 = loop not tiled)
    reduce: list[int]  # reduction tile sizes (0 = loop not tiled)
    outer: list[int]  # cache-level tile sizes around `tile` (0 = none)
    # the register tiles' loops, outermost first: a permutation of the parallel loops
    # (empty: loop order, the natural order)
    order: list[int] = dataclasses.field(default_factory=list)
    vectorize: bool = True
    fuse: bool = True
    note: str = ""
    # windowed ops with a stride or dilation other than 1: [sh, sw, dh, dw] (part of the
    # tuning signature; not a choice)
    window: list[int] = dataclasses.field(default_factory=list)
    # element types of the operands and results in order of appearance ("i8,i32" for an int8
    # conv's int32 accumulation) when any is not f32 (part of the tuning signature; not a choice)
    dtype: str = ""

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["order"] = self.order or natural_order(self.kinds)
        for k in ("note", "window", "dtype"):
            if not d[k]:
                del d[k]
        return d


def natural_order(kinds: str) -> list[int]:
    return [i for i, k in enumerate(kinds) if k == "p"]


# ---- target data -> default schedules ----------------------------------------------------

def _lanes(target) -> int:
    return max(1, target.vector_bits // 32)


def _fit(dim: int, pref: int, step: int = 1) -> int:
    """Largest divisor of `dim` that is <= pref and a multiple of `step` (else any divisor)."""
    for s in (step, 1):
        for t in range(min(dim, pref), 0, -1):
            if dim % t == 0 and t % s == 0:
                return t
    return 1


def _registers(n: int, lanes: int) -> list[int]:
    """Register counts of a vector row, largest first, at most n: any count on SIMD targets
    (lower_vectors carries a row of 3 or 5 registers as 3 or 5 vectors; one long vector LLVM
    would take apart element by element, 10x slower, measured); 1, 2, 4, ... without SIMD
    registers (as before; a row there is scalars anyway)."""
    if lanes > 1:
        return list(range(max(1, n), 0, -1))
    return [1 << k for k in range(max(1, n).bit_length() - 1, -1, -1)]


def _cols(cols: int, max_vecs: int, lanes: int) -> int:
    """Vector length for an innermost dimension of `cols`: at most one register, or whole
    registers (up to `max_vecs`; see _registers) - a vector of 1.5 or 7.5 registers would
    leave a part-register piece in every step. Always a divisor of `cols` (no partial tiles)."""
    if cols <= lanes:
        return cols
    whole = [k * lanes for k in _registers(max_vecs, lanes) if cols % (k * lanes) == 0]
    return whole[0] if whole else _fit(cols, lanes)


def _block(target, rows: int, cols: int, weight_bytes: int = 0) -> tuple[int, int]:
    """Register block (rows x cols f32 accumulators) for an output of rows x cols, within
    half the register file (the rest holds the B rows and A broadcasts LLVM loads ahead;
    with regs - 4 accumulators, 28 of AVX-512's 32, it spilled): the cheapest loads per FMA,
    w/rows + 1/vectors - a step loads `vectors` rows of B and `rows` broadcasts of A; B rows
    (weights) count w = 2 when the weights exceed 64 KB (they come from L2 or beyond, while
    the activations of a tile are hot in L1) - then the most accumulators, then the most
    rows. Widths are one register or whole registers dividing `cols` (see _cols, _registers);
    rows divide `rows`."""
    from dgc.predict import x86_16_registers

    lanes = _lanes(target)
    budget = max(1, target.vector_regs // 2)
    if x86_16_registers(target):
        # AVX2/SSE: 10 accumulators, 2 weight vectors and a broadcast fit 16 registers; the
        # half-file budget left rows of 5 (DS-CNN's 25x5 outputs) one-row blocks
        budget = target.vector_regs - 6
    wcost = 2 if weight_bytes > 64 * 1024 else 1
    if cols <= lanes:
        widths = [cols]
    else:
        widths = [k * lanes for k in _registers(budget, lanes) if cols % (k * lanes) == 0] or [_cols(cols, 1, lanes)]

    def score(w):
        vecs = -(-w // lanes)
        r = _fit(rows, max(1, budget // vecs))
        return (-(wcost / r + 1 / vecs), r * vecs, r), (r, w)

    return max((score(w) for w in widths), key=lambda x: x[0])[1]


def _depthwise_block(target, loops: list[int], kinds: str, window: list[int], block: tuple[int, int],
                     int8: bool = False):
    """Register block (rows, cols) of a depthwise conv on targets with vectors: the one the
    cost model ranks cheapest (`dgc.predict`: FMAs and loads per kernel row, and the
    registers a block's window needs: r accumulators, the r + kw - 1 inputs of a row's
    windows and kw weights per vector) among the candidates' blocks (`dgc.tuning`).
    `_block`'s choice (`block`, kept without vectors) counts a broadcast per row shared by
    the block's vectors, which depthwise convs do not have: it took 2 x 128 on 14x14x384
    (72 registers a kernel row). Every depthwise conv of mobilenet_v2 and mobilenet_v1_025
    alone, old block against this one (2026-12-06): timed on Zen 4, host (AVX-512) geomean
    1.04x faster over 18 (14x14x384 1.57x, 14x14x576 1.12x; worst 0.91x on 3x3x256, 0.9 us),
    x86-64-v3 (AVX2) 1.15x over 19 (7x7x960 2.9x; worst 0.88x). Exact QEMU counts of every
    block of each, against the best block: Cortex-A53 old 1.31x (geomean over 19, up to
    1.74x), this one 1.02x (at most 1.09x); ARMv7-A old 1.27x, this one 1.08x (at most 1.56x,
    6x6x64 stride 2); Cortex-M55 (8 registers; mobilenet_v1_025 and ds_cnn, 10 convs) old
    1.46x, this one 1.015x (bench/dw_blocks.py). int8 convs (`int8`) take blocks of at least 8
    channels where there are any: with 4 (one int32 vector on 128-bit SIMD) each window tap's
    4 bytes went into a register lane by lane. Whole models, int8, default blocks, old / new:
    ARMv7-A MobileNet v1 0.25 1.12x, DS-CNN 1.10x fewer estimated cycles, AArch64 1.05x / same,
    Cortex-A76 1.07x / same; x86-64 (SSE2) 1.05x / 1.12x faster; AVX2 and AVX-512 unchanged."""
    from dgc.predict import predict

    if _lanes(target) == 1:
        return block
    entry = {"linalg": _DW, "loops": loops, "kinds": kinds, "window": window}
    blocks = depthwise_blocks(target, loops)
    if int8:  # channel vectors of at least 8 bytes: a whole d register per load, not a lane
        blocks = [b for b in blocks if b[1] >= 8] or blocks
    if not blocks:
        return block
    return min(blocks, key=lambda b: (predict(entry, depthwise_block_schedule(*b), target), -b[0], b[1]))


def depthwise_blocks(target, loops: list[int]) -> list[tuple[int, int]]:
    """(rows, cols) register blocks of a depthwise conv (n, oh, ow, c, kh, kw) in the tuning
    space (`dgc.tuning.candidates`): vector widths of c x rows dividing ow within the registers."""
    from dgc.tuning import _divisors, _widths

    lanes = _lanes(target)
    regs = max(2, target.vector_regs - 2)
    return [(r, w) for w in _widths(loops[3], lanes, regs) for r in _divisors(loops[2], max(1, regs // -(-w // lanes)))]


def depthwise_block_schedule(r: int, w: int) -> dict:
    """The schedule fields of a depthwise conv with an r x w register block, one window column
    per step (the default's reduction steps)."""
    return {"tile": [1, 1, r, w, 0, 0], "reduce": [0, 0, 0, 0, 1, 1], "outer": [0] * 6, "order": [0, 1, 2, 3],
            "vectorize": True}


def _weight_block(target, f: int, cols: int, bytes_per_channel: int) -> int:
    """Output channels per cache block: the most register blocks (`cols` each, dividing f,
    fewer than f) whose weights fill at most a quarter of the target's cache (the rest holds
    the image and the output); one register block when even that is larger; 0 (no block)
    when f has no such multiple. 2 MB L2, ResNet-18 7x7x512 (18 KB per channel): 32 channels
    4.17 -> 3.94 ms against 64; 128 channels 5.4 ms, none 6.7 ms."""
    fits = [m for m in range(cols, f, cols) if f % m == 0]
    small = [m for m in fits if m * bytes_per_channel <= target.cache_bytes // 4]
    return max(small) if small else (fits[0] if fits else 0)


def _reduce_step(target, dim: int) -> int:
    """Input channels per step of a conv's reduction loop: one with vectors (a block of c
    would need a transpose of the input), two scalar ones per step without."""
    return 1 if _lanes(target) > 1 else _fit(dim, 2)


def default_schedule(op, target) -> OpSchedule | None:
    name = op.name
    if dsp_kernels.handles(op, target):
        return None  # int8 SMLAD / dot-product loops after bufferization (dsp_kernels)
    loops, kinds = loop_ranges(op)
    if loops is None:
        return None
    tile, red, outer = [0] * len(loops), [0] * len(loops), [0] * len(loops)
    if name in _WINDOWED:  # (n, oh, ow, c|f, kh, kw[, c])
        wbytes = 4 * math.prod(loops[3:]) if name == _CONV else 0
        rows, cols = _block(target, loops[2], loops[3], wbytes)
        if name == _DW:
            rows, cols = _depthwise_block(target, loops, kinds, window_of(op), (rows, cols),
                                          int8=dtypes_of(op).startswith("i8"))
        tile[:4] = [1, 1, rows, cols]
        red[4:6] = [1, 1]
        if name == _CONV:
            red[6] = _reduce_step(target, loops[6])
            _, oh, ow, f, kh, kw, _ = loops
            if _lanes(target) > 1 and target.cache_bytes and kh * kw * f > 4 * oh * ow:
                # Weights well beyond the activations (deep layers): a block of output
                # channels at a time over the whole image, so its packed weights
                # (_pack_weights) come from memory once and then stay in cache, not once per
                # row of tiles. ResNet-18 7x7x512: 61 -> 95 GFLOP/s; 28x28x128 (weights 1.5x
                # the image) lost with it.
                outer[3] = _weight_block(target, f, cols, 4 * kh * kw * loops[6])
    elif name in _MATMULS or _is_contraction(op, kinds):
        p = [i for i, k in enumerate(kinds) if k == "p"]
        if len(p) < 2:
            return None
        rows, cols = _block(target, loops[p[-2]], loops[p[-1]],
                            4 * loops[p[-1]] * math.prod(loops[i] for i, k in enumerate(kinds) if k == "r"))
        gemv = loops[p[-2]] == 1
        if gemv:  # a row vector times a matrix: one broadcast and up to 8 FMAs per k
            cols = _cols(loops[p[-1]], min(8, target.vector_regs - 4), _lanes(target))
        for i in p[:-2]:
            tile[i] = 1
        tile[p[-2]], tile[p[-1]] = rows, cols
        # k one at a time: each step is `rows` broadcasts of A[i, k] and rows x cols/lanes
        # FMAs with the row B[k, :] (an A block of k > 1 would need transposing first)
        red = [1 if k == "r" else 0 for k in kinds]
    elif name == "linalg.transpose":
        # lanes x lanes blocks: contiguous rows in, contiguous rows out, a register transpose
        # between (vector.transpose lowered to shuffles); elementwise it would be a gather.
        perm = list(ir.DenseI64ArrayAttr(op.attributes["permutation"]))
        inner_in, inner_out = perm.index(len(perm) - 1), len(perm) - 1
        if inner_in == inner_out:
            return None  # innermost dim stays: a copy of rows, nothing to gain
        lanes = _lanes(target)
        tile = [1] * len(loops)
        tile[inner_in] = _cols(loops[inner_in], 1, lanes)
        tile[inner_out] = _cols(loops[inner_out], 1, lanes)
    elif name == "linalg.generic" and _row_reduction(op, kinds) and \
            (chunk := _row_chunk(loops[-1], _lanes(target))) is not None:
        # a reduction over the innermost, contiguous dim (softmax's max and sum, a LayerNorm's
        # moments): one row per tile, its elements as one vector, folded by a vector
        # reduction; as a scalar loop its accumulator stays in memory and LLVM cannot
        # vectorize it (tiny BERT: ~11% of its time on Zen 4). `row_reduction(entry)` tells
        # these entries apart.
        tile = [1] * (len(loops) - 1) + [0]
        red[-1] = chunk
    elif name == "linalg.generic":
        if "r" in kinds or kinds[-1] != "p" or not _vectorizable_generic(op):
            return None
        lanes = _lanes(target)
        tile = [1] * len(loops)
        tile[-1] = _fit(loops[-1], 4 * lanes, lanes)
    else:
        return None
    return OpSchedule("", "", name, loops, kinds, tile, red, outer,
                      fuse=name not in ("linalg.generic", "linalg.transpose"),
                      window=window_of(op) if name in _WINDOWED else [], dtype=dtypes_of(op))


def dtypes_of(op) -> str:
    """OpSchedule.dtype of `op`: its operands' and results' element types, each once, in
    order of appearance; "" when all are f32."""
    seen = []
    for v in [*op.operands, *op.results]:
        t = str(v.type.element_type) if isinstance(v.type, ir.ShapedType) else str(v.type)
        if t not in seen:
            seen.append(t)
    return "" if seen == ["f32"] else ",".join(seen)


def loop_ranges(op) -> tuple[list[int] | None, str]:
    """Static loop ranges and iterator kinds of a Linalg op we know how to schedule."""
    shapes = [list(ir.ShapedType(v.type).shape) for v in op.operands]
    res = list(ir.ShapedType(op.results[0].type).shape) if op.results else None
    if res is None or any(d < 0 for s in shapes for d in s):
        return None, ""
    name = op.name
    if name in (_CONV,):
        n, oh, ow, f = res
        kh, kw, c, _ = shapes[1]
        return [n, oh, ow, f, kh, kw, c], "ppppppr"[:4] + "rrr"
    if name == _DW or name in _POOLS:
        n, oh, ow, c = res
        kh, kw = shapes[1][:2]
        return [n, oh, ow, c, kh, kw], "pppprr"
    if name == "linalg.transpose":
        return res, "p" * len(res)
    if name == "linalg.matmul":
        return [res[0], res[1], shapes[0][1]], "ppr"
    if name == "linalg.batch_matmul":
        return [*res, shapes[0][2]], "pppr"
    if name == "linalg.generic":
        return _generic_ranges(op, shapes)
    return None, ""


def _generic_ranges(op, shapes):
    maps = [ir.AffineMapAttr(a).value for a in op.attributes["indexing_maps"]]
    kinds = "".join("p" if "parallel" in str(a) else "r" for a in op.attributes["iterator_types"])
    loops = [None] * len(kinds)
    for m, shape in zip(maps, shapes):
        for expr, d in zip(m.results, shape):
            if (pos := _dim_pos(expr)) is not None:
                loops[pos] = d
    if any(x is None for x in loops) or not loops:
        return None, ""
    return loops, kinds


def _dim_pos(expr) -> int | None:
    try:
        return ir.AffineDimExpr(expr).position
    except (ValueError, TypeError):
        return None


def _row_chunk(n: int, lanes: int) -> int | None:
    """Elements of a row reduction's vector step: 0 (the whole row) up to 8 registers, else
    the largest divisor of n within 8 registers (preferably whole ones); None - leave the
    loop - without vectors or when that divisor is below one register (a prime n)."""
    if lanes == 1:
        return None
    if n <= 8 * lanes:
        return 0
    chunk = _fit(n, 8 * lanes, lanes)
    return chunk if chunk >= lanes else None


def row_reduction(entry: dict) -> bool:
    """Whether a schedule entry (`--dump-schedule` item) is a row reduction (`_row_reduction`):
    a generic whose one reduction loop is innermost and untiled or tiled in chunks of at
    least two (a contraction generic - `_is_contraction`, same kinds - steps it by one)."""
    kinds, red = entry["kinds"], entry.get("reduce") or []
    return entry["linalg"] == "linalg.generic" and kinds.count("r") == 1 and kinds.endswith("r") and \
        len(red) == len(kinds) and red[-1] != 1


def _row_reduction(op, kinds: str) -> bool:
    """A generic reducing its innermost loop only, every input indexed by the loops in order
    (identity or a prefix dropped: contiguous rows), the output by the parallel loops."""
    if kinds.count("r") != 1 or not kinds.endswith("r") or len(op.results) != 1 or not _vectorizable_generic(op):
        return False
    maps = [ir.AffineMapAttr(a).value for a in op.attributes["indexing_maps"]]
    n = len(kinds)
    *ins, out = maps
    if [_dim_pos(e) for e in out.results] != list(range(n - 1)):
        return False
    return all([_dim_pos(e) for e in m.results] == list(range(n - len(m.results), n)) for m in ins)


def _vectorizable_generic(op) -> bool:
    body = op.regions[0].blocks[0]
    return all(o.name.split(".")[0] in ("arith", "math", "linalg") for o in body.operations)


def _is_contraction(op, kinds: str) -> bool:
    if op.name != "linalg.generic" or kinds.count("r") != 1 or len(op.operands) != 3:
        return False
    names = [o.name for o in op.regions[0].blocks[0].operations]
    return names == ["arith.mulf", "arith.addf", "linalg.yield"]


# ---- user overrides ----------------------------------------------------------------------

def read_schedule_file(path: str) -> list[dict]:
    data = read_json_file(path, f"schedule file '{path}'", hint="write it with --dump-schedule and edit it")
    return validate_entries(data.get("ops") if isinstance(data, dict) else data,
                            f"schedule file '{path}'")


def validate_entries(entries, where: str) -> list[dict]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UsageError(f"{where} must hold a list of objects under \"ops\"",
                         hint="write one with --dump-schedule")
    for e in entries:
        if "key" not in e and "op_type" not in e:
            raise UsageError(f"schedule entry {json.dumps(e)[:80]} names neither \"key\" "
                             "(ONNX node) nor \"op_type\"", hint="add one of them")
        unknown = set(e) - {"key", "op_type", "linalg", "loops", "kinds", "note", "window", "dtype", *_FIELDS}
        if unknown:
            raise UsageError(f"schedule entry for '{e.get('key', e.get('op_type'))}' has unknown "
                             f"field(s) {sorted(unknown)}", hint="fields: " + ", ".join(_FIELDS))
    return entries


def _apply_override(s: OpSchedule, entry: dict) -> None:
    where = f"schedule for node '{s.key}' ({s.op_type or s.linalg})"
    for field in _FIELDS:
        if field not in entry:
            continue
        v = entry[field]
        if field in _LISTS:
            if not isinstance(v, list) or len(v) != len(s.loops) or \
                    not all(isinstance(x, int) and x >= 0 for x in v):
                raise UsageError(f"'{field}' must be a list of {len(s.loops)} non-negative "
                                 f"integers (loops {s.loops}), got {v}", where=where)
            want = "r" if field == "reduce" else "p"
            bad = [i for i, (x, k) in enumerate(zip(v, s.kinds)) if x and k != want]
            if bad:
                raise UsageError(f"'{field}' tiles loop {bad[0]}, which is a "
                                 f"{'reduction' if want == 'p' else 'parallel'} loop "
                                 f"(kinds {s.kinds})", where=where,
                                 hint="parallel loops go in 'tile'/'outer', reductions in 'reduce'")
            v = [min(x, d) for x, d in zip(v, s.loops)]  # a tile larger than its loop = the loop
        elif field == "order":
            want = natural_order(s.kinds)
            if not isinstance(v, list) or not all(type(x) is int for x in v) or v and sorted(v) != want:
                raise UsageError(f"'order' must list the parallel loops {want} (kinds {s.kinds}) "
                                 f"outermost first, got {v}", where=where,
                                 hint=f"e.g. {want[:-2] + want[:-3:-1] if len(want) > 1 else want}")
            v = [] if v == want else v
        elif not isinstance(v, bool):
            raise UsageError(f"'{field}' must be true or false, got {v!r}", where=where)
        setattr(s, field, v)
    _check_decompose(s)


def _check_decompose(s: OpSchedule) -> None:
    """Windowed ops vectorize as 1-D windows: they need oh and kh tiles of 1."""
    if s.linalg in _WINDOWED and s.vectorize and (s.tile[1] != 1 or s.reduce[4] != 1):
        s.vectorize = False
        s.note = "not vectorized: windowed ops vectorize only with tile[1] == reduce[4] == 1"
    # an outer tile bounds the register tile inside it
    s.tile = [min(t, o) if o else t for t, o in zip(s.tile, s.outer)]
    within = [o or d for o, d in zip(s.outer, s.loops)]
    uneven = [i for i, (t, d) in enumerate(zip(s.tile, within)) if t and d % t] + \
             [i for i, (t, d) in enumerate(zip(s.outer, s.loops)) if t and d % t] + \
             [i for i, (t, d) in enumerate(zip(s.reduce, s.loops)) if t and d % t]
    if uneven and (s.vectorize or s.fuse):
        # partial tiles: scalar loops, and no fused consumer - its temporary per tile would
        # have a dynamic size the static memory plan cannot place
        s.vectorize = s.fuse = False
        s.note = f"not vectorized or fused: tile sizes do not divide loops {uneven} (partial tiles)"


# ---- choosing schedules ---------------------------------------------------------------

def _record_fusion(ctx, root, partners) -> None:
    """ctx.fused_into[node] = the ONNX node whose loops compute it (for `dgc report`)."""
    into = _node_of(root)
    for p in partners:
        node = _node_of(p) if p is not None else ""
        if node and into and node != into:
            ctx.fused_into.setdefault(node, into)


def _node_of(op) -> str:
    m = re.search(r'loc\("([^"]*)"', str(op.location))
    return m.group(1) if m else ""


def _single_user(value):
    users = list(value.uses)
    return users[0].owner if len(users) == 1 else None


def _fusible_consumer(op):
    """The elementwise op that consumes `op`'s result in the same iteration space, if any."""
    user = _single_user(op.results[0])
    if user is None or user.name != "linalg.generic" or len(user.results) != 1:
        return None
    if any("reduction" in str(a) for a in user.attributes["iterator_types"]):
        return None
    # the same iteration space; a convolution's or matmul's int32 accumulator may be
    # requantized to int8 (the int32 tensor then never exists whole: MobileNet v1 0.25 int8's
    # arena 3.3x smaller on x86/AArch64). Poolings keep their requantization apart (fused, it
    # cost Cortex-M7 0.2% more cycles on ResNet-8 int8's global average pool).
    same = user.results[0].type == op.results[0].type
    if not same and (op.name in _POOLS or
                     ir.ShapedType(user.results[0].type).shape != ir.ShapedType(op.results[0].type).shape):
        return None
    maps = [ir.AffineMapAttr(a).value for a in user.attributes["indexing_maps"]]
    for operand, m in zip(user.operands, maps):
        if operand == op.results[0] and [_dim_pos(e) for e in m.results] != list(range(m.n_dims)):
            return None
    return user.operation if hasattr(user, "operation") else user


def _init_producer(op):
    init = op.operands[len(op.operands) - 1].owner
    if not isinstance(init, ir.Operation) and hasattr(init, "operation"):
        init = init.operation
    if getattr(init, "name", "") in ("linalg.fill", "linalg.generic") and \
            _single_user(init.results[0]) is not None:
        return init
    return None


@dataclasses.dataclass
class _Group:
    sched: OpSchedule
    anchor: object
    consumer: object | None
    init: object | None


def signature(linalg: str, loops, kinds: str, fuse: bool, kernel: str | None = None, window=(),
              dtype: str = "") -> str:
    """What makes two ops one tuning problem (`dgc tune`): the Linalg op, its loop ranges and
    kinds, and whether an elementwise tail / initial value is fused into it; `kernel` names a
    hand-written kernel family computing it instead of scheduled Linalg loops (e.g. "i8smlad",
    dsp_kernels), whose choices are not schedules; `window` ([sh, sw, dh, dw], windowed ops
    only, empty when all are 1): a stride-2 conv reads other inputs than its stride-1 twin of
    the same loop ranges, so they are tuned apart (":s2x2", ":d2x2" suffixes); `dtype`
    (OpSchedule.dtype, empty for f32): an int8 op is tuned apart from its f32 twin."""
    sig = f"{linalg}:{'x'.join(map(str, loops))}:{kinds}:{'fused' if fuse else 'alone'}"
    if kernel:
        sig += f":{kernel}"
    if window and list(window[:2]) != [1, 1]:
        sig += f":s{window[0]}x{window[1]}"
    if window and list(window[2:]) != [1, 1]:
        sig += f":d{window[2]}x{window[3]}"
    if dtype:
        sig += f":{dtype}"
    return sig


def entry_signature(entry: dict) -> str:
    """`signature` of an op as --dump-schedule / dsp_kernels.describe list it."""
    return signature(entry["linalg"], entry["loops"], entry["kinds"], entry["fuse"], entry.get("kernel"),
                     entry.get("window", ()), entry.get("dtype", ""))


def window_of(op) -> list[int]:
    """[sh, sw, dh, dw] of a windowed Linalg op when any is not 1, else []."""
    if "strides" not in op.attributes:
        return []
    w = [int(x) for a in ("strides", "dilations") if a in op.attributes
         for x in np.array(ir.DenseElementsAttr(op.attributes[a]))]
    w += [1] * (4 - len(w))
    return w if any(x != 1 for x in w) else []


def choose(module, ctx, overrides: list[dict] | None = None) -> list[_Group]:
    """Schedules for every schedulable op: defaults (or with `--predict` the cost model's
    choice), then tuned entries (`--tuning-db`, by signature), then user overrides
    (`--schedule`)."""
    node_types = ctx.node_types
    groups, seen, taken = [], {}, []
    named = ops_named(module.operation, _ANCHORS)
    # compute ops first (fusion groups take their producers/consumers, and they keep the
    # plain node name as key), then layout transposes, then the other generics
    rank = {"linalg.transpose": 1, "linalg.generic": 2}
    named = sorted(named, key=lambda op: rank.get(op.name, 0))  # stable: IR order within a rank
    if ctx.target.dsp or ctx.target.int8_dot:  # int8 convs' requantization and bias init:
        for op in ops_named(module.operation, dsp_kernels.NAMES):  # fused into their kernels
            if dsp_kernels.handles(op, ctx.target):
                taken.extend(dsp_kernels.partners(op))
                _record_fusion(ctx, op, dsp_kernels.partners(op))
    for op in named:
        if any(op == t for t in taken):
            continue
        s = default_schedule(op, ctx.target)
        if s is None:
            continue
        node = _node_of(op)
        k = seen.get(node, 0)
        seen[node] = k + 1
        s.key = node if k == 0 else f"{node}#{k}"
        s.op_type = node_types.get(node, "")
        consumer = _fusible_consumer(op) if s.fuse else None
        init = _init_producer(op) if s.fuse else None
        consumer = None if consumer is None or consumer in taken else consumer
        init = None if init is None or init in taken else init
        if consumer is None and init is None:
            s.fuse = False
        for extra in (consumer, init):
            if extra is not None:
                taken.append(extra)
        groups.append(_Group(s, op, consumer, init))
    tuned = getattr(ctx, "tuning", None) or {}
    for g in groups:
        if (entry := tuned.get(entry_signature(g.sched.to_json()))):
            _apply_override(g.sched, entry)
        elif getattr(ctx, "predict", False):
            from dgc.predict import best_predicted

            _apply_override(g.sched, best_predicted(g.sched.to_json(), ctx.target))
    _apply_overrides(groups, overrides or [])
    for g in groups:
        _check_decompose(g.sched)
        if not g.sched.fuse:
            g.consumer = g.init = None
    return groups


def _apply_overrides(groups: list[_Group], overrides: list[dict]) -> None:
    """Entries by op type first, then by node key: a node's own entry wins."""
    by_key = {g.sched.key: g.sched for g in groups}
    for entry in (e for e in overrides if "key" not in e):
        hits = [g.sched for g in groups if g.sched.op_type == entry["op_type"]]
        if not hits:
            raise UsageError(f"schedule names op type '{entry['op_type']}', which has no "
                             "schedulable op in this model", hint="op types here: " +
                             ", ".join(sorted({g.sched.op_type for g in groups} - {""})))
        for s in hits:
            if all(len(entry.get(f, s.loops)) == len(s.loops) for f in _LISTS) and \
                    len(entry.get("order", s.kinds.replace("r", ""))) in (0, s.kinds.count("p")):
                # lists of another length are for another op of the type (e.g. depthwise)
                _apply_override(s, entry)
    for entry in (e for e in overrides if "key" in e):
        if entry["key"] not in by_key:
            raise UsageError(f"schedule names node '{entry['key']}', which has no schedulable op",
                             hint="schedulable nodes: " + ", ".join(sorted(by_key)[:12]) +
                             (" ..." if len(by_key) > 12 else "") + " (see --dump-schedule)")
        _apply_override(by_key[entry["key"]], entry)


# ---- transform script --------------------------------------------------------------------

_ANY = "!transform.any_op"


def _sequence(body: str) -> str:
    """A transform script: `body` (ops on %root) as the named sequence the interpreter runs."""
    return ("module attributes {transform.with_named_sequence} {\n"
            f"  transform.named_sequence @__transform_main(%root: {_ANY} {{transform.readonly}}) {{\n"
            f"{body}    transform.yield\n  }}\n}}\n")


def _on_funcs(body: str) -> str:
    """A transform script whose `body` works on %f, every func.func of the module."""
    return _sequence(f"    %f = transform.structured.match ops{{[\"func.func\"]}} in %root : ({_ANY}) -> {_ANY}\n"
                     + body)


def _match(name: str, attr: str, value: int) -> str:
    return (f'{name} = transform.structured.match attributes{{{attr} = {value} : i64}} in %root'
            f' : ({_ANY}) -> {_ANY}')


def _tile_script(i: int, g: _Group) -> str:
    """Tiling of one group (anchor tagged i, consumer 1e6+i, init 2e6+i): the cache level
    (`outer`), then the register level, each a tile_using_forall of the root with the anchor
    and the init producer fused in. The resulting ops are tagged again (_TILED) for
    _vector_script; the untiled originals are dead by then."""
    s = g.sched
    lines = [_match("%a", _ATTR, i)]
    rank = len(ir.ShapedType(g.anchor.results[0].type).shape)
    trips = [d // t for d, t in zip(s.loops, s.tile) if t]
    tiled = any(s.tile) and (math.prod(trips) > 1 or g.consumer is not None or g.init is not None)
    root, anchor, init = "%a", "%a", None
    if g.consumer is not None:
        root = "%c"
        lines.append(_match("%c", _ATTR, 1000000 + i))
    if g.init is not None:
        init = "%i"
        lines.append(_match("%i", _ATTR, 2000000 + i))

    def tile_and_fuse(level: str, sizes: list[int]) -> None:
        nonlocal root, anchor, init
        lines.append(f"%{level}r, %{level}l = transform.structured.tile_using_forall {root} "
                     f"tile_sizes {sizes[:rank]} : ({_ANY}) -> ({_ANY}, {_ANY})")
        loop = f"%{level}l"
        if root == anchor:
            root = anchor = f"%{level}r"
        else:
            root = f"%{level}r"
            lines.append(f"%{level}a, %{level}l2 = transform.structured.fuse_into_containing_op "
                         f"{anchor} into {loop} : ({_ANY}, {_ANY}) -> ({_ANY}, {_ANY})")
            loop, anchor = f"%{level}l2", f"%{level}a"
        if init is not None:
            lines.append(f"%{level}i, %{level}l3 = transform.structured.fuse_into_containing_op "
                         f"{init} into {loop} : ({_ANY}, {_ANY}) -> ({_ANY}, {_ANY})")
            init = f"%{level}i"

    if tiled and any(s.outer):
        tile_and_fuse("o", s.outer)
    if tiled:
        for k, level in enumerate(_order_levels(s)):
            tile_and_fuse(f"t{k}", level)
    for handle, value in ((anchor, i), (root if root != anchor else None, 1000000 + i), (init, 2000000 + i)):
        if handle is not None:
            lines.append(f"%p{value} = transform.param.constant {value} : i64 -> !transform.param<i64>")
            lines.append(f'transform.annotate {handle} "{_TILED}" = %p{value}'
                         f" : {_ANY}, !transform.param<i64>")
    return _sequence("".join(f"    {x}\n" for x in lines))


def _order_levels(s: OpSchedule) -> list[list[int]]:
    """The register tiling as tile_using_forall levels, outermost first. In the natural loop
    order one level (scf-forall-to-for nests its loops in dimension order); another `order`
    is one level per loop that runs more than once, in that order (each a 1-D forall); loops
    of one trip need no tiling."""
    within = [o or d for o, d in zip(s.outer, s.loops)]
    multi = [i for i in s.order if s.tile[i] and within[i] > s.tile[i]]
    if not s.order or multi == sorted(multi):
        return [s.tile]
    return [[s.tile[i] if i == d else 0 for i in range(len(s.tile))] for d in multi]


def _vector_script(i: int, g: _Group) -> str:
    """Reduction tiling, 1-D windows and vectorization of one tiled group (see _tile_script)."""
    s = g.sched
    lines = [_match("%a", _TILED, i)]
    anchor, vec = "%a", []
    if s.vectorize:
        for k, present in ((1, g.consumer is not None), (2, g.init is not None)):
            if present:
                lines.append(_match(f"%v{k}", _TILED, k * 1000000 + i))
                vec.append(f"%v{k}")
    if any(s.reduce):
        n = sum(1 for x in s.reduce if x)
        lines.append(f"%r, {', '.join(f'%rl{k}' for k in range(n))} = "
                     f"transform.structured.tile_using_for {anchor} tile_sizes {s.reduce}"
                     f" : ({_ANY}) -> ({_ANY}, {', '.join([_ANY] * n)})")
        anchor = "%r"
    if s.vectorize:
        if s.linalg in _WINDOWED:
            lines.append(f"%d = transform.structured.decompose {anchor} : ({_ANY}) -> {_ANY}")
            anchor = "%d"
        vec.insert(0, anchor)
    lines += [f"transform.structured.vectorize {v} : {_ANY}" for v in vec]
    return _sequence("".join(f"    {x}\n" for x in lines))


def _tag(groups: list[_Group]) -> None:
    i64 = ir.IntegerType.get_signless(64)
    for i, g in enumerate(groups):
        g.anchor.attributes[_ATTR] = ir.IntegerAttr.get(i64, i)
        if g.consumer is not None:
            g.consumer.attributes[_ATTR] = ir.IntegerAttr.get(i64, 1000000 + i)
        if g.init is not None:
            g.init.attributes[_ATTR] = ir.IntegerAttr.get(i64, 2000000 + i)


def _untag(module) -> None:
    def strip(op):
        for attr in (_ATTR, _TILED):
            if attr in op.attributes:
                del op.attributes[attr]
    from dgc.ir import walk

    walk(module.operation, strip)


def run_transform(module, script: str) -> None:
    from mlir.dialects.transform import interpreter

    tmod = ir.Module.parse(script)
    seq = next(op for op in tmod.body.operations if "__transform_main" in str(op.attributes["sym_name"]))
    interpreter.apply_named_sequence(module.operation, seq, tmod)


# ---- weights in vector-friendly layouts --------------------------------------------------

def _const_array(value, ctx):
    op = constant_op(value)
    if op is None:
        return None
    a = attr_array(op.attributes["value"], ctx.blobs)
    shape = ir.ShapedType(value.type).shape
    if a is None or a.size not in (1, math.prod(shape)):
        return None
    return np.broadcast_to(a, shape) if a.size == 1 else a.reshape(shape)


def blob_key(value) -> str:
    """The dense_resource key of the constant `value` (the importer's weight name), "w" for
    inline constants: the stem of the keys of weights derived from it."""
    key = re.search(r"dense_resource<([^>]+)>", str(value.owner.attributes["value"]))
    return key.group(1) if key else "w"


def new_const(array: np.ndarray, ctx, key: str):
    from dgc.ir import arith_d, element_type

    while key in ctx.blobs:
        key += "_"
    a = np.ascontiguousarray(array)
    ctx.blobs[key] = a
    t = ir.RankedTensorType.get(list(a.shape), element_type(a.dtype))
    attr = ir.DenseResourceElementsAttr.get_from_buffer(memoryview(a), key, t, alignment=16)
    return arith_d.ConstantOp(t, attr).result


def _pack_weights(module, i: int, g: _Group, ctx) -> None:
    """Packing: a tiled conv reads its block of output channels, W[:, :, :, f0:f0+fb], from
    HWCF weights - fb floats every F floats (2 KB apart for F = 512, a new page every other
    input channel: the prefetchers and the TLB lose). Each block gets its own contiguous
    slab instead: the weights become a [F/fb, kh, kw, c, fb] constant (compile time) and the
    conv reads slab f0/fb. A matmul with a constant B ([K, N] or [1, K, N]) is packed the same
    way, [N/nb, K, nb]: its register block's columns of B, nb floats every N, hit only
    4 KB / (4 N) sets of the L1 (two sets for N = 512: the panel thrashes it). Zen 3, same
    run: tiny BERT 1.16x, the FC autoencoder (batch 1) 1.21x faster. Only on out-of-order
    cores: the cycle estimates of the in-order ones (`predict.in_order`) model no cache
    sets, and there LLVM indexes a slab from the k counter, an add more per step (AArch64
    LeNet-5: 2.7% more estimated cycles; Cortex-M7's FC autoencoder 3% more)."""
    from dgc.predict import in_order

    if g.sched.linalg != _CONV and (g.sched.linalg not in _MATMULS or in_order(ctx.target)):
        return
    from dgc.ir import tensor_d

    i64 = ir.IntegerType.get_signless(64)
    for op in ops_named(module.operation, (g.sched.linalg,)):
        if _TILED not in op.attributes or op.attributes[_TILED] != ir.IntegerAttr.get(i64, i):
            continue
        sizes = list(ir.ShapedType(op.operands[1].type).shape)
        lead = sizes[:-1]
        offsets, src = _channel_slices(op.operands[1], lead)
        if offsets and getattr(src.owner, "name", "") == "tensor.expand_shape":
            src = src.owner.operands[0]  # [K, N] -> [1, K, N] of a batch_matmul's B
        w = _const_array(src, ctx) if offsets else None
        if w is not None:
            w = w.reshape(*lead, -1)
        if w is None or w.shape[-1] % sizes[-1] or sizes[-1] == w.shape[-1]:
            continue
        f, fb = w.shape[-1], sizes[-1]
        sl = op.operands[1].owner
        with ir.InsertionPoint(sl), sl.location:
            packed = new_const(np.moveaxis(w.reshape(*lead, f // fb, fb), -2, 0), ctx,
                               blob_key(src) + f"_p{fb}")
            # block = (sum of the slices' channel offsets) floordiv fb
            total = sum((ir.AffineSymbolExpr.get(k) for k in range(len(offsets))),
                        ir.AffineConstantExpr.get(0))
            blk = affine_d.apply(ir.AffineMap.get(0, len(offsets), [ir.AffineExpr.get_floor_div(
                total, ir.AffineConstantExpr.get(fb))]), offsets)
            dyn = ir.ShapedType.get_dynamic_size()
            new = tensor_d.ExtractSliceOp(op.operands[1].type, packed, [blk], [], [],
                                          [dyn] + [0] * len(sizes), [1, *lead, fb], [1] * (len(sizes) + 1))
        op.operands[1] = new.result


def _channel_slices(value, whole: list[int]):
    """(dynamic channel offsets, source) of a chain of tensor.extract_slice ops that each keep
    the leading dims `whole` and cut only the last (channel) dim; ([], None) otherwise."""
    offsets = []
    n = len(whole)
    while getattr(value.owner, "name", "") == "tensor.extract_slice":
        sl = value.owner
        st = list(ir.DenseI64ArrayAttr(sl.attributes["static_offsets"]))
        sz = list(ir.DenseI64ArrayAttr(sl.attributes["static_sizes"]))
        dyn = ir.ShapedType.get_dynamic_size()
        # a leading dim kept whole may have a dynamic offset (a loop over a batch of one):
        # it can only be 0
        ndyn = st.count(dyn)
        if len(st) != n + 1 or any(o not in (0, dyn) for o in st[:n]) or sz[:n] != whole \
                or list(ir.ShapedType(sl.operands[0].type).shape[:n]) != whole or len(sl.operands) != 1 + ndyn:
            return [], None
        if st[n] == dyn:
            offsets.append(sl.operands[ndyn])
        elif st[n]:
            return [], None  # a static channel offset: not from tiling
        value = sl.operands[0]
    return offsets, value


def to_hwcf(module, ctx) -> None:
    """conv_2d_nhwc_fhwc with constant weights -> conv_2d_nhwc_hwcf (F contiguous: vectors)."""
    for op in ops_named(module.operation, (_FHWC,)):
        w = _const_array(op.operands[1], ctx)
        if w is None:
            continue
        with ir.InsertionPoint(op), op.location:
            wt = new_const(w.transpose(1, 2, 3, 0), ctx, blob_key(op.operands[1]) + "_hwcf")
            strides = [int(x) for x in np.array(ir.DenseElementsAttr(op.attributes["strides"]))]
            dil = [int(x) for x in np.array(ir.DenseElementsAttr(op.attributes["dilations"]))]
            new = linalg_d.conv_2d_nhwc_hwcf(op.operands[0], wt, outs=[op.operands[2]],
                                              strides=strides, dilations=dil)
        op.results[0].replace_all_uses_with(new)
        op.erase()


# ---- stages ---------------------------------------------------------------------------

def run(module, ctx) -> None:
    """Python stage: choose schedules, then tile, fuse and vectorize with one script."""
    to_hwcf(module, ctx)
    groups = choose(module, ctx, ctx.schedule_overrides)
    ctx.schedule = [g.sched for g in groups]
    ctx.dsp_ops = _dsp_blocks(module, ctx)
    for g in groups:
        _record_fusion(ctx, g.anchor, [g.consumer, g.init])
    if not groups:
        return
    _tag(groups)
    try:
        for i, g in enumerate(groups):
            try:
                run_transform(module, _tile_script(i, g))
                _pack_weights(module, i, g, ctx)
                run_transform(module, _vector_script(i, g))
            except (ValueError, ir.MLIRError) as err:  # keep going: this op stays scalar loops
                g.sched.note = "schedule failed, op left as loops: " + str(err).splitlines()[-1][:160]
    finally:
        _untag(module)
    from dgc.ir import PassManager

    # Fusion clones producers into the loops; the originals are now dead.
    PassManager.parse("builtin.module(canonicalize,cse)").run(module.operation)
    # Accumulators: a reduction loop reads and writes the same slice of its iter_arg each
    # step; as a loop-carried vector it stays in registers. On tensors this needs no alias
    # analysis (after bufferization the output buffer's views would block it). Innermost
    # loops first: one round per nesting level.
    run_transform(module, _HOIST_SUBSETS)
    # The tensor iter_args are now passed through unchanged: drop them, or bufferization
    # copies every output tile through a temporary.
    PassManager.parse("builtin.module(canonicalize,cse)").run(module.operation)
    forward_writes.run(module)


_HOIST_SUBSETS = _sequence("""
    %l1 = transform.structured.match ops{["scf.for"]} in %root : (!transform.any_op) -> !transform.any_op
    transform.loop.hoist_loop_invariant_subsets %l1 : !transform.any_op
    %l2 = transform.structured.match ops{["scf.for"]} in %root : (!transform.any_op) -> !transform.any_op
    transform.loop.hoist_loop_invariant_subsets %l2 : !transform.any_op
    %l3 = transform.structured.match ops{["scf.for"]} in %root : (!transform.any_op) -> !transform.any_op
    transform.loop.hoist_loop_invariant_subsets %l3 : !transform.any_op
""")


_CONTRACT = _on_funcs("""
    transform.apply_patterns to %f {
      transform.apply_patterns.vector.cast_away_vector_leading_one_dim
      transform.apply_patterns.vector.drop_unit_dims_with_shape_cast
      transform.apply_patterns.canonicalization
    } : !transform.any_op
    // No transfer_permutation_patterns here: on a square register block (8x8 on NEON) they
    // turn the broadcast of an A column into its transpose (wrong results, no verifier
    // error); after unrolling to 1-D (_TRANSFERS) they are safe.
    transform.apply_cse to %f : !transform.any_op
    transform.apply_patterns to %f {
      transform.apply_patterns.vector.lower_contraction lowering_strategy = "outerproduct"
      transform.apply_patterns.vector.lower_outerproduct
      transform.apply_patterns.vector.reduction_to_contract
      transform.apply_patterns.vector.lower_multi_reduction lowering_strategy = "innerparallel"
      transform.apply_patterns.vector.lower_transpose lowering_strategy = "shuffle_1d"
      transform.apply_patterns.vector.drop_unit_dims_with_shape_cast
      transform.apply_patterns.canonicalization
    } : !transform.any_op
    // Alone: canonicalization folds the inserts of one value back into a broadcast, forever
    // (seen on LeNet for Cortex-M0+, one-lane vectors).
    transform.apply_patterns to %f {
      transform.apply_patterns.vector.lower_broadcast
    } : !transform.any_op
    // Alone: with canonicalization in the same set, shape_cast lowering and folding can undo
    // each other forever (seen on a 3x4 Gemm).
    transform.apply_patterns to %f {
      transform.apply_patterns.vector.lower_shape_cast
    } : !transform.any_op
""")


_HOIST = _on_funcs("""
    transform.apply_patterns to %f {
      transform.apply_patterns.canonicalization
    } : !transform.any_op
    transform.apply_cse to %f : !transform.any_op
    %h = transform.structured.hoist_redundant_vector_transfers %f : (!transform.any_op) -> !transform.any_op
""")


_TRANSFERS = _on_funcs("""
    transform.apply_patterns to %f {
      transform.apply_patterns.vector.transfer_permutation_patterns
      transform.apply_patterns.vector.lower_transfer max_transfer_rank = RANK
      transform.apply_patterns.canonicalization
    } : !transform.any_op
""")


def lower_vectors(module, ctx) -> None:
    """After bufferization: contractions into FMAs on 1-D vectors, accumulators into registers."""
    if not getattr(ctx, "schedule", None):
        return
    from dgc.ir import PassManager

    # The pass, not the pattern set: inside apply_patterns it does not terminate here.
    PassManager.parse("builtin.module(func.func(fold-memref-alias-ops))").run(module.operation)
    rank = 1 if ctx.target.index_bits == 64 else 0
    _row_reductions(module)
    run_transform(module, _CONTRACT)
    # n-D transfers unrolled to 1-D (to 0-D with a 32-bit index: convert-vector-to-llvm would
    # build 64-bit memref descriptors for vector.load/store, as it has no index-width option;
    # scalars go through finalize-memref-to-llvm and LLVM re-forms vector loads). Then every
    # n-D value - elementwise ops (_rows) and the accumulators the schedule stage hoisted
    # into loop-carried vectors (_split_carried) - becomes one 1-D vector per row: LLVM sees
    # an n-D vector as an array and would rebuild it element by element. _HOIST catches
    # accumulators still in memory (its alias rules are stricter than the tensor hoisting).
    PassManager.parse(f"builtin.module(convert-vector-to-scf{{full-unroll=true target-rank={rank}}})"
                      ).run(module.operation)
    lanes = _register_lanes(ctx.target)
    _rows(module, lanes)
    _split_carried(module, lanes)
    run_transform(module, _HOIST)
    run_transform(module, _TRANSFERS.replace("RANK", str(rank)))
    if rank == 0:
        _scalar_memory(module)
    allow_fma(module)


def _row_reductions(module) -> None:
    """vector.multi_reduction of one row (every dim 1 but the reduced, innermost one: the
    row reductions the schedule vectorizes) -> one vector.reduction, marked `reassoc`: LLVM
    folds the row's registers into one with vector ops, then reduces that one in log2(lanes)
    shuffle steps. `lower_multi_reduction` (innerparallel, which contractions need) would
    take the row apart element by element."""
    from dgc.ir import vector_d

    reassoc = ir.Attribute.parse("#arith.fastmath<reassoc,contract>")
    for op in ops_named(module.operation, {"vector.multi_reduction"}):
        src = ir.VectorType(op.operands[0].type)
        shape = list(src.shape)
        dims = list(ir.DenseI64ArrayAttr(op.attributes["reduction_dims"]))
        if dims != [len(shape) - 1] or any(d != 1 for d in shape[:-1]) or shape[-1] < 2:
            continue
        kind = op.attributes["kind"]
        out_t = op.results[0].type
        with ir.InsertionPoint(op), op.location:
            flat = vector_d.shape_cast(ir.VectorType.get([shape[-1]], src.element_type), op.operands[0])
            acc = op.operands[1]
            if str(acc.type).startswith("vector<"):  # all dims 1: its one element
                acc = vector_d.extract(acc, [], [0] * len(ir.VectorType(acc.type).shape))
            red = vector_d.ReductionOp(src.element_type, kind, flat, acc=acc)
            red.attributes["fastmath"] = reassoc
            res = vector_d.broadcast(out_t, red.result) if str(out_t).startswith("vector<") else red.result
        op.results[0].replace_all_uses_with(res)
        op.erase()


def _rows(module, lanes) -> None:
    """Elementwise arith/math ops on n-D vectors -> one op per register piece (`_pieces_of`:
    a 1-D row, or a chunk of a row too long for LLVM to keep in registers), through
    vector.extract / vector.insert (strided slices for chunks), so that the rows of a fused
    consumer (bias, ReLU, residual Add) connect to the per-piece accumulators;
    canonicalization then folds the extracts and inserts away. Left n-D, the operands are
    re-assembled element by element (vector.from_elements)."""
    from dgc.ir import walk

    def unroll(op):
        if (op.name.split(".")[0] not in ("arith", "math") and op.name != "vector.fma") or \
                len(op.results) != 1 or \
                not isinstance(op.results[0].type, ir.VectorType):
            return
        vt = ir.VectorType(op.results[0].type)
        same = all(isinstance(v.type, ir.VectorType) and ir.VectorType(v.type).shape == vt.shape
                   for v in op.operands)
        if not _split_type(vt, lanes) or vt.shape[-1] == 1 or not len(op.operands) or not same:
            return
        attrs = {k: op.attributes[k] for k in op.attributes}
        with ir.InsertionPoint(op), op.location:
            cut = _pieces_of(vt, lanes)  # the result's pieces, for every operand (a select's i1 too)
            per_operand = [_split_pieces(v, lanes, cut) for v in op.operands]
            pieces = [ir.Operation.create(op.name, results=[ir.VectorType.get([size], vt.element_type)],
                                          attributes=attrs, operands=list(piece)).results[0]
                      for piece, (_, _, size) in zip(zip(*per_operand), cut)]
            op.results[0].replace_all_uses_with(_assemble(pieces, vt, lanes))
        op.erase()

    walk(module.operation, unroll)


def _split_carried(module, lanes) -> None:
    """scf.for loops carrying n-D vectors (register blocks of accumulators) -> loops carrying
    one 1-D vector per register piece (`_pieces_of`). LLVM sees an n-D vector as an array of
    vectors and, through a loop-carried phi, rebuilds it element by element; so it does with
    a 1-D vector wider than a register whose length is not a power of two (a row of 24
    floats on AVX2: 24 scalars). The pieces stay in registers. They are re-assembled where
    the old value was used, and the extracts of the yield fold against the inserts of the
    body (canonicalization)."""
    from dgc.ir import PassManager
    from mlir.dialects import scf as scf_d

    def split(t):
        return isinstance(t, ir.VectorType) and _split_type(ir.VectorType(t), lanes)

    loops = [op for op in ops_named(module.operation, ("scf.for",))
             if any(split(v.type) for v in op.operands[3:])]
    for loop in loops:  # nested loops are moved into the new loop, not copied: handles stay valid
        _split_loop(loop, split, lanes, scf_d)
    if loops:
        PassManager.parse("builtin.module(canonicalize,cse)").run(module.operation)


def _register_lanes(target):
    """element type -> its elements per vector register of `target`; 0 where the target has
    no SIMD registers (its 32-bit "vectors" live in scalar registers: nothing to cut to)."""
    def lanes(element_type) -> int:
        if not target.simd:
            return 0
        width = target.index_bits if isinstance(element_type, ir.IndexType) else \
            getattr(element_type, "width", 0)
        return max(1, target.vector_bits // width) if width else 0
    return lanes


def _chunks(n: int, lanes: int) -> list[tuple[int, int]]:
    """(offset, size) of the pieces of a 1-D row of n elements: the whole row, unless LLVM
    would scalarize it across blocks - more than `lanes` elements and not a power of two (its
    widened type is not legal, and a non-power-of-two vector breaks down into scalars) - then
    register-wide chunks and the remainder (at most a register: widened, legal)."""
    if not lanes or n <= lanes or not n & (n - 1):
        return [(0, n)]
    return [(o, min(lanes, n - o)) for o in range(0, n, lanes)]


def _pieces_of(vt, lanes) -> list[tuple[list[int], int, int]]:
    """(row index, offset, size) of the register pieces of vector type `vt`, in order: every
    1-D row, cut by `_chunks`; `lanes`: element type -> lanes (`_register_lanes`)."""
    cuts = _chunks(vt.shape[-1], lanes(vt.element_type))
    return [(idx, o, size) for idx in _rows_of(vt) for o, size in cuts]


def _split_type(vt, lanes) -> bool:
    """Whether values of vector type `vt` are taken apart into register pieces."""
    return vt.rank >= 2 or (vt.rank == 1 and len(_pieces_of(vt, lanes)) > 1)


def _rows_of(vt) -> list[list[int]]:
    """Indices of the 1-D rows of an n-D vector type, in order ([[]] for a 1-D type)."""
    lead = vt.shape[:-1]
    return [[int(i) for i in np.unravel_index(k, lead)] for k in range(math.prod(lead))] if lead else [[]]


def _assemble(pieces, vt, lanes):
    """The vector `vt` from its register pieces (vector.insert / insert_strided_slice chains;
    they fold against the extracts of `_split_pieces`)."""
    row_t = ir.VectorType.get(vt.shape[-1:], vt.element_type)
    cuts = _chunks(vt.shape[-1], lanes(vt.element_type))
    rows, k = [], 0
    for _ in _rows_of(vt):
        if len(cuts) == 1:
            rows.append(pieces[k])
        else:
            row = ub_d.poison(row_t)
            for piece, (o, _) in zip(pieces[k:k + len(cuts)], cuts):
                row = vector_d.insert_strided_slice(piece, row, [o], [1])
            rows.append(row)
        k += len(cuts)
    if vt.rank == 1:
        return rows[0]
    acc = ub_d.poison(vt)
    for row, idx in zip(rows, _rows_of(vt)):
        acc = vector_d.insert(row, acc, [], idx)
    return acc


def _split_pieces(v, lanes, cut=None) -> list:
    """The register pieces of the vector value `v` (vector.extract each row, then
    extract_strided_slice each chunk): its own (`_pieces_of`) or those of `cut`."""
    vt = ir.VectorType(v.type)
    out, rows = [], {}
    for idx, o, size in cut or _pieces_of(vt, lanes):
        key = tuple(idx)
        if key not in rows:
            rows[key] = vector_d.extract(v, [], idx) if idx else v
        row = rows[key]
        out.append(row if size == vt.shape[-1] else
                   vector_d.extract_strided_slice(ir.VectorType.get([size], vt.element_type), row, [o], [size], [1]))
    return out


def _flatten(values, split, lanes) -> list:
    """Values with every `split` vector replaced by its register pieces."""
    return [r for v in values for r in (_split_pieces(v, lanes) if split(v.type) else [v])]


def _unflatten(flat, types, split, lanes) -> list:
    """Inverse of _flatten: one value per type, split vectors re-assembled from their pieces."""
    out, k = [], 0
    for t in types:
        n = len(_pieces_of(ir.VectorType(t), lanes)) if split(t) else 1
        out.append(_assemble(flat[k:k + n], ir.VectorType(t), lanes) if split(t) else flat[k])
        k += n
    return out


def _split_loop(loop, split, lanes, scf_d) -> None:
    types = [v.type for v in loop.operands[3:]]
    with ir.InsertionPoint(loop), loop.location:
        new = scf_d.ForOp(loop.operands[0], loop.operands[1], loop.operands[2],
                          _flatten(loop.operands[3:], split, lanes))
    old_body = loop.regions[0].blocks[0]
    with ir.InsertionPoint(new.body), loop.location:
        old_body.arguments[0].replace_all_uses_with(new.induction_variable)
        for arg, v in zip(old_body.arguments[1:], _unflatten(list(new.inner_iter_args), types, split, lanes)):
            arg.replace_all_uses_with(v)
    for op in list(old_body.operations):  # the old yield comes along, replaced below
        o = op.operation
        o.detach_from_parent()
        new.body.append(o)
    old_yield = new.body.operations[len(new.body.operations) - 1]
    with ir.InsertionPoint(old_yield), loop.location:
        scf_d.YieldOp(_flatten(old_yield.operands, split, lanes))
    old_yield.erase()
    with ir.InsertionPoint(loop), loop.location:
        for r, v in zip(loop.results, _unflatten(list(new.results), types, split, lanes)):
            r.replace_all_uses_with(v)
    loop.erase()


def allow_fma(module) -> None:
    """Mark float multiplies, adds and subtracts `contract`, so LLVM fuses a multiply feeding
    an add into an FMA where the target has one (one rounding instead of two, as ONNX
    Runtime's kernels do). Vectorized contractions lower to mulf + addf (often through shape
    casts that fold away only later); without the flag llc keeps both instructions."""
    from dgc.ir import walk

    contract = ir.Attribute.parse("#arith.fastmath<contract>")

    def mark(op):
        if op.name in ("arith.mulf", "arith.addf", "arith.subf"):
            op.attributes["fastmath"] = contract

    walk(module.operation, mark)


def _scalar_memory(module) -> None:
    """0-D vector.load/store -> memref.load/store (+ broadcast/extract): see lower_vectors."""
    from dgc.ir import memref_d, vector_d

    for op in ops_named(module.operation, ("vector.load", "vector.store")):
        vt = ir.VectorType(op.results[0].type if op.name == "vector.load" else op.operands[0].type)
        if vt.rank != 0:
            continue
        with ir.InsertionPoint(op), op.location:
            if op.name == "vector.load":
                x = memref_d.load(op.operands[0], list(op.operands[1:]))
                op.results[0].replace_all_uses_with(vector_d.broadcast(vt, x))
            else:
                x = vector_d.extract(op.operands[0], [], [])
                memref_d.store(x, op.operands[1], list(op.operands[2:]))
        op.erase()


def dump(schedules: list[OpSchedule], target, dsp_ops: list | None = None) -> str:
    """JSON, one op per line (easy to edit; `--schedule` reads the "ops" back). `dsp_ops`
    (Cortex-M DSP targets): the int8 convs the SMLAD kernels compute, with their register
    blocks (`dsp_kernels.describe`), under "dsp"."""
    ops = ",\n  ".join(json.dumps(s.to_json()) for s in schedules)
    dsp = ""
    if dsp_ops:
        dsp = ',\n "dsp": [\n  ' + ",\n  ".join(json.dumps(d) for d in dsp_ops) + "\n]"
    return f'{{"target": "{target.name}", "ops": [\n  {ops}\n]{dsp}}}\n'


def _dsp_blocks(module, ctx) -> list[dict]:
    """The int8 convs the SMLAD kernels will compute (`dsp_kernels.describe`, on tensors):
    tuned register blocks and unroll counts (`--tuning-db` entries {"dsp_block": [P, F],
    "dsp_unroll": U} by signature; an entry without "dsp_unroll" keeps the default; untuned ops
    under `--predict`: `dgc.predict.best_predicted_dsp`) go to
    ctx.dsp_blocks by node key, which the dsp-kernels stage reads after bufferization."""
    ops = dsp_kernels.describe(module, ctx.target)
    tuned = getattr(ctx, "tuning", None) or {}
    blocks = getattr(ctx, "dsp_blocks", None)
    predict = getattr(ctx, "predict", False)
    for d in ops:
        best = tuned.get(d["signature"]) or {}
        if not best and predict:
            from dgc.predict import best_predicted_dsp

            best = best_predicted_dsp(d)
        block, unroll = best.get("dsp_block"), best.get("dsp_unroll", d["unroll"])
        if block is None or blocks is None or d["key"] in blocks:
            continue
        if not (isinstance(block, list) and block in d["space"]) or unroll not in d["unrolls"]:
            raise UsageError(f"tuned dsp block {block!r} (unroll {unroll!r}) is not allowed for node '{d['key']}'",
                             hint="allowed: " + ", ".join(map(str, d["space"])) + "; unroll " +
                             ", ".join(map(str, d["unrolls"])) + "; tune again with `dgc tune`")
        blocks[d["key"]] = {"pixels": block[0], "filters": block[1], **({"weights": block[2]} if len(block) > 2 else {}),
                            "unroll": unroll}
        d["block"], d["unroll"] = block, unroll
    return ops

