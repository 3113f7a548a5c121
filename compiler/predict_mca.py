"""A second cost model: compile the candidate, do not run it; llvm-mca its hot loops.

`predict_mca(entry, schedule, target)` estimates the cycles of one op (`entry`: an item of
`dgc compile --dump-schedule`; `schedule`: its tile/reduce/outer/vectorize fields):

  1. `one_op_model(entry)` builds an ONNX model of that op alone (Conv, grouped Conv,
     MaxPool/AveragePool, MatMul/Gemm with constant weights; a bias and a ReLU when the
     signature is fused) whose schedule stage sees the same Linalg op and loop ranges;
  2. it is compiled with the candidate forced (`schedule=[{"key": "op", ...}]`, checked in
     `res.schedule`) to assembly;
  3. `loop_nest(asm)` reads llc's loop comments ("This Inner Loop Header: Depth=N",
     "Parent Loop", "in Loop: Header=") into basic blocks and loops; the op's nest is the
     loop holding the most multiply-accumulates (max/add for pooling). How often each of its
     loops runs follows from the op's work: the innermost loop runs volume / (MACs per
     iteration) times (counted from its instructions and their vector widths, so LLVM's
     unrolling does not matter); the loops around it are matched, inside out, to the
     schedule's loops (reduction steps, then register blocks, then cache blocks) and run
     the product of the trip counts outside them. Work is conserved: MACs that LLVM peeled
     or rotated out of the innermost loop into its parents' blocks are taken off its count
     (a reduction loop of 4 steps with the first peeled runs 3 times), and the unconditional
     branch after a loop's back edge ("blo header; b exit") runs once per exit, not per
     iteration;
  4. every basic block of the nest costs its llvm-mca steady-state cycles per iteration
     (-mcpu=target.cpu, `dgc.runtime.icount.estimate`, cached per block text) times its
     count.

That is the way Cortex-M costs are measured by `dgc tune` (llvm-mca of the executed blocks),
without QEMU: only the counts are modelled (on Cortex-M7 within ~1% of the QEMU count of the
same one-op object for most schedules, tests/test_predict_mca.py). What it cannot see: the op
in its model (other ops around it change LLVM's register allocation and code), padding (the
signature has none: the one-op model has the op's strides and dilations but no padding),
caches (llvm-mca assumes L1 hits). Results are cached in memory by (target, signature, schedule).
Nothing is run; a prediction costs one compile (~0.3 s on Cortex-M, more for big ops).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np

KEY = "op"
_FIELDS = ("tile", "reduce", "outer", "order", "vectorize", "fuse")
_cache: dict[tuple, float] = {}


# ---- 1. the op alone as an ONNX model --------------------------------------------------

def one_op_model(entry: dict, fuse: bool | None = None):
    """An ONNX model whose node "op" lowers to the Linalg op of `entry` with its loop ranges
    (the entry's strides and dilations, `window`, else 1; no padding: the input is what the
    output's window reads; NHWC in and out, so no
    layout transposes remain). `fuse`: a bias and a ReLU after convs, a bias after matmuls
    (default: the entry's `fuse`). An int8 conv or matmul (`dtype` "i8,...") is a ConvInteger /
    MatMulInteger, or fused a QLinearConv / QLinearMatMul (int32 accumulation, requantized to
    int8), with uint8 weights and a weight zero point when its dtype has int16 (weights w - zp)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    linalg, loops = entry["linalg"], [int(x) for x in entry["loops"]]
    fuse = entry.get("fuse", True) if fuse is None else fuse
    rng = np.random.default_rng(0)
    inits, nodes = [], []
    dtype = entry.get("dtype", "")
    int8 = dtype.startswith("i8") and not linalg.startswith("linalg.pooling")
    wdt = np.uint8 if "i16" in dtype else np.int8

    def const(name, shape):
        if int8:  # weights, or int32 biases
            a = rng.integers(-100, 100, shape).astype(np.int32) if name == "b" else \
                rng.integers(np.iinfo(wdt).min, np.iinfo(wdt).max, shape).astype(wdt)
        else:
            a = (rng.standard_normal(shape) * 0.1).astype(np.float32)
        inits.append(numpy_helper.from_array(a, name))
        return name

    def scalars(*pairs):  # constant scales (float) and zero points (numpy scalars)
        for name, v in pairs:
            inits.append(numpy_helper.from_array(np.asarray(v), name))
        return [name for name, _ in pairs]

    def int8_op(kind, x, w, out, **attrs):
        """ConvInteger/MatMulInteger (int32 out), or fused QLinearConv/QLinearMatMul (int8 out)."""
        wz = np.array(100 if wdt == np.uint8 else 0, wdt)
        if not fuse:
            ins = [x, w, *scalars(("xz", np.int8(0)), ("wz", wz))]
            nodes.append(helper.make_node(f"{kind}Integer", ins, [out], name=KEY, **attrs))
            return
        q = scalars(("xs", np.float32(0.02)), ("xz", np.int8(0)))
        ws = scalars(("ws", np.float32(0.01)), ("wz", wz))
        y = scalars(("ys", np.float32(0.05)), ("yz", np.int8(0)))
        bias = [const("b", [ch])] if kind == "Conv" else []
        nodes.append(helper.make_node(f"QLinear{kind}", [x, *q, w, *ws, *y, *bias], [out], name=KEY, **attrs))

    nchw = linalg.startswith(("linalg.conv", "linalg.depthwise", "linalg.pooling"))
    if nchw:  # NHWC in and out around the NCHW ONNX op: dgc's layout transposes cancel
        n, oh, ow, ch, kh, kw = loops[:6]
        c = loops[6] if linalg == "linalg.conv_2d_nhwc_hwcf" else ch
        sh, sw, dh, dw = entry.get("window") or (1, 1, 1, 1)
        win = dict(strides=[sh, sw], dilations=[dh, dw]) if entry.get("window") else {}
        x_shape = [n, (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1, c]
        y_shape = [n, oh, ow, ch]
        nodes.append(helper.make_node("Transpose", ["x"], ["xc"], name="to_nchw", perm=[0, 3, 1, 2]))
        if linalg.startswith("linalg.pooling_nhwc_"):
            kind = linalg.rsplit("_", 1)[1]
            if kind in ("max", "sum"):
                if kind == "sum":  # AveragePool: no dilations before opset 19
                    if win.pop("dilations", [1, 1]) != [1, 1]:
                        raise ValueError("no one-op model for a dilated average pool")
                nodes.append(helper.make_node("MaxPool" if kind == "max" else "AveragePool", ["xc"], ["t"],
                                              name=KEY, kernel_shape=[kh, kw], **win))
            else:
                raise ValueError(f"no one-op model for {linalg}")
        else:
            group = 1 if linalg == "linalg.conv_2d_nhwc_hwcf" else c
            if int8:
                int8_op("Conv", "xc", const("w", [ch, c // group, kh, kw]), "t", kernel_shape=[kh, kw],
                        group=group, **win)
            else:
                ins = ["xc", const("w", [ch, c // group, kh, kw])] + ([const("b", [ch])] if fuse else [])
                nodes.append(helper.make_node("Conv", ins, ["t"], name=KEY, kernel_shape=[kh, kw], group=group,
                                              **win))
                if fuse:
                    nodes.append(helper.make_node("Relu", ["t"], ["t2"], name="relu"))
        nodes.append(helper.make_node("Transpose", [nodes[-1].output[0]], ["y"], name="to_nhwc", perm=[0, 2, 3, 1]))
    elif linalg in ("linalg.matmul", "linalg.batch_matmul"):
        *batch, m, nn, k = loops
        b = batch[0] if batch else 0
        lead = [b] if b else []  # a 3-D MatMul: its bias Add fuses (after a 2-D one it does not)
        x_shape, y_shape = [*lead, m, k], [*lead, m, nn]
        w = const("w", [*lead[:b > 1], k, nn])
        if int8:
            int8_op("MatMul", "x", w, "y")
        elif fuse:
            nodes.append(helper.make_node("MatMul", ["x", w], ["t"], name=KEY))
            nodes.append(helper.make_node("Add", ["t", const("b", [nn])], ["y"], name="bias"))
        else:
            nodes.append(helper.make_node("MatMul", ["x", w], ["y"], name=KEY))
    else:
        raise ValueError(f"no one-op model for {linalg}")
    xt = TensorProto.INT8 if int8 else TensorProto.FLOAT
    yt = (TensorProto.INT8 if fuse else TensorProto.INT32) if int8 else TensorProto.FLOAT
    graph = helper.make_graph(nodes, "op", [helper.make_tensor_value_info("x", xt, x_shape)],
                              [helper.make_tensor_value_info("y", yt, y_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


# ---- 3. llc's loop comments -> blocks and loops -------------------------------------------

@dataclasses.dataclass
class Block:
    name: str
    loop: str | None  # header name of the innermost loop holding it
    insns: list[str]


@dataclasses.dataclass
class Loop:
    header: str
    depth: int
    parent: str | None
    blocks: list[int] = dataclasses.field(default_factory=list)  # own blocks (not in a child)
    children: list[str] = dataclasses.field(default_factory=list)


def _comment_char(target) -> str:
    t = target.triple
    return "#" if t.startswith(("x86", "i386", "i686")) else "//" if t.startswith("aarch64") else "@"


_LABEL = re.compile(r"^(\.?L?BB\d+_\d+|[A-Za-z_.$][\w.$]*):")


def loop_nest(asm: str, target) -> tuple[list[Block], dict[str, Loop]]:
    """Basic blocks (in order) and loops (by header block name, "BB0_7") of llc's assembly."""
    cc = _comment_char(target)
    blocks: list[Block] = []
    loops: dict[str, Loop] = {}
    cur = None
    for line in asm.splitlines():
        code, _, comment = line.partition(cc)
        code = code.strip()
        m = _LABEL.match(code) if code else None
        bb = re.match(r"\s*(%bb\.\d+):", comment) if not code else None
        if m or bb:
            name = (m.group(1) if m else bb.group(1)).lstrip(".")
            if name.startswith("LBB"):
                name = name[1:]
            cur = Block(name, None, [])
            blocks.append(cur)
            comment = comment[bb.end():] if bb else comment
        if cur is None:
            continue
        if comment:
            if h := re.search(r"This (?:Inner )?Loop Header: Depth=(\d+)", comment):
                cur.loop = cur.name
                loops.setdefault(cur.name, Loop(cur.name, int(h.group(1)), None)).depth = int(h.group(1))
            elif p := re.search(r"Parent Loop (\S+) Depth=(\d+)", comment):
                loops.setdefault(cur.name, Loop(cur.name, 0, None)).parent = p.group(1)
            elif i := re.search(r"in Loop: Header=(\S+) Depth=", comment):
                cur.loop = i.group(1)
        if code and not m and not code.startswith("."):
            cur.insns.append(" ".join(code.split()))
    loops = {k: v for k, v in loops.items() if v.depth}
    for k, b in enumerate(blocks):
        if b.loop in loops:
            loops[b.loop].blocks.append(k)
    for lp in loops.values():
        if lp.parent in loops:
            loops[lp.parent].children.append(lp.header)
    return blocks, loops


# ---- how often each loop of the op's nest runs ---------------------------------------------

_MAC = {  # multiply-accumulate mnemonics per architecture (comment char), lanes from operands
    "@": re.compile(r"^v(?:mla|fma)\.f32\s+([sdq])\d"),
    "//": re.compile(r"^(?:fmla|fmadd)\s+(?:v\d+\.(\d+)s|s\d)"),
    "#": re.compile(r"^vf(?:n?m(?:add|sub)|madd|msub)\d*(ps|ss)\b.*%([xyz])mm\d+\s*$"),
}
_MUL = {
    "@": re.compile(r"^vmul\.f32\s+([sdq])\d"),
    "//": re.compile(r"^fmul\s+(?:v\d+\.(\d+)s|s\d)"),
    "#": re.compile(r"^v?mul(ps|ss)\b.*%([xyz])mm\d+\s*$"),
}
_ADD = {
    "@": re.compile(r"^vadd\.f32\s+([sdq])\d"),
    "//": re.compile(r"^fadd\s+(?:v\d+\.(\d+)s|s\d)"),
    "#": re.compile(r"^v?add(ps|ss)\b.*%([xyz])mm\d+\s*$"),
}


_IMAC = {  # int8 ops' int32 accumulations (NEON; the i8 x i8 products are widened to i16 first)
    "@": re.compile(r"^v(?:mlal|mla|addw)\.(?:[su]16|i32)\s+([dq])\d"),
    "//": re.compile(r"^(?:[su]?mlal2?|[su]addw2?|mla)\s+v\d+\.(\d+)s"),
}


_UNCOND = {"@": re.compile(r"^b(?:\.w)?\s"), "//": re.compile(r"^b\s"), "#": re.compile(r"^jmp\s")}
_COND = {
    "@": re.compile(r"^(?:b(?:eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le)(?:\.w)?|cbn?z)\s"),
    "//": re.compile(r"^(?:b\.\w+|cbn?z|tbn?z)\s"),
    "#": re.compile(r"^j(?!mp)[a-z]+\s"),
}


def _lanes_of(m, cc: str) -> int:
    if cc == "@":
        return {"s": 1, "d": 2, "q": 4}[m.group(1)]
    if cc == "//":
        return int(m.group(1)) if m.group(1) else 1
    return 1 if m.group(1) == "ss" else {"x": 4, "y": 8, "z": 16}[m.group(2)]


def _work(insns: list[str], pattern, cc: str, cap: int) -> int:
    """Lane-operations of the matching instructions; a vector wider than the tile (`cap`)
    does `cap` useful lanes."""
    out = 0
    for i in insns:
        if m := pattern.match(i):
            out += min(_lanes_of(m, cc), cap)
    return out


def _vector_dim(entry: dict) -> int:
    kinds = entry["kinds"]
    if entry["linalg"].startswith(("linalg.conv", "linalg.depthwise", "linalg.pooling")):
        return 3
    return [i for i, k in enumerate(kinds) if k == "p"][-1]


def schedule_trips(entry: dict, sched: dict) -> list[int]:
    """Trip counts of the loops of the tiled op, outer to inner: cache blocks, register
    blocks, reduction steps (loops that run once are left out)."""
    loops, kinds = entry["loops"], entry["kinds"]
    tile, red, outer = sched["tile"], sched["reduce"], sched.get("outer") or [0] * len(loops)
    trips = []
    for i, o in enumerate(outer):  # outer (cache) tiles first
        if o and kinds[i] == "p":
            trips.append(loops[i] // o)
    for i in sched.get("order") or [i for i, k in enumerate(kinds) if k == "p"]:  # in loop order
        within = outer[i] or loops[i]
        trips.append(within // tile[i] if tile[i] else 1)
    for i, k in enumerate(kinds):
        if k == "r":
            trips.append(loops[i] // red[i] if red[i] else 1)
    return [t for t in trips if t > 1]


@dataclasses.dataclass
class Analysis:
    cycles: float
    inner_cycles: float  # llvm-mca cycles per iteration of the innermost loop
    inner_count: float  # times it runs
    inner_insns: int
    counts: list[tuple[float, float, int]]  # (count, cycles per run, instructions) per block run
    depth_match: bool  # the nest has exactly one asm loop per scheduled loop
    compile_s: float = 0.0


def _applied(res, key: str = KEY) -> dict:
    for e in json.loads(res.schedule)["ops"]:
        if e["key"] == key:
            return e
    raise ValueError(f"no schedule entry '{key}' in the compiled one-op model")


def analyse(asm: str, entry: dict, sched: dict, target) -> Analysis:
    """Cycles of the op in `asm` (the one-op model compiled with schedule `sched`)."""
    from dgc.runtime.icount.estimate import _cycles_per_block

    cc = _comment_char(target)
    blocks, loops = loop_nest(asm, target)
    linalg = entry["linalg"]
    volume = math.prod(entry["loops"])
    cap = sched["tile"][_vector_dim(entry)] if sched.get("vectorize", True) else 1 << 30
    cap = cap or entry["loops"][_vector_dim(entry)]
    if linalg.startswith("linalg.pooling_nhwc_sum"):
        pattern = _ADD[cc]
    elif linalg.startswith("linalg.pooling"):
        pattern = None
    elif entry.get("dtype", "").startswith("i8") and any(_IMAC.get(cc, _MAC[cc]).match(i) for b in blocks
                                                         for i in b.insns):
        pattern = _IMAC[cc]
    else:
        pattern = _MAC[cc] if any(_MAC[cc].match(i) for b in blocks for i in b.insns) else _MUL[cc]

    def own_work(h):
        return sum(_work(blocks[b].insns, pattern, cc, cap) for b in loops[h].blocks) if pattern else 0

    def chain(h):
        out = [h]
        while loops[out[-1]].parent in loops:
            out.append(loops[out[-1]].parent)
        return out  # inner to outer

    innermost = [h for h, lp in loops.items() if not lp.children]
    if not innermost:
        raise ValueError("no loop in the compiled op")
    if pattern:
        inner = max(innermost, key=lambda h: (own_work(h), loops[h].depth))
    else:  # max pooling: the deepest loop with the most instructions
        inner = max(innermost, key=lambda h: (loops[h].depth, sum(len(blocks[b].insns) for b in loops[h].blocks)))
    path = chain(inner)
    trips = schedule_trips(entry, sched)
    prods = [math.prod(trips[:j + 1]) for j in range(len(trips))]
    work = own_work(inner)
    if work:
        n_inner = volume / work
        # the scheduled loop the innermost asm loop stands for (the ones inside it unrolled)
        j0 = next((j for j, p in enumerate(prods) if p >= n_inner * 0.999), len(prods) - 1)
    else:
        j0 = len(prods) - 1
        n_inner = prods[j0] if prods else 1
    count_of = {inner: n_inner}
    for i, h in enumerate(path[1:], start=1):
        j = j0 - i
        count_of[h] = prods[j] if j >= 0 else 1
    # other loops of the nest (not on the path to the innermost one): once per run of their parent
    top = path[-1]
    todo = [top]
    while todo:
        h = todo.pop()
        for c in loops[h].children:
            if c not in count_of:
                count_of[c] = count_of[h]
            todo.append(c)
    if work:  # work is conserved: what LLVM peeled out of the innermost loop runs in its parents
        done = sum(n * _work(blocks[b].insns, pattern, cc, cap) for h, n in count_of.items() if h != inner
                   for b in loops[h].blocks)
        n_inner = count_of[inner] = max(0.0, volume - done) / work
    runs: list[tuple[float, float, tuple[str, ...]]] = []
    for h, n in count_of.items():
        for b in loops[h].blocks:
            insns = blocks[b].insns
            if len(insns) >= 2 and _UNCOND[cc].match(insns[-1]) and _COND[cc].match(insns[-2]):
                # "blo header; b exit": the last branch runs once per exit from the loop
                parent = loops[h].parent
                runs.append((b + 0.5, count_of.get(parent, 1) if parent else 1, (insns[-1],)))
                insns = insns[:-1]
            if insns:
                runs.append((b, n, tuple(insns)))
    runs.sort()
    merged: list[tuple[float, tuple[str, ...]]] = []  # consecutive blocks run as often: one run
    last = None
    for b, n, text in runs:
        if merged and last == b - 1 and merged[-1][0] == n:
            merged[-1] = (n, merged[-1][1] + text)
        else:
            merged.append((n, text))
        last = b
    per = _cycles_per_block([t for _, t in merged], target)
    total, counts = 0.0, []
    for n, t in merged:
        c = per.get(t, float(len(t)))
        total += n * c
        counts.append((n, c, len(t)))
    inner_text = tuple(i for b in loops[inner].blocks for i in blocks[b].insns)
    inner_c = _cycles_per_block([inner_text], target).get(inner_text, float(len(inner_text)))
    return Analysis(total, inner_c, n_inner, len(inner_text), counts, len(path) == len(trips))


def compile_op(entry: dict, schedule: dict, target, workdir: str | None = None):
    """The one-op model of `entry` compiled to assembly with `schedule` forced; checks that the
    schedule stage saw the same op and loops and took the schedule."""
    import dgc

    model = one_op_model(entry)
    fields = {k: schedule[k] for k in _FIELDS if k in schedule}
    fields.setdefault("fuse", entry.get("fuse", True))
    res = dgc.compile(model, target, name="op", emit=("asm",), schedule=[{"key": KEY, **fields}],
                      workdir=workdir, ram_limit=None, flash_limit=None)
    got = _applied(res)
    if got["linalg"] != entry["linalg"] or list(got["loops"]) != list(entry["loops"]):
        raise ValueError(f"the one-op model compiles to {got['linalg']} {got['loops']}, "
                         f"not {entry['linalg']} {entry['loops']}")
    return res, got


def _fuse_of(entry: dict) -> bool:
    if "fuse" in entry:
        return bool(entry["fuse"])
    return not str(entry.get("key", "")).endswith(":alone")


def predict_mca(entry: dict, schedule: dict, target, workdir: str | None = None) -> float:
    """Estimated cycles of the op `entry` (an item of `--dump-schedule`, or linalg/loops/kinds
    [/fuse]) with `schedule` (its tile/reduce/outer/vectorize fields) on `target`: the
    candidate is compiled alone, nothing is run (see the module doc). Cached in memory."""
    return explain(entry, schedule, target, workdir).cycles


def explain(entry: dict, schedule: dict, target, workdir: str | None = None) -> Analysis:
    """`predict_mca` with its parts: innermost loop cycles and count, every block's count."""
    import time

    import dgc

    target = target if not isinstance(target, str) else dgc.get_target(target)
    entry = {**entry, "fuse": _fuse_of(entry)}
    sched = {k: schedule[k] for k in ("tile", "reduce", "outer", "order", "vectorize") if k in schedule}
    sched.setdefault("outer", [0] * len(entry["loops"]))
    sched.setdefault("vectorize", True)
    key = (target.name, target.cpu, entry["linalg"], tuple(entry["loops"]), entry["kinds"], entry["fuse"],
           json.dumps(sched, sort_keys=True))
    if key not in _cache:
        t0 = time.perf_counter()
        res, got = compile_op(entry, sched, target, workdir)
        applied = {k: got[k] for k in ("tile", "reduce", "outer", "order", "vectorize")}
        a = analyse(res.asm, entry, applied, target)
        a.compile_s = time.perf_counter() - t0
        _cache[key] = a
    return _cache[key]
