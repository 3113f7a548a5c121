"""A corpus of hostile inputs, generated here: each case runs `dgc compile` and must end with
the exit code of its class (2 bad option, 3 bad model, 4 unsupported), one `dgc: error:` line
and no traceback, and leave no output file behind.

Cases: truncated and random-byte files, wrong IR/opset versions, missing initializers, graph
cycles, dangling inputs, duplicate names, negative/huge/symbolic dims, unsupported dtypes
(string, complex, float8, ...), control flow (If/Loop/Scan), unknown ops and domains,
external-data tricks (absolute paths, '..', symlinks out, missing or short files), oversized
tensors, and bad command-line options.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dgc import cli
from dgc.zoo import build

BAD_OPTION, BAD_MODEL, UNSUPPORTED = 2, 3, 4


def _tiny(dtype=TensorProto.FLOAT, dims=(1, 2, 5, 5), extra_nodes=(), opset=17):
    """x -> Conv(w) -> Relu -> y, the base every proto-level case mutates."""
    w = numpy_helper.from_array(np.ones((3, 2, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu"), *extra_nodes]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", dtype, list(dims))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 5, 5])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _bytes_cases():
    out = []
    for name in ("lenet5", "ds_cnn", "fc_autoencoder"):
        data = build(name).SerializeToString()
        for frac in (0.001, 0.01, 0.05, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.97, 0.999):
            out.append((f"truncated_{name}_{frac}", data[:max(1, int(len(data) * frac))], BAD_MODEL))
    for seed in range(15):
        rng = np.random.default_rng(seed)
        out.append((f"random_bytes_{seed}", rng.integers(0, 256, int(rng.integers(1, 5000)), dtype=np.uint8).tobytes(),
                    BAD_MODEL))
    tiny = _tiny().SerializeToString()
    assert b"\x1a\x04conv" in tiny  # NodeProto.name (field 3) = "conv"
    out.append(("non_utf8_node_name", tiny.replace(b"\x1a\x04conv", b"\x1a\x04con\xd7", 1), BAD_MODEL))
    out += [("empty_file", b"", BAD_MODEL), ("text_file", b"hello, I am not ONNX\n", BAD_MODEL),
            ("png_header", b"\x89PNG\r\n\x1a\n" + bytes(100), BAD_MODEL)]
    return out


def _mutate(fn):
    m = _tiny()
    fn(m)
    return m


def _set_ir(v):
    def f(m):
        m.ir_version = v
    return f


def _set_opset(v, domain=""):
    def f(m):
        del m.opset_import[:]
        m.opset_import.append(helper.make_opsetid(domain, v))
    return f


def _input_dims(*dims):
    def f(m):
        shape = m.graph.input[0].type.tensor_type.shape
        for d, v in zip(shape.dim, dims):
            d.Clear()
            if isinstance(v, str):
                d.dim_param = v
            else:
                d.dim_value = v
    return f


def _cycle(m):
    m.graph.node[0].input[0] = "y"  # conv reads relu's output: a cycle


def _dangling(m):
    m.graph.node[1].input[0] = "nowhere"


def _duplicate_output(m):
    m.graph.node.append(helper.make_node("Relu", ["c"], ["y"], name="relu2"))


def _drop_initializer(m):
    del m.graph.initializer[:]


def _no_outputs(m):
    del m.graph.output[:]


def _unproduced_output(m):
    m.graph.output.append(helper.make_tensor_value_info("ghost", TensorProto.FLOAT, [1]))


def _raw_data_short(m):
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:7]


def _huge_initializer(m):
    t = m.graph.initializer[0]
    del t.dims[:]
    t.dims.extend([1000000, 1000000])


def _node(op, inputs, outputs, **kw):
    def f(m):
        m.graph.node.append(helper.make_node(op, inputs, outputs, **kw))
        m.graph.output[0].name = outputs[0]
    return f


def _const_of_shape_huge(m):
    shape = numpy_helper.from_array(np.array([100000, 100000, 10], np.int64), "big_shape")
    m.graph.initializer.append(shape)
    m.graph.node.append(helper.make_node("ConstantOfShape", ["big_shape"], ["big"]))
    m.graph.node.append(helper.make_node("ReduceSum", ["big"], ["s"], keepdims=0))
    m.graph.output.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, [10]))


def _bad_attr(m):
    m.graph.node[0].attribute.append(helper.make_attribute("strides", [0.5, 0.5]))


def _control_flow(op):
    def f(m):
        body = helper.make_graph([helper.make_node("Identity", ["y"], ["yo"])], "body", [],
                                 [helper.make_tensor_value_info("yo", TensorProto.FLOAT, None)])
        cond = numpy_helper.from_array(np.array(True), "cond")
        m.graph.initializer.append(cond)
        if op == "If":
            node = helper.make_node("If", ["cond"], ["z"], then_branch=body, else_branch=body)
        elif op == "Loop":
            trip = numpy_helper.from_array(np.array(2, np.int64), "trip")
            m.graph.initializer.append(trip)
            lbody = helper.make_graph(
                [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])],
                "lbody", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                          helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
                          helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
                [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
            node = helper.make_node("Loop", ["trip", "cond", "y"], ["z"], body=lbody)
        else:
            sbody = helper.make_graph(
                [helper.make_node("Add", ["s_in", "x_in"], ["s_out"]), helper.make_node("Identity", ["s_out"], ["o"])],
                "sbody", [helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [5]),
                          helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [5])],
                [helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [5]),
                 helper.make_tensor_value_info("o", TensorProto.FLOAT, [5])])
            init = numpy_helper.from_array(np.zeros(5, np.float32), "s0")
            seq = numpy_helper.from_array(np.zeros((3, 5), np.float32), "seq")
            m.graph.initializer.extend([init, seq])
            node = helper.make_node("Scan", ["s0", "seq"], ["z", "zs"], body=sbody, num_scan_inputs=1)
        m.graph.node.append(node)
        m.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [5] if op == "Scan" else [1, 3, 5, 5]))
    return f


def _proto_cases():
    cases = [(f"ir_version_{v}", _mutate(_set_ir(v)), BAD_MODEL) for v in (0, 1, 2, 99, 1000)]
    cases += [(f"opset_{v}", _mutate(_set_opset(v)), BAD_MODEL if v == 0 else UNSUPPORTED) for v in (0, 99, 100000)]
    cases += [("unknown_domain_only", _mutate(_set_opset(1, "com.example")), BAD_MODEL)]
    cases += [("cycle", _mutate(_cycle), BAD_MODEL), ("dangling_input", _mutate(_dangling), BAD_MODEL),
              ("duplicate_output_name", _mutate(_duplicate_output), BAD_MODEL),
              ("missing_initializer", _mutate(_drop_initializer), BAD_MODEL),
              ("no_outputs", _mutate(_no_outputs), BAD_MODEL),
              ("unproduced_output", _mutate(_unproduced_output), BAD_MODEL),
              ("raw_data_too_short", _mutate(_raw_data_short), BAD_MODEL),
              ("initializer_1e12_elements", _mutate(_huge_initializer), BAD_MODEL),
              ("constant_of_shape_1e11", _mutate(_const_of_shape_huge), BAD_MODEL),
              ("attribute_wrong_type", _mutate(_bad_attr), BAD_MODEL),
              ("negative_dim", _mutate(_input_dims(1, 2, -5, 5)), BAD_MODEL),
              ("huge_dims", _mutate(_input_dims(1, 2, 100000, 100000)), BAD_MODEL),
              ("symbolic_dim_unpinned", _mutate(_input_dims("batch", 2, 5, 5)), BAD_OPTION),
              ("unknown_op", _mutate(_node("FrobnicateTensor", ["y"], ["z"])), BAD_MODEL),
              ("custom_domain_op", _mutate(lambda m: (_node("Frob", ["y"], ["z"], domain="com.example")(m),
                                                      m.opset_import.append(helper.make_opsetid("com.example", 1)))),
               UNSUPPORTED)]
    for op in ("If", "Loop", "Scan"):
        cases.append((f"control_flow_{op}", _mutate(_control_flow(op)), UNSUPPORTED))
    for name, dt in (("string", TensorProto.STRING), ("complex64", TensorProto.COMPLEX64),
                     ("complex128", TensorProto.COMPLEX128), ("float8e4m3fn", TensorProto.FLOAT8E4M3FN),
                     ("float8e5m2", TensorProto.FLOAT8E5M2), ("int4", TensorProto.INT4),
                     ("uint4", TensorProto.UINT4)):
        m = _tiny()
        m.graph.input.append(helper.make_tensor_value_info("odd", dt, [4]))
        m.graph.node.append(helper.make_node("Identity", ["odd"], ["odd_out"]))
        m.graph.output.append(helper.make_tensor_value_info("odd_out", dt, [4]))
        cases.append((f"dtype_{name}", m, (BAD_MODEL, UNSUPPORTED)))
    return cases


def _external(kind, tmp_path):
    """A model whose initializer 'w' lives in external data, with `kind` of trick."""
    m = _tiny()
    w = m.graph.initializer[0]
    raw = w.raw_data
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    d = tmp_path / "model"
    d.mkdir()
    outside = tmp_path / "secret.bin"
    outside.write_bytes(raw)
    loc = {"absolute": str(outside), "dotdot": "../secret.bin", "symlink": "link.bin", "missing": "nope.bin",
           "short": "short.bin", "ok_but_offset_past_end": "w.bin"}[kind]
    if kind == "symlink":
        os.symlink(outside, d / "link.bin")
    if kind == "short":
        (d / "short.bin").write_bytes(raw[:10])
    if kind == "ok_but_offset_past_end":
        (d / "w.bin").write_bytes(raw)
    entries = {"location": loc}
    if kind == "ok_but_offset_past_end":
        entries.update(offset=str(len(raw)), length=str(len(raw)))
    if kind == "short":
        entries.update(length=str(len(raw)))
    for k, v in entries.items():
        w.external_data.append(onnx.StringStringEntryProto(key=k, value=v))
    path = d / "m.onnx"
    path.write_bytes(m.SerializeToString())
    return path


EXTERNAL = ["absolute", "dotdot", "symlink", "missing", "short", "ok_but_offset_past_end"]

OPTIONS = [
    ("input_shape_no_equals", ["--input-shape", "1x2x5x5"]), ("input_shape_letters", ["--input-shape", "x=axb"]),
    ("input_shape_negative", ["--input-shape", "x=1x-2x5x5"]), ("input_shape_unknown_input", ["--input-shape", "q=1x2"]),
    ("input_shape_wrong_rank", ["--input-shape", "x=1x2"]), ("name_digit", ["--name", "1abc"]),
    ("name_keyword", ["--name", "int"]), ("name_dash", ["--name", "a-b"]), ("name_reserved", ["--name", "__x"]),
    ("name_reserved_upper", ["--name", "_Foo"]), ("unknown_target", ["--target", "z80"]), ("opt_level", ["-O", "7"]),
    ("emit_kind", ["--emit", "obj,exe"]), ("ram_limit_bad", ["--ram-limit", "lots"]),
    ("flash_limit_bad", ["--flash-limit", "12Q"]), ("weights_section_bad", ["--weights-section", "a b"]),
    ("schedule_missing", ["--schedule", "/nonexistent/s.json"]), ("stop_after_unknown", ["--stop-after", "magic"]),
    ("calibration_without_quantize", ["--calibration", "s.npz"]), ("quantize_without_calibration", ["--quantize", "int8"]),
]


def _run(path, tmp_path, capsys, extra=()):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        cli.main(["compile", str(path), "--target", "cortex-m7", "-o", str(out), *extra])
    err = capsys.readouterr().err
    return e.value.code, err, out


def _check(code, err, out, want):
    want = want if isinstance(want, tuple) else (want,)
    assert code in want, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dgc: error: ") and "Traceback" not in err, err
    assert not out.exists() or not os.listdir(out), os.listdir(out)


@pytest.mark.parametrize("case, data, want", _bytes_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_bad_bytes(case, data, want, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    _check(*_run(path, tmp_path, capsys), want)


@pytest.mark.parametrize("case, model, want", _proto_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_bad_model(case, model, want, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    _check(*_run(path, tmp_path, capsys), want)


@pytest.mark.parametrize("kind", EXTERNAL)
def test_external_data_tricks(kind, tmp_path, capsys):
    code, err, out = _run(_external(kind, tmp_path), tmp_path, capsys)
    _check(code, err, out, BAD_MODEL)
    assert "external data" in err


@pytest.mark.parametrize("case, args", OPTIONS, ids=[c for c, _ in OPTIONS])
def test_bad_options(case, args, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(_tiny().SerializeToString())
    _check(*_run(path, tmp_path, capsys, args), BAD_OPTION)


def test_corpus_is_large_enough():
    assert len(_bytes_cases()) + len(_proto_cases()) + len(EXTERNAL) + len(OPTIONS) >= 100


def test_the_base_model_compiles(tmp_path, capsys):
    """The mutations start from a model dgc compiles (so each case fails for its own reason)."""
    path = tmp_path / "m.onnx"
    path.write_bytes(_tiny().SerializeToString())
    cli.main(["compile", str(path), "--target", "cortex-m7", "-o", str(tmp_path / "out")])
    assert sorted(os.listdir(tmp_path / "out")) == ["m.h", "m.o"], capsys.readouterr().err
