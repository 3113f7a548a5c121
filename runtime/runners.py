"""Running compiled models: on this machine, under qemu-user, or on a QEMU Cortex-M board.

`run_models(models, target, inputs, workdir)` links every (spec, object file) pair into ONE
program for `target`, runs each model once on its inputs and returns its outputs as numpy
arrays with the spec's shapes and dtypes. How depends on `target.runner`:

  host         `cc -shared` into a library, then ctypes calls each `<name>_run` in this
               process with numpy buffers and a 16-aligned arena
  qemu-user    the generated harness (harness.py) + harness_stdio.c, linked with
               `target.gcc target.gcc_flags` (static) and run as `<target.board> prog dir`
  qemu-system  the same harness on bare metal: startup_cortexm.c, semihost.c and
               boards/<target.board>.ld, run by qemu-system-arm with semihosting
  none         a compile-only target: UsageError

Harness runs exchange tensors as raw files in `workdir`. Tool failures (compiler, QEMU,
a CPU fault, a timeout) raise ToolError; a model returning non-zero raises ModelRunError.
"""

from __future__ import annotations

import ctypes
import hashlib
import os

import numpy as np

from dgc.errors import ModelRunError, UsageError  # noqa: F401  (ModelRunError re-exported)
from dgc.header import render_header
from dgc.spec import ModelSpec, TensorSpec
from dgc.targets import Target, host_can_run
from dgc.tools import run_tool

from . import harness

RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
_C_FLAGS = ["-O2", "-std=c11", "-Wall", "-Werror=incompatible-pointer-types",
            "-Werror=implicit-function-declaration", "-ffunction-sections", "-fdata-sections"]


def run_models(models: list[tuple[ModelSpec, str]], target: Target,
               inputs: list[list[np.ndarray]], workdir: str,
               timeout: float = 600) -> list[list[np.ndarray]]:
    """Link all models into one program for `target`, run each once, return its outputs."""
    if target.runner not in _RUNNERS:
        raise UsageError(f"target '{target.name}' is compile-only (runner '{target.runner}')",
                         hint="no emulator or host can execute it; pick another --target")
    arrays = _check_inputs(models, inputs)
    os.makedirs(workdir, exist_ok=True)
    models = [(spec, os.path.abspath(obj)) for spec, obj in models]
    return _RUNNERS[target.runner](models, target, arrays, os.path.abspath(workdir), timeout)


def run_model(spec: ModelSpec, obj: str, target: Target, inputs: list[np.ndarray],
              workdir: str, timeout: float = 600) -> list[np.ndarray]:
    """`run_models` for a single model."""
    return run_models([(spec, obj)], target, [inputs], workdir, timeout)[0]


# ---- inputs ------------------------------------------------------------------------------

def _check_inputs(models, inputs) -> list[list[np.ndarray]]:
    names = [spec.name for spec, _ in models]
    if len(set(names)) != len(names):
        raise UsageError(f"model names must differ to link together, got {names}")
    if len(inputs) != len(models):
        raise UsageError(f"{len(models)} models but {len(inputs)} input lists")
    arrays = []
    for (spec, _), xs in zip(models, inputs):
        if len(xs) != len(spec.inputs):
            raise UsageError(f"model '{spec.name}' takes {len(spec.inputs)} inputs, "
                             f"got {len(xs)}")
        arrays.append([_coerce(spec, t, x) for t, x in zip(spec.inputs, xs)])
    return arrays


def _coerce(spec: ModelSpec, t: TensorSpec, x) -> np.ndarray:
    """x as a C-contiguous array of t's dtype and shape; safe or same-kind casts only."""
    x = np.asarray(x)
    where = f"model '{spec.name}', input '{t.name}'"
    if tuple(x.shape) != tuple(t.shape):
        raise UsageError(f"input shape {list(x.shape)} != {list(t.shape)}", where)
    if not np.can_cast(x.dtype, t.dtype, "same_kind"):
        raise UsageError(f"input dtype {x.dtype} cannot be cast to {t.dtype}", where)
    return np.ascontiguousarray(x, dtype=t.dtype)


def _check_status(spec: ModelSpec, target: Target, status: int) -> None:
    if status != 0:
        raise ModelRunError(f"{spec.entry} returned {status} instead of 0",
                            where=f"model '{spec.name}' on target {target.name}",
                            hint="the model reported a failure at run time")


# ---- host: a shared library called through ctypes ---------------------------------------

def _run_host(models, target, inputs, workdir, timeout):
    if not host_can_run(target):
        raise UsageError(f"this machine cannot run code for target '{target.name}'",
                         hint=f"its CPU lacks some of: {', '.join(target.host_flags)}")
    lib = ctypes.CDLL(_link_shared(models, target, workdir, timeout))
    return [_call_host(lib, spec, target, xs) for (spec, _), xs in zip(models, inputs)]


def _link_shared(models, target, workdir, timeout) -> str:
    """Link the objects into a library named by their content: dlopen caches by path."""
    digest = hashlib.sha256()
    for _, obj in models:
        with open(obj, "rb") as f:
            digest.update(f.read())
    lib = os.path.join(workdir, f"dgc_models_{digest.hexdigest()[:16]}.so")
    objs = [obj for _, obj in models]
    run_tool([target.gcc or "cc", *target.gcc_flags, "-shared", "-Wl,--no-undefined",
              "-o", lib, *objs, "-lm"], timeout=timeout, what="linking the models for the host")
    return lib


def _aligned_empty(nbytes: int, align: int) -> np.ndarray:
    raw = np.zeros(nbytes + align, dtype=np.uint8)
    skip = (-raw.ctypes.data) % align
    return raw[skip:skip + nbytes]


def _call_host(lib, spec: ModelSpec, target: Target, xs) -> list[np.ndarray]:
    try:
        fn = getattr(lib, spec.entry)
    except AttributeError:
        raise UsageError(f"the object for model '{spec.name}' does not define {spec.entry}",
                         hint="was it compiled with --name " + spec.name + "?") from None
    fn.restype = ctypes.c_int
    outs = [np.zeros(t.shape, dtype=t.dtype) for t in spec.outputs]
    arena = _aligned_empty(spec.arena_size, max(spec.arena_align, 16))
    ptrs = [a.ctypes.data for a in (*xs, *outs)]
    ptrs.append(arena.ctypes.data if spec.arena_size else None)
    _check_status(spec, target, fn(*[ctypes.c_void_p(p) for p in ptrs]))
    return outs


# ---- harness programs: qemu-user and qemu-system ----------------------------------------

def _run_harness(models, target, inputs, workdir, timeout):
    specs = [spec for spec, _ in models]
    _write_sources(specs, inputs, workdir)
    build, launch = _HARNESS[target.runner]
    exe = build(target, [obj for _, obj in models], workdir, timeout)
    run_tool(launch(target, exe, workdir), timeout=timeout,
             what=f"running the models on {target.name} ({target.board})")
    return _read_outputs(specs, target, workdir)


def _write_sources(specs, inputs, workdir) -> None:
    for spec, xs in zip(specs, inputs):
        _write(os.path.join(workdir, f"{spec.name}.h"), render_header(spec).encode())
        for i, x in enumerate(xs):
            _write(os.path.join(workdir, harness.input_file(spec, i)), x.tobytes())
    _write(os.path.join(workdir, "harness.c"), harness.render_harness(specs).encode())
    _remove_stale(specs, workdir)


def stack_use(workdir: str) -> list[int]:
    """Bytes of stack each model's run used in the last Cortex-M harness run in `workdir`
    (measured by painting the stack; see harness.py)."""
    return [int(v) for v in np.fromfile(os.path.join(workdir, harness.STACK_FILE), dtype=np.int32)]


def _remove_stale(specs, workdir) -> None:
    """Outputs of an earlier run must not pass for this run's."""
    names = [harness.STATUS_FILE, harness.STACK_FILE]
    names += [harness.output_file(s, i) for s in specs for i in range(len(s.outputs))]
    for name in names:
        if os.path.exists(path := os.path.join(workdir, name)):
            os.remove(path)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _read_outputs(specs, target, workdir) -> list[list[np.ndarray]]:
    status = np.fromfile(os.path.join(workdir, harness.STATUS_FILE), dtype=np.int32)
    results = []
    for spec, rc in zip(specs, status, strict=True):
        _check_status(spec, target, int(rc))
        results.append([np.fromfile(os.path.join(workdir, harness.output_file(spec, i)),
                                    dtype=t.dtype).reshape(t.shape)
                        for i, t in enumerate(spec.outputs)])
    return results


def _compile_argv(target: Target, sources: list[str], objs: list[str], exe: str,
                  workdir: str) -> list[str]:
    sources = [os.path.join(RUNTIME_DIR, s) for s in sources]
    return [target.gcc, *target.gcc_flags, *_C_FLAGS, "-I", workdir, "-I", RUNTIME_DIR,
            os.path.join(workdir, "harness.c"), *sources, *objs, "-o", exe]


def _build_user(target, objs, workdir, timeout) -> str:
    exe = os.path.join(workdir, "dgc_harness")
    run_tool(_compile_argv(target, ["harness_stdio.c"], objs, exe, workdir) + ["-lm"],
             timeout=timeout, what=f"linking the harness for {target.name}")
    return exe


def _build_system(target, objs, workdir, timeout) -> str:
    script = os.path.join(RUNTIME_DIR, "boards", f"{target.board}.ld")
    if not os.path.exists(script):
        raise UsageError(f"no linker script for QEMU board '{target.board}'",
                         hint=f"add {script} (see cortexm.ld)")
    exe = os.path.join(workdir, "dgc_harness.elf")
    argv = _compile_argv(target, ["startup_cortexm.c", "semihost.c"], objs, exe, workdir)
    argv += ["-nostartfiles", "--specs=nano.specs", "-L", RUNTIME_DIR, "-T", script,
             "-Wl,--gc-sections", "-lm"]
    run_tool(argv, timeout=timeout, what=f"linking the firmware for {target.name}")
    return exe


def _launch_user(target, exe, workdir) -> list[str]:
    return [target.board, exe, workdir]


def _launch_system(target, exe, workdir) -> list[str]:
    if len(workdir) > 900:
        raise UsageError(f"work directory path too long for semihosting: {workdir!r}")
    # The semihosting command line "dgc_harness <workdir>" becomes main's argv.
    # QEMU option values escape a comma by doubling it.
    arg = workdir.replace(",", ",,")
    return ["qemu-system-arm", "-M", target.board, "-nographic", "-monitor", "none",
            "-serial", "none", "-semihosting-config",
            f"enable=on,target=native,arg=dgc_harness,arg={arg}", "-kernel", exe]


_RUNNERS = {"host": _run_host, "qemu-user": _run_harness, "qemu-system": _run_harness}
_HARNESS = {"qemu-user": (_build_user, _launch_user),
            "qemu-system": (_build_system, _launch_system)}
