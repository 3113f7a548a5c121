"""The SMLAD conv kernels' register block (dgc.passes.dsp_kernels: P output pixels x F filters
per pass over K, P pixels per pass of a depthwise conv) as a per-op choice (`ctx.dsp_blocks`):
every allowed block gives the same int8 results on cortex-m7 (QEMU), within one output step
of onnxruntime; the default block's code does not change; `describe` lists the choices."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import dgc
from conftest import output_step, require_tools, run_models
from dgc.passes import dsp_kernels
from dgc.verifier import random_inputs, reference

TARGET = "cortex-m7"


def _model():
    """Float convs with the kernels' edge cases, quantized to QDQ: odd filter counts (5, 7, 3,
    9), pixel counts not a multiple of 4 (30, 6), 3x3 stride 2 with padding, 1x1, K not a
    multiple of 4 (27, 5) and byte-wise windows, word-wise windows (3x3 over 8 channels), a
    byte-wise window with K > 256 (3x3 over 30 channels: a run-time loop), a depthwise conv
    over 6 channels (a group of 4 + 2 scalar) and a 2x2 stride 2 conv."""
    add, finish = _builder(3)
    add("Conv", ["x"], "c1", [(5, 3, 3, 3), (5,)], pads=[1, 1, 1, 1], strides=[2, 2])  # 5x6 px, K 27
    add("Relu", ["c1"], "r1")
    add("Conv", ["r1"], "c2", [(7, 5, 1, 1), (7,)])  # 1x1, K 5
    add("Conv", ["c2"], "c3", [(8, 7, 1, 1), (8,)])
    add("Relu", ["c3"], "r3")
    add("Conv", ["r3"], "c4", [(6, 8, 3, 3), (6,)], pads=[1, 1, 1, 1])  # word-wise, K 72
    add("Conv", ["c4"], "dw", [(6, 1, 3, 3), (6,)], group=6, pads=[1, 1, 1, 1])
    add("Relu", ["dw"], "r5")
    add("Conv", ["r5"], "c6", [(30, 6, 2, 2), (30,)], strides=[2, 2])  # 2x3 px
    add("Conv", ["c6"], "c7", [(9, 30, 3, 3), (9,)], pads=[1, 1, 1, 1])  # K 270, 9 filters
    return finish([1, 3, 9, 11], "c7", [1, 9, 2, 3], calibration_seed=50)


def _builder(seed: int):
    """(add, finish) of a float conv graph quantized to QDQ: add(op, inputs, out, weight
    shapes, **attrs) appends a node named `out` with seeded random weights (scale 0.3, biases
    0.1); finish(input shape, output name, output shape, calibration_seed) quantizes the graph
    on 8 random inputs."""
    from dgc import zoo
    from dgc.quantize import quantize

    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def add(op, ins, out, shapes=(), **kw):
        names = []
        for i, s in enumerate(shapes):
            t = numpy_helper.from_array((rng.standard_normal(s) * (0.3 if len(s) > 1 else 0.1)).astype(np.float32),
                                        f"{out}_w{i}")
            inits.append(t)
            names.append(t.name)
        nodes.append(helper.make_node(op, ins + names, [out], name=out, **kw))

    def finish(in_shape, out, out_shape, calibration_seed):
        g = helper.make_graph(nodes, "blocks", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], inits)
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        return quantize(model, [zoo.random_inputs(model, seed=calibration_seed + i) for i in range(8)])

    return add, finish


CONVS = ("c1", "c2", "c3", "c4", "c6", "c7")


@contextlib.contextmanager
def with_blocks(blocks: dict):
    """Compiles inside see `ctx.dsp_blocks = blocks` (as a tuning database's blocks arrive there)."""
    run = dsp_kernels.run

    def patched(module, ctx):
        ctx.dsp_blocks = blocks
        run(module, ctx)
    dsp_kernels.run = patched
    try:
        yield
    finally:
        dsp_kernels.run = run


def _compile(model, name: str, blocks: dict, target: str = TARGET, **kw):
    with with_blocks(blocks):
        return dgc.compile(model, target, name=name, **kw)


def _describe(model, stage: str = "dsp") -> list[dict]:
    """describe() of `model`'s module as the `stage` stage gets it (driver.OBSERVER)."""
    from dgc import driver

    seen = []

    def observe(name, module):
        if name == stage:
            seen.extend(dsp_kernels.describe(module, dgc.get_target(TARGET)))
    old, driver.OBSERVER = driver.OBSERVER, observe
    try:
        dgc.compile(model, TARGET, name="m", emit=())
    finally:
        driver.OBSERVER = old
    return seen


def _check(model, variants: list[dict], tmp_path, target: str = TARGET):
    """Compile `model` once per blocks dict (the first: the defaults), run all in one program
    (QEMU or native) on the same inputs: every variant bit-identical to the first (integer
    sums do not depend on the block), the first within one output step of onnxruntime."""
    require_tools(target)
    built = []
    for i, blocks in enumerate(variants):
        res = _compile(model, f"v{i}", blocks, target)
        obj = tmp_path / f"v{i}.o"
        obj.write_bytes(res.object)
        built.append((res.spec, str(obj)))
    x = random_inputs(built[0][0], 0)
    outs = run_models(built, dgc.get_target(target), [x] * len(built), str(tmp_path / "run"))
    want = reference(model, built[0][0], x)
    off = max(float(np.abs(g.astype(np.float64) - w).max()) for g, w in zip(outs[0], want))
    assert off <= output_step(model), f"default blocks: {off / output_step(model):.2f} steps off onnxruntime"
    for blocks, got in zip(variants[1:], outs[1:]):
        for g, r in zip(got, outs[0]):
            assert np.array_equal(g, r), f"blocks {blocks}: outputs differ from the default blocks'"


def _rotations(keys, space) -> list[dict]:
    """len(space) block assignments: in the i-th, op j gets space[(i + j) % len(space)], so
    every op sees every block."""
    return [{k: {"pixels": space[(i + j) % len(space)][0], "filters": space[(i + j) % len(space)][1]}
             for j, k in enumerate(keys)} for i in range(len(space))]


def test_every_block_agrees_on_cortex_m7(tmp_path):
    """All 12 conv blocks (every other variant with int16 weights) and 3 depthwise blocks on
    every op of the edge-case model, each op's innermost loop unrolled by every count in turn
    (remainders, full unrolls, rolled loops): 12 compiles, one QEMU run."""
    model = _model()
    conv = _rotations(CONVS, dsp_kernels.CONV_BLOCKS)
    for c in conv[1::2]:  # every other variant: the weights stored as int16 pairs
        for b in c.values():
            b["weights"] = 16
    dw = _rotations(["dw"], dsp_kernels.DW_BLOCKS)
    variants = [{}] + [{**c, **dw[i % len(dw)]} for i, c in enumerate(conv)]
    unrolls = dsp_kernels.UNROLLS
    for i, v in enumerate(variants[1:]):
        for j, b in enumerate(v.values()):
            b["unroll"] = unrolls[(i + j) % len(unrolls)]
    _check(model, variants, tmp_path)


@pytest.mark.parametrize("target", ["host", "x86-64-v3", "cortex-a76", "armv7a", "cortex-a53"])
def test_every_dot_kernel_block_agrees(target, tmp_path):
    """The int8 dot-product kernels (host: VPDPBUSD where it has VNNI, x86-64-v3: VPMADDWD,
    cortex-a76: SDOT, armv7a and cortex-a53: VMLAL.S16 / SMLAL by element): every register block a tuning database may choose, each on some conv
    of the edge-case model (odd filter and pixel counts, byte-wise windows, K > 256), gives
    the default's integers, within one output step of onnxruntime; `describe` lists them
    with the kernel family in the signature and no unroll choice."""
    from dgc.passes import dot_kernels

    model = _model()
    t = dgc.get_target(target)
    lanes = t.vector_bits // 32
    space = dot_kernels.blocks(t)
    assert space[0] == dot_kernels.default_block(t) and len(space) >= 10
    assert all(p * (f // lanes) + f // lanes + 1 <= t.vector_regs for p, f in space)
    per = len(CONVS)
    variants = [{}] + [{k: {"pixels": space[(i * per + j) % len(space)][0], "filters": space[(i * per + j) % len(space)][1]}
                        for j, k in enumerate(CONVS)} for i in range(-(-len(space) // per))]
    _check(model, variants, tmp_path, target)
    ops = json.loads(dgc.compile(model, target, name="m").schedule)["dsp"]
    assert [o["key"] for o in ops] == list(CONVS) and all(o["unrolls"] == [0] for o in ops)
    assert all(o["signature"].endswith(f"i8{t.int8_dot}") or f"i8{t.int8_dot}:" in o["signature"] for o in ops)
    c7 = ops[-1]  # 9 filters, 2x3 pixels: wider blocks compute what narrower ones do
    computed = [(min(p, 6), min(f, -(-9 // lanes) * lanes)) for p, f in c7["space"]]
    assert len(set(computed)) == len(computed)  # each listed block computes differently


def test_default_block_is_unchanged_code():
    """Explicit default blocks generate exactly the code of no blocks at all."""
    model = _model()
    default = {k: {"pixels": 2, "filters": 2} for k in CONVS} | {"dw": {"pixels": 1, "filters": 4}}
    a = _compile(model, "m", {}, emit=("asm",)).asm
    b = _compile(model, "m", default, emit=("asm",)).asm
    c = _compile(model, "m", {"c4": {"pixels": 4, "filters": 3}}, emit=("asm",)).asm
    d = _compile(model, "m", {"c4": {"unroll": 0}}, emit=("asm",)).asm  # 0: LLVM decides, the default
    e = _compile(model, "m", {"c4": {"unroll": 1}}, emit=("asm",)).asm
    assert a == b == d and a != c and a != e


def test_describe(tmp_path):
    """describe() on the module the dsp stage gets (and on tensors, before bufferization):
    the eligible convs by ONNX node, with loops, default block and space; the keys are what
    ctx.dsp_blocks takes; bad blocks and unknown nodes are usage errors."""
    from dgc.errors import UsageError

    model = _model()
    ops = _describe(model)
    assert ops == _describe(model, "schedule")  # on tensors, before the schedule stage
    assert [o["key"] for o in ops] == ["c1", "c2", "c3", "c4", "dw", "c6", "c7"]
    c1 = ops[0]
    assert c1["linalg"] == "linalg.conv_2d_nhwc_hwcf" and c1["loops"] == [1, 5, 6, 5, 3, 3, 3]
    assert c1["kinds"] == "pppprrr" and c1["block"] == [2, 2] and c1["space"][0] == [2, 2]
    assert sorted(map(tuple, c1["space"])) == sorted(dsp_kernels.CONV_CHOICES)
    assert len(dsp_kernels.CONV_CHOICES) == 2 * len(dsp_kernels.CONV_BLOCKS)
    assert c1["signature"] == "linalg.conv_2d_nhwc_hwcf:1x5x6x5x3x3x3:pppprrr:fused:i8smlad:s2x2"  # stride 2
    dw = ops[4]
    assert dw["loops"] == [1, 5, 6, 6, 3, 3] and dw["block"] == [1, 4] and len(dw["space"]) == 3
    assert all(o["unroll"] == 0 and sorted(o["unrolls"]) == sorted(dsp_kernels.UNROLLS) for o in ops)
    assert dsp_kernels.describe(None, dgc.get_target("cortex-m55")) == []  # Helium: no block choice
    for bad in ({"c1": {"pixels": 3}}, {"dw": {"pixels": 2, "filters": 2}}, {"nope": {"pixels": 1}},
                {"c1": {"pixel": 1}}, {"c1": {"weights": 32}}, {"dw": {"weights": 16}}, {"c1": {"unroll": 3}},
                {"dw": {"unroll": True}}):
        with pytest.raises(UsageError):
            _compile(model, "m", bad, emit=())


def test_tuning_database_sets_blocks_and_dgc_tune_searches_them(tmp_path):
    """`--tuning-db` entries {"dsp_block": [P, F]} (by signature, kernel i8smlad) reach the
    SMLAD kernels: the same code as those blocks given per node (which
    test_every_block_agrees_on_cortex_m7 checks against onnxruntime), listed under "dsp" in the
    schedule report; `dgc tune` measures the blocks in QEMU; a block outside the space is a
    usage error."""

    from dgc.errors import UsageError
    from dgc.tune import tune
    from dgc.tuning import SCHEMA, TuningDB, target_key

    require_tools(TARGET)
    model = _model()
    ops = {o["key"]: o for o in _describe(model, "schedule")}
    key = target_key(dgc.get_target(TARGET))
    db = {"schema": SCHEMA, "targets": {key: {ops["c4"]["signature"]: {"best": {"dsp_block": [4, 3, 16]}},
                                              ops["dw"]["signature"]: {"best": {"dsp_block": [2, 4],
                                                                                "dsp_unroll": 16}}}}}
    res = dgc.compile(model, TARGET, name="m", emit=("asm",), tuning_db=TuningDB(None, db))
    want = _compile(model, "m", {"c4": {"pixels": 4, "filters": 3, "weights": 16},
                                 "dw": {"pixels": 2, "filters": 4, "unroll": 16}}, emit=("asm",))
    assert res.asm == want.asm
    assert res.asm != dgc.compile(model, TARGET, name="m", emit=("asm",)).asm
    report = {d["key"]: (d["block"], d["unroll"]) for d in json.loads(res.schedule)["dsp"]}
    assert report["c4"] == ([4, 3, 16], 0) and report["dw"] == ([2, 4], 16) and report["c1"] == ([2, 2], 0)
    db["targets"][key][ops["dw"]["signature"]]["best"]["dsp_unroll"] = 5
    with pytest.raises(UsageError, match="not allowed"):
        dgc.compile(model, TARGET, name="m", emit=(), tuning_db=TuningDB(None, db))
    db["targets"][key][ops["dw"]["signature"]]["best"]["dsp_unroll"] = 16
    db["targets"][key][ops["c4"]["signature"]]["best"]["dsp_block"] = [3, 3]
    with pytest.raises(UsageError, match="not allowed"):
        dgc.compile(model, TARGET, name="m", emit=(), tuning_db=TuningDB(None, db))
    path = tmp_path / "m.onnx"
    import onnx

    onnx.save(model, path)
    rep = tune(str(path), TARGET, trials=6, db_path=str(tmp_path / "db.json"), progress=False)
    entries = json.loads((tmp_path / "db.json").read_text())["targets"][key]
    tried = [t for sig, e in entries.items() if sig.endswith(":i8smlad") for t in e["trials"]]
    assert tried and all("dsp_block" in t["schedule"] and "dsp_unroll" in t["schedule"] for t in tried)
    assert any("seconds" in t for t in tried) and rep.tuned_s <= rep.default_s


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ds_cnn", "resnet8", "mobilenet_v1_025"])
def test_zoo_blocks_on_cortex_m7(name, tmp_path):
    """Each uniform conv block on every conv of a quantized zoo model (depthwise rotating)."""
    from dgc.zoo import quantized

    model = quantized.qdq(name)
    ops = _describe(model)
    variants = [{}]
    for i, (p, f) in enumerate(dsp_kernels.CONV_BLOCKS):
        dp = dsp_kernels.DW_BLOCKS[i % len(dsp_kernels.DW_BLOCKS)][0]
        variants.append({o["key"]: {"pixels": dp} if "depthwise" in o["linalg"] else {"pixels": p, "filters": f}
                         for o in ops})
    _check(model, variants, tmp_path)


def test_predict_takes_the_cycle_models_choice(tmp_path):
    """`dgc compile --predict` on the SMLAD kernels (dgc.predict.best_predicted_dsp): every conv
    gets the block and unroll count of fewest predicted cycles (`smlad_cycles`, up to its flash
    slack), never more than its default's; depthwise convs keep theirs; a database entry still
    wins; the result is bit-identical to the defaults (which agree with onnxruntime)."""

    from dgc.predict import FLASH_SLACK, best_predicted_dsp, smlad_cycles
    from dgc.tuning import SCHEMA, TuningDB, target_key

    model = _model()
    res = dgc.compile(model, TARGET, name="m", emit=("asm",), predict=True)
    report = {d["key"]: (d["block"], d["unroll"]) for d in json.loads(res.schedule)["dsp"]}
    ops = {o["key"]: o for o in _describe(model, "schedule")}
    want = {k: best_predicted_dsp(o) for k, o in ops.items()}
    assert report == {k: (c["dsp_block"], c["dsp_unroll"]) for k, c in want.items()}
    assert report["dw"] == (list(dsp_kernels.DEFAULT_DW), dsp_kernels.DEFAULT_UNROLL)
    for k in CONVS:
        default = {"dsp_block": ops[k]["block"], "dsp_unroll": ops[k]["unroll"]}
        assert smlad_cycles(ops[k]["loops"], want[k]) <= smlad_cycles(ops[k]["loops"], default) * (1 + FLASH_SLACK)
    assert any(want[k]["dsp_block"] != ops[k]["block"] for k in CONVS)
    chosen = {k: {"pixels": c["dsp_block"][0], "filters": c["dsp_block"][1], "unroll": c["dsp_unroll"],
                  **({"weights": 16} if len(c["dsp_block"]) > 2 else {})} for k, c in want.items() if k in CONVS}
    assert res.asm == _compile(model, "m", chosen, emit=("asm",)).asm
    db = {"schema": SCHEMA, "targets": {target_key(dgc.get_target(TARGET)): {
        ops["c4"]["signature"]: {"best": {"dsp_block": [4, 3], "dsp_unroll": 4}}}}}
    both = dgc.compile(model, TARGET, name="m", emit=(), predict=True, tuning_db=TuningDB(None, db))
    report = {d["key"]: (d["block"], d["unroll"]) for d in json.loads(both.schedule)["dsp"]}
    assert report["c4"] == ([4, 3], 4) and report["c7"] == (want["c7"]["dsp_block"], want["c7"]["dsp_unroll"])
    _check(model, [{}, chosen], tmp_path)


def test_predict_unrolls_small_depthwise_group_loops(tmp_path):
    """`--predict` on an int8 depthwise conv (dgc.predict.dw_unroll_choice): 16 channels (4
    groups of 4) and 30 (7 groups + 2 scalar) get one pixel per block and the group loop fully
    unrolled (4 and 8 times); 36 channels (9 groups) keep the default; those choices compute
    the same integers as the default (which agrees with onnxruntime)."""

    from dgc.predict import DW_FULL_UNROLL

    add, finish = _builder(4)
    add("Conv", ["x"], "c0", [(16, 3, 1, 1), (16,)])
    add("Conv", ["c0"], "dw16", [(16, 1, 3, 3), (16,)], group=16, pads=[1, 1, 1, 1])
    add("Conv", ["dw16"], "c1", [(30, 16, 1, 1), (30,)])
    add("Conv", ["c1"], "dw30", [(30, 1, 3, 3), (30,)], group=30, pads=[1, 1, 1, 1], strides=[2, 2])
    add("Conv", ["dw30"], "c2", [(36, 30, 1, 1), (36,)])
    add("Conv", ["c2"], "dw36", [(36, 1, 3, 3), (36,)], group=36, pads=[1, 1, 1, 1])
    add("Conv", ["dw36"], "c3", [(5, 36, 1, 1), (5,)])
    model = finish([1, 3, 6, 7], "c3", [1, 5, 3, 4], calibration_seed=60)
    res = dgc.compile(model, TARGET, name="m", predict=True)
    report = {d["key"]: (d["block"], d["unroll"])
              for d in json.loads(res.schedule)["dsp"] if "depthwise" in d["linalg"]}
    assert DW_FULL_UNROLL >= 7
    assert report == {"dw16": ([1, 4], 4), "dw30": ([1, 4], 8),
                      "dw36": (list(dsp_kernels.DEFAULT_DW), dsp_kernels.DEFAULT_UNROLL)}
    _check(model, [{}, {"dw16": {"pixels": 1, "unroll": 4}, "dw30": {"pixels": 1, "unroll": 8}}], tmp_path)


@pytest.mark.parametrize("target, filters, pixels, want", [
    ("icelake", 6, 784, (8, 16)),  # 1 vector of 16 lanes: the 4 x 4 block's free accumulators go to pixels
    ("icelake", 32, 256, (8, 32)),
    ("icelake", 64, 64, (4, 64)),  # fills the default block: the default
    ("icelake", 120, 1, (4, 64)),  # one pixel: 4 vectors at most either way
    ("x86-64-v3", 6, 784, (4, 16)),  # VPMADDWD: a separate add, no accumulator chain to hide
    ("x86-64-v3", 120, 1, (4, 16)),
    ("cortex-a53", 120, 1, (4, 16)),  # 32 registers: 4 vectors for one pixel either way
    ("armv7a", 10, 1, (1, 16)),
    ("armv7a", 16, 100, (4, 8)),
    ("cortex-a76", 6, 784, (8, 8)),
    ("cortex-a76", 8, 4, (4, 16)),  # 4 pixels x 2 vectors: as many as the default computes
])
def test_dot_kernel_default_block_fills_its_accumulators(target, filters, pixels, want):
    """A conv whose filters or pixels fill fewer of the default block's accumulators gets the
    block (of those a tuning database may choose) that fills the most, up to the default's
    count, the narrowest such, where the kernel accumulates in place (not VPMADDWD)."""
    from dgc.passes import dot_kernels

    t = dgc.get_target(target)
    got = dot_kernels.default_block(t, filters, pixels)
    assert got == want
    assert got == dot_kernels.blocks(t, filters, pixels)[0] and got in dot_kernels.blocks(t)
    # a reduction of at most 16 (a 1x1 conv over 16 channels): the default block
    assert dot_kernels.default_block(t, filters, pixels, 16) == dot_kernels.default_block(t)
    assert dot_kernels.default_block(t, filters, pixels, 17) == want


def test_dot_kernel_default_block_in_a_model():
    """LeNet-5 int8 on ARMv7-A (VMLAL.S16 kernels, 16 registers): its fully connected layers
    (one pixel) take 1 x 4 vectors of filters, its convs the 4 x 2 default."""
    from dgc.zoo import quantized

    res = dgc.compile(quantized.qdq("lenet5"), "armv7a", name="m")
    blocks = {o["key"]: o["block"] for o in json.loads(res.schedule)["dsp"]}
    assert blocks == {"conv1": [4, 8], "conv2": [4, 8], "fc1": [1, 16], "fc2": [1, 16], "fc3": [1, 16]}
