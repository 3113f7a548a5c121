"""Stage list for Cortex-M microcontrollers (bare metal, 32-bit index)."""

from dgc.passes import dsp_kernels

from .common import standard
from .stage import Stage


def dsp_stage() -> Stage:
    return Stage("dsp", "int8 convolutions as SMLAD loops on 32-bit words (DSP extension)",
                 fn=dsp_kernels.run)


def stages(target):
    out = standard(target.index_bits)
    if target.dsp:
        at = [s.name for s in out].index("bufferize") + 1
        out.insert(at, dsp_stage())
    return out
