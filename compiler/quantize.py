"""Static post-training quantization to int8 QDQ (`dgc quantize`, `dgc compile --quantize int8`).

The calibration math is onnxruntime.quantization's (a well-kept library whose QDQ output is
the standard format other tools read): `quant_pre_process` folds BatchNorm and infers shapes,
then `quantize_static` writes QDQ with per-channel symmetric int8 weights and per-tensor
activations, calibrated by min/max, percentile or entropy over the caller's samples.

    >>> from dgc.quantize import quantize, read_calibration
    >>> q = quantize(model, read_calibration("samples.npz", model))

A calibration file is a NumPy .npz with one array per model input, named like the input. An
array with one more axis than the input holds one sample per row of its first axis; an array
of the input's rank whose first axis differs from a fixed first dimension of 1 is split into
batch-1 samples; otherwise it is one sample.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import onnx
from onnx import helper

from .errors import ModelError, UsageError

METHODS = ("minmax", "percentile", "entropy")
TYPES = ("int8", "uint8")
FORMATS = ("qdq", "qoperator")


def _dims(vi) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in vi.type.tensor_type.shape.dim]


def _graph_inputs(model: onnx.ModelProto):
    inits = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def _samples_of(arr: np.ndarray, dims: list, name: str, where: str) -> list[np.ndarray]:
    rank = len(dims)
    if arr.ndim == rank + 1:
        rows = list(arr)
    elif arr.ndim == rank and rank and dims[0] == 1 and arr.shape[0] != 1:
        rows = [arr[i:i + 1] for i in range(arr.shape[0])]
    elif arr.ndim == rank:
        rows = [arr]
    else:
        raise UsageError(f"calibration array '{name}' has rank {arr.ndim}, input has rank {rank}",
                         where=where, hint=f"give shape {['N'] + [d or '?' for d in dims]} (N samples)")
    for r in rows[:1]:
        bad = [i for i, (a, d) in enumerate(zip(r.shape, dims)) if d is not None and a != d]
        if bad:
            raise UsageError(f"calibration sample of '{name}' has shape {list(r.shape)}, the input wants "
                             f"{[d if d is not None else '?' for d in dims]}", where=where,
                             hint="store samples along a new first axis")
    return rows


def read_calibration(path: str, model: onnx.ModelProto, limit: int | None = None) -> list[dict]:
    """Calibration samples from an .npz: a list of {input name: array} feeds."""
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read calibration file: {err}", where=path,
                         hint="pass a NumPy .npz with one array per model input (np.savez)") from None
    with npz:
        per_input = {}
        for vi in _graph_inputs(model):
            if vi.name not in npz.files:
                raise UsageError(f"calibration file has no array named '{vi.name}'", where=path,
                                 hint="arrays: " + (", ".join(npz.files) or "none")
                                 + f"; model inputs: {', '.join(v.name for v in _graph_inputs(model))}")
            dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
            per_input[vi.name] = [s.astype(dtype) for s in _samples_of(npz[vi.name], _dims(vi), vi.name, path)]
    counts = {len(v) for v in per_input.values()}
    if len(counts) > 1:
        raise UsageError("calibration arrays hold different numbers of samples", where=path,
                         hint="give every input the same number of samples")
    n = counts.pop() if counts else 0
    if n == 0:
        raise UsageError("calibration file holds no samples", where=path)
    n = min(n, limit) if limit else n
    return [{k: v[i] for k, v in per_input.items()} for i in range(n)]


def quantize(model: onnx.ModelProto, samples: list[dict], method: str = "minmax",
             activations: str = "int8", percentile: float = 99.999, fmt: str = "qdq") -> onnx.ModelProto:
    """`model` quantized to int8 with static calibration on `samples` (feeds dicts): in QDQ
    format (QuantizeLinear/DequantizeLinear around float ops, the default) or QOperator format
    (`fmt="qoperator"`: QLinearConv, QLinearMatMul and onnxruntime's com.microsoft QLinearAdd,
    QLinearAveragePool, ... ops)."""
    if method not in METHODS:
        raise UsageError(f"unknown calibration method '{method}'", hint="choose from " + ", ".join(METHODS))
    if fmt not in FORMATS:
        raise UsageError(f"unknown quantization format '{fmt}'", hint="choose from " + ", ".join(FORMATS))
    if activations not in TYPES:
        raise UsageError(f"unknown activation type '{activations}'", hint="choose from " + ", ".join(TYPES))
    try:
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                              QuantType, quantize_static)
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise UsageError("quantization needs onnxruntime", hint="pip install 'dgc[quantize]'") from None

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(samples)

        def get_next(self):
            return next(self.feeds, None)

    calib = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
             "entropy": CalibrationMethod.Entropy}[method]
    act = QuantType.QInt8 if activations == "int8" else QuantType.QUInt8
    model = onnx.ModelProto.FromString(model.SerializeToString())
    # the newest IR version its opsets allow, which older onnxruntime releases still load
    model.ir_version = min(model.ir_version, helper.find_min_ir_version_for(list(model.opset_import), True))
    with tempfile.TemporaryDirectory(prefix="dgc-quant-") as d:
        src, pre, out = (os.path.join(d, f) for f in ("float.onnx", "pre.onnx", "qdq.onnx"))
        onnx.save(model, src)
        try:
            quant_pre_process(src, pre, skip_symbolic_shape=True)
            fmt_ = QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator
            quantize_static(pre, out, _Reader(), quant_format=fmt_, per_channel=True, activation_type=act, weight_type=QuantType.QInt8, calibrate_method=calib,
                            extra_options={"CalibPercentile": percentile})
        except Exception as err:  # onnxruntime reports bad models and feeds in its own types
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ModelError(f"onnxruntime quantization failed: {first[:300]}",
                             hint="check that the float model runs in onnxruntime with these samples") from None
        return onnx.load(out)
