"""bench/cortexm.py on LeNet-5 (Cortex-M7 in QEMU): exact, repeatable instruction counts;
the plain C reference and dgc both match onnxruntime. No speed assertions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import require_tools

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "cortexm.py")


@pytest.fixture(scope="module")
def lenet5(tmp_path_factory):
    require_tools("cortex-m7")
    if shutil.which("gcc") is None:
        pytest.skip("no host gcc to build the QEMU plugin (installed by .ci/run)")
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "lenet5.json"
    proc = subprocess.run([sys.executable, BENCH, "--models", "lenet5", "--runs", "2",
                           "--json", str(out), "--workdir", str(tmp / "work")],
                          check=False, capture_output=True, text=True, timeout=300)
    assert out.exists(), proc.stdout + proc.stderr
    (row,) = json.loads(out.read_text())
    return row, proc


def test_table(lenet5):
    row, proc = lenet5
    assert "| lenet5 | 416,520 |" in proc.stdout
    assert row["macs"] == 416520  # 117600 + 240000 conv, 48000 + 10080 + 840 Gemm


@pytest.mark.parametrize("program", ["dgc", "cref"])
def test_instruction_count_exact_and_repeatable(lenet5, program):
    counts = lenet5[0][program]["instructions_per_run"]
    assert len(counts) == 2 and counts[0] == counts[1] > 0


@pytest.mark.parametrize("program", ["dgc", "cref"])
def test_matches_onnxruntime(lenet5, program):
    r = lenet5[0][program]
    assert r["numerics_ok"], f"{program}: max abs err {r['max_abs_err']:.3g} > {r['err_limit']:.3g}"


@pytest.mark.parametrize("program", ["dgc", "cref"])
def test_cycle_estimate(lenet5, program):
    r = lenet5[0][program]
    assert r["est_cycles"] > 0 and r["est_unmodeled_instructions"] == 0
