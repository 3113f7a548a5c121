"""Load an ONNX model into a canonical, fully static form the importer can lower.

Steps: read + check, convert to the canonical opset, pin symbolic input dimensions,
infer shapes (with data propagation), then fold every node whose inputs are all known
(shape sub-graphs that PyTorch exports, Constant nodes, attribute-like inputs) into
numpy constants, and apply the graph rewrites of `dgc.passes.graph_rewrites` (e.g.
BatchNormalization folded into the Conv before it). The result is a `LoadedModel` holding
the graph, static shapes and types of every value, and the constant table.
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from dgc.passes import graph_rewrites, qdq

from ..errors import ModelError, UnsupportedError, UsageError
from . import contrib

CANONICAL_OPSET = 17
# Ops never folded at compile time even when their inputs are constant.
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
            "Multinomial", "Bernoulli"}
_FOLD_LIMIT = 1 << 22  # elements: larger computed constants stay in the graph


@dataclasses.dataclass
class LoadedModel:
    model: onnx.ModelProto
    opset: int
    consts: dict[str, np.ndarray]  # initializers + folded values
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, np.dtype]
    inputs: list[str]  # graph inputs that are not initializers
    outputs: list[str]


def read_model(source) -> onnx.ModelProto:
    """A ModelProto from a path, bytes, or a ModelProto; ModelError when it is not ONNX."""
    if isinstance(source, onnx.ModelProto):  # a copy: the import rewrites it, the caller keeps theirs
        model = onnx.ModelProto()
        model.CopyFrom(source)
        return model
    if isinstance(source, (bytes, bytearray)):
        data, where = bytes(source), "<bytes>"
    else:
        where = os.fspath(source)
        try:
            with open(where, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ModelError(f"cannot read model file '{where}'", hint=e.strerror or str(e)) from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # protobuf raises DecodeError / RuntimeWarning subclasses
        model = None
    if model is None or not model.graph.node and not model.graph.output:
        raise ModelError(f"'{where}' is not an ONNX model",
                         hint="pass a .onnx file (protobuf ModelProto)")
    _check_names(model.graph)
    _check_sizes(model.graph.initializer, "initializer")
    external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        if where == "<bytes>" or isinstance(source, onnx.ModelProto):
            raise ModelError("the model keeps weights in external data files, but was given without its path",
                             hint="pass the .onnx file path so its directory can be read")
        base = os.path.dirname(os.path.abspath(where))
        for t in external:
            _check_external(t, base)
        try:
            onnx.load_external_data_for_model(model, base)
        except Exception as e:  # noqa: BLE001 - onnx raises many kinds here
            raise ModelError("cannot read the model's external data", where=where,
                             hint=str(e).splitlines()[0][:200] if str(e) else type(e).__name__) from None
    return model


def _array(t) -> np.ndarray:
    """An initializer as numpy; its data must match its dims and type."""
    try:
        return numpy_helper.to_array(t)
    except (ValueError, TypeError, KeyError) as e:
        raise ModelError(f"initializer '{t.name}' data does not match its shape {list(t.dims)} and type",
                         hint=str(e).splitlines()[0][:160] if str(e) else type(e).__name__) from None


MAX_ELEMENTS = 1 << 31  # per tensor: beyond any target's arena or flash, and 32-bit indexing


def _check_shapes(shapes: dict) -> None:
    """Inferred shapes: a value promising more than MAX_ELEMENTS is an error before folding
    (e.g. ConstantOfShape) could allocate it."""
    for name, shape in shapes.items():
        if shape is None:
            continue
        if any(int(d) < 0 for d in shape):
            raise ModelError(f"tensor '{name}' gets a negative dimension {list(shape)} from shape inference",
                             hint="the attributes (pads, strides, kernel) of the op producing it do not fit its input")
        n = 1
        for d in shape:
            n *= int(d)
        if n > MAX_ELEMENTS:
            raise ModelError(f"tensor '{name}' would have {n:.3g} elements (shape {list(shape)}), more than dgc "
                             f"supports ({MAX_ELEMENTS:,})", hint="the model is corrupt or far too large for a device")


def _check_names(graph) -> None:
    """Every name must be text: protobuf hands back bytes for a string field that is not UTF-8."""
    named = [("node", n.name) for n in graph.node] + [("op type", n.op_type) for n in graph.node]
    named += [("tensor", v) for n in graph.node for v in (*n.input, *n.output)]
    named += [("tensor", v.name) for v in (*graph.input, *graph.output, *graph.value_info, *graph.initializer)]
    for what, name in named:
        if not isinstance(name, str):
            raise ModelError(f"a {what} name is not valid UTF-8 ({bytes(name)[:40]!r})",
                             hint="the model file is corrupt")


def _check_sizes(tensors, what: str) -> None:
    """Tensors whose dims promise more than MAX_ELEMENTS (or negative dims) are errors before
    anything is allocated for them."""
    for t in tensors:
        dims = [int(d) for d in t.dims]
        if any(d < 0 for d in dims):
            raise ModelError(f"{what} '{t.name}' has a negative dimension {dims}")
        n = 1
        for d in dims:
            n *= d
        if n > MAX_ELEMENTS:
            raise ModelError(f"{what} '{t.name}' has {n:.3g} elements (shape {dims}), more than dgc supports "
                             f"({MAX_ELEMENTS:,})", hint="the model is corrupt or far too large for a device")


def _check_external(t, base: str) -> None:
    """External data may only come from a regular file inside the model's directory."""
    info = {e.key: e.value for e in t.external_data}
    loc = info.get("location", "")
    bad = None
    if not loc:
        bad = "names no file"
    elif os.path.isabs(loc) or loc.startswith(("\\", "/")) or re.match(r"^[A-Za-z]:", loc):
        bad = f"uses the absolute path '{loc}'"
    elif ".." in re.split(r"[\\/]", loc):
        bad = f"leaves the model's directory ('{loc}')"
    else:
        real = os.path.realpath(os.path.join(base, loc))
        if os.path.commonpath([real, os.path.realpath(base)]) != os.path.realpath(base):
            bad = f"resolves outside the model's directory ('{loc}' -> {real})"
        elif not os.path.isfile(real):
            bad = f"names a missing file '{loc}'"
        else:
            try:
                offset, length = int(info.get("offset", 0) or 0), int(info.get("length", 0) or 0)
            except ValueError:
                offset, length = -1, 0
            if offset < 0 or length < 0 or offset + length > os.path.getsize(real):
                bad = f"asks for bytes {offset}..{offset + length} of '{loc}', which is shorter"
    if bad:
        raise ModelError(f"initializer '{t.name}' external data {bad}",
                         hint="external data must be files inside the model's directory")


def parse_input_shapes(specs: tuple[str, ...] | list[str]) -> dict[str, tuple[int, ...]]:
    """'name=1x3x224x224' strings -> {name: shape}."""
    out = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) < 0:
            raise UsageError(f"bad --input-shape '{spec}'", hint="write NAME=D0xD1x..., e.g. input=1x3x96x96")
        out[name] = shape
    return out


def _opset_of(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _convert_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    if _opset_of(model) == CANONICAL_OPSET:
        return model
    try:
        converted = onnx.version_converter.convert_version(model, CANONICAL_OPSET)
        if _opset_of(model) < 11:
            _fix_old_resize(converted)
        return converted
    except Exception as e:
        if _opset_of(model) > CANONICAL_OPSET:
            return model  # newer opsets: lowerings are registered by opset, keep as is
        raise ModelError(f"cannot convert the model from opset {_opset_of(model)} to {CANONICAL_OPSET}",
                         hint=str(e).splitlines()[0][:200]) from None


def _fix_old_resize(model: onnx.ModelProto) -> None:
    """Opset <= 10 Resize/Upsample used asymmetric coordinates and floor (ceil when shrinking)
    for nearest; the version converter leaves the opset-11 defaults (half_pixel), which differ."""
    for node in model.graph.node:
        if node.op_type != "Resize" or any(a.name == "coordinate_transformation_mode" for a in node.attribute):
            continue
        node.attribute.append(helper.make_attribute("coordinate_transformation_mode", "asymmetric"))
        mode = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "mode"), b"nearest")
        if mode in (b"nearest", "nearest") and not any(a.name == "nearest_mode" for a in node.attribute):
            node.attribute.append(helper.make_attribute("nearest_mode", "floor"))


def _pin_shapes(model: onnx.ModelProto, pinned: dict[str, tuple[int, ...]]) -> None:
    init = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in init]
    for key in pinned:
        if key not in names:
            raise UsageError(f"--input-shape names unknown input '{key}'",
                             hint="model inputs are: " + ", ".join(names))
    for inp in model.graph.input:
        if inp.name in init:
            continue
        dims = inp.type.tensor_type.shape.dim
        if inp.name in pinned:
            shape = pinned[inp.name]
            if len(shape) != len(dims):
                raise UsageError(f"--input-shape for '{inp.name}' has rank {len(shape)}, "
                                 f"the model says {len(dims)}")
            for d, v in zip(dims, shape):
                d.ClearField("dim_param")
                d.dim_value = v
        bad = [d.dim_param or "?" for d in dims if not d.HasField("dim_value")]
        if bad:
            hint = f"pin it with --input-shape {inp.name}=" + "x".join(
                str(d.dim_value) if d.HasField("dim_value") else "N" for d in dims)
            raise UsageError(f"input '{inp.name}' has symbolic dimensions {bad}", hint=hint)


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX shape inference, plus the output types of com.microsoft ops (`contrib`)."""
    for _ in range(len(model.graph.node) + 1):
        model = _infer_onnx(model)
        shapes, dtypes = _value_types(model.graph)
        if not contrib.declare_outputs(model, shapes, dtypes):
            break
    return model


def _infer_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:
        first = e
    # Inference may disagree with shapes the model declares (exporters and onnx itself get
    # ceil-mode pooling wrong): keep the declared ones and infer the rest.
    try:
        return shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception:
        raise ModelError("ONNX shape inference failed", hint=str(first).splitlines()[-1][:300]) from None


def _value_types(graph: onnx.GraphProto):
    shapes, dtypes = {}, {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
            continue
        if all(d.HasField("dim_value") for d in tt.shape.dim):
            shapes[vi.name] = tuple(d.dim_value for d in tt.shape.dim)
        if tt.elem_type:
            dtypes[vi.name] = helper.tensor_dtype_to_np_dtype(tt.elem_type)
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
        dtypes[init.name] = helper.tensor_dtype_to_np_dtype(init.data_type)
    return shapes, dtypes


def _eval_node(node: onnx.NodeProto, args: list, opset: int) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    ins = [f"i{k}" if n else "" for k, n in enumerate(node.input)]
    one = helper.make_node(node.op_type, ins, [f"o{k}" for k in range(len(node.output))],
                           domain=node.domain)
    one.attribute.extend(node.attribute)
    feeds = {f"i{k}": a for k, a in enumerate(args) if node.input[k]}
    ref = ReferenceEvaluator(one, opsets={"": opset})
    return [np.asarray(r) for r in ref.run(None, feeds)]


def _fold_once(model: onnx.ModelProto, consts: dict, shapes: dict) -> bool:
    """Fold foldable nodes into `consts`; returns True when anything changed."""
    opset, keep, changed = _opset_of(model), [], False
    for node in model.graph.node:
        results = None
        if node.op_type == "Shape" and node.input[0] in shapes and node.domain in ("", "ai.onnx"):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            shp = shapes[node.input[0]]
            start, end = attrs.get("start", 0), attrs.get("end", len(shp))
            results = [np.array(shp[slice(start, end)], dtype=np.int64)]
        elif (node.op_type not in _NO_FOLD and node.domain in ("", "ai.onnx")
              and all(not n or n in consts for n in node.input)
              and not any(a.type == onnx.AttributeProto.GRAPH for a in node.attribute)):
            try:
                results = _eval_node(node, [consts.get(n) for n in node.input], opset)
            except Exception:
                results = None  # leave it to the importer, which reports errors properly
            if results and sum(r.size for r in results) > _FOLD_LIMIT and node.op_type != "Constant":
                results = None
        if results is None:
            keep.append(node)
            continue
        for name, value in zip(node.output, results):
            consts[name] = value
        changed = True
    if changed:
        del model.graph.node[:]
        model.graph.node.extend(keep)
        _sync_initializers(model, consts)
    return changed


def _sync_initializers(model: onnx.ModelProto, consts: dict) -> None:
    """Make every constant an initializer so shape inference sees its value."""
    have = {i.name for i in model.graph.initializer}
    for name, value in consts.items():
        if name not in have:
            model.graph.initializer.append(numpy_helper.from_array(value, name))


def load(source, input_shapes: dict[str, tuple[int, ...]] | None = None) -> LoadedModel:
    model = read_model(source)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise ModelError("the model is not valid ONNX", hint=str(e).splitlines()[0][:300]) from None
    except (UnicodeError, ValueError) as e:  # e.g. a name that is not UTF-8
        raise ModelError("the model is not valid ONNX", hint=f"{type(e).__name__}: {str(e)[:200]}") from None
    if not model.graph.output:
        raise ModelError("the model has no outputs", hint="a graph must list at least one output")
    newest = onnx.defs.onnx_opset_version()
    if _opset_of(model) > newest:
        raise UnsupportedError(f"the model's opset {_opset_of(model)} is newer than any ONNX release dgc knows "
                               f"(onnx {onnx.__version__}: opset {newest})",
                               hint="export the model with an older opset, or update dgc")
    for vi in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        dims = vi.type.tensor_type.shape.dim if vi.type.HasField("tensor_type") else []
        if any(d.HasField("dim_value") and d.dim_value < 0 for d in dims):
            raise ModelError(f"tensor '{vi.name}' has a negative dimension "
                             f"{[d.dim_value if d.HasField('dim_value') else d.dim_param for d in dims]}")
    model = _convert_opset(model)
    _pin_shapes(model, input_shapes or {})
    init_names = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in init_names]
    consts = {i.name: _array(i) for i in model.graph.initializer}
    try:
        qdq.run(model, consts)  # DQ -> Conv/Gemm -> Q to QLinearConv, before DQ(weights) folds to float
        for _ in range(32):  # each round folds what the previous one made computable
            model = _infer(model)
            shapes, _ = _value_types(model.graph)
            _check_shapes(shapes)
            if not _fold_once(model, consts, shapes):
                break
        graph_rewrites.run(model, consts)  # e.g. BatchNormalization into the Conv before it
    except (ValueError, IndexError, KeyError, ZeroDivisionError) as e:  # numpy on inconsistent constants
        msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ModelError("the model's constants do not fit its ops", hint=f"{type(e).__name__}: {msg}") from None
    shapes, dtypes = _value_types(model.graph)
    for name, value in consts.items():
        shapes[name], dtypes[name] = tuple(value.shape), value.dtype
    return LoadedModel(model, _opset_of(model), consts, shapes, dtypes, inputs,
                       [o.name for o in model.graph.output])
