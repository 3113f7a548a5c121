"""Stage list for Linux CPUs (x86-64, AArch64, ARMv7-A)."""

from .common import standard


def stages(target):
    return standard(target.index_bits)
