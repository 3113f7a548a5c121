"""The lowering registry: `@lowers("Gemm", since=11)` registers one ONNX op lowering.

Dispatch picks the newest registration whose `since` is not newer than the model's opset.
Ops of other domains register with `domain=` (e.g. com.microsoft's QLinearAdd, as onnxruntime's
quantizer writes them); `since` is then a version of that domain.
A handler's signature is the op spec: inputs positional (as `Tensor`), ONNX attributes
keyword-only with the spec's defaults. It returns one `ir.Value`/numpy array or a list.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..ir import ir

_REGISTRY: dict[str, list[tuple[int, Callable]]] = {}


DEFAULT_DOMAINS = ("", "ai.onnx")


def op_key(op_type: str, domain: str = "") -> str:
    """The registry key: the op type, prefixed by its domain outside the default one."""
    return op_type if domain in DEFAULT_DOMAINS else f"{domain}.{op_type}"


def lowers(*op_types: str, since: int = 1, notes: str = "", domain: str = ""):
    def register(fn):
        for op in op_types:
            key = op_key(op, domain)
            _REGISTRY.setdefault(key, []).append((since, fn))
            _REGISTRY[key].sort(key=lambda p: p[0])
        fn.notes = notes
        return fn
    return register


def lookup(op_type: str, opset: int, domain: str = "") -> Callable | None:
    found = None
    for since, fn in _REGISTRY.get(op_key(op_type, domain), []):
        if since <= opset:
            found = fn
    return found


def registry() -> dict[str, list[tuple[int, Callable]]]:
    return dict(sorted(_REGISTRY.items()))


@dataclasses.dataclass
class Tensor:
    """One node input: its SSA value (made on demand) and, when known, its constant value."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    const: np.ndarray | None
    _make: Callable[[], ir.Value]
    _value: ir.Value | None = None

    @property
    def value(self) -> ir.Value:
        if self._value is None:
            self._value = self._make()
        return self._value

    @property
    def rank(self) -> int:
        return len(self.shape)

    def const_list(self) -> list:
        if self.const is None:
            raise NotConstant(self.name)
        return [x.item() for x in np.asarray(self.const).ravel()]


class NotConstant(Exception):
    """A lowering needs a compile-time constant input that is computed at run time."""


class Unsupported(Exception):
    """Raised by a lowering for an attribute/type variant it does not handle."""
