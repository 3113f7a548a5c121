"""ONNX graph -> MLIR module of TOSA ops (one function `<name>_impl`).

Every op carries its ONNX node name as its Location. All unsupported nodes are reported at
once before any IR is built.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from ..errors import UnsupportedError
from ..ir import func_d, ir, tensor_d, tensor_type
from . import ops  # noqa: F401  (registers the lowerings)
from .emitter import Emitter, shape_of
from .load import LoadedModel
from .registry import DEFAULT_DOMAINS, NotConstant, Tensor, Unsupported, lookup, op_key

SUPPORTED_DTYPES = {"float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool",
                    "uint16", "uint32", "uint64", "float64"}


def check_supported(lm: LoadedModel) -> None:
    bad = []
    for node in lm.model.graph.node:
        if _lowering(lm, node) is None:
            bad.append(f'"{node.name or node.output[0]}" ({op_key(node.op_type, node.domain)}, '
                       f'opset {_version(lm, node.domain)})')
    for name in list(lm.inputs) + list(lm.outputs):
        dt = lm.dtypes.get(name)
        if dt is None or np.dtype(dt).name not in SUPPORTED_DTYPES:
            bad.append(f'tensor "{name}" of type {dt}')
        elif name not in lm.shapes:
            bad.append(f'tensor "{name}" without a static shape (make shape-like inputs constant)')
    if bad:
        more = f" and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise UnsupportedError(f"{len(bad)} unsupported node(s)/type(s): " + ", ".join(bad[:20]) + more,
                               hint="see `dgc ops` for what is supported")


class Importer:
    def __init__(self, lm: LoadedModel, name: str, simd: bool = True):
        self.lm, self.name = lm, name
        self.simd = simd  # the target has SIMD registers: lowerings that trade memory for vectors
        self.e = Emitter(name)
        self.values: dict[str, ir.Value] = {}
        self.errors: list[str] = []

    def tensor(self, name: str) -> Tensor | None:
        if not name:
            return None
        const = self.lm.consts.get(name)
        shape = tuple(const.shape) if const is not None else self.lm.shapes.get(name)
        dtype = const.dtype if const is not None else self.lm.dtypes.get(name)
        if name in self.values:
            return Tensor(name, shape_of(self.values[name]), np.dtype(dtype), const,
                          lambda: self.values[name])
        if const is None:
            raise Unsupported(f"input '{name}' has no value (a failed node or a graph that is not sorted)")
        return Tensor(name, shape, np.dtype(dtype), const, lambda: self._materialize(name))

    def _materialize(self, name):
        if name not in self.values:
            a = self.lm.consts[name]
            # zero-element tensors are not TOSA-conformant; there is nothing to store anyway
            self.values[name] = _empty(a.shape, a.dtype) if a.size == 0 else self.e.const(a)
        return self.values[name]

    def _all_outputs_empty(self, node) -> bool:
        shapes = [self.lm.shapes.get(o) for o in node.output if o]
        return bool(shapes) and all(s is not None and 0 in s for s in shapes)

    def lower_node(self, node) -> None:
        fn = _lowering(self.lm, node)
        attrs = {a.name: _attr_value(a) for a in node.attribute}
        cx = NodeContext(self, node)
        with ir.Location.name(node.name or node.output[0]):
            if self._all_outputs_empty(node) and node.op_type not in ("Constant",):
                for out in node.output:
                    if out:
                        self.values[out] = _empty(self.lm.shapes[out], self.lm.dtypes[out])
                return
            try:
                ins = [self.tensor(n) for n in node.input]
                res = fn(cx, *ins, **attrs)
            except NotConstant as nc:
                return self._failed(node, f"input '{nc.args[0]}' must be a compile-time constant")
            except (Unsupported, TypeError) as u:
                return self._failed(node, str(u))
            except (ValueError, IndexError, KeyError, ZeroDivisionError, ir.MLIRError) as e:
                # shapes, ranks or attributes the op's definition does not allow (a malformed
                # model that ONNX's checker and shape inference let through)
                msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
                return self._failed(node, f"inputs or attributes do not fit the op ({type(e).__name__}: {msg})")
        res = res if isinstance(res, (list, tuple)) else [res]
        for out, v in zip(node.output, res):
            if not out or v is None:
                continue
            if isinstance(v, np.ndarray):
                self.lm.consts[out] = v
            else:
                self.values[out] = v

    def _failed(self, node, why: str) -> None:
        """Record the problem and stand in placeholders, so every problem is reported at once."""
        self.errors.append(f'"{node.name or node.output[0]}" ({op_key(node.op_type, node.domain)}, '
                           f'opset {_version(self.lm, node.domain)}): {why}')
        for out in node.output:
            if out and out in self.lm.shapes and out in self.lm.dtypes:
                try:
                    self.values[out] = tensor_d.EmptyOp(list(self.lm.shapes[out]),
                                                        _boundary_type(self.lm, out).element_type).result
                except ir.MLIRError:  # no placeholder for a type MLIR rejects: later nodes fail too
                    pass

    def build(self) -> ir.Module:
        lm = self.lm
        module = ir.Module.create()
        arg_types = [_boundary_type(lm, n) for n in lm.inputs]
        res_types = [_boundary_type(lm, n) for n in lm.outputs]
        with ir.InsertionPoint(module.body):
            fn = func_d.FuncOp(f"{self.name}_impl", (arg_types, res_types))
            fn.attributes["sym_visibility"] = ir.StringAttr.get("private")
            entry = fn.add_entry_block()
        with ir.InsertionPoint(entry):
            for n, arg in zip(lm.inputs, entry.arguments):
                self.values[n] = arg
            for node in lm.model.graph.node:
                self.lower_node(node)
            if self.errors:
                raise UnsupportedError(f"{len(self.errors)} node(s) cannot be compiled: " + "; ".join(self.errors[:10])
                                       + (f"; and {len(self.errors) - 10} more" if len(self.errors) > 10 else ""),
                                       hint="see `dgc ops` for supported ops and variants")
            outs = []
            with ir.Location.name("output"):
                for n, t in zip(lm.outputs, res_types):
                    v = self.tensor(n).value
                    if v.type != t:  # e.g. a constant output, or rank/dtype bookkeeping
                        v = self.e.reshape(v, t.shape)
                    outs.append(v)
                func_d.ReturnOp(outs)
        return module


class NodeContext:
    """What a lowering sees besides its inputs: the emitter and the node's output types."""

    def __init__(self, imp: Importer, node):
        self.imp, self.node, self.e = imp, node, imp.e
        self.opset = imp.lm.opset

    def out_shape(self, i: int = 0) -> tuple[int, ...]:
        shape = self.imp.lm.shapes.get(self.node.output[i])
        if shape is None:
            raise Unsupported(f"output '{self.node.output[i]}' has no static shape after inference")
        return shape

    def out_dtype(self, i: int = 0):
        return self.imp.lm.dtypes.get(self.node.output[i])

    def out_type(self, i: int = 0) -> ir.RankedTensorType:
        return tensor_type(self.out_shape(i), self.out_dtype(i))


def _version(lm: LoadedModel, domain: str) -> int:
    """The model's opset of `domain` (the default domain's after conversion)."""
    if domain in DEFAULT_DOMAINS:
        return lm.opset
    return next((o.version for o in lm.model.opset_import if o.domain == domain), 1)


def _lowering(lm: LoadedModel, node):
    return lookup(node.op_type, _version(lm, node.domain), node.domain)


def _empty(shape, dtype) -> ir.Value:
    dtype = np.int8 if np.dtype(dtype) == np.bool_ else dtype
    return tensor_d.EmptyOp(list(shape), tensor_type(shape, dtype).element_type).result


def _boundary_type(lm: LoadedModel, name: str) -> ir.RankedTensorType:
    """Bools cross the C boundary and live between ops as i8 0/1 (memref<i1> cannot be lowered)."""
    dtype = np.int8 if np.dtype(lm.dtypes[name]) == np.bool_ else lm.dtypes[name]
    return tensor_type(lm.shapes[name], dtype)


def _attr_value(a):
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [x.decode() for x in v]
    if hasattr(v, "dims"):  # TensorProto attribute
        from onnx import numpy_helper
        return numpy_helper.to_array(v)
    return v


def import_model(lm: LoadedModel, name: str, simd: bool = True) -> tuple[ir.Module, Emitter]:
    """The TOSA/Linalg module of a loaded model. `simd`: whether the target has SIMD registers;
    the one lowering that depends on it is a float depthwise conv with channel multiplier > 1
    (repeated input channels, vectorized, with SIMD; TOSA's scalar HWCM form without, which
    needs no copy of the input in the arena)."""
    check_supported(lm)
    imp = Importer(lm, name, simd)
    return imp.build(), imp.e
