"""dgc — the DeepGreen compiler: ONNX models to allocation-free native code.

Python API:
    import dgc
    res = dgc.compile("model.onnx", target="cortex-m7", name="kws")
    res.object, res.header, res.arena_size, res.timings
"""

from .errors import DgcError  # noqa: F401
from .targets import Target, all_targets, get_target  # noqa: F401


def __getattr__(name: str):
    """`compile` and `CompileResult` load the MLIR bindings: imported on first use, so that
    quick commands (`dgc targets`, `dgc --cmake-dir`) start fast."""
    if name in ("compile", "CompileResult"):
        from . import driver

        return getattr(driver, name)
    raise AttributeError(f"module 'dgc' has no attribute '{name}'")


def verify(model, target="host", **kw):
    """Compile, run on `target`, compare with onnxruntime -> (CompileResult, [Comparison])."""
    from .verifier import verify as _verify

    return _verify(model, target, **kw)
