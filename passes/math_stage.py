"""Stage wrapper: expand math ops to polynomials; sqrt too when the target has no FPU."""

from __future__ import annotations


def run(module, ctx) -> None:
    try:
        from .math_approx import expand_math
    except ImportError:  # TEMP during development
        return

    expand_math(module, expand_sqrt=not ctx.target.fpu)
