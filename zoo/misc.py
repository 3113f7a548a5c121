"""Non-CNN and exporter-style zoo models: autoencoder, tiny BERT, PyTorch-export MLP, opset-11 CNN."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ._graph import GraphBuilder


# --------------------------------------------------------------------------- FC autoencoder
def build_fc_autoencoder(seed: int) -> onnx.ModelProto:
    """MLPerf Tiny anomaly detection (ToyADMOS) dense autoencoder, 640 -> 8 -> 640.

    Dense+BatchNormalization+ReLU blocks; BN runs on 2-D (N, C) activations.
    """
    g = GraphBuilder("fc_autoencoder", seed=seed, opset=17)
    x = g.add_input("input", [1, 640])
    widths = [128, 128, 128, 128, 8, 128, 128, 128, 128]
    fin = 640
    for i, w in enumerate(widths):
        p = f"dense{i}"
        x = g.gemm(x, p, fin, w)
        x = g.batchnorm(x, f"{p}.bn", w)
        x = g.relu(x, f"{p}.relu")
        fin = w
    x = g.gemm(x, "dense9", fin, 640, target_std=1.0, output="reconstruction")
    g.add_output(x, [1, 640])
    return g.make_model("MLPerf Tiny anomaly-detection FC autoencoder (Dense+BN+ReLU), 640-d log-mel frames")


# --------------------------------------------------------------------------- tiny BERT
_BERT_SEQ = 128
_BERT_HIDDEN = 128
_BERT_HEADS = 2
_BERT_FFN = 512
_BERT_LAYERS = 2
_BERT_VOCAB = 1024


def _linear(g: GraphBuilder, x: str, name: str, fin: int, fout: int, gain: float = 1.0) -> str:
    """MatMul + Add (the way transformer exporters emit nn.Linear on 3-D inputs)."""
    w = g.initializer(f"{name}.weight", g.normal((fin, fout), math.sqrt(gain / fin)))
    b = g.initializer(f"{name}.bias", g.normal((fout,), 0.02))
    y = g.node("MatMul", [x, w], f"{name}.matmul")
    return g.node("Add", [y, b], f"{name}.bias_add")


def _layernorm(g: GraphBuilder, x: str, name: str, width: int, output: str | None = None) -> str:
    gamma = g.initializer(f"{name}.weight", g.normal((width,), 0.05, mean=1.0))
    beta = g.initializer(f"{name}.bias", g.normal((width,), 0.02))
    return g.node("LayerNormalization", [x, gamma, beta], name, axis=-1, epsilon=1e-12,
                  outputs=None if output is None else [output])


def _encoder_layer(g: GraphBuilder, x: str, p: str, output: str | None = None) -> str:
    hidden, heads = _BERT_HIDDEN, _BERT_HEADS
    dh = hidden // heads
    split_shape = g.shared("const.heads_shape", np.array([0, 0, heads, dh], dtype=np.int64))
    merge_shape = g.shared("const.merge_shape", np.array([0, 0, hidden], dtype=np.int64))
    scale = g.shared("const.sqrt_head_dim", np.array(math.sqrt(dh), dtype=np.float32))

    a = f"{p}.attention"
    q = _linear(g, x, f"{a}.query", hidden, hidden)
    k = _linear(g, x, f"{a}.key", hidden, hidden)
    v = _linear(g, x, f"{a}.value", hidden, hidden)
    q = g.node("Reshape", [q, split_shape], f"{a}.query.split_heads")
    q = g.node("Transpose", [q], f"{a}.query.transpose", perm=[0, 2, 1, 3])  # [B, H, S, dh]
    k = g.node("Reshape", [k, split_shape], f"{a}.key.split_heads")
    k = g.node("Transpose", [k], f"{a}.key.transpose", perm=[0, 2, 3, 1])  # [B, H, dh, S]
    v = g.node("Reshape", [v, split_shape], f"{a}.value.split_heads")
    v = g.node("Transpose", [v], f"{a}.value.transpose", perm=[0, 2, 1, 3])  # [B, H, S, dh]
    s = g.node("MatMul", [q, k], f"{a}.scores")
    s = g.node("Div", [s, scale], f"{a}.scores.scale")
    s = g.node("Softmax", [s], f"{a}.probs", axis=-1)
    c = g.node("MatMul", [s, v], f"{a}.context")
    c = g.node("Transpose", [c], f"{a}.context.transpose", perm=[0, 2, 1, 3])  # [B, S, H, dh]
    c = g.node("Reshape", [c, merge_shape], f"{a}.context.merge_heads")
    o = _linear(g, c, f"{a}.output.dense", hidden, hidden)
    x = g.node("Add", [o, x], f"{a}.output.residual")
    x = _layernorm(g, x, f"{a}.output.LayerNorm", hidden)

    h = _linear(g, x, f"{p}.intermediate.dense", hidden, _BERT_FFN, gain=2.0)
    # exact GELU: x * 0.5 * (1 + erf(x / sqrt(2)))
    sqrt2 = g.shared("const.sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
    one = g.shared("const.one", np.array(1.0, dtype=np.float32))
    half = g.shared("const.half", np.array(0.5, dtype=np.float32))
    e = g.node("Div", [h, sqrt2], f"{p}.intermediate.gelu.div")
    e = g.node("Erf", [e], f"{p}.intermediate.gelu.erf")
    e = g.node("Add", [e, one], f"{p}.intermediate.gelu.add")
    e = g.node("Mul", [h, e], f"{p}.intermediate.gelu.mul")
    h = g.node("Mul", [e, half], f"{p}.intermediate.gelu.mul_half")
    o = _linear(g, h, f"{p}.output.dense", _BERT_FFN, hidden)
    x = g.node("Add", [o, x], f"{p}.output.residual")
    return _layernorm(g, x, f"{p}.output.LayerNorm", hidden, output=output)


def _bert_encoder(g: GraphBuilder, x: str) -> str:
    for i in range(_BERT_LAYERS):
        last = i == _BERT_LAYERS - 1
        x = _encoder_layer(g, x, f"encoder.layer.{i}", output="last_hidden_state" if last else None)
    return x


def build_tiny_bert(seed: int) -> onnx.ModelProto:
    """2-layer BERT encoder (hidden 128, 2 heads, FFN 512) on float embeddings [1, 128, 128]."""
    g = GraphBuilder("tiny_bert", seed=seed, opset=17)
    x = g.add_input("embeddings", [1, _BERT_SEQ, _BERT_HIDDEN])
    x = _bert_encoder(g, x)
    g.add_output(x, [1, _BERT_SEQ, _BERT_HIDDEN])
    return g.make_model("Tiny BERT encoder (2 layers, hidden 128, 2 heads, FFN 512, exact Erf GELU) on float embeddings")


def build_tiny_bert_ids(seed: int) -> onnx.ModelProto:
    """tiny_bert with its embedding layer: int64 token ids [1, 128] -> Gather -> + positions -> LayerNorm."""
    g = GraphBuilder("tiny_bert_ids", seed=seed, opset=17)
    ids = g.add_input("input_ids", [1, _BERT_SEQ], TensorProto.INT64)
    g.metadata["dgc.zoo.input_range.input_ids"] = f"0,{_BERT_VOCAB}"
    table = g.initializer("embeddings.word_embeddings.weight", g.normal((_BERT_VOCAB, _BERT_HIDDEN), 1.0))
    pos = g.initializer("embeddings.position_embeddings.weight", g.normal((_BERT_SEQ, _BERT_HIDDEN), 0.5))
    x = g.node("Gather", [table, ids], "embeddings.word_embeddings", axis=0)
    x = g.node("Add", [x, pos], "embeddings.add_positions")
    x = _layernorm(g, x, "embeddings.LayerNorm", _BERT_HIDDEN)
    x = _bert_encoder(g, x)
    g.add_output(x, [1, _BERT_SEQ, _BERT_HIDDEN])
    return g.make_model("Tiny BERT with token-id input (vocab 1024, int64 Gather embedding)")


# --------------------------------------------------------------------------- PyTorch-export-style MLP
def build_torch_style_mlp(seed: int) -> onnx.ModelProto:
    """An MLP on a 1x1x28x28 image, laid out the way torch.onnx.export (opset 17) writes it.

    Weights and small values are Constant nodes; ``x.view(x.size(0), -1)`` becomes
    Shape -> Gather -> Unsqueeze -> Concat -> Reshape; Linear layers are Gemm
    (transB=1) and one explicit ``x @ W + b`` MatMul+Add.  Node and tensor names
    follow torch's ``/module/OpType`` and ``..._output_0`` scheme.
    """
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []

    def out(node_name: str) -> str:
        return f"{node_name}_output_0"

    def const(node_name: str, arr: np.ndarray) -> str:
        nodes.append(helper.make_node("Constant", [], [out(node_name)], name=node_name,
                                      value=numpy_helper.from_array(np.asarray(arr, order="C"))))
        return out(node_name)

    def op(op_type: str, node_name: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        o = output or out(node_name)
        nodes.append(helper.make_node(op_type, inputs, [o], name=node_name, **attrs))
        return o

    def weight(shape: tuple[int, ...], fan_in: int, gain: float) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(math.sqrt(gain / fan_in))

    def bias(n: int) -> np.ndarray:
        return rng.standard_normal((n,), dtype=np.float32) * np.float32(0.05)

    x = "input"
    shape = op("Shape", "/Shape", [x])
    zero = const("/Constant", np.array(0, dtype=np.int64))
    batch = op("Gather", "/Gather", [shape, zero], axis=0)
    axes = const("/Constant_1", np.array([0], dtype=np.int64))
    batch1 = op("Unsqueeze", "/Unsqueeze", [batch, axes])
    minus1 = const("/Constant_2", np.array([-1], dtype=np.int64))
    new_shape = op("Concat", "/Concat", [batch1, minus1], axis=0)
    h = op("Reshape", "/Reshape", [x, new_shape], allowzero=0)

    w1 = const("/fc1/Constant", weight((256, 784), 784, 2.0))
    b1 = const("/fc1/Constant_1", bias(256))
    h = op("Gemm", "/fc1/Gemm", [h, w1, b1], alpha=1.0, beta=1.0, transB=1)
    h = op("Relu", "/act1/Relu", [h])
    w2 = const("/fc2/Constant", weight((256, 64), 256, 2.0))  # [in, out] for x @ W
    h = op("MatMul", "/fc2/MatMul", [h, w2])
    b2 = const("/fc2/Constant_1", bias(64))
    h = op("Add", "/fc2/Add", [h, b2])
    h = op("Relu", "/act2/Relu", [h])
    w3 = const("/fc3/Constant", weight((10, 64), 64, 1.0))
    b3 = const("/fc3/Constant_1", bias(10))
    y = op("Gemm", "/fc3/Gemm", [h, w3, b3], output="output", alpha=1.0, beta=1.0, transB=1)

    graph = helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, 10])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="pytorch", producer_version="2.5.0")
    model.ir_version = 8
    model.doc_string = "PyTorch-export-style MLP (Constant-node weights, Shape/Gather/Unsqueeze/Concat/Reshape flatten)"
    return model


# --------------------------------------------------------------------------- opset-11 CNN
def build_old_opset_cnn(seed: int) -> onnx.ModelProto:
    """A small CIFAR-style CNN at opset 11 / IR 6 (auto_pad, BN-9 semantics, Clip-11 min/max inputs)."""
    g = GraphBuilder("old_opset_cnn", seed=seed, opset=11)
    x = g.add_input("input", [1, 3, 32, 32])
    x = g.conv(x, "conv1", 3, 16, 3, auto_pad="SAME_UPPER")
    x = g.batchnorm(x, "bn1", 16)
    x = g.relu(x, "relu1")
    x = g.maxpool(x, "pool1", 2, 2)  # 16x16x16
    x = g.conv(x, "conv2", 16, 32, 3, pads=[1, 1, 1, 1])
    x = g.batchnorm(x, "bn2", 32)
    lo = g.initializer("clip2.min", np.array(0.0, dtype=np.float32))
    hi = g.initializer("clip2.max", np.array(6.0, dtype=np.float32))
    x = g.node("Clip", [x, lo, hi], "clip2")
    x = g.maxpool(x, "pool2", 2, 2)  # 32x8x8
    shape = g.initializer("reshape.shape", np.array([1, -1], dtype=np.int64))
    x = g.node("Reshape", [x, shape], "reshape")
    x = g.gemm(x, "fc", 32 * 8 * 8, 10, target_std=2.0)
    x = g.node("Softmax", [x], "softmax", outputs=["probs"], axis=1)
    g.add_output(x, [1, 10])
    return g.make_model("Small CNN exported at opset 11 (IR 6)")
