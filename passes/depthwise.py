"""Integer depthwise convolutions with channel multiplier 1 in the channel-vector form.

TOSA lowers every depthwise_conv2d to `linalg.depthwise_conv_2d_nhwc_hwcm`: 5-D, the channel
multiplier M as a last loop of range 1, and the importer's requantization that reads it is a
5-D generic with the same unit loop. The schedule stage blocks and vectorizes
`depthwise_conv_2d_nhwc_hwc` (channels innermost, as the float importer emits it) and 4-D
generics, not those: on targets without the SMLAD/Helium depthwise kernels (`dsp_kernels`,
`mve_kernels` take the HWCM form) int8 depthwise convs ran as scalar loops - DS-CNN int8 5.9x
and MobileNet v1 0.25 int8 8.1x slower than float on x86.

This stage rewrites each such conv (M = 1, integer operands, no DSP kernel for it on the
target) as `depthwise_conv_2d_nhwc_hwc` on HWC weights, and each 5-D elementwise generic
reading its result as the same generic without the unit loop. The named op's semantics are
the same (operands sign-extended to the accumulator type, multiply, add). The zero-point form
`..._hwcm_q` (uint8 weights: a weight zero point the importer cannot fold) with constant
weights and zero points becomes the same op on int16 weights w - kzp, its accumulator
starting at -izp * sum(w - kzp) per channel: exact, as the input's padding holds izp."""

from __future__ import annotations

import numpy as np

from dgc.ir import PassManager, attr_array, constant_op, ir, linalg_d, ops_named, tensor_d
from dgc.passes import dsp_kernels
from dgc.passes.schedule import _dim_pos, blob_key, new_const

HWCM = "linalg.depthwise_conv_2d_nhwc_hwcm"
HWCM_Q = "linalg.depthwise_conv_2d_nhwc_hwcm_q"


def run(module, ctx) -> None:
    ops = [op for op in ops_named(module.operation, (HWCM, HWCM_Q))
           if _eligible(op, ctx) and not dsp_kernels.handles(op, ctx.target)]
    for op in ops:
        _rewrite(op, ctx)
    if ops:  # fold the reshapes of the unit loop away
        PassManager.parse("builtin.module(canonicalize,cse)").run(module.operation)


def _eligible(op, ctx) -> bool:
    x, w, acc = (ir.RankedTensorType(v.type) for v in (*op.operands[:2], op.operands[-1]))
    if not (all(t.has_static_shape for t in (x, w, acc)) and w.shape[3] == 1
            and all(isinstance(t.element_type, ir.IntegerType) for t in (x, w, acc))):
        return False
    return op.name == HWCM or _q_weights(op, ctx) is not None


def _scalar(value) -> int | None:
    op = constant_op(value)
    return ir.IntegerAttr(op.attributes["value"]).value if op is not None and \
        isinstance(op.attributes["value"], ir.IntegerAttr) else None


def _q_weights(op, ctx):
    """A `_q` conv's (HWC weights w - kzp as int16, per-channel start -izp * sum(w - kzp)), or
    None unless its weights and zero points are constants and its initial value a zero fill."""
    w, izp, kzp, init = op.operands[1:5]
    wc = constant_op(w)
    a = None if wc is None else attr_array(wc.attributes["value"], ctx.blobs)
    zps = (_scalar(izp), _scalar(kzp))
    fill = init.owner
    if a is None or None in zps or getattr(fill, "name", "") != "linalg.fill" or _scalar(fill.operands[0]) != 0:
        return None
    shape = ir.RankedTensorType(w.type).shape
    a = a.view(np.int8) if a.dtype == np.uint8 else a
    a = np.broadcast_to(a, shape) if a.size == 1 else a.reshape(shape)
    w16 = a.astype(np.int64).reshape(shape[:3]) - zps[1]
    start = -zps[0] * w16.sum(axis=(0, 1))
    if np.abs(w16).max(initial=0) >= 2**15 or np.abs(start).max(initial=0) >= 2**31:
        return None
    return w16.astype(np.int16), start.astype(np.int32)


def _rewrite(op, ctx) -> None:
    x, w, init = op.operands[0], op.operands[1], op.operands[-1]
    acc = ir.RankedTensorType(init.type)
    out = ir.RankedTensorType.get(acc.shape[:4], acc.element_type)
    with ir.InsertionPoint(op), op.location:
        if op.name == HWCM_Q:
            from dgc.frontend.ops.nn import broadcast_channels

            w16, start = _q_weights(op, ctx)
            w3 = new_const(w16, ctx, blob_key(w) + "_hwc")
            init4 = broadcast_channels(None, new_const(start, ctx, blob_key(w) + "_start"), out) if start.any() \
                else _init(init, out)
        else:
            w3 = _weights(w, ctx)
            init4 = _init(init, out)
        strides = [int(s) for s in np.array(ir.DenseElementsAttr(op.attributes["strides"]))]
        dil = [int(d) for d in np.array(ir.DenseElementsAttr(op.attributes["dilations"]))]
        new = linalg_d.depthwise_conv_2d_nhwc_hwc(x, w3, outs=[init4], strides=strides, dilations=dil)
    for use in list(op.results[0].uses):
        user = use.owner
        if not (user.name == "linalg.generic" and _drop_unit_loop(user, op.results[0], new)):
            with ir.InsertionPoint(op), op.location:
                back = tensor_d.expand_shape(acc, new, [[0], [1], [2], [3, 4]], [], acc.shape)
            user.operands[use.operand_number] = back
    op.erase()


def _weights(w, ctx):
    """KH x KW x C x 1 weights as KH x KW x C: a new constant when they are constant."""
    t = ir.RankedTensorType(w.type)
    op = constant_op(w)
    a = None if op is None else attr_array(op.attributes["value"], ctx.blobs)
    if a is not None and a.size == int(np.prod(t.shape)):
        return new_const(a.reshape(t.shape[:3]), ctx, blob_key(w) + "_hwc")
    return tensor_d.collapse_shape(ir.RankedTensorType.get(t.shape[:3], t.element_type), w,
                                   [[0], [1], [2, 3]])


def _init(init, out):
    """The 4-D initial value: its own fill when the 5-D one is a fill (the schedule stage fuses
    a fill with one user into the conv's loops), else the 5-D value collapsed."""
    fill = init.owner
    if getattr(fill, "name", "") == "linalg.fill":
        empty = tensor_d.EmptyOp(list(out.shape), out.element_type).result
        return linalg_d.fill(fill.operands[0], outs=[empty])
    return tensor_d.collapse_shape(out, init, [[0], [1], [2], [3, 4]])


def _drop_unit_loop(generic, old, new) -> bool:
    """Replace `generic` (all-parallel, 5 loops, loop 4 of range 1, reading `old`) by the same
    generic over 4 loops reading `new`. False (nothing changed) when it does not have that form."""
    maps = [ir.AffineMapAttr(a).value for a in generic.attributes["indexing_maps"]]
    iters = [str(a) for a in generic.attributes["iterator_types"]]
    if len(iters) != 5 or any("parallel" not in i for i in iters) or len(generic.results) != 1:
        return False
    if any(o.name == "linalg.index" for o in generic.regions[0].blocks[0].operations):
        return False
    operands, new_maps = [], []
    for v, m in zip(generic.operands, maps):
        dims = [_dim_pos(e) for e in m.results]
        shape = ir.RankedTensorType(v.type).shape
        if None in dims or 4 not in dims or shape[dims.index(4)] != 1:
            return False
        at = dims.index(4)
        kept = [d for d in dims if d != 4]
        new_maps.append(ir.AffineMap.get(4, 0, [ir.AffineDimExpr.get(d) for d in kept]))
        if v == old:
            operands.append(new)
            continue
        t = ir.RankedTensorType.get([s for i, s in enumerate(shape) if i != at],
                                    ir.RankedTensorType(v.type).element_type)
        with ir.InsertionPoint(generic), generic.location:
            if getattr(v.owner, "name", "") == "tensor.empty":
                operands.append(tensor_d.EmptyOp(list(t.shape), t.element_type).result)
            else:
                operands.append(tensor_d.collapse_shape(t, v, _groups(len(shape), at)))
    res = ir.RankedTensorType(generic.results[0].type)
    with ir.InsertionPoint(generic), generic.location:
        clone = generic.clone()
        for i, v in enumerate(operands):
            clone.operands[i] = v
        clone.attributes["indexing_maps"] = ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in new_maps])
        clone.attributes["iterator_types"] = ir.ArrayAttr.get(
            [ir.Attribute.parse("#linalg.iterator_type<parallel>")] * 4)
        clone.results[0].set_type(ir.RankedTensorType(operands[-1].type))
        back = tensor_d.expand_shape(res, clone.results[0], _groups(len(res.shape), 4), [], res.shape)
    generic.results[0].replace_all_uses_with(back)
    generic.erase()
    return True


def _groups(rank: int, unit: int) -> list[list[int]]:
    """Reassociation collapsing dimension `unit` (of size 1) of a rank-`rank` shape into its
    neighbour."""
    groups = [[i] for i in range(rank) if i != unit]
    if unit == 0:
        groups[0].insert(0, 0)
    else:
        groups[[g[0] for g in groups].index(unit - 1)].append(unit)
    return groups
