"""A matmul probe for cost models: an MLP on 24 rows (x[24,64] @ W1 + b1 -> ReLU -> @ W2 -> @ W3),
so that matmuls have row blocks to choose (the zoo's dense models run one row: Cortex-M has
nothing to tune there but the vector width). `--rows R --dims D0,D1,D2,D3` sets its shapes.

    python3 bench/mlp_rows.py mlp24.onnx [--rows 24 --dims 64,96,64,48]
    dgc tune mlp24.onnx --target cortex-m7 --trials 60 --order seed --db mlp24.json
    python3 bench/predictor.py --target cortex-m7 mlp24.json --model both
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(rows: int = 24, dims: tuple[int, int, int, int] = (64, 96, 64, 48)) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    d0, d1, d2, d3 = dims

    def w(name, shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name)
    inits = [w("w1", (d0, d1)), w("b1", (d1,)), w("w2", (d1, d2)), w("w3", (d2, d3))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a"], name="mm1"),
             helper.make_node("Add", ["a", "b1"], ["b"], name="add1"),
             helper.make_node("Relu", ["b"], ["c"], name="relu1"),
             helper.make_node("MatMul", ["c", "w2"], ["d"], name="mm2"),
             helper.make_node("MatMul", ["d", "w3"], ["y"], name="mm3")]
    g = helper.make_graph(nodes, "mlp_rows", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, d0])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, d3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default="mlp24.onnx")
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--dims", default="64,96,64,48", help="D0,D1,D2,D3: x[rows,D0] @ [D0,D1] @ [D1,D2] @ [D2,D3]")
    args = ap.parse_args()
    dims = tuple(int(d) for d in args.dims.split(","))
    if len(dims) != 4:
        ap.error("--dims takes four sizes")
    onnx.save(build(args.rows, dims), args.out)
