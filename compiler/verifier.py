"""Compile, execute on a target, and compare with onnxruntime (dtype-aware tolerances)."""

from __future__ import annotations

import dataclasses
import tempfile

import numpy as np

from .spec import ModelSpec

FLOAT_RTOL = 1e-4  # max abs err <= FLOAT_RTOL * max(1, max|ref|)


def random_inputs(spec: ModelSpec, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for t in spec.inputs:
        dt = np.dtype(t.dtype)
        if dt.kind == "f":
            out.append(rng.standard_normal(t.shape).astype(dt))
        elif dt.kind == "b":
            out.append(rng.integers(0, 2, t.shape).astype(bool))
        else:
            info = np.iinfo(dt)
            out.append(rng.integers(max(info.min, -100), min(info.max, 100) + 1, t.shape).astype(dt))
    return out


def reference(model, spec: ModelSpec, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    data = model if isinstance(model, (bytes, str)) else model.SerializeToString()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    res = sess.run(names, {t.name: x for t, x in zip(spec.inputs, inputs)})
    return [np.asarray(r) for r in res]


@dataclasses.dataclass
class Comparison:
    name: str
    max_abs: float
    max_rel: float
    limit: float
    ok: bool


def compare(spec: ModelSpec, got: list[np.ndarray], want: list[np.ndarray]) -> list[Comparison]:
    out = []
    for t, g, w in zip(spec.outputs, got, want):
        g, w = np.atleast_1d(np.asarray(g)), np.atleast_1d(np.asarray(w)).reshape(np.atleast_1d(g).shape)
        if g.dtype.kind == "f":
            diff = np.abs(g.astype(np.float64) - w.astype(np.float64))
            same_nan = np.isnan(g) & np.isnan(w)
            diff[same_nan] = 0.0
            diff[(g == w)] = 0.0  # equal infinities
            max_abs = float(np.nanmax(diff)) if diff.size else 0.0
            if np.isnan(diff).any():
                max_abs = float("inf")
            finite = np.abs(w[np.isfinite(w)])
            scale = max(1.0, float(finite.max()) if finite.size else 1.0)
            limit = FLOAT_RTOL * scale
            rel = float(max_abs / scale)
        else:
            max_abs = float(np.abs(g.astype(np.int64) - w.astype(np.int64)).max()) if g.size else 0.0
            limit, rel = 0.0, max_abs
        out.append(Comparison(t.name, max_abs, rel, limit, max_abs <= limit))
    return out


def verify(model, target, *, seed: int = 0, opt_level: int = 3, input_shapes=None, name=None,
           workdir: str | None = None, memcheck: str | None = None, tuning_db=None, predict: bool = False):
    """Compile `model` for `target` (with `tuning_db` / `predict` as `dgc.compile` takes them),
    run it there, compare with onnxruntime.

    memcheck ("guard", "asan" or "valgrind", see dgc.runtime.memcheck) runs it in the
    memory-safety harness instead: a finding raises ModelRunError; every run's outputs (the
    exact run's and each thread's) are compared and the worst comparison is returned."""
    from .driver import compile
    from .frontend.load import read_model
    from dgc.runtime.runners import run_model

    proto = read_model(model)
    # numerics only: the model runs on the emulator's board whatever the target's default budget
    res = compile(proto, target, name=name or "model", opt_level=opt_level, input_shapes=input_shapes,
                  ram_limit=None, flash_limit=None, tuning_db=tuning_db, predict=predict)
    inputs = random_inputs(res.spec, seed)
    with tempfile.TemporaryDirectory(prefix="dgc-verify-") as tmp:
        wd = workdir or tmp
        obj = f"{wd}/{res.name}.o"
        with open(obj, "wb") as f:
            f.write(res.object)
        if memcheck:
            from dgc.runtime.memcheck import memcheck as run_memcheck

            runs = list(run_memcheck(res.spec, obj, res.target, inputs, wd, tool=memcheck).outputs.values())
        else:
            runs = [run_model(res.spec, obj, res.target, inputs, wd)]
    want = reference(proto, res.spec, inputs)
    cmps = [compare(res.spec, got, want) for got in runs]
    return res, [max((c[i] for c in cmps), key=lambda c: (not c.ok, c.max_rel)) for i in range(len(want))]
