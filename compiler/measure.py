"""Timing compiled models on this machine, in a child process (`dgc tune`'s measurements).

`time_models(models, target, workdir)` links each (spec, object file) into its own shared
library and times them in ONE child process (`python -m dgc.measure JOB.json`), so code that
crashes cannot take the caller down: a crash or a non-zero return raises MeasureError.

Method: the child loads every library (ctypes, buffers allocated once, inputs seeded; the
arena starts on a page boundary and input/output k SPREAD*k bytes past one, so all candidates
see the same addresses modulo 4 KiB, and no two buffers the same: where malloc puts them
would otherwise decide 4K-aliasing stalls between an op's loads and stores, up to 1.7x on a
small depthwise conv), runs
each model `warmup` times, picks a batch size so one batch of the first model takes about
`batch_s`, then takes `samples` rounds; each round times one batch of every model, in a
rotating order (so drift and noise from the shared machine hit all of them alike). The
result per model is the median over rounds of the time per call, in seconds.

`count_models(models, target, workdir)` instead counts each model's exact executed
instructions in QEMU (Cortex-M boards, AArch64/ARMv7-A Linux under qemu-user) with an
llvm-mca cycle estimate.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time

import numpy as np

from dgc.errors import DgcError
from dgc.spec import ModelSpec

PAGE = 4096
SPREAD = 17 * 64  # bytes between the page offsets of successive buffers: apart, cache-line aligned


def placed_buffer(k: int, shape, dtype, data=None) -> np.ndarray:
    """A zeroed array (or a copy of `data`) starting SPREAD * k bytes past a page boundary:
    buffer k of a timed model, at the same page offset for every candidate."""
    from dgc.runtime.runners import _aligned_empty

    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    a = _aligned_empty(nbytes + PAGE, PAGE)[SPREAD * k % PAGE:][:nbytes].view(dtype).reshape(shape)
    if data is not None:
        a[...] = data
    return a


class MeasureError(DgcError):
    exit_code = 7


class LoadedModel:
    """A compiled model in a loaded shared library: one call is one ctypes call, no allocation."""

    def __init__(self, lib_path: str, spec: ModelSpec, inputs: list[np.ndarray]):
        from dgc.runtime.runners import _aligned_empty

        self.lib = ctypes.CDLL(lib_path)
        self.fn = getattr(self.lib, spec.entry)
        self.fn.restype = ctypes.c_int
        # the buffers live as long as the pointers
        self.inputs = [placed_buffer(k, x.shape, x.dtype, x) for k, x in enumerate(inputs)]
        self.outputs = [placed_buffer(len(inputs) + k, t.shape, t.dtype) for k, t in enumerate(spec.outputs)]
        self.arena = _aligned_empty(spec.arena_size, max(PAGE, spec.arena_align)) if spec.arena_size else None
        pointers = [b.ctypes.data for b in (*self.inputs, *self.outputs)]
        pointers.append(self.arena.ctypes.data if self.arena is not None else None)
        self.args = [ctypes.c_void_p(p) for p in pointers]

    def __call__(self) -> None:
        if self.fn(*self.args) != 0:
            raise RuntimeError(f"{self.fn.__name__} returned non-zero")


def time_models(models: list[tuple[ModelSpec, str]], target, workdir: str, samples: int = 15,
                warmup: int = 3, batch_s: float = 0.003, timeout: float = 300) -> list[float]:
    """Median seconds per call of each model (see the module doc)."""
    from dgc.runtime.runners import _link_shared

    os.makedirs(workdir, exist_ok=True)
    job = {"samples": samples, "warmup": warmup, "batch_s": batch_s, "models": []}
    for spec, obj in models:
        lib = _link_shared([(spec, obj)], target, workdir, timeout)
        job["models"].append({"lib": lib, "spec": json.loads(spec.to_json())})
    path = os.path.join(workdir, "measure-job.json")
    with open(path, "w") as f:
        json.dump(job, f)
    try:
        proc = subprocess.run([sys.executable, "-m", "dgc.measure", path], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MeasureError(f"timing run did not finish within {timeout} s") from None
    if proc.returncode != 0:
        why = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise MeasureError(f"timing run failed ({why}): {last}")
    return json.loads(proc.stdout)["seconds"]


def median_of_runs(runs: list[list[float]]) -> list[float]:
    """Costs of the same models over independent runs (one list per run, the first model
    the reference) -> one cost each: the reference's median, and each other model's the
    reference's median times the median of its per-run ratios to the reference (a shared
    machine's drift between runs cancels in the ratios)."""
    import statistics

    base = statistics.median(r[0] for r in runs)
    return [base * statistics.median(r[i] / r[0] for r in runs) for i in range(len(runs[0]))]


def count_models(models: list[tuple[ModelSpec, str]], target, workdir: str, timeout: float = 600) -> list[dict]:
    """Each model run once in QEMU under the icount plugin (dgc.runtime.icount), by
    `target.runner`: "qemu-system" (Cortex-M: the board firmware in qemu-system-arm) or
    "qemu-user" (AArch64 / ARMv7-A Linux: the static harness program in qemu-aarch64 /
    qemu-arm). Returns per model {"instructions": exact instructions executed by `<name>_run`,
    "cycles": the llvm-mca cycle estimate of those instructions (target.cpu's scheduling
    model, or `estimate.mca_cpu`'s stand-in where LLVM has none)}. Deterministic; a crash or
    fault raises MeasureError; another runner raises MeasureError."""
    from dgc.errors import ToolError, first_line
    from dgc.runtime.icount.estimate import estimate
    from dgc.runtime.icount.plugin import build_firmware, run_counted
    from dgc.verifier import random_inputs

    if target.runner not in ("qemu-system", "qemu-user"):
        raise MeasureError(f"target {target.name} (runner {target.runner!r}) cannot be counted in QEMU")
    out = []
    for k, (spec, obj) in enumerate(models):
        wd = os.path.join(workdir, f"count{k}")
        try:
            exe = build_firmware([(spec, [obj])], target, [random_inputs(spec, 0)], wd, timeout)
            _, regions = run_counted(exe, [spec], target, wd, timeout)
            est = estimate(exe, regions[0].counts, target)
        except (ToolError, RuntimeError) as e:
            raise MeasureError(f"counting run failed: {first_line(e)}") from None
        out.append({"instructions": est.instructions, "cycles": est.cycles})
    return out


def _child(path: str) -> None:
    with open(path) as f:
        job = json.load(f)
    rng = np.random.default_rng(0)
    models = []
    for m in job["models"]:
        spec = ModelSpec.from_json(json.dumps(m["spec"]))
        inputs = [np.ascontiguousarray(rng.standard_normal(t.shape).astype(t.dtype)) if t.dtype.startswith("float")
                  else np.zeros(t.shape, dtype=t.dtype) for t in spec.inputs]
        models.append(LoadedModel(m["lib"], spec, inputs))
    for model in models:
        for _ in range(job["warmup"]):
            model()
    t0 = time.perf_counter()
    models[0]()
    once = max(time.perf_counter() - t0, 1e-7)
    batch = max(1, int(job["batch_s"] / once))
    per_call = [[] for _ in models]
    for s in range(job["samples"]):
        for k in range(len(models)):
            i = (s + k) % len(models)
            t0 = time.perf_counter_ns()
            for _ in range(batch):
                models[i]()
            per_call[i].append((time.perf_counter_ns() - t0) / batch / 1e9)
    json.dump({"seconds": [float(np.median(t)) for t in per_call], "batch": batch}, sys.stdout)


if __name__ == "__main__":
    _child(sys.argv[1])
