"""A cycle ESTIMATE from exact instruction counts: llvm-mca per executed basic block.

`estimate(elf, region, target)` disassembles `elf` (llvm-objdump), cuts the executed
instructions into blocks -- maximal runs of consecutive instructions executed the same
number of times -- and asks llvm-mca (-mcpu=mca_cpu(target)) how many cycles one iteration
of each block takes in steady state (Total Cycles / iterations). The estimate is
sum(block count x cycles per iteration). What llvm-mca models: the core's pipeline,
issue width and latencies, with zero-wait memory, no cache misses and no branch
penalties; a call costs 2 cycles, as a branch (the callee's blocks are counted on their own). Instructions
llvm-mca has no scheduling data for (IT) cost nothing. It is an estimate, not a measurement.

Targets: Cortex-M (Thumb), AArch64 (A64) and ARMv7-A Linux. An ARMv7-A program mixes A32
(dgc's objects, llc) and T32 (Debian's armhf gcc and libc default to Thumb-2): each
instruction's state comes from the ELF mapping symbols ($a/$t/$d), a block never mixes the
two, and its llvm-mca text starts with `.code 32` / `.code 16`. llvm-mca needs a scheduling
model for the cpu: where target.cpu has none (LLVM has none for "generic" ARMv7-A nor for
Cortex-A7/A8), `mca_cpu` falls back to FALLBACK_CPU ("cortex-a57", out-of-order 3-wide, for
32-bit ARM: a coarser stand-in for an in-order A7, fine for ranking candidates);
`Estimate.cpu` says which model was used.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import re
import tempfile

from dgc.errors import ToolError
from dgc.tools import run_tool, tool_path

ITERATIONS = 100
_LINE = re.compile(r"^\s*([0-9a-f]+):\s+(\S.*)$")
_TARGET = re.compile(r"0x[0-9a-f]+ <[^>]*>")
_IMM = re.compile(r"imm = (#-?0x[0-9a-f]+)")
_cache: dict[tuple[str, str, tuple[str, ...]], float] = {}  # (triple, cpu, block) -> cycles
_mca_cpus: dict[tuple[str, str], str] = {}  # (triple, target cpu) -> cpu given to llvm-mca
# Scheduling model used when llvm-mca has none for target.cpu, by the triple's architecture.
# 32-bit ARM: Cortex-A57's AArch32 model, the one complete for dgc's A32 + NEON code (the
# Cortex-A9 model lacks vcle/push/pop/stm data and crashes llvm-mca 22 on some NEON blocks).
FALLBACK_CPU = {"arm": "cortex-a57", "thumb": "cortex-m7", "aarch64": "cortex-a53"}
_CODE = {"arm": ".code 32", "thumb": ".code 16"}  # block prefixes in mixed A32/T32 programs


@dataclasses.dataclass
class Estimate:
    cycles: float  # estimated core cycles for the region
    instructions: int
    blocks: int  # executed blocks
    unique_blocks: int  # distinct block texts given to llvm-mca
    unmodeled: int  # instructions llvm-mca could not analyse (costed at 1 cycle each)
    cpu: str = ""  # the llvm-mca scheduling model used (mca_cpu(target))


def _arch(target) -> str:
    t = target.triple
    return "aarch64" if t.startswith(("aarch64", "arm64")) else "thumb" if t.startswith("thumb") else \
        "arm" if t.startswith("arm") else t.split("-")[0]


def mca_cpu(target) -> str:
    """target.cpu if llvm-mca has a scheduling model for it, else FALLBACK_CPU[arch]."""
    key = (target.triple, target.cpu)
    if key not in _mca_cpus:
        cpu = target.cpu
        if not _has_sched_model(target.triple, cpu):
            cpu = FALLBACK_CPU.get(_arch(target), cpu)
        _mca_cpus[key] = cpu
    return _mca_cpus[key]


def _has_sched_model(triple: str, cpu: str) -> bool:
    with tempfile.NamedTemporaryFile("w", suffix=".s", delete=False) as f:
        f.write("nop\n")
    try:
        run_tool([tool_path("llvm-mca"), f"-mtriple={triple}", f"-mcpu={cpu}", "-iterations=1", f.name],
                 what="llvm-mca")
        return True
    except ToolError as e:
        if "scheduling information" in str(e):
            return False
        raise
    finally:
        os.remove(f.name)


def disassemble(elf: str, target) -> dict[int, tuple[str, int | None, str]]:
    """address -> (instruction as llvm-mca reads it, address of the next instruction, state).

    state is "" for single-state targets (Cortex-M: all Thumb; AArch64), "arm" or "thumb"
    for 32-bit ARM A-profile programs (from the mapping symbols; llvm-objdump uses the same
    symbols to decode)."""
    text = run_tool([tool_path("llvm-objdump"), "-d", "--no-show-raw-insn",
                     f"--triple={target.triple}", f"--mcpu={target.cpu}", elf],
                    what="disassembling the firmware").stdout.decode()
    rows = [(int(m.group(1), 16), m.group(2)) for m in map(_LINE.match, text.splitlines()) if m]
    arch = _arch(target)
    states = _states(elf) if arch == "arm" else None
    out = {}
    for (addr, insn), (nxt, _) in zip(rows, rows[1:] + [(None, "")]):
        out[addr] = (_for_mca(insn, arch), nxt, _state_at(states, addr) if states else "")
    return out


def _states(elf: str) -> tuple[list[int], list[str]]:
    """Sorted mapping-symbol addresses and the state each starts ("arm", "thumb", "data")."""
    text = run_tool([tool_path("llvm-nm"), "--special-syms", "-n", elf],
                    what="listing the mapping symbols").stdout.decode()
    addrs, kinds = [], []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2][:2] in ("$a", "$t", "$d") and parts[2][2:3] in ("", "."):
            addrs.append(int(parts[0], 16))
            kinds.append({"$a": "arm", "$t": "thumb", "$d": "data"}[parts[2][:2]])
    return addrs, kinds


def _state_at(states, addr: int) -> str:
    addrs, kinds = states
    i = bisect.bisect_right(addrs, addr) - 1
    return kinds[i] if i >= 0 else "arm"


def _for_mca(insn: str, arch: str = "thumb") -> str:
    """objdump syntax to assembler syntax: PC-relative targets become their immediates.

    A32/T32: `blo 0x24644 <memset+0x54> @ imm = #0x44` -> `blo #0x44`. A64 prints no
    immediate (`tbz w10, #0x0, 0x400ae8 <f+0x6c>`, `adrp x0, 0x4cf000 <sym>`): the target
    becomes `.`, which assembles to the same instruction (timing does not depend on it)."""
    comment_mark = "//" if arch == "aarch64" else "@"
    code, _, comment = insn.replace("\t", " ").partition(comment_mark)
    if _TARGET.search(code):
        imm = _IMM.search(comment)
        code = _TARGET.sub(imm.group(1) if imm else ".", code)
    return " ".join(code.split())


def _is_insn(line: str) -> bool:
    return not line.startswith(".code")


def blocks(counts: dict[int, int], insns) -> tuple[list[tuple[int, tuple[str, ...]]], int]:
    """[(times executed, instruction texts)] and the number of instructions not disassembled.

    In mixed A32/T32 programs a block is of one state and its texts start with `.code 32` or
    `.code 16` (not an instruction)."""
    out, cur, cur_count, cur_state, prev_next, missing = [], [], None, None, None, 0
    for addr in sorted(counts):
        if addr not in insns:
            missing += counts[addr]
            continue
        text, nxt, state = insns[addr]
        if cur and (counts[addr] != cur_count or addr != prev_next or state != cur_state):
            out.append((cur_count, tuple(cur)))
            cur = []
        if not cur and state in _CODE:
            cur.append(_CODE[state])
        cur.append(text)
        cur_count, cur_state, prev_next = counts[addr], state, nxt
    if cur:
        out.append((cur_count, tuple(cur)))
    return out, missing


def _mca(texts: list[tuple[str, ...]], target) -> dict[int, float]:
    """Cycles per iteration of each block (index -> cycles); blocks llvm-mca rejects are absent."""
    src = []
    for i, lines in enumerate(texts):
        src += [f"# LLVM-MCA-BEGIN b{i}", *lines, "# LLVM-MCA-END"]
    with tempfile.NamedTemporaryFile("w", suffix=".s", delete=False) as f:
        f.write("\n".join(src) + "\n")
    try:
        proc = run_tool([tool_path("llvm-mca"), f"-mtriple={target.triple}", f"-mcpu={mca_cpu(target)}",
                         f"-iterations={ITERATIONS}", "--call-latency=2",
                         "-skip-unsupported-instructions=lack-sched", "-instruction-info=false",
                         "-resource-pressure=false", f.name], what="llvm-mca")
    finally:
        os.remove(f.name)
    out, region = {}, None
    for line in proc.stdout.decode().splitlines():
        if m := re.match(r"\[\d+\] Code Region - b(\d+)", line):
            region = int(m.group(1))
        elif line.startswith("Total Cycles:") and region is not None:
            out[region] = int(line.split()[-1]) / ITERATIONS
    return out


def _only_it(t: tuple[str, ...]) -> bool:
    return all(line.startswith("it") for line in t if _is_insn(line))


def _cycles_per_block(texts: list[tuple[str, ...]], target) -> dict[tuple[str, ...], float]:
    """Cached; a batch llvm-mca rejects is retried block by block."""
    key = (target.triple, mca_cpu(target))
    todo = [t for t in dict.fromkeys(texts) if (*key, t) not in _cache and not _only_it(t)]
    for t in texts:
        if _only_it(t):
            _cache[(*key, t)] = 0.0
    if todo:
        try:
            got = _mca(todo, target)
        except ToolError:  # one bad block fails the batch: find it
            got = {}
            for i, t in enumerate(todo):
                try:
                    got.update((i, c) for c in _mca([t], target).values())
                except ToolError:
                    pass  # costed as 1 cycle per instruction, counted as unmodeled
        for i, t in enumerate(todo):
            if i in got:
                _cache[(*key, t)] = got[i]
    return {t: _cache[(*key, t)] for t in texts if (*key, t) in _cache}


def estimate(elf: str, counts: dict[int, int], target, insns=None) -> Estimate:
    insns = insns if insns is not None else disassemble(elf, target)
    blks, missing = blocks(counts, insns)
    per = _cycles_per_block([t for _, t in blks], target)
    cycles, unmodeled = float(missing), missing
    for n, t in blks:
        if t in per:
            cycles += n * per[t]
        else:
            k = sum(map(_is_insn, t))
            cycles += n * k
            unmodeled += n * k
    return Estimate(cycles, sum(counts.values()), len(blks), len({t for _, t in blks}), unmodeled,
                    mca_cpu(target))
