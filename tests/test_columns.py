"""The `columns` stage: float matmuls with constant weights whose columns are not whole vectors
compute on zero-padded weights and read the first N columns (passes/columns.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import dgc
from conftest import check_on_target
from dgc.passes.columns import padded
from dgc.targets import get_target


def _gemm(m, k, n, relu=True):
    """Gemm (transB, bias) [-> Relu]: an FC layer as exported by PyTorch."""
    rng = np.random.default_rng(n)
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1, name="fc")]
    if relu:
        nodes.append(helper.make_node("Relu", ["g"], ["y"], name="act"))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                          [helper.make_tensor_value_info("y" if relu else "g", TensorProto.FLOAT, [m, n])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _fc(res) -> dict:
    return next(e for e in json.loads(res.schedule)["ops"] if e["key"] == "fc")


def test_padded_columns():
    assert padded(120, 16) == 128 and padded(1000, 16) == 1024  # 8 registers, waste <= n/8
    assert padded(84, 16) == 96  # 128 would waste more than 84/8: whole vectors only
    assert padded(17, 16) == 32 and padded(10, 4) == 12
    assert padded(10, 16) == 10 and padded(128, 16) == 128 and padded(96, 4) == 96  # one vector / whole already


@pytest.mark.parametrize("target,m,k,n", [("host", 1, 400, 120), ("host", 6, 40, 84), ("host", 1, 32, 17),
                                          ("aarch64", 1, 84, 10), ("armv7a", 3, 20, 6)])
def test_padded_matmuls_match_onnxruntime(target, m, k, n, tmp_path):
    """The padded product's first n columns, with the bias and the activation after them, match
    onnxruntime; the matmul runs on whole vectors (a block of whole registers)."""
    lanes = get_target(target).vector_bits // 32
    res, got, _ = check_on_target(_gemm(m, k, n), target, tmp_path)
    fc = _fc(res)
    wide = padded(n, lanes)
    # host: 120 columns are whole AVX2 vectors (8 lanes) but not whole AVX-512 ones (16)
    assert (wide > n or target == "host") and fc["loops"][-2] == wide, fc
    assert fc["tile"][-2] % lanes == 0, fc
    assert got[0].shape == (m, n)


def test_padded_product_as_the_graph_output(tmp_path):
    """No consumer: the first n columns go straight to the caller's output buffer."""
    res, got, _ = check_on_target(_gemm(5, 24, 20, relu=False), "host", tmp_path)
    assert _fc(res)["loops"][-2] == padded(20, get_target("host").vector_bits // 32) > 20
    assert got[0].shape == (5, 20)


def test_bare_metal_weights_stay_as_they_are(tmp_path):
    """Flash counts on microcontrollers: no padding there (Cortex-M55 has 4-lane vectors)."""
    res = dgc.compile(_gemm(1, 40, 10), "cortex-m55", name="m")
    assert _fc(res)["loops"][-2] == 10


def test_matmuls_with_transposed_weights_are_left_alone():
    """Only the default maps (N the weights' last dim) are padded; a matmul whose maps read B
    transposed ([N, K]) is not."""
    from dgc.ir import ir, ops_named
    from dgc.passes.columns import _columns_last

    text = """func.func @f(%a: tensor<4x8xf32>, %b: tensor<MAPS_B>, %c: tensor<4x20xf32>) -> tensor<4x20xf32> {
      %r = linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (BMAP)>,
                                          affine_map<(d0, d1, d2) -> (d0, d1)>]
           ins(%a, %b : tensor<4x8xf32>, tensor<MAPS_B>) outs(%c : tensor<4x20xf32>) -> tensor<4x20xf32>
      return %r : tensor<4x20xf32>
    }"""
    with ir.Context():
        for shape, bmap, want in (("8x20xf32", "d2, d1", True), ("20x8xf32", "d1, d2", False)):
            m = ir.Module.parse(text.replace("MAPS_B", shape).replace("BMAP", bmap))
            (op,) = ops_named(m.operation, {"linalg.matmul"})
            assert _columns_last(op) is want
