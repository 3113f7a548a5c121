"""Output types of the com.microsoft quantized ops, which ONNX shape inference does not know.

onnxruntime's quantizer writes them (QOperator format: QLinearAdd, QLinearAveragePool, QGemm,
...) and dgc's QDQ fusion makes some of them. Where a model does not declare their output types,
`declare_outputs` adds value_info for them, taking shapes from the standard op that computes
the same shape (e.g. AveragePool for QLinearAveragePool) so ONNX's own rules apply.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, shape_inference

DOMAIN = "com.microsoft"


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _nchw(shape, channels_last: bool):
    return (shape[0], shape[-1], *shape[1:-1]) if channels_last else tuple(shape)


def _back(shape, channels_last: bool):
    return (shape[0], *shape[2:], shape[1]) if channels_last else tuple(shape)


def _proxy(op: str, shape, attrs: dict):
    """The output shape ONNX infers for `op` on a float input of `shape`."""
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "proxy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    out = shape_inference.infer_shapes(model, strict_mode=True).graph.output[0]
    return tuple(d.dim_value for d in out.type.tensor_type.shape.dim)


def _first(shapes, dtypes, node):
    return shapes[node.input[0]], dtypes[node.input[0]]


def _avg_pool(shapes, dtypes, node):
    x, dt = _first(shapes, dtypes, node)
    a = _attrs(node)
    last = bool(a.pop("channels_last", 0))
    return _back(_proxy("AveragePool", _nchw(x, last), a), last), dt


def _global_pool(shapes, dtypes, node):
    x, dt = _first(shapes, dtypes, node)
    last = bool(_attrs(node).get("channels_last", 0))
    n, c = _nchw(x, last)[:2]
    return _back((n, c) + (1,) * (len(x) - 2), last), dt


def _binary(shapes, dtypes, node):
    return tuple(np.broadcast_shapes(shapes[node.input[0]], shapes[node.input[3]])), dtypes[node.input[0]]


def _qgemm(shapes, dtypes, node):
    a, b = shapes[node.input[0]], shapes[node.input[3]]
    at = _attrs(node)
    m = a[1] if at.get("transA", 0) else a[0]
    n = b[0] if at.get("transB", 0) else b[1]
    has_y = len(node.input) > 7 and node.input[7]
    zp = node.input[8] if len(node.input) > 8 and node.input[8] else ""
    dt = dtypes.get(zp, dtypes[node.input[0]]) if has_y else np.dtype(np.float32)
    return (m, n), dt


def _concat(shapes, dtypes, node):
    parts = [shapes[node.input[i]] for i in range(2, len(node.input), 3)]
    axis = _attrs(node)["axis"] % len(parts[0])
    out = list(parts[0])
    out[axis] = sum(p[axis] for p in parts)
    return tuple(out), dtypes[node.input[2]]


_RULES = {
    "QLinearAveragePool": _avg_pool,
    "QLinearGlobalAveragePool": _global_pool,
    "QLinearAdd": _binary,
    "QLinearMul": _binary,
    "QGemm": _qgemm,
    "QLinearSoftmax": _first,
    "QLinearLeakyRelu": _first,
    "QLinearSigmoid": _first,
    "QLinearConcat": _concat,
}


def declare_outputs(model: onnx.ModelProto, shapes: dict, dtypes: dict) -> bool:
    """Add value_info for com.microsoft outputs without a declared type whose inputs are known;
    True when anything was added (inference should run again for what follows them)."""
    added = False
    for node in model.graph.node:
        rule = _RULES.get(node.op_type) if node.domain == DOMAIN else None
        out = node.output[0] if node.output else ""
        if rule is None or not out or (out in shapes and out in dtypes):
            continue
        try:
            shape, dt = rule(shapes, dtypes, node)
        except (KeyError, IndexError, onnx.shape_inference.InferenceError, ValueError):
            continue  # inputs not known yet (or malformed: the lowering reports it)
        model.graph.value_info.append(helper.make_tensor_value_info(
            out, helper.np_dtype_to_tensor_dtype(np.dtype(dt)), list(shape)))
        shapes[out], dtypes[out] = tuple(shape), np.dtype(dt)
        added = True
    return added
