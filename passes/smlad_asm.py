"""Hand-scheduled SMLAD register blocks as inline assembly (Cortex-M DSP cores).

LLVM schedules dsp_kernels' intrinsic K loop for an in-order, dual-issue core (Cortex-M7) badly
once a register block holds 8 accumulators: each operand is loaded right before the SMLAD that
reads it (a load-use stall per load), loads are paired into LDRD (which issues alone), and the
accumulators spill at the loop boundary. In llvm-mca's Cortex-M7 model the 4x2 int16-weight block
then runs at 1.39 cycles per SMLAD where the MAC unit allows 1.

`block_asm` writes the K loop's body for `words` reduction words as one `asm` statement whose
instruction order is chosen here: the SMLADs go in a fixed order (for each word, the even
half-words of every accumulator, then the odd ones; pixel-major) and every load (and, for int8
weights, each SXTB16) is issued as early as a free temporary register allows, at most one beside
each SMLAD, so a load's value is ready two cycles before its first use and the dual-issue slot
next to each SMLAD is filled. The accumulators and the two pointers are tied operands; the
temporaries are early-clobbered outputs, so LLVM still allocates every register.

The model behind the order (`_M7`): two instructions per cycle, one of them a multiply (SMLAD),
loads ready two cycles after issue, SXTB16 one cycle, an accumulator forwarded from one SMLAD to
the next with no stall, and a pointer written by ADD usable by a load two cycles later. These are
llvm-mca's Cortex-M7 figures (checked with llvm-mca on this kernel: see tests/test_smlad_asm.py).
"""

from __future__ import annotations

import dataclasses

from dgc.stack import ASM_STACK

REGS = 14  # r0-r12 and lr: what `r` operands may use in Thumb-2 (sp and pc excluded)
SPARE = 1  # left to LLVM beside the asm's operands (the loop counter)
_LOAD_LAT, _SXT_LAT, _ADD_LAT = 2, 1, 2


def temporaries(p: int, f: int) -> int:
    """Temporary registers a p x f block's asm gets (0: the block has too many accumulators)."""
    t = REGS - SPARE - 2 - p * f
    return min(t, 8) if t >= 3 else 0


@dataclasses.dataclass
class _Op:
    kind: str  # "ld" | "sxt" | "smlad" | "add"
    dst: object = None  # value id (ld/sxt), accumulator index (smlad), pointer name (add)
    src: tuple = ()  # ld: (pointer, offset); sxt: (word value, ror8?); smlad: (x value, w value)


def _program(p: int, f: int, words: int, kp: int, w16: bool) -> tuple[list[_Op], dict, dict]:
    """The SMLADs in order, and each value's producer ops (loads, SXTB16s)."""
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


def schedule(p: int, f: int, words: int, kp: int, w16: bool, temps: int) -> list[_Op]:
    """The block's instructions in issue order, temporaries allocated (`_Op.dst`/`src` values
    replaced by ("t", n)); see the module docstring."""
    smlads, producers, advance = _program(p, f, words, kp, w16)
    # producer ops in order of their value's first use; a word's SXTB16 of the odd halves
    # follows the even one (the word stays live until then)
    queue, seen = [], set()
    uses: dict = {}  # value -> remaining reads (SMLADs and SXTB16s)
    for n, s in enumerate(smlads):
        for v in s.src:
            uses[v] = uses.get(v, 0) + 1
            if v not in seen:
                seen.add(v)
                for op in producers[v]:
                    queue.append(op)
                    if op.kind == "sxt":
                        uses[op.src[0]] = uses.get(op.src[0], 0) + 1
    last_load = {}
    for n, op in enumerate(queue):
        if op.kind == "ld":
            last_load[op.src[0]] = n
    for ptr in sorted(last_load, key=last_load.get, reverse=True):
        queue.insert(last_load[ptr] + 1, _Op("add", ptr, (advance[ptr],)))

    reg_of: dict = {}
    free = list(range(temps))
    ready: dict = {}  # value / pointer -> first cycle it can be read
    out: list[_Op] = []
    cycle, si, qi = 0, 0, 0

    def release(v):
        uses[v] -= 1
        if uses[v] == 0:
            free.append(reg_of[v])

    def can_issue(op) -> bool:
        if op.kind == "ld":
            return ready.get(op.src[0], 0) <= cycle and (op.dst in reg_of or free)
        if op.kind == "sxt":
            src = op.src[0]
            if src not in reg_of or ready.get(src, 1 << 30) > cycle:
                return False
            return bool(free) or uses[src] == 1  # the word's last read may write its own register
        return True  # add

    def issue(op) -> None:
        if op.kind == "ld":
            reg_of[op.dst] = free.pop(0)
            ready[op.dst] = cycle + _LOAD_LAT
            out.append(_Op("ld", ("t", reg_of[op.dst]), op.src))
        elif op.kind == "sxt":
            src = op.src[0]
            if uses[src] == 1:
                reg_of[op.dst] = reg_of[src]
                uses[src] = 0
            else:
                reg_of[op.dst] = free.pop(0)
                uses[src] -= 1
            ready[op.dst] = cycle + _SXT_LAT
            out.append(_Op("sxt", ("t", reg_of[op.dst]), (("t", reg_of[src]), op.src[1])))
        else:
            ready[op.dst] = cycle + _ADD_LAT
            out.append(op)

    limit = 8 * (len(smlads) + len(queue)) + 64
    while si < len(smlads) or qi < len(queue):
        if cycle > limit:  # the temporaries cannot hold what the next SMLAD needs
            raise ValueError(f"a {p}x{f} block does not fit {temps} temporary registers")
        slots = 2
        s = smlads[si] if si < len(smlads) else None
        if s is not None and all(v in reg_of and ready[v] <= cycle for v in s.src):
            out.append(_Op("smlad", s.dst, tuple(("t", reg_of[v]) for v in s.src)))
            for v in s.src:
                release(v)
            si += 1
            slots -= 1
        while slots and qi < len(queue) and can_issue(queue[qi]):
            issue(queue[qi])
            qi += 1
            slots -= 1
            if s is not None and si < len(smlads) and smlads[si] is not s:
                break  # one op beside a SMLAD: the pair is full
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
        else:
            r = ptr_operand(op.dst)
            lines.append(f"add {r}, {r}, #{op.src[0]}")
    return "\n\t".join(lines)


CHUNKS = {0: 8, 1: 1, 2: 2, 4: 4, 8: 8, 16: 16}  # dsp_kernels.UNROLLS -> words per loop iteration
MAX_OFFSET = 4095  # LDR.W's immediate offset


def kernel(p: int, f: int, words: int, kp: int, w16: bool, unroll: int):
    """The asm text and constraints of a p x f block's K loop over `words` words, or None when
    the block cannot be written this way (too many accumulators, offsets out of LDR.W's reach,
    temporaries too few). Operands: outputs $0..$n-1 the accumulators, $n the weight pointer,
    $n+1 the activation pointer, then the temporaries; inputs tied to the accumulators and the
    two pointers, then (when it loops) the end of the activation pointer, which the asm keeps in
    an 8-byte stack slot of its own (`STACK_BYTES`) so every register is free for the block."""
    temps = min(REGS - 2 - p * f, 8)
    chunk = min(CHUNKS.get(unroll, 8), words)
    loops, rest = divmod(words, chunk)
    loop = loops > 1
    if p * f > 8 or temps < 3 or (p - 1) * 2 * kp + 8 * chunk > MAX_OFFSET:
        return None
    n = p * f
    names = {"w": n, "x": n + 1}
    try:
        body = schedule(p, f, chunk, kp, w16, temps)
        tail = schedule(p, f, rest, kp, w16, temps) if rest else []
        if not loop and loops:
            tail = schedule(p, f, words, kp, w16, temps)
    except ValueError:
        return None

    def text(ops):
        return render(ops, lambda a: f"${a}", lambda q: f"${names[q]}", lambda r: f"${n + 2 + r}")
    lines = []
    if loop:
        end = 2 * (n + 2) + temps
        lines += [f"{ASM_STACK}{STACK_BYTES}", f"str.w ${end}, [sp, #-{STACK_BYTES}]!", "1:", text(body),
                  f"ldr.w ${n + 2}, [sp]", f"cmp ${n + 1}, ${n + 2}", "bne 1b", f"add sp, sp, #{STACK_BYTES}"]
        if rest:
            lines.append(text(tail))
    else:
        lines.append(text(tail))
    cons = ["=r"] * (n + 2 + temps) + [str(i) for i in range(n + 2)] + (["r"] if loop else []) + \
        ["~{memory}", "~{cc}"]
    return "\n\t".join(lines), ",".join(cons), temps, (8 * chunk * loops if loop else 0)


STACK_BYTES = 8  # the loop's end pointer, below the function's frame (sp stays 8-byte aligned)
