"""What the C reference emitter and the benchmark read from an ONNX graph.

`Graph(model)` runs ONNX shape inference once and exposes every tensor's static shape,
the constant tensors (initializers and Constant nodes) as numpy arrays, the graph's
run-time inputs and outputs, and each node's attributes with their values.
`count_macs(model)` counts the multiply-accumulates of Conv, Gemm and MatMul.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator


class Graph:
    def __init__(self, model: onnx.ModelProto):
        self.model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
        g = self.model.graph
        self.opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for node in g.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(attrs(node)["value"])
        self.shapes = {name: a.shape for name, a in self.consts.items()}
        self.dtypes = {name: a.dtype for name, a in self.consts.items()}
        for vi in (*g.input, *g.value_info, *g.output):
            tt = vi.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
            if vi.name not in self.consts:
                self.shapes[vi.name] = tuple(dims)
                self.dtypes[vi.name] = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        self.inputs = [vi.name for vi in g.input if vi.name not in self.consts]
        self.outputs = [vi.name for vi in g.output]
        self.nodes = [n for n in g.node if n.op_type != "Constant" and not self._fold(n)]

    def _fold(self, node: onnx.NodeProto) -> bool:
        """Evaluate a node of constants (or a Shape of a static shape) now; True if done.
        Exporters compute shapes this way (Shape -> Gather -> Concat -> Reshape)."""
        if node.op_type == "Shape" and all(d >= 0 for d in self.shapes.get(node.input[0], (-1,))):
            a = attrs(node)
            value = np.array(self.shapes[node.input[0]][a.get("start", 0):a.get("end")], np.int64)
        elif len(node.output) == 1 and node.input and all(not t or t in self.consts for t in node.input):
            sub = helper.make_graph([node], "fold", [], [helper.make_tensor_value_info(o, 0, None)
                                                         for o in node.output])
            sub.initializer.extend(numpy_helper.from_array(self.consts[t], t) for t in node.input if t)
            model = helper.make_model(sub, opset_imports=self.model.opset_import)
            value = ReferenceEvaluator(model).run(None, {})[0]
        else:
            return False
        value = np.asarray(value)
        self.consts[node.output[0]] = value
        self.shapes[node.output[0]], self.dtypes[node.output[0]] = value.shape, value.dtype
        return True

    def shape(self, name: str) -> tuple[int, ...]:
        shape = self.shapes.get(name)
        if shape is None or any(d < 0 for d in shape):
            raise ValueError(f"tensor {name!r} has no static shape after shape inference")
        return tuple(int(d) for d in shape)

    def size(self, name: str) -> int:
        return int(np.prod(self.shape(name), dtype=np.int64))


def attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def count_macs(model: onnx.ModelProto) -> int:
    """Multiply-accumulates of the Conv, Gemm and MatMul nodes (one per weight use)."""
    from dgc.macs import model_macs

    return model_macs(model)
