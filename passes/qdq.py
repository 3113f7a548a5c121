"""QDQ patterns to integer operators: DequantizeLinear -> Conv/Gemm -> QuantizeLinear.

A QDQ model (onnxruntime.quantization's default format) keeps float operators between
DequantizeLinear and QuantizeLinear nodes. Run literally, every conv dequantizes its int8
weights and input, convolves in float and quantizes again; the weights end up float in flash
(4x larger). Here each

    x_q -> DQ -\\
    w_q -> DQ --> Conv / Gemm -> Q -> y_q          (w_q, b_q and every scale/zero point constant)
    b_q -> DQ -/  (int32, scale x_scale * w_scale, zero point 0; optional)

becomes one QLinearConv (a Gemm becomes a 1x1 QLinearConv between reshapes): int8 x int8
products summed in int32 plus the int32 bias, requantized once - what onnxruntime itself runs
for such a model. Weights stay int8. Anything that does not match exactly (a float bias, a
per-channel axis other than the output channel, alpha/beta != 1, the float result used
elsewhere) is left as it is.

MaxPool and the reshaping ops between a DequantizeLinear and a QuantizeLinear of the same
scale and zero point run on the int8 values directly (exact: they only move or select), and so
does a Concat whose inputs all share the output's quantization.

DQ -> Add -> Q, DQ -> AveragePool -> Q and DQ -> GlobalAveragePool -> Q (per-tensor constant
quantization, one int8/uint8 type throughout) become onnxruntime's com.microsoft QLinearAdd,
QLinearAveragePool and QLinearGlobalAveragePool - the ops onnxruntime's own QDQ fusion runs -
which dgc computes in integers only (`frontend/ops/qlinear.py`).

Contract: `run(model, consts)` runs before constant folding (which would turn DQ(w_q) into a
float weight); it rewrites `model.graph.node` in place, keeping topological order, node names
and graph outputs; `consts` holds the initializers as numpy arrays and gains new constants.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

_DEFAULT = ("", "ai.onnx")
_INT8 = (np.int8, np.uint8)
# ops that only move or select values (max is monotonic): between a DequantizeLinear and a
# QuantizeLinear with the same scale and zero point they run on the integers unchanged
_ORDER_PRESERVING = ("MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze")
_INTEGER_OPS = ("Add", "AveragePool", "GlobalAveragePool", "Concat")
CONTRIB = "com.microsoft"


def run(model: onnx.ModelProto, consts: dict[str, np.ndarray]) -> None:
    g = model.graph
    nodes = list(g.node)
    producer = {o: n for n in nodes for o in n.output}
    users: dict[str, list] = {}
    for n in nodes:
        for name in n.input:
            users.setdefault(name, []).append(n)
    outputs = {o.name for o in g.output}
    replaced: dict[int, list] = {}  # id(node) -> nodes standing in its place
    dropped: set[int] = set()
    for node in nodes:
        if node.op_type in _INTEGER_OPS and node.domain in _DEFAULT:
            new, q = _integer_op(node, producer, users, outputs, consts)
            if new is not None:
                replaced[id(node)] = [new]
                dropped.add(id(q))
                if new.domain == CONTRIB:
                    _import_contrib(model)
            continue
        if node.op_type in _ORDER_PRESERVING and node.domain in _DEFAULT:
            new, q = _order_preserving(node, producer, users, outputs, consts)
            if new is not None:
                replaced[id(node)] = [new]
                dropped.add(id(q))
            continue
        if node.op_type not in ("Conv", "Gemm") or node.domain not in _DEFAULT:
            continue
        m = _match(node, producer, users, outputs, consts)
        if m is None:
            continue
        new = _conv(node, m, consts) if node.op_type == "Conv" else _gemm(node, m, consts)
        if new is None:
            continue
        replaced[id(node)] = new
        dropped.add(id(m["q"]))
    if not replaced:
        return
    kept = []
    for n in nodes:
        if id(n) in dropped:
            continue
        kept.extend(replaced.get(id(n), [n]))
    # DequantizeLinear nodes whose float output nobody reads any more
    while True:
        read = {name for n in kept for name in n.input} | outputs
        dead = [n for n in kept if n.op_type == "DequantizeLinear" and n.output[0] not in read]
        if not dead:
            break
        kept = [n for n in kept if n not in dead]
    del g.node[:]
    g.node.extend(kept)
    have = {i.name for i in g.initializer}
    g.initializer.extend(numpy_helper.from_array(v, n) for n, v in consts.items() if n not in have)


def _import_contrib(model) -> None:
    if not any(o.domain == CONTRIB for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(CONTRIB, 1))


def _per_tensor(d, dtype=None) -> bool:
    """A DequantizeLinear match with a scalar scale and explicit scalar zero point (of `dtype`)."""
    return d is not None and d["scale_value"].size == 1 and d["zp"] is not None and d["zp"].size == 1 \
        and d["zp"].dtype in _INT8 and (dtype is None or d["zp"].dtype == dtype)


def _integer_op(node, producer, users, outputs, consts):
    """DQ -> Add / AveragePool / GlobalAveragePool / Concat -> Q in integers: (new node, the Q
    it replaces) or (None, None)."""
    q = _sole_q(node, users, outputs, consts)
    if q is None or len(node.output) != 1:
        return None, None
    n_in = len(node.input) if node.op_type in ("Add", "Concat") else 1
    ins = [_dq(name, producer, consts, const_input=False) for name in node.input[:n_in]]
    if not ins or not all(_per_tensor(d, q["zp"].dtype) for d in ins):
        return None, None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    out = [q["node"].output[0]]
    y = [q["node"].input[1], q["node"].input[2]]
    if node.op_type == "Concat":  # exact when every input has the output's quantization
        if any(np.float32(d["scale_value"]) != np.float32(q["scale"]) or int(d["zp"]) != int(q["zp"]) for d in ins):
            return None, None
        new = helper.make_node("Concat", [d["q"] for d in ins], out, name=node.name)
    elif node.op_type == "Add":
        a, b = ins
        new = helper.make_node("QLinearAdd", [a["q"], a["scale"], a["zp_name"], b["q"], b["scale"], b["zp_name"], *y],
                               out, name=node.name, domain=CONTRIB)
    else:
        if any(d != 1 for d in attrs.pop("dilations", [])):
            return None, None  # QLinearAveragePool has no dilations
        op = "Q" + "Linear" + node.op_type
        x = ins[0]
        new = helper.make_node(op, [x["q"], x["scale"], x["zp_name"], *y], out, name=node.name, domain=CONTRIB)
        new.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
        return new, q["node"]
    new.attribute.extend(node.attribute)
    return new, q["node"]


def _order_preserving(node, producer, users, outputs, consts):
    """DQ -> MaxPool/Reshape/... -> Q with equal quantization: the op on the int8 input."""
    x = _dq(node.input[0], producer, consts, const_input=False)
    q = _sole_q(node, users, outputs, consts)
    if x is None or q is None or len(node.output) != 1 or x["scale_value"].size != 1 \
            or x["zp"] is None or x["zp"].size != 1 or x["zp"].dtype != q["zp"].dtype \
            or np.float32(q["scale"]) != np.float32(x["scale_value"]) or int(x["zp"]) != int(q["zp"]):
        return None, None
    new = helper.make_node(node.op_type, [x["q"], *node.input[1:]], [q["node"].output[0]], name=node.name)
    new.attribute.extend(node.attribute)
    return new, q["node"]


def _sole_q(node, users, outputs, consts):
    """The QuantizeLinear that alone reads `node`'s (first) output, not a graph output, to
    int8/uint8 with a constant scalar scale and zero point: dict(node, scale, zp), or None."""
    out = node.output[0]
    us = users.get(out, [])
    if out in outputs or len(us) != 1 or us[0].op_type != "QuantizeLinear" or us[0].domain not in _DEFAULT:
        return None
    q = us[0]
    scale = _const(consts, q.input[1])
    zp = _const(consts, q.input[2]) if len(q.input) > 2 and q.input[2] else None
    if scale is None or scale.size != 1 or zp is None or zp.size != 1 or zp.dtype not in _INT8:
        return None  # without a zero point Q makes uint8; keep the rule simple: explicit only
    attrs = {a.name: helper.get_attribute_value(a) for a in q.attribute}
    if attrs.get("saturate", 1) != 1 or attrs.get("output_dtype", 0):
        return None
    return dict(node=q, scale=scale, zp=zp)


def _const(consts, name):
    return consts.get(name) if name else None


def _dq(name, producer, consts, const_input: bool):
    """(q input, scale, zero point, axis) of the DequantizeLinear making `name`, or None."""
    dq = producer.get(name)
    if dq is None or dq.op_type != "DequantizeLinear" or dq.domain not in _DEFAULT:
        return None
    scale = _const(consts, dq.input[1])
    zp = _const(consts, dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
    if scale is None or (len(dq.input) > 2 and dq.input[2] and zp is None):
        return None
    if const_input and dq.input[0] not in consts:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in dq.attribute}
    if attrs.get("block_size", 0):
        return None
    return dict(node=dq, q=dq.input[0], scale=dq.input[1], zp=zp, zp_name=dq.input[2] if zp is not None else "",
                scale_value=scale, axis=attrs.get("axis", 1))


def _match(node, producer, users, outputs, consts):
    ins = list(node.input) + [""] * (3 - len(node.input))
    x = _dq(ins[0], producer, consts, const_input=False)
    w = _dq(ins[1], producer, consts, const_input=True)
    if x is None or w is None or x["scale_value"].size != 1 or (x["zp"] is not None and x["zp"].size != 1):
        return None
    wq = consts[w["q"]]
    if wq.dtype not in _INT8 or (x["zp"] is not None and x["zp"].dtype not in _INT8):
        return None
    q = _sole_q(node, users, outputs, consts)
    if q is None:
        return None
    bias = None
    if ins[2]:
        bias = _dq(ins[2], producer, consts, const_input=True)
        if bias is None or consts[bias["q"]].dtype != np.int32:
            return None
        if bias["zp"] is not None and np.any(bias["zp"] != 0):
            return None
    return dict(x=x, w=w, bias=bias, q=q["node"])


def _per_channel_ok(w, channel_axis: int, rank: int) -> bool:
    """Weight scales per tensor, or per output channel along `channel_axis`."""
    if w["scale_value"].size == 1 and (w["zp"] is None or w["zp"].size == 1):
        return True
    return w["axis"] % rank == channel_axis


def _bias_ok(m, channels: int) -> bool:
    b = m["bias"]
    if b is None:
        return True
    want = (m["x"]["scale_value"].astype(np.float32) * m["w"]["scale_value"].astype(np.float32)).reshape(-1)
    have = b["scale_value"].astype(np.float32).reshape(-1)
    if have.size not in (1, channels) or want.size not in (1, channels):
        return False
    return bool(np.allclose(np.broadcast_to(have, (channels,)), np.broadcast_to(want, (channels,)),
                            rtol=1e-6, atol=0))


def _qlinear_inputs(m, weight: str, w_scale: str, w_zp: str, bias: str | None) -> list[str]:
    x, q = m["x"], m["q"]
    return [x["q"], x["scale"], x["zp_name"], weight, w_scale, w_zp, q.input[1], q.input[2]] + \
        ([bias] if bias else [])


def _zp_name(consts, w, base: str) -> str:
    """The weight zero point's name (a zero of the weight's type when the DQ had none)."""
    if w["zp"] is not None:
        return w["zp_name"]
    name = _fresh(consts, base + "_zero_point")
    consts[name] = np.zeros([], consts[w["q"]].dtype)
    return name


def _fresh(consts, base: str) -> str:
    name = base
    while name in consts:
        name += "_"
    return name


def _conv(node, m, consts):
    w = m["w"]
    wq = consts[w["q"]]
    if wq.ndim not in (3, 4) or not _per_channel_ok(w, 0, wq.ndim) or not _bias_ok(m, wq.shape[0]):
        return None
    if m["x"]["zp"] is None:
        return None
    inputs = _qlinear_inputs(m, w["q"], w["scale"], _zp_name(consts, w, w["q"]),
                             m["bias"]["q"] if m["bias"] else None)
    new = helper.make_node("QLinearConv", inputs, [m["q"].output[0]], name=node.name)
    new.attribute.extend(node.attribute)
    return [new]


def _gemm(node, m, consts):
    """Gemm(A[M,K], B, C) -> reshape A to [M,K,1,1], 1x1 QLinearConv with B as [N,K,1,1]."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        return None
    w = m["w"]
    wq = consts[w["q"]]
    if wq.ndim != 2 or m["x"]["zp"] is None:
        return None
    trans_b = attrs.get("transB", 0)
    n_axis = 0 if trans_b else 1
    if not _per_channel_ok(w, n_axis, 2) or not _bias_ok(m, wq.shape[n_axis]):
        return None
    if m["bias"] is not None and consts[m["bias"]["q"]].size not in (1, wq.shape[n_axis]):
        return None  # a full [M, N] bias matrix has no QLinearConv form
    base = node.name or node.output[0]
    weight = _fresh(consts, f"{w['q']}_as_1x1")
    consts[weight] = np.ascontiguousarray((wq if trans_b else wq.T)[:, :, None, None])
    bias = None
    if m["bias"] is not None:
        bias = _fresh(consts, f"{m['bias']['q']}_per_channel")
        consts[bias] = np.broadcast_to(consts[m["bias"]["q"]].reshape(-1), (wq.shape[n_axis],)).astype(np.int32)
    a4, y4 = _fresh(consts, f"{base}_input_4d"), _fresh(consts, f"{base}_output_4d")
    to4, to2 = _fresh(consts, f"{base}_shape_4d"), _fresh(consts, f"{base}_shape_2d")
    consts[to4] = np.array([0, -1, 1, 1], np.int64)  # [M, K] -> [M, K, 1, 1]
    consts[to2] = np.array([0, -1], np.int64)
    inputs = _qlinear_inputs(m, weight, w["scale"], _zp_name(consts, w, weight), bias)
    inputs[0] = a4
    return [helper.make_node("Reshape", [m["x"]["q"], to4], [a4], name=f"{base}_to_4d"),
            helper.make_node("QLinearConv", inputs, [y4], name=node.name),
            helper.make_node("Reshape", [y4, to2], [m["q"].output[0]], name=f"{base}_to_2d")]
