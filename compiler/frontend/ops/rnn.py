"""Recurrent ONNX ops: LSTM, GRU and RNN, unrolled over the static sequence length.

Per direction, the input projection X*W^T + biases of every step is one matmul; each step
adds one H*R^T matmul (two for GRU with linear_before_reset=0) and the gate arithmetic.
`sequence_lens` must be a constant: past its end a batch keeps its state and outputs zeros,
and the reverse direction walks each batch's valid prefix backwards through a constant row
permutation of the projected input (and of Y back).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ...ir import ir
from ..emitter import etype_of, shape_of
from ..registry import Unsupported, lowers

_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
# activation -> (takes alpha, takes beta, default alpha, default beta); the alpha/beta lists
# are consumed in order by the activations that take them (as onnxruntime does)
_ACT_ARGS = {"affine": (1, 1, 1.0, 0.0), "leakyrelu": (1, 0, 0.01, 0.0), "thresholdedrelu": (1, 0, 1.0, 0.0),
             "scaledtanh": (1, 1, 1.0, 1.0), "hardsigmoid": (1, 1, 0.2, 0.5), "elu": (1, 0, 1.0, 0.0)}


@dataclasses.dataclass
class _Cell:
    """What every step of one direction needs."""

    kind: str
    hidden: int
    acts: list  # [(name, alpha, beta)] for (f, g, h) of this direction
    clip: float | None
    input_forget: bool = False
    linear_before_reset: bool = False
    rt: ir.Value | None = None  # R^T as [1, H, G*H] (GRU without linear_before_reset: z, r only)
    rth: ir.Value | None = None  # GRU without linear_before_reset: Rh^T as [1, H, H]
    rbh: ir.Value | None = None  # GRU (linear_before_reset): Rbh as [1, H]
    peep: list | None = None  # LSTM: [Pi, Po, Pf] as [1, H] values


# -- activations -------------------------------------------------------------------


def _select(e, cond, a, b):
    c, x, y = e.rank_align(cond, a, b)
    shape = np.broadcast_shapes(shape_of(c), shape_of(x), shape_of(y))
    return e.op("tosa.select", [c, x, y], ir.RankedTensorType.get(list(shape), etype_of(x)))


def _mul(e, v, k):
    return e.elementwise("tosa.mul", v, e.scalar_like(k, v))


def _add(e, v, k):
    return e.elementwise("tosa.add", v, e.scalar_like(k, v))


def _where_pos(e, v, threshold, pos, neg, strict=True):
    cmp = "tosa.greater" if strict else "tosa.greater_equal"
    c = e.elementwise(cmp, v, e.scalar_like(threshold, v), out_etype=ir.IntegerType.get_signless(1))
    return _select(e, c, pos, neg)


def _softplus(e, v):
    """log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|)), stable for large |x|."""
    t = e.unary("tosa.exp", e.unary("tosa.negate", e.unary("tosa.abs", v)))
    return e.elementwise("tosa.add", e.clamp(v, 0.0, np.finfo(np.float32).max),
                         e.unary("tosa.log", _add(e, t, 1.0)))


_ACT = {
    "sigmoid": lambda e, v, a, b: e.unary("tosa.sigmoid", v),
    "tanh": lambda e, v, a, b: e.unary("tosa.tanh", v),
    "relu": lambda e, v, a, b: e.clamp(v, 0.0, np.finfo(np.float32).max),
    "affine": lambda e, v, a, b: _add(e, _mul(e, v, a), b),
    "leakyrelu": lambda e, v, a, b: _where_pos(e, v, 0.0, v, _mul(e, v, a), strict=False),
    "thresholdedrelu": lambda e, v, a, b: _where_pos(e, v, a, v, e.scalar_like(0.0, v)),
    "scaledtanh": lambda e, v, a, b: _mul(e, e.unary("tosa.tanh", _mul(e, v, b)), a),
    "hardsigmoid": lambda e, v, a, b: e.clamp(_add(e, _mul(e, v, a), b), 0.0, 1.0),
    "elu": lambda e, v, a, b: _where_pos(e, v, 0.0, v, _mul(e, _add(e, e.unary("tosa.exp", v), -1.0), a),
                                         strict=False),
    "softsign": lambda e, v, a, b: e.elementwise(
        "tosa.mul", v, e.unary("tosa.reciprocal", _add(e, e.unary("tosa.abs", v), 1.0))),
    "softplus": lambda e, v, a, b: _softplus(e, v),
}


def _activations(kind, n_dir, names, alphas, betas):
    """Per direction, the [(name, alpha, beta)] list of its activation functions."""
    n = len(_DEFAULT_ACTS[kind])
    names = list(names) if names else _DEFAULT_ACTS[kind] * n_dir
    if len(names) == n and n_dir == 2:
        names = names * 2
    if len(names) != n * n_dir:
        raise Unsupported(f"{kind} needs {n * n_dir} activations, got {names}")
    alphas, betas = list(alphas or []), list(betas or [])
    out = []
    for name in names:
        key = name.lower()
        if key not in _ACT:
            raise Unsupported(f"{kind} activation '{name}' is not supported (one of {sorted(_ACT)})")
        takes_a, takes_b, a, b = _ACT_ARGS.get(key, (0, 0, 0.0, 0.0))
        if takes_a and alphas:
            a = alphas.pop(0)
        if takes_b and betas:
            b = betas.pop(0)
        out.append((key, a, b))
    return [out[d * n:(d + 1) * n] for d in range(n_dir)]


def _act(e, cell, k, v):
    """Activation k (0 = f, 1 = g, 2 = h) of `cell`; `clip` bounds the gate pre-activations
    (f, g), not the cell state that h reads (as onnxruntime does)."""
    if cell.clip is not None and k < 2:
        v = e.clamp(v, -cell.clip, cell.clip)
    name, a, b = cell.acts[k]
    return _ACT[name](e, v, a, b)


# -- weights: numpy when constant, IR otherwise -----------------------------------------


def _rows_t(e, t, d, lo, hi):
    """Rows [lo, hi) of t[d] (a [D, rows, cols] weight), transposed to [1, cols, hi - lo]."""
    if t.const is not None:
        return e.const(np.ascontiguousarray(t.const[d, lo:hi].T[None]))
    v = e.slice(t.value, [d, lo, 0], [1, hi - lo, t.shape[2]])
    return e.transpose(v, (0, 2, 1))


def _vec(e, t, d, lo, hi):
    """Elements [lo, hi) of t[d] (a [D, n] vector input) as a [1, hi - lo] value, or None."""
    if t is None:
        return None
    if t.const is not None:
        return e.const(np.ascontiguousarray(t.const[d:d + 1, lo:hi]))
    return e.reshape(e.slice(t.value, [d, lo], [1, hi - lo]), (1, hi - lo))


def _bias_x(e, kind, b, d, gh, hidden, lbr):
    """The bias added to X*W^T: Wb + Rb (GRU with linear_before_reset keeps Rbh apart)."""
    if b is None:
        return None
    if b.const is not None:
        wb, rb = b.const[d, :gh].copy(), b.const[d, gh:].copy()
        if kind == "GRU" and lbr:
            rb[2 * hidden:] = 0
        return e.const((wb + rb).reshape(1, 1, gh))
    if kind == "GRU" and lbr:  # [Rbz, Rbr, 0]
        rb = e.pad(_vec(e, b, d, gh, gh + 2 * hidden), [0, 0], [0, hidden])
    else:
        rb = _vec(e, b, d, gh, 2 * gh)
    return e.reshape(e.elementwise("tosa.add", _vec(e, b, d, 0, gh), rb), (1, 1, gh))


def _input_proj(e, kind, xv, w, b, d, hidden, lbr):
    """X*W^T + bias for every step of direction d: [S, B, G*H]."""
    s, batch, i = shape_of(xv)
    gh = w.shape[1]
    y = e.matmul(e.reshape(xv, (1, s * batch, i)), _rows_t(e, w, d, 0, gh))
    bias = _bias_x(e, kind, b, d, gh, hidden, lbr)
    if bias is not None:
        y = e.elementwise("tosa.add", y, bias)
    return e.reshape(y, (s, batch, gh))


def _cell(e, kind, r, b, p, d, hidden, acts, clip, input_forget, lbr):
    """The per-direction constants of one recurrence."""
    cell = _Cell(kind, hidden, acts, clip, bool(input_forget), bool(lbr))
    gh = r.shape[1]
    if kind == "GRU" and not lbr:  # (r . H) * Rh^T needs its own matmul
        cell.rt, cell.rth = _rows_t(e, r, d, 0, 2 * hidden), _rows_t(e, r, d, 2 * hidden, gh)
    else:
        cell.rt = _rows_t(e, r, d, 0, gh)
    if kind == "GRU" and lbr:
        cell.rbh = _vec(e, b, d, gh + 2 * hidden, 2 * gh)
    if p is not None:
        cell.peep = [_vec(e, p, d, k * hidden, (k + 1) * hidden) for k in range(3)]
    return cell


# -- one step ---------------------------------------------------------------------------


def _mm(e, h, rt):
    """[B, H] x [1, H, N] -> [B, N]."""
    batch, hidden = shape_of(h)
    return e.reshape(e.matmul(e.reshape(h, (1, batch, hidden)), rt), (batch, shape_of(rt)[2]))


def _gate(e, g, k, hidden):
    return e.slice(g, [0, k * hidden], [shape_of(g)[0], hidden])


def _fma(e, acc, a, b):
    """acc + a * b (nothing when a is None)."""
    return acc if a is None else e.elementwise("tosa.add", acc, e.elementwise("tosa.mul", a, b))


def _lstm_step(e, cell, xg, h, c):
    hdim = cell.hidden
    g = e.elementwise("tosa.add", xg, _mm(e, h, cell.rt))
    i, o, f, cc = (_gate(e, g, k, hdim) for k in range(4))
    pi, po, pf = cell.peep or (None, None, None)
    i = _act(e, cell, 0, _fma(e, i, pi, c))
    if cell.input_forget:  # coupled input and forget gates
        f = e.elementwise("tosa.sub", e.scalar_like(1.0, i), i)
    else:
        f = _act(e, cell, 0, _fma(e, f, pf, c))
    c = e.elementwise("tosa.add", e.elementwise("tosa.mul", f, c),
                      e.elementwise("tosa.mul", i, _act(e, cell, 1, cc)))
    o = _act(e, cell, 0, _fma(e, o, po, c))
    return e.elementwise("tosa.mul", o, _act(e, cell, 2, c)), c


def _gru_step(e, cell, xg, h, c):
    hdim = cell.hidden
    xz, xr, xh = (_gate(e, xg, k, hdim) for k in range(3))
    g = _mm(e, h, cell.rt)
    z = _act(e, cell, 0, e.elementwise("tosa.add", xz, _gate(e, g, 0, hdim)))
    r = _act(e, cell, 0, e.elementwise("tosa.add", xr, _gate(e, g, 1, hdim)))
    if cell.linear_before_reset:  # r . (H * Rh^T + Rbh)
        hr = _gate(e, g, 2, hdim)
        hr = e.elementwise("tosa.mul", r, hr if cell.rbh is None else e.elementwise("tosa.add", hr, cell.rbh))
    else:  # (r . H) * Rh^T
        hr = _mm(e, e.elementwise("tosa.mul", r, h), cell.rth)
    hh = _act(e, cell, 1, e.elementwise("tosa.add", xh, hr))
    # (1 - z) . hh + z . H  ==  hh + z . (H - hh)
    return _fma(e, hh, z, e.elementwise("tosa.sub", h, hh)), None


def _rnn_step(e, cell, xg, h, c):
    return _act(e, cell, 0, e.elementwise("tosa.add", xg, _mm(e, h, cell.rt))), None


_STEP = {"LSTM": _lstm_step, "GRU": _gru_step, "RNN": _rnn_step}


# -- the unrolled sequence --------------------------------------------------------------


def _concat(e, vals, axis):
    if len(vals) == 1:
        return vals[0]
    shp = list(shape_of(vals[0]))
    shp[axis] = sum(shape_of(v)[axis] for v in vals)
    return e.op("tosa.concat", vals, ir.RankedTensorType.get(shp, etype_of(vals[0])),
                axis=ir.IntegerAttr.get(ir.IntegerType.get_signless(32), axis))


def _reverse_prefixes(e, v, lens):
    """v [S, B, F] with each batch's first lens[b] steps reversed (a constant row gather)."""
    s, batch, f = shape_of(v)
    idx = np.arange(s * batch).reshape(s, batch)
    for b, n in enumerate(lens):
        idx[:n, b] = idx[:n, b][::-1]
    g = e.op("tosa.gather", [e.reshape(v, (1, s * batch, f)), e.const(idx.reshape(1, -1).astype(np.int32))],
             ir.RankedTensorType.get([1, s * batch, f], etype_of(v)))
    return e.reshape(g, (s, batch, f))


def _blend(e, m, a, b):
    """m . a + (1 - m) . b for a 0/1 mask m: exact, one term is zero."""
    keep = e.elementwise("tosa.sub", e.scalar_like(1.0, m), m)
    return e.elementwise("tosa.add", e.elementwise("tosa.mul", a, m), e.elementwise("tosa.mul", b, keep))


def _run_direction(e, cell, xw, h, c, lens, reverse, want_y):
    """Unroll one direction: (Y as [S, B, H] or None, final H, final C)."""
    s_len, batch, gh = shape_of(xw)
    regroup = reverse and lens is not None
    if regroup:
        xw = _reverse_prefixes(e, xw, lens)
    order = range(s_len - 1, -1, -1) if reverse and not regroup else range(s_len)
    zeros = e.const(np.zeros((batch, cell.hidden), np.float32))
    ys = [None] * s_len
    for s, t in enumerate(order):
        active = np.ones(batch, bool) if lens is None else np.array([s < n for n in lens])
        if not active.any():
            ys[t] = zeros
            continue
        xg = e.reshape(e.slice(xw, [t, 0, 0], [1, batch, gh]), (batch, gh))
        h_new, c_new = _STEP[cell.kind](e, cell, xg, h, c)
        if active.all():
            h, c, ys[t] = h_new, c_new, h_new
            continue
        # a constant i1 mask would be materialized as memref<i1>: blend with exact 0/1 factors
        m = e.const(active.reshape(batch, 1).astype(np.float32))
        h, ys[t] = _blend(e, m, h_new, h), e.elementwise("tosa.mul", h_new, m)
        c = None if c is None else _blend(e, m, c_new, c)
    if not want_y:
        return None, h, c
    y = _concat(e, [e.reshape(v, (1, batch, cell.hidden)) for v in ys], 0)
    return (_reverse_prefixes(e, y, lens) if regroup else y), h, c


def _state(e, t, d, layout, batch, hidden):
    """Initial state of direction d as [B, H] (zeros when absent)."""
    if t is None:
        return e.const(np.zeros((batch, hidden), np.float32))
    start = [0, d, 0] if layout else [d, 0, 0]
    size = [batch, 1, hidden] if layout else [1, batch, hidden]
    if t.const is not None:
        return e.const(np.ascontiguousarray(t.const[tuple(slice(a, a + n) for a, n in zip(start, size))]
                                            .reshape(batch, hidden)))
    return e.reshape(e.slice(t.value, start, size), (batch, hidden))


def _lens(seq, s_len, batch):
    """Constant per-batch lengths, or None when every batch runs the whole sequence."""
    if seq is None:
        return None
    lens = [min(int(n), s_len) for n in seq.const_list()]
    return None if all(n == s_len for n in lens) else lens


def _stack(e, parts, layout, perm):
    """Per-direction states [B, H] -> [D, B, H] (layout 1: [B, D, H])."""
    v = _concat(e, [e.reshape(p, (1, *shape_of(p))) for p in parts], 0)
    return e.transpose(v, perm) if layout else v


def _want(cx, i):
    return len(cx.node.output) > i and bool(cx.node.output[i])


def _recurrent(cx, kind, x, w, r, b, seq, h0, c0=None, p=None, *, activations=None, activation_alpha=None,
               activation_beta=None, clip=None, direction="forward", layout=0, input_forget=0,
               linear_before_reset=0):
    """Shared driver: per direction, project X, unroll the steps, then assemble Y, Y_h, Y_c."""
    e = cx.e
    if direction not in ("forward", "reverse", "bidirectional"):
        raise Unsupported(f"{kind} direction '{direction}' (forward, reverse or bidirectional)")
    n_dir, hidden = w.shape[0], r.shape[-1]
    xv = e.transpose(x.value, (1, 0, 2)) if layout else x.value
    s_len, batch, _ = shape_of(xv)
    lens = _lens(seq, s_len, batch)
    acts = _activations(kind, n_dir, activations, activation_alpha, activation_beta)
    ys, hs, cs = [], [], []
    for d in range(n_dir):
        cell = _cell(e, kind, r, b, p, d, hidden, acts[d], clip, input_forget, linear_before_reset)
        xw = _input_proj(e, kind, xv, w, b, d, hidden, linear_before_reset)
        h = _state(e, h0, d, layout, batch, hidden)
        c = _state(e, c0, d, layout, batch, hidden) if kind == "LSTM" else None
        reverse = direction == "reverse" or d == 1
        y, h, c = _run_direction(e, cell, xw, h, c, lens, reverse, _want(cx, 0))
        ys.append(y), hs.append(h), cs.append(c)
    outs = [None, None, None]
    if _want(cx, 0):
        y = _concat(e, [e.reshape(v, (s_len, 1, batch, hidden)) for v in ys], 1)
        outs[0] = e.transpose(y, (2, 0, 1, 3)) if layout else y
    if _want(cx, 1):
        outs[1] = _stack(e, hs, layout, (1, 0, 2))
    if _want(cx, 2):
        outs[2] = _stack(e, cs, layout, (1, 0, 2))
    return outs[:len(cx.node.output)]


@lowers("LSTM", since=1, notes="unrolled; constant sequence_lens")
def lstm(cx, x, w, r, b=None, seq=None, h0=None, c0=None, p=None, *, activation_alpha=None,
         activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None,
         input_forget=0, layout=0, output_sequence=0):
    return _recurrent(cx, "LSTM", x, w, r, b, seq, h0, c0, p, activations=activations,
                      activation_alpha=activation_alpha, activation_beta=activation_beta, clip=clip,
                      direction=direction, layout=layout, input_forget=input_forget)


@lowers("GRU", since=1, notes="unrolled; constant sequence_lens")
def gru(cx, x, w, r, b=None, seq=None, h0=None, *, activation_alpha=None, activation_beta=None,
        activations=None, clip=None, direction="forward", hidden_size=None, layout=0,
        linear_before_reset=0, output_sequence=0):
    return _recurrent(cx, "GRU", x, w, r, b, seq, h0, activations=activations,
                      activation_alpha=activation_alpha, activation_beta=activation_beta, clip=clip,
                      direction=direction, layout=layout, linear_before_reset=linear_before_reset)


@lowers("RNN", since=1, notes="unrolled; constant sequence_lens")
def rnn(cx, x, w, r, b=None, seq=None, h0=None, *, activation_alpha=None, activation_beta=None,
        activations=None, clip=None, direction="forward", hidden_size=None, layout=0, output_sequence=0):
    return _recurrent(cx, "RNN", x, w, r, b, seq, h0, activations=activations,
                      activation_alpha=activation_alpha, activation_beta=activation_beta, clip=clip,
                      direction=direction, layout=layout)
