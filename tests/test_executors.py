"""Where `dgc tune` compiles and counts candidates: the local process pool and Ray (issue 9)."""

from __future__ import annotations

import json
import operator

import onnx
import pytest

import dgc
from conftest import require_tools, run_dgc
from dgc.errors import UsageError
from dgc.executors import LocalExecutor, compile_job, count_job, make_executor
from dgc.tune import tune
from dgc.tuning import SCHEMA, target_key
from test_tune import _two_convs


def _db_with(target, schedules: dict) -> dict:
    return {"schema": SCHEMA, "targets": {target_key(dgc.get_target(target)): {s: {"best": f} for s, f in
                                                                                schedules.items()}}}


def test_local_pool_keeps_the_order_of_jobs():
    with LocalExecutor(2) as ex:
        assert ex.workers == 2
        assert ex.map(operator.mul, [(i, i) for i in range(7)]) == [i * i for i in range(7)]
    with LocalExecutor(1) as ex:  # inline
        assert ex.map(operator.add, [(1, 2), (3, 4)]) == [3, 7]


def test_compile_job_applies_the_database_and_reports_errors_as_data():
    model = _two_convs().SerializeToString()
    plain = compile_job(model, "host", _db_with("host", {}), None)
    ref = dgc.compile(_two_convs(), "host", name="tuned")
    assert plain["object"] == ref.object  # the same compile as in this process
    op = json.loads(ref.schedule)["ops"][0]
    from dgc.passes.schedule import entry_signature

    sig = entry_signature(op)
    other = dict(tile=[1, 1, 1, 4] + [0] * (len(op["loops"]) - 4), reduce=op["reduce"], outer=op["outer"],
                 vectorize=True)
    tuned = compile_job(model, "host", _db_with("host", {sig: other}), None)
    assert "object" in tuned and tuned["object"] != plain["object"]
    bad = compile_job(model, "host", _db_with("host", {sig: {"tile": [5, 5]}}), None)
    assert set(bad) == {"error"} and "\n" not in bad["error"] and bad["error"]


def test_count_job_counts_exactly_and_reports_faults(tmp_path):
    require_tools("cortex-m7")
    res = dgc.compile(_two_convs(), "cortex-m7", name="m")
    with LocalExecutor(2) as ex:
        a, b = ex.map(count_job, [(res.spec.to_json(), res.object, "cortex-m7")] * 2)
    assert a == b and a["instructions"] > 0 and a["cycles"] > 0
    broken = count_job(res.spec.to_json(), b"not an object", "cortex-m7")
    assert set(broken) == {"error"} and broken["error"]


def test_executor_choices_are_checked(monkeypatch):
    with pytest.raises(UsageError, match="unknown executor"):
        make_executor("dask")
    with pytest.raises(UsageError, match="--address is for --executor ray"):
        make_executor("local", address="auto")
    with pytest.raises(UsageError, match="at least 1"):
        make_executor("local", workers=0)
    import builtins

    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray":
            raise ImportError("no ray")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(UsageError) as e:
        make_executor("ray")
    assert "dgc[ray]" in e.value.hint


def test_cli_rejects_a_bad_executor(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_two_convs(), path)
    proc = run_dgc("tune", path, "--target", "host", "--executor", "local", "--address", "auto", "--trials", "1",
                   "--db", tmp_path / "db.json")
    assert proc.returncode != 0 and "--address is for --executor ray" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "db.json").exists()


def _tuned(path, db, **kw):
    rep = tune(str(path), "cortex-m7", trials=6, db_path=str(db), progress=False, seed=3, **kw)
    data = json.loads(db.read_text())["targets"]
    best = {s: e.get("best") for t in data.values() for s, e in t.items()}
    costs = {s: [tr.get("seconds") for tr in e["trials"]] for t in data.values() for s, e in t.items()}
    assert sum(c is not None for cs in costs.values() for c in cs) >= 4  # candidates were measured
    return rep, best, costs


def test_cortex_m_tuning_does_not_depend_on_the_number_of_workers(tmp_path):
    """Exact costs: a batch of 2 candidates decides as one candidate at a time does."""
    require_tools("cortex-m7")
    path = tmp_path / "m.onnx"
    onnx.save(_two_convs(), path)
    one = _tuned(path, tmp_path / "one.json", workers=1)
    two = _tuned(path, tmp_path / "two.json", workers=2)
    assert one[1] == two[1] and one[2] == two[2]
    assert one[0].tuned_s == two[0].tuned_s and one[0].default_s == two[0].default_s


@pytest.mark.slow
def test_ray_executor_tunes_like_the_local_pool(tmp_path):
    """A private local Ray instance (2 CPUs) compiles and counts the candidates: the same
    database as the local pool, the same verdict."""
    require_tools("cortex-m7")
    path = tmp_path / "m.onnx"
    onnx.save(_two_convs(), path)
    local = _tuned(path, tmp_path / "local.json", workers=2)
    ray = _tuned(path, tmp_path / "ray.json", executor="ray", address="local")
    assert ray[1] == local[1] and ray[2] == local[2]
    assert ray[0].tuned_s == local[0].tuned_s and ray[0].default_s == local[0].default_s
    res = dgc.compile(_two_convs(), "cortex-m7", name="m", tuning_db=str(tmp_path / "ray.json"))
    again = dgc.compile(_two_convs(), "cortex-m7", name="m", tuning_db=str(tmp_path / "local.json"))
    assert res.object == again.object
