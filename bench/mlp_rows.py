"""A matmul probe for cost models: an MLP on 24 rows (x[24,64] @ W1 + b1 -> ReLU -> @ W2 -> @ W3),
so that matmuls have row blocks to choose (the zoo's dense models run one row: Cortex-M has
nothing to tune there but the vector width).

    python3 bench/mlp_rows.py mlp24.onnx
    dgc tune mlp24.onnx --target cortex-m7 --trials 60 --order seed --db mlp24.json
    python3 bench/predictor.py --target cortex-m7 mlp24.json --model both
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(rows: int = 24) -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def w(name, shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name)
    inits = [w("w1", (64, 96)), w("b1", (96,)), w("w2", (96, 64)), w("w3", (64, 48))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a"], name="mm1"),
             helper.make_node("Add", ["a", "b1"], ["b"], name="add1"),
             helper.make_node("Relu", ["b"], ["c"], name="relu1"),
             helper.make_node("MatMul", ["c", "w2"], ["d"], name="mm2"),
             helper.make_node("MatMul", ["d", "w3"], ["y"], name="mm3")]
    g = helper.make_graph(nodes, "mlp_rows", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, 48])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


if __name__ == "__main__":
    onnx.save(build(), sys.argv[1] if len(sys.argv) > 1 else "mlp24.onnx")
