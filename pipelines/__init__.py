"""Per-target-family stage lists. `for_target(t)` picks the family's list."""

from __future__ import annotations

from . import cpu, mcu
from .stage import Stage

_FAMILIES = {"cpu": cpu, "mcu": mcu}


def for_target(target) -> list[Stage]:
    return _FAMILIES[target.family].stages(target)


__all__ = ["Stage", "for_target"]
