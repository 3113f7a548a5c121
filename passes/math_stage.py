"""Stage wrapper: expand math ops to polynomials (sqrt too when the target has no FPU), and
integer requantizations with large constant shifts in 32-bit arithmetic (rescale.py)."""

from __future__ import annotations

from . import rescale
from .math_approx import expand_math


def run(module, ctx) -> None:
    expand_math(module, expand_sqrt=not ctx.target.fpu)
    rescale.run(module, ctx)
