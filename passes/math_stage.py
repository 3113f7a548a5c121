"""Stage wrapper: expand math ops to polynomials; sqrt too when the target has no FPU."""

from __future__ import annotations

from .math_approx import expand_math


def run(module, ctx) -> None:
    expand_math(module, expand_sqrt=not ctx.target.fpu)
