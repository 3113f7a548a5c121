"""The ONNX backend node tests as a conformance suite.

Cases are regenerated in memory from the pinned `onnx` wheel's generators (the same data the
wheel's `backend-test-tools generate-data` writes). Inputs that an AOT compiler sees as constants
in real models -- attribute-like inputs (shape, axes, pads, starts/ends, k, repeats, scales...)
and quantization parameters -- are frozen from the test data into initializers; every other
input stays a run-time input. Each case is compiled with dgc, executed on a target, and every
test data set compared: floats with the test's own rtol/atol when it sets them, else rtol 1e-4 /
atol 1e-5; integers and bools exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import zlib
import os
import tempfile
import warnings

import numpy as np
import onnx
from onnx import numpy_helper

TIER1 = ("Relu Sigmoid Softmax Add Sub Mul Div Exp Cast ReduceMean ReduceSum ReduceMax ArgMax Reshape "
         "Transpose Squeeze Unsqueeze Concat Split Slice Shape ConstantOfShape Constant Identity Dropout "
         "Conv BatchNormalization MaxPool AveragePool GlobalAveragePool Pad Resize Clip LeakyRelu PRelu "
         "HardSigmoid HardSwish Flatten Gemm MatMul Tanh LayerNormalization Gelu Erf Pow Sqrt Gather Where "
         "Equal Expand QuantizeLinear DequantizeLinear QLinearConv QLinearMatMul").split()
TIER2 = ("LogSoftmax Log Neg Max Min TopK Tile ConvTranspose DepthToSpace SpaceToDepth Softplus ReduceL2 "
         "Einsum Sin Cos Greater And CumSum Range Trilu LSTM GRU MatMulInteger ConvInteger "
         "DynamicQuantizeLinear Floor Round").split()
CORE_OPS = frozenset(TIER1 + TIER2)

_REDUCE = ("ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceLogSum "
           "ReduceLogSumExp ReduceSumSquare").split()
# op -> input positions frozen into initializers (constants in any real model)
FREEZE = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4), "Pad": (1, 2, 3),
    "Resize": (1, 2, 3), "Upsample": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "TopK": (1,),
    "Split": (1,), "ConstantOfShape": (0,), "Range": (0, 1, 2), "OneHot": (1, 2), "CumSum": (1,),
    "Trilu": (1,), "Clip": (1, 2), "Dropout": (1, 2), "QuantizeLinear": (1, 2),
    "DequantizeLinear": (1, 2), "QLinearConv": (1, 2, 4, 5, 6, 7, 8), "QLinearMatMul": (1, 2, 4, 5, 6, 7),
    "MatMulInteger": (2, 3), "ConvInteger": (2, 3), "LSTM": (1, 2, 3, 4, 5, 6, 7), "GRU": (1, 2, 3, 4, 5),
    "RNN": (1, 2, 3, 4, 5), "NonMaxSuppression": (2, 3, 4), "CenterCropPad": (1,), "Col2Im": (1, 2),
    "BlackmanWindow": (0,), "HannWindow": (0,), "HammingWindow": (0,), "EyeLike": (),
    **{op: (1,) for op in _REDUCE},
}
_DEFAULT_TOL = (1e-3, 1e-7)  # onnx TestCase defaults: a test that keeps them sets no tolerance
TOL = (1e-4, 1e-5)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    op: str
    model: onnx.ModelProto
    data_sets: tuple
    rtol: float
    atol: float

    @property
    def expanded(self) -> bool:
        return "_expanded" in self.name


@dataclasses.dataclass
class Result:
    name: str
    op: str
    status: str  # pass | fail | unsupported | error
    detail: str = ""


@functools.cache
def all_cases() -> tuple[Case, ...]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = [c for c in collect_testcases() if c.kind == "node"]
    out = []
    for c in raw:
        op = c.model.graph.node[0].op_type if len(c.model.graph.node) == 1 else _op_from_name(c)
        tol = TOL if (c.rtol, c.atol) == _DEFAULT_TOL else (c.rtol, c.atol)
        sets = tuple((tuple(map(_array, ins)), tuple(map(_array, outs))) for ins, outs in c.data_sets)
        out.append(Case(c.name, op, c.model, sets, *tol))
    return tuple(out)


def _array(value):
    """Test data comes as numpy arrays or, for exotic dtypes, TensorProtos."""
    if isinstance(value, onnx.TensorProto):
        try:
            return numpy_helper.to_array(value)
        except Exception:
            return value
    return value


def _op_from_name(case) -> str:
    ops = [n.op_type for n in case.model.graph.node]
    for op in sorted(set(ops), key=len, reverse=True):
        if op.lower() in case.name.replace("_", "").lower():
            return op
    return ops[0] if ops else "?"


def core_cases(expanded: bool = False) -> list[Case]:
    """The 642 core single-op tests (or their `_expanded` function-body variants)."""
    if not expanded:
        return [c for c in all_cases() if not c.expanded and len(c.model.graph.node) == 1 and c.op in CORE_OPS]
    return [c for c in all_cases() if c.expanded and c.op in CORE_OPS]


def non_core_cases() -> list[Case]:
    core = {c.name for c in core_cases()} | {c.name for c in core_cases(True)}
    return [c for c in all_cases() if c.name not in core]


def freeze(case: Case, inputs: list) -> tuple[onnx.ModelProto, list[int]]:
    """Model with attribute-like inputs made initializers; returns it and the run-time input indices.

    Indices refer to the data inputs (graph inputs without an initializer, which is what test
    data feeds; old IR versions list initializers among the graph inputs too)."""
    model = onnx.ModelProto.FromString(case.model.SerializeToString())
    inits = {i.name for i in model.graph.initializer}
    data_inputs = [i.name for i in model.graph.input if i.name not in inits]
    frozen = set()
    for node in model.graph.node:
        for pos in FREEZE.get(node.op_type, ()):
            if pos < len(node.input) and node.input[pos] in data_inputs:
                frozen.add(data_inputs.index(node.input[pos]))
    for k in sorted(frozen):
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(inputs[k]), data_inputs[k]))
    if model.ir_version >= 4:  # newer IR: initializers need not be graph inputs
        frozen_names = {data_inputs[k] for k in frozen}
        kept = [vi for vi in model.graph.input if vi.name not in frozen_names]
        del model.graph.input[:]
        model.graph.input.extend(kept)
    return model, [k for k in range(len(data_inputs)) if k not in frozen]


def compare_outputs(case: Case, got: list, want: list) -> str:
    """'' when every output matches, else a one-line reason."""
    for k, (g, w) in enumerate(zip(got, want)):
        w = np.asarray(w)
        g = np.asarray(g).reshape(w.shape)
        if w.dtype.kind in "fc":
            if not np.allclose(g.astype(np.float64), w.astype(np.float64), rtol=case.rtol, atol=case.atol,
                               equal_nan=True):
                err = np.nanmax(np.abs(g.astype(np.float64) - w.astype(np.float64)))
                return f"output {k}: max abs err {err:.3g} (rtol {case.rtol:g}, atol {case.atol:g})"
        elif not np.array_equal(g, w):
            return f"output {k}: integer/bool values differ"
    return ""


def _classify(fn):
    """Run fn(); turn dgc errors and internal bugs into a failed Result instead of a crash."""
    from dgc.errors import DgcError, UnsupportedError

    def wrapped(case: Case, *args):
        try:
            return fn(case, *args)
        except UnsupportedError as e:
            return Result(case.name, case.op, "unsupported", e.line())
        except DgcError as e:
            return Result(case.name, case.op, "error", e.line())
        except Exception as e:  # an internal bug is a result too, not a crash of the suite
            msg = str(e).splitlines()[0][:200] if str(e) else ""
            return Result(case.name, case.op, "error", f"{type(e).__name__}: {msg}")
    return wrapped


@_classify
def build_case(case: Case, target, outdir: str, prefix: str):
    """Compile every data set of `case` into `outdir`; returns [(spec, obj, inputs, outputs)]."""
    import dgc

    built = []
    for n, (inputs, outputs) in enumerate(case.data_sets):
        model, keep = freeze(case, list(inputs))
        res = dgc.compile(model, target, name=f"{prefix}_{n}")
        obj = os.path.join(outdir, f"{res.name}.o")
        with open(obj, "wb") as f:
            f.write(res.object)
        built.append((res.spec, obj, [np.asarray(inputs[k]) for k in keep], list(outputs)))
    return built


@_classify
def execute(case: Case, built, target) -> Result:
    """Run the built data sets one by one and compare."""
    from dgc.runtime.runners import run_model

    for spec, obj, inputs, outputs in built:
        got = run_model(spec, obj, dgc_target(target), inputs, os.path.dirname(obj))
        why = compare_outputs(case, got, outputs)
        if why:
            return Result(case.name, case.op, "fail", why)
    return Result(case.name, case.op, "pass")


def dgc_target(target):
    from dgc.targets import Target, get_target

    return target if isinstance(target, Target) else get_target(target)


def run_case(case: Case, target="host") -> Result:
    """Compile and execute every data set of one case (in this process)."""
    with tempfile.TemporaryDirectory(prefix="dgc-conf-") as tmp:
        built = build_case(case, target, tmp, "t")
        return built if isinstance(built, Result) else execute(case, built, target)


def per_op_table(results: list[Result], markdown: bool = False) -> str:
    ops: dict[str, list[Result]] = {}
    for r in results:
        ops.setdefault(r.op, []).append(r)
    rows = [("op", "pass", "total", "failing tests")]
    for op in sorted(ops):
        rs = ops[op]
        bad = [r.name for r in rs if r.status != "pass"]
        rows.append((op, str(len(rs) - len(bad)), str(len(rs)), " ".join(bad)))
    total = sum(int(r[1]) for r in rows[1:]), sum(int(r[2]) for r in rows[1:])
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    else:
        lines = [f"{r[0]:<24} {r[1]:>5} {r[2]:>6}  {r[3]}" for r in rows]
    lines.append(f"TOTAL: {total[0]} / {total[1]} passed")
    return "\n".join(lines)


def run_cases(cases: list[Case], target="host", jobs: int = 2, progress=None, batch: int = 48) -> list[Result]:
    """Run cases in `jobs` worker processes. A case that kills its worker (an abort inside MLIR
    or LLVM) is reported as an error and the worker is restarted for the rest. On emulated
    targets the workers only compile, and `batch` cases are linked into one program per run."""
    if dgc_target(target).runner == "host":
        return _compile_in_workers(cases, target, jobs, progress, None)
    with tempfile.TemporaryDirectory(prefix="dgc-conf-build-") as build_dir:
        built = _compile_in_workers(cases, target, jobs, None, build_dir)
        return _run_batched(cases, built, target, batch, progress)


def _compile_in_workers(cases, target, jobs, progress, build_dir) -> list[Result]:
    import pickle
    import queue
    import threading

    fd, store = tempfile.mkstemp(prefix="dgc-cases-", suffix=".pkl")
    with os.fdopen(fd, "wb") as f:  # workers read cases from here instead of regenerating them
        pickle.dump({c.name: c for c in cases}, f)
    todo: "queue.Queue[list[Case]]" = queue.Queue()
    chunk = max(1, min(32, len(cases) // (4 * max(1, jobs)) or 1))
    for i in range(0, len(cases), chunk):
        todo.put(cases[i:i + chunk])
    results: dict[str, Result] = {}
    lock = threading.Lock()

    def work():
        while True:
            try:
                batch = todo.get_nowait()
            except queue.Empty:
                return
            for r in _run_in_worker(batch, target, store, build_dir):
                with lock:
                    results[r.name] = r
                    if progress:
                        progress(r)

    threads = [threading.Thread(target=work) for _ in range(max(1, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.unlink(store)
    return [results[c.name] for c in cases]


def _run_in_worker(batch: list[Case], target, store: str, build_dir: str | None) -> list[Result]:
    import json
    import subprocess
    import sys

    env = dict(os.environ, PYTHONHASHSEED="0")
    if build_dir:
        env["DGC_CONFORMANCE_BUILD_DIR"] = build_dir
    out, rest = [], list(batch)
    while rest:
        proc = subprocess.run([sys.executable, "-m", "dgc.conformance", target, store, *[c.name for c in rest]],
                              capture_output=True, text=True, env=env)
        done = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
        out += [Result(**d) for d in done]
        rest = rest[len(done):]
        if rest and proc.returncode != 0:  # the next case crashed the worker
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
            out.append(Result(rest[0].name, rest[0].op, "error", f"crashed the compiler process: {tail}"))
            rest = rest[1:]
        elif rest:
            break
    return out


def _run_batched(cases, built, target, batch, progress) -> list[Result]:
    """Link up to `batch` built cases into one program; a failing program is retried case by case."""
    from dgc.runtime.runners import run_models
    from dgc.spec import ModelSpec

    results, ready = {}, []
    for case, r in zip(cases, built):
        if r.status != "built":
            results[case.name] = r
            continue
        objs = [(ModelSpec.from_json(spec), obj) for spec, obj in json.loads(r.detail)]
        sets = []
        for (spec, obj), (inputs, outputs) in zip(objs, case.data_sets):
            _, keep = freeze(case, list(inputs))
            sets.append((spec, obj, [np.asarray(inputs[k]) for k in keep], list(outputs)))
        ready.append((case, sets))
    for i in range(0, len(ready), batch):
        group = ready[i:i + batch]
        flat = [s for _, sets in group for s in sets]
        try:
            outs = run_models([(s[0], s[1]) for s in flat], dgc_target(target), [s[2] for s in flat],
                              os.path.dirname(flat[0][1]) + f"/run{i}")
        except Exception:
            outs = None
        k = 0
        for case, sets in group:
            if outs is None:
                res = execute(case, sets, target)
            else:
                why = next((w for w in (compare_outputs(case, outs[k + j], s[3]) for j, s in enumerate(sets)) if w), "")
                res = Result(case.name, case.op, "fail" if why else "pass", why)
            k += len(sets)
            results[case.name] = res
            if progress:
                progress(res)
    return [results[c.name] for c in cases]


def _worker_main(argv: list[str]) -> None:
    import json
    import sys

    import pickle

    target, store, names = argv[0], argv[1], argv[2:]
    with open(store, "rb") as f:
        cases = pickle.load(f)
    build_dir = os.environ.get("DGC_CONFORMANCE_BUILD_DIR")
    for name in names:
        if build_dir:  # compile only; the parent links many cases into one firmware
            built = build_case(cases[name], target, build_dir, f"c{zlib.crc32(name.encode()):08x}")
            if not isinstance(built, Result):
                built = Result(name, cases[name].op, "built",
                               json.dumps([[spec.to_json(), obj] for spec, obj, _, _ in built]))
        else:
            built = run_case(cases[name], target)
        print(json.dumps(dataclasses.asdict(built)), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    import sys

    _worker_main(sys.argv[1:])


# ---- the onnx wheel's "light" model zoo (opset 9 CNNs with ConstantOfShape weights) ---------

def light_models() -> list[str]:
    d = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    return sorted(f[len("light_"):-len(".onnx")] for f in os.listdir(d) if f.endswith(".onnx"))


def light_case(name: str) -> Case:
    """The model, the input the onnx runner feeds it (arange/n) and the shipped reference."""
    d = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    model = onnx.load(os.path.join(d, f"light_{name}.onnx"))
    inits = {i.name for i in model.graph.initializer}
    inputs = []
    for vi in model.graph.input:
        if vi.name not in inits:
            shape = tuple(dim.dim_value or 1 for dim in vi.type.tensor_type.shape.dim)
            n = int(np.prod(shape))
            inputs.append((np.arange(n).reshape(shape) / n).astype(np.float32))
    ref = onnx.TensorProto()
    with open(os.path.join(d, f"light_{name}_output_0.pb"), "rb") as f:
        ref.ParseFromString(f.read())
    return Case(f"light_{name}", "model", model, ((tuple(inputs), (numpy_helper.to_array(ref),)),), 1e-3, 1e-5)
