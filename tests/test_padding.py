"""Padded inputs (dgc.passes.padding): numerics against onnxruntime for pads on every side,
asymmetric and non-zero pads, and the buffers left after bufferization - borders filled, no
zero-fill of the whole padded tensor, and inside a model no copy into it."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import check_on_target
from test_layout import _stage_ir

_R = np.random.default_rng(11)


def _model(nodes, x_shape, inits):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for n, a in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return onnx.shape_inference.infer_shapes(m)  # output shapes


def _w(*shape):
    return (_R.standard_normal(shape) * 0.3).astype(np.float32)


def _conv_chain(pads, group=1, stride=1):
    """conv (1x1) -> Relu -> conv (3x3, `pads`): the padded input is computed in the model."""
    c = 8
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="expand"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["y"], name="padded", pads=pads, group=group,
                              strides=[stride, stride])]
    return _model(nodes, [1, 4, 9, 7], {"w1": _w(c, 4, 1, 1), "w2": _w(c, c // group, 3, 3)})


@pytest.mark.parametrize("pads, group, stride", [
    ([1, 1, 1, 1], 1, 1), ([0, 2, 1, 0], 1, 1), ([1, 0, 2, 1], 8, 2), ([2, 2, 2, 2], 8, 1)])
def test_padded_conv_in_a_model(tmp_path, pads, group, stride):
    m = _conv_chain(pads, group, stride)
    check_on_target(m, "host", tmp_path)
    ir = _stage_ir(m, tmp_path, stage="bufferize")
    assert "tensor.pad" in ir["schedule"] and "tensor.pad" not in ir["padding"]
    text = ir["bufferize"]
    views = dict(re.findall(r"(%\w+) = memref\.subview (%\w+)\[", text))
    filled = {views[v] for v in re.findall(r"linalg\.fill ins\([^)]*\) outs\((%\w+) :", text) if v in views}
    assert len(filled) == 1, filled  # the borders of one padded buffer
    (padded,) = filled
    # no fill of the whole padded buffer, no copy of the computed input into it
    assert not re.search(rf"linalg\.(fill|map) .*outs\({padded} :", text)
    copies = re.findall(r"memref\.copy (%\w+), (%\w+)", text)
    assert not [(a, b) for a, b in copies if a != b and views.get(b, b) == padded], copies


def test_pad_with_a_value_from_a_function_argument(tmp_path):
    """ONNX Pad (constant 1.5, asymmetric) of the model input: borders filled, one copy."""
    nodes = [helper.make_node("Pad", ["x", "p", "v"], ["y"], name="pad", mode="constant")]
    inits = {"p": np.array([0, 1, 2, 0, 0, 0, 1, 3], np.int64), "v": np.array(1.5, np.float32)}
    m = _model(nodes, [1, 3, 5, 6], inits)
    check_on_target(m, "host", tmp_path)


@pytest.mark.parametrize("target", ["cortex-m0plus", "aarch64"])
def test_padded_conv_on_other_targets(tmp_path, target):
    check_on_target(_conv_chain([1, 0, 2, 1], 8, 2), target, tmp_path)
