"""`dgc compile --depfile FILE`: a Make-style dependency file for build systems.

    build/kws.o: /src/kws.onnx /src/kws.onnx.data /venv/.../dgc/driver.py ... /venv/.../llvm/bin/llc

The rule's target is the compile's first output; its prerequisites are everything the result
depends on: the model, its external-data files, the --schedule and --calibration files, and
dgc itself (the Python sources of the compiler, the MLIR library it calls and the LLVM tools
it runs), so a build re-runs dgc exactly when one of them changes. CMake's `DEPFILE` (Ninja
and Makefile generators) and GNU Make's `-include` read it.
"""

from __future__ import annotations

import glob
import importlib
import os

import onnx

# the packages whose code decides a compile's result (runtime/ and zoo/ do not)
_PACKAGES = ("dgc", "dgc.frontend", "dgc.frontend.ops", "dgc.passes", "dgc.pipelines")
_TOOLS = ("llc", "opt", "mlir-translate", "llvm-nm", "llvm-readobj")


def dgc_files() -> list[str]:
    """dgc's own files a compile depends on: Python sources, the MLIR C API library, LLVM tools."""
    from .tools import _site_dir, tool_path

    files = []
    for pkg in _PACKAGES:
        for where in importlib.import_module(pkg).__path__:
            files += sorted(glob.glob(os.path.join(where, "*.py")))
    files += sorted(glob.glob(os.path.join(_site_dir(), "mlir", "_mlir_libs", "libMLIRPythonCAPI*.so*")))
    files += [tool_path(t) for t in _TOOLS]
    return [os.path.abspath(f) for f in files]


def external_data_files(model_path: str) -> list[str]:
    """Files the model's initializers keep their data in (resolved like the loader does)."""
    try:
        model = onnx.load(model_path, load_external_data=False)
    except Exception:  # noqa: BLE001  (the compile itself has already read the model)
        return []
    base = os.path.dirname(os.path.abspath(model_path))
    found = []
    for t in _initializers(model.graph):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = {e.key: e.value for e in t.external_data}.get("location")
            if loc and (path := os.path.join(base, loc)) not in found:
                found.append(path)
    return found


def _initializers(graph):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _initializers(g)


def render(target: str, prerequisites: list[str]) -> str:
    """`target: prerequisites...` in Make syntax, one prerequisite per line."""
    seen: list[str] = []
    for p in prerequisites:
        if p not in seen:
            seen.append(p)
    return _escape(target) + ":" + "".join(f" \\\n  {_escape(p)}" for p in seen) + "\n"


def _escape(path: str) -> str:
    """Spaces, '#' and '$' escaped as GNU Make (and Ninja's depfile parser) expect."""
    return path.replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")


def for_compile(target: str, model_path: str, *inputs: str | None) -> str:
    """The depfile of a compile of `model_path` writing `target`; `inputs`: other files it read."""
    deps = [os.path.abspath(model_path), *external_data_files(model_path)]
    deps += [os.path.abspath(p) for p in inputs if p]
    return render(target, deps + dgc_files())
