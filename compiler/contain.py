"""Compiles in a child process, so a crash inside MLIR/LLVM cannot take the caller down.

The pinned MLIR build has assertions on: a bad op can abort() the process, and a segfault in
C++ kills Python outright. `compile_contained(...)` runs `dgc.compile` in a forked child that
reports each stage as it starts; the result (or a DgcError) comes back through a pipe. When the
child dies instead (a signal, or an exit without an answer), the parent knows the stage it was
in, compiles again in a second child that saves that stage's input IR before running it, and
raises InternalCompilerError: "internal compiler error in stage S; input IR saved to PATH;
reproduce with: ...". The pipeline is deterministic, so the second run reaches the same point.

Measured cost: one fork (~5 ms) plus pickling the result; nothing else on success.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
import traceback

from . import driver
from .errors import DgcError

TEST_CRASH_ENV = "DGC_TEST_CRASH_STAGE"  # test hook: abort() when this stage starts


class InternalCompilerError(DgcError):
    """A crash (abort, segfault) inside the compiler's native code, contained."""
    exit_code = 70


class _Reported(DgcError):
    """A DgcError raised in the child, re-raised in the parent with its exit code and text."""

    def __init__(self, exit_code: int, line: str, stderr: str | None, tb: str):
        self.exit_code, self.stderr, self.child_traceback = exit_code, stderr, tb
        super().__init__(line)


class _Observer:
    """Installed in the child: reports stages, optionally saves one stage's input IR."""

    def __init__(self, conn, save_before: str | None, save_dir: str | None):
        self.conn, self.save_before, self.save_dir = conn, save_before, save_dir
        self.saved: str | None = None

    def __call__(self, stage: str, module) -> None:
        if stage == self.save_before and module is not None and self.save_dir:
            path = os.path.join(self.save_dir, f"{stage}-input.mlir")
            with open(path, "w") as f:
                f.write(module.operation.get_asm(enable_debug_info=True))
            self.conn.send(("saved", path))
        self.conn.send(("stage", stage))
        if os.environ.get(TEST_CRASH_ENV) == stage:
            os.abort()  # stands in for an MLIR assertion failure (SIGABRT), for tests


def _child(conn, args, kwargs, save_before, save_dir):
    driver.OBSERVER = _Observer(conn, save_before, save_dir)
    try:
        res = driver.compile(*args, **kwargs)
        conn.send(("ok", res))
    except DgcError as e:
        conn.send(("dgc", e.exit_code, e.line(), getattr(e, "stderr", None), traceback.format_exc()))
    except BaseException as e:  # noqa: BLE001 - reported to the parent as an internal error
        conn.send(("internal", f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                   traceback.format_exc()))
    finally:
        conn.close()


def _run(args, kwargs, save_before=None, save_dir=None):
    """(messages, exit code of the child)."""
    mp = multiprocessing.get_context("fork")
    recv, send = mp.Pipe(duplex=False)
    p = mp.Process(target=_child, args=(send, args, kwargs, save_before, save_dir), daemon=True)
    p.start()
    send.close()
    messages = []
    while True:
        try:
            messages.append(recv.recv())
        except EOFError:
            break
    p.join()
    return messages, p.exitcode


def compile_contained(*args, **kwargs):
    """`dgc.compile(*args, **kwargs)` in a child process; see the module doc."""
    messages, code = _run(args, kwargs)
    for m in messages:
        if m[0] == "ok":
            return m[1]
        if m[0] == "dgc":
            raise _Reported(m[1], m[2], m[3], m[4])
        if m[0] == "internal":
            raise InternalError(m[1], m[2])
    stages = [m[1] for m in messages if m[0] == "stage"]
    stage = stages[-1] if stages else "load"
    how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
    save_dir = tempfile.mkdtemp(prefix="dgc-ice-")
    again, _ = _run(args, kwargs, save_before=stage, save_dir=save_dir)
    saved = next((m[1] for m in again if m[0] == "saved"), None)
    where = f"stage {stage}"
    if saved:
        repro = _replay(stage, kwargs.get("target", args[1] if len(args) > 1 else "host"), saved)
        hint = f"input IR saved to {saved}; reproduce with: {repro}"
    else:
        hint = "reproduce with the same dgc command and --debug"
    raise InternalCompilerError(f"internal compiler error ({how})", where=where, hint=hint)


def _replay(stage: str, target, saved: str) -> str:
    from dgc.pipelines import for_target

    from .targets import Target, get_target

    tgt = target if isinstance(target, Target) else get_target(target)
    st = next((s for s in for_target(tgt) if s.name == stage), None)
    if st is not None and st.passes:
        return f"mlir-opt --pass-pipeline='{st.pipeline}' {saved}"
    return f"the same dgc command (stage {stage} is dgc's own Python code, run on {saved})"


class InternalError(DgcError):
    """A Python exception inside the compiler (a bug), raised in the child."""
    exit_code = 70

    def __init__(self, line: str, tb: str):
        self.child_traceback = tb
        super().__init__(line)
