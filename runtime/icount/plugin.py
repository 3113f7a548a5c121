"""Exact executed-instruction counts of model runs under QEMU with a TCG plugin (icount.c).

`build_plugin()` compiles icount.c with the host gcc into a cache directory named by the
source's hash (no binary is committed). `build_firmware(models, target, inputs, workdir)`
links the models into dgc's harness program (dgc.runtime.runners), whose `<name>_run` calls
sit between `dgc_bench_begin()` and `dgc_bench_end()`: on Cortex-M (`target.runner ==
"qemu-system"`) the bare-metal firmware for `qemu-system-arm -M <board>`, on AArch64/ARMv7
Linux (`"qemu-user"`) the static Linux program run by `qemu-aarch64` / `qemu-arm`.
`run_counted(exe, ...)` runs it once with the plugin and returns each model's outputs and
`Region` (per-address counts of what ran between the markers, the markers' own instructions
excluded; C-library startup and exit, outside the markers, are not counted).

Under qemu-user the plugin sees guest virtual addresses; the harness is linked `-static` and
not position-independent, so they are the executable's symbol addresses (checked).
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
    """dgc's harness for `models` [(spec, [objects])] on `target` (a qemu-system board or a
    qemu-user Linux target), with input files, in `workdir`."""
    os.makedirs(workdir, exist_ok=True)
    specs = [spec for spec, _ in models]
    runners._write_sources(specs, inputs, workdir)
    objs = [os.path.abspath(o) for _, objs in models for o in objs]
    if target.runner == "qemu-user":
        exe = runners._build_user(target, objs, os.path.abspath(workdir), timeout)
        _check_fixed_addresses(exe)
        return exe
    if target.runner == "qemu-system":
        return runners._build_system(target, objs, os.path.abspath(workdir), timeout)
    raise ValueError(f"target {target.name} does not run under QEMU (runner {target.runner!r})")


def _check_fixed_addresses(exe: str) -> None:
    """The plugin matches guest virtual addresses against symbol addresses: a position-
    independent (ET_DYN, e.g. static-pie) program would be loaded elsewhere."""
    with open(exe, "rb") as f:
        head = f.read(18)
    if head[:4] != b"\x7fELF" or int.from_bytes(head[16:18], "little") != 2:  # ET_EXEC
        raise RuntimeError(f"{exe}: not a fixed-address (ET_EXEC) executable; the icount "
                           "plugin needs one (link with -static -no-pie)")


def _launch(target, exe: str, workdir: str, plugin: str) -> list[str]:
    if target.runner == "qemu-user":  # qemu-aarch64 -plugin ... prog dir: options before prog
        board, *rest = runners._launch_user(target, exe, workdir)
        return [board, "-plugin", plugin, *rest]
    return runners._launch_system(target, exe, workdir) + ["-plugin", plugin]


def run_counted(exe: str, specs, target, workdir: str, timeout: float = 600):
    """Run the program once under the plugin: ([outputs per model], [Region per model])."""
    workdir = os.path.abspath(workdir)
    syms = symbols(exe)
    (begin, _), (end, _) = (syms[m] for m in MARKERS)
    out = os.path.join(workdir, "icount.txt")
    plugin = f"{build_plugin()},begin={begin:#x},end={end:#x},out={out}"
    if plugin.count(",") != 3:
        raise ValueError(f"paths with commas cannot be passed to a QEMU plugin: {plugin!r}")
    runners._remove_stale(specs, workdir)
    if os.path.exists(out):
        os.remove(out)
    run_tool(_launch(target, exe, workdir, plugin), timeout=timeout,
             what=f"running the models on {target.name} with icount")
    outputs = runners._read_outputs(specs, target, workdir)
    regions = parse_counts(out, [syms[m] for m in MARKERS])
    if len(regions) != len(specs):
        raise RuntimeError(f"{len(regions)} counted regions for {len(specs)} models")
    return outputs, regions
