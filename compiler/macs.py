"""Multiply-accumulates of an ONNX node: one per weight use of the convolutions and matrix
products (float and quantized forms); 0 for every other op.

`node_macs(node, shapes)` takes static shapes by tensor name (`shapes_of(model)` after shape
inference); `model_macs(model)` sums a model.
"""

from __future__ import annotations

import math

import onnx
from onnx import helper, shape_inference

# op -> (input index of the activation, of the weight)
_CONV = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3)}
_MATMUL = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}
_GEMM = {"Gemm": (0, 1), "QGemm": (0, 3)}


def shapes_of(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    g = model.graph
    out = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
           for vi in (*g.input, *g.value_info, *g.output)}
    out.update({t.name: tuple(t.dims) for t in g.initializer})
    return out


def node_macs(node: onnx.NodeProto, shapes: dict) -> int:
    op = node.op_type
    out = shapes.get(node.output[0]) if node.output else None
    if out is None:
        return 0
    if op in _CONV:  # per output element: C/group x kernel (the weight is M x C/group x k...)
        return math.prod(out) * math.prod(shapes[node.input[_CONV[op][1]]][1:])
    if op == "ConvTranspose":  # per input element: M/group x kernel (weight C x M/group x k...)
        return math.prod(shapes[node.input[0]]) * math.prod(shapes[node.input[1]][1:])
    if op in _MATMUL:  # the output carries the broadcast batch dimensions
        return math.prod(out) * shapes[node.input[_MATMUL[op][0]]][-1]
    if op in _GEMM:
        a = shapes[node.input[_GEMM[op][0]]]
        trans_a = any(at.name == "transA" and helper.get_attribute_value(at) for at in node.attribute)
        return math.prod(out) * (a[0] if trans_a else a[-1])
    return 0


def model_macs(model: onnx.ModelProto) -> int:
    model = shape_inference.infer_shapes(model, data_prop=True)
    s = shapes_of(model)
    return sum(node_macs(n, s) for n in model.graph.node)
