"""passes/smlad_asm: the hand-scheduled SMLAD K loops. Their results are checked bit-exact
against the intrinsic kernels and onnxruntime on every block and unroll in test_dsp_blocks (QEMU);
here: the order keeps Cortex-M7's MAC unit busy (llvm-mca, the same model `dgc tune` counts
with), blocks that cannot be written this way fall back, and the asm's stack slot is counted."""

from __future__ import annotations

import subprocess

import pytest

from dgc import stack
from dgc.passes import smlad_asm
from dgc.tools import tool_path


REGS = [f"r{i}" for i in range(13)] + ["lr"]


def _mca(ops, accs: int) -> float:
    """llvm-mca (Cortex-M7) cycles per SMLAD of `ops` (registers: accumulators, the two
    pointers, temporaries), in steady state."""
    text = smlad_asm.render(ops, lambda a: REGS[a], lambda q: REGS[accs + (q == "x")],
                            lambda t: REGS[accs + 2 + t]).replace("\n\t", "\n")
    out = subprocess.run([tool_path("llvm-mca"), "-mtriple=thumbv7em-none-eabi", "-mcpu=cortex-m7",
                          "-iterations=50"], input=text + "\n", capture_output=True, text=True, check=True).stdout
    cycles = int(next(line for line in out.splitlines() if "Total Cycles" in line).split()[-1]) / 50
    return cycles / sum(op.kind == "smlad" for op in ops)


def _cycles_per_smlad(p, f, words, kp, w16) -> float:
    ops = smlad_asm.schedule(p, f, words, kp, w16, smlad_asm.temporaries(p, f))
    assert sum(op.kind == "smlad" for op in ops) == 2 * p * f * words
    return _mca(ops, p * f)


@pytest.mark.parametrize("p,f,w16,limit", [(4, 2, True, 1.05), (2, 2, True, 1.05), (2, 2, False, 1.35),
                                           (2, 4, True, 1.05), (4, 1, True, 1.15)])
def test_schedule_keeps_the_mac_unit_busy(p, f, w16, limit):
    """LLVM's own order of the same blocks runs at 1.39 (4x2, 2x2 int16 weights) and 1.69 (2x2
    int8 weights) cycles per SMLAD in llvm-mca's Cortex-M7 model; 1 is the MAC unit's bound."""
    assert _cycles_per_smlad(p, f, 16, 576, w16) <= limit


def test_depthwise_step():
    """A 3x3 depthwise step (5 position pairs, 4 channels): 80 instructions, of which 24 SIMD
    ops that do not pair with each other; LLVM's order of the same work ran at ~4 cycles per
    SMLAD, the asm at 2.5."""
    offsets = [0, 64, 128, 1600, 1664, 1728, 3200, 3264, 3328, 3328]
    ops = smlad_asm._schedule(*smlad_asm._dw_program(offsets), smlad_asm.REGS - 6, "dw")
    assert len(ops) == 80 and sum(op.kind == "smlad" for op in ops) == 20
    assert _mca(ops, 4) <= 2.6
    assert smlad_asm.dw_kernel([0, 4096]) is None


def test_blocks_that_do_not_fit_fall_back():
    assert smlad_asm.kernel(4, 3, 36, 144, True, 0) is None  # 12 accumulators
    assert smlad_asm.kernel(4, 2, 36, 1152, True, 0) is None  # pixel 3 at 6912 bytes: past LDR.W
    text, cons, temps, span = smlad_asm.kernel(2, 2, 36, 144, False, 0)
    assert span == 8 * 8 * 4 and "bne 1b" in text and cons.endswith(",r,~{memory},~{cc}")
    assert text.count("smlad") == 2 * 2 * 2 * (8 + 4)  # one 8-word chunk in the loop, 4 words after
    text, _, _, span = smlad_asm.kernel(2, 2, 12, 144, True, 16)  # fewer words than a chunk: no loop
    assert span == 0 and "1:" not in text and "sp" not in text


def test_stack_slot_is_counted():
    text = smlad_asm.kernel(4, 2, 36, 144, True, 0)[0]
    assert text.startswith(f"{stack.ASM_STACK}{smlad_asm.STACK_BYTES}\n")
    ll = ('define void @a() {\n  call void asm sideeffect "@ dgc-stack 8\\0A\\09str.w r0, [sp, #-8]!", ""()\n'
          '  ret void\n}\ndefine void @b() {\n  ret void\n}\n')
    assert stack.asm_stack(ll) == {"a": 8}
