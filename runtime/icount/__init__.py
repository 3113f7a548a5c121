"""Exact instruction counts and llvm-mca cycle estimates of model runs under qemu-system-arm
(`plugin`: the TCG plugin icount.c and the firmware around it; `estimate`: llvm-mca per
executed basic block). Used by bench/cortexm.py and by `dgc tune` for Cortex-M targets."""
