"""The `dgc` command line: artefacts, IR dumps, stage control, and clean errors on bad input."""

from __future__ import annotations

import os
import re
import subprocess

import onnx
import pytest
from onnx import TensorProto, helper

from conftest import run_dgc, save_zoo_model, zoo_model


dgc = run_dgc


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    return save_zoo_model(tmp_path_factory, "lenet5", "lenet-5.onnx")


def test_compile_default_name_and_files(lenet, tmp_path):
    r = dgc("compile", lenet, "--target", "cortex-m7", "-o", tmp_path / "build")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "build")) == ["lenet_5.h", "lenet_5.o"]
    header = (tmp_path / "build" / "lenet_5.h").read_text()
    assert "int lenet_5_run(const float *input0, float *output0, void *arena);" in header
    assert re.search(r"#define LENET_5_ARENA_SIZE \d+u", header)


def test_emit_all_kinds(lenet, tmp_path):
    r = dgc("compile", lenet, "--target", "aarch64", "--name", "kws", "-o", tmp_path,
            "--emit", "obj,header,llvm,asm,mlir", "--emit", "spec")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["kws.h", "kws.json", "kws.ll", "kws.mlir", "kws.o", "kws.s"]
    assert "tosa.conv2d" in (tmp_path / "kws.mlir").read_text()
    assert re.search(r"define .*i32 @kws_run\(", (tmp_path / "kws.ll").read_text())
    assert "kws_run:" in (tmp_path / "kws.s").read_text()


def _pipeline_stages(target):
    out = dgc("pipeline", "--target", target).stdout
    return [ln.split(":")[0] for ln in out.splitlines() if ln and not ln.startswith((" ", "#"))]


def test_dump_ir_names_match_pipeline(lenet, tmp_path):
    r = dgc("compile", lenet, "--target", "x86-64-v3", "-o", tmp_path / "o", "--dump-ir", tmp_path / "ir")
    assert r.returncode == 0, r.stderr
    dumps = sorted(os.listdir(tmp_path / "ir"))
    names = [d.split("-", 1)[1].rsplit(".", 1)[0] for d in dumps]
    stages = _pipeline_stages("x86-64-v3")
    assert names == [s for s in stages if s not in ("llvm-ir", "opt", "obj")]
    assert [d[:2] for d in dumps] == [f"{i:02d}" for i in range(len(dumps))]
    first = (tmp_path / "ir" / dumps[0]).read_text()
    assert first.startswith("// -----// IR Dump After import //----- //")
    # large constants are elided by default: weights referenced, their bytes not printed
    assert "dense_resource<lenet_5_w" in first and "dialect_resources" not in first


def test_keep_constants(lenet, tmp_path):
    r = dgc("compile", lenet, "--stop-after", "import", "--dump-ir", tmp_path / "ir", "--keep-constants",
            "-o", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "ir" / "00-import.mlir").read_text()
    assert re.search(r'lenet_5_w0: "0x[0-9A-F]{64}', text)


def test_print_ir_after_and_stop_after(lenet, tmp_path):
    r = dgc("compile", lenet, "--print-ir-after", "tosa", "--stop-after", "linalg", "-o", tmp_path,
            "--emit", "obj,header")
    assert r.returncode == 0, r.stderr
    assert "// -----// IR Dump After tosa //----- //" in r.stderr
    assert "IR Dump After linalg" not in r.stderr
    assert "stopped after stage 'linalg'" in r.stderr
    assert os.listdir(tmp_path) == []  # no object or header exists yet at that stage


def test_print_ir_after_all(lenet, tmp_path):
    r = dgc("compile", lenet, "--print-ir-after", "all", "-o", tmp_path)
    assert r.returncode == 0
    for stage in ("import", "tosa", "linalg", "bufferize", "memory-plan", "llvm"):
        assert f"IR Dump After {stage} //" in r.stderr


def test_help_everywhere():
    for cmd in ("compile", "targets", "pipeline", "run", "verify", "ops"):
        r = dgc(cmd, "--help")
        assert r.returncode == 0 and "Example" in r.stdout, cmd


def test_targets_table():
    out = dgc("targets").stdout
    for name in ("host", "x86-64-v4", "cortex-a76", "cortex-a7", "cortex-m0plus", "cortex-m55",
                 "cortex-m85", "mps2-an500", "compile-only"):
        assert name in out


def test_run_with_npy(lenet, tmp_path):
    import numpy as np

    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = dgc("run", lenet, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert r.returncode == 0, r.stderr
    import onnxruntime as ort

    ref = ort.InferenceSession(str(lenet)).run(None, {"input": x})[0]
    assert np.abs(np.load(tmp_path / "y.npy") - ref).max() <= 1e-4 * max(1, np.abs(ref).max())


def test_verify_pass(lenet):
    r = dgc("verify", lenet, "--target", "cortex-m4")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout and "max abs err" in r.stdout


# ---- bad input: one line, non-zero exit, no traceback, no output files ----------------------

def _unsupported_model(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok_relu"),
             helper.make_node("Hardmax", ["a"], ["b"], name="bad_one"),
             helper.make_node("Shrink", ["b"], ["c"], name="bad_two"),
             helper.make_node("Relu", ["c"], ["y"], name="ok_relu2")]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


@pytest.mark.parametrize("case", ["missing", "garbage", "bad_target", "unsupported", "bad_shape_flag"])
def test_bad_input(case, lenet, tmp_path):
    out = tmp_path / "out"
    model = lenet
    extra = []
    if case == "missing":
        model = tmp_path / "nope.onnx"
    elif case == "garbage":
        model = tmp_path / "garbage.onnx"
        model.write_bytes(b"\x00\x01 this is not protobuf \xff" * 10)
    elif case == "bad_target":
        extra = ["--target", "pdp-11"]
    elif case == "unsupported":
        model = tmp_path / "unsup.onnx"
        _unsupported_model(model)
    elif case == "bad_shape_flag":
        extra = ["--input-shape", "input=1xAx3"]
    r = dgc("compile", model, "-o", out, *extra)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dgc: error: "), r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() or os.listdir(out) == []
    if case == "unsupported":  # every unsupported node at once, with name, op type and opset
        assert '"bad_one" (Hardmax, opset 17)' in lines[0] and '"bad_two" (Shrink, opset 17)' in lines[0]
    if case == "bad_target":
        assert "pdp-11" in lines[0] and "cortex-m7" in lines[0]


def test_unsupported_variants_listed_together(tmp_path):
    """Unsupported attribute variants in several nodes are reported in one error."""
    x5 = helper.make_tensor_value_info("x5", TensorProto.FLOAT, [1, 2, 4, 4, 4])
    x4 = helper.make_tensor_value_info("x4", TensorProto.FLOAT, [1, 2, 4, 4])
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3, 3]),
            helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 2, 3, 3]),
            helper.make_tensor_value_info("i", TensorProto.INT64, [1, 2, 3, 3])]
    nodes = [helper.make_node("Relu", ["x5"], ["a"], name="fine"),
             helper.make_node("MaxPool", ["a"], ["y"], name="pool3d", kernel_shape=[2, 2, 2]),
             helper.make_node("MaxPool", ["x4"], ["p", "i"], name="pool_with_indices", kernel_shape=[2, 2])]
    m = helper.make_model(helper.make_graph(nodes, "g", [x5, x4], outs), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "m.onnx")
    r = dgc("compile", tmp_path / "m.onnx", "-o", tmp_path / "out")
    assert r.returncode == 4 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert '"pool3d" (MaxPool, opset 17)' in r.stderr and '"pool_with_indices" (MaxPool, opset 17)' in r.stderr
    assert not (tmp_path / "out").exists()


def test_debug_shows_traceback(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"nonsense")
    r = dgc("--debug", "compile", bad)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_ops_doc_is_current():
    """docs/ops.md is `dgc ops --markdown`; regenerate it when lowerings change."""
    import pathlib

    doc = pathlib.Path(__file__).parent.parent / "docs" / "ops.md"
    assert dgc("ops", "--markdown").stdout == doc.read_text(), "run: dgc ops --markdown > docs/ops.md"


def test_quantize_then_compile(lenet, tmp_path):
    """`dgc compile --quantize int8 --calibration` quantizes in memory, then compiles; bad or
    missing calibration is a one-line error and writes nothing."""
    import numpy as np

    from dgc.zoo import random_inputs

    model = zoo_model("lenet5")
    name = model.graph.input[0].name
    np.savez(tmp_path / "s.npz", **{name: np.stack([random_inputs(model, seed=i)[name] for i in range(4)])})
    np.savez(tmp_path / "bad.npz", wrong=np.zeros((4, 1, 1, 28, 28), np.float32))
    r = dgc("compile", lenet, "--quantize", "int8", "--calibration", tmp_path / "s.npz", "-o", tmp_path / "q",
            "--target", "cortex-m0plus")
    assert r.returncode == 0, r.stderr
    assert os.path.getsize(tmp_path / "q" / "lenet_5.o") < 120_000  # int8 weights (float: ~250 KB)
    for args in (["--quantize", "int8"], ["--quantize", "int8", "--calibration", tmp_path / "bad.npz"],
                 ["--calibration", tmp_path / "s.npz"]):
        r = dgc("compile", lenet, *args, "-o", tmp_path / "e")
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
        assert not os.path.exists(tmp_path / "e")
    r = dgc("quantize", lenet, "--calibration", tmp_path / "bad.npz", "-o", tmp_path / "x.onnx")
    assert r.returncode == 2 and "no array named" in r.stderr and not os.path.exists(tmp_path / "x.onnx")


@pytest.mark.parametrize("stage, replay", [("bufferize", True), ("schedule", False)])
def test_crash_in_a_stage_is_contained(lenet, tmp_path, stage, replay):
    """An abort() inside the compiler (injected where `stage` starts, as an MLIR assertion
    would) is reported as an internal compiler error naming the stage, with the stage's input
    IR saved and a replay command; exit code 70, one line, no traceback, nothing written."""
    env = {**os.environ, "DGC_TEST_CRASH_STAGE": stage}
    r = dgc("compile", lenet, "--target", "cortex-m7", "-o", tmp_path / "out", env=env)
    assert r.returncode == 70, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("dgc: error: internal compiler error (signal SIGABRT)")
    assert f"(stage {stage})" in lines[0]
    saved = re.search(r"input IR saved to (\S+\.mlir);", lines[0]).group(1)
    assert os.path.getsize(saved) > 1000
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
    if replay:  # the printed command runs the stage's passes on the saved IR
        cmd = re.search(r"reproduce with: (mlir-opt .*)$", lines[0]).group(1)
        from dgc.tools import tool_path
        cmd = cmd.replace("mlir-opt", tool_path("mlir-opt"), 1)
        assert subprocess.run(cmd + " -o /dev/null", shell=True).returncode == 0
    else:
        assert "reproduce with: the same dgc command" in lines[0]
