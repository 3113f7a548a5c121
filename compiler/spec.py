"""What a compiled model looks like from C: its name, tensors and arena size.

`ModelSpec` is produced by the driver, rendered by `header.py`, and read by the runners
in `dgc.runtime` to feed inputs and collect outputs. It round-trips through JSON so that
build scripts and runners need not re-import the model.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

# ONNX dtype name -> (C type, numpy dtype)
C_TYPES = {
    "float32": "float",
    "float16": "uint16_t",  # IEEE binary16 bits: portable C (no _Float16 needed)
    "float64": "double",
    "int8": "int8_t",
    "uint8": "uint8_t",
    "int16": "int16_t",
    "uint16": "uint16_t",
    "int32": "int32_t",
    "uint32": "uint32_t",
    "int64": "int64_t",
    "uint64": "uint64_t",
    "bool": "bool",
}


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str  # ONNX name
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name, e.g. "float32"
    # int8/uint8 tensors at a quantized model's boundary: real = scale * (q - zero_point)
    scale: float | None = None
    zero_point: int | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    @property
    def ctype(self) -> str:
        return C_TYPES[self.dtype]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str  # C identifier prefix
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    arena_size: int
    arena_align: int = 16
    extern_symbols: tuple[str, ...] = ()  # undefined symbols the object needs (memcpy...)
    stack_size: int = 0  # bytes: the deepest stack use of the entry point (dgc.stack), 0 = unknown
    weights_section: str = ""  # --weights-section: the section holding the weights ("" = .rodata.*)
    arena_section: str = ""  # --arena-section: where <NAME>_ARENA_DEFINE puts an arena

    @property
    def entry(self) -> str:
        return f"{self.name}_run"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @staticmethod
    def from_json(text: str) -> "ModelSpec":
        d = json.loads(text)
        tensors = lambda key: tuple(  # noqa: E731
            TensorSpec(t["name"], tuple(t["shape"]), t["dtype"], t.get("scale"), t.get("zero_point"))
            for t in d[key])
        return ModelSpec(d["name"], tensors("inputs"), tensors("outputs"), d["arena_size"],
                         d.get("arena_align", 16), tuple(d.get("extern_symbols", ())), d.get("stack_size", 0),
                         d.get("weights_section", ""), d.get("arena_section", ""))
