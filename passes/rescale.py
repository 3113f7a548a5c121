"""Cheaper integer requantization when every shift is known to be at least 33.

`tosa-to-arith{include-apply-rescale}` expands TOSA's fixed-point rescale into 64-bit
arithmetic with a variable 64-bit shift and rounding constant per element:

    r = (sext64(acc) * sext64(mult) + (1 << (s - 1))) >> s        (SINGLE_ROUND)

On 32-bit cores the variable 64-bit shifts cost ~20 instructions. When the shift operand is
a constant (per tensor or per channel) with every value in [33, 62], the same result comes
from the high word alone, because 1 << (s - 1) is then a multiple of 2**32:

    r = (hi32(sext64(acc) * sext64(mult)) + (1 << (s - 33))) >> (s - 32)

(exact: floor((p + 2**(s-1)) / 2**s) with p + 2**(s-1) = (hi + 2**(s-33)) * 2**32 + lo, and
no overflow since |hi| < 2**30). ARM: one SMULL, then 32-bit shifts and an add.
"""

from __future__ import annotations

from dgc.ir import arith_d, attr_array, ir, ops_named


def _const_values(value, ctx):
    """Values of an i8 shift: a constant in the body, or a generic input fed by a constant."""
    owner = value.owner
    if isinstance(owner, ir.Block):  # block argument of a linalg.generic
        generic = owner.owner
        if generic.name != "linalg.generic" or value.arg_number >= len(generic.operands):
            return None
        value = generic.operands[value.arg_number]
        owner = value.owner
    op = getattr(owner, "operation", owner)
    while isinstance(op, ir.Operation) and op.name in ("tensor.expand_shape", "tensor.collapse_shape"):
        op = op.operands[0].owner
        op = getattr(op, "operation", op)
    if not isinstance(op, ir.Operation) or op.name != "arith.constant":
        return None
    return attr_array(op.attributes["value"], ctx.blobs)


def _is(value, name):
    op = value.owner
    op = getattr(op, "operation", op)
    return op if isinstance(op, ir.Operation) and op.name == name else None


def run(module, ctx) -> int:
    """Rewrite every eligible rescale; returns how many."""
    i32, i64 = ir.IntegerType.get_signless(32), ir.IntegerType.get_signless(64)
    done = 0
    for shr in ops_named(module.operation, ("arith.shrsi",)):
        x, s64 = shr.operands
        if x.type != i64:
            continue
        ext = _is(s64, "arith.extui")
        add = _is(x, "arith.addi")
        if ext is None or add is None or len(list(shr.results[0].uses)) != 1:
            continue
        use = next(iter(shr.results[0].uses)).owner
        if use.name != "arith.trunci" or use.results[0].type != i32:
            continue
        rnd = [v for v in add.operands if _is(v, "arith.shrui")]
        if len(rnd) != 1:
            continue
        prod = add.operands[1] if add.operands[0] == rnd[0] else add.operands[0]
        shifts = _const_values(ext.operands[0], ctx)
        if shifts is None or shifts.size == 0 or shifts.min() < 33 or shifts.max() > 62:
            continue
        with ir.InsertionPoint(use), use.location:
            c = lambda v, t=i32: arith_d.constant(t, v)  # noqa: E731
            s = arith_d.extui(i32, ext.operands[0])
            hi = arith_d.trunci(i32, arith_d.shrsi(prod, c(32, i64)))
            rnd32 = arith_d.shli(c(1), arith_d.subi(s, c(33)))
            y = arith_d.shrsi(arith_d.addi(hi, rnd32), arith_d.subi(s, c(32)))
        use.results[0].replace_all_uses_with(y)
        done += 1
    if done:
        from dgc.ir import PassManager

        PassManager.parse("builtin.module(canonicalize,cse)").run(module.operation)
    return done
