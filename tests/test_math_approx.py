"""dgc.passes.math_approx: expanded math ops, compiled for the host, against numpy float64.

One module holds a scalar (scf.for) and a vector<8xf32> kernel per op, an f16 kernel and a
linalg.generic one. It is expanded, lowered with mlir-opt / mlir-translate / llc, linked with
`cc -shared` and called through ctypes on dense sweeps plus special values. Neither the host
object nor Cortex-M objects built from the same IR may reference libm. Run with -s to see the
measured max relative error of each op.
"""

from __future__ import annotations

import ctypes
import math
import re

import numpy as np
import pytest

from dgc.ir import ir
from dgc.passes.math_approx import expand_math
from dgc.tools import run_tool, tool_path

F32 = np.float32
CAP = 1 << 22  # static memref size; kernels take the element count as an argument
LOWER = (
    "builtin.module(func.func(convert-linalg-to-loops), convert-scf-to-cf, convert-vector-to-llvm,"
    " expand-strided-metadata, finalize-memref-to-llvm, convert-arith-to-llvm,"
    " convert-math-to-llvm, convert-cf-to-llvm,"
    " convert-func-to-llvm{use-bare-ptr-memref-call-conv=true}, reconcile-unrealized-casts)"
)
UNARY = ["exp", "exp2", "expm1", "log", "log2", "log1p", "tanh", "erf", "sin", "cos", "atan",
         "sqrt", "rsqrt", "floor", "ceil", "round", "roundeven", "trunc"]
BINARY = ["powf", "atan2", "fpowi"]
SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 1e-45, -1e-45, 1.2e-38,
            -1.2e-38, 3.4e38, -3.4e38, 1e-30, -1e-30, 1e30, -1e30]


def _kernel(name: str, op: str, vec: bool, et: str = "f32") -> str:
    """func @name(in [, in2], out, n): out[i] = op(in[i] [, in2[i]]) in a scalar or 8-wide loop."""
    mt, it = f"memref<{CAP}x{et}>", (f"vector<8x{et}>" if vec else et)
    kt, kv = (f"memref<{CAP}xi32>", it.replace(et, "i32")) if op == "fpowi" else (mt, it)

    def load(mem, vt, t):
        return f"vector.load {mem}[%i] : {t}, {vt}" if vec else f"memref.load {mem}[%i] : {t}"

    args = [f"%a: {mt}"] + ([f"%k: {kt}"] if op in BINARY else []) + [f"%o: {mt}", "%n: index"]
    body = [f"%x = {load('%a', it, mt)}"]
    if op in BINARY:
        types = f"{it}, {kv}" if op == "fpowi" else it
        body += [f"%y = {load('%k', kv, kt)}", f"%r = math.{op} %x, %y : {types}"]
    else:
        body += [f"%r = math.{op} %x : {it}"]
    body += [f"vector.store %r, %o[%i] : {mt}, {it}" if vec else f"memref.store %r, %o[%i] : {mt}"]
    lines = "\n    ".join(body)
    return f"""func.func @{name}({", ".join(args)}) {{
  %c0 = arith.constant 0 : index
  %st = arith.constant {8 if vec else 1} : index
  scf.for %i = %c0 to %n step %st {{
    {lines}
  }}
  return
}}"""


GENERIC = f"""func.func @generic(%a: memref<{CAP}xf32>, %o: memref<{CAP}xf32>, %n: index) {{
  %v = memref.subview %a[0] [4096] [1] : memref<{CAP}xf32> to memref<4096xf32, strided<[1]>>
  %w = memref.subview %o[0] [4096] [1] : memref<{CAP}xf32> to memref<4096xf32, strided<[1]>>
  linalg.generic {{indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>],
                  iterator_types = ["parallel"]}}
      ins(%v : memref<4096xf32, strided<[1]>>) outs(%w : memref<4096xf32, strided<[1]>>) {{
  ^bb0(%x: f32, %out: f32):
    %e = math.erf %x : f32
    %t = math.tanh %e : f32
    linalg.yield %t : f32
  }}
  return
}}"""


def _source() -> str:
    funcs = [_kernel(f"{op}_{k}", op, k == "v") for op in UNARY + BINARY for k in "sv"]
    funcs.append(_kernel("exp_h", "exp", False, "f16"))
    return "\n".join(["module {"] + funcs + [GENERIC, "}"])


def _object(mlir_text: str, d, name: str, llc_flags=()) -> str:
    """Lower to LLVM IR and an object; return the object's path."""
    llvm = run_tool([tool_path("mlir-opt"), f"--pass-pipeline={LOWER}"], input=mlir_text.encode())
    ll = run_tool([tool_path("mlir-translate"), "--mlir-to-llvmir"], input=llvm.stdout).stdout
    (d / f"{name}.ll").write_bytes(ll)
    obj = str(d / f"{name}.o")
    run_tool([tool_path("llc"), "-O2", "-filetype=obj", *llc_flags, str(d / f"{name}.ll"),
              "-o", obj])
    return obj


def _undefined(obj: str) -> list[str]:
    return run_tool([tool_path("llvm-nm"), "-u", obj]).stdout.decode().split()[1::2]


@pytest.fixture(scope="module")
def expanded():
    with ir.Context(), ir.Location.unknown():
        module = ir.Module.parse(_source())
        count = expand_math(module, expand_sqrt=True)
        module.operation.verify()
        return count, str(module)


@pytest.fixture(scope="module")
def build(expanded, tmp_path_factory):
    d = tmp_path_factory.mktemp("math_approx")
    obj = _object(expanded[1], d, "host", ["-relocation-model=pic"])
    run_tool(["cc", "-shared", "-o", str(d / "k.so"), obj])
    return d, ctypes.CDLL(str(d / "k.so")), obj


@pytest.fixture(scope="module")
def lib(build):
    return build[1]


def _run(lib, name, *inputs, out_dtype=F32):
    n = len(inputs[0])
    pad = -n % 8
    bufs = [np.ascontiguousarray(np.concatenate([a, np.zeros(pad, a.dtype)])) for a in inputs]
    out = np.empty(n + pad, out_dtype)
    getattr(lib, name)(*[b.ctypes.data_as(ctypes.c_void_p) for b in bufs + [out]],
                       ctypes.c_int64(n + pad))
    return out[:n]


def _sweep(lo, hi, n=100_000, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([np.linspace(lo, hi, n), rng.uniform(lo, hi, n), SPECIALS]).astype(F32)


def _all_bits(n=100_000, seed=1, sign=True):
    """Finite floats spread over every binade (denormals included)."""
    x = np.random.default_rng(seed).integers(1, 0x7F800000, n, dtype=np.uint32).view(F32)
    return np.concatenate([x, -x]) if sign else x


def _tiny(n=2000):
    t = np.logspace(-38, -1, n)
    return np.concatenate([t, -t]).astype(F32)


def _check(got, ref64, rtol, atol=0.0) -> float:
    """|got - f32(ref64)| <= rtol |ref| + atol; NaN, inf and signed-zero patterns exact.
    Returns the max relative error over normal results."""
    with np.errstate(all="ignore"):
        ref = ref64.astype(got.dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    inf = np.isinf(ref)
    np.testing.assert_array_equal(got[inf], ref[inf])
    zeros = (got == 0) & (ref == 0)
    np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(ref[zeros]))
    fin = np.isfinite(ref)
    g, r = got[fin].astype(np.float64), ref[fin].astype(np.float64)
    err, bound = np.abs(g - r), np.broadcast_to(rtol, got.shape)[fin] * np.abs(r) + atol
    bad = np.flatnonzero(err > bound)
    assert bad.size == 0, f"{bad.size} off, e.g. got {g[bad[:4]]} want {r[bad[:4]]}"
    normal = np.abs(r) >= np.finfo(got.dtype).tiny
    return float((err[normal] / np.abs(r[normal])).max(initial=0.0))


def _np_erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _trig_inputs():
    x = np.concatenate([_sweep(-10, 10), _sweep(-1e4, 1e4), _tiny()])
    return x[~(np.abs(x) >= 2**24)]  # huge finite: documented 0, tested below


def _cat(*parts):
    return lambda: np.concatenate([p() if callable(p) else p for p in parts])


# op -> (inputs, float64 reference, rtol, atol)
CASES = {
    "exp": (lambda: _sweep(-87, 88), np.exp, 2e-6, 3e-45),
    "exp2": (lambda: _sweep(-126, 128), np.exp2, 2e-6, 3e-45),
    "expm1": (_cat(lambda: _sweep(-20, 20), _tiny), np.expm1, 2e-6, 0),
    "log": (_cat(lambda: _sweep(0.5, 2), _all_bits), np.log, 2e-6, 0),
    "log2": (_cat(lambda: _sweep(0.5, 2), _all_bits), np.log2, 2e-6, 0),
    "log1p": (_cat(lambda: _sweep(-1, 10), _tiny, lambda: _all_bits(sign=False)), np.log1p,
              2e-6, 0),
    "tanh": (_cat(lambda: _sweep(-12, 12), _tiny), np.tanh, 2e-6, 0),
    "erf": (_cat(lambda: _sweep(-6, 6), _tiny), _np_erf, 2e-6, 1e-45),
    "sin": (_trig_inputs, np.sin, 2e-6, 1e-7),
    "cos": (_trig_inputs, np.cos, 2e-6, 1e-7),
    "atan": (_cat(lambda: _sweep(-50, 50), _all_bits, _tiny), np.arctan, 2e-6, 0),
    "sqrt": (_cat(lambda: _sweep(0, 100), _all_bits), np.sqrt, 1e-6, 0),
    "rsqrt": (_cat(lambda: _sweep(0, 100), _all_bits), lambda x: 1 / np.sqrt(x), 2e-6, 0),
}


@pytest.mark.parametrize("op", list(CASES))
@pytest.mark.parametrize("kind", ["s", "v"])
def test_unary_accuracy(lib, op, kind):
    make, ref, rtol, atol = CASES[op]
    x = make()
    with np.errstate(all="ignore"):
        want = ref(x.astype(np.float64))
    err = _check(_run(lib, f"{op}_{kind}", x), want, rtol, atol)
    print(f"{op}_{kind}: max rel err {err:.3g}")


@pytest.mark.parametrize("kind", ["s", "v"])
def test_trig_huge_is_zero(lib, kind):
    x = np.array([2.0**24, -3e9, 1e30, -3.4e38], F32)
    for op in ("sin", "cos"):
        np.testing.assert_array_equal(_run(lib, f"{op}_{kind}", x), 0)


def _round_away(x):
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


@pytest.mark.parametrize("op,ref", [("floor", np.floor), ("ceil", np.ceil), ("trunc", np.trunc),
                                    ("round", _round_away), ("roundeven", np.rint)])
@pytest.mark.parametrize("kind", ["s", "v"])
def test_rounding_exact(lib, op, ref, kind):
    halves = np.arange(-40, 40) / 4
    edges = [2**23 - 0.5, -(2**23 - 0.5), 2**23 - 1.5, 2**23, 2**23 + 1, 2**24 + 2]
    x = np.concatenate([_sweep(-1e7, 1e7), _sweep(-3, 3), halves, edges, _all_bits(20_000)])
    x = x.astype(F32)
    got, want = _run(lib, f"{op}_{kind}", x), ref(x.astype(np.float64)).astype(F32)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def _pow_inputs():
    rng = np.random.default_rng(2)
    n = 50_000
    x = [rng.uniform(0, 10, n), rng.uniform(-10, 0, n), _all_bits(n, sign=False),
         rng.uniform(0.5, 1.5, n)]
    y = [rng.uniform(-10, 10, n), rng.integers(-12, 13, n), rng.uniform(-1, 1, n),
         rng.uniform(-150, 150, n)]
    more = [2.0, -2.0, 3.0, -3.0]
    sx, sy = np.meshgrid(SPECIALS + more, SPECIALS + more + [0.3, 2.0**24 + 2, 2.0**23 + 1])
    return (np.concatenate(x + [sx.ravel()]).astype(F32),
            np.concatenate(y + [sy.ravel()]).astype(F32))


@pytest.mark.parametrize("kind", ["s", "v"])
def test_powf(lib, kind):
    x, y = _pow_inputs()
    with np.errstate(all="ignore"):
        want = np.power(x.astype(np.float64), y.astype(np.float64))
        t = np.nan_to_num(np.abs(y * np.log2(np.abs(x.astype(np.float64)))), posinf=0)
    # The error grows with t = |y log2 x|, the exponent handed to exp2 (y*log2|x| rounds).
    err = _check(_run(lib, f"powf_{kind}", x, y), want, 2e-6 + 1.5e-7 * t, 1e-45)
    print(f"powf_{kind}: max rel err {err:.3g}")
    small = t < 8
    err = _check(_run(lib, f"powf_{kind}", x[small], y[small]), want[small], 2e-6, 1e-45)
    print(f"powf_{kind}: max rel err {err:.3g} for |y log2 x| < 8")


@pytest.mark.parametrize("kind", ["s", "v"])
def test_fpowi(lib, kind):
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-4, 4, 50_000), SPECIALS]).astype(F32)
    k = rng.integers(-20, 21, len(x)).astype(np.int32)
    with np.errstate(all="ignore"):
        want = np.power(x.astype(np.float64), k.astype(np.float64))
    err = _check(_run(lib, f"fpowi_{kind}", x, k), want, 2e-6, 1e-45)
    print(f"fpowi_{kind}: max rel err {err:.3g}")


@pytest.mark.parametrize("kind", ["s", "v"])
def test_atan2(lib, kind):
    rng = np.random.default_rng(4)
    y, x = (np.concatenate([rng.uniform(-5, 5, 100_000), _all_bits(50_000)]) for _ in range(2))
    sx, sy = np.meshgrid(SPECIALS, SPECIALS)
    y, x = np.concatenate([y, sy.ravel()]).astype(F32), np.concatenate([x, sx.ravel()]).astype(F32)
    want = np.arctan2(y.astype(np.float64), x.astype(np.float64))
    got = _run(lib, f"atan2_{kind}", y, x)
    err = _check(got, want, 2e-6, 1e-45)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    print(f"atan2_{kind}: max rel err {err:.3g}")


def test_linalg_generic(lib):
    x = np.linspace(-5, 5, 4096).astype(F32)
    _check(_run(lib, "generic", x), np.tanh(_np_erf(x.astype(np.float64))), 4e-6)


def test_f16_through_f32(lib):
    with np.errstate(all="ignore"):
        x = np.concatenate([np.linspace(-17, 11, 20_000), SPECIALS]).astype(np.float16)
    with np.errstate(all="ignore"):
        want = np.exp(x.astype(np.float64))
    _check(_run(lib, "exp_h", x, out_dtype=np.float16), want, 1e-3, 6e-8)


def test_no_math_ops_left(expanded):
    count, text = expanded
    assert count == 2 * (len(UNARY) + len(BINARY)) + 3
    assert not re.findall(r"\bmath\.\w+", text)


# Compiler-runtime helpers (soft-float, half conversion, unwinding) all start with "__"; libm
# entry points (expf, floorf, ...) never do.
@pytest.mark.parametrize("llc_flags", [
    ["-relocation-model=pic"],
    ["-mtriple=thumbv7em-none-eabihf", "-mcpu=cortex-m4", "-float-abi=hard"],
    ["-mtriple=thumbv7m-none-eabi", "-mcpu=cortex-m3", "-float-abi=soft"],
], ids=["host", "cortex-m4", "cortex-m3-soft"])
def test_no_libm_symbols(expanded, build, llc_flags):
    obj = build[2] if "-mtriple" not in llc_flags[0] else \
        _object(expanded[1], build[0], llc_flags[1][6:], llc_flags)
    libm = [s for s in _undefined(obj) if not s.startswith("__")]
    assert libm == []


def test_unexpanded_code_calls_libm(tmp_path):
    """Control for the symbol check: without the pass, llc calls libm for these ops."""
    src = "module {\n" + _kernel("f", "floor", False) + "\n" + _kernel("g", "exp", False) + "\n}"
    flags = ["-mtriple=thumbv7em-none-eabihf", "-mcpu=cortex-m4", "-float-abi=hard"]
    assert {"floorf", "expf"} <= set(_undefined(_object(src, tmp_path, "raw", flags)))


def test_sqrt_kept_unless_asked():
    src = """func.func @f(%x: vector<4xf32>, %h: f16, %d: f64) -> (vector<4xf32>, f16, f64) {
      %a = math.sqrt %x : vector<4xf32>
      %b = math.rsqrt %a : vector<4xf32>
      %c = math.exp %h : f16
      %e = math.exp %d : f64
      return %b, %c, %e : vector<4xf32>, f16, f64
    }"""
    with ir.Context(), ir.Location.unknown():
        module = ir.Module.parse(src)
        assert expand_math(module) == 2  # rsqrt and the f16 exp (through f32)
        module.operation.verify()
        ops = re.findall(r"\bmath\.\w+", str(module))
    assert sorted(ops) == ["math.exp", "math.sqrt", "math.sqrt"]


def test_generic_body_on_tensors():
    """Before bufferization the math op sits in a linalg.generic body on scalars."""
    src = """func.func @f(%t: tensor<16xf32>) -> tensor<16xf32> {
      %e = tensor.empty() : tensor<16xf32>
      %r = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>],
                           iterator_types = ["parallel"]} ins(%t : tensor<16xf32>)
                           outs(%e : tensor<16xf32>) {
      ^bb0(%x: f32, %o: f32):
        %y = math.tanh %x : f32
        %z = math.floor %y : f32
        linalg.yield %z : f32
      } -> tensor<16xf32>
      %w = math.exp %r : tensor<16xf32>
      return %w : tensor<16xf32>
    }"""
    with ir.Context(), ir.Location.unknown():
        module = ir.Module.parse(src)
        assert expand_math(module) == 2
        module.operation.verify()
        assert re.findall(r"\bmath\.\w+", str(module)) == ["math.exp"]  # whole-tensor op kept
