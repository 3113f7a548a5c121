"""QDQ (int8) versions of zoo models, made with onnxruntime.quantization.

    >>> from dgc.zoo import quantized
    >>> qmodel = quantized.qdq("ds_cnn")

Static post-training quantization as a user would run it: `quant_pre_process` (BatchNorm
folded into the convs, shapes inferred), then `quantize_static` in QDQ format with per-channel
symmetric int8 weights and per-tensor int8 activations, calibrated by min/max on `samples`
fixed-seed random inputs. The same name and seed give the same model.
"""

from __future__ import annotations

import os
import tempfile

import onnx

from . import build, random_inputs

CALIBRATION_SEED = 1000  # calibration inputs use seeds 1000, 1001, ...; tests use small seeds


def qdq(name: str, samples: int = 16) -> onnx.ModelProto:
    """Zoo model `name` quantized to QDQ int8 (needs onnxruntime)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = build(name)

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(random_inputs(model, seed=CALIBRATION_SEED + i) for i in range(samples))

        def get_next(self):
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as d:
        src, pre, out = (os.path.join(d, f) for f in ("float.onnx", "pre.onnx", "qdq.onnx"))
        onnx.save(model, src)
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        quantize_static(pre, out, _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        return onnx.load(out)
