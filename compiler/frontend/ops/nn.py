"""Neural-network ONNX ops: convolution, pooling, normalization, Gemm/MatMul, softmax.

Spatial ops are lowered NCHW -> NHWC -> NCHW around the TOSA op; the TOSA stage's
transpose folding removes back-to-back pairs.
"""

from __future__ import annotations

import numpy as np

from ...ir import ir
from ..emitter import etype_of, is_float, np_dtype_of, shape_of
from ..registry import Unsupported, lowers

_TO_NHWC, _TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


def spatial_pads(in_sizes, kernel, strides, dilations, pads, auto_pad, ceil_mode=0):
    """ONNX pads -> (begin, end, out_sizes) per spatial dim."""
    n = len(in_sizes)
    pads = list(pads) if pads else [0] * (2 * n)
    begin, end, out = [], [], []
    for i in range(n):
        k_eff = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-in_sizes[i] // strides[i])
            total = max(0, (o - 1) * strides[i] + k_eff - in_sizes[i])
            small = total // 2
            b = small if auto_pad == "SAME_UPPER" else total - small
            begin.append(b), end.append(total - b), out.append(o)
            continue
        b, en = (0, 0) if auto_pad == "VALID" else (pads[i], pads[i + n])
        span = in_sizes[i] + b + en - k_eff
        o = (-(-span // strides[i]) if ceil_mode else span // strides[i]) + 1
        if ceil_mode and (o - 1) * strides[i] >= in_sizes[i] + b:
            o -= 1  # the last window must start inside the input or left padding
        begin.append(b), end.append(en), out.append(o)
    return begin, end, out


def fit_window(e, x, begin, end, out, kernel, strides, dilations, axis0=1):
    """Adjust end pads (crop the input if needed) so TOSA's exact-division rule holds."""
    shp, end, crop = list(shape_of(x)), list(end), False
    for i in range(len(out)):
        k_eff = (kernel[i] - 1) * dilations[i] + 1
        need = (out[i] - 1) * strides[i] + k_eff
        have = shp[axis0 + i] + begin[i] + end[i]
        if have > need:
            cut = min(end[i], have - need)
            end[i] -= cut
            if have - need - cut:
                shp[axis0 + i] -= have - need - cut
                crop = True
        elif have < need:
            end[i] += need - have
    if crop:
        x = e.slice(x, [0] * len(shp), shp)
    return x, end


def _tosa_pad(begin, end):
    return [begin[0], end[0], begin[1], end[1]]


def _nhwc(e, x):
    return e.transpose(x, _TO_NHWC)


def _as_2d(nd, kernel, strides, dilations, pads):
    """Window attributes with defaults filled in; 1-D ones as 2-D with H = 1."""
    if nd == 2:
        return list(kernel), list(strides or [1, 1]), list(dilations or [1, 1]), pads
    pads = [0, pads[0], 0, pads[1]] if pads else None
    return [1, *kernel], [1, *(strides or [1])], [1, *(dilations or [1])], pads


def _x4(e, x):
    """An NC(H)W input as a 4-D value (1-D gets H = 1)."""
    return e.reshape(x.value, x.shape[:2] + (1,) * (4 - x.rank) + x.shape[2:])


def _conv_weight(e, w, rows, shape, perm):
    """Rows [lo, hi) of a Conv weight, reshaped to `shape` and permuted (numpy when constant)."""
    lo, hi = rows
    if w.const is not None:
        return e.const(np.ascontiguousarray(w.const[lo:hi].reshape(shape).transpose(perm)))
    v = e.slice(w.value, [lo] + [0] * (w.rank - 1), [hi - lo, *w.shape[1:]])
    return e.transpose(e.reshape(v, shape), perm)


@lowers("Conv")
def conv(cx, x, w, b=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
         pads=None, strides=None):
    e = cx.e
    nd = x.rank - 2
    if nd not in (1, 2):
        raise Unsupported(f"Conv with {nd} spatial dimensions is not supported (1-D and 2-D are)")
    kshape, st, dil, pads = _as_2d(nd, w.shape[2:], strides, dilations, pads)
    xv = _x4(e, x)
    begin, end, out = spatial_pads(list(shape_of(xv)[2:]), kshape, st, dil, pads, auto_pad)
    xv, end = fit_window(e, _nhwc(e, xv), begin, end, out, kshape, st, dil)
    cout, cin = w.shape[0], x.shape[1]
    bias = b.value if b is not None else e.const(np.zeros([cout], np.float32))
    common = dict(pad=_tosa_pad(begin, end), stride=st, dilation=dil, acc_type=etype_of(xv))
    rt = ir.RankedTensorType.get([x.shape[0], *out, cout], etype_of(xv))
    if group == 1:
        wt = _conv_weight(e, w, (0, cout), (cout, cin, *kshape), (0, 2, 3, 1))
        y = e.op("tosa.conv2d", [xv, wt, bias, e.zp(xv), e.zp(wt)], rt, **common)
    elif group == cin and is_float(etype_of(xv)) and (cout == cin or cx.imp.simd):
        if cout != cin:  # channel multiplier M: input channel c once per output channel c*M + m
            xv = repeat_channels(e, xv, cout // cin)
        wt = _conv_weight(e, w, (0, cout), (cout, *kshape), (1, 2, 0))
        y = _depthwise(e, xv, wt, bias, rt, begin, end, st, dil)
    elif group == cin:  # depthwise, channel multiplier cout // cin
        wt = _conv_weight(e, w, (0, cout), (cin, cout // cin, *kshape), (2, 3, 0, 1))
        y = e.op("tosa.depthwise_conv2d", [xv, wt, bias, e.zp(xv), e.zp(wt)], rt, **common)
    else:
        y = _grouped(e, xv, w, bias, group, kshape, rt, common)
    return e.reshape(e.transpose(y, _TO_NCHW), cx.out_shape())


def repeat_channels(e, xv, m):
    """NHWC [n, h, w, c] -> [n, h, w, c*m], channel k*m + j a copy of channel k: a depthwise
    conv with channel multiplier m becomes one with multiplier 1 over c*m channels, which the
    schedule vectorizes. TOSA's HWCM form runs as scalar loops: float 20x20x16, m = 2, 50 ->
    12 us on Zen 3, 7.5x fewer estimated cycles on AArch64; on Cortex-M7 only 1.16x, for an
    arena larger by (m - 1) inputs, so float convs on targets without SIMD keep the HWCM form
    (`Importer.simd`). int8 ones repeat on every target (`quant._int_conv`)."""
    n, h, w, c = shape_of(xv)
    return e.reshape(broadcast_to(e, e.reshape(xv, (n, h, w, c, 1)), (n, h, w, c, m)), (n, h, w, c * m))


def _depthwise(e, xv, wt, bias, rt, begin, end, strides, dilations):
    """Float depthwise (multiplier 1, or repeated input channels) as
    linalg.depthwise_conv_2d_nhwc_hwc (HWC weights).

    TOSA's depthwise_conv2d lowers to a 5-D HWCM op that the schedule cannot decompose into
    1-D windows; this form vectorizes along channels.
    """
    from ...ir import linalg_d

    xv = e.pad(xv, [0, begin[0], begin[1], 0], [0, end[0], end[1], 0])
    init = broadcast_channels(e, bias, rt)
    return linalg_d.depthwise_conv_2d_nhwc_hwc(xv, wt, outs=[init], strides=list(strides),
                                               dilations=list(dilations))


def broadcast_channels(e, bias, rt):
    """A [C] vector broadcast along the last axis of tensor type `rt` (a linalg.generic)."""
    from ...ir import linalg_d, tensor_d

    rank = len(rt.shape)
    maps = [ir.AffineMap.get(rank, 0, [ir.AffineDimExpr.get(rank - 1)]), ir.AffineMap.get_identity(rank)]
    par = ir.Attribute.parse("#linalg.iterator_type<parallel>")
    op = linalg_d.GenericOp([rt], [bias], [tensor_d.EmptyOp(list(rt.shape), rt.element_type).result],
                            ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps]),
                            ir.ArrayAttr.get([par] * rank))
    block = op.regions[0].blocks.append(rt.element_type, rt.element_type)
    with ir.InsertionPoint(block):
        linalg_d.YieldOp([block.arguments[0]])
    return op.result


def _grouped(e, xv, w, bias, group, kshape, rt, common):
    """1 < group < C: one conv2d per group on a channel slice, concatenated."""
    n, h, w_, cin = shape_of(xv)
    cout, gin = w.shape[0], cin // group
    gout = cout // group
    out = list(rt.shape[1:3])
    parts = []
    for g in range(group):
        xs = e.slice(xv, [0, 0, 0, g * gin], [n, h, w_, gin])
        wt = _conv_weight(e, w, (g * gout, (g + 1) * gout), (gout, gin, *kshape), (0, 2, 3, 1))
        bs = e.slice(bias, [g * gout], [gout])
        parts.append(e.op("tosa.conv2d", [xs, wt, bs, e.zp(xs), e.zp(wt)],
                          ir.RankedTensorType.get([n, *out, gout], rt.element_type), **common))
    return e.op("tosa.concat", parts, rt, axis=ir.IntegerAttr.get(ir.IntegerType.get_signless(32), 3))


def _pool(cx, x, kind, kernel_shape, strides, pads, auto_pad, ceil_mode, dilations,
          count_include_pad=0):
    e = cx.e
    nd = x.rank - 2
    if nd not in (1, 2):
        raise Unsupported(f"{cx.node.op_type} with {nd} spatial dimensions is not supported (1-D and 2-D are)")
    kernel, st, dil, pads = _as_2d(nd, kernel_shape, strides, dilations, pads)
    xv = _x4(e, x)
    unsigned = x.dtype.kind == "u"  # TOSA max pools order signed
    xv = e.signed_order(xv) if unsigned else xv
    begin, end, out = spatial_pads(list(shape_of(xv)[2:]), kernel, st, dil, pads, auto_pad, ceil_mode)
    _check_windows(cx, out[2 - nd:])
    xv = _nhwc(e, xv)
    if kind == "avg" and count_include_pad and (any(begin) or any(end)):
        xv = e.pad(xv, [0, begin[0], begin[1], 0], [0, end[0], end[1], 0])
        begin, end = [0, 0], [0, 0]
    xv, end = fit_window(e, xv, begin, end, out, kernel, st, dil)
    et = etype_of(xv)
    rt = ir.RankedTensorType.get([x.shape[0], *out, x.shape[1]], et)
    window = dict(kernel=kernel, stride=st, pad=_tosa_pad(begin, end))
    if dil != [1, 1]:
        y = _dilated_pool(e, xv, kind, begin, end, out, kernel, st, dil)
    elif kind == "max":
        y = e.op("tosa.max_pool2d", [xv], rt, **window)
    else:
        acc = et if is_float(et) else ir.IntegerType.get_signless(32)
        y = e.op("tosa.avg_pool2d", [xv, e.zp(xv), e.zp(xv)], rt, acc_type=acc, **window)
    y = e.signed_order(y) if unsigned else y
    return e.reshape(e.transpose(y, _TO_NCHW), cx.out_shape())


def _check_windows(cx, out):
    """ONNX shape inference and onnxruntime disagree when a ceil_mode window would start
    in the end padding (ORT drops it, inference counts it): refuse rather than guess."""
    want = list(cx.out_shape()[2:])
    if want != list(out):
        raise Unsupported(f"{cx.node.op_type}: the model declares {want} output windows but the "
                          f"input holds {list(out)} (ceil_mode window starting past the input)")


def _dilated_pool(e, xv, kind, begin, end, out, kernel, st, dil):
    """Dilated windows (TOSA pools have no dilation): max/sum of kh*kw strided slices of
    the padded NHWC input; averages divide by the per-window count of non-pad elements."""
    et = etype_of(xv)
    low = -np.inf if is_float(et) else np.iinfo(np_dtype_of(et)).min
    n, h, w_, c = shape_of(xv)
    xp = e.pad(xv, [0, begin[0], begin[1], 0], [0, end[0], end[1], 0], low if kind == "max" else 0)
    mask = np.pad(np.ones([h, w_], np.float32), [(begin[0], end[0]), (begin[1], end[1])])
    size = [(o - 1) * s + 1 for o, s in zip(out, st)]
    acc, count = None, np.zeros(out, np.float32)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            s = e.subsample(e.slice(xp, [0, i * dil[0], j * dil[1], 0], [n, *size, c]), [1, *st, 1])
            acc = s if acc is None else e.elementwise(
                "tosa.maximum" if kind == "max" else "tosa.add", acc, s)
            count += mask[i * dil[0]::st[0], j * dil[1]::st[1]][:out[0], :out[1]]
    if kind == "max":
        return acc
    return e.elementwise("tosa.mul", acc, e.const((1.0 / count).reshape(1, *out, 1)))


@lowers("MaxPool")
def max_pool(cx, x, *, kernel_shape, auto_pad="NOTSET", ceil_mode=0, dilations=None, pads=None,
             storage_order=0, strides=None):
    if len(cx.node.output) > 1 and cx.node.output[1]:
        raise Unsupported("MaxPool with the Indices output is not supported")
    return _pool(cx, x, "max", kernel_shape, strides, pads, auto_pad, ceil_mode, dilations)


@lowers("AveragePool")
def avg_pool(cx, x, *, kernel_shape, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0,
             dilations=None, pads=None, strides=None):
    return _pool(cx, x, "avg", kernel_shape, strides, pads, auto_pad, ceil_mode, dilations,
                 count_include_pad)


@lowers("GlobalAveragePool")
def global_avg_pool(cx, x):
    e = cx.e
    axes = list(range(2, x.rank))
    s = e.reduce("tosa.reduce_sum", x.value, axes)
    return e.elementwise("tosa.mul", s, e.scalar_like(1.0 / np.prod(x.shape[2:]), s))


@lowers("GlobalMaxPool")
def global_max_pool(cx, x):
    e = cx.e
    if x.dtype.kind == "u":  # TOSA orders signed
        return e.signed_order(e.reduce("tosa.reduce_max", e.signed_order(x.value), list(range(2, x.rank))))
    return e.reduce("tosa.reduce_max", x.value, list(range(2, x.rank)))


def _channel(a, rank):
    return a.reshape([1, -1] + [1] * (rank - 2))


@lowers("BatchNormalization")
def batch_norm(cx, x, scale, bias, mean, var, *, epsilon=1e-5, momentum=0.9, training_mode=0):
    e = cx.e
    if training_mode:
        raise Unsupported("BatchNormalization in training mode is not supported")
    consts = [t.const for t in (scale, bias, mean, var)]
    if all(c is not None for c in consts):
        s, b, m, v = (c.astype(np.float64) for c in consts)
        a = s / np.sqrt(v + epsilon)
        mul = _channel((a).astype(np.float32), x.rank)
        add = _channel((b - m * a).astype(np.float32), x.rank)
        return e.elementwise("tosa.add", e.elementwise("tosa.mul", x.value, e.const(mul)), e.const(add))
    shp = [1, x.shape[1]] + [1] * (x.rank - 2)
    s, b, m, v = (e.reshape(t.value, shp) for t in (scale, bias, mean, var))
    rstd = e.unary("tosa.rsqrt", e.elementwise("tosa.add", v, e.scalar_like(epsilon, v)))
    y = e.elementwise("tosa.mul", e.elementwise("tosa.sub", x.value, m), e.elementwise("tosa.mul", rstd, s))
    return e.elementwise("tosa.add", y, b)


@lowers("InstanceNormalization")
def instance_norm(cx, x, scale, bias, *, epsilon=1e-5):
    e = cx.e
    axes = list(range(2, x.rank))
    y = _normalize(e, x.value, axes, epsilon)
    shp = [1, x.shape[1]] + [1] * (x.rank - 2)
    y = e.elementwise("tosa.mul", y, e.reshape(scale.value, shp))
    return e.elementwise("tosa.add", y, e.reshape(bias.value, shp))


def _mean(e, v, axes):
    s = e.reduce("tosa.reduce_sum", v, axes)
    count = int(np.prod([shape_of(v)[a] for a in axes]))
    return e.elementwise("tosa.mul", s, e.scalar_like(1.0 / count, s))


def _normalize(e, v, axes, eps, want_stats=False):
    d = e.elementwise("tosa.sub", v, _mean(e, v, axes))
    var = _mean(e, e.elementwise("tosa.mul", d, d), axes)
    rstd = e.unary("tosa.rsqrt", e.elementwise("tosa.add", var, e.scalar_like(eps, var)))
    y = e.elementwise("tosa.mul", d, rstd)
    return (y, rstd) if want_stats else y


@lowers("LayerNormalization", since=17)
def layer_norm(cx, x, scale, bias=None, *, axis=-1, epsilon=1e-5, stash_type=1):
    e = cx.e
    axis = axis % x.rank
    axes = list(range(axis, x.rank))
    y, rstd = _normalize(e, x.value, axes, epsilon, want_stats=True)
    y = e.elementwise("tosa.mul", y, scale.value)
    if bias is not None:
        y = e.elementwise("tosa.add", y, bias.value)
    outs = [y]
    if len(cx.node.output) > 1:
        outs.append(_mean(e, x.value, axes))
    if len(cx.node.output) > 2:
        outs.append(rstd)
    return outs


@lowers("Gemm")
def gemm(cx, a, b, c=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    e = cx.e
    av = e.transpose(a.value, (1, 0)) if transA else a.value
    if b.const is not None:
        bm = b.const.T if transB else b.const
        bv = e.const(np.ascontiguousarray(bm * np.float32(alpha) if alpha != 1.0 else bm))
        alpha = 1.0
    else:
        bv = e.transpose(b.value, (1, 0)) if transB else b.value
    (m, k), n = shape_of(av), shape_of(bv)[1]
    y = e.reshape(e.matmul(e.reshape(av, (1, m, k)), e.reshape(bv, (1, k, n))), (m, n))
    if alpha != 1.0:
        y = e.elementwise("tosa.mul", y, e.scalar_like(alpha, y))
    if c is not None and beta != 0.0:
        cv = e.const(c.const * np.float32(beta)) if c.const is not None else c.value
        if c.const is None and beta != 1.0:
            cv = e.elementwise("tosa.mul", cv, e.scalar_like(beta, cv))
        y = e.elementwise("tosa.add", y, cv)
    return y


@lowers("MatMul")
def matmul(cx, a, b):
    e = cx.e
    out_shape = cx.out_shape()
    av = e.reshape(a.value, (1, a.shape[0])) if a.rank == 1 else a.value
    bv = e.reshape(b.value, (b.shape[0], 1)) if b.rank == 1 else b.value
    (*ba, m, k), (*bb, _, n) = shape_of(av), shape_of(bv)
    if len(bb) == 0 or all(d == 1 for d in bb):  # [..., M, K] x [K, N]: one big matmul
        rows = int(np.prod(ba, dtype=np.int64)) * m
        y = e.matmul(e.reshape(av, (1, rows, k)), e.reshape(bv, (1, k, n)))
        return e.reshape(y, out_shape)
    batch = tuple(np.broadcast_shapes(tuple(ba), tuple(bb)))
    av, bv = (broadcast_to(e, v, batch + shape_of(v)[-2:]) for v in (av, bv))
    nb = int(np.prod(batch, dtype=np.int64))
    y = e.matmul(e.reshape(av, (nb, m, k)), e.reshape(bv, (nb, k, n)))
    return e.reshape(y, out_shape)


def broadcast_to(e, v, shape):
    v = e.reshape(v, (1,) * (len(shape) - len(shape_of(v))) + shape_of(v))
    mult = [t // s for s, t in zip(shape_of(v), shape)]
    if all(m == 1 for m in mult):
        return v
    return e.op("tosa.tile", [v, e.shape_value(mult)], ir.RankedTensorType.get(list(shape), etype_of(v)))


def _softmax(e, v, axis, log=False):
    mx = e.reduce("tosa.reduce_max", v, [axis])
    d = e.elementwise("tosa.sub", v, mx)
    ex = e.unary("tosa.exp", d)
    s = e.reduce("tosa.reduce_sum", ex, [axis])
    if log:
        return e.elementwise("tosa.sub", d, e.unary("tosa.log", s))
    return e.elementwise("tosa.mul", ex, e.unary("tosa.reciprocal", s))


def _softmax_v1(cx, x, axis, log):
    """Opset < 13: softmax over the flattened trailing dims from `axis`."""
    e = cx.e
    axis = axis % x.rank
    rows, cols = int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:]))
    y = _softmax(e, e.reshape(x.value, (rows, cols)), 1, log)
    return e.reshape(y, x.shape)


@lowers("Softmax", since=13)
def softmax(cx, x, *, axis=-1):
    return _softmax(cx.e, x.value, axis % x.rank)


@lowers("LogSoftmax", since=13)
def log_softmax(cx, x, *, axis=-1):
    return _softmax(cx.e, x.value, axis % x.rank, log=True)


@lowers("Softmax", since=1)
def softmax_v1(cx, x, *, axis=1):
    return _softmax_v1(cx, x, axis, False)


@lowers("LogSoftmax", since=1)
def log_softmax_v1(cx, x, *, axis=1):
    return _softmax_v1(cx, x, axis, True)
