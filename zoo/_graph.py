"""Small deterministic graph-building helper used by the model zoo.

Every node gets a unique, human-readable ``name``; the node's (single) output
tensor carries the same name unless told otherwise, so a tensor can be traced
back to the layer that produced it.  All random values come from one
``numpy.random.Generator`` seeded per model, and are drawn in graph order, so
building a model twice gives byte-identical protos.

Scales: convolutions and linear layers use He init.  The builder also keeps a
rough per-channel (mean, variance) estimate of each activation, assuming N(0, 1)
graph inputs and independent inputs to each layer, and gives every
BatchNormalization running statistics close to that estimate -- as a trained
network's would be -- so activations stay O(1) through deep and residual
stacks.  Classifier heads can be calibrated from the same estimate
(``target_std``).  The estimates are only a guide for picking weights; they are
plain float64 numpy arithmetic (no BLAS), so they are reproducible too.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# ONNX IR version to stamp per opset.  onnx 1.23's make_model writes IR 14,
# which onnxruntime 1.31 refuses; these are the IR versions that go with the
# opsets (opset 11 -> IR 6, opset 13 -> IR 7, opset 17 -> IR 8).
IR_VERSION_FOR_OPSET = {11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8}

PRODUCER_NAME = "dgc.zoo"
PRODUCER_VERSION = "0.1.0"


def _pair(v: int | Sequence[int]) -> list[int]:
    if isinstance(v, int):
        return [v, v]
    return [int(x) for x in v]


class GraphBuilder:
    """Accumulates nodes, initializers and graph I/O for one model."""

    def __init__(self, graph_name: str, *, seed: int, opset: int):
        self.graph_name = graph_name
        self.opset = opset
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.metadata: dict[str, str] = {}
        self._node_names: set[str] = set()
        self._tensor_names: set[str] = set()
        # Per-channel (mean, variance) estimates of activations, float64, keyed by
        # tensor name; used to give BatchNormalization "trained-looking" running
        # statistics that actually match the data the layer sees.
        self.stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------ names
    def _claim_tensor(self, name: str) -> str:
        if name in self._tensor_names:
            raise ValueError(f"duplicate tensor name {name!r} in {self.graph_name}")
        self._tensor_names.add(name)
        return name

    # -------------------------------------------------------------- graph I/O
    def add_input(self, name: str, shape: Sequence[int], elem_type: int = TensorProto.FLOAT) -> str:
        """Graph input; float inputs are assumed ~N(0, 1) per channel (axis 1)."""
        self._claim_tensor(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        if elem_type == TensorProto.FLOAT and len(shape) >= 2:
            c = int(shape[1])
            self.stats[name] = (np.zeros(c), np.ones(c))
        return name

    def add_output(self, name: str, shape: Sequence[int], elem_type: int = TensorProto.FLOAT) -> str:
        if name not in self._tensor_names:
            raise ValueError(f"graph output {name!r} is not produced by any node")
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        return name

    def initializer(self, name: str, array: np.ndarray) -> str:
        self._claim_tensor(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, order="C"), name))
        return name

    def shared(self, name: str, array: np.ndarray) -> str:
        """An initializer that several nodes may reference (created once)."""
        if name not in self._tensor_names:
            self.initializer(name, array)
        return name

    def node(
        self,
        op_type: str,
        inputs: Sequence[str],
        name: str,
        *,
        outputs: Sequence[str] | None = None,
        **attrs,
    ) -> str:
        """Append a node; returns its first output tensor name."""
        if name in self._node_names:
            raise ValueError(f"duplicate node name {name!r} in {self.graph_name}")
        self._node_names.add(name)
        outs = [name] if outputs is None else list(outputs)
        for o in outs:
            if o:
                self._claim_tensor(o)
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=name, **attrs))
        return outs[0]

    # ----------------------------------------------------------- random data
    def normal(self, shape: Sequence[int], std: float, mean: float = 0.0) -> np.ndarray:
        a = self.rng.standard_normal(tuple(shape), dtype=np.float32)
        a *= np.float32(std)
        if mean:
            a += np.float32(mean)
        return a

    def uniform(self, shape: Sequence[int], lo: float, hi: float) -> np.ndarray:
        return self.rng.uniform(lo, hi, size=tuple(shape)).astype(np.float32)

    # ---------------------------------------------------------------- layers
    def conv(
        self,
        x: str,
        name: str,
        cin: int,
        cout: int,
        kernel: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        pads: Sequence[int] | None = None,
        auto_pad: str | None = None,
        group: int = 1,
        bias: bool = True,
        gain: float = 2.0,
        target_std: float | None = None,
    ) -> str:
        """Conv with He-style init (std = sqrt(gain / fan_in)).

        ``target_std`` instead scales the weights so the output std is about that
        value given the input's estimated statistics (used for classifier heads).
        ``pads`` defaults to symmetric "same" padding (k-1)//2 when neither
        pads nor auto_pad is given.
        """
        kh, kw = _pair(kernel)
        fan_in = (cin // group) * kh * kw
        weight, b = self._weights(x, (cout, cin // group, kh, kw), fan_in, gain=gain, target_std=target_std,
                                  bias=bias, taps=kh * kw if group == 1 else 0)
        w = self.initializer(f"{name}.weight", weight)
        ins = [x, w]
        if b is not None:
            ins.append(self.initializer(f"{name}.bias", b))
        attrs: dict = dict(dilations=[1, 1], group=group, kernel_shape=[kh, kw], strides=_pair(stride))
        if auto_pad is not None:
            attrs["auto_pad"] = auto_pad
        else:
            if pads is None:
                pads = [(kh - 1) // 2, (kw - 1) // 2, (kh - 1) // 2, (kw - 1) // 2]
            attrs["pads"] = list(pads)
        y = self.node("Conv", ins, name, **attrs)
        self._linear_stats(x, y, weight.sum(axis=(2, 3)), (weight.astype(np.float64) ** 2).sum(axis=(2, 3)), b, group)
        return y

    def _weights(self, x: str, shape: tuple[int, ...], fan_in: int, *, gain: float, target_std: float | None,
                 bias: bool, taps: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Weight (+ bias) for a conv/linear layer reading ``x``.

        Default: He-style N(0, gain / fan_in), bias N(0, 0.05).  With ``target_std``
        (classifier heads) and known input statistics, the bias cancels the
        layer's response to the input's mean and the weights are scaled so the
        input-dependent part of the output has std ~target_std, like a trained
        head whose logits actually depend on the input.
        """
        est = self.stats.get(x)
        calibrated = (target_std is not None and est is not None and taps > 0
                      and est[0].shape[0] * taps == fan_in)
        if target_std is None:
            std = math.sqrt(gain / fan_in)
        elif calibrated:
            m, v = est
            power = np.sum(v) if bias else np.sum(m * m + v)
            std = target_std / math.sqrt(taps * float(power))
        else:
            std = target_std / math.sqrt(fan_in)
        w = self.normal(shape, std)
        b = self.normal((shape[0],), 0.05) if bias else None
        if calibrated and b is not None:
            wsum = w.astype(np.float64).reshape(shape[0], -1, taps).sum(axis=2)
            b = (b - (wsum * est[0]).sum(axis=1)).astype(np.float32)
        return w, b

    def _linear_stats(self, x: str, y: str, wsum: np.ndarray, w2sum: np.ndarray, b: np.ndarray | None,
                      group: int = 1) -> None:
        """Propagate per-channel stats through y = W x + b (inputs taken as independent)."""
        if x not in self.stats:
            return
        m, v = self.stats[x]
        cout, cin_g = wsum.shape
        if m.shape[0] != cin_g * group:
            return
        gidx = np.arange(cout) // (cout // group)
        mg, vg = m.reshape(group, cin_g)[gidx], v.reshape(group, cin_g)[gidx]
        mean = (wsum.astype(np.float64) * mg).sum(axis=1)
        var = (w2sum * vg).sum(axis=1)
        if b is not None:
            mean = mean + b
        self.stats[y] = (mean, var)

    def batchnorm(
        self,
        x: str,
        name: str,
        channels: int,
        *,
        gamma: float = 1.0,
        epsilon: float = 1e-5,
    ) -> str:
        """Inference BatchNormalization with plausible "trained" statistics.

        scale ~ gamma * N(1, 0.1), bias ~ N(0, 0.1).  The running mean/var are the
        estimated per-channel mean/variance of the incoming activations, perturbed
        (mean + N(0, 0.1 sigma), var * U(0.8, 1.25)), as a trained network's would
        roughly match its data; without an estimate they are ~N(0, 0.1) / U(0.6, 1.4).
        Variances are always strictly positive.
        """
        c = (channels,)
        scale = self.normal(c, 0.1 * gamma, mean=gamma)
        beta = self.normal(c, 0.1)
        noise_m = self.normal(c, 0.1)
        noise_v = self.uniform(c, 0.8, 1.25)
        est = self.stats.get(x)
        if est is not None and est[0].shape == c:
            m_in, v_in = est
            v_in = np.maximum(v_in, 1e-4)
            mean = (m_in + noise_m * np.sqrt(v_in)).astype(np.float32)
            variance = (v_in * noise_v).astype(np.float32)
        else:
            m_in = v_in = None
            mean = noise_m
            variance = self.uniform(c, 0.6, 1.4)
        ins = [
            x,
            self.initializer(f"{name}.weight", scale),
            self.initializer(f"{name}.bias", beta),
            self.initializer(f"{name}.running_mean", mean),
            self.initializer(f"{name}.running_var", variance),
        ]
        y = self.node("BatchNormalization", ins, name, epsilon=epsilon, momentum=0.9)
        if m_in is not None:
            inv = scale.astype(np.float64) / np.sqrt(variance.astype(np.float64) + epsilon)
            self.stats[y] = (inv * (m_in - mean) + beta, inv**2 * v_in)
        return y

    def _relu_stats(self, x: str, y: str) -> None:
        """Moments of relu(N(m, v)) per channel."""
        if x not in self.stats:
            return
        m, v = self.stats[x]
        s = np.sqrt(np.maximum(v, 1e-12))
        z = m / s
        cdf = np.array([0.5 * (1.0 + math.erf(t / math.sqrt(2.0))) for t in z])
        pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        e1 = m * cdf + s * pdf
        e2 = (m * m + v) * cdf + m * s * pdf
        self.stats[y] = (e1, np.maximum(e2 - e1 * e1, 1e-12))

    def relu(self, x: str, name: str) -> str:
        y = self.node("Relu", [x], name)
        self._relu_stats(x, y)
        return y

    def relu6(self, x: str, name: str) -> str:
        """ReLU6 as Clip with min/max *inputs* (opset >= 11 form)."""
        lo = self.shared("relu6.min", np.array(0.0, dtype=np.float32))
        hi = self.shared("relu6.max", np.array(6.0, dtype=np.float32))
        y = self.node("Clip", [x, lo, hi], name)
        self._relu_stats(x, y)  # the upper clamp is rarely hit at these scales
        return y

    def maxpool(self, x: str, name: str, kernel: int, stride: int, pads: Sequence[int] | None = None) -> str:
        attrs: dict = dict(kernel_shape=_pair(kernel), strides=_pair(stride))
        if pads is not None:
            attrs["pads"] = list(pads)
        y = self.node("MaxPool", [x], name, **attrs)
        if x in self.stats:
            # max of n roughly-independent samples: mean shifts up ~c_n sigma, spread shrinks
            n = _pair(kernel)[0] * _pair(kernel)[1]
            shift, shrink = {4: (1.03, 0.49), 9: (1.49, 0.37)}.get(n, (1.0, 0.5))
            m, v = self.stats[x]
            self.stats[y] = (m + shift * np.sqrt(v), shrink * v)
        return y

    def _pool_stats(self, x: str, y: str, n: int) -> None:
        # Averaging keeps the mean.  The variance of an average of n correlated
        # values lies between v/n (independent) and v (fully correlated); take
        # the geometric middle, v/sqrt(n).
        if x in self.stats:
            m, v = self.stats[x]
            self.stats[y] = (m, v / math.sqrt(n))

    def avgpool(self, x: str, name: str, kernel: int | Sequence[int], stride: int | Sequence[int] | None = None) -> str:
        k = _pair(kernel)
        s = k if stride is None else _pair(stride)
        y = self.node("AveragePool", [x], name, kernel_shape=k, strides=s, pads=[0, 0, 0, 0])
        self._pool_stats(x, y, k[0] * k[1])
        return y

    def global_avgpool(self, x: str, name: str, spatial: int) -> str:
        """GlobalAveragePool over ``spatial`` (= H*W) positions."""
        y = self.node("GlobalAveragePool", [x], name)
        self._pool_stats(x, y, spatial)
        return y

    def flatten(self, x: str, name: str, axis: int = 1, spatial: int = 1) -> str:
        """Flatten an [N, C, H, W] tensor (H*W = ``spatial``) to [N, C*H*W]."""
        y = self.node("Flatten", [x], name, axis=axis)
        if x in self.stats:
            m, v = self.stats[x]
            self.stats[y] = (np.repeat(m, spatial), np.repeat(v, spatial))
        return y

    def gemm(self, x: str, name: str, fin: int, fout: int, *, gain: float = 2.0, bias: bool = True,
             target_std: float | None = None, output: str | None = None) -> str:
        """PyTorch-Linear-style Gemm: y = x @ W^T + b, W is [fout, fin], init std sqrt(gain/fin)
        (or calibrated to an output std of ~target_std, see conv())."""
        weight, b = self._weights(x, (fout, fin), fin, gain=gain, target_std=target_std, bias=bias, taps=1)
        ins = [x, self.initializer(f"{name}.weight", weight)]
        if b is not None:
            ins.append(self.initializer(f"{name}.bias", b))
        y = self.node("Gemm", ins, name, outputs=None if output is None else [output],
                      alpha=1.0, beta=1.0, transB=1)
        self._linear_stats(x, y, weight, weight.astype(np.float64) ** 2, b)
        return y

    def softmax(self, x: str, name: str, axis: int = -1) -> str:
        return self.node("Softmax", [x], name, axis=axis)

    def add(self, a: str, b: str, name: str) -> str:
        y = self.node("Add", [a, b], name)
        if a in self.stats and b in self.stats and self.stats[a][0].shape == self.stats[b][0].shape:
            self.stats[y] = (self.stats[a][0] + self.stats[b][0], self.stats[a][1] + self.stats[b][1])
        return y

    # ----------------------------------------------------------------- model
    def make_model(self, doc: str = "") -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, self.graph_name, self.inputs, self.outputs, initializer=self.initializers, doc_string=doc
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", self.opset)],
            producer_name=PRODUCER_NAME,
            producer_version=PRODUCER_VERSION,
        )
        model.ir_version = IR_VERSION_FOR_OPSET[self.opset]
        for k in sorted(self.metadata):
            entry = model.metadata_props.add()
            entry.key = k
            entry.value = self.metadata[k]
        return model
