"""The generated C contract: symbols, sections, header, determinism, arena planning, linking
two models into one Cortex-M firmware."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

import dgc
from conftest import require_tools, zoo_model
from dgc.passes.memory_plan import plan_offsets
from dgc.runtime.runners import run_models
from dgc.tools import tool_path
from dgc.verifier import compare, random_inputs, reference

FORBIDDEN = {"malloc", "free", "calloc", "realloc", "__aeabi_unwind_cpp_pr0", "__aeabi_unwind_cpp_pr1",
             "__gxx_personality_v0", "_Unwind_Resume", "memrefCopy", "expf", "logf", "tanhf", "erff",
             "floorf", "sqrtf", "powf"}


def _readelf(obj_path, *flags) -> str:
    return subprocess.run([tool_path("llvm-readelf"), *flags, str(obj_path)], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.parametrize("target", ["cortex-m7", "cortex-m0plus", "cortex-m55", "aarch64", "armv7a", "x86-64"])
def test_object_symbols_and_sections(target, tmp_path):
    # tiny BERT's 1.3 MB arena is over the Cortex-M parts' default budgets: no limit here
    res = dgc.compile(zoo_model("tiny_bert"), target, name="bert", ram_limit=None, flash_limit=None)
    obj = tmp_path / "bert.o"
    obj.write_bytes(res.object)
    syms = _readelf(obj, "--syms", "-W")
    globals_ = {ln.split()[-1] for ln in syms.splitlines() if " GLOBAL " in ln and " UND " not in ln}
    undefined = {ln.split()[-1] for ln in syms.splitlines() if " UND " in ln and ln.split()[-1] != "0"}
    assert globals_ == {"bert_run"}
    assert not undefined & FORBIDDEN, undefined & FORBIDDEN
    assert set(res.spec.extern_symbols) == undefined - {"UND"}
    sections = _readelf(obj, "-S", "-W")
    # no mutable globals: nothing in .data/.bss; weights are read-only data
    for ln in sections.splitlines():
        m = re.search(r"\] (\.(?:data|bss)\S*)\s+\S+\s+\S+\s+\S+\s+([0-9a-f]+)", ln)
        if m:
            assert int(m.group(2), 16) == 0, ln
    rodata = sum(int(m.group(1), 16) for m in re.finditer(r"\] \.rodata\S*\s+PROGBITS\s+\S+\s+\S+\s+([0-9a-f]+)", sections))
    assert rodata >= 4 * 396_000  # ~396k float weights live in .rodata


def test_deterministic_bytes():
    a = dgc.compile(zoo_model("ds_cnn"), "cortex-m4", name="kws")
    b = dgc.compile(zoo_model("ds_cnn"), "cortex-m4", name="kws")
    assert a.object == b.object and a.header == b.header


def test_header_contract():
    res = dgc.compile(zoo_model("tiny_bert_ids"), "cortex-m7", name="bert", ram_limit=None, flash_limit=None)
    h = res.header
    assert f"#define BERT_ARENA_SIZE {res.arena_size}u" in h
    assert f"#define BERT_STACK_SIZE {res.spec.stack_size}u" in h and res.spec.stack_size > 0
    assert "#define BERT_ARENA_ALIGN 16u" in h
    assert "#define BERT_NUM_INPUTS 1" in h and "#define BERT_NUM_OUTPUTS 1" in h
    assert "#define BERT_INPUT0_SIZE 128" in h and "#define BERT_OUTPUT0_SIZE 16384" in h
    assert "int bert_run(const int64_t *input0, float *output0, void *arena);" in h
    assert "int64" in h and "[1, 128]" in h


def test_header_compiles_as_c_and_cpp(tmp_path):
    res = dgc.compile(zoo_model("lenet5"), "host", name="lenet")
    (tmp_path / "lenet.h").write_text(res.header)
    for cc, ext in (("cc", "c"), ("c++", "cpp")):
        src = tmp_path / f"use.{ext}"
        src.write_text('#include "lenet.h"\nstatic unsigned char arena[LENET_ARENA_SIZE] '
                       '__attribute__((aligned(LENET_ARENA_ALIGN)));\n'
                       'int call(const float *x, float *y) { return lenet_run(x, y, arena); }\n')
        subprocess.run([cc, "-Wall", "-Werror", "-c", str(src), "-o", str(tmp_path / f"use_{ext}.o")],
                       check=True, cwd=tmp_path)


def test_arena_is_the_only_scratch(tmp_path):
    """Running twice with a poisoned arena gives identical outputs: all state lives in the arena."""
    require_tools("host")
    from dgc.runtime.runners import run_model

    res = dgc.compile(zoo_model("resnet8"), "host", name="r8")
    obj = tmp_path / "r8.o"
    obj.write_bytes(res.object)
    x = random_inputs(res.spec, 3)
    y1 = run_model(res.spec, str(obj), res.target, x, str(tmp_path))
    y2 = run_model(res.spec, str(obj), res.target, x, str(tmp_path))
    np.testing.assert_array_equal(y1[0], y2[0])
    assert res.arena_size < 4 * (32 * 32 * 16) * 4  # liveness reuse: far below the sum of buffers


def test_two_models_one_cortex_m_firmware(tmp_path):
    require_tools("cortex-m7")
    models, inputs, wants = [], [], []
    for zoo_name, name in (("ds_cnn", "kws"), ("lenet5", "digits")):
        proto = zoo_model(zoo_name)
        res = dgc.compile(proto, "cortex-m7", name=name)
        obj = tmp_path / f"{name}.o"
        obj.write_bytes(res.object)
        models.append((res.spec, str(obj)))
        x = random_inputs(res.spec, 7)
        inputs.append(x)
        wants.append(reference(proto, res.spec, x))
    outs = run_models(models, dgc.get_target("cortex-m7"), inputs, str(tmp_path))
    for (spec, _), got, want in zip(models, outs, wants):
        assert all(c.ok for c in compare(spec, got, want)), spec.name


def test_plan_offsets_never_overlap_live_buffers():
    rng = np.random.default_rng(0)
    for _ in range(50):
        bufs = []
        for _ in range(rng.integers(1, 30)):
            s = int(rng.integers(0, 40))
            bufs.append((int(rng.integers(1, 100)) * 16, s, s + int(rng.integers(0, 10))))
        offs, total = plan_offsets(bufs)
        for i, (si, ai, bi) in enumerate(bufs):
            assert offs[i] % 16 == 0 and offs[i] + si <= total
            for j, (sj, aj, bj) in enumerate(bufs[:i]):
                if not (bi < aj or bj < ai):
                    assert offs[i] + si <= offs[j] or offs[j] + sj <= offs[i]
        peak = max(sum(s for s, a, b in bufs if a <= t <= b) for t in range(60))
        assert total >= peak


def test_plan_offsets_tries_more_than_largest_first():
    """ResNet-8's buffers (padded inputs written in place): largest-first placement alone
    needs 279,040 bytes; the best of the orders stays within 7% of the live peak."""
    bufs = [(13872, 60, 74), (65536, 74, 94), (73984, 76, 85), (73984, 85, 94), (65536, 94, 114),
            (69696, 96, 105), (41472, 105, 115), (32768, 114, 115), (32768, 115, 134),
            (36992, 117, 124), (25600, 124, 135), (16384, 134, 135), (16384, 135, 139)]
    peak = max(sum(s for s, a, b in bufs if a <= t <= b) for t in range(50, 150))
    assert peak <= plan_offsets(bufs)[1] <= 1.07 * peak
