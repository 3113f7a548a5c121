"""The deterministic model zoo (dgc.zoo): every model builds reproducibly, is valid
ONNX, runs in onnxruntime, and produces finite, non-degenerate outputs."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest

from dgc import zoo

ort = pytest.importorskip("onnxruntime")

ALL = list(zoo.MODELS)

REQUIRED = {
    "lenet5", "ds_cnn", "resnet8", "mobilenet_v1_025", "fc_autoencoder", "mobilenet_v2",
    "resnet18", "tiny_bert", "torch_style_mlp", "old_opset_cnn",
}

# Op types each model must contain (the features the compiler is meant to be exercised on).
EXPECTED_OPS = {
    "lenet5": {"Conv", "Relu", "MaxPool", "Flatten", "Gemm"},
    "ds_cnn": {"Conv", "BatchNormalization", "Relu", "AveragePool", "Flatten", "Gemm", "Softmax"},
    "resnet8": {"Conv", "BatchNormalization", "Relu", "Add", "AveragePool", "Flatten", "Gemm", "Softmax"},
    "mobilenet_v1_025": {"Conv", "BatchNormalization", "Relu", "AveragePool", "Softmax"},
    "fc_autoencoder": {"Gemm", "BatchNormalization", "Relu"},
    "mobilenet_v2": {"Conv", "BatchNormalization", "Clip", "Add", "GlobalAveragePool", "Gemm"},
    "resnet18": {"Conv", "BatchNormalization", "Relu", "MaxPool", "Add", "GlobalAveragePool", "Gemm"},
    "tiny_bert": {"MatMul", "Add", "Reshape", "Transpose", "Div", "Softmax", "LayerNormalization", "Erf", "Mul"},
    "tiny_bert_ids": {"Gather", "LayerNormalization", "Erf", "Softmax"},
    "torch_style_mlp": {"Constant", "Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Gemm", "MatMul", "Add"},
    "old_opset_cnn": {"Conv", "BatchNormalization", "Relu", "MaxPool", "Clip", "Reshape", "Gemm", "Softmax"},
}


@functools.lru_cache(maxsize=None)
def _serialized(name: str) -> bytes:
    return zoo.build(name).SerializeToString()


def _model(name: str) -> onnx.ModelProto:
    return onnx.load_model_from_string(_serialized(name))


@functools.lru_cache(maxsize=None)
def _session(name: str):
    return ort.InferenceSession(_serialized(name), providers=["CPUExecutionProvider"])


def _run(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    sess = _session(name)
    feeds = zoo.random_inputs(_model(name), seed=seed)
    outs = sess.run(None, feeds)
    return {o.name: v for o, v in zip(sess.get_outputs(), outs)}


def test_registry_has_required_models():
    assert REQUIRED <= set(zoo.MODELS)
    assert set(EXPECTED_OPS) == set(zoo.MODELS)
    for name, entry in zoo.MODELS.items():
        assert entry.description and entry.inputs and entry.outputs, name
        assert entry.head in {"softmax", "logits", "features"}, name


def test_unknown_model_raises():
    with pytest.raises(KeyError, match="unknown zoo model"):
        zoo.build("no_such_model")


@pytest.mark.parametrize("name", ALL)
def test_build_is_deterministic(name):
    assert zoo.build(name).SerializeToString() == _serialized(name)


@pytest.mark.parametrize("name", ALL)
def test_structure_and_checker(name):
    entry = zoo.MODELS[name]
    model = _model(name)
    onnx.checker.check_model(model, full_check=True)

    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets == {"": entry.opset}
    assert model.ir_version == {17: 8, 11: 6}[entry.opset]

    names = [n.name for n in model.graph.node]
    assert all(names), "every node needs a name"
    assert len(set(names)) == len(names), "node names must be unique"

    ops = {n.op_type for n in model.graph.node}
    assert EXPECTED_OPS[name] <= ops, f"missing ops: {EXPECTED_OPS[name] - ops}"

    def shapes(vis):
        return {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim) for vi in vis}

    inits = {t.name for t in model.graph.initializer}
    assert shapes(vi for vi in model.graph.input if vi.name not in inits) == entry.inputs
    assert shapes(model.graph.output) == entry.outputs


def test_model_specific_details():
    # DS-CNN keeps its BatchNormalization nodes unfolded (1 + 4 * 2 of them).
    assert sum(n.op_type == "BatchNormalization" for n in _model("ds_cnn").graph.node) == 9
    # MobileNetV2 ReLU6 = Clip with min/max as inputs.
    clips = [n for n in _model("mobilenet_v2").graph.node if n.op_type == "Clip"]
    assert clips and all(len(n.input) == 3 for n in clips)
    # ResNet-18 is the standard ~11.7M-parameter network.
    assert 11_600_000 < zoo.param_count(_model("resnet18")) < 11_800_000
    # PyTorch-style model stores its weights in Constant nodes, not initializers.
    torch_like = _model("torch_style_mlp")
    assert not torch_like.graph.initializer
    assert sum(n.op_type == "Constant" for n in torch_like.graph.node) >= 6
    # The opset-11 model uses Clip-11 (min/max inputs) and an auto_pad Conv.
    old = _model("old_opset_cnn")
    assert any(n.op_type == "Clip" and len(n.input) == 3 for n in old.graph.node)
    assert any(a.name == "auto_pad" for n in old.graph.node if n.op_type == "Conv" for a in n.attribute)


@pytest.mark.parametrize("name", ALL)
def test_runs_in_onnxruntime_with_sane_outputs(name):
    entry = zoo.MODELS[name]
    outs = _run(name)
    assert set(outs) == set(entry.outputs)
    for oname, value in outs.items():
        assert value.shape == entry.outputs[oname]
        assert value.dtype == np.float32
        assert np.isfinite(value).all()
        assert np.abs(value).max() < 1e3
        if entry.head == "softmax":
            probs = value.reshape(-1)
            assert np.isclose(probs.sum(), 1.0, atol=1e-4)
            assert probs.max() < 0.99, "softmax saturated to one-hot"
            assert probs.max() - probs.min() > 0.05, "softmax is (nearly) uniform"
        else:
            assert 1e-3 < value.std() < 100.0


@pytest.mark.parametrize("name", ALL)
def test_outputs_depend_on_input(name):
    a, b = _run(name, seed=0), _run(name, seed=1)
    for k in a:
        assert np.abs(a[k] - b[k]).max() > 1e-3


def test_random_inputs():
    model = _model("lenet5")
    feeds = zoo.random_inputs(model, seed=3)
    assert list(feeds) == ["input"]
    x = feeds["input"]
    assert x.shape == (1, 1, 28, 28) and x.dtype == np.float32
    assert abs(float(x.mean())) < 0.2 and 0.8 < float(x.std()) < 1.2
    np.testing.assert_array_equal(x, zoo.random_inputs(model, seed=3)["input"])
    assert not np.array_equal(x, zoo.random_inputs(model, seed=4)["input"])

    ids = zoo.random_inputs(_model("tiny_bert_ids"))["input_ids"]
    assert ids.dtype == np.int64 and ids.shape == (1, 128)
    assert ids.min() >= 0 and ids.max() < 1024 and len(np.unique(ids)) > 50


def test_save_roundtrip(tmp_path):
    path = zoo.save("lenet5", tmp_path / "sub" / "lenet5.onnx")
    assert onnx.load(path).SerializeToString() == _serialized("lenet5")
