"""ONNX op lowerings, one module per op family; importing registers them."""

from . import elementwise, layout, nn, quant, reduce, resize, rnn, tensor  # noqa: F401
