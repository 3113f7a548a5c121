"""Stage list for Linux CPUs (x86-64, AArch64, ARMv7-A)."""

from dgc.passes import columns, dsp_kernels

from .common import standard
from .stage import Stage


def stages(target):
    out = standard(target.index_bits)
    at = [s.name for s in out].index("schedule")
    out.insert(at, Stage("columns", "matmul columns padded to whole vectors (constant weights)", fn=columns.run))
    if target.int8_dot:
        at = [s.name for s in out].index("bufferize") + 1
        out.insert(at, Stage("int8-dot", f"int8 convolutions as {target.int8_dot} dot-product loops",
                             fn=dsp_kernels.run))
    return out
