"""ONNX-level graph rewrites, run by `load()` once every constant sub-graph is folded.

Contract: `run(model, consts)` rewrites `model.graph.node` in place (the nodes stay in
topological order) and adds the constants it creates to `consts` only (the importer reads
constants from that table, never from the initializers). Values the graph computes stay the
same up to float rounding; graph output names and every surviving node's name are kept.

Rewrite: a per-output-channel affine map after a Conv, ConvTranspose or Gemm folds into its
weights and bias -- BatchNormalization in inference mode, and Mul/Div/Add/Sub by a constant
that varies along the channel axis only ([C,1,1], [1,C,1,1], a scalar...). The conv's output
must feed only that node and must not be a graph output; weights and bias must be constants.
Without it each such node costs one pass over the activation (and its buffer) at run time.
The folding is done in float64 and cast back to the weights' dtype.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

_CONVS = ("Conv", "ConvTranspose", "Gemm")
_DEFAULT = ("", "ai.onnx")


def run(model: onnx.ModelProto, consts: dict[str, np.ndarray]) -> None:
    nodes = list(model.graph.node)  # one wrapper object per node: ids stay valid
    uses = _uses(nodes)
    keep_names = {o.name for o in model.graph.output}
    fresh: set[str] = set()  # constants made here: safe to overwrite in a later fold
    removed = set()
    for node in nodes:
        if node.op_type in _CONVS and node.domain in _DEFAULT:
            while (user := _sole_user(node, uses, keep_names)) is not None and \
                    _fold(node, user, consts, fresh):
                removed.add(id(user))
    if removed:
        del model.graph.node[:]
        model.graph.node.extend(n for n in nodes if id(n) not in removed)


def _uses(nodes) -> dict[str, list]:
    """value name -> consuming nodes (once per operand); names that sub-graphs read (If/Loop
    bodies see outer values implicitly) count as used by their owner node."""
    uses: dict[str, list] = {}
    for node in nodes:
        for name in list(node.input) + _subgraph_reads(node):
            uses.setdefault(name, []).append(node)
    return uses


def _subgraph_reads(node) -> list[str]:
    names = []
    for attr in node.attribute:
        for g in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
            for inner in g.node:
                names += list(inner.input) + _subgraph_reads(inner)
    return names


def _sole_user(conv, uses, keep_names):
    out = conv.output[0]
    users = uses.get(out, [])
    if out in keep_names or len(users) != 1 or users[0].domain not in _DEFAULT:
        return None
    return users[0]


def _fold(conv, user, consts, fresh) -> bool:
    """Fold `user` (the only consumer of the conv's output) into the conv; False if it is not
    a per-channel affine map of constants."""
    w = consts.get(conv.input[1]) if len(conv.input) > 1 else None
    b_name = conv.input[2] if len(conv.input) > 2 else ""
    if w is None or w.dtype.kind != "f" or (b_name and b_name not in consts):
        return False
    group = _attr(conv, "group", 1)
    if conv.op_type == "Gemm":
        if w.ndim != 2:
            return False
        cout = w.shape[0] if _attr(conv, "transB", 0) else w.shape[1]
        rank = 2
    else:
        cout = w.shape[0] if conv.op_type == "Conv" else w.shape[1] * group
        rank = w.ndim
    affine = _affine(user, conv.output[0], consts, cout, rank)
    if affine is None:
        return False
    scale, shift = affine
    if not b_name:
        bias = np.zeros(cout)
    elif conv.op_type == "Gemm":  # beta * C, C broadcast along the output channels only
        bias = _per_channel(consts[b_name], cout, 2)
        if bias is None:
            return False
        bias = bias * _attr(conv, "beta", 1.0)
    else:
        bias = consts[b_name].astype(np.float64)
    new_w = _scale_weight(conv, w.astype(np.float64), scale, group).astype(w.dtype)
    new_b = (bias * scale + shift).astype(w.dtype)
    base = conv.name or conv.output[0]
    conv.input[1] = _store(consts, fresh, conv.input[1], f"{base}_W_folded", new_w)
    if len(conv.input) < 3:
        conv.input.append("")
    conv.input[2] = _store(consts, fresh, b_name, f"{base}_B_folded", new_b)
    if conv.op_type == "Gemm":
        _set_attr(conv, "beta", 1.0)
    conv.output[0] = user.output[0]
    return True


def _set_attr(node, name, value) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def _scale_weight(node, w, scale, group):
    """Multiply output channel o of the weights by scale[o]: axis 0 of a Conv weight
    [M, C/g, k...]; for ConvTranspose [C, M/g, k...] channel o = g_idx * M/g + j of group g_idx;
    for Gemm the N axis of B ([K, N], or [N, K] with transB)."""
    if node.op_type == "Gemm":
        return w * (scale[:, None] if _attr(node, "transB", 0) else scale[None, :])
    if node.op_type == "Conv":
        return (w.reshape(w.shape[0], -1) * scale[:, None]).reshape(w.shape)
    c, mg = w.shape[:2]
    s = scale.reshape(group, 1, mg, 1)
    return (w.reshape(group, c // group, mg, -1) * s).reshape(w.shape)


def _store(consts, fresh, old, want, value) -> str:
    """Put `value` under a constant name of our own (the original may be shared)."""
    if old in fresh:
        consts[old] = value
        return old
    name, k = want, 0
    while name in consts:
        k += 1
        name = f"{want}_{k}"
    consts[name] = value
    fresh.add(name)
    return name


def _attr(node, name, default):
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _affine(user, x, consts, cout, rank):
    """(scale, shift) per output channel such that user(x) == x * scale + shift, or None."""
    if list(user.input).count(x) != 1 or len([o for o in user.output if o]) != 1:
        return None
    if user.op_type == "BatchNormalization":
        return _batch_norm(user, x, consts, cout)
    if user.op_type not in ("Mul", "Div", "Add", "Sub") or len(user.input) != 2:
        return None
    x_first = user.input[0] == x
    c = _per_channel(consts.get(user.input[1 if x_first else 0]), cout, rank)
    if c is None:
        return None
    one, zero = np.ones(cout), np.zeros(cout)
    if user.op_type == "Mul":
        return c, zero
    if user.op_type == "Add":
        return one, c
    if user.op_type == "Sub":
        return (one, -c) if x_first else (-one, c)
    return (1.0 / c, zero) if x_first and np.all(c != 0) else None


def _batch_norm(bn, x, consts, cout):
    if bn.input[0] != x or _attr(bn, "training_mode", 0):
        return None
    params = [consts.get(n) for n in bn.input[1:5]]
    if len(params) != 4 or any(p is None or p.shape != (cout,) or p.dtype.kind != "f" for p in params):
        return None
    s, beta, mean, var = (p.astype(np.float64) for p in params)
    scale = s / np.sqrt(var + _attr(bn, "epsilon", 1e-5))
    return scale, beta - mean * scale


def _per_channel(c, cout, rank):
    """A constant as a length-`cout` float64 vector when, broadcast against the conv output
    [N, cout, spatial...], it varies along the channel axis only; else None."""
    if c is None or c.dtype.kind != "f" or c.ndim > rank:
        return None
    full = (1,) * (rank - c.ndim) + c.shape
    if any(d != 1 for i, d in enumerate(full) if i != 1) or full[1] not in (1, cout):
        return None
    return np.broadcast_to(c.astype(np.float64).reshape(-1), (cout,)).copy()
