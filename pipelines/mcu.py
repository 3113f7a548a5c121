"""Stage list for Cortex-M microcontrollers (bare metal, 32-bit index)."""

from .common import standard


def stages(target):
    return standard(target.index_bits)
