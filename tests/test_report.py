"""`dgc report`: the JSON agrees with the object file and the header compiled separately (arena,
stack, sections measured with binutils' `size`, MACs counted here from the ONNX graph); the
HTML is one self-contained page; in a slow test headless Chromium renders it without console
output and takes a screenshot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import onnx
import pytest
from onnx import shape_inference

from conftest import run_dgc
from dgc.zoo import build, quantized


def _macs(model) -> int:
    """Conv and Gemm MACs of a float model, from ONNX shape inference (independent of dgc)."""
    m = shape_inference.infer_shapes(model)
    shape = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
             for v in (*m.graph.value_info, *m.graph.output, *m.graph.input)}
    shape.update({t.name: list(t.dims) for t in m.graph.initializer})
    total = 0
    for n in m.graph.node:
        if n.op_type == "Conv":
            total += int(np.prod(shape[n.output[0]])) * int(np.prod(shape[n.input[1]][1:]))
        elif n.op_type == "Gemm":
            total += int(np.prod(shape[n.output[0]])) * shape[n.input[0]][-1]
    return total


def _sections(obj) -> dict[str, int]:
    """Allocated section sizes of an object, by arm-none-eabi-size (binutils)."""
    out = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True, text=True, check=True).stdout
    sizes = {"text": 0, "rodata": 0}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            if parts[0].startswith(".text"):
                sizes["text"] += int(parts[1])
            elif parts[0].startswith((".rodata", ".ARM.exidx")):
                sizes["rodata"] += int(parts[1])
    return sizes


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    float_model = build("ds_cnn")
    onnx.save(quantized.qdq("ds_cnn"), d / "kws.onnx")
    r = run_dgc("report", d / "kws.onnx", "--target", "cortex-m7", "--json", d / "r.json", "--html", d / "r.html")
    assert r.returncode == 0, r.stderr
    c = run_dgc("compile", d / "kws.onnx", "--target", "cortex-m7", "-o", d / "build", "--emit", "obj,header,spec")
    assert c.returncode == 0, c.stderr
    return d, json.loads((d / "r.json").read_text()), float_model, r.stdout


def test_report_json_agrees_with_object_and_header(reported):
    d, rep, float_model, stdout = reported
    header = (d / "build" / "kws.h").read_text()
    spec = json.loads((d / "build" / "kws.json").read_text())
    arena = int(re.search(r"#define KWS_ARENA_SIZE (\d+)u", header).group(1))
    stack = int(re.search(r"#define KWS_STACK_SIZE (\d+)u", header).group(1))
    tot = rep["totals"]
    assert rep["schema"] == "dgc-report/1" and rep["model"] == "kws" and rep["target"]["name"] == "cortex-m7"
    assert tot["arena"] == arena == spec["arena_size"] and tot["stack"] == stack == spec["stack_size"]
    assert tot["ram"] == arena + stack and tot["arena_lower_bound"] <= arena
    size = _sections(d / "build" / "kws.o")
    assert (tot["text"], tot["rodata"]) == (size["text"], size["rodata"])
    assert tot["flash"] == tot["text"] + tot["rodata"] + tot["data"]
    assert tot["macs"] == _macs(float_model) and tot["fits_ram"] and tot["fits_flash"]
    assert f"arena {arena:,}" in stdout and f"flash {tot['flash']:,} B" in stdout
    # per layer: the QLinearConvs carry the MACs and their int8 weights; buffers lie in the arena
    convs = [layer for layer in rep["layers"] if layer["op"] == "QLinearConv"]
    assert sum(layer["macs"] for layer in convs) == tot["macs"]
    first = convs[0]
    w = next(t for t in first["inputs"] if t["dtype"] == "int8" and len(t["shape"]) == 4)
    assert first["weight_bytes"] >= int(np.prod(w["shape"]))
    assert first["activation_bytes"] == int(np.prod(first["outputs"][0]["shape"]))
    bufs = [b for layer in rep["layers"] for b in layer["buffers"]]
    assert bufs and all(0 <= b["offset"] and b["offset"] + b["size"] <= arena for b in bufs)
    assert all(0 <= b["start"] <= b["end"] < len(rep["op_nodes"]) for b in bufs)
    assert rep["stack"]["bound"] == stack and rep["stack"]["deepest_path"][0] == "kws_run"


def test_report_is_deterministic(reported, tmp_path):
    d, rep, _, _ = reported
    r = run_dgc("report", d / "kws.onnx", "--target", "cortex-m7", "--json", tmp_path / "r.json", "--html",
             tmp_path / "r.html")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "r.json").read_text()) == rep
    assert (tmp_path / "r.html").read_text() == (d / "r.html").read_text()


def test_report_html_is_self_contained(reported):
    page = (reported[0] / "r.html").read_text()
    assert page.count("<svg") == 2 and "<script" not in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert "Arena occupancy" in page and "QLinearConv" in page


def test_report_of_a_float_model_names_fusions(tmp_path):
    onnx.save(build("resnet8"), tmp_path / "r8.onnx")
    r = run_dgc("report", tmp_path / "r8.onnx", "--target", "cortex-m7", "--json", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    fused = {layer["name"]: layer["fused_into"] for layer in rep["layers"] if layer["fused_into"]}
    assert fused.get("conv0.relu") == "conv0"  # the ReLU runs in the conv's loops


@pytest.mark.slow
def test_report_html_renders_in_headless_chromium(reported, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("chromium is not installed (bash .ci/install installs it)")
    shot = tmp_path / "report.png"
    r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                        "--v=0", f"--screenshot={shot}", "--window-size=1280,1800",
                        (reported[0] / "r.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "CONSOLE" not in r.stderr, [ln for ln in r.stderr.splitlines() if "CONSOLE" in ln]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000
