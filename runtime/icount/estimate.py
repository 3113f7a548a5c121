"""A cycle ESTIMATE from exact instruction counts: llvm-mca per executed basic block.

`estimate(elf, region, target)` disassembles `elf` (llvm-objdump), cuts the executed
instructions into blocks -- maximal runs of consecutive instructions executed the same
number of times -- and asks llvm-mca (-mcpu=target.cpu) how many cycles one iteration of
each block takes in steady state (Total Cycles / iterations). The estimate is
sum(block count x cycles per iteration). What llvm-mca models: the core's pipeline,
issue width and latencies, with zero-wait memory, no cache misses and no branch
penalties; a call costs 2 cycles, as a branch (the callee's blocks are counted on their own). Instructions
llvm-mca has no scheduling data for (IT) cost nothing. It is an estimate, not a measurement.
"""

from __future__ import annotations

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


@dataclasses.dataclass
class Estimate:
    cycles: float  # estimated core cycles for the region
    instructions: int
    blocks: int  # executed blocks
    unique_blocks: int  # distinct block texts given to llvm-mca
    unmodeled: int  # instructions llvm-mca could not analyse (costed at 1 cycle each)


def disassemble(elf: str, target) -> dict[int, tuple[str, int]]:
    """address -> (instruction as llvm-mca reads it, address of the next instruction)."""
    text = run_tool([tool_path("llvm-objdump"), "-d", "--no-show-raw-insn",
                     f"--triple={target.triple}", f"--mcpu={target.cpu}", elf],
                    what="disassembling the firmware").stdout.decode()
    rows = [(int(m.group(1), 16), m.group(2)) for m in map(_LINE.match, text.splitlines()) if m]
    out = {}
    for (addr, insn), (nxt, _) in zip(rows, rows[1:] + [(None, "")]):
        out[addr] = (_for_mca(insn), nxt)
    return out


def _for_mca(insn: str) -> str:
    """objdump syntax to assembler syntax: PC-relative targets become their immediates."""
    code, _, comment = insn.replace("\t", " ").partition("@")
    imm = _IMM.search(comment)
    if imm and _TARGET.search(code):
        code = _TARGET.sub(imm.group(1), code)
    return " ".join(code.split())


def blocks(counts: dict[int, int], insns) -> tuple[list[tuple[int, tuple[str, ...]]], int]:
    """[(times executed, instruction texts)] and the number of instructions not disassembled."""
    out, cur, cur_count, prev_next, missing = [], [], None, None, 0
    for addr in sorted(counts):
        if addr not in insns:
            missing += counts[addr]
            continue
        text, nxt = insns[addr]
        if cur and (counts[addr] != cur_count or addr != prev_next):
            out.append((cur_count, tuple(cur)))
            cur = []
        cur.append(text)
        cur_count, prev_next = counts[addr], nxt
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
        proc = run_tool([tool_path("llvm-mca"), f"-mtriple={target.triple}", f"-mcpu={target.cpu}",
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


def _cycles_per_block(texts: list[tuple[str, ...]], target) -> dict[tuple[str, ...], float]:
    """Cached; a batch llvm-mca rejects is retried block by block."""
    key = (target.triple, target.cpu)
    todo = [t for t in dict.fromkeys(texts)
            if (*key, t) not in _cache and not all(line.startswith("it") for line in t)]
    for t in texts:
        if all(line.startswith("it") for line in t):
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
            cycles += n * len(t)
            unmodeled += n * len(t)
    return Estimate(cycles, sum(counts.values()), len(blks), len({t for _, t in blks}), unmodeled)
