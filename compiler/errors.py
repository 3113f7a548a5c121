"""Errors users see: one line, a kind, an exit code, and what to do about it."""

from __future__ import annotations


class DgcError(Exception):
    """Base of every error dgc reports to users. `exit_code` groups them by kind."""

    exit_code = 1
    kind = "error"

    def __init__(self, what: str, where: str = "", hint: str = ""):
        self.what, self.where, self.hint = what, where, hint
        super().__init__(self.line())

    def line(self) -> str:
        text = self.what
        if self.where:
            text += f" ({self.where})"
        if self.hint:
            text += f": {self.hint}"
        return text


class UsageError(DgcError):
    """A bad option or argument."""
    exit_code = 2


class ModelError(DgcError):
    """The model file is unreadable, not ONNX, or inconsistent."""
    exit_code = 3


class UnsupportedError(DgcError):
    """The model uses an op, attribute or type dgc does not lower yet."""
    exit_code = 4


class PipelineError(DgcError):
    """A compilation stage failed; `repro` names the saved input IR."""
    exit_code = 5


class ModelRunError(DgcError):
    """A compiled model ran but its `<name>_run` returned non-zero."""
    exit_code = 7


class FootprintError(DgcError):
    """The compiled model does not fit the RAM or flash budget (--ram-limit / --flash-limit)."""
    exit_code = 8


class ToolError(DgcError):
    """An external tool (mlir-translate, llc, gcc, qemu) failed."""
    exit_code = 6

    def __init__(self, argv: list[str], returncode: int, stderr: str, what: str = ""):
        self.argv, self.returncode, self.stderr = list(argv), returncode, stderr
        first = next((ln for ln in stderr.splitlines() if ln.strip()), "").strip()
        super().__init__(what or f"{argv[0].rsplit('/', 1)[-1]} failed with exit code {returncode}",
                         where=first[:300], hint="rerun with --debug to see the full command and output")


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none (for
    one-line reports of failures that are data, not errors: a tuning candidate's)."""
    text = str(e)
    return text.splitlines()[0] if text.strip() else type(e).__name__


def read_json_file(path, where: str, hint: str):
    """The JSON document at `path`; a UsageError naming `where` (e.g. "schedule file 'x.json'")
    when it cannot be read or is not JSON, with `hint` on how to write a good one."""
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise UsageError(f"cannot read {where}", hint=e.strerror or str(e)) from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{where} is not valid JSON ({e.msg}, line {e.lineno})", hint=hint) from None
