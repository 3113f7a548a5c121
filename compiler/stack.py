"""The deepest stack use of a model's entry point, computed from its object file.

llc writes each function's fixed frame size into a `.stack_sizes` section
(`-stack-size-section`); the object's relocations give the call graph (with
`-function-sections` every function has its own text section, so a relocation in it belongs
to that function). The bound of a function is its frame plus the largest bound among the
functions it calls. Generated code has no recursion (a cycle is an internal error) and no
dynamic allocas (`check_no_dynamic_alloca` on the LLVM IR). An inline asm statement that
moves sp itself (passes/smlad_asm keeps a loop bound below the frame) says so with a comment,
`@ dgc-stack N`; `asm_stack` reads those from the LLVM IR and `compute` adds the largest to
that function's frame.

Calls leaving the object go to the C runtime's helpers (libgcc's soft-float and division
routines, memcpy/memset): their stack use belongs to the user's toolchain, so a documented
allowance stands in for each (`EXTERNAL_ALLOWANCE`); arm-none-eabi-gcc 12's libgcc helpers
push at most 32 bytes, newlib's memcpy/memset 16-24.
"""

from __future__ import annotations

import dataclasses
import json
import re

from .errors import PipelineError
from .tools import run_tool, tool_path

# Bytes allowed for one call into a runtime helper outside the object, per architecture
# family (the helpers are leaf functions; the allowance covers their pushes and alignment).
EXTERNAL_ALLOWANCE = {"arm": 48, "aarch64": 96, "x86": 128}
_DYNAMIC_ALLOCA = re.compile(r"= alloca [^,]+, i\d+ %")
ASM_STACK = "@ dgc-stack "  # + bytes: the comment an sp-moving inline asm statement starts with
_DEFINE = re.compile(r'^define [^@]*@"?([\w.$]+)"?\(', re.M)
_ASM_STACK = re.compile(re.escape(ASM_STACK) + r"(\d+)")


@dataclasses.dataclass(frozen=True)
class StackBound:
    entry: str
    bound: int  # bytes, the deepest path from `entry` (excluding the caller's call instruction)
    path: tuple[str, ...]  # the deepest call chain, entry first
    frames: dict  # function -> its own frame bytes (externals: the allowance)

    def to_json(self) -> dict:
        return {"entry": self.entry, "bound": self.bound, "deepest_path": list(self.path),
                "frames": dict(sorted(self.frames.items()))}


def check_no_dynamic_alloca(ll_text: str) -> None:
    m = _DYNAMIC_ALLOCA.search(ll_text)
    if m:
        raise PipelineError("generated code has a variable-size stack allocation, so its stack use has no bound",
                            hint=f"internal compiler error: `{m.group(0)}` in the LLVM IR")


def asm_stack(ll_text: str) -> dict[str, int]:
    """Function -> the most stack bytes one of its inline asm statements pushes (ASM_STACK)."""
    out: dict[str, int] = {}
    heads = list(_DEFINE.finditer(ll_text))
    for k, m in enumerate(heads):
        body = ll_text[m.end():heads[k + 1].start() if k + 1 < len(heads) else len(ll_text)]
        sizes = [int(n) for n in _ASM_STACK.findall(body)]
        if sizes:
            out[m.group(1)] = max(sizes)
    return out


def _family(triple: str) -> str:
    arch = triple.split("-")[0]
    return "aarch64" if arch.startswith(("aarch64", "arm64")) else "arm" if arch.startswith(("arm", "thumb")) \
        else "x86"


def read_object(obj_path: str) -> dict:
    """llvm-readobj's JSON of an ELF object: sections, symbols, relocations, stack sizes."""
    out = run_tool([tool_path("llvm-readobj"), "--elf-output-style=JSON", "--sections", "--symbols",
                    "--relocations", "--stack-sizes", obj_path], what="llvm-readobj failed").stdout
    return json.loads(out)[0]


def compute(doc: dict, entry: str, triple: str, asm: dict | None = None) -> StackBound:
    """The stack bound of `entry` in the object described by `doc` (`read_object`); `asm`:
    bytes inline asm pushes below a function's frame (`asm_stack`)."""
    sections = {s["Section"]["Index"]: s["Section"] for s in doc.get("Sections", [])}
    funcs_in: dict[int, list[str]] = {}
    undefined = set()
    for entry_ in doc.get("Symbols", []):
        sym = entry_["Symbol"]
        name, where = sym["Name"]["Name"], sym["Section"]
        if where["Name"] == "Undefined" and name:
            undefined.add(name)
        elif sym["Type"]["Name"] == "Function":
            funcs_in.setdefault(where["Value"], []).append(name)
    frames: dict[str, int] = {}
    for e in doc.get("StackSizes", []):
        for f in e["Entry"]["Functions"]:
            frames[f] = int(e["Entry"]["Size"]) + (asm or {}).get(f, 0)
    calls: dict[str, set[str]] = {}
    for group in doc.get("Relocations", []):
        target = sections.get(group["SectionIndex"], {}).get("Info")
        callers = funcs_in.get(target, [])
        for r in group["Relocs"]:
            callee = r["Relocation"]["Symbol"]["Name"]
            if callee in undefined or callee in frames:
                for c in callers:
                    calls.setdefault(c, set()).add(callee)
    allowance = EXTERNAL_ALLOWANCE[_family(triple)]
    if entry not in frames:
        raise PipelineError(f"no stack size recorded for {entry}", hint="internal compiler error: llc's .stack_sizes")

    memo: dict[str, tuple[int, tuple[str, ...]]] = {}

    def deepest(f: str, active: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
        if f in active:
            raise PipelineError(f"generated code is recursive ({' -> '.join(active + (f,))}), so its stack has no bound",
                                hint="internal compiler error")
        if f in memo:
            return memo[f]
        if f not in frames:  # outside the object: a runtime helper
            frames.setdefault(f, allowance)
            return allowance, (f,)
        best = (0, ())
        for g in sorted(calls.get(f, ())):
            best = max(best, deepest(g, active + (f,)), key=lambda p: p[0])
        memo[f] = (frames[f] + best[0], (f,) + best[1])
        return memo[f]

    bound, path = deepest(entry, ())
    used = {f: frames[f] for f in set(_reachable(entry, calls)) | {entry}}
    return StackBound(entry, bound, path, used)


def _reachable(entry: str, calls: dict) -> list[str]:
    seen, work = [], [entry]
    while work:
        f = work.pop()
        if f in seen:
            continue
        seen.append(f)
        work.extend(sorted(calls.get(f, ())))
    return seen
