"""The single import point for the MLIR Python bindings (dialects aliased `*_d`)."""

from mlir import ir  # noqa: F401
from mlir.dialects import arith as arith_d  # noqa: F401
from mlir.dialects import func as func_d  # noqa: F401
from mlir.dialects import linalg as linalg_d  # noqa: F401
from mlir.dialects import llvm as llvm_d  # noqa: F401
from mlir.dialects import math as math_d  # noqa: F401
from mlir.dialects import memref as memref_d  # noqa: F401
from mlir.dialects import tensor as tensor_d  # noqa: F401
from mlir.dialects import tosa as tosa_d  # noqa: F401
from mlir.dialects import vector as vector_d  # noqa: F401
from mlir.passmanager import PassManager  # noqa: F401

import numpy as np

_NP_TO_MLIR = {
    "float32": lambda: ir.F32Type.get(),
    "float16": lambda: ir.F16Type.get(),
    "float64": lambda: ir.F64Type.get(),
    "bool": lambda: ir.IntegerType.get_signless(1),
    "int8": lambda: ir.IntegerType.get_signless(8),
    "uint8": lambda: ir.IntegerType.get_signless(8),
    "int16": lambda: ir.IntegerType.get_signless(16),
    "uint16": lambda: ir.IntegerType.get_signless(16),
    "int32": lambda: ir.IntegerType.get_signless(32),
    "uint32": lambda: ir.IntegerType.get_signless(32),
    "int64": lambda: ir.IntegerType.get_signless(64),
    "uint64": lambda: ir.IntegerType.get_signless(64),
}


def as_operation(x):
    """The generic ir.Operation behind an op view (what `value.owner` / `use.owner` return)."""
    return x.operation if hasattr(x, "operation") else x


def element_type(dtype) -> "ir.Type":
    """MLIR element type of a numpy dtype (needs an active Context)."""
    return _NP_TO_MLIR[np.dtype(dtype).name]()


def tensor_type(shape, dtype) -> "ir.RankedTensorType":
    return ir.RankedTensorType.get(list(shape), element_type(dtype))


def walk(op, fn) -> None:
    """Post-order walk calling fn(op) on every nested operation (fn may erase its op)."""
    for region in op.regions:
        for block in region.blocks:
            for child in list(block.operations):
                walk(child.operation, fn)
    fn(op)


def constant_op(value):
    """The arith.constant op defining `value`, or None (block arguments, other ops)."""
    if isinstance(value, ir.OpResult) and value.owner.name == "arith.constant":
        return value.owner
    return None


def attr_array(attr, blobs: dict):
    """The values of a constant's elements attribute as a flat numpy array: dense_resource
    blobs from `blobs` (the importer's, by key), inline dense and integer attributes parsed;
    None when unknown."""
    text = str(attr)
    if text.startswith("dense_resource<"):
        a = blobs.get(text[len("dense_resource<"):text.index(">")])
        return None if a is None else np.asarray(a).ravel()
    if isinstance(attr, ir.IntegerAttr):
        return np.array([ir.IntegerAttr(attr).value])
    try:
        return np.array(ir.DenseElementsAttr(attr)).ravel()
    except (ValueError, TypeError):
        return None


def ops_named(root, names) -> list:
    """All nested operations whose name is in `names` (collected before any rewrite)."""
    found = []
    walk(root, lambda op: found.append(op) if op.name in names else None)
    return found
