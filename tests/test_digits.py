"""Post-training quantization on real data: the digits CNN (scikit-learn's 1797 8x8 images),
quantized with `dgc quantize`, keeps its held-out top-1 accuracy within one point of fp32,
both measured by running dgc's compiled code."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest

import dgc
from dgc.quantize import quantize
from conftest import run_model

pytest.importorskip("sklearn", reason="the digits dataset ships with scikit-learn (pip install 'dgc[test]')")
from dgc.zoo import digits  # noqa: E402


def _accuracy(model, x, y, target, tmp_path, tag) -> float:
    res = dgc.compile(model, target, name=tag, input_shapes={"image": x.shape})
    obj = tmp_path / f"{tag}.o"
    obj.write_bytes(res.object)
    (logits,) = run_model(res.spec, str(obj), res.target, [x], str(tmp_path))
    return float((np.asarray(logits).argmax(1) == y).mean())


def test_dgc_quantize_keeps_digits_accuracy(tmp_path):
    (x_train, _), (x_test, y_test) = digits.split()
    calib = tmp_path / "calib.npz"
    np.savez(calib, image=x_train[:256, None])  # 256 samples of shape [1, 1, 8, 8]
    q_path = tmp_path / "digits.int8.onnx"
    r = subprocess.run([sys.executable, "-m", "dgc", "quantize", digits.PATH, "--calibration", calib,
                        "-o", q_path], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    qmodel = onnx.load(q_path)
    ops = [n.op_type for n in qmodel.graph.node]
    assert ops.count("QuantizeLinear") >= 5 and "Conv" in ops, ops  # QDQ around every layer

    fp32 = _accuracy(digits.model(), x_test, y_test, "host", tmp_path, "f32")
    int8 = _accuracy(qmodel, x_test, y_test, "host", tmp_path, "i8")
    print(f"digits held-out top-1 ({len(y_test)} images): fp32 {fp32:.4f}, int8 {int8:.4f}")
    assert fp32 >= 0.95
    assert abs(fp32 - int8) <= 0.01


def test_digits_int8_on_cortex_m0plus(tmp_path):
    """The same quantized model, integer-only, on a core without an FPU: same top-1 as on host."""
    (x_train, _), (x_test, y_test) = digits.split()
    qmodel = quantize(digits.model(), [{"image": x_train[i:i + 1]} for i in range(64)])
    x, y = x_test[:40], y_test[:40]
    host = _accuracy(qmodel, x, y, "host", tmp_path, "h")
    m0 = _accuracy(qmodel, x, y, "cortex-m0plus", tmp_path, "m0")
    assert host == m0 and host >= 0.9
