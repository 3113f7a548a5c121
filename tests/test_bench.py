"""bench/x86.py: the FLOP counter against hand counts, and one end-to-end run on lenet5 whose
report has every figure and whose dgc outputs match onnxruntime. No timing assertions: the
speed of the test machine is not a test result."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from dgc import zoo

pytest.importorskip("onnxruntime")

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "x86.py"
LENET5_CONV_MACS = 6 * 28 * 28 * 1 * 25 + 16 * 10 * 10 * 6 * 25
LENET5_MACS = LENET5_CONV_MACS + 400 * 120 + 120 * 84 + 84 * 10


@pytest.fixture(scope="module")
def x86():
    spec = importlib.util.spec_from_file_location("bench_x86", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "x86.json"
    argv = [sys.executable, str(BENCH), "--models", "lenet5", "--convs", "lenet5",
            "--runs", "3", "--warmup", "1", "--json", str(out)]
    proc = subprocess.run(argv, check=False, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text())


def _model(nodes, inputs, output, weights):
    inits = [numpy_helper.from_array(np.ones(shape, np.float32), name) for name, shape in weights.items()]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_flops_of_grouped_conv_conv_transpose_gemm_and_batched_matmul(x86):
    nodes = [
        helper.make_node("Conv", ["x", "dw"], ["a"], group=8, pads=[1, 1, 1, 1]),   # 1x8x10x10
        helper.make_node("ConvTranspose", ["a", "ct"], ["b"], strides=[2, 2]),      # 1x4x21x21
        helper.make_node("Reshape", ["b", "shape"], ["c"]),                         # 4x441
        helper.make_node("Gemm", ["c", "g"], ["d"], transA=1),                      # 441x6
        helper.make_node("MatMul", ["m", "d"], ["y"]),                              # 2x3x6
    ]
    model = _model(nodes, {"x": [1, 8, 10, 10], "m": [2, 3, 441]}, "y",
                   {"dw": [8, 1, 3, 3], "ct": [8, 4, 3, 3], "g": [4, 6]})
    model.graph.initializer.append(numpy_helper.from_array(np.array([4, 441], np.int64), "shape"))
    macs = 8 * 100 * 9 + 8 * 100 * 4 * 9 + 441 * 6 * 4 + 2 * 3 * 6 * 441
    assert x86.model_flops(model) == 2 * macs


def test_conv_configs_share_identical_convolutions(x86):
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w2"], ["b"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["b", "w3", "bias"], ["y"], strides=[2, 2])]
    model = _model(nodes, {"x": [1, 4, 8, 8]}, "y",
                   {"w1": [4, 4, 3, 3], "w2": [4, 4, 3, 3], "w3": [4, 4, 1, 1], "bias": [4]})
    configs = x86.conv_configs(model)
    assert [count for _, count in configs] == [2, 1]
    single = configs[1][0]
    assert [n.op_type for n in single.graph.node] == ["Transpose", "Conv", "Transpose"]
    assert {t.name for t in single.graph.initializer} == {"w3", "bias"}
    dims = [d.dim_value for d in single.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, 4, 4, 4]  # channels-last (N, H, W, C)
    dims = [d.dim_value for d in configs[0][0].graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 8, 8, 4]


def test_wrong_output_is_not_ok(x86, monkeypatch, tmp_path):
    run_dgc = x86.DgcModel.__call__

    def off_by_one(self):
        run_dgc(self)
        self.outputs[0] += 1.0

    monkeypatch.setattr(x86.DgcModel, "__call__", off_by_one)
    peak = x86.Peak(str(tmp_path), x86.machine()["avx512f"])
    row = x86.bench_model("lenet5", zoo.build("lenet5"), x86.Settings(1, 0, peak, str(tmp_path)))
    assert not row["ok"] and row["max_abs_err"] == pytest.approx(1.0, rel=1e-3)


def test_model_row(run):
    _, report = run
    (row,) = report["models"]
    assert row["name"] == "lenet5" and row["ok"], row
    assert row["max_abs_err"] <= 1e-4 * 10  # logits are O(1..10)
    assert row["gflop"] == pytest.approx(2 * LENET5_MACS / 1e9)
    for key in ("dgc_ms", "ort_ms", "ratio", "gflops", "pct_peak", "compile_s"):
        assert row[key] > 0, key
    assert row["ratio"] == pytest.approx(row["dgc_ms"] / row["ort_ms"])
    assert report["geomean_ratio_tiny"] == pytest.approx(row["ratio"])
    assert report["geomean_models"] == ["lenet5"]
    assert report["peak_gflops"] > 0 and report["runs"] == 3
    assert report["peak_gflops"] == max(report["fma_gflops"], report["sgemm_gflops"])
    # the FMA kernel measures the ceiling: no GEMM passes it (a slack for noisy samples)
    assert report["fma_gflops"] >= 0.8 * report["sgemm_gflops"] > 0


def test_conv_summary(run):
    _, report = run
    convs = report["convs"]
    assert set(convs) == {"lenet5", "together"}
    assert [c["node"] for c in convs["lenet5"]["configs"]] == ["conv1", "conv2"]
    assert all(c["ok"] and c["count"] == 1 for c in convs["lenet5"]["configs"])
    summary = convs["together"]["summary"]
    assert summary["convs"] == 2 and summary["distinct"] == 2 and summary["ok"]
    assert summary["gflop"] == pytest.approx(2 * LENET5_CONV_MACS / 1e9)
    assert summary["dgc_gflops"] == pytest.approx(summary["gflop"] / summary["dgc_ms"] * 1e3)
    assert summary["ort_pct_peak"] > 0


def test_printed_report(run):
    stdout, report = run
    assert f"avx512f {'yes' if report['machine']['avx512f'] else 'no'}" in stdout
    assert f"cpu {report['machine']['dgc_target_cpu']}" in stdout
    assert "| model | ok | dgc ms | ORT ms | dgc/ORT | GFLOP/s | % peak | compile s |" in stdout
    assert "| lenet5 | yes |" in stdout
    assert "geomean dgc/ORT over lenet5:" in stdout
    assert "| together | 2 (2) |" in stdout


def test_mlp_rows_probe_shapes_and_numbers():
    """bench/mlp_rows.py --rows/--dims: the probe is the MLP it says (onnxruntime against numpy)."""
    import onnx
    import onnxruntime as ort

    spec = importlib.util.spec_from_file_location("bench_mlp_rows", BENCH.parent / "mlp_rows.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.build(5, (16, 24, 8, 4))
    onnx.checker.check_model(model)
    w = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    x = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
    want = np.maximum(x @ w["w1"] + w["b1"], 0) @ w["w2"] @ w["w3"]
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_predictor_reads_signatures_back_into_entries():
    """bench/predictor.py rebuilds an op entry from a database signature: kernel and stride /
    dilation and element-type suffixes included, so its predictions see the op that was measured."""
    from dgc.passes.schedule import entry_signature

    spec = importlib.util.spec_from_file_location("bench_predictor", BENCH.parent / "predictor.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for entry in ({"linalg": "linalg.matmul", "loops": [4, 8, 16], "kinds": "ppr", "fuse": False},
                  {"linalg": "linalg.depthwise_conv_2d_nhwc_hwc", "loops": [1, 7, 7, 64, 3, 3], "kinds": "pppprr",
                   "fuse": True, "window": [2, 2, 1, 1]},
                  {"linalg": "linalg.conv_2d_nhwc_hwcf", "loops": [1, 5, 6, 5, 3, 3, 3], "kinds": "pppprrr",
                   "fuse": True, "kernel": "i8smlad", "window": [2, 1, 1, 2]},
                  {"linalg": "linalg.depthwise_conv_2d_nhwc_hwc", "loops": [1, 7, 7, 64, 3, 3], "kinds": "pppprr",
                   "fuse": True, "window": [2, 2, 1, 1], "dtype": "i8,i16,i32"}):
        assert mod.entry_of(entry_signature(entry)) == entry


def test_dw_blocks_default_beats_the_old_conv_heuristic_on_cortex_a53():
    """bench/dw_blocks.py costs depthwise blocks alone in QEMU (exact counts): on a 14x14x64
    depthwise conv the default block (the cost model's) runs fewer estimated cycles than the
    conv heuristic's block the default used before, and both are candidate blocks."""
    import dgc
    from dgc.passes import schedule as S

    spec = importlib.util.spec_from_file_location("bench_dw_blocks", BENCH.parent / "dw_blocks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t = dgc.get_target("cortex-a53")
    op = {"linalg": "linalg.depthwise_conv_2d_nhwc_hwc", "loops": [1, 14, 14, 64, 3, 3], "kinds": "pppprr",
          "fuse": True}
    default = tuple(S._depthwise_block(t, op["loops"], op["kinds"], [], (0, 0)))
    old = S._block(t, 14, 64)
    assert default != old and {default, old} <= set(S.depthwise_blocks(t, op["loops"]))
    new_cost, old_cost = mod.costs(op, [default, old], t)
    assert 0 < new_cost < old_cost


def test_dsp_unroll_bench_prices_unrolling_in_cycles_and_flash(tmp_path, capsys):
    """bench/dsp_unroll.py: the explicit defaults (block 2x2, unroll 0) count exactly the
    default build's cycles; unrolling the SMLAD loops of int8 DS-CNN 16 times changes the count
    and costs flash (QEMU counts, Cortex-M7)."""
    import json

    from conftest import require_tools

    require_tools("cortex-m7")
    spec = importlib.util.spec_from_file_location("bench_dsp_unroll", BENCH.parent / "dsp_unroll.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "u.json"
    assert mod.main(["--models", "ds_cnn_qdq", "--blocks", "2,2", "--unrolls", "0,16", "--json", str(out)]) == 0
    default, explicit, unrolled = json.loads(out.read_text())["rows"]
    assert explicit["cycles"] == default["cycles"] and explicit["flash"] == default["flash"]
    assert unrolled["cycles"] != default["cycles"] and unrolled["flash"] > default["flash"]
    assert "| ds_cnn_qdq | 2,2 | 16 |" in capsys.readouterr().out
