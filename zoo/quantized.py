"""QDQ (int8) versions of zoo models, made with `dgc.quantize` (onnxruntime.quantization).

    >>> from dgc.zoo import quantized
    >>> qmodel = quantized.qdq("ds_cnn")

Static post-training quantization as a user would run it (`dgc quantize`): BatchNorm folded
into the convs, per-channel symmetric int8 weights and per-tensor int8 activations, calibrated
by min/max on `samples` fixed-seed random inputs. The same name and seed give the same model.
"""

from __future__ import annotations

import onnx

from . import build, random_inputs

CALIBRATION_SEED = 1000  # calibration inputs use seeds 1000, 1001, ...; tests use small seeds


def qdq(name: str, samples: int = 16, fmt: str = "qdq") -> onnx.ModelProto:
    """Zoo model `name` quantized to QDQ int8 (needs onnxruntime)."""
    from dgc.quantize import quantize

    model = build(name)
    return quantize(model, [random_inputs(model, seed=CALIBRATION_SEED + i) for i in range(samples)], fmt=fmt)


def qoperator(name: str, samples: int = 16) -> onnx.ModelProto:
    """The same quantization in QOperator format: QLinearConv, QLinearMatMul/QGemm and
    onnxruntime's com.microsoft QLinearAdd, QLinearAveragePool, ... instead of QDQ pairs."""
    return qdq(name, samples, fmt="qoperator")
