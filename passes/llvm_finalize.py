"""Last touches on the LLVM dialect module, and weights taken out of line.

- every function `nounwind` (no C++ unwinding tables or personality symbols), only
  `<name>_run` external, everything else internal;
- large constant globals (the weights) become declarations; their bytes are kept in
  `ctx.weights` and spliced into the LLVM IR as internal constants by the backend, so tens of
  MB of weights never pass through MLIR's textual form.
"""

from __future__ import annotations

from dgc.ir import ir

_INTERNAL = "#llvm.linkage<internal>"


def _name(op) -> str:
    return ir.StringAttr(op.attributes["sym_name"]).value


def run(module, ctx) -> None:
    module.operation.attributes["llvm.target_triple"] = ir.StringAttr.get(ctx.target.triple)
    for op in [o.operation for o in module.body.operations]:
        if op.name == "llvm.func":
            _finalize_func(op, ctx)
        elif op.name == "llvm.mlir.global":
            _externalize_weight(op, ctx)


def _finalize_func(op, ctx) -> None:
    if len(op.regions[0].blocks) == 0:  # declaration (e.g. memcpy)
        return
    op.attributes["passthrough"] = ir.ArrayAttr.get([ir.StringAttr.get("nounwind")])
    if _name(op) != f"{ctx.name}_run":
        op.attributes["linkage"] = ir.Attribute.parse(_INTERNAL)
        if "sym_visibility" in op.attributes:
            del op.attributes["sym_visibility"]


def _externalize_weight(op, ctx) -> None:
    if "value" not in op.attributes:
        return
    text = str(op.attributes["value"])
    if not text.startswith("dense_resource<"):
        return
    key = text[len("dense_resource<"):text.index(">")]
    array = ctx.blobs[key]
    sym = _name(op)
    align = ir.IntegerAttr(op.attributes["alignment"]).value if "alignment" in op.attributes else 16
    ctx.weights[sym] = (array.tobytes(), max(align, 16))
    del op.attributes["value"]
    op.attributes["linkage"] = ir.Attribute.parse("#llvm.linkage<external>")
