"""ONNX op lowerings, one module per op family; importing registers them."""

from . import (convtranspose, einsum, elementwise, layout, lrn, nn, qlinear, quant, reduce, resize, rnn,  # noqa: F401
               tensor, topk)
