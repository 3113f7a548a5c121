"""Protobuf-level mutation fuzzer over zoo models: `dgc compile` must never crash, print a
traceback or leave a partial output, whatever the model.

    python3 tests/fuzz_models.py --cases 10000 [--seed 0] [--target cortex-m7]

Each case takes a zoo model, applies 1-3 random structured mutations (op types, node inputs,
attributes, initializer dims/types/bytes, input dims and dtypes, opsets, deleted or duplicated
nodes) or flips raw bytes of the serialized model, and compiles it with the real CLI entry
point in this process (compiles run in a child process, see dgc.contain). Outcomes are counted
by exit code; a case fails when the exit code is not a documented error class (0, 2-6, 8),
when stderr holds more than one line or a traceback, or when a failed compile left files.
Deterministic for a seed. `tests/test_fuzz.py` runs 200 cases in the default suite.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import os
import shutil
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper

OK_CODES = {0, 2, 3, 4, 5, 6, 8}
_OPS = ["Relu", "Add", "Conv", "MaxPool", "Gemm", "Reshape", "Flatten", "Softmax", "Concat", "Transpose",
        "MatMul", "Sigmoid", "AveragePool", "BatchNormalization", "Pad", "Slice", "Identity", "Mul", "Clip"]
_DTYPES = [TensorProto.FLOAT, TensorProto.INT8, TensorProto.UINT8, TensorProto.INT64, TensorProto.DOUBLE,
           TensorProto.BOOL, TensorProto.FLOAT16, TensorProto.STRING, TensorProto.INT32]
BASE_MODELS = ("lenet5", "fc_autoencoder", "ds_cnn")


def _values(g):
    names = [i.name for i in g.input] + [i.name for i in g.initializer]
    for n in g.node:
        names.extend(n.output)
    return [v for v in names if v]


def mutate(model: onnx.ModelProto, rng: np.random.Generator) -> onnx.ModelProto | bytes:
    m = onnx.ModelProto.FromString(model.SerializeToString())
    g = m.graph
    if rng.random() < 0.15:  # raw byte flips
        data = bytearray(m.SerializeToString())
        for _ in range(int(rng.integers(1, 20))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        return bytes(data)
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 10))
        node = g.node[int(rng.integers(0, len(g.node)))] if len(g.node) else None
        if kind == 0 and node is not None:
            node.op_type = str(rng.choice(_OPS))
        elif kind == 1 and node is not None and node.input:
            vals = _values(g)
            node.input[int(rng.integers(0, len(node.input)))] = str(rng.choice(vals + ["", "ghost"]))
        elif kind == 2 and node is not None and node.attribute:
            a = node.attribute[int(rng.integers(0, len(node.attribute)))]
            if a.type == onnx.AttributeProto.INTS and a.ints:
                a.ints[int(rng.integers(0, len(a.ints)))] = int(rng.choice([-3, -1, 0, 1, 2, 7, 1 << 20]))
            elif a.type == onnx.AttributeProto.INT:
                a.i = int(rng.choice([-3, -1, 0, 1, 2, 7, 1 << 20]))
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = float(rng.choice([-1e30, 0.0, float("nan"), 3.5]))
        elif kind == 3 and g.initializer:
            t = g.initializer[int(rng.integers(0, len(g.initializer)))]
            if t.dims and rng.random() < 0.5:
                t.dims[int(rng.integers(0, len(t.dims)))] = int(rng.choice([0, 1, 3, -2, 1 << 33]))
            else:
                t.data_type = int(rng.choice(_DTYPES))
        elif kind == 4 and g.initializer:
            t = g.initializer[int(rng.integers(0, len(g.initializer)))]
            if t.raw_data:
                cut = int(rng.integers(0, len(t.raw_data)))
                t.raw_data = t.raw_data[:cut]
        elif kind == 5 and g.input:
            dims = g.input[0].type.tensor_type.shape.dim
            if dims:
                d = dims[int(rng.integers(0, len(dims)))]
                choice = rng.choice(["0", "-1", "huge", "sym", "7"])
                d.Clear()
                if choice == "sym":
                    d.dim_param = "n"
                else:
                    d.dim_value = {"0": 0, "-1": -1, "huge": 1 << 40, "7": 7}[str(choice)]
        elif kind == 6 and g.input:
            g.input[0].type.tensor_type.elem_type = int(rng.choice(_DTYPES))
        elif kind == 7 and m.opset_import:
            m.opset_import[0].version = int(rng.choice([1, 6, 9, 11, 13, 18, 21, 30]))
        elif kind == 8 and len(g.node) > 1:
            del g.node[int(rng.integers(0, len(g.node)))]
        elif kind == 9 and node is not None:
            g.node.append(onnx.NodeProto.FromString(node.SerializeToString()))
    return m


def run_case(data: bytes, workdir: str, target: str) -> tuple[int, str, list[str]]:
    """(exit code, stderr, files left in the output directory)."""
    from dgc import cli

    path = os.path.join(workdir, "m.onnx")
    out = os.path.join(workdir, "out")
    shutil.rmtree(out, ignore_errors=True)
    with open(path, "wb") as f:
        f.write(data)
    err, sink = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(sink):
        try:
            cli.main(["compile", path, "--target", target, "-o", out])
        except SystemExit as e:
            code = e.code or 0
    left = os.listdir(out) if os.path.isdir(out) else []
    return int(code), err.getvalue(), left


def problem(code: int, err: str, left: list[str]) -> str | None:
    if code not in OK_CODES:
        return f"exit code {code}: {err.strip()[:300]}"
    if "Traceback" in err or len(err.strip().splitlines()) > 1:
        return f"not one line: {err[:300]}"
    if code != 0 and left:
        return f"failed compile left {left}"
    return None


def fuzz(cases: int, seed: int = 0, target: str = "cortex-m7", progress: bool = False):
    from dgc.zoo import build

    bases = [build(n) for n in BASE_MODELS]
    for b in bases:
        b.ir_version = 8
    rng = np.random.default_rng(seed)
    counts, problems = collections.Counter(), []
    with tempfile.TemporaryDirectory(prefix="dgc-fuzz-") as wd:
        for i in range(cases):
            base = bases[i % len(bases)]
            m = mutate(base, rng)
            data = m if isinstance(m, bytes) else m.SerializeToString()
            code, err, left = run_case(data, wd, target)
            counts[code] += 1
            p = problem(code, err, left)
            if p:
                problems.append((i, p))
                with open(os.path.join(os.getcwd(), f"fuzz-failure-{seed}-{i}.onnx"), "wb") as f:
                    f.write(data)
            if progress and (i + 1) % 100 == 0:
                print(f"{i + 1}/{cases}: {dict(counts)}, problems {len(problems)}", file=sys.__stderr__, flush=True)
    return counts, problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", default="cortex-m7")
    a = ap.parse_args()
    counts, problems = fuzz(a.cases, a.seed, a.target, progress=True)
    print(f"cases {a.cases}, exit codes {dict(sorted(counts.items()))}, problems {len(problems)}")
    for i, p in problems[:50]:
        print(f"  case {i}: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
