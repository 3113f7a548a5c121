"""Memory safety of the generated code (issue 7): every zoo model compiled for the host runs in
the memcheck harness (runtime/dgc_memcheck.c: exact-size buffers, guard pages after and before
each buffer, read-only inputs, canaries, changing fill patterns, two threads with their own
arenas) built with AddressSanitizer, and the same models compiled for x86-64-v3 run under
valgrind memcheck (valgrind cannot decode the host's AVX-512). Every run's outputs, the threads'
included, are compared with onnxruntime.

The harness itself must catch bad code: hand-written stand-ins for a model's entry point that
write past an output, before the arena, into an input, read past an input, read arena bytes
nobody wrote or keep global state must each fail with the right diagnosis.
"""

from __future__ import annotations

import functools
import shutil

import numpy as np
import pytest

import dgc
from conftest import output_step, zoo_model
from dgc.errors import ModelRunError, UsageError
from dgc.runtime.memcheck import memcheck, render_model_c
from dgc.tools import run_tool
from dgc.verifier import compare, random_inputs, reference

SMALL = ["lenet5", "ds_cnn", "resnet8", "mobilenet_v1_025", "fc_autoencoder", "tiny_bert", "tiny_bert_ids",
         "torch_style_mlp", "old_opset_cnn", "lenet5_qdq", "ds_cnn_qdq", "resnet8_qdq", "mobilenet_v1_025_qdq"]
LARGE = ["mobilenet_v2", "resnet18"]
MODELS = SMALL + [pytest.param(m, marks=pytest.mark.slow) for m in LARGE]


@functools.lru_cache(maxsize=None)
def _model(name: str):
    if name.endswith("_qdq"):
        from dgc.zoo import quantized

        return quantized.qdq(name[:-len("_qdq")])
    return zoo_model(name)


def _check(name: str, target: str, tool: str, tmp_path):
    model = _model(name)
    res = dgc.compile(model, target, name=name)
    obj = tmp_path / f"{name}.o"
    obj.write_bytes(res.object)
    inputs = random_inputs(res.spec, seed=3)
    # valgrind checks the exact run and the threads (~100x slower); the guarded runs are native
    result = memcheck(res.spec, str(obj), res.target, inputs, str(tmp_path), tool=tool, threads=2,
                      runs=1 if tool == "valgrind" else 2)
    assert f"{name} clean" in result.log
    want = reference(model, res.spec, inputs)
    assert set(result.outputs) == {"exact", "thread0", "thread1"}
    # QDQ models: within one output step of onnxruntime on the original model (README, Quantization)
    step = output_step(model) * 1.0001 if name.endswith("_qdq") else 0.0
    for run, got in result.outputs.items():
        bad = [c for c in compare(res.spec, got, want) if not c.ok and c.max_abs > step]
        assert not bad, f"{name} {run}: " + "; ".join(f"{c.name} max abs err {c.max_abs:.3g}" for c in bad)


@pytest.mark.parametrize("name", MODELS)
def test_zoo_model_under_asan_and_guard_pages(name, tmp_path):
    _check(name, "host", "asan", tmp_path)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed (.ci/install adds it)")
@pytest.mark.parametrize("name", MODELS)
def test_zoo_model_under_valgrind(name, tmp_path):
    _check(name, "x86-64-v3", "valgrind", tmp_path)


def test_guard_pages_under_qemu_user(tmp_path):
    """The guard-page harness also runs on Linux ARM targets (under qemu-user)."""
    if shutil.which("qemu-aarch64") is None or shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("needs qemu-aarch64 and aarch64-linux-gnu-gcc (.ci/install adds them)")
    _check("ds_cnn", "aarch64", "guard", tmp_path)


# ---- the harness catches bad code ---------------------------------------------------------

# Stand-ins for lenet5_run (input 784 floats, output 10 floats, an arena): each misbehaves once.
FAKES = {
    "ok": "for (int i = 0; i < 10; i++) out[i] = in[i] + in[783];",
    "output_overflow": "for (int i = 0; i <= 10; i++) out[i] = in[i];",
    "arena_underflow": "((volatile uint8_t *)arena)[-3] = 1; for (int i = 0; i < 10; i++) out[i] = in[i];",
    "arena_overflow": "((volatile uint8_t *)arena)[ARENA] = 1; for (int i = 0; i < 10; i++) out[i] = in[i];",
    "input_write": "((float *)in)[5] = 0; for (int i = 0; i < 10; i++) out[i] = in[i];",
    "input_overread": "for (int i = 0; i < 10; i++) out[i] = in[i] + ((volatile const float *)in)[784 + i];",
    "input_underread": "for (int i = 0; i < 10; i++) out[i] = ((volatile const float *)in)[i - 8];",
    "uninitialised_arena": "float *a = arena; for (int i = 0; i < 10; i++) out[i] = in[i] + a[i];",
    "output_not_written": "for (int i = 0; i < 9; i++) out[i] = in[i];",
    "global_state": "static int calls; calls++; for (int i = 0; i < 10; i++) out[i] = in[i] * calls;",
}


@functools.lru_cache(maxsize=None)
def _lenet_spec():
    return dgc.compile(zoo_model("lenet5"), "x86-64-v3", name="lenet5").spec


def _fake(kind: str, tmp_path) -> str:
    spec = _lenet_spec()
    src = tmp_path / f"fake_{kind}.c"
    src.write_text("#include <stdint.h>\n"
                   f"#define ARENA {spec.arena_size}\n"
                   "int lenet5_run(const float *in, float *out, void *arena)\n"
                   f"{{\n    {FAKES[kind]}\n    return 0;\n}}\n")
    obj = tmp_path / f"fake_{kind}.o"
    run_tool(["cc", "-O1", "-c", str(src), "-o", str(obj)])
    return str(obj)


def _run_fake(kind: str, tool: str, tmp_path):
    spec = _lenet_spec()
    inputs = random_inputs(spec, seed=1)
    return memcheck(spec, _fake(kind, tmp_path), dgc.get_target("x86-64-v3"), inputs, str(tmp_path / "wd"),
                    tool=tool)


# kind -> what the diagnosis must say (guard pages and canaries, in every tool)
CAUGHT = {
    "output_overflow": "memory fault: output 0 (40 bytes) accessed at offset 40",
    "arena_underflow": "canary at offset -3 changed",
    "arena_overflow": "memory fault: arena 0",
    "input_write": "a write to a read-only input",
    "input_overread": "memory fault: input 0 (3136 bytes) accessed at offset 3136",
    # the tail run comes first: it reads canary bytes, which the exact run did not
    "input_underread": "guard-tail: output 0 differs from the exact run",
    "uninitialised_arena": "depends on memory the model did not write first",
    "output_not_written": "depends on memory the model did not write first",
    "global_state": "differs from the exact run",
}


def test_clean_fake_passes(tmp_path):
    spec = _lenet_spec()
    res = _run_fake("ok", "asan", tmp_path)
    x = random_inputs(spec, seed=1)[0].reshape(-1)
    for outs in res.outputs.values():
        np.testing.assert_array_equal(outs[0].reshape(-1), x[:10] + x[783])


@pytest.mark.parametrize("kind", sorted(CAUGHT))
def test_harness_catches(kind, tmp_path):
    with pytest.raises(ModelRunError) as e:
        _run_fake(kind, "asan", tmp_path)
    assert CAUGHT[kind] in str(e.value), str(e.value)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed (.ci/install adds it)")
@pytest.mark.parametrize("kind", ["uninitialised_arena", "output_not_written", "input_overread"])
def test_valgrind_catches(kind, tmp_path):
    """valgrind sees the exact run: reads past the exact-size heap input, bytes nobody wrote."""
    with pytest.raises(ModelRunError) as e:
        _run_fake(kind, "valgrind", tmp_path)
    assert any(k in str(e.value) for k in ("Invalid read", "uninitialised")), str(e.value)


def test_model_c_declares_the_model():
    c = render_model_c(_lenet_spec())
    assert "lenet5_run((const float *)in[0], (float *)out[0], arena)" in c
    assert "static const size_t in_bytes[] = {3136}" in c


def test_unusable_tool_or_target_is_a_usage_error(tmp_path):
    spec = _lenet_spec()
    with pytest.raises(UsageError, match="unknown memcheck tool"):
        memcheck(spec, "x.o", dgc.get_target("host"), random_inputs(spec), str(tmp_path), tool="purify")
    with pytest.raises(UsageError, match="natively"):
        memcheck(spec, "x.o", dgc.get_target("cortex-m7"), random_inputs(spec), str(tmp_path), tool="asan")
