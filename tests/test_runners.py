"""dgc.runtime.runners: hand-written C "models" that keep the dgc C contract, built with
each target's compiler, linked together into one program and executed natively, under
qemu-user or on the QEMU Cortex-M boards; results are checked against numpy."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from dgc import targets
from dgc.errors import UsageError
from dgc.runtime.runners import ModelRunError, run_model, run_models
from dgc.spec import ModelSpec, TensorSpec

# m1: output0 = 2 * input0 + 1, through the arena (which must be 16-aligned).
M1_C = r"""
#include <stdint.h>
int m1_run(const float *input0, float *output0, void *arena) {
    float *tmp = (float *)arena;
    if ((uintptr_t)arena % 16u != 0) return 5;
    for (int i = 0; i < 15; i++) tmp[i] = 2.0f * input0[i];
    for (int i = 0; i < 15; i++) output0[i] = tmp[i] + 1.0f;
    return 0;
}
"""
M1 = ModelSpec("m1", (TensorSpec("x", (3, 5), "float32"),),
               (TensorSpec("y", (3, 5), "float32"),), arena_size=64)

# m2: two inputs, two outputs of different dtypes, no arena (NULL).
M2_C = r"""
#include <stdint.h>
int m2_run(const int8_t *input0, const float *input1, float *output0, int32_t *output1,
           void *arena) {
    int32_t sum = 0;
    if (arena) return 6;
    for (int i = 0; i < 4; i++) { output0[i] = (float)input0[i] * input1[i]; sum += input0[i]; }
    output1[0] = sum;
    return 0;
}
"""
M2 = ModelSpec("m2", (TensorSpec("a", (4,), "int8"), TensorSpec("b", (4,), "float32")),
               (TensorSpec("p", (4,), "float32"), TensorSpec("s", (1,), "int32")), 0)

# m3 reports a failure.
M3_C = "int m3_run(const float *input0, float *output0, void *arena) { return 3; }\n"
M3 = ModelSpec("m3", (TensorSpec("x", (2,), "float32"),), (TensorSpec("y", (2,), "float32"),), 0)

# big: 4 MiB of weights in .rodata and an 8 MiB arena whose last word it uses.
BIG_C = r"""
#include <stdint.h>
static const float weights[1u << 20] = {[0] = 0.5f, [(1u << 20) - 1] = 3.0f};
int big_run(const float *input0, float *output0, void *arena) {
    volatile float *last = (volatile float *)((char *)arena + (8u << 20) - 4u);
    *last = input0[0] * weights[(1u << 20) - 1];
    output0[0] = *last + weights[0];
    return 0;
}
"""
BIG = ModelSpec("big", (TensorSpec("x", (1,), "float32"),), (TensorSpec("y", (1,), "float32"),),
                arena_size=8 << 20)

# One target per runner family and per QEMU board / ISA variant.
TARGETS = ["host", "aarch64", "armv7a", "cortex-m0plus", "cortex-m3", "cortex-m4",
           "cortex-m7", "cortex-m33", "cortex-m55"]


def _target(name: str) -> targets.Target:
    return targets.get_target(name)


def _compile(target: targets.Target, source: str, tmp_path, name: str) -> str:
    """Build a C "model" into an object the way dgc builds its own: PIC on Linux."""
    gcc = target.gcc or "cc"
    if shutil.which(gcc) is None or (target.board and shutil.which(
            "qemu-system-arm" if target.bare_metal else target.board) is None):
        pytest.skip(f"toolchain or emulator for {target.name} not installed")
    src, obj = tmp_path / f"{name}.c", tmp_path / f"{name}.o"
    src.write_text(source)
    pic = [] if target.bare_metal else ["-fPIC"]
    flags = [f for f in target.gcc_flags if f != "-static"]
    subprocess.run([gcc, *flags, *pic, "-O2", "-ffp-contract=off", "-c", str(src), "-o",
                    str(obj)], check=True)
    return str(obj)


def _inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    a = rng.integers(-128, 128, 4).astype(np.int8)
    b = rng.standard_normal(4).astype(np.float32)
    return x, a, b


@pytest.mark.parametrize("name", TARGETS)
def test_two_models_in_one_program(name, tmp_path):
    target = _target(name)
    models = [(M1, _compile(target, M1_C, tmp_path, "m1")),
              (M2, _compile(target, M2_C, tmp_path, "m2"))]
    x, a, b = _inputs()
    (y,), (p, s) = run_models(models, target, [[x], [a, b]], str(tmp_path / "run"), timeout=60)
    np.testing.assert_array_equal(y, 2 * x + np.float32(1))
    np.testing.assert_array_equal(p, a.astype(np.float32) * b)
    assert s.dtype == np.int32 and s.shape == (1,) and s[0] == a.astype(np.int32).sum()


@pytest.mark.parametrize("name", ["host", "cortex-m7"])
def test_run_model_twice_same_workdir(name, tmp_path):
    target = _target(name)
    obj = _compile(target, M1_C, tmp_path, "m1")
    for seed in (1, 2):
        x = _inputs(seed)[0]
        (y,) = run_model(M1, obj, target, [x], str(tmp_path / "run"))
        np.testing.assert_array_equal(y, 2 * x + np.float32(1))


@pytest.mark.parametrize("name", ["cortex-m7", "cortex-m55"])
def test_large_weights_and_arena(name, tmp_path):
    target = _target(name)
    (y,) = run_model(BIG, _compile(target, BIG_C, tmp_path, "big"), target,
                     [np.array([2.0], np.float32)], str(tmp_path / "run"), timeout=60)
    assert y[0] == 6.5


@pytest.mark.parametrize("name", ["host", "aarch64", "cortex-m3"])
def test_nonzero_return_is_reported(name, tmp_path):
    target = _target(name)
    obj = _compile(target, M3_C, tmp_path, "m3")
    with pytest.raises(ModelRunError, match="m3_run returned 3"):
        run_model(M3, obj, target, [np.zeros(2, np.float32)], str(tmp_path / "run"))


def test_bad_inputs_are_usage_errors(tmp_path):
    target = _target("host")
    obj = _compile(target, M1_C, tmp_path, "m1")
    with pytest.raises(UsageError, match="shape"):
        run_model(M1, obj, target, [np.zeros((5, 3), np.float32)], str(tmp_path))
    with pytest.raises(UsageError, match="takes 1 inputs"):
        run_model(M1, obj, target, [], str(tmp_path))


def test_compile_only_target_is_refused(tmp_path):
    with pytest.raises(UsageError, match="compile-only"):
        run_model(M1, "unused.o", _target("cortex-m85"), [np.zeros((3, 5), np.float32)],
                  str(tmp_path))
