"""Build integration (issue 8): the CMake package and toolchain files, `dgc compile --depfile`,
the firmware and Linux examples built from scratch and checked against onnxruntime, rebuilds
that re-run dgc only for what changed (Ninja and Makefile generators), byte-identical output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import dgc
from conftest import run_dgc, zoo_model
from dgc.zoo import digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
GENERATORS = ["Ninja", "Unix Makefiles"]


def _need(*programs):
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"missing {missing} (.ci/install adds them)")


def _dgc_bin() -> str:
    return shutil.which("dgc") or pytest.skip("the dgc script is not on PATH (pip install -e .)")


def _cmake_dir() -> str:
    proc = run_dgc("--cmake-dir")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _run(argv, cwd=None, env=None) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _configure(src, build, generator="Ninja", toolchain=None, *defs) -> None:
    argv = ["cmake", "-S", str(src), "-B", str(build), "-G", generator, f"-DCMAKE_PREFIX_PATH={_cmake_dir()}",
            f"-DDGC_EXECUTABLE={_dgc_bin()}"]
    if toolchain:
        argv.append(f"-DCMAKE_TOOLCHAIN_FILE={_cmake_dir()}/toolchains/{toolchain}.cmake")
    _run(argv + [f"-D{d}" for d in defs])


# ---- the CLI pieces ---------------------------------------------------------------------------

def test_cmake_dir_holds_the_package():
    d = _cmake_dir()
    for f in ("dgcConfig.cmake", "dgcConfigVersion.cmake", "dgc.cmake", "toolchains/arm-none-eabi.cmake",
              "toolchains/aarch64-linux-gnu.cmake", "toolchains/arm-linux-gnueabihf.cmake"):
        assert os.path.isfile(os.path.join(d, f)), f
    from importlib.metadata import version

    text = open(os.path.join(d, "dgcConfigVersion.cmake")).read()
    assert f'set(PACKAGE_VERSION "{version("dgc")}")' in text


@pytest.mark.parametrize("target,flags", [
    ("cortex-m7", "-mthumb -mcpu=cortex-m7 -mfloat-abi=hard -mfpu=fpv5-d16"),
    ("cortex-m0plus", "-mthumb -mcpu=cortex-m0plus -mfloat-abi=soft"),
    ("cortex-m55", "-mthumb -mcpu=cortex-m55 -mfloat-abi=hard -mfpu=auto"),
    ("cortex-a53", "-mcpu=cortex-a53"),
    ("armv7a", "-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard"),
    ("x86-64-v3", "-march=x86-64-v3")])
def test_targets_cflags(target, flags):
    proc = run_dgc("targets", "--cflags", target)
    assert proc.returncode == 0 and proc.stdout.strip() == flags


def test_cflags_compile_with_the_cross_compilers(tmp_path):
    """Every runnable ARM target's flags are accepted by its gcc, and a C object built with them
    links with dgc's object for that target (same float ABI)."""
    model = tmp_path / "m.onnx"
    onnx.save(_tiny_model(), model)
    for t in dgc.all_targets():
        if t.runner not in ("qemu-user", "qemu-system") or shutil.which(t.gcc) is None:
            continue
        flags = t.cflags
        out = tmp_path / t.name
        assert run_dgc("compile", model, "--target", t.name, "--name", "m", "-o", out).returncode == 0
        (out / "use.c").write_text('#include "m.h"\nint use(const float *x, float *y) { return m_run(x, y, 0); }\n')
        _run([t.gcc, *flags, "-c", str(out / "use.c"), "-I", str(out), "-o", str(out / "use.o")])
        _run([t.gcc, *flags, "-r", "-nostdlib", str(out / "use.o"), str(out / "m.o"), "-o", str(out / "both.o")])


# ---- depfile -----------------------------------------------------------------------------------

def _tiny_model(scale: float = 2.0, name: str = "tiny") -> onnx.ModelProto:
    w = numpy_helper.from_array(np.full((4,), scale, np.float32), "w")
    g = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"], name="mul")], name,
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_depfile_names_model_external_data_schedule_and_dgc(tmp_path):
    src = tmp_path / "my models"
    src.mkdir()
    m = onnx.ModelProto()
    m.CopyFrom(zoo_model("lenet5"))  # saving with external data rewrites the proto in place
    onnx.save(m, src / "le net.onnx", save_as_external_data=True, location="le net.data", size_threshold=0)
    out = tmp_path / "out"
    sched = tmp_path / "s.json"
    assert run_dgc("compile", src / "le net.onnx", "--name", "le", "-o", out, "--dump-schedule", sched).returncode == 0
    proc = run_dgc("compile", src / "le net.onnx", "--name", "le", "-o", out, "--schedule", sched,
                   "--depfile", out / "le.d")
    assert proc.returncode == 0, proc.stderr
    text = (out / "le.d").read_text()
    target, _, deps = text.partition(": ")
    assert target == str(out / "le.o").replace(" ", "\\ ")
    deps = [d.replace("\\ ", " ") for d in re.split(r"(?<!\\)\s+", deps.replace("\\\n", " ")) if d]
    import dgc.driver
    from dgc.tools import tool_path

    for want in (src / "le net.onnx", src / "le net.data", sched, dgc.driver.__file__, tool_path("llc")):
        assert str(want) in deps, (want, deps[:5])
    assert all(os.path.isabs(d) and os.path.exists(d) for d in deps)


def test_depfile_is_not_written_when_the_compile_fails(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    proc = run_dgc("compile", bad, "-o", tmp_path, "--depfile", tmp_path / "bad.d")
    assert proc.returncode == 3 and not (tmp_path / "bad.d").exists()


# ---- rebuilds ----------------------------------------------------------------------------------

_PROJECT = """cmake_minimum_required(VERSION 3.20)
project(rebuild C)
include("{cmake_dir}/dgc.cmake")
dgc_add_model(alpha MODEL alpha.onnx TARGET host)
dgc_add_model(beta MODEL beta.onnx TARGET host OPTIONS ${{BETA_OPTIONS}})
add_executable(app main.c)
target_link_libraries(app PRIVATE alpha beta)
"""
_MAIN = """#include <stdio.h>
#include "alpha.h"
#include "beta.h"
int main(void) {
    float x[4] = {1, 2, 3, 4}, y[4], z[4];
    if (alpha_run(x, y, 0) || beta_run(y, z, 0)) return 1;
    printf("%g %g %g %g\\n", z[0], z[1], z[2], z[3]);
    return 0;
}
"""


def _build(build) -> tuple[set[str], str]:
    """Build; which models dgc compiled (from the rule's comment) and the program's output."""
    log = _run(["cmake", "--build", str(build)])
    ran = set(re.findall(r"dgc: compiling (\w+)\.onnx", log))
    out = _run([str(build / "app")])
    return ran, out.strip()


@pytest.mark.parametrize("generator", GENERATORS)
def test_rebuild_reruns_dgc_only_for_what_changed(generator, tmp_path):
    _need("cmake", "ninja" if generator == "Ninja" else "make")
    src, build = tmp_path / "src", tmp_path / "build"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(_PROJECT.format(cmake_dir=_cmake_dir()))
    (src / "main.c").write_text(_MAIN)
    onnx.save(_tiny_model(2.0, "alpha"), src / "alpha.onnx")
    onnx.save(_tiny_model(3.0, "beta"), src / "beta.onnx")
    _configure(src, build, generator, None, "BETA_OPTIONS=-O3")
    assert _build(build) == ({"alpha", "beta"}, "6 12 18 24")
    objs = {m: build / "dgc" / m / f"{m}.o" for m in ("alpha", "beta")}
    stamp = {m: o.stat().st_mtime_ns for m, o in objs.items()}

    # nothing touched: dgc does not run, the objects are not rewritten
    assert _build(build) == (set(), "6 12 18 24")
    assert {m: o.stat().st_mtime_ns for m, o in objs.items()} == stamp

    # the model changes: only it is compiled again
    onnx.save(_tiny_model(5.0, "alpha"), src / "alpha.onnx")
    assert _build(build) == ({"alpha"}, "15 30 45 60")
    assert objs["beta"].stat().st_mtime_ns == stamp["beta"]

    # a touch without a change re-runs that model too (make semantics), nothing else
    os.utime(src / "beta.onnx")
    assert _build(build)[0] == {"beta"}

    # its options change: only it is compiled again
    _configure(src, build, generator, None, "BETA_OPTIONS=-O2")
    assert _build(build)[0] == {"beta"}
    assert _build(build)[0] == set()

    # dgc itself changes (one of its sources, per the depfile): both are compiled again
    import dgc.driver

    st = os.stat(dgc.driver.__file__)
    try:
        os.utime(dgc.driver.__file__, ns=(st.st_atime_ns, time.time_ns() + 10**9))
        assert _build(build)[0] == {"alpha", "beta"}
    finally:
        os.utime(dgc.driver.__file__, ns=(st.st_atime_ns, st.st_mtime_ns))


# ---- the examples, from scratch ----------------------------------------------------------------

def _digit_and_reference():
    (_, _), (x, y) = digits.split()
    import onnxruntime as ort

    sess = ort.InferenceSession(digits.PATH, providers=["CPUExecutionProvider"])
    return int(y[0]), sess.run(None, {"image": x[:1]})[0][0]


def _check_printed(out: str):
    label, want = _digit_and_reference()
    got = np.array([float(v) for v in re.findall(r"logit \d+: (\S+)", out)], dtype=np.float64)
    assert got.shape == want.shape, out
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max()), (got, want)
    assert f"predicted digit: {int(np.argmax(want))} (label {label})" in out


def test_embedded_input_is_the_held_out_digit():
    text = open(os.path.join(EXAMPLES, "common", "digit.h")).read()
    vals = np.array([float(v) for v in re.findall(r"([-0-9.]+)f", text)], dtype=np.float32)
    (_, _), (x, y) = digits.split()
    np.testing.assert_array_equal(vals, x[0].reshape(-1))
    assert f"#define DIGIT_LABEL {int(y[0])}" in text


def test_firmware_example_with_cmake(tmp_path):
    _need("cmake", "ninja", "arm-none-eabi-gcc", "qemu-system-arm")
    build = tmp_path / "build"
    _configure(os.path.join(EXAMPLES, "firmware-cortex-m7"), build, "Ninja", "arm-none-eabi")
    _run(["cmake", "--build", str(build)])
    _check_printed(_run(["cmake", "--build", str(build), "--target", "run"]))


def test_firmware_example_with_make(tmp_path):
    _need("make", "arm-none-eabi-gcc", "qemu-system-arm")
    build = tmp_path / "build-make"
    src = os.path.join(EXAMPLES, "firmware-cortex-m7")
    _run(["make", "-C", src, f"BUILD={build}", f"DGC={_dgc_bin()}"])
    _check_printed(_run(["make", "-s", "-C", src, f"BUILD={build}", f"DGC={_dgc_bin()}", "run"]))
    assert "dgc" not in _run(["make", "-C", src, f"BUILD={build}", f"DGC={_dgc_bin()}"]).replace(
        "Nothing to be done", "")


@pytest.mark.parametrize("toolchain,target,tools", [
    ("aarch64-linux-gnu", "cortex-a53", ("aarch64-linux-gnu-gcc", "qemu-aarch64")),
    ("arm-linux-gnueabihf", "cortex-a7", ("arm-linux-gnueabihf-gcc", "qemu-arm"))])
def test_linux_example_with_cmake(toolchain, target, tools, tmp_path):
    """examples/linux-aarch64 cross-built with a toolchain file (also for ARMv7-A) and run by ctest
    under qemu-user."""
    _need("cmake", "make", *tools)
    build = tmp_path / "build"
    _configure(os.path.join(EXAMPLES, "linux-aarch64"), build, "Unix Makefiles", toolchain, f"DGC_TARGET={target}")
    _run(["cmake", "--build", str(build)])
    _check_printed(_run(["ctest", "--test-dir", str(build), "-V"]))


def test_readme_shows_the_examples_snippets():
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "## Use from CMake" in readme and "## Use from Make" in readme
    cmake = open(os.path.join(EXAMPLES, "firmware-cortex-m7", "CMakeLists.txt")).read()
    for line in cmake.splitlines():
        if line.startswith(("find_package", "dgc_add_model", "target_link_libraries")):
            assert line in readme, line
    make = open(os.path.join(EXAMPLES, "firmware-cortex-m7", "Makefile")).read()
    rule = make[make.index("$(BUILD)/digits.o:"):make.index("-include $(BUILD)/digits.d")]
    assert rule in readme


# ---- determinism --------------------------------------------------------------------------------

@pytest.mark.parametrize("target,model", [("cortex-m7", "ds_cnn"), ("host", "lenet5"), ("aarch64", "resnet8")])
def test_same_model_same_bytes(target, model, tmp_path):
    """Two compiles from different directories, temp dirs, hash seeds and output paths give
    byte-identical object and header, with no path or time inside."""
    outs = []
    for k, seed in enumerate(("1", "271828")):
        where = tmp_path / f"run{k}" / ("nested" * k)
        (where / "tmp").mkdir(parents=True)
        onnx.save(zoo_model(model), where / "net.onnx")
        env = {**os.environ, "PYTHONHASHSEED": seed, "TMPDIR": str(where / "tmp"), "SOURCE_DATE_EPOCH": str(k)}
        proc = subprocess.run([sys.executable, "-m", "dgc", "compile", "net.onnx", "-t", target, "-o", f"out{k}",
                               "--name", "net"], cwd=where, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        outs.append(((where / f"out{k}" / "net.o").read_bytes(), (where / f"out{k}" / "net.h").read_bytes()))
    assert outs[0][0] == outs[1][0], "object files differ"
    assert outs[0][1] == outs[1][1], "headers differ"
    for blob in outs[0]:
        for leak in (str(tmp_path).encode(), b"run0", b"/tmp", os.path.expanduser("~").encode()):
            assert leak not in blob, leak
