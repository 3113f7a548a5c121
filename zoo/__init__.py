"""Deterministic ONNX model zoo for testing and benchmarking the compiler.

Every model is built in memory with ``onnx.helper`` from random weights drawn
from ``numpy.random.default_rng(<fixed per-model seed>)`` with realistic scales
(He/Xavier init, BatchNorm statistics near 1/0 with positive variances), so
outputs are finite, O(1) and not degenerate.  Building the same model twice
yields byte-identical protos.

    >>> from dgc import zoo
    >>> model = zoo.build("resnet8")
    >>> feeds = zoo.random_inputs(model, seed=0)
    >>> zoo.save("lenet5", "lenet5.onnx")
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
from onnx import helper

from . import misc, vision

__all__ = ["ZooEntry", "MODELS", "build", "random_inputs", "save", "names", "param_count"]


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model.

    builder: ``builder(seed) -> ModelProto``; ``entry.build()`` calls it with ``seed``.
    inputs / outputs: graph tensor name -> static shape.
    description: one line on what the model is.
    opset: default-domain opset the model imports.
    seed: the fixed numpy seed its weights are drawn from.
    head: "softmax" (probabilities), "logits", or "features" (regression-like output).
    """

    builder: Callable[[int], onnx.ModelProto]
    inputs: dict[str, tuple[int, ...]]
    description: str
    opset: int
    seed: int
    outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    head: str = "logits"

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.inputs

    def build(self) -> onnx.ModelProto:
        return self.builder(self.seed)


MODELS: dict[str, ZooEntry] = {
    "lenet5": ZooEntry(
        vision.build_lenet5, {"input": (1, 1, 28, 28)},
        "LeNet-5: 2x(Conv5x5+Relu+MaxPool), Flatten, Gemm 120/84/10", 17, seed=5,
        outputs={"logits": (1, 10)}, head="logits"),
    "ds_cnn": ZooEntry(
        vision.build_ds_cnn, {"input": (1, 1, 49, 10)},
        "MLPerf Tiny KWS DS-CNN-S: Conv10x4/2 + 4 depthwise-separable blocks, unfolded BN, 12-way softmax",
        17, seed=1049, outputs={"probs": (1, 12)}, head="softmax"),
    "resnet8": ZooEntry(
        vision.build_resnet8, {"input": (1, 3, 32, 32)},
        "MLPerf Tiny CIFAR-10 ResNet-8: 3 residual stacks (16/32/64), 1x1 conv shortcuts, 10-way softmax",
        17, seed=8, outputs={"probs": (1, 10)}, head="softmax"),
    "mobilenet_v1_025": ZooEntry(
        vision.build_mobilenet_v1_025, {"input": (1, 3, 96, 96)},
        "MLPerf Tiny visual wake words MobileNetV1 alpha 0.25 (8..256 ch), Conv1x1 head, 2-way softmax",
        17, seed=96, outputs={"probs": (1, 2)}, head="softmax"),
    "fc_autoencoder": ZooEntry(
        misc.build_fc_autoencoder, {"input": (1, 640)},
        "MLPerf Tiny anomaly-detection autoencoder: (Dense128+BN+ReLU)x4, Dense8+BN+ReLU, (Dense128+BN+ReLU)x4, Dense640",
        17, seed=640, outputs={"reconstruction": (1, 640)}, head="features"),
    "mobilenet_v2": ZooEntry(
        vision.build_mobilenet_v2, {"input": (1, 3, 224, 224)},
        "MobileNetV2 1.0 (torchvision layout), inverted residuals, ReLU6 as Clip(min,max inputs), 1000 logits",
        17, seed=2, outputs={"logits": (1, 1000)}, head="logits"),
    "resnet18": ZooEntry(
        vision.build_resnet18, {"input": (1, 3, 224, 224)},
        "ResNet-18 (torchvision layout, ~11.7M params), 1000 logits", 17, seed=18,
        outputs={"logits": (1, 1000)}, head="logits"),
    "tiny_bert": ZooEntry(
        misc.build_tiny_bert, {"embeddings": (1, 128, 128)},
        "2-layer BERT encoder (hidden 128, 2 heads, FFN 512, LayerNormalization, Erf GELU) on float embeddings",
        17, seed=128, outputs={"last_hidden_state": (1, 128, 128)}, head="features"),
    "tiny_bert_ids": ZooEntry(
        misc.build_tiny_bert_ids, {"input_ids": (1, 128)},
        "tiny_bert plus embedding layer: int64 token ids (vocab 1024) -> Gather -> +positions -> LayerNorm",
        17, seed=129, outputs={"last_hidden_state": (1, 128, 128)}, head="features"),
    "torch_style_mlp": ZooEntry(
        misc.build_torch_style_mlp, {"input": (1, 1, 28, 28)},
        "MLP as torch.onnx.export writes it: Constant-node weights, Shape/Gather/Unsqueeze/Concat/Reshape flatten,"
        " Gemm and MatMul+Add", 17, seed=784, outputs={"output": (1, 10)}, head="logits"),
    "old_opset_cnn": ZooEntry(
        misc.build_old_opset_cnn, {"input": (1, 3, 32, 32)},
        "Small CNN at opset 11 / IR 6: Conv auto_pad + pads, BatchNormalization, Relu, MaxPool, Clip-11, Reshape,"
        " Gemm, Softmax", 11, seed=11, outputs={"probs": (1, 10)}, head="softmax"),
}


def names() -> list[str]:
    """Model names in zoo order."""
    return list(MODELS)


def build(name: str) -> onnx.ModelProto:
    """Build a fresh copy of zoo model ``name`` (deterministic, byte-identical each call)."""
    try:
        entry = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(MODELS)}") from None
    return entry.build()


def save(name: str, path: str | os.PathLike) -> str:
    """Build zoo model ``name`` and write it to ``path``; returns the path written."""
    model = build(name)
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    onnx.save_model(model, path)
    return path


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def random_inputs(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Random feeds for every (non-initializer) graph input of ``model``.

    Float inputs are ~N(0, 1) in the input's dtype.  Integer inputs are uniform in
    [lo, hi) where the model's ``dgc.zoo.input_range.<name>`` metadata gives "lo,hi"
    (default [0, 2)).  Bool inputs are fair coin flips.  Symbolic dims become 1.
    """
    rng = np.random.default_rng(seed)
    meta = {p.key: p.value for p in model.metadata_props}
    feeds: dict[str, np.ndarray] = {}
    for vi in _graph_inputs(model):
        tt = vi.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tt.shape.dim)
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        if dtype.kind == "f":
            feeds[vi.name] = rng.standard_normal(shape, dtype=np.float32).astype(dtype)
        elif dtype.kind in "iu":
            lo, hi = (int(v) for v in meta.get(f"dgc.zoo.input_range.{vi.name}", "0,2").split(","))
            feeds[vi.name] = rng.integers(lo, hi, size=shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[vi.name] = rng.random(shape) < 0.5
        else:
            raise TypeError(f"random_inputs: unsupported dtype {dtype} for input {vi.name!r}")
    return feeds


def param_count(model: onnx.ModelProto) -> int:
    """Number of weight elements: initializers plus Constant-node tensors."""
    total = sum(int(np.prod(t.dims, dtype=np.int64)) for t in model.graph.initializer)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    total += int(np.prod(a.t.dims, dtype=np.int64))
    return total
