"""Exact instruction counts and llvm-mca cycle estimates of model runs under QEMU: qemu-system-arm
(Cortex-M boards) or qemu-aarch64 / qemu-arm (AArch64 / ARMv7 Linux programs)
(`plugin`: the TCG plugin icount.c and the harness program around it; `estimate`: llvm-mca per
executed basic block). Used by bench/cortexm.py and by `dgc tune` (`dgc.measure.count_models`)."""
