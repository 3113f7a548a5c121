"""A pipeline is data: an ordered list of named stages.

A `Stage` is either a list of upstream pass strings (run as one pass manager) or a Python
function `(module, ctx) -> None`. Stage names are `--emit`/`--stop-after` values and dump names.
"""

from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    why: str
    passes: tuple[str, ...] = ()
    fn: Callable | None = None

    @property
    def pipeline(self) -> str:
        return "builtin.module(" + ",".join(self.passes) + ")"

    def describe(self) -> str:
        if self.fn is not None:
            return f"python: {self.fn.__module__}.{self.fn.__name__}"
        return self.pipeline
