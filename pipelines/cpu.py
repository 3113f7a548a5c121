"""Stage list for Linux CPUs (x86-64, AArch64, ARMv7-A)."""

from dgc.passes import dsp_kernels

from .common import standard
from .stage import Stage


def stages(target):
    out = standard(target.index_bits)
    if target.int8_dot:
        at = [s.name for s in out].index("bufferize") + 1
        out.insert(at, Stage("int8-dot", f"int8 convolutions as {target.int8_dot} dot-product loops",
                             fn=dsp_kernels.run))
    return out
