"""MLIR (LLVM dialect) -> LLVM IR -> (opt) -> llc -> object or assembly.

Weights are spliced into the LLVM IR text as `c"..."` byte strings right before llc (see
passes/llvm_finalize.py), so they never round-trip through MLIR's printer or parser.
"""

from __future__ import annotations

import functools
import re
import subprocess

import numpy as np

from .tools import run_tool, tool_path

_HEX = np.frombuffer(b"0123456789ABCDEF", np.uint8)


@functools.cache
def host_cpu() -> str:
    out = subprocess.run([tool_path("llc"), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"Host CPU:\s*(\S+)", out)
    return m.group(1) if m else "generic"


def translate(mlir_path: str, ll_path: str) -> None:
    run_tool([tool_path("mlir-translate"), "--mlir-to-llvmir", mlir_path, "-o", ll_path],
             what="mlir-translate could not translate the LLVM dialect module")


def _target_flags(target) -> list[str]:
    flags = [f"-mtriple={target.triple}", f"-mcpu={target.cpu}"]
    if target.features:
        flags.append(f"-mattr={target.features}")
    return flags


def optimize(ll_path: str, out_path: str, target, opt_level: int) -> None:
    """LLVM's mid-level optimizer (loop vectorization, unrolling) on the weight-less IR."""
    # Full unrolling of the many small constant-trip loops bloats code 4x and compile time
    # 8x for little gain; a moderate threshold keeps vectorization and partial unrolling.
    run_tool([tool_path("opt"), f"-O{opt_level}", "-unroll-threshold=50", *_target_flags(target),
              ll_path, "-S", "-o", out_path],
             what="opt failed")
    if "mve.fp" in (target.features or ""):
        fence_vector_int_to_fp(out_path)


_INT_TO_FP = re.compile(r'^(\s*)(%[-\w.$"]+) = ([us]itofp (?:nneg )?<(\d+) x i\d+> .* to <\d+ x (float|half)>)(.*)$')


def fence_vector_int_to_fp(path: str) -> None:
    """Put an `llvm.arithmetic.fence` after each vector int -> float conversion.

    Works around an LLVM 22 ARM backend bug: with MVE, `fmul (uitofp <N x i32> x), 2**-k` can
    become a fixed-point VCVT whose #k operand is left in a register, and llc aborts in the
    assembly printer ("MCOperand::getImm: not an immediate"; seen on an int8 softmax ->
    DequantizeLinear(scale 1/256) tail). The fence only stops that fusion: the conversion and
    the multiply stay two instructions."""
    with open(path) as f:
        lines = f.read().split("\n")
    out, fenced = [], False
    for line in lines:
        m = _INT_TO_FP.match(line)
        if not m:
            out.append(line)
            continue
        indent, name, conv, n, elem, rest = m.groups()
        ty = f"<{n} x {elem}>"
        raw = f'%"dgc.unfenced.{name[1:].strip(chr(34))}"'
        out.append(f"{indent}{raw} = {conv}{rest}")
        out.append(f"{indent}{name} = call {ty} @llvm.arithmetic.fence.v{n}{'f32' if elem == 'float' else 'f16'}"
                   f"({ty} {raw})")
        fenced = True
    if fenced:
        with open(path, "w") as f:
            f.write("\n".join(out))


def _c_string(data: bytes) -> bytes:
    a = np.frombuffer(data, np.uint8)
    out = np.empty((a.size, 3), np.uint8)
    out[:, 0], out[:, 1], out[:, 2] = ord("\\"), _HEX[a >> 4], _HEX[a & 15]
    return out.tobytes()


def splice_weights(ll_path: str, out_path: str, weights: dict[str, tuple[bytes, int]], section: str = "") -> None:
    """Replace each `@w = external constant ...` declaration by its bytes, internal (in `section`
    when given, else llc's default .rodata.<name>)."""
    placed = b', section "%s"' % section.encode() if section else b""
    pending = dict(weights)
    decl = re.compile(rb'^@"?([\w.$]+)"? = external (?:\w+ )*?(?:global|constant) .*$')
    with open(ll_path, "rb") as src, open(out_path, "wb") as dst:
        for line in src:
            m = decl.match(line.rstrip(b"\n"))
            name = m.group(1).decode() if m else None
            if name in pending:
                data, align = pending.pop(name)
                dst.write(b"@%s = internal unnamed_addr constant [%d x i8] c\"" % (name.encode(), len(data)))
                dst.write(_c_string(data))
                dst.write(b"\"%s, align %d\n" % (placed, align))
            else:
                dst.write(line)
    # weights left in `pending` were dropped by opt as unreferenced: nothing to write


def codegen(ll_path: str, out_path: str, target, opt_level: int, filetype: str = "obj") -> None:
    argv = [tool_path("llc"), f"-O{opt_level}", *_target_flags(target),
            f"-relocation-model={target.relocation_model}", f"-filetype={filetype}",
            "-function-sections", "-data-sections", "-stack-size-section", ll_path, "-o", out_path]
    if target.triple.startswith(("thumb", "arm")):
        argv.insert(-2, f"-float-abi={target.float_abi}")
    run_tool(argv, what="llc failed")


def symbols(obj_path: str) -> tuple[list[str], list[str]]:
    """(global defined symbols, undefined symbols) of an object file."""
    out = run_tool([tool_path("llvm-nm"), "--extern-only", obj_path]).stdout.decode()
    defined, undefined = [], []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.append(parts[1])
        elif len(parts) == 3:
            defined.append(parts[2])
    return sorted(defined), sorted(undefined)

