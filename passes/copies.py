"""memref.copy between non-identity layouts -> linalg.copy (later loops).

Upstream lowers such copies to a call to the runtime function `memrefCopy`, which bare-metal
firmware does not have. Identity-layout copies stay: they become `llvm.memcpy`.
"""

from __future__ import annotations

from dgc.ir import ir, linalg_d, ops_named


def run(module, ctx) -> None:
    for op in ops_named(module.operation, {"memref.copy"}):
        src, dst = op.operands
        if "strided" in str(src.type) or "strided" in str(dst.type):
            with ir.InsertionPoint(op), op.location:
                linalg_d.copy(src, outs=[dst])
            op.erase()
