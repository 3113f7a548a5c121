"""IR snapshots: ONNX text models (tests/filecheck/*.onnxtxt) compiled up to the stage named in
their `# STAGE:` line (`# CONST:` names inputs to turn into initializers), the IR after it checked with LLVM's FileCheck against `# CHECK` lines."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import numpy as np
import onnx.parser
from onnx import numpy_helper
import pytest

from dgc.tools import tool_path

CASES = sorted((pathlib.Path(__file__).parent / "filecheck").glob("*.onnxtxt"))


def _with_constants(model, const_line):
    """Graph inputs named on a `# CONST:` line become initializers with random values."""
    names = const_line.group(1).split() if const_line else []
    rng = np.random.default_rng(0)
    for inp in [i for i in model.graph.input if i.name in names]:
        shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        model.graph.initializer.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), inp.name))
    return model


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_filecheck(path, tmp_path):
    text = path.read_text()
    stage = re.search(r"^# STAGE: (\S+)", text, re.M).group(1)
    model_text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    model = _with_constants(onnx.parser.parse_model(model_text), re.search(r"^# CONST:(.*)$", text, re.M))
    onnx.save(model, tmp_path / "m.onnx")
    r = subprocess.run([sys.executable, "-m", "dgc", "compile", str(tmp_path / "m.onnx"), "--name", "m",
                        "--print-ir-after", stage, "--stop-after", stage, "-o", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    fc = subprocess.run([tool_path("FileCheck"), str(path)], input=r.stderr, capture_output=True, text=True)
    assert fc.returncode == 0, fc.stderr
