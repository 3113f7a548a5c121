"""Exact executed-instruction counts of model runs under qemu-system-arm (icount.c).

`build_plugin()` compiles icount.c with the host gcc into a cache directory named by the
source's hash (no binary is committed). `build_firmware(models, target, inputs, workdir)`
links the models into dgc's QEMU harness (dgc.runtime.runners), whose `<name>_run` calls
sit between `dgc_bench_begin()` and `dgc_bench_end()`; `run_counted(exe, ...)` runs it
with the plugin and returns each model's outputs and `Region` (per-address counts of what
ran between the markers, the markers' own instructions excluded).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

from dgc.runtime import runners
from dgc.tools import run_tool, tool_path

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "icount.c")
MARKERS = ("dgc_bench_begin", "dgc_bench_end")


@dataclasses.dataclass
class Region:
    counts: dict[int, int]  # instruction address -> times executed

    @property
    def instructions(self) -> int:
        return sum(self.counts.values())


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dgc-bench")


def build_plugin() -> str:
    """Path of icount.so, built once per version of icount.c."""
    with open(SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    out = os.path.join(cache_dir(), f"icount-{digest}.so")
    if not os.path.exists(out):
        os.makedirs(cache_dir(), exist_ok=True)
        tmp = f"{out}.{os.getpid()}.tmp"
        run_tool(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-o", tmp, SOURCE],
                 what="building the QEMU icount plugin")
        os.replace(tmp, out)
    return out


def symbols(elf: str) -> dict[str, tuple[int, int]]:
    """Function symbols of `elf`: name -> (address without the Thumb bit, size)."""
    text = run_tool([tool_path("llvm-nm"), "-S", "--defined-only", elf],
                    what="listing the firmware's symbols").stdout.decode()
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tT":
            out[parts[3]] = (int(parts[0], 16) & ~1, int(parts[1], 16))
    return out


def parse_counts(path: str, exclude: list[tuple[int, int]]) -> list[Region]:
    """The plugin's output: one Region per begin/end pair, addresses in `exclude` dropped."""
    regions, done = [], False
    with open(path) as f:
        for line in f:
            word, rest = line.split(" ", 1) if " " in line else (line.strip(), "")
            if word == "region":
                regions.append(Region({}))
            elif word == "done":
                done = True
            elif word != "incomplete":
                addr = int(word, 16)
                if not any(lo <= addr < lo + size for lo, size in exclude):
                    regions[-1].counts[addr] = int(rest)
    if not done:
        raise RuntimeError(f"{path}: the QEMU icount plugin did not finish (counts incomplete)")
    return regions


def build_firmware(models, target, inputs, workdir: str, timeout: float = 600) -> str:
    """dgc's QEMU harness for `models` [(spec, [objects])], with input files, in `workdir`."""
    os.makedirs(workdir, exist_ok=True)
    specs = [spec for spec, _ in models]
    runners._write_sources(specs, inputs, workdir)
    objs = [os.path.abspath(o) for _, objs in models for o in objs]
    return runners._build_system(target, objs, os.path.abspath(workdir), timeout)


def run_counted(exe: str, specs, target, workdir: str, timeout: float = 600):
    """Run the firmware once under the plugin: ([outputs per model], [Region per model])."""
    workdir = os.path.abspath(workdir)
    syms = symbols(exe)
    (begin, _), (end, _) = (syms[m] for m in MARKERS)
    out = os.path.join(workdir, "icount.txt")
    plugin = f"{build_plugin()},begin={begin:#x},end={end:#x},out={out}"
    if plugin.count(",") != 3:
        raise ValueError(f"paths with commas cannot be passed to a QEMU plugin: {plugin!r}")
    runners._remove_stale(specs, workdir)
    argv = runners._launch_system(target, exe, workdir) + ["-plugin", plugin]
    run_tool(argv, timeout=timeout, what=f"running the models on {target.name} with icount")
    outputs = runners._read_outputs(specs, target, workdir)
    regions = parse_counts(out, [syms[m] for m in MARKERS])
    if len(regions) != len(specs):
        raise RuntimeError(f"{len(regions)} counted regions for {len(specs)} models")
    return outputs, regions
