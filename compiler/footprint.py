"""Flash and RAM of a compiled model, and the --ram-limit / --flash-limit budgets.

Flash is measured from the object file: its allocated sections, code (.text), read-only data
(.rodata: the weights, tables, unwind index) and initialised data (none in generated code).
RAM is what a run needs: the arena, the stack bound of the entry point (dgc.stack) and any
.data/.bss of the object (none). A target's default budget is the memory of a typical part
for that core (the Target table's `ram_bytes` / `flash_bytes`, e.g. an STM32H7-class 1 MiB RAM
and 2 MiB flash for cortex-m7); a compile over budget fails with FootprintError naming the
biggest contributors.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from .errors import FootprintError, UsageError

DEFAULT = "default"  # the target's budget


@dataclasses.dataclass(frozen=True)
class Sections:
    text: int = 0
    rodata: int = 0
    data: int = 0
    bss: int = 0

    @property
    def flash(self) -> int:
        return self.text + self.rodata + self.data


def sections(doc: dict) -> Sections:
    """Sizes of the allocated sections of an object (`dgc.stack.read_object`'s JSON)."""
    sizes = dict(text=0, rodata=0, data=0, bss=0)
    for entry in doc.get("Sections", []):
        s = entry["Section"]
        flags = {f["Name"] for f in s["Flags"].get("Flags", [])}
        if "SHF_ALLOC" not in flags:
            continue
        kind = "text" if "SHF_EXECINSTR" in flags else \
            ("bss" if s["Type"]["Name"] == "SHT_NOBITS" else "data") if "SHF_WRITE" in flags else "rodata"
        sizes[kind] += int(s["Size"])
    return Sections(**sizes)


def parse_size(text, option: str):
    """'512K', '1M', '1.5MiB', '65536', 'none' -> bytes (None = no limit); DEFAULT passes through."""
    if text is None or text == DEFAULT or isinstance(text, int):
        return text
    t = str(text).strip().lower()
    if t in ("none", "0", "off", "unlimited"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)(i?b)?", t)
    if not m:
        raise UsageError(f"cannot read {option} '{text}'",
                         hint="give bytes with an optional K/M/G suffix (powers of 1024), e.g. 512K or 2M, or none")
    return int(float(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2)])


def budget(value, target, kind: str):
    """(limit bytes or None, where it came from)."""
    if value == DEFAULT:
        default = getattr(target, f"{kind}_bytes")
        return (default or None), f"the {target.name} default ({target.part})" if default else ""
    return value, f"--{kind}-limit"


def _kib(n: int) -> str:
    return f"{n:,} B" if n < 10 << 10 else f"{n / 1024:,.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):,.2f} MiB"


def check(res, consts: dict, target, ram_limit, flash_limit) -> None:
    """Raise FootprintError when `res` (a CompileResult with object, spec, buffers) is over budget."""
    fp = res.footprint
    limit, origin = budget(ram_limit, target, "ram")
    if limit is not None and fp["ram"] > limit:
        peak = _peak_buffers(res.buffers)
        biggest = ", ".join(f"'{b.node or '?'}' {_kib(b.size)}" for b in peak[:3])
        raise FootprintError(
            f"the model needs {_kib(fp['ram'])} of RAM (arena {_kib(fp['arena'])} + stack {_kib(fp['stack'])}), "
            f"more than the {_kib(limit)} of {origin}; largest tensors live together at the peak: {biggest}",
            hint="quantize to int8 (--quantize int8), use a smaller model, or set --ram-limit for your part "
                 "(--ram-limit none turns the check off)")
    limit, origin = budget(flash_limit, target, "flash")
    if limit is not None and fp["flash"] > limit:
        weights = sorted(((n, int(np.asarray(v).nbytes)) for n, v in consts.items()), key=lambda p: -p[1])
        biggest = ", ".join(f"'{n}' {_kib(b)}" for n, b in weights[:3])
        raise FootprintError(
            f"the model needs {_kib(fp['flash'])} of flash (code {_kib(fp['text'])} + read-only data "
            f"{_kib(fp['rodata'])}), more than the {_kib(limit)} of {origin}; largest weights: {biggest}",
            hint="quantize to int8 (--quantize int8: 4x smaller weights), use a smaller model, or set "
                 "--flash-limit for your part (--flash-limit none turns the check off)")


def _peak_buffers(buffers) -> list:
    if not buffers:
        return []
    last = max(b.end for b in buffers)
    t = max(range(last + 1), key=lambda t: sum(b.size for b in buffers if b.start <= t <= b.end))
    return sorted((b for b in buffers if b.start <= t <= b.end), key=lambda b: -b.size)
