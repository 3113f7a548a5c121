"""x86 performance of dgc-compiled zoo models against onnxruntime, on this machine, in one run.

    python3 bench/x86.py [--models lenet5,resnet18] [--convs mobilenet_v2,resnet18]
                         [--runs 50] [--warmup 5] [--json out.json]

Method. Each model is compiled with `dgc.compile(proto, "host")` (wall clock = "compile s"),
linked into a shared library and called through ctypes as `<name>_run(inputs..., outputs...,
arena)` with a 64-byte aligned arena; the argument list is built once, outside the timed loop.
The reference is an onnxruntime session with one intra-op and one inter-op thread, sequential
execution and ORT_ENABLE_ALL, fed through an IO binding with preallocated outputs (its
cheapest call path). After one checked call each (max abs error <= 1e-4 * max(1, max|ref|),
column "ok") and a warm-up, dgc and ORT run alternately in this process, each call timed with
`time.perf_counter_ns`; the table shows the medians and their ratio (lower is better for dgc).

FLOPs are 2 x the multiply-accumulates of Conv (grouped and depthwise too), ConvTranspose,
Gemm and MatMul (batched), with shapes from `onnx.shape_inference`; elementwise ops,
normalizations, pooling and softmax are not counted, so GFLOP/s understates work done on
models dominated by them. The peak is this core's single-thread float peak, measured twice
in the same run: the FMA throughput of bench/fma_peak.c (independent chains of the widest
vector multiply-add: the ceiling no kernel passes) and the SGEMM rate of numpy's BLAS
(limited to one thread by the environment set below, before numpy is imported) on
1024x1024 float32; each is sampled at start-up and after every benchmark, its best sample
counts, and "% peak" divides by the higher of the two. Progress goes to stderr, the report
to stdout once everything is measured.

Convolutions (`--convs`; by default for mobilenet_v2 and resnet18 when they are benchmarked):
every Conv node of a model becomes its own small ONNX model (same weights, bias,
attributes; input shape from shape inference), compiled and timed like a model. Its inputs
and outputs are channels-last: Transpose(NHWC -> NCHW) -> Conv -> Transpose(NCHW -> NHWC).
Inside a whole model dgc keeps activations channels-last and never transposes between convs;
this form lets it fold both transposes into the conv, so the time is the conv's own (the
transposes of an NCHW model's inputs and outputs are paid once per model, not per conv).
ORT runs the same model (its NCHWc reorders absorb the transposes; measured no slower for it
than the plain NCHW conv). Identical configurations (shapes and attributes) are compiled and
timed once and weighted by their count. Conv GFLOP/s = total conv FLOPs / total conv time,
for dgc and ORT. Giving `--convs` without `--models` benchmarks the convolutions only.

Exit status 1 when any dgc output differs from onnxruntime or a compile fails.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # before anything imports numpy: its BLAS reads these once
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse
import ctypes
import dataclasses
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, shape_inference

import dgc
from dgc import zoo
from dgc.errors import DgcError
from dgc.macs import model_macs, shapes_of
from dgc.measure import LoadedModel
from dgc.runtime.runners import _link_shared
from dgc.verifier import compare

TINY = ("lenet5", "ds_cnn", "resnet8", "mobilenet_v1_025", "fc_autoencoder")  # geomean set
CONV_MODELS = ("mobilenet_v2", "resnet18")


# ---- FLOPs ------------------------------------------------------------------------------

def model_flops(model: onnx.ModelProto) -> int:
    """2 x multiply-accumulates of the Conv, ConvTranspose, Gemm and MatMul nodes."""
    return 2 * model_macs(model)


# ---- the two runners --------------------------------------------------------------------

class DgcModel(LoadedModel):
    """A compiled model in a shared library; calling it is one ctypes call, no allocation."""

    def __init__(self, res, inputs: list[np.ndarray], workdir: str):
        obj = os.path.join(workdir, f"{res.name}.o")
        with open(obj, "wb") as f:
            f.write(res.object)
        super().__init__(_link_shared([(res.spec, obj)], res.target, workdir, 600), res.spec, inputs)


def _for_ort(model: onnx.ModelProto) -> bytes:
    """onnxruntime rejects IR versions newer than it knows: use the opsets' minimum."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.ir_version = min(m.ir_version, helper.find_min_ir_version_for(list(m.opset_import),
                                                                        ignore_unknown=True))
    return m.SerializeToString()


class OrtModel:
    """A single-threaded onnxruntime session bound once to fixed input and output buffers."""

    def __init__(self, model: onnx.ModelProto, spec, inputs: list[np.ndarray]):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        self.sess = ort.InferenceSession(_for_ort(model), opts, providers=["CPUExecutionProvider"])
        self.binding = self.sess.io_binding()
        for t, x in zip(spec.inputs, inputs):
            self.binding.bind_cpu_input(t.name, x)
        self.outputs = [np.zeros(t.shape, dtype=t.dtype) for t in spec.outputs]
        for t, y in zip(spec.outputs, self.outputs):
            self.binding.bind_output(t.name, "cpu", 0, y.dtype, y.shape, y.ctypes.data)

    def __call__(self) -> None:
        self.sess.run_with_iobinding(self.binding)


# ---- measuring --------------------------------------------------------------------------

class Peak:
    """This core's single-thread float peak, measured two ways in the same run.

    FMA: bench/fma_peak.c (independent chains of the widest vector multiply-add, nothing else
    in the loop) - the rate the core's FMA pipes reach at their current clock, which no
    kernel can exceed. SGEMM: numpy's BLAS on 1024x1024 float32 - what a tuned library
    reaches on a large GEMM. Both are sampled at start-up and after every benchmark; the
    best sample of each counts, because a sample taken while other processes compete for
    the core can only understate it. `best`, the peak that "% peak" divides by, is the
    higher of the two (in practice the FMA figure).
    """

    def __init__(self, workdir: str, avx512: bool, n: int = 1024):
        rng = np.random.default_rng(0)
        self.a, self.b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
        self.c = np.empty_like(self.a)
        self.flop, self.sgemm, self.fma = 2 * n**3, 0.0, 0.0
        width, chains = (64, 12) if avx512 else (32, 10)   # 32 zmm or 16 ymm registers
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fma_peak.c")
        lib = os.path.join(workdir, "fma_peak.so")
        subprocess.run(["cc", "-O2", "-march=native", "-ffp-contract=fast", f"-DW={width}",
                        f"-DNACC={chains}", "-shared", "-fPIC", "-o", lib, src], check=True)
        self._fma = ctypes.CDLL(lib).dgc_fma_peak
        self._fma.restype, self._fma.argtypes = ctypes.c_double, [ctypes.c_long]
        self.sample(reps=10)

    @property
    def best(self) -> float:
        return max(self.sgemm, self.fma)

    def sample(self, reps: int = 3) -> None:
        for _ in range(reps):
            t0 = time.perf_counter_ns()
            np.matmul(self.a, self.b, out=self.c)
            self.sgemm = max(self.sgemm, self.flop / (time.perf_counter_ns() - t0))
            self.fma = max(self.fma, self._fma(2_000_000) / 1e9)


@dataclasses.dataclass(frozen=True)
class Settings:
    runs: int
    warmup: int
    peak: Peak
    workdir: str


def interleaved(a, b, runs: int, warmup: int) -> tuple[float, float]:
    """Median ms of `a` and `b`, called alternately so both see the same machine state."""
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    clock = time.perf_counter_ns
    for _ in range(runs):
        t0 = clock()
        a()
        t1 = clock()
        b()
        t2 = clock()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return statistics.median(ta) / 1e6, statistics.median(tb) / 1e6


def bench_model(name: str, model: onnx.ModelProto, cfg: Settings) -> dict:
    """Compile, check against ORT, time; one row of figures (or the compile error)."""
    t0 = time.perf_counter()
    try:
        res = dgc.compile(model, "host", name=name)
    except DgcError as err:
        return {"name": name, "ok": False, "error": err.line()}
    compile_s = time.perf_counter() - t0
    feeds = zoo.random_inputs(model, seed=0)
    inputs = [np.ascontiguousarray(feeds[t.name], dtype=t.dtype) for t in res.spec.inputs]
    ours, ref = DgcModel(res, inputs, cfg.workdir), OrtModel(model, res.spec, inputs)
    ours()
    ref()
    checks = compare(res.spec, ours.outputs, ref.outputs)
    dgc_ms, ort_ms = interleaved(ours, ref, cfg.runs, cfg.warmup)
    cfg.peak.sample()
    gflop = model_flops(model) / 1e9
    print(f"{name}: compiled in {compile_s:.1f} s, dgc {dgc_ms:.4g} ms, ORT {ort_ms:.4g} ms",
          file=sys.stderr, flush=True)
    return {"name": name, "ok": all(c.ok for c in checks),
            "max_abs_err": max((c.max_abs for c in checks), default=0.0),
            "dgc_ms": dgc_ms, "ort_ms": ort_ms, "ratio": dgc_ms / ort_ms, "gflop": gflop,
            "gflops": gflop / dgc_ms * 1e3, "compile_s": compile_s}


# ---- convolutions one by one ------------------------------------------------------------

def conv_configs(model: onnx.ModelProto) -> list[tuple[onnx.ModelProto, int]]:
    """One single-node model per distinct Conv configuration of `model`, with its count."""
    model = shape_inference.infer_shapes(model, data_prop=True)
    g, s = model.graph, shapes_of(model)
    infos = {vi.name: vi for vi in (*g.input, *g.value_info, *g.output)}
    weights = {t.name: t for t in g.initializer}
    found: dict[tuple, list] = {}
    for node in (n for n in g.node if n.op_type == "Conv"):
        x = node.input[0]
        key = (s[x], s[node.input[1]], infos[x].type.tensor_type.elem_type,
               len(node.input) > 2 and node.input[2] != "",
               tuple(sorted(a.SerializeToString() for a in node.attribute)))
        if key in found:
            found[key][1] += 1
        else:
            found[key] = [_single_conv(node, infos, weights, list(model.opset_import)), 1]
    return [(proto, count) for proto, count in found.values()]


def _single_conv(node, infos, weights, opsets) -> onnx.ModelProto:
    """`node` alone, between transposes that make the model's input and output channels-last."""
    consts = [n for n in node.input[1:] if n]
    if missing := [n for n in consts if n not in weights]:
        raise ValueError(f"Conv {node.name!r}: {missing} are not initializers")
    x, y = infos[node.input[0]], infos[node.output[0]]
    rank = len(x.type.tensor_type.shape.dim)
    to_first = [0, rank - 1, *range(1, rank - 1)]  # N..C -> NC..
    to_last = [0, *range(2, rank), 1]              # NC.. -> N..C

    def channels_last(info, name):
        dims = [info.type.tensor_type.shape.dim[i].dim_value for i in to_last]
        return helper.make_tensor_value_info(name, info.type.tensor_type.elem_type, dims)

    nodes = [helper.make_node("Transpose", ["x_last"], [x.name], perm=to_first),
             node,
             helper.make_node("Transpose", [y.name], ["y_last"], perm=to_last)]
    graph = helper.make_graph(nodes, node.name or "conv", [channels_last(x, "x_last")],
                              [channels_last(y, "y_last")],
                              initializer=[weights[n] for n in consts])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    return model


def bench_convs(name: str, cfg: Settings) -> dict:
    rows = []
    for i, (proto, count) in enumerate(conv_configs(zoo.build(name))):
        row = bench_model(f"{name}_conv{i}", proto, cfg)
        rows.append({**row, "node": proto.graph.node[1].name, "count": count})
    return {"configs": rows}


def conv_summary(rows: list[dict], peak: float) -> dict:
    """Total conv FLOPs over total conv time, each configuration weighted by its count."""
    good = [r for r in rows if "error" not in r]
    gflop = sum(r["count"] * r["gflop"] for r in good)
    out = {"convs": sum(r["count"] for r in rows), "distinct": len(rows),
           "failed": len(rows) - len(good), "ok": all(r["ok"] for r in rows), "gflop": gflop}
    for who in ("dgc", "ort"):
        ms = sum(r["count"] * r[f"{who}_ms"] for r in good)
        out[f"{who}_ms"] = ms
        out[f"{who}_gflops"] = gflop / ms * 1e3 if ms else 0.0
        out[f"{who}_pct_peak"] = 100 * out[f"{who}_gflops"] / peak
    return out


# ---- report -----------------------------------------------------------------------------

def machine() -> dict:
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        text = ""
    name = re.search(r"^model name\s*:\s*(.*)$", text, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    flags = set(flags.group(1).split()) if flags else set()
    return {"cpu": name.group(1) if name else "unknown", "avx2": "avx2" in flags,
            "avx512f": "avx512f" in flags, "dgc_target_cpu": dgc.get_target("host").cpu,
            "onnxruntime": ort.__version__, "numpy": np.__version__}


def summarize(machine_info: dict, cfg: Settings, rows: list[dict], convs: dict) -> dict:
    """Every figure; those relative to the peak only now that its best sample is known."""
    peak = cfg.peak.best
    for r in rows + [r for c in convs.values() for r in c["configs"]]:
        if "error" not in r and not r.get("name", "").endswith("_qdq"):  # the peak is float FMAs'
            r["pct_peak"] = 100 * r["gflops"] / peak
    tiny = [r for r in rows if r["name"] in TINY and "error" not in r]
    geo = math.exp(statistics.fmean(math.log(r["ratio"]) for r in tiny)) if tiny else None
    for c in convs.values():
        c["summary"] = conv_summary(c["configs"], peak)
    if convs:
        every = [r for c in convs.values() for r in c["configs"]]
        convs["together"] = {"summary": conv_summary(every, peak)}
    return {"machine": machine_info, "peak_gflops": peak, "fma_gflops": cfg.peak.fma,
            "sgemm_gflops": cfg.peak.sgemm, "runs": cfg.runs, "warmup": cfg.warmup,
            "models": rows, "geomean_ratio_tiny": geo, "geomean_models": [r["name"] for r in tiny],
            "convs": convs}


def print_report(rep: dict) -> None:
    m, yes = rep["machine"], {True: "yes", False: "no"}
    print(f"machine: {m['cpu']}; avx2 {yes[m['avx2']]}, avx512f {yes[m['avx512f']]}; "
          f"dgc target host = cpu {m['dgc_target_cpu']}; onnxruntime {m['onnxruntime']}")
    print(f"single-core peak (best samples of the run): FMA throughput {rep['fma_gflops']:.1f} "
          f"GFLOP/s, numpy SGEMM 1024^3 float32 {rep['sgemm_gflops']:.1f} GFLOP/s; "
          f"% peak is of {rep['peak_gflops']:.1f}")
    print(f"{rep['runs']} timed runs after {rep['warmup']} warm-up, dgc and ORT interleaved; "
          "medians; FLOPs = Conv/ConvTranspose/Gemm/MatMul only")
    if rep["models"]:
        print("\n| model | ok | dgc ms | ORT ms | dgc/ORT | GFLOP/s | % peak | compile s |")
        print("|---|---|--:|--:|--:|--:|--:|--:|")
        print("\n".join(model_line(r) for r in rep["models"]))
    if rep["geomean_ratio_tiny"] is not None:
        print(f"\ngeomean dgc/ORT over {', '.join(rep['geomean_models'])}: "
              f"{rep['geomean_ratio_tiny']:.2f}")
    if rep["convs"]:
        print("\n| convolutions | count (distinct) | GFLOP | dgc ms | ORT ms | dgc GFLOP/s | "
              "dgc % peak | ORT GFLOP/s | ORT % peak | ok |")
        print("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
        print("\n".join(conv_line(name, c["summary"]) for name, c in rep["convs"].items()))


def model_line(r: dict) -> str:
    if "error" in r:
        return f"| {r['name']} | compile failed: {r['error']} |||||||"
    ok = "yes" if r["ok"] else f"NO ({r['max_abs_err']:.2g})"
    pct = f"{r['pct_peak']:.1f}" if "pct_peak" in r else "-"
    flops = f"{r['gflops']:.2f} | {pct}" if r["gflop"] else "- | -"
    return (f"| {r['name']} | {ok} | {r['dgc_ms']:.4g} | {r['ort_ms']:.4g} | {r['ratio']:.2f} | "
            f"{flops} | {r['compile_s']:.1f} |")


def conv_line(name: str, s: dict) -> str:
    ok = "yes" if s["ok"] else f"NO ({s['failed']} failed to compile)" if s["failed"] else "NO"
    return (f"| {name} | {s['convs']} ({s['distinct']}) | {s['gflop']:.4g} | {s['dgc_ms']:.4g} | "
            f"{s['ort_ms']:.4g} | {s['dgc_gflops']:.2f} | {s['dgc_pct_peak']:.1f} | "
            f"{s['ort_gflops']:.2f} | {s['ort_pct_peak']:.1f} | {ok} |")


# ---- main -------------------------------------------------------------------------------

def load(name: str) -> onnx.ModelProto:
    """Zoo model NAME, or NAME_qdq: its int8 QDQ form (dgc.zoo.quantized; onnxruntime runs it
    with its own int8 kernels)."""
    if name.endswith("_qdq"):
        from dgc.zoo import quantized

        return quantized.qdq(name.removesuffix("_qdq"))
    return zoo.build(name)


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str], list[str]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="comma-separated zoo models, NAME_qdq for the int8 form (default: "
                                     "all float ones, or none when only --convs is given)")
    ap.add_argument("--convs", help="models whose Convs are benchmarked one by one (default: "
                                    f"{','.join(CONV_MODELS)} when benchmarked; 'none': skip)")
    ap.add_argument("--runs", type=int, default=50, help="timed runs each (default 50)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    ap.add_argument("--json", help="also write every figure to this file")
    args = ap.parse_args(argv)
    if args.models is None:
        args.models = "" if args.convs else ",".join(zoo.MODELS)
    models = [m for m in args.models.split(",") if m]
    if args.convs is None:
        convs = [m for m in CONV_MODELS if m in models]
    else:
        convs = [m for m in args.convs.split(",") if m and m != "none"]
    if unknown := [m for m in models + convs if m.removesuffix("_qdq") not in zoo.MODELS]:
        ap.error(f"unknown zoo models {unknown}; known: {', '.join(zoo.MODELS)} (NAME_qdq: its int8 QDQ form)")
    if args.runs < 1 or args.warmup < 0:
        ap.error("--runs must be >= 1 and --warmup >= 0")
    return args, models, convs


def main(argv=None) -> int:
    args, models, conv_models = parse_args(argv)
    machine_info = machine()
    with tempfile.TemporaryDirectory(prefix="dgc-bench-") as workdir:
        cfg = Settings(args.runs, args.warmup, Peak(workdir, machine_info["avx512f"]), workdir)
        rows = [bench_model(name, load(name), cfg) for name in models]
        convs = {name: bench_convs(name, cfg) for name in conv_models}
    rep = summarize(machine_info, cfg, rows, convs)
    print_report(rep)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rep, f, indent=1)
    ok = all(r["ok"] for r in rows) and all(c["summary"]["ok"] for c in convs.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
