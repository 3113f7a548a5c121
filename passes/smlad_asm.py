"""Hand-scheduled SMLAD kernels as inline assembly (Cortex-M DSP cores).

LLVM schedules dsp_kernels' intrinsic loops for an in-order, dual-issue core (Cortex-M7) badly:
each operand is loaded right before the SMLAD that reads it (a load-use stall per load), loads
are paired into LDRD (which issues alone), and a block of 8 accumulators spills at the loop
boundary. In llvm-mca's Cortex-M7 model the 4x2 int16-weight conv block runs at 1.39 cycles per
SMLAD, the default 2x2 int8-weight block at 1.69, where the MAC unit allows 1.

`kernel` writes a conv block's K loop over `words` reduction words, `dw_kernel` one depthwise
step (one pixel, 4 channels, every window position), each as one `asm` statement whose
instruction order is chosen here (`_schedule`): the SMLADs go in a fixed order and every
producer (load, SXTB16, PKHBT/PKHTB) is issued as early as its sources and a free temporary
register allow, so a load's value is ready before its first use and the slot beside each SMLAD
is filled. The accumulators (and the conv's two pointers) are tied operands; the temporaries
are outputs, so LLVM still allocates every register.

The model behind the order: two instructions per cycle, at most one SMLAD and one SIMD op
(SXTB16, PKH*: they do not pair with each other); loads ready two cycles after issue, SIMD ops
one; an accumulator forwarded from one SMLAD to the next with no stall; a pointer written by ADD
usable by a load two cycles later. These are llvm-mca's Cortex-M7 figures (probed with
llvm-mca; tests/test_smlad_asm.py checks the resulting cycles per SMLAD).
"""

from __future__ import annotations

import dataclasses
import functools

from dgc.stack import ASM_STACK

REGS = 14  # r0-r12 and lr: what `r` operands may use in Thumb-2 (sp and pc excluded)


def temporaries(p: int, f: int) -> int:
    """Temporary registers a p x f conv block's asm gets: all the accumulators and the two
    pointers leave, at most 8."""
    return min(REGS - 2 - p * f, 8)


@dataclasses.dataclass
class _Op:
    kind: str  # "ld" | "sxt" | "pkhbt" | "pkhtb" | "smlad" | "add"
    dst: object = None  # value id (ld/sxt/pkh), accumulator index (smlad), pointer name (add)
    src: tuple = ()  # ld: (pointer, offset); sxt: (word, ror8?); pkh*: (a, b); smlad: (x, w); add: (bytes,)

    def reads(self) -> tuple:
        """The values (temporaries) the op reads."""
        return {"ld": (), "add": (), "sxt": self.src[:1]}.get(self.kind, self.src)


_LAT = {"ld": 2, "sxt": 1, "pkhbt": 1, "pkhtb": 1, "add": 2}
_SIMD = ("sxt", "pkhbt", "pkhtb")  # one per cycle (they do not pair with each other)


def _program(p: int, f: int, words: int, kp: int, w16: bool) -> tuple[list[_Op], dict, dict]:
    """A conv block's SMLADs in order, each value's producer ops (loads, SXTB16s) and how far
    each pointer advances."""
    smlads, producers = [], {}

    def load(v, ptr, off):
        producers.setdefault(v, [_Op("ld", v, (ptr, off))])
        return v

    # the operand of the smaller side stays in registers across the other's loop: pixel-major
    # keeps f weights live (plus two activation words in flight), filter-major p activations
    order = [(i, k) for i in range(p) for k in range(f)] if f <= p else \
        [(i, k) for k in range(f) for i in range(p)]
    for j in range(words):
        for h in range(2):
            for i, k in order:
                x = load(("x", j, h, i), "x", i * 2 * kp + 8 * j + 4 * h)
                if w16:
                    w = load(("w", j, h, k), "w", 8 * (f * j + k) + 4 * h)
                else:
                    word, w = ("ww", j, k), ("w", j, h, k)
                    if w not in producers:
                        producers[w] = [_Op("ld", word, ("w", 4 * (f * j + k))), _Op("sxt", w, (word, False))] \
                            if h == 0 else [_Op("sxt", w, (word, True))]
                smlads.append(_Op("smlad", i * f + k, (x, w)))
    return smlads, producers, {"x": 8 * words, "w": (8 if w16 else 4) * f * words}


def _dw_program(offsets: list[int]) -> tuple[list[_Op], dict, dict]:
    """A depthwise step (one pixel, 4 channels): per pair of window positions (byte offsets
    from the activation pointer, a pair per two entries), each channel's (position a,
    position b) int16 pair times its packed weight word (4 per pair)."""
    smlads, producers = [], {}
    for q in range(len(offsets) // 2):
        a, b, lo, hi = ("a", q), ("b", q), ("lo", q), ("hi", q)
        # bytes (a0 a1 b0 b1) and (a2 a3 b2 b3): SXTB16 of each (and rotated by 8) is a channel's
        # (position a, position b) pair, two SIMD ops fewer than unpacking each word first
        producers[("p", q, 0)] = [_Op("ld", a, ("x", offsets[2 * q])), _Op("ld", b, ("x", offsets[2 * q + 1])),
                                  _Op("pkhbt", lo, (a, b)), _Op("sxt", ("p", q, 0), (lo, False))]
        producers[("p", q, 1)] = [_Op("pkhtb", hi, (b, a)), _Op("sxt", ("p", q, 1), (hi, False))]
        producers[("p", q, 2)] = [_Op("sxt", ("p", q, 2), (lo, True))]
        producers[("p", q, 3)] = [_Op("sxt", ("p", q, 3), (hi, True))]
        for i in range(4):  # accumulators in the kernel's channel order c0, c2, c1, c3
            w = ("w", q, i)
            producers[w] = [_Op("ld", w, ("w", 4 * (4 * q + i)))]
            smlads.append(_Op("smlad", i, (("p", q, i), w)))
    return smlads, producers, {}


def schedule(p: int, f: int, words: int, kp: int, w16: bool, temps: int) -> list[_Op]:
    """A conv block's instructions in issue order (see the module docstring)."""
    return _schedule(*_program(p, f, words, kp, w16), temps, f"a {p}x{f} block")


def _schedule(smlads: list[_Op], producers: dict, advance: dict, temps: int, what: str) -> list[_Op]:
    """The SMLADs in their order, each producer op issued as early as its sources and a free
    temporary allow (at most one beside a SMLAD); temporaries allocated (values replaced by
    ("t", n)). Raises ValueError when the temporaries cannot hold what the next SMLAD needs."""
    queue, seen = [], set()
    uses: dict = {}  # value -> remaining reads

    def need(v):
        if v in seen:
            return
        seen.add(v)
        for op in producers[v]:
            queue.append(op)
            for r in op.reads():
                uses[r] = uses.get(r, 0) + 1
    for sm in smlads:
        for v in sm.src:
            need(v)
            uses[v] = uses.get(v, 0) + 1
    last_load = {}
    for n, op in enumerate(queue):
        if op.kind == "ld":
            last_load[op.src[0]] = n
    for ptr in sorted((q for q in last_load if q in advance), key=last_load.get, reverse=True):
        queue.insert(last_load[ptr] + 1, _Op("add", ptr, (advance[ptr],)))

    reg_of: dict = {}
    free = list(range(temps))
    ready: dict = {}  # value / pointer -> first cycle it can be read
    out: list[_Op] = []
    cycle, si, qi = 0, 0, 0

    def t(v):
        return ("t", reg_of[v])

    def release(v):
        uses[v] -= 1
        if uses[v] == 0:
            free.append(reg_of[v])

    def can_issue(op) -> bool:
        if op.kind == "add":
            return True
        if op.kind == "ld":
            return ready.get(op.src[0], 0) <= cycle and bool(free)
        srcs = op.reads()
        if any(v not in reg_of or ready[v] > cycle for v in srcs):
            return False
        return bool(free) or any(uses[v] == 1 for v in srcs)  # a last read frees its register first

    def issue(op) -> None:
        if op.kind == "add":
            ready[op.dst] = cycle + _LAT["add"]
            out.append(op)
            return
        srcs = op.reads()
        names = [t(v) for v in srcs]
        for v in srcs:
            release(v)
        reg_of[op.dst] = free.pop(0)
        ready[op.dst] = cycle + _LAT[op.kind]
        src = op.src if op.kind == "ld" else (names[0], op.src[1]) if op.kind == "sxt" else tuple(names)
        out.append(_Op(op.kind, t(op.dst), src))

    limit = 8 * (len(smlads) + len(queue)) + 64
    while si < len(smlads) or qi < len(queue):
        if cycle > limit:
            raise ValueError(f"{what} does not fit {temps} temporary registers")
        slots = 2
        s = smlads[si] if si < len(smlads) else None
        if s is not None and all(v in reg_of and ready[v] <= cycle for v in s.src):
            out.append(_Op("smlad", s.dst, tuple(t(v) for v in s.src)))
            for v in s.src:
                release(v)
            si += 1
            slots -= 1
        simd = 1
        while slots and qi < len(queue) and can_issue(queue[qi]):
            if queue[qi].kind in _SIMD:
                if not simd:
                    break
                simd -= 1
            issue(queue[qi])
            qi += 1
            slots -= 1
        cycle += 1
    return out


def render(ops: list[_Op], acc_operand, ptr_operand, temp_operand) -> str:
    """Assembly text; *_operand map an accumulator index / pointer name / temporary number to
    its `$N` reference."""
    lines = []
    for op in ops:
        if op.kind == "smlad":
            a = acc_operand(op.dst)
            x, w = (temp_operand(v[1]) for v in op.src)
            lines.append(f"smlad {a}, {x}, {w}, {a}")
        elif op.kind == "ld":
            ptr, off = op.src
            lines.append(f"ldr {temp_operand(op.dst[1])}, [{ptr_operand(ptr)}, #{off}]")
        elif op.kind == "sxt":
            (_, src), ror = op.src
            lines.append(f"sxtb16 {temp_operand(op.dst[1])}, {temp_operand(src)}" + (", ror #8" if ror else ""))
        elif op.kind in ("pkhbt", "pkhtb"):
            a, b = (temp_operand(v[1]) for v in op.src)
            shift = "lsl" if op.kind == "pkhbt" else "asr"
            lines.append(f"{op.kind} {temp_operand(op.dst[1])}, {a}, {b}, {shift} #16")
        else:
            r = ptr_operand(op.dst)
            lines.append(f"add {r}, {r}, #{op.src[0]}")
    return "\n\t".join(lines)


CHUNKS = {0: 8, 1: 1, 2: 2, 4: 4, 8: 8, 16: 16}  # dsp_kernels.UNROLLS -> words per loop iteration
MAX_OFFSET = 4095  # LDR.W's immediate offset


def chunking(words: int, unroll: int) -> tuple[int, int, int]:
    """(words per loop iteration, iterations, words after the loop) of a K loop over `words`
    with unroll count `unroll`; iterations 0 when the words run straight through (fewer than two
    chunks: no loop)."""
    chunk = min(CHUNKS.get(unroll, 8), words)
    loops, rest = divmod(words, chunk)
    return (chunk, loops, rest) if loops > 1 else (chunk, 0, words)


@functools.lru_cache(maxsize=None)
def kernel(p: int, f: int, words: int, kp: int, w16: bool, unroll: int):
    """The asm text and constraints of a p x f block's K loop over `words` words, or None when
    the block cannot be written this way (too many accumulators, offsets out of LDR.W's reach,
    temporaries too few). Operands: outputs $0..$n-1 the accumulators, $n the weight pointer,
    $n+1 the activation pointer, then the temporaries; inputs tied to the accumulators and the
    two pointers, then (when it loops) the end of the activation pointer, which the asm keeps in
    an 8-byte stack slot of its own (`STACK_BYTES`) so every register is free for the block.
    Cached: the cycle model (`predict.smlad_cycles`) asks for the same blocks again."""
    temps = temporaries(p, f)
    chunk, loops, rest = chunking(words, unroll)
    loop = loops > 0
    if p * f > 8 or (p - 1) * 2 * kp + 8 * (chunk if loop else words) > MAX_OFFSET:  # the last pixel's words
        return None
    n = p * f
    names = {"w": n, "x": n + 1}
    try:  # looped: `chunk` words a turn, then the rest; else all words in a row
        body = schedule(p, f, chunk, kp, w16, temps) if loop else []
        tail = schedule(p, f, rest, kp, w16, temps) if rest else []
    except ValueError:
        return None

    def text(ops):
        return render(ops, lambda a: f"${a}", lambda q: f"${names[q]}", lambda r: f"${n + 2 + r}")
    lines = []
    if loop:
        end = 2 * (n + 2) + temps
        lines += [f"{ASM_STACK}{STACK_BYTES}", f"str.w ${end}, [sp, #-{STACK_BYTES}]!", "1:", text(body),
                  f"ldr.w ${n + 2}, [sp]", f"cmp ${n + 1}, ${n + 2}", "bne 1b", f"add sp, sp, #{STACK_BYTES}"]
    if tail:
        lines.append(text(tail))
    cons = ["=r"] * (n + 2 + temps) + [str(i) for i in range(n + 2)] + (["r"] if loop else []) + \
        ["~{memory}", "~{cc}"]
    return "\n\t".join(lines), ",".join(cons), temps, (8 * chunk * loops if loop else 0)


STACK_BYTES = 8  # the loop's end pointer, below the function's frame (sp stays 8-byte aligned)


def dw_kernel(offsets: list[int]):
    """The asm text and constraints of a depthwise step (`_dw_program`), or None when an offset is
    out of LDR.W's reach. Operands: outputs $0..$3 the accumulators, $4..$11 the temporaries;
    inputs tied to the accumulators, then the activation pointer $16 and the weight pointer $17."""
    if max(offsets) > MAX_OFFSET:
        return None
    temps = REGS - 4 - 2
    ops = _schedule(*_dw_program(offsets), temps, "a depthwise step")
    x, w = 8 + temps, 9 + temps
    text = render(ops, lambda a: f"${a}", lambda q: f"${x if q == 'x' else w}", lambda r: f"${4 + r}")
    cons = ["=r"] * 4 + ["=&r"] * temps + ["0", "1", "2", "3", "r", "r", "~{memory}"]
    return text, ",".join(cons), temps
