"""ONNX op lowerings, one module per op family; importing registers them."""

from . import elementwise, nn, reduce, tensor  # noqa: F401
