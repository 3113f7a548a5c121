"""`dgc tune`, the tuning database and `dgc compile --tuning-db` (issue 9, x86 part)."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import dgc
from conftest import check_on_target, run_dgc, zoo_model
from dgc.errors import UsageError
from dgc.measure import PAGE, SPREAD, MeasureError, placed_buffer, time_models
from dgc.passes.schedule import entry_signature
from dgc.tools import run_tool
from dgc.tune import parse_budget, tune
from dgc.tuning import SCHEMA, TuningDB, candidates, dgc_version, target_key


def _two_convs() -> onnx.ModelProto:
    """Two identical 3x3 convs (one signature) and a different third one."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.2, n)
             for n, s in (("w1", (16, 8, 3, 3)), ("w2", (16, 16, 3, 3)), ("w3", (16, 16, 3, 3)), ("w4", (32, 16, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="c1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"], name="r1"),
             helper.make_node("Conv", ["b", "w2"], ["c"], name="c2", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["d"], name="r2"),
             helper.make_node("Conv", ["d", "w3"], ["e"], name="c3", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["e"], ["f"], name="r3"),
             helper.make_node("Conv", ["f", "w4"], ["y"], name="c4")]
    g = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 16, 16])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _entries(model, target="host"):
    return json.loads(dgc.compile(model, target, name="m").schedule)["ops"]


def test_identical_layers_share_a_signature():
    ops = _entries(_two_convs())
    sigs = [entry_signature(o) for o in ops if o["key"] in ("c2", "c3", "c4")]
    assert sigs[0] == sigs[1] != sigs[2]


def _stride_twins() -> onnx.ModelProto:
    """Two depthwise 3x3 convs with the same loop ranges (8x8 outputs, 16 channels), one
    of stride 1 on an 8x8 image and one of stride 2 on a 16x16 image."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.2, n)
             for n, s in (("w1", (16, 1, 3, 3)), ("w2", (16, 1, 3, 3)), ("b1", (16,)), ("b2", (16,)))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], name="s2", pads=[1, 1, 1, 1], strides=[2, 2],
                              group=16),
             helper.make_node("Relu", ["a"], ["r"], name="r"),
             helper.make_node("Conv", ["r", "w2", "b2"], ["y"], name="s1", pads=[1, 1, 1, 1], group=16)]
    g = helper.make_graph(nodes, "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_strides_and_dilations_are_part_of_the_signature(tmp_path):
    """Ops of the same loop ranges but other strides read other inputs: distinct signatures,
    so a database entry for the stride-2 conv leaves its stride-1 twin alone; the one-op
    model of a strided entry (the predictor's) has that stride again."""
    from dgc.predict_mca import one_op_model

    model = _stride_twins()
    ops = {o["key"]: o for o in _entries(model)}
    assert ops["s2"]["loops"] == ops["s1"]["loops"] and ops["s2"]["window"] == [2, 2, 1, 1]
    assert "window" not in ops["s1"]
    assert entry_signature(ops["s2"]) == entry_signature(ops["s1"]) + ":s2x2"
    one = _entries(one_op_model(ops["s2"]))
    assert [entry_signature(o) for o in one if o["linalg"] == ops["s2"]["linalg"]] == [entry_signature(ops["s2"])]
    dil = dict(ops["s1"], window=[1, 1, 2, 2])
    assert entry_signature(dil) == entry_signature(ops["s1"]) + ":d2x2"
    other = next(c for c in candidates(ops["s2"], dgc.get_target("host"), random.Random(0))[1:]
                 if c["tile"] != ops["s2"]["tile"])
    db = _db_with(tmp_path, "host", {entry_signature(ops["s2"]): other})
    used = {o["key"]: o for o in json.loads(dgc.compile(model, "host", name="m", tuning_db=db).schedule)["ops"]}
    assert used["s2"]["tile"] == other["tile"] and used["s1"]["tile"] == ops["s1"]["tile"]
    check_on_target(model, "host", tmp_path, tuning_db=db)


@pytest.mark.parametrize("target", ["host", "x86-64-v3", "cortex-m7", "aarch64"])
def test_candidates_are_valid_schedules(target):
    t = dgc.get_target(target)
    for op in _entries(zoo_model("resnet8"), target):
        cands = candidates(op, t, random.Random(0))
        assert cands[0] == {k: op[k] for k in ("tile", "reduce", "outer", "order", "vectorize")}  # the default first
        assert len({json.dumps(c, sort_keys=True) for c in cands}) == len(cands)
        for c in cands[1:]:
            for field in ("tile", "reduce", "outer"):
                assert len(c[field]) == len(op["loops"])
                assert all(x == 0 or d % x == 0 for x, d in zip(c[field], op["loops"])), (op["key"], c)
            lanes = max(1, t.vector_bits // 32)
            p = [i for i, k in enumerate(op["kinds"]) if k == "p"]
            assert sorted(c["order"]) == p
            if "r" in op["kinds"]:  # register block within the register file
                rows, cols = c["tile"][p[-2] if len(p) < 4 else 2], c["tile"][p[-1] if len(p) < 4 else 3]
                assert rows * -(-cols // lanes) <= max(2, t.vector_regs - 2)


def test_candidate_order_follows_the_seed():
    op = next(o for o in _entries(zoo_model("resnet8")) if o["linalg"] == "linalg.conv_2d_nhwc_hwcf")
    t = dgc.get_target("host")
    a, b, c = (candidates(op, t, random.Random(s)) for s in (1, 1, 2))
    assert a == b and a != c and sorted(map(str, a)) == sorted(map(str, c))


def test_tune_writes_a_resumable_database_and_compiles_deterministically(tmp_path):
    model = _two_convs()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    db = tmp_path / "tuning.json"
    rep = tune(str(path), "host", trials=3, db_path=str(db), seed=0, progress=False, samples=5)
    data = json.loads(db.read_text())
    assert data["schema"] == SCHEMA
    entries = data["targets"][target_key(dgc.get_target("host"))]
    measured = [t for e in entries.values() for t in e.get("trials", [])]
    assert len(measured) == 3 == sum(r.trials for r in rep.signatures)
    assert all("seconds" in t or "error" in t for t in measured)
    assert rep.default_s > 0 and rep.tuned_s > 0 and (rep.tuned_s <= rep.default_s or not rep.kept)
    # identical convs c2/c3 are one signature: tuned once
    assert len(rep.signatures) == len({r.signature for r in rep.signatures})

    # resume: a second run measures only new candidates
    tune(str(path), "host", trials=3, db_path=str(db), seed=0, progress=False, samples=5)
    entries = json.loads(db.read_text())["targets"][target_key(dgc.get_target("host"))]
    for e in entries.values():
        scheds = [json.dumps(t["schedule"], sort_keys=True) for t in e.get("trials", [])]
        assert len(scheds) == len(set(scheds))
    assert sum(len(e.get("trials", [])) for e in entries.values()) == 6

    # entries another dgc version measured are tuned again from scratch
    data = json.loads(db.read_text())
    for e in data["targets"][target_key(dgc.get_target("host"))].values():
        e["dgc"] = "0.0.0"
    db.write_text(json.dumps(data))
    tune(str(path), "host", trials=3, db_path=str(db), seed=0, progress=False, samples=5)
    entries = json.loads(db.read_text())["targets"][target_key(dgc.get_target("host"))]
    assert sum(len(e.get("trials", [])) for e in entries.values()) == 3
    assert {e["dgc"] for e in entries.values()} == {dgc_version()}


def _db_with(tmp_path, target, best: dict) -> str:
    t = dgc.get_target(target)
    p = tmp_path / "db.json"
    p.write_text(json.dumps({"schema": SCHEMA, "targets": {target_key(t): {s: {"best": b} for s, b in best.items()}}}))
    return str(p)


@pytest.mark.parametrize("verdicts, kept", [([0.8, 1.1, 1.15], False), ([1.3, 0.9, 0.95], True)])
def test_the_final_verdict_is_the_median_of_three_timing_runs(verdicts, kept, tmp_path, monkeypatch):
    """On x86 the tuned model is kept only when the median of three independent default-vs-tuned
    runs is faster: one lucky run (0.8x the default's time) does not keep a tuning the other two
    find slower, nor does one unlucky run drop one they find faster. Timings are faked: every
    candidate 10% faster than the incumbent during the search, then the given tuned/default
    ratios in the verdict's runs."""
    from dgc import tune as T

    model = _two_convs()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    ratios = list(verdicts)

    def fake_time(self, spec, objs, samples=None):
        if samples == 2 * self.samples + 1:  # the verdict: [default, tuned]
            return [1.0, ratios.pop(0)]
        return [1.0] + [0.9] * (len(objs) - 1)

    monkeypatch.setattr(T._Tuner, "time", fake_time)
    db = tmp_path / "tuning.json"
    rep = tune(str(path), "host", trials=2, db_path=str(db), seed=0, progress=False, samples=5)
    assert not ratios  # three verdict runs
    assert rep.kept == kept
    entries = json.loads(db.read_text())["targets"][target_key(dgc.get_target("host"))]
    assert any("best" in e for e in entries.values()) == kept
    assert rep.tuned_s == (pytest.approx(0.95) if kept else rep.default_s)


@pytest.mark.parametrize("target", ["host", "cortex-m7"])
def test_compile_applies_the_database(target, tmp_path):
    """A database entry changes exactly its ops' schedules; the object verifies and is the
    same bytes every time."""
    model = _two_convs()
    ops = _entries(model, target)
    c2 = next(o for o in ops if o["key"] == "c2")
    sig = entry_signature(c2)
    other = next(c for c in candidates(c2, dgc.get_target(target), random.Random(0))[1:] if c["outer"] == [0] * 7)
    db = _db_with(tmp_path, target, {sig: other})
    a = dgc.compile(model, target, name="m", tuning_db=db)
    b = dgc.compile(model, target, name="m", tuning_db=db)
    assert a.object == b.object
    used = {o["key"]: o for o in json.loads(a.schedule)["ops"]}
    for key in ("c2", "c3"):
        assert used[key]["tile"] == other["tile"] and used[key]["reduce"] == other["reduce"]
    assert used["c4"]["tile"] == next(o for o in ops if o["key"] == "c4")["tile"]
    if target == "host":
        check_on_target(model, target, tmp_path, tuning_db=db)


def test_a_database_for_another_target_changes_nothing(tmp_path):
    model = _two_convs()
    c2 = next(o for o in _entries(model, "cortex-m7") if o["key"] == "c2")
    sig = entry_signature(c2)
    db = _db_with(tmp_path, "cortex-m4", {sig: candidates(c2, dgc.get_target("cortex-m7"), random.Random(0))[1]})
    assert dgc.compile(model, "cortex-m7", name="m", tuning_db=db).object == \
        dgc.compile(model, "cortex-m7", name="m").object


def test_bad_databases_and_targets_are_clear_errors(tmp_path):
    model = tmp_path / "m.onnx"
    onnx.save(_two_convs(), model)
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "other.json").write_text('{"ops": []}')
    for db, msg in (("missing.json", "cannot read"), ("bad.json", "not valid JSON"), ("other.json", "not a dgc tuning")):
        proc = run_dgc("compile", model, "-o", tmp_path / "out", "--tuning-db", tmp_path / db)
        assert proc.returncode == 2 and msg in proc.stderr and "Traceback" not in proc.stderr
        assert not (tmp_path / "out" / "m.o").exists()
    proc = run_dgc("tune", model, "--target", "cortex-m85", "--trials", "2", "--db", tmp_path / "t.json")
    assert proc.returncode == 2 and "runs neither on this machine nor in QEMU" in proc.stderr
    assert not (tmp_path / "t.json").exists()
    proc = run_dgc("tune", model, "--target", "cortex-m7", "--trials", "2", "--db", tmp_path / "no" / "t.json")
    assert proc.returncode == 2 and "cannot write tuning database" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    with pytest.raises(UsageError):
        parse_budget("ten minutes")
    assert parse_budget("10m") == 600 and parse_budget("90s") == 90 and parse_budget("2") == 2


def test_a_crashing_candidate_is_contained(tmp_path):
    """Code that crashes while being timed raises MeasureError in the tuner, which goes on."""
    res = dgc.compile(_two_convs(), "host", name="m")
    src = tmp_path / "crash.c"
    src.write_text("int m_run(const float *x, float *y, void *a) { return *(volatile int *)0; }\n")
    obj = tmp_path / "crash.o"
    run_tool(["cc", "-c", str(src), "-fPIC", "-o", str(obj)])
    good = tmp_path / "good.o"
    good.write_bytes(res.object)
    assert len(time_models([(res.spec, str(good))], res.target, str(tmp_path / "w"), samples=3)) == 1
    with pytest.raises(MeasureError, match="signal"):
        time_models([(res.spec, str(good)), (res.spec, str(obj))], res.target, str(tmp_path / "w"), samples=3)


def test_database_is_rewritten_atomically(tmp_path):
    db = TuningDB.load(tmp_path / "x.json")
    db.entries(dgc.get_target("host"))["sig"] = {"trials": []}
    db.save()
    assert json.loads((tmp_path / "x.json").read_text())["schema"] == SCHEMA
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_depfile_names_the_tuning_database(tmp_path):
    model = tmp_path / "m.onnx"
    onnx.save(_two_convs(), model)
    db = tmp_path / "tuning.json"
    TuningDB(str(db), {"schema": SCHEMA, "targets": {}}).save()
    proc = run_dgc("compile", model, "-o", tmp_path / "out", "--tuning-db", db, "--depfile", tmp_path / "out" / "m.d")
    assert proc.returncode == 0, proc.stderr
    assert str(db) in (tmp_path / "out" / "m.d").read_text()


def test_tune_on_cortex_m_counts_cycles_in_qemu(tmp_path):
    """Cortex-M candidates are costed by the llvm-mca estimate of the exact instructions one run
    executes in QEMU: the same object always costs the same."""
    from conftest import require_tools
    from dgc.measure import count_models

    require_tools("cortex-m7")
    path = tmp_path / "m.onnx"
    onnx.save(_two_convs(), path)
    rep = tune(str(path), "cortex-m7", trials=2, db_path=str(tmp_path / "db.json"), progress=False)
    assert rep.unit == "cycles" and rep.default_s > 0 and rep.tuned_s <= rep.default_s
    res = dgc.compile(_two_convs(), "cortex-m7", name="m")
    obj = tmp_path / "m.o"
    obj.write_bytes(res.object)
    a, b = count_models([(res.spec, str(obj))] * 2, res.target, str(tmp_path / "w"))
    assert a == b and a["instructions"] > 0 and a["cycles"] > 0


@pytest.mark.parametrize("target", ["aarch64", "armv7a"])
def test_tune_on_arm_linux_counts_cycles_in_qemu_user(target, tmp_path):
    """AArch64 / ARMv7-A Linux targets are tuned on exact instruction counts in qemu-user
    (cycles estimated by llvm-mca); the tuned model verifies against onnxruntime there."""
    from conftest import require_tools

    require_tools(target)
    path = tmp_path / "m.onnx"
    onnx.save(_two_convs(), path)
    db = tmp_path / "db.json"
    rep = tune(str(path), target, trials=3, db_path=str(db), progress=False)
    assert rep.unit == "cycles" and 0 < rep.tuned_s <= rep.default_s
    trials = [t for e in json.loads(db.read_text())["targets"][target_key(dgc.get_target(target))].values()
              for t in e["trials"]]
    assert len(trials) == 3 and all(t["seconds"] > 0 for t in trials if "error" not in t)
    check_on_target(_two_convs(), target, tmp_path, tuning_db=str(db))


def test_search_order_measures_the_predicted_best_first():
    """The tuner measures the default, then the cost model's ranking, every 4th candidate in
    seed order instead; nothing is lost or repeated."""
    from dgc.predict import rank, smlad_cycles
    from dgc.tune import EXPLORE, search_order

    host = dgc.get_target("host")
    entry = _entries(_two_convs())[0]
    space = candidates(entry, host, random.Random(5))
    order = search_order(entry, space, host)
    key = lambda c: json.dumps(c, sort_keys=True)  # noqa: E731
    assert sorted(map(key, order)) == sorted(map(key, space)) and order[0] == space[0]
    ranked = [space[i] for i in rank(entry, space, host) if i != 0]
    assert order[1:EXPLORE] == ranked[:EXPLORE - 1]
    assert order[EXPLORE] == next(c for c in space[1:] if c not in order[:EXPLORE])
    dsp = {"linalg": "linalg.conv_2d_nhwc_hwcf", "loops": [1, 8, 8, 16, 3, 3, 8], "kinds": "pppprrr",
           "kernel": "i8smlad", "space": [[2, 2], [1, 1], [1, 1, 16], [4, 2], [2, 2, 16], [4, 4, 16], [2, 1]],
           "unrolls": [0, 1, 2, 8]}
    dot = {**dsp, "kernel": "i8vnni", "space": [[4, 64], [1, 16], [2, 32], [8, 16]], "unrolls": [0]}
    space = candidates(dot, host, random.Random(1))  # dot-product kernels: no model, seed order
    assert search_order(dot, space, host) == space and len(space) == 4
    space = candidates(dsp, dgc.get_target("cortex-m7"), random.Random(1))
    assert len(space) == 7 * 4  # every block with every unroll count
    order = search_order(dsp, space, dgc.get_target("cortex-m7"))
    assert order[0] == {"dsp_block": [2, 2], "dsp_unroll": 0} and sorted(map(key, order)) == sorted(map(key, space))
    ranked = [c for i, c in enumerate(order) if i and i % EXPLORE]
    cost = [round(smlad_cycles(dsp["loops"], c)) for c in ranked]
    assert cost == sorted(cost)  # fewest predicted cycles first
    assert ranked[0]["dsp_block"] == [2, 2, 16]  # SMLAD-bound: one cycle per SMLAD in the asm loop
    assert ranked[-1] == {"dsp_block": [1, 1], "dsp_unroll": 1}  # 9 instructions per 4 MACs, a loop per word
    # depthwise convs: the --predict choice first (16 channels: the 4 groups' loop unrolled whole,
    # by 8 here), then int16 weights first (none here), unrolled once or twice last, seed order
    dw = {**dsp, "linalg": "linalg.depthwise_conv_2d_nhwc_hwcm", "space": [[1, 4], [2, 4], [4, 4]]}
    space = candidates(dw, dgc.get_target("cortex-m7"), random.Random(1))
    ranked = [c for i, c in enumerate(search_order(dw, space, dgc.get_target("cortex-m7"))) if i and i % EXPLORE]
    assert ranked[0] == {"dsp_block": [1, 4], "dsp_unroll": 8}
    ranked = ranked[1:]
    assert [c["dsp_unroll"] in (1, 2) for c in ranked] == sorted(c["dsp_unroll"] in (1, 2) for c in ranked)


def test_order_seed_measures_the_seeded_candidates_in_order(tmp_path):
    """`--order seed`: unbiased samples, the candidates in seed order (cost models' evaluation);
    a bad order is a usage error."""
    from conftest import require_tools

    require_tools("cortex-m7")
    path = tmp_path / "m.onnx"
    onnx.save(_two_convs(), path)
    tune(str(path), "cortex-m7", trials=3, db_path=str(tmp_path / "db.json"), progress=False, seed=4, order="seed")
    entries = json.loads((tmp_path / "db.json").read_text())["targets"][target_key(dgc.get_target("cortex-m7"))]
    m7 = dgc.get_target("cortex-m7")
    groups = {}
    for op in _entries(_two_convs(), "cortex-m7"):
        groups.setdefault(entry_signature(op), []).append(op)
    first = min(groups, key=lambda s: (-sum(math.prod(o["loops"]) for o in groups[s]), s))  # tuned first
    tried = [t["schedule"] for t in entries[first]["trials"]]
    assert len(tried) >= 2 and tried == candidates(groups[first][0], m7, random.Random(4))[1:1 + len(tried)]
    with pytest.raises(UsageError, match="search order"):
        tune(str(path), "cortex-m7", trials=1, db_path=str(tmp_path / "x.json"), progress=False, order="best")


def test_rank_refines_the_best_few_with_llvm_mca_on_cortex_m():
    """On a bare-metal target the analytic model's first REFINE candidates are re-ranked by the
    llvm-mca model (also on the qemu-user ARM Linux targets, which the tuner costs the same
    way); on x86 the analytic order stands."""
    from dgc.predict import predict, predict_mca_refines, rank

    m7 = dgc.get_target("cortex-m7")
    entry = _entries(_two_convs(), "cortex-m7")[0]
    space = candidates(entry, m7, random.Random(0))
    analytic = sorted(range(len(space)), key=lambda i: (predict(entry, space[i], m7), i))
    got = rank(entry, space, m7, refine=6)
    assert got[6:] == analytic[6:] and sorted(got[:6]) == sorted(analytic[:6])
    from dgc.predict_mca import predict_mca

    mca = [predict_mca(entry, space[i], m7) for i in got[:6]]
    assert mca == sorted(mca)
    assert rank(entry, space, m7, refine=0) == analytic
    assert predict_mca_refines(m7) and not predict_mca_refines(dgc.get_target("host"))
    assert all(predict_mca_refines(dgc.get_target(t)) for t in ("cortex-a72", "aarch64", "armv7a"))


def test_spearman_matches_numpy_ranks():
    from dgc.predict import spearman

    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(30), rng.standard_normal(30)
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    assert abs(spearman(list(a), list(b)) - np.corrcoef(ra, rb)[0, 1]) < 1e-12
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_predictor_prefers_register_blocks_that_reuse_loads():
    """The cost model's ordering on a conv: one output row per block (no broadcast reuse) costs
    more than four; a block beyond the register file (spills) more than one within it; an
    unvectorized schedule the most."""
    from dgc.predict import predict

    t = dgc.get_target("x86-64-v3")  # 8 lanes, 16 registers
    op = {"linalg": "linalg.conv_2d_nhwc_hwcf", "loops": [1, 32, 32, 16, 3, 3, 16], "kinds": "pppprrr"}

    def cost(rows, width, vectorize=True):
        return predict(op, {"tile": [1, 1, rows, width, 0, 0, 0], "reduce": [0, 0, 0, 0, 1, 1, 1],
                            "outer": [0] * 7, "vectorize": vectorize}, t)
    assert cost(1, 16) > cost(4, 16)
    assert cost(16, 16) > cost(4, 16)  # 16 x 2 accumulators > 16 registers
    assert cost(4, 16, vectorize=False) > cost(1, 16)


def test_depthwise_inputs_beyond_l2_prefer_narrow_blocks():
    """Out-of-order cores: a depthwise conv whose input fits L2 is compute bound, where one
    output pixel per block (kw loads for one FMA per window column) ranks below a 7-pixel
    block; one whose input streams from beyond L2 (112x112x96, 4.8 MB, stride 2) ranks blocks
    by the pixels they span, one pixel first."""
    from dgc.predict import predict
    from dgc.passes.schedule import depthwise_block_schedule

    def order(target, loops, window):
        op = {"linalg": "linalg.depthwise_conv_2d_nhwc_hwc", "loops": loops, "kinds": "pppprr", "window": window}
        cost = {r: predict(op, depthwise_block_schedule(r, 16), target) for r in (1, 7, 28)}
        return sorted(cost, key=cost.get)

    x86 = dgc.get_target("x86-64-v4")  # 1 MB L2
    assert order(x86, [1, 56, 56, 96, 3, 3], [2, 2, 1, 1]) == [1, 7, 28]
    assert order(x86, [1, 14, 14, 96, 3, 3], [2, 2, 1, 1])[0] != 1  # 300 KB of input


def test_avx2_depthwise_5x5_blocks_read_their_windows_from_memory(tmp_path):
    """x86 with 16 registers (Zen 3, natively): a 5x5 depthwise block of 7 pixels x 8 channels
    cannot hold its window (7 accumulators, 11 inputs and 5 weights a kernel row) but runs
    1.4-1.6x faster than the 2-pixel block that can (its 2 accumulators wait on 5 chained FMAs
    a row; EfficientNet/MobileNetV3 14x14 convs, bench/synthetic_ops.py); the default takes
    more than 2 pixels there; a 3x3 block either holds its window or keeps its accumulators
    within half the registers; the conv verifies against onnxruntime. AVX-512 keeps its
    window model."""
    from dgc.predict import predict
    from dgc.passes.schedule import depthwise_block_schedule
    from dgc.predict_mca import one_op_model

    v3 = dgc.get_target("x86-64-v3")
    op = {"linalg": "linalg.depthwise_conv_2d_nhwc_hwc", "loops": [1, 14, 14, 240, 5, 5], "kinds": "pppprr"}
    assert predict(op, depthwise_block_schedule(7, 8), v3) < predict(op, depthwise_block_schedule(2, 8), v3)
    model = one_op_model({**op, "fuse": True})
    model.ir_version = 8  # onnxruntime's
    (e,) = json.loads(dgc.compile(model, v3, name="m", stop_after="schedule").schedule)["ops"]
    assert e["tile"][2] > 2, e["tile"]
    op3 = {**op, "loops": [1, 28, 28, 88, 3, 3]}
    (e3,) = json.loads(dgc.compile(one_op_model({**op3, "fuse": True}), v3, name="m",
                                   stop_after="schedule").schedule)["ops"]
    r, w = e3["tile"][2:4]
    assert r * (w // 8) + (r + 2) * (w // 8) + 3 * (w // 8) <= 16 or r * (w // 8) <= 8, e3["tile"]
    check_on_target(model, "host", tmp_path, schedule=[{"key": e["key"], "tile": e["tile"]}])


def test_poolings_load_no_weights():
    """A pooling reads its window's inputs and no weights: on x86 it costs less than a
    depthwise conv of the same loops and block (whose kw weight vectors per kernel row are
    loads and registers) where loads bound the step (one pixel per block) or the window
    spills (14 pixels at stride 2), the same where the FMAs bound it (7 pixels)."""
    from dgc.predict import predict
    from dgc.passes.schedule import depthwise_block_schedule

    x86 = dgc.get_target("x86-64-v4")

    def cost(linalg, r):
        op = {"linalg": linalg, "loops": [1, 14, 14, 64, 3, 3], "kinds": "pppprr", "window": [2, 2, 1, 1]}
        return predict(op, depthwise_block_schedule(r, 16), x86)
    for r in (1, 14):
        assert cost("linalg.pooling_nhwc_max", r) < cost("linalg.depthwise_conv_2d_nhwc_hwc", r), r
    assert cost("linalg.pooling_nhwc_max", 7) == cost("linalg.depthwise_conv_2d_nhwc_hwc", 7)


def test_predict_keeps_default_poolings_on_x86():
    """On x86 (analytic model only) `--predict` leaves poolings at their default block, even
    where the model ranks another one cheapest by more than TRUST_GAIN: it ranks pooling blocks
    barely better than chance (LeNet's 2x2 max pooling with 7 rows instead of 14 was predicted
    faster and ran 1.2% slower)."""
    from dgc.predict import TRUST_GAIN, best_predicted, predict, rank

    t = dgc.get_target("host")
    op = {"linalg": "linalg.pooling_nhwc_max", "loops": [1, 14, 14, 6, 2, 2], "kinds": "pppprr",
          "window": [2, 2, 1, 1], "fuse": False}
    space = candidates(op, t, random.Random(0), limit=1 << 30)
    cheapest = space[rank(op, space, t)[0]]
    assert cheapest != space[0] and predict(op, space[0], t) >= TRUST_GAIN * predict(op, cheapest, t)
    assert best_predicted(op, t) == space[0]


def test_one_row_blocks_take_weights_as_memory_operands():
    """A 1-row conv block uses each weight vector once per step, as the FMA's memory operand:
    on x86-64-v3 (16 registers) 1 x 8 vectors pays no spills, unrolled or not (1x1 convs
    measured as fast as the best blocks); 2 rows hold the weights in registers and spill
    once unrolled steps hoist them."""
    from dgc.predict import predict

    t = dgc.get_target("x86-64-v3")
    op = {"linalg": "linalg.conv_2d_nhwc_hwcf", "loops": [1, 7, 7, 1280, 1, 1, 320], "kinds": "pppprrr"}

    def cost(r, cols, unroll):
        return predict(op, {"tile": [1, 1, r, cols, 0, 0, 0], "reduce": [0, 0, 0, 0, 1, 1, unroll],
                            "outer": [0] * 7, "order": [0, 1, 2, 3], "vectorize": True}, t)
    assert cost(1, 64, 4) == cost(1, 64, 1)  # unrolled steps hoist no weights into registers
    assert abs(cost(1, 64, 1) / cost(1, 32, 1) - 1) < 0.01  # 8 vectors as cheap as 4: no spills
    assert cost(2, 64, 4) > cost(2, 64, 1)  # 2 rows: weights in registers, hoisted and spilled


def test_avx2_conv_blocks_hoist_one_step_of_weights():
    """x86 with 16 registers (Zen 3, natively; bench/synthetic_ops.py convs): a 2x32 block of a
    3x3 conv over 12 unrolled steps (8 accumulators, 4 weight vectors a step) hoists the next
    step's weights only - 10 stack accesses in all, seen in the assembly - and ran 1.35x the
    time of the 4x16 block (1.07x as 2x32 over 4 steps in a 64-channel cache block, 1.67x as
    4x8 over 12 steps), where the
    AVX-512 rule (every unrolled step's weights hoisted and spilled) priced it 12x; weights
    streamed from L2 cost a cycle per 256-bit vector (32 bytes a cycle). AVX-512 keeps its
    rule."""
    from dgc.predict import predict

    op = {"linalg": "linalg.conv_2d_nhwc_hwcf", "loops": [1, 28, 28, 128, 3, 3, 128], "kinds": "pppprrr"}

    def cost(t, r, cols, red, outer=0, order=(0, 1, 2, 3)):
        return predict(op, {"tile": [1, 1, r, cols, 0, 0, 0], "reduce": [0, 0, 0, 0, *red],
                            "outer": [0, 0, 0, outer, 0, 0, 0], "order": list(order), "vectorize": True}, t)
    v3, v4 = dgc.get_target("x86-64-v3"), dgc.get_target("x86-64-v4")
    base = cost(v3, 4, 16, (1, 1, 4), outer=64)
    assert 1.0 < cost(v3, 2, 32, (1, 3, 4)) / base < 1.6
    # measured 1.07x and 1.67x
    assert cost(v3, 2, 32, (1, 1, 4), outer=64, order=(3, 0, 1, 2)) < cost(v3, 4, 8, (1, 3, 4), outer=16)
    assert cost(v3, 2, 8, (1, 3, 1)) / base > 2.5  # measured 3.2x: one FMA per load pair
    # AVX-512: 14x32 over 12 unrolled steps spills every step's weights (27 stack accesses a step)
    assert cost(v4, 14, 32, (1, 3, 4)) > 2 * cost(v4, 14, 32, (1, 1, 1))


def test_loop_orders_are_searched_and_ranked_by_output_traffic():
    """Convs and matmuls whose output-channel loop runs several times get candidates with it
    outermost and (convs) per image row. On x86 the cost model ranks them behind the natural
    order when the output exceeds L1 (measured 1.05-1.22x slower on 1x1 convs with few input
    channels), by about 4 / (reduction length)."""
    from dgc.predict import predict

    t = dgc.get_target("host")
    op = {"linalg": "linalg.conv_2d_nhwc_hwcf", "loops": [1, 56, 56, 144, 1, 1, 24], "kinds": "pppprrr",
          "tile": [1, 1, 14, 16, 0, 0, 0], "reduce": [0, 0, 0, 0, 1, 1, 1], "outer": [0] * 7,
          "order": [0, 1, 2, 3], "vectorize": True}
    orders = {tuple(c["order"]) for c in candidates(op, t, random.Random(0), limit=1 << 30)}
    assert orders == {(0, 1, 2, 3), (3, 0, 1, 2), (0, 1, 3, 2)}
    base = predict(op, op, t)
    for order in ([3, 0, 1, 2], [0, 1, 3, 2]):
        assert 1.1 < predict(op, {**op, "order": order}, t) / base < 1.3
    deep = {**op, "loops": [1, 7, 7, 160, 1, 1, 576], "tile": [1, 1, 7, 32, 0, 0, 0]}  # output in L1
    assert predict(deep, {**deep, "order": [3, 0, 1, 2]}, t) == predict(deep, deep, t)
    mm = {"linalg": "linalg.batch_matmul", "loops": [1, 128, 512, 128], "kinds": "pppr",
          "tile": [1, 8, 32, 0], "reduce": [0, 0, 0, 1], "outer": [0] * 4, "order": [0, 1, 2], "vectorize": True}
    assert {tuple(c["order"]) for c in candidates(mm, t, random.Random(0), limit=1 << 30)} == {(0, 1, 2), (2, 0, 1)}
    one = {**op, "tile": [1, 1, 14, 144, 0, 0, 0]}  # one output-channel tile: nothing to reorder
    assert {tuple(c["order"]) for c in candidates(one, t, random.Random(0), limit=1 << 30)
            if c["tile"][3] == 144} == {(0, 1, 2, 3)}


@pytest.mark.parametrize("target", ["host", "cortex-m7", "cortex-a72"])
def test_predict_picks_the_cost_models_best_candidate(target, tmp_path):
    """`--predict`: every op gets the candidate the cost model ranks cheapest (nothing run) -
    on x86 only when the analytic model predicts at least TRUST_GAIN over the default -, a
    database entry still wins over it, and the model verifies against onnxruntime."""
    from dgc.predict import TRUST_GAIN, best_predicted, predict, predict_mca_refines

    t = dgc.get_target(target)
    model = _two_convs()
    ops = {o["key"]: o for o in _entries(model, target)}
    res = dgc.compile(model, target, name="m", predict=True)
    used = {o["key"]: o for o in json.loads(res.schedule)["ops"]}
    for key in ("c1", "c2", "c3", "c4"):
        best = best_predicted(ops[key], t)
        assert {k: used[key][k] for k in ("tile", "reduce", "outer")} == \
               {k: best[k] for k in ("tile", "reduce", "outer")}, key
        space = candidates(ops[key], t, random.Random(1))
        cheapest = min(predict(ops[key], c, t) for c in space)
        if predict_mca_refines(t):  # the llvm-mca model re-ranked the analytic model's best few
            assert predict(ops[key], best, t) <= sorted(predict(ops[key], c, t) for c in space)[11]
        elif best == space[0]:
            assert predict(ops[key], best, t) < TRUST_GAIN * cheapest
        else:
            assert predict(ops[key], best, t) == cheapest
    assert dgc.compile(model, target, name="m", predict=True).object == res.object
    sig = entry_signature(ops["c4"])
    tuned = next(c for c in candidates(ops["c4"], t, random.Random(0))[1:] if c != best_predicted(ops["c4"], t))
    both = dgc.compile(model, target, name="m", predict=True, tuning_db=_db_with(tmp_path, target, {sig: tuned}))
    assert next(o for o in json.loads(both.schedule)["ops"] if o["key"] == "c4")["tile"] == tuned["tile"]
    check_on_target(model, target, tmp_path, predict=True)
    onnx.save(model, tmp_path / "m.onnx")
    r = run_dgc("compile", tmp_path / "m.onnx", "--target", target, "--predict", "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "m.o").read_bytes() == res.object
    r = run_dgc("verify", tmp_path / "m.onnx", "--target", target, "--predict")
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr


def _conv_dw_pool() -> onnx.ModelProto:
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.3, n)
             for n, s in (("w1", (16, 8, 3, 3)), ("w2", (16, 1, 3, 3)), ("b2", (16,)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"], name="relu"),
             helper.make_node("Conv", ["b", "w2", "b2"], ["c"], name="dw", group=16, pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c"], ["y"], name="pool", kernel_shape=[3, 3], strides=[2, 2])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 12, 12])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 5, 5])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("target", ["host", "cortex-m7"])
def test_whole_window_rows_per_reduction_step_verify(target, tmp_path):
    """The candidates that unroll a window row (reduce kw = the kernel width) for conv,
    depthwise conv and pooling compute the same as onnxruntime."""
    model = _conv_dw_pool()
    t = dgc.get_target(target)
    ops = _entries(model, target)
    schedule = []
    for op in ops:
        if op["linalg"].startswith(("linalg.conv_2d", "linalg.depthwise", "linalg.pooling")):
            unrolled = [c for c in candidates(op, t, random.Random(0)) if c["reduce"][5] == op["loops"][5] == 3]
            assert unrolled, op["key"]
            schedule.append({"key": op["key"], **unrolled[0]})
    assert len(schedule) == 3
    res, _, _ = check_on_target(model, target, tmp_path, schedule=schedule)
    used = {o["key"]: o for o in json.loads(res.schedule)["ops"]}
    assert all(used[e["key"]]["reduce"][5] == 3 and used[e["key"]]["vectorize"] for e in schedule)


def test_timed_buffers_sit_at_fixed_distinct_page_offsets():
    """dgc.measure places buffer k SPREAD*k bytes past a page boundary (the same for every
    candidate, no two co-aligned), zeroed or holding a copy of the data."""
    data = np.arange(30, dtype=np.float32).reshape(5, 6)
    offsets = []
    for k in range(4):
        a = placed_buffer(k, data.shape, data.dtype, data if k % 2 else None)
        offsets.append(a.ctypes.data % PAGE)
        assert a.shape == data.shape and a.dtype == data.dtype
        np.testing.assert_array_equal(a, data if k % 2 else np.zeros_like(data))
    assert offsets == [SPREAD * k % PAGE for k in range(4)]
    assert len(set(offsets)) == 4 and all(o % 64 == 0 for o in offsets)


def test_neighbours_first_orders_by_the_best_block_then_its_unroll():
    from dgc.tune import neighbours_first

    pending = [{"dsp_block": b, "dsp_unroll": u} for b in ([1, 1], [2, 2, 16], [4, 2]) for u in (0, 8, 16)]
    order = neighbours_first(pending, {"dsp_block": [2, 2, 16], "dsp_unroll": 8})
    assert [c["dsp_block"] for c in order[:3]] == [[2, 2, 16]] * 3
    assert order[3:5] == [{"dsp_block": [1, 1], "dsp_unroll": 8}, {"dsp_block": [4, 2], "dsp_unroll": 8}]
    assert sorted(map(json.dumps, order)) == sorted(map(json.dumps, pending))


def test_int8_smlad_search_is_coordinate_wise_and_independent_of_workers(tmp_path):
    """An int8 conv on Cortex-M7: blocks x unroll counts, searched from the default's
    neighbours (its block with the other unroll counts first); after the first round of ROUND
    candidates, the next are the neighbours of the best so far (its block, then its unroll
    count); rounds are fixed, so 1 and 2 workers write the same database."""
    from conftest import require_tools
    from dgc import zoo
    from dgc.quantize import quantize
    from dgc.tune import ROUND

    require_tools("cortex-m7")
    rng = np.random.default_rng(4)
    w = numpy_helper.from_array((rng.standard_normal((16, 8, 3, 3)) * 0.3).astype(np.float32), "w")
    b = numpy_helper.from_array((rng.standard_normal(16) * 0.1).astype(np.float32), "b")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])], [w, b])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "q.onnx"
    onnx.save(quantize(model, [zoo.random_inputs(model, seed=i) for i in range(4)]), path)
    dbs = []
    for workers in (1, 2):
        db = tmp_path / f"w{workers}.json"
        tune(str(path), "cortex-m7", trials=ROUND + 4, db_path=str(db), progress=False, seed=2, workers=workers)
        (entry,) = [e for sig, e in json.loads(db.read_text())["targets"]["cortex-m7"].items()
                    if sig.endswith(":i8smlad")]
        dbs.append(entry)
    assert dbs[0]["trials"] == dbs[1]["trials"] and dbs[0].get("best") == dbs[1].get("best")
    trials = dbs[0]["trials"]
    assert len(trials) > ROUND and all("seconds" in t for t in trials)
    assert [t["schedule"]["dsp_block"] for t in trials[:5]] == [[2, 2]] * 5  # the default block's other unrolls
    assert sorted(t["schedule"]["dsp_unroll"] for t in trials[:5]) == [1, 2, 4, 8, 16]
    first = [t for t in trials[:ROUND] if t["seconds"] < t["incumbent"] * 0.999]
    if first:  # a candidate of the first round won: the next round starts with its neighbours
        best = min(first, key=lambda t: t["seconds"])["schedule"]
        nxt = trials[ROUND]["schedule"]
        assert nxt["dsp_block"] == best["dsp_block"] or nxt["dsp_unroll"] == best["dsp_unroll"]


def test_int8_smlad_search_starts_with_joint_choices_on_every_conv(tmp_path):
    """Two int8 convs (two signatures) on Cortex-M7: the first JOINT trials of each are the
    same choices, applied to both convs at once, fewest predicted cycles first; the cheapest that
    beats the default becomes both convs' best, the op-by-op search goes on from there (it
    does not measure that choice again), and the tuned model still matches onnxruntime."""
    from conftest import require_tools
    from dgc import zoo
    from dgc.predict import smlad_cycles
    from dgc.quantize import quantize
    from dgc.tune import JOINT

    require_tools("cortex-m7")
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n)
             for n, s in (("w1", (16, 8, 3, 3)), ("b1", (16,)), ("w2", (16, 16, 3, 3)), ("b2", (16,)))]
    g = helper.make_graph([helper.make_node("Conv", ["x", "w1", "b1"], ["h"], name="c1", pads=[1, 1, 1, 1]),
                           helper.make_node("Relu", ["h"], ["r"], name="relu"),
                           helper.make_node("Conv", ["r", "w2", "b2"], ["y"], name="c2", pads=[1, 1, 1, 1])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])], inits)
    model = quantize(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
                     [zoo.random_inputs(helper.make_model(g), seed=i) for i in range(4)])
    path, db = tmp_path / "q.onnx", tmp_path / "db.json"
    onnx.save(model, path)
    tune(str(path), "cortex-m7", trials=JOINT + 4, db_path=str(db), progress=False, seed=1)
    entries = [e for sig, e in json.loads(db.read_text())["targets"]["cortex-m7"].items() if ":i8smlad" in sig]
    assert len(entries) == 2
    joint = [[t for t in e["trials"] if "joint" in t] for e in entries]
    assert joint[0] == joint[1] and len(joint[0]) == JOINT and all(t["joint"] == 2 for t in joint[0])
    assert all(e["trials"][:JOINT] == joint[0] for e in entries)  # before the op-by-op search
    cost = [round(smlad_cycles([1, 8, 8, 16, 3, 3, 8], t["schedule"])) + round(smlad_cycles([1, 8, 8, 16, 3, 3, 16],
                                                                                         t["schedule"]))
            for t in joint[0]]
    assert cost == sorted(cost) and all("seconds" in t for t in joint[0])
    winner = min(joint[0], key=lambda t: t["seconds"])
    assert winner["seconds"] < winner["incumbent"] * 0.999  # exact counts: int16 4x2 blocks beat 2x2 here
    for e in entries:
        later = [t["schedule"] for t in e["trials"][JOINT:]]
        assert later and winner["schedule"] not in later  # searched on from it, not measured again
        won = [t for t in e["trials"][JOINT:] if t["seconds"] < t["incumbent"] * 0.999]
        assert e["best"] == (min(won, key=lambda t: t["seconds"])["schedule"] if won else winner["schedule"])
    check_on_target(model, "cortex-m7", tmp_path, tuning_db=str(db))
    proc = run_dgc("verify", path, "--target", "cortex-m7", "--tuning-db", db)  # the same from the command line
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr
