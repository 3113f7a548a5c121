"""Stages shared by every target family. Each group of upstream passes says why it is there."""

from __future__ import annotations

from dgc.passes import copies, depthwise, layout, llvm_finalize, math_stage, memory_plan, out_params, padding, schedule, untie

from .stage import Stage


def layout_stage() -> Stage:
    return Stage("layout", "NCHW regions between convolutions moved to NHWC (transposes sunk, cancelled)",
                 fn=layout.run)


def tosa_stage() -> Stage:
    # Clean up the importer's output: fold reshapes/transposes of constants, drop pairs of
    # layout transposes around elementwise ops (NCHW <-> NHWC), merge duplicates.
    return Stage("tosa", "graph-level folding and transpose elimination", (
        "func.func(tosa-optional-decompositions)", "canonicalize", "func.func(tosa-reduce-transposes)",
        "canonicalize", "cse"))


def linalg_stage() -> Stage:
    # TOSA -> Linalg on tensors, then fuse elementwise chains into single loops. Reshapes stay
    # tosa.reshape until after the fusion: its reshape propagation would otherwise expand
    # matmuls fed by a reshape (Flatten -> Gemm, attention heads) into generics with several
    # reduction loops, which the schedule stage cannot block into registers.
    return Stage("linalg", "TOSA to Linalg on tensors, elementwise fusion", (
        "func.func(tosa-to-linalg-named,tosa-to-linalg,tosa-to-arith{include-apply-rescale=true})",
        "canonicalize", "linalg-fuse-elementwise-ops", "func.func(tosa-to-tensor)", "cse",
        "canonicalize"))


def transposes_stage() -> Stage:
    return Stage("transposes", "pointwise generics between matching transposes run without them (after fusion)",
                 fn=layout.run_linalg)


def math_approx_stage() -> Stage:
    return Stage("math", "math functions as polynomial arith (no libm); 32-bit requantization", fn=math_stage.run)


def depthwise_stage() -> Stage:
    return Stage("depthwise", "integer depthwise convs without a DSP kernel in the channel-vector (HWC) form",
                 fn=depthwise.run)


def schedule_stage() -> Stage:
    return Stage("schedule", "tile, fuse and vectorize per the target's registers (transform dialect)",
                 fn=schedule.run)


def vectors_stage() -> Stage:
    return Stage("vectors", "accumulators hoisted into registers, contractions into FMAs",
                 fn=schedule.lower_vectors)


def padding_stage() -> Stage:
    return Stage("padding", "padded inputs: borders filled, interiors written in place",
                 fn=padding.run)


def untie_stage() -> Stage:
    return Stage("untie", "one initial value per destination (CSE-merged inits cloned)", fn=untie.run)


def bufferize_stage() -> Stage:
    # Tensors -> buffers with identity layouts at function boundaries (bare-pointer ABI).
    # Empty-tensor elimination first: an op whose result is inserted into a larger tensor
    # (a padded conv input, a Concat) computes straight into that tensor's buffer.
    return Stage("bufferize", "one-shot bufferization", (
        "eliminate-empty-tensors",
        "one-shot-bufferize{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map}",
        "canonicalize", "cse"))


def out_params_stage() -> Stage:
    return Stage("out-params", "results written in place into the caller's output buffers",
                 fn=out_params.run)


def copies_stage() -> Stage:
    return Stage("copies", "strided memref.copy as loops (no runtime memrefCopy)", fn=copies.run)


def memory_plan_stage() -> Stage:
    return Stage("memory-plan", "every allocation becomes a view into one arena; entry point",
                 fn=memory_plan.run)


def loops_stage() -> Stage:
    # Remaining Linalg ops become plain loops; affine/scf become branches.
    return Stage("loops", "Linalg to loops, affine/scf to cf", (
        "func.func(convert-linalg-to-loops)", "scf-forall-to-for",
        "lower-affine", "convert-scf-to-cf", "canonicalize", "cse"))



def llvm_stage(index_bits: int) -> Stage:
    ib = f"index-bitwidth={index_bits}"
    # Memref descriptors are expanded so bare pointers suffice; everything to the LLVM dialect.
    return Stage("llvm", "lower to the LLVM dialect", (
        "expand-strided-metadata", "memref-expand", "lower-affine",
        f"finalize-memref-to-llvm{{{ib}}}", "convert-vector-to-llvm", f"convert-ub-to-llvm{{{ib}}}", "convert-math-to-llvm", "arith-expand", f"convert-arith-to-llvm{{{ib}}}",
        f"convert-cf-to-llvm{{{ib}}}",
        f"convert-func-to-llvm{{{ib} use-bare-ptr-memref-call-conv=true}}",
        "reconcile-unrealized-casts", "canonicalize"))


def finalize_stage() -> Stage:
    return Stage("finalize", "linkage, nounwind, target triple, weights out of line",
                 fn=llvm_finalize.run)


def standard(index_bits: int) -> list[Stage]:
    return [layout_stage(), tosa_stage(), linalg_stage(), transposes_stage(), math_approx_stage(), depthwise_stage(), schedule_stage(), padding_stage(), untie_stage(),
            bufferize_stage(),
            vectors_stage(), out_params_stage(), copies_stage(),
            memory_plan_stage(), loops_stage(), llvm_stage(index_bits), finalize_stage()]
