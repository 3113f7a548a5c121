"""Row reductions (a generic reducing its innermost, contiguous loop: Softmax, LayerNorm,
ReduceMax/Sum/Mean over the last axis) are vectorized one row per tile and folded by one
`vector.reduction` (passes/schedule.py: `_row_reduction`, `_row_reductions`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import check_on_target


def _model(nodes, shape, out_shape, inits=()):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    return m


def _softmax(rows, n):
    return _model([helper.make_node("Softmax", ["x"], ["y"], axis=-1, name="sm")], [rows, n], [rows, n])


def _layernorm(rows, n):
    rng = np.random.default_rng(n)
    inits = [numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "g"),
             numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "b")]
    node = helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5, name="ln")
    return _model([node], [rows, n], [rows, n], inits)


def _reduce(op, rows, n, axis=-1):
    axes = numpy_helper.from_array(np.array([axis], np.int64), "axes")
    out = [rows, 1] if axis in (-1, 1) else [1, n]
    return _model([helper.make_node(op, ["x", "axes"], ["y"], keepdims=1, name="red")], [rows, n], out, [axes])


def _reductions(res):
    return [e for e in json.loads(res.schedule)["ops"] if e["linalg"] == "linalg.generic" and "r" in e["kinds"]]


@pytest.mark.parametrize("target", ["host", "aarch64", "armv7a"])
@pytest.mark.parametrize("make,n", [(_softmax, 128), (_layernorm, 96), (_softmax, 1000), (_layernorm, 768),
                                    (lambda r, n: _reduce("ReduceMax", r, n), 40),
                                    (lambda r, n: _reduce("ReduceSum", r, n), 64),
                                    (lambda r, n: _reduce("ReduceMean", r, n), 33)])
def test_row_reductions_are_vectorized_and_match_onnxruntime(target, make, n, tmp_path):
    res, _, _ = check_on_target(make(6, n), target, tmp_path)
    reds = _reductions(res)
    assert reds, "no reduction generic"
    for e in reds:
        assert e["vectorize"] and e["tile"][:-1] == [1] * (len(e["tile"]) - 1) and e["tile"][-1] == 0, e
        assert e["loops"][-1] == n and (e["reduce"][-1] == 0 or n % e["reduce"][-1] == 0), e


def test_other_reductions_keep_their_loops(tmp_path):
    """Over a leading axis the rows are not contiguous: left to the loops (and still right)."""
    res, _, _ = check_on_target(_reduce("ReduceSum", 6, 40, axis=0), "host", tmp_path)
    assert _reductions(res) == []  # not scheduled


def test_microcontrollers_without_vectors_keep_scalar_reductions(tmp_path):
    """Cortex-M7 has no vectors: nothing to schedule; Helium (Cortex-M55) vectorizes them."""
    import dgc

    assert _reductions(dgc.compile(_softmax(4, 32), "cortex-m7", name="m")) == []
    res, _, _ = check_on_target(_softmax(4, 32), "cortex-m55", tmp_path)
    assert len(_reductions(res)) == 2  # max and sum


def test_tuning_space_of_a_row_reduction(tmp_path):
    """`dgc tune` / `--predict` see a row reduction as one: one row per tile, the whole row or
    chunks of whole vectors (not the register blocks of a matmul, whose lowering would take
    the rows apart); every candidate verifies, and the cost model keeps the whole row."""
    import random

    import dgc
    from dgc.predict import rank
    from dgc.tuning import candidates

    model = _softmax(6, 128)
    target = dgc.get_target("host")
    entry = _reductions(dgc.compile(model, target, name="m"))[0]
    space = candidates(entry, target, random.Random(0))
    lanes = target.vector_bits // 32
    assert {c["reduce"][-1] for c in space} == {0} | {lanes * k for k in (1, 2, 4, 8) if lanes * k < 128}
    assert all(c["tile"] == [1] * (len(c["tile"]) - 1) + [0] for c in space)
    assert rank(entry, space, target)[0] == 0  # the default: the whole row
    for c in space[1:]:
        check_on_target(model, "host", tmp_path, schedule=[{"key": entry["key"], **c}])
