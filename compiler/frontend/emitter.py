"""Small builders for TOSA ops with computed result types.

Every lowering goes through an `Emitter`, which holds the insertion point, the current
ONNX node's Location, and the constant pool (large constants become `dense_resource`
blobs so that weights never pass through textual IR).
"""

from __future__ import annotations

import numpy as np

from ..ir import element_type, ir, tensor_type

_RESOURCE_MIN = 64  # elements; smaller constants stay inline (foldable, readable)


def shape_of(v: ir.Value) -> tuple[int, ...]:
    return tuple(ir.RankedTensorType(v.type).shape)


def etype_of(v: ir.Value) -> ir.Type:
    return ir.RankedTensorType(v.type).element_type


def is_float(t: ir.Type) -> bool:
    return isinstance(t, (ir.F32Type, ir.F16Type, ir.F64Type, ir.BF16Type))


class Emitter:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.blobs: dict[str, np.ndarray] = {}  # resource key -> array (kept alive)

    # -- constants -------------------------------------------------------------
    def const(self, array, dtype=None) -> ir.Value:
        a = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        if a.dtype == np.float64:
            a = a.astype(np.float32)
        if a.dtype == np.bool_:
            a = a.astype(np.int8)  # bools live as i8 0/1, see `bool_i8`
        return self.op("tosa.const", [], tensor_type(a.shape, a.dtype), values=self.elements(a))

    def elements(self, a: np.ndarray) -> ir.Attribute:
        ttype = tensor_type(a.shape, a.dtype)
        if a.dtype == np.bool_:
            return ir.DenseElementsAttr.get(np.packbits(a.ravel(), bitorder="little"),
                                            type=ttype) if a.size else ir.DenseElementsAttr.get_splat(
                ttype, ir.IntegerAttr.get(ttype.element_type, 0))
        if a.size >= _RESOURCE_MIN and a.dtype.kind in "fiu":
            key = f"{self.prefix}_w{len(self.blobs)}"
            self.blobs[key] = a
            return ir.DenseResourceElementsAttr.get_from_buffer(memoryview(a), key, ttype, alignment=16)
        if a.dtype.kind == "u":  # MLIR signless ints: reinterpret the bits
            a = a.view(np.dtype(f"int{a.dtype.itemsize * 8}"))
        return ir.DenseElementsAttr.get(a, type=ttype)

    def scalar_like(self, value, like: ir.Value, rank: int | None = None) -> ir.Value:
        """A rank-matched [1,...,1] constant of `like`'s element type."""
        et = etype_of(like)
        np_t = np.float32 if is_float(et) else np.dtype(f"int{ir.IntegerType(et).width}") \
            if ir.IntegerType(et).width > 1 else np.bool_
        r = len(shape_of(like)) if rank is None else rank
        return self.const(np.full([1] * r, value, dtype=np_t))

    def zp(self, like: ir.Value) -> ir.Value:
        return self.scalar_like(0, like, rank=1)

    def shape_value(self, dims) -> ir.Value:
        dims = [int(d) for d in dims]
        t = ir.Type.parse(f"!tosa.shape<{len(dims)}>")
        attr = ir.DenseElementsAttr.get(np.array(dims, dtype=np.int64),
                                        type=ir.RankedTensorType.get([len(dims)], ir.IndexType.get()))
        return self.op("tosa.const_shape", [], t, values=attr)

    # -- generic op ------------------------------------------------------------
    def op(self, name: str, operands, result_type, **attrs) -> ir.Value:
        results = result_type if isinstance(result_type, list) else [result_type]
        op = ir.Operation.create(name, results=results, operands=list(operands),
                                 attributes={k: _attr(v) for k, v in attrs.items()})
        return op.result if len(results) == 1 else op.results

    # -- shaped helpers ----------------------------------------------------------
    def reshape(self, x: ir.Value, shape) -> ir.Value:
        shape = tuple(int(d) for d in shape)
        if shape == shape_of(x):
            return x
        return self.op("tosa.reshape", [x, self.shape_value(shape)],
                       ir.RankedTensorType.get(list(shape), etype_of(x)))

    def transpose(self, x: ir.Value, perm) -> ir.Value:
        perm = [int(p) for p in perm]
        if perm == list(range(len(perm))):
            return x
        shp = shape_of(x)
        return self.op("tosa.transpose", [x], ir.RankedTensorType.get([shp[p] for p in perm], etype_of(x)),
                       perms=ir.DenseI32ArrayAttr.get(perm))

    def rank_align(self, *vals: ir.Value) -> list[ir.Value]:
        """Reshape operands to a common rank (NumPy broadcasting aligns on the right)."""
        r = max(len(shape_of(v)) for v in vals)
        return [self.reshape(v, (1,) * (r - len(shape_of(v))) + shape_of(v)) for v in vals]

    def elementwise(self, name: str, *vals: ir.Value, out_etype=None, **attrs) -> ir.Value:
        vals = self.rank_align(*vals)
        shape = np.broadcast_shapes(*[shape_of(v) for v in vals])
        et = out_etype or etype_of(vals[0])
        if name == "tosa.mul":
            vals.append(self.const(np.zeros([1], np.int8)))
        return self.op(name, vals, ir.RankedTensorType.get(list(shape), et), **attrs)

    def unary(self, name: str, x: ir.Value, **attrs) -> ir.Value:
        operands = [x]
        if name == "tosa.negate":
            operands += [self.zp(x), self.zp(x)]
        return self.op(name, operands, x.type, **attrs)

    def cast(self, x: ir.Value, etype: ir.Type) -> ir.Value:
        if etype == etype_of(x):
            return x
        return self.op("tosa.cast", [x], ir.RankedTensorType.get(list(shape_of(x)), etype))

    def bool_i8(self, v: ir.Value) -> ir.Value:
        """An ONNX bool value as stored between ops: i8 0/1, because a materialized
        memref<...xi1> aborts finalize-memref-to-llvm. TOSA compares give i1; cast them."""
        if isinstance(etype_of(v), ir.IntegerType) and ir.IntegerType(etype_of(v)).width == 1:
            return self.cast(v, ir.IntegerType.get_signless(8))
        return v

    def bool_i1(self, v: ir.Value) -> ir.Value:
        """A stored bool (i8 0/1, or an i1 graph input) as the i1 TOSA logic ops take."""
        return self.cast(v, ir.IntegerType.get_signless(1))

    def signed_order(self, v: ir.Value) -> ir.Value:
        """An unsigned int value as one whose signed order is its unsigned order, for TOSA's
        signed max/argmax/pools: flip the sign bit (applied twice, it is the identity)."""
        w = ir.IntegerType(etype_of(v)).width
        return self.elementwise("tosa.bitwise_xor", v, self.scalar_like(-(1 << (w - 1)), v))

    def reduce(self, name: str, x: ir.Value, axes, keepdims=True) -> ir.Value:
        shp = list(shape_of(x))
        for a in sorted(set(axes)):
            shp[a] = 1
            x = self.op(name, [x], ir.RankedTensorType.get(shp, etype_of(x)),
                        axis=ir.IntegerAttr.get(ir.IntegerType.get_signless(32), a))
        if not keepdims:
            x = self.reshape(x, [d for i, d in enumerate(shape_of(x)) if i not in set(axes)])
        return x

    def clamp(self, x: ir.Value, lo, hi) -> ir.Value:
        et = etype_of(x)
        if is_float(et):
            mk = lambda v: ir.FloatAttr.get(et, float(v))  # noqa: E731
        else:
            mk = lambda v: ir.IntegerAttr.get(et, int(v))  # noqa: E731
        return self.op("tosa.clamp", [x], x.type, min_val=mk(lo), max_val=mk(hi))

    def slice(self, x: ir.Value, start, size) -> ir.Value:
        if list(size) == list(shape_of(x)):
            return x
        return self.op("tosa.slice", [x, self.shape_value(start), self.shape_value(size)],
                       ir.RankedTensorType.get(list(size), etype_of(x)))

    def subsample(self, v: ir.Value, steps) -> ir.Value:
        """Every steps[i]-th element along each axis i, from index 0.

        TOSA has no strided slice: pad each strided axis to a multiple of its step, split it
        into [n, step] and keep index 0 of the step axis.
        """
        for axis, p in enumerate(steps):
            if p == 1:
                continue
            shp = list(shape_of(v))
            n = -(-shp[axis] // p)
            hi = [0] * len(shp)
            hi[axis] = n * p - shp[axis]
            split = shp[:axis] + [n, p] + shp[axis + 1:]
            v = self.reshape(self.pad(v, [0] * len(shp), hi), split)
            size = list(split)
            size[axis + 1] = 1
            v = self.reshape(self.slice(v, [0] * len(split), size), shp[:axis] + [n] + shp[axis + 1:])
        return v

    def pad(self, x: ir.Value, pads_lo, pads_hi, value=0.0) -> ir.Value:
        if not any(pads_lo) and not any(pads_hi):
            return x
        flat = [p for lh in zip(pads_lo, pads_hi) for p in lh]
        shp = [d + lo + hi for d, lo, hi in zip(shape_of(x), pads_lo, pads_hi)]
        et = etype_of(x)
        np_t = np.float32 if is_float(et) else np.dtype(f"int{max(8, ir.IntegerType(et).width)}")
        pad_const = self.const(np.full([1], value, dtype=np_t))
        return self.op("tosa.pad", [x, self.shape_value(flat), pad_const],
                       ir.RankedTensorType.get(shp, et))

    def matmul(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """Batched [B,M,K] x [B,K,N] -> [B,M,N] (float accumulates in f32)."""
        (n, m, _), (_, _, k) = shape_of(a), shape_of(b)
        return self.op("tosa.matmul", [a, b, self.zp(a), self.zp(b)],
                       ir.RankedTensorType.get([n, m, k], etype_of(a)))


def _attr(v) -> ir.Attribute:
    if isinstance(v, ir.Attribute):
        return v
    if isinstance(v, ir.Type):
        return ir.TypeAttr.get(v)
    if isinstance(v, (list, tuple)):
        return ir.DenseI64ArrayAttr.get([int(x) for x in v])
    if isinstance(v, bool):
        return ir.BoolAttr.get(v)
    if isinstance(v, str):
        return ir.StringAttr.get(v)
    raise TypeError(f"cannot make an attribute of {v!r}")


def np_dtype_of(t: ir.Type):
    if isinstance(t, ir.F32Type):
        return np.float32
    if isinstance(t, ir.F16Type):
        return np.float16
    w = ir.IntegerType(t).width
    return np.bool_ if w == 1 else np.dtype(f"int{w}")


__all__ = ["Emitter", "shape_of", "etype_of", "is_float", "np_dtype_of", "element_type"]


def _parallel(rank: int) -> ir.ArrayAttr:
    it = ir.Attribute.parse("#linalg.iterator_type<parallel>")
    return ir.ArrayAttr.get([it] * rank)


def generic_map(e: Emitter, inputs: list[ir.Value], out_etype: ir.Type, body) -> ir.Value:
    """Elementwise linalg.generic over broadcast inputs; `body(*scalars) -> scalar`.

    Used where TOSA has no op (sqrt, round, exact casts, ...).
    """
    from ..ir import linalg_d, tensor_d

    inputs = e.rank_align(*inputs)
    out_shape = list(np.broadcast_shapes(*[shape_of(v) for v in inputs]))
    rank = len(out_shape)
    maps = []
    for v in inputs:
        exprs = [ir.AffineConstantExpr.get(0) if d == 1 and o != 1 else ir.AffineDimExpr.get(i)
                 for i, (d, o) in enumerate(zip(shape_of(v), out_shape))]
        maps.append(ir.AffineMap.get(rank, 0, exprs))
    maps.append(ir.AffineMap.get_identity(rank))
    init = tensor_d.EmptyOp(out_shape, out_etype).result
    out_t = ir.RankedTensorType.get(out_shape, out_etype)
    op = linalg_d.GenericOp([out_t], inputs, [init],
                            ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps]),
                            _parallel(rank))
    block = op.regions[0].blocks.append(*[etype_of(v) for v in inputs], out_etype)
    with ir.InsertionPoint(block):
        linalg_d.YieldOp([body(*block.arguments[: len(inputs)])])
    return op.result
