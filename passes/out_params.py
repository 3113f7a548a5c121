"""Results become out-parameters written in place.

`buffer-results-to-out-params{hoist-static-allocs}` makes each returned allocation the caller's
output buffer (no copy), but crashes when one buffer is returned twice (a model whose outputs
are the same tensor). Duplicates, and returned function arguments, first get their own buffer
and a copy.
"""

from __future__ import annotations

from dgc.ir import PassManager, ir, memref_d

PIPELINE = "builtin.module(buffer-results-to-out-params{hoist-static-allocs},canonicalize,cse)"


def _distinct_results(fn) -> None:
    ret = fn.regions[0].blocks[0].operations[len(fn.regions[0].blocks[0].operations) - 1]
    seen = []
    for i, v in enumerate(list(ret.operands)):
        if any(v == s for s in seen) or isinstance(v.owner, ir.Block):  # repeated, or an argument
            with ir.InsertionPoint(ret), ret.location:
                fresh = memref_d.alloc(ir.MemRefType(v.type), [], [])
                memref_d.copy(v, fresh)
            ret.operands[i] = fresh
        seen.append(v)


def run(module, ctx) -> None:
    for op in module.body.operations:
        if op.operation.name == "func.func" and len(op.regions[0].blocks):
            _distinct_results(op.operation)
    PassManager.parse(PIPELINE).run(module.operation)
