"""A plain C program for an ONNX model: the benchmark's reference (bench/cortexm.py).

`emit_c(model, name)` returns the C source of `int <name>_run(const float *input0, ...,
float *output0, ..., void *arena)` -- the signature of a dgc-compiled model, so the same
harness runs both -- and the `ModelSpec` that describes it (arena size 0: the reference
keeps its intermediates in static buffers, one per tensor). Weights become `const float`
arrays (exact hex literals); every node becomes one call of a kernel of kernels.h, in graph
order, with a `static const` parameter struct (the kernels are inlined, so GCC sees the
shapes); Flatten/Reshape/Squeeze/Unsqueeze/Identity/Dropout alias their input (a copy only
when they produce a graph output). Float32 tensors only; anything else raises
NotImplementedError naming the node.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import onnx
from dgc.spec import ModelSpec, TensorSpec

from .graph import Graph, attrs

KERNELS_DIR = os.path.dirname(os.path.abspath(__file__))
_HANDLERS: dict[str, Callable] = {}


def _op(*names):
    def register(fn):
        for name in names:
            _HANDLERS[name] = fn
        return fn
    return register


def _literal(v: float) -> str:
    """Exact C float literal (hex), e.g. -0x1.8p+1f."""
    mant, exp = float(v).hex().split("p")
    mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
    return f"{mant}p{exp}f"


class _Emitter:
    def __init__(self, graph: Graph, name: str):
        self.g, self.name = graph, name
        self.expr: dict[str, str] = {}
        self.decls: list[str] = []
        self.body: list[str] = []
        self.n_decl = 0
        for i, t in enumerate(graph.inputs):
            self.expr[t] = f"input{i}"
        for i, t in enumerate(graph.outputs):
            self.expr.setdefault(t, f"output{i}")
        self.written: set[str] = set(graph.inputs)

    def _fresh(self, prefix: str) -> str:
        self.n_decl += 1
        return f"{prefix}{self.n_decl}"

    def read(self, tensor: str) -> str:
        """C expression of a float tensor: an input, a computed buffer or a weight array."""
        if tensor in self.written:
            return self.expr[tensor]
        if tensor not in self.g.consts:
            raise ValueError(f"tensor {tensor!r} is read before it is computed")
        data = np.asarray(self.g.consts[tensor], dtype=np.float32).reshape(-1)
        sym = self._fresh("w")
        values = [_literal(v) for v in data.tolist()] or ["0"]
        rows = [", ".join(values[i:i + 8]) for i in range(0, len(values), 8)]
        self.decls.append(f"/* {tensor} {list(self.g.shapes[tensor])} */\n"
                          f"static const float {sym}[{max(data.size, 1)}] = {{\n    "
                          + ",\n    ".join(rows) + "\n};")
        self.expr[tensor] = sym
        self.written.add(tensor)
        return sym

    def write(self, tensor: str) -> str:
        """C expression to store a node's output: the graph output or a new static buffer."""
        if tensor not in self.expr:
            sym = self._fresh("t")
            self.decls.append(f"static float {sym}[{max(self.g.size(tensor), 1)}] DGC_BIG;")
            self.expr[tensor] = sym
        self.written.add(tensor)
        return self.expr[tensor]

    def alias(self, out: str, src: str) -> None:
        if out in self.g.outputs:
            self.call("ref_copy", self.read(src), self.write(out), self.g.size(out))
        else:
            self.expr[out] = self.read(src)
            self.written.add(out)

    def params(self, struct: str, **fields) -> str:
        sym = self._fresh("p")
        init = ", ".join(f".{k} = {_c_value(v)}" for k, v in fields.items())
        self.decls.append(f"static const struct {struct} {sym} = {{{init}}};")
        return "&" + sym

    def call(self, fn: str, *args) -> None:
        self.body.append(f"    {fn}({', '.join(_c_value(a) for a in args)});")

    def const_float(self, tensor: str, node, default: float) -> float:
        if not tensor:
            return default
        if tensor not in self.g.consts:
            raise NotImplementedError(f"{_where(node)}: input {tensor!r} must be a constant")
        return float(np.asarray(self.g.consts[tensor]).reshape(-1)[0])


def _c_value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "{" + ", ".join(_c_value(x) for x in v) + "}"
    if isinstance(v, float):
        return "INFINITY" if v == math.inf else "-INFINITY" if v == -math.inf else _literal(v)
    return str(v)


def _where(node) -> str:
    return f'ONNX node "{node.name}" ({node.op_type})'


def _pads_2d(a, in_hw, out_hw, kernel, strides, dilations):
    """[top, left, bottom, right] from pads or auto_pad."""
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", "VALID"):
        pads = list(a.get("pads", [0, 0, 0, 0])) if auto == "NOTSET" else [0, 0, 0, 0]
        return [pads[0], pads[1], pads[2], pads[3]]
    begin, end = [], []
    for i in range(2):
        total = max((out_hw[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_hw[i], 0)
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return [begin[0], begin[1], end[0], end[1]]


def _spatial(e, node, rank=4):
    x, y = node.input[0], node.output[0]
    if len(e.g.shape(x)) != rank:
        raise NotImplementedError(f"{_where(node)}: only {rank - 2}-D spatial inputs are supported")
    return e.g.shape(x), e.g.shape(y)


@_op("Conv")
def _conv(e, node, a):
    (n, c, h, w), (_, cout, oh, ow) = _spatial(e, node)
    kh, kw = e.g.shape(node.input[1])[2:]
    s, d = a.get("strides", [1, 1]), a.get("dilations", [1, 1])
    pads = _pads_2d(a, (h, w), (oh, ow), (kh, kw), s, d)
    p = e.params("ref_conv", n=n, c_in=c, h=h, w=w, c_out=cout, oh=oh, ow=ow, kh=kh, kw=kw,
                 sh=s[0], sw=s[1], pad_t=pads[0], pad_l=pads[1], dh=d[0], dw=d[1],
                 group=a.get("group", 1))
    bias = e.read(node.input[2]) if len(node.input) > 2 and node.input[2] else "0"
    depthwise = a.get("group", 1) == c > 1
    e.call("ref_depthwise_conv2d" if depthwise else "ref_conv2d", e.read(node.input[0]),
           e.read(node.input[1]), bias, e.write(node.output[0]), p)


def _pool_params(e, node, a, include_pad=0):
    (n, c, h, w), (_, _, oh, ow) = _spatial(e, node)
    k, s = a["kernel_shape"], a.get("strides", [1, 1])
    if any(v != 1 for v in a.get("dilations", [1, 1])) or len(node.output) > 1:
        raise NotImplementedError(f"{_where(node)}: dilations and Indices are not supported")
    pads = _pads_2d(a, (h, w), (oh, ow), k, s, [1, 1])
    return e.params("ref_pool", planes=n * c, h=h, w=w, oh=oh, ow=ow, kh=k[0], kw=k[1],
                    sh=s[0], sw=s[1], pad_t=pads[0], pad_l=pads[1], pad_b=pads[2],
                    pad_r=pads[3], count_include_pad=include_pad)


@_op("MaxPool")
def _maxpool(e, node, a):
    p = _pool_params(e, node, a)
    e.call("ref_maxpool2d", e.read(node.input[0]), e.write(node.output[0]), p)


@_op("AveragePool")
def _avgpool(e, node, a):
    p = _pool_params(e, node, a, a.get("count_include_pad", 0))
    e.call("ref_avgpool2d", e.read(node.input[0]), e.write(node.output[0]), p)


@_op("GlobalAveragePool")
def _global_avgpool(e, node, a):
    shape = e.g.shape(node.input[0])
    e.call("ref_global_avgpool", e.read(node.input[0]), e.write(node.output[0]),
           shape[0] * shape[1], int(np.prod(shape[2:])))


@_op("Gemm")
def _gemm(e, node, a):
    ta, tb = a.get("transA", 0), a.get("transB", 0)
    (m, k) = e.g.shape(node.input[0])[::-1] if ta else e.g.shape(node.input[0])
    n = e.g.shape(node.output[0])[1]
    c, c_sm, c_sn = "0", 0, 0
    if len(node.input) > 2 and node.input[2]:
        cshape = (1, 1, *e.g.shape(node.input[2]))[-2:]
        c, c_sm, c_sn = e.read(node.input[2]), (cshape[1] if cshape[0] != 1 else 0), int(cshape[1] != 1)
    p = e.params("ref_gemm", m=m, n=n, k=k, a_sm=1 if ta else k, a_sk=m if ta else 1,
                 b_sk=1 if tb else n, b_sn=k if tb else 1, c_sm=c_sm, c_sn=c_sn,
                 alpha=float(a.get("alpha", 1.0)), beta=float(a.get("beta", 1.0)))
    e.call("ref_gemm", e.read(node.input[0]), e.read(node.input[1]), c, e.write(node.output[0]), p)


@_op("MatMul")
def _matmul(e, node, a):
    sa, sb = e.g.shape(node.input[0]), e.g.shape(node.input[1])
    if len(sa) < 2 or len(sb) < 2:
        raise NotImplementedError(f"{_where(node)}: 1-D MatMul operands are not supported")
    m, k, n = sa[-2], sa[-1], sb[-1]
    if len(sb) == 2 or all(d == 1 for d in sb[:-2]):  # shared B: fold A's batch into rows
        args = (1, int(np.prod(sa[:-1])), k, n, 0, 0)
    elif tuple(sa[:-2]) == tuple(sb[:-2]):
        args = (int(np.prod(sa[:-2])), m, k, n, m * k, k * n)
    else:
        raise NotImplementedError(f"{_where(node)}: broadcast batch dimensions are not supported")
    e.call("ref_matmul", e.read(node.input[0]), e.read(node.input[1]), e.write(node.output[0]), *args)


def _strides(shape, out):
    shape = (1,) * (len(out) - len(shape)) + tuple(shape)
    dense = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]
    return [0 if d == 1 and o != 1 else st for d, o, st in zip(shape, out, dense)]


@_op("Add", "Sub", "Mul", "Div")
def _binary(e, node, a):
    out = e.g.shape(node.output[0])
    sa, sb = e.g.shape(node.input[0]), e.g.shape(node.input[1])
    while len(out) > 4 and out[0] == 1:
        out = out[1:]
    if len(out) > 4:
        raise NotImplementedError(f"{_where(node)}: more than 4 dimensions")
    pad = (1,) * (4 - len(out))
    flat = int(tuple(sa) == tuple(sb) == tuple(e.g.shape(node.output[0])))
    sa_, sb_ = (_strides(s[-len(out):] if len(s) > len(out) else s, out) for s in (sa, sb))
    p = e.params("ref_bcast", flat=flat, n=e.g.size(node.output[0]), shape=list(pad + tuple(out)),
                 a_stride=[0] * len(pad) + sa_, b_stride=[0] * len(pad) + sb_)
    fn = {"Add": "ref_add", "Sub": "ref_sub", "Mul": "ref_mul", "Div": "ref_div"}[node.op_type]
    e.call(fn, e.read(node.input[0]), e.read(node.input[1]), e.write(node.output[0]), p)


@_op("BatchNormalization")
def _batchnorm(e, node, a):
    shape = e.g.shape(node.input[0])
    if len(node.output) > 1 and any(node.output[1:]) or a.get("training_mode", 0):
        raise NotImplementedError(f"{_where(node)}: training mode is not supported")
    e.call("ref_batchnorm", *(e.read(t) for t in node.input[:5]), float(a.get("epsilon", 1e-5)),
           e.write(node.output[0]), shape[0], shape[1], int(np.prod(shape[2:])))


@_op("Softmax")
def _softmax(e, node, a):
    shape = e.g.shape(node.input[0])
    axis = a.get("axis", -1 if e.g.opset >= 13 else 1) % len(shape)
    outer = int(np.prod(shape[:axis]))
    if e.g.opset >= 13:
        length, inner = shape[axis], int(np.prod(shape[axis + 1:]))
    else:  # opset < 13: the input is coerced to 2-D at `axis`
        length, inner = int(np.prod(shape[axis:])), 1
    e.call("ref_softmax", e.read(node.input[0]), e.write(node.output[0]), outer, length, inner)


@_op("Relu", "Sigmoid")
def _unary(e, node, a):
    fn = {"Relu": "ref_relu", "Sigmoid": "ref_sigmoid"}[node.op_type]
    e.call(fn, e.read(node.input[0]), e.write(node.output[0]), e.g.size(node.output[0]))


@_op("Clip")
def _clip(e, node, a):
    if e.g.opset < 11:
        lo, hi = float(a.get("min", -3.4028234663852886e38)), float(a.get("max", 3.4028234663852886e38))
    else:
        ins = list(node.input) + ["", ""]
        lo, hi = e.const_float(ins[1], node, -math.inf), e.const_float(ins[2], node, math.inf)
    e.call("ref_clip", e.read(node.input[0]), e.write(node.output[0]), e.g.size(node.output[0]), lo, hi)


@_op("Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout")
def _alias(e, node, a):
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        raise NotImplementedError(f"{_where(node)}: the mask output is not supported")
    e.alias(node.output[0], node.input[0])


def _check_float(g: Graph) -> None:
    for t in (*g.inputs, *g.outputs):
        if g.dtypes.get(t) != np.float32:
            raise NotImplementedError(f"graph tensor {t!r} is {g.dtypes.get(t)}; only float32")


def spec_for(model: onnx.ModelProto, name: str) -> ModelSpec:
    g = Graph(model)
    _check_float(g)
    return ModelSpec(name, tuple(TensorSpec(t, g.shape(t), "float32") for t in g.inputs),
                     tuple(TensorSpec(t, g.shape(t), "float32") for t in g.outputs), arena_size=0)


def emit_c(model: onnx.ModelProto, name: str) -> tuple[str, ModelSpec]:
    """C source of `<name>_run` for `model`, and its ModelSpec."""
    g = Graph(model)
    _check_float(g)
    e = _Emitter(g, name)
    for node in g.nodes:
        handler = _HANDLERS.get(node.op_type)
        if handler is None or node.domain not in ("", "ai.onnx"):
            raise NotImplementedError(f"{_where(node)}: no C reference kernel")
        handler(e, node, attrs(node))
    for i, t in enumerate(g.outputs):
        if e.expr[t] != f"output{i}" or t not in e.written:  # an input or constant as output
            e.call("ref_copy", e.read(t), f"output{i}", g.size(t))
    ins = [f"const float *input{i}" for i in range(len(g.inputs))]
    outs = [f"float *output{i}" for i in range(len(g.outputs))]
    src = [f"/* {name}.c -- plain C reference generated by bench/cref/emit.py; do not edit. */",
           "#include <math.h>", "#include <stddef.h>", "", '#include "dgc_runtime.h"',
           '#include "kernels.h"', "", *e.decls, "",
           f"int {name}_run({', '.join(ins + outs + ['void *arena'])})", "{", "    (void)arena;",
           *e.body, "    return 0;", "}", ""]
    return "\n".join(src), spec_for(model, name)
