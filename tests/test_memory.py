"""Static arena planning: the planned arena is valid (buffers live at the same time never
share bytes) and as small as the lower bound - the most buffer bytes live at one op of the
model function - on every zoo model; the plan is deterministic. The computed stack bound
covers the stack a run really uses on Cortex-M, tightly.

The lower bound is recomputed here from the buffer list the compiler reports, independently
of the planner's own computation, and placements are checked pairwise.
"""

from __future__ import annotations

import functools
import os
import subprocess

import numpy as np
import pytest

import dgc
import dgc.verifier
from conftest import output_step, require_tools, run_dgc, run_model, save_zoo_model
from dgc.errors import FootprintError
from dgc.footprint import parse_size
from dgc.passes.memory_plan import ALIGN, lower_bound, plan_offsets
from dgc.runtime.runners import stack_use
from dgc.zoo import build, quantized, random_inputs

CHAINS = ["lenet5", "ds_cnn", "mobilenet_v1_025", "fc_autoencoder"]
BRANCHY = ["resnet8", "mobilenet_v2"]


def _bound(buffers) -> int:
    """Most bytes live at one op: brute force over every op position."""
    last = max((b.end for b in buffers), default=0)
    return max((sum(b.size for b in buffers if b.start <= t <= b.end) for t in range(last + 1)), default=0)


def _check_plan(res):
    bufs = res.buffers
    assert res.arena_size == max((b.offset + b.size for b in bufs), default=0)
    for b in bufs:
        assert b.offset % ALIGN == 0 and b.size % ALIGN == 0 and b.size > 0
    for i, a in enumerate(bufs):
        for b in bufs[i + 1:]:
            live_together = not (a.end < b.start or b.end < a.start)
            disjoint = a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
            assert disjoint or not live_together, (a, b)
    bound = _bound(bufs)
    assert res.arena_lower_bound == bound
    return bound


@functools.cache
def _model(name):
    return quantized.qdq(name[:-4]) if name.endswith("_qdq") else build(name)


@pytest.mark.parametrize("target", ["cortex-m7", "host"])
@pytest.mark.parametrize("name", CHAINS + BRANCHY + [n + "_qdq" for n in ("ds_cnn", "resnet8")])
def test_arena_meets_lower_bound(name, target):
    res = dgc.compile(_model(name), target, name="m", ram_limit=None, flash_limit=None)
    bound = _check_plan(res)
    if name.removesuffix("_qdq") in CHAINS:
        assert res.arena_size == bound
    else:
        assert res.arena_size <= 1.05 * bound
    # the header states the planned size
    assert f"#define M_ARENA_SIZE {res.arena_size}u" in res.header


def test_planner_on_random_lifetimes():
    """Random interval sets: valid placements, never below the bound, and at it for most."""
    rng = np.random.default_rng(5)
    at_bound = 0
    for _ in range(200):
        n = int(rng.integers(1, 25))
        starts = rng.integers(0, 30, n)
        bufs = [(int(rng.integers(1, 64)) * ALIGN, int(s), int(s + rng.integers(0, 8))) for s in starts]
        offsets, total = plan_offsets(bufs)
        for i in range(n):
            for j in range(i + 1, n):
                (si, ai, zi), (sj, aj, zj) = bufs[i], bufs[j]
                if not (zi < aj or zj < ai):
                    assert offsets[i] + si <= offsets[j] or offsets[j] + sj <= offsets[i]
        bound = lower_bound(bufs)
        assert total == max(o + b[0] for o, b in zip(offsets, bufs)) and total >= bound
        at_bound += total == bound
        assert plan_offsets(bufs) == (offsets, total)  # deterministic
    assert at_bound >= 180, at_bound


# ---- stack -------------------------------------------------------------------------------------

def _measured_stack(model, target, tmp_path):
    require_tools(target)
    res = dgc.compile(model, target, name="m", ram_limit=None, flash_limit=None)
    (tmp_path / "m.o").write_bytes(res.object)
    feeds = random_inputs(model, seed=0)
    run_model(res.spec, str(tmp_path / "m.o"), res.target, [feeds[t.name] for t in res.spec.inputs], str(tmp_path))
    return res, stack_use(str(tmp_path))[0]


@pytest.mark.parametrize("target, name", [
    *[("cortex-m7", n) for n in CHAINS + ["resnet8", "lenet5_qdq", "ds_cnn_qdq", "resnet8_qdq",
                                          "mobilenet_v1_025_qdq"]],
    ("cortex-m0plus", "ds_cnn"), ("cortex-m0plus", "resnet8_qdq"), ("cortex-m55", "resnet8_qdq"),
    pytest.param("cortex-m7", "mobilenet_v2_qdq", marks=pytest.mark.slow)])  # float: 20 MB, more than the board
def test_stack_bound_covers_measured_high_water_mark(target, name, tmp_path):
    """The header's <NAME>_STACK_SIZE (llc frame sizes over the object's call graph, plus an
    allowance per runtime helper) is >= the stack the run really used in QEMU (painted and
    scanned by the harness) and tight: within 64 bytes or 10%."""
    res, used = _measured_stack(_model(name), target, tmp_path)
    bound = res.spec.stack_size
    assert f"#define M_STACK_SIZE {bound}u" in res.header
    assert bound >= used > 0, (bound, used)
    assert bound - used <= max(64, used // 10), (bound, used, res.stack.path)


# ---- budgets -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ds_cnn_file(tmp_path_factory):
    return save_zoo_model(tmp_path_factory, "ds_cnn")


def test_ram_limit_too_small_is_a_clean_error(ds_cnn_file, tmp_path):
    """Exit code 8, one line naming the need, the limit and the largest tensors live at the
    peak, nothing written."""
    res = dgc.compile(str(ds_cnn_file), "cortex-m7", name="m")
    r = run_dgc("compile", ds_cnn_file, "--target", "cortex-m7", "-o", tmp_path / "out", "--ram-limit", "64K")
    assert r.returncode == 8, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"arena {res.arena_size / 1024:,.1f} KiB" in lines[0] and "65,536 B" not in lines[0]
    assert "64.0 KiB of --ram-limit" in lines[0] and "largest tensors live together at the peak: '" in lines[0]
    bufs = res.buffers
    peak = max(range(max(b.end for b in bufs) + 1), key=lambda t: sum(b.size for b in bufs if b.start <= t <= b.end))
    biggest = max((b for b in bufs if b.start <= peak <= b.end), key=lambda b: b.size)
    assert f"peak: '{biggest.node}' {biggest.size / 1024:,.1f} KiB" in lines[0]
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
    # enough RAM: compiles
    r = run_dgc("compile", ds_cnn_file, "--target", "cortex-m7", "-o", tmp_path / "ok",
             "--ram-limit", str(res.footprint["ram"]))
    assert r.returncode == 0, r.stderr


def test_flash_limit_names_largest_weights(ds_cnn_file, tmp_path):
    r = run_dgc("compile", ds_cnn_file, "--target", "cortex-m0plus", "-o", tmp_path, "--flash-limit", "50K")
    assert r.returncode == 8 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    model = build("ds_cnn")
    biggest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    assert f"largest weights: '{biggest.name}'" in r.stderr and "50.0 KiB of --flash-limit" in r.stderr
    assert not list(tmp_path.glob("*.o")) and not list(tmp_path.glob("*.h"))


def test_target_default_budget_applies_and_can_be_lifted():
    """mobilenet_v2 (float: 6 MB arena, 14 MB weights) does not fit the cortex-m7 default
    (STM32H7-class, 1 MiB RAM / 2 MiB flash); `none` lifts the check; sizes parse."""
    with pytest.raises(FootprintError, match=r"the cortex-m7 default \(STM32H7-class"):
        dgc.compile(_model("mobilenet_v2"), "cortex-m7", name="m")
    res = dgc.compile(_model("mobilenet_v2"), "cortex-m7", name="m", ram_limit=None, flash_limit="none")
    assert res.footprint["ram"] > 1 << 20 and res.footprint["flash"] > 2 << 20
    assert [parse_size(t, "x") for t in ("512K", "1M", "1.5MiB", "65536", "none")] == \
        [512 << 10, 1 << 20, 3 << 19, 65536, None]


def test_footprint_measured_from_the_object():
    """flash = the object's allocated sections (weights int8 in .rodata for a QDQ model)."""
    res = dgc.compile(_model("ds_cnn_qdq"), "cortex-m7", name="m")
    fp = res.footprint
    assert fp["flash"] == fp["text"] + fp["rodata"] + fp["data"] and fp["data"] == fp["bss"] == 0
    weights = sum(int(np.prod(t.dims)) for t in build("ds_cnn").graph.initializer if len(t.dims) > 1)
    assert weights <= fp["rodata"] < weights * 1.5 + 16384  # int8 weights (+ biases, multipliers)
    assert len(res.object) > fp["flash"] and fp["ram"] == res.arena_size + res.spec.stack_size


# ---- placement -------------------------------------------------------------------------------

def test_weights_and_arena_sections(tmp_path):
    """--weights-section puts every weight in one named section (the firmware still runs and
    matches onnxruntime with it linked as an orphan section); --arena-section makes the
    header's <NAME>_ARENA_DEFINE place an arena there, as NOBITS of the right size."""
    require_tools("cortex-m7")
    model = _model("ds_cnn_qdq")
    res = dgc.compile(model, "cortex-m7", name="kws", weights_section=".ext_flash", arena_section=".bss.sram2")
    plain = dgc.compile(model, "cortex-m7", name="kws")
    assert '#define KWS_WEIGHTS_SECTION ".ext_flash"' in res.header
    assert '#define KWS_ARENA_SECTION ".bss.sram2"' in res.header
    (tmp_path / "kws.o").write_bytes(res.object)
    size = subprocess.run(["arm-none-eabi-size", "-A", tmp_path / "kws.o"], capture_output=True, text=True,
                          check=True).stdout
    sections = {ln.split()[0]: int(ln.split()[1]) for ln in size.splitlines()[2:] if len(ln.split()) == 3}
    # the weights moved: what .rodata.* held before is (up to small tables) now in .ext_flash
    assert sections[".ext_flash"] >= 0.95 * plain.footprint["rodata"]
    assert res.footprint["flash"] == plain.footprint["flash"]
    feeds = random_inputs(model, seed=0)
    inputs = [feeds[t.name] for t in res.spec.inputs]
    got = run_model(res.spec, str(tmp_path / "kws.o"), res.target, inputs, str(tmp_path))
    want = dgc.verifier.reference(model, res.spec, inputs)
    assert np.abs(got[0] - want[0]).max() <= output_step(model) * 1.0001  # one step of the int8 softmax output
    (tmp_path / "kws.h").write_text(res.header)
    (tmp_path / "a.c").write_text('#include "kws.h"\nKWS_ARENA_DEFINE(arena);\n'
                                  "void *get(void) { return arena; }\n")
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-O2", "-c", "a.c", "-o", "a.o"],
                   cwd=tmp_path, check=True)
    syms = subprocess.run(["arm-none-eabi-objdump", "-t", "-h", "a.o"], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout
    line = next(ln for ln in syms.splitlines() if ln.rstrip().endswith(" arena"))
    assert ".bss.sram2" in line and int(line.split()[-2], 16) == res.arena_size
    header = next(ln for ln in syms.splitlines() if " .bss.sram2 " in ln)
    assert "CONTENTS" not in syms.split(header)[1].splitlines()[1]  # NOBITS: no flash for the arena
    bad = run_dgc("compile", "x.onnx", "--weights-section", "bad name")
    assert bad.returncode == 2 and "is not a section name" in bad.stderr


def _concat_model():
    """x -> Conv a, Conv b (3x3, pad 1, no bias) -> Concat -> Relu -> Conv (3x3, no pad)."""
    from onnx import TensorProto, helper, numpy_helper

    r = np.random.default_rng(0)

    def w(n, *s):
        return numpy_helper.from_array((r.standard_normal(s) * 0.1).astype(np.float32), n)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="ca", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w2"], ["b"], name="cb", pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["a", "b"], ["c"], name="cat", axis=1),
             helper.make_node("Relu", ["c"], ["d"], name="relu"),
             helper.make_node("Conv", ["d", "w3"], ["y"], name="cc")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 14, 14])],
                          [w("w1", 16, 8, 3, 3), w("w2", 16, 8, 3, 3), w("w3", 4, 32, 3, 3)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("target", ["cortex-m7", "host"])
def test_concat_inputs_and_relu_work_in_place(target, tmp_path):
    """Both convs write straight into their slices of the Concat output and the ReLU rewrites
    it in place: the arena holds the padded input (for the padded convs) and the Concat output,
    nothing else (the last conv's 3 KB output reuses the padded input's bytes)."""
    from conftest import check_on_target

    res, _, _ = check_on_target(_concat_model(), target, tmp_path)
    padded_x = 1 * 8 * 18 * 18 * 4
    concat = 1 * 32 * 16 * 16 * 4
    assert res.arena_size == padded_x + concat, [(b.node, b.size) for b in res.buffers]
