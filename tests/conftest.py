"""Shared test helpers: compile a model with dgc, run it on a target, compare with onnxruntime."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest

import dgc
from dgc.runtime.runners import run_model, run_models  # noqa: F401
from dgc.verifier import judge, random_inputs


def tools_for(target) -> list[str]:
    """The external programs needed to run code for `target` here."""
    t = dgc.get_target(target) if isinstance(target, str) else target
    if t.runner == "qemu-user":
        return [t.gcc, t.board]
    if t.runner == "qemu-system":
        return [t.gcc, "qemu-system-arm"]
    return ["cc"]


def require_tools(target) -> None:
    missing = [p for p in tools_for(target) if shutil.which(p) is None]
    if missing:  # .ci/run installs them; a developer machine may lack some
        pytest.skip(f"missing {missing} (installed by .ci/run)")


@functools.lru_cache(maxsize=None)
def zoo_model(name: str):
    from dgc import zoo

    return zoo.build(name)


def output_step(model) -> float:
    """Scale of the DequantizeLinear making a QDQ model's (first) output: one step of it."""
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    last = next(n for n in model.graph.node if model.graph.output[0].name in n.output)
    assert last.op_type == "DequantizeLinear", last.op_type
    return float(consts[last.input[1]])


def check_on_target(model, target: str, tmp_path, seed: int = 0, **compile_kw):
    """Compile, execute on `target`, assert every output matches onnxruntime."""
    require_tools(target)
    res = dgc.compile(model, target, name=compile_kw.pop("name", "m"), **compile_kw)
    inputs = random_inputs(res.spec, seed)
    obj = tmp_path / f"{res.name}.o"
    obj.write_bytes(res.object)
    got = run_model(res.spec, str(obj), res.target, inputs, str(tmp_path))
    want, (cmp,) = judge(model, res.spec, inputs, [got])  # as `dgc verify` judges it
    bad = [c for c in cmp if not c.ok]
    assert not bad, f"{target}: " + "; ".join(f"{c.name}: max abs err {c.max_abs:.3g} > {c.limit:.3g}" for c in bad)
    return res, got, want


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def run_dgc(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    """`python -m dgc ARGS...` as a user runs it: exit code, stdout and stderr as text."""
    return subprocess.run([sys.executable, "-m", "dgc", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env)


def save_zoo_model(tmp_path_factory, name: str, filename: str | None = None):
    """Zoo model `name` written to a fresh directory as FILENAME (default NAME.onnx): its path."""
    path = tmp_path_factory.mktemp("m") / (filename or f"{name}.onnx")
    onnx.save(zoo_model(name), path)
    return path
