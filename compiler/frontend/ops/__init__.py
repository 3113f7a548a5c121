"""ONNX op lowerings, one module per op family; importing registers them."""

from . import elementwise, layout, lrn, nn, quant, reduce, resize, rnn, tensor  # noqa: F401
