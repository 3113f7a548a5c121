"""Locating and running the external tools (mlir-translate, llc, gcc, qemu).

Every subprocess goes through `run_tool`, so a failure always keeps argv, exit code and
stderr (a `ToolError`), never an `assert`.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from .errors import ToolError


@functools.cache
def _site_dir() -> str:
    import mlir.ir  # namespace package: mlir.__file__ is None

    return os.path.dirname(os.path.dirname(mlir.ir.__file__))


def tool_path(name: str) -> str:
    """Path of an MLIR/LLVM tool from the xtc wheels, else from PATH."""
    for sub in ("mlir/bin", "llvm/bin"):
        cand = os.path.join(_site_dir(), sub, name)
        if os.path.exists(cand):
            return cand
    found = shutil.which(name)
    if not found:
        raise ToolError([name], 127, f"{name}: not found; install the packages listed in README.md")
    return found


def run_tool(argv: list[str], *, input: bytes | None = None, timeout: float | None = None,
             what: str = "") -> subprocess.CompletedProcess:
    """Run argv; raise ToolError with its stderr when it fails or times out."""
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise ToolError(argv, 127, f"{argv[0]}: not found", what) from None
    except subprocess.TimeoutExpired as e:
        raise ToolError(argv, -1, f"timed out after {timeout} s\n"
                        + (e.stderr or b"").decode(errors="replace"), what) from None
    if proc.returncode != 0:
        raise ToolError(argv, proc.returncode, proc.stderr.decode(errors="replace")
                        + proc.stdout.decode(errors="replace")[-2000:], what)
    return proc
