"""ONNX op lowerings, one module per op family; importing registers them."""

from . import convtranspose, einsum, elementwise, layout, lrn, nn, quant, reduce, resize, rnn, tensor, topk  # noqa: F401
