"""Exact instruction counts and llvm-mca cycle estimates for the Linux ARM targets under
qemu-user (dgc.runtime.icount with qemu-aarch64 / qemu-arm, dgc.measure.count_models): the
counts repeat exactly, are plausible for the model's MACs, grow with the work, and the
outputs computed under counting match onnxruntime."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import require_tools, zoo_model
from onnx import TensorProto, helper, numpy_helper

import dgc
from dgc.macs import model_macs
from dgc.verifier import compare, random_inputs, reference

TARGETS = ["aarch64", "armv7a"]


def _conv(out_channels: int):
    """One 3x3 conv 8 -> out_channels on 16x16 with a Relu: MACs grow with out_channels."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((out_channels, 8, 3, 3)).astype(np.float32) * 0.2, "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="c", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["y"], name="r")]
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_channels, 16, 16])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _require(target):
    require_tools(target)
    if shutil.which("gcc") is None:
        pytest.skip("no host gcc to build the QEMU plugin (installed by .ci/run)")


@pytest.fixture(scope="module", params=TARGETS)
def lenet5(request, tmp_path_factory):
    """LeNet-5 built once per target and run twice under the plugin."""
    from dgc.runtime.icount.estimate import estimate
    from dgc.runtime.icount.plugin import build_firmware, run_counted

    target = request.param
    _require(target)
    model = zoo_model("lenet5")
    res = dgc.compile(model, target, name="lenet5")
    wd = tmp_path_factory.mktemp(f"icount-{target}")
    obj = wd / "lenet5.o"
    obj.write_bytes(res.object)
    inputs = random_inputs(res.spec, 0)
    exe = build_firmware([(res.spec, [str(obj)])], res.target, [inputs], str(wd))
    runs = [run_counted(exe, [res.spec], res.target, str(wd)) for _ in range(2)]
    est = estimate(exe, runs[0][1][0].counts, res.target)
    return dict(target=target, model=model, res=res, inputs=inputs, runs=runs, est=est, exe=exe)


def test_counts_identical_run_to_run(lenet5):
    (_, (a,)), (_, (b,)) = lenet5["runs"]
    assert a.instructions > 0 and a.counts == b.counts


def test_instructions_plausible_for_the_macs(lenet5):
    macs = model_macs(lenet5["model"])
    n = lenet5["runs"][0][1][0].instructions
    assert macs / 16 < n < 20 * macs, f"{lenet5['target']}: {n} instructions for {macs} MACs"


def test_cycle_estimate(lenet5):
    est = lenet5["est"]
    assert est.instructions == lenet5["runs"][0][1][0].instructions
    assert est.cycles > 0 and est.unmodeled == 0 and est.cpu


def test_outputs_under_counting_match_onnxruntime(lenet5):
    want = reference(lenet5["model"], lenet5["res"].spec, lenet5["inputs"])
    for outputs, _ in lenet5["runs"]:
        bad = [c for c in compare(lenet5["res"].spec, outputs[0], want) if not c.ok]
        assert not bad, "; ".join(f"{c.name}: max abs err {c.max_abs:.3g} > {c.limit:.3g}" for c in bad)


def test_markers_and_startup_not_counted(lenet5):
    """What ran between the markers: `lenet5_run` and what it calls, plus the few caller
    instructions around the calls; not the markers themselves, not the C startup."""
    from dgc.runtime.icount.plugin import MARKERS, symbols

    syms = symbols(lenet5["exe"])
    region = lenet5["runs"][0][1][0]
    for m in MARKERS + ("_start", "__libc_start_main"):
        if m in syms:
            lo, size = syms[m]
            assert not any(lo <= a < lo + max(size, 1) for a in region.counts), m
    lo, size = syms["lenet5_run"]
    assert sum(n for a, n in region.counts.items() if lo <= a < lo + size) > 0.9 * region.instructions


@pytest.mark.parametrize("target", TARGETS)
def test_count_models_twice_the_work_counts_more(target, tmp_path):
    """dgc.measure.count_models on qemu-user targets: deterministic, and a conv with twice the
    output channels executes more instructions and more estimated cycles."""
    from dgc.measure import count_models

    _require(target)
    models = []
    for k, oc in enumerate((8, 16)):
        res = dgc.compile(_conv(oc), target, name="m")
        obj = tmp_path / f"m{k}.o"
        obj.write_bytes(res.object)
        models.append((res.spec, str(obj)))
    small, big, small_again = count_models([models[0], models[1], models[0]], res.target, str(tmp_path / "w"))
    assert small == small_again
    assert big["instructions"] > 1.5 * small["instructions"] and big["cycles"] > small["cycles"]


def test_count_models_rejects_a_host_target(tmp_path):
    from dgc.measure import MeasureError, count_models

    with pytest.raises(MeasureError):
        count_models([], dgc.get_target("x86-64"), str(tmp_path))


@pytest.mark.parametrize("arch, line, want", [
    ("aarch64", "tbz\tw10, #0x0, 0x400ae8 <lenet5_run+0x6c>", "tbz w10, #0x0, ."),
    ("aarch64", "adrp\tx0, 0x4cf000 <tunable_list+0x10>", "adrp x0, ."),
    ("aarch64", "mov\tw9, #0x4a88             // =19080", "mov w9, #0x4a88"),
    ("aarch64", "fmla\tv0.4s, v1.4s, v2.s[1]", "fmla v0.4s, v1.4s, v2.s[1]"),
    ("arm", "blo\t0x24644 <memset+0x54>   @ imm = #0x44", "blo #0x44"),
    ("arm", "ldr\tr5, [pc, #0x74]         @ 0x103c4 <main+0x84>", "ldr r5, [pc, #0x74]"),
    ("arm", "vmla.f32\tq8, q9, q10", "vmla.f32 q8, q9, q10"),
    ("thumb", "bgt\t0x10350 <main+0x10>     @ imm = #0x2", "bgt #0x2"),
])
def test_disassembly_to_mca_text(arch, line, want):
    from dgc.runtime.icount.estimate import _for_mca

    assert _for_mca(line, arch) == want


def test_mixed_arm_thumb_blocks_carry_their_state():
    from dgc.runtime.icount.estimate import blocks

    insns = {0x100: ("mov r0, r1", 0x104, "arm"), 0x104: ("add r0, r0, #1", 0x108, "arm"),
             0x108: ("movs r0, #1", 0x10a, "thumb"), 0x10a: ("bx lr", 0x10c, "thumb")}
    got, missing = blocks({0x100: 3, 0x104: 3, 0x108: 3, 0x10a: 3}, insns)
    assert missing == 0
    assert got == [(3, (".code 32", "mov r0, r1", "add r0, r0, #1")), (3, (".code 16", "movs r0, #1", "bx lr"))]
