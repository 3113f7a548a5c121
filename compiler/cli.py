"""`dgc` command line: a thin layer over the Python API (`dgc.compile`, `dgc.verify`).

Errors print one line `dgc: error: ...` and exit non-zero by kind; `--debug` shows tracebacks.
"""

from __future__ import annotations

import os
import sys
import tempfile

import click

from .errors import DgcError, UsageError

_DEBUG = False


def _split(values) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show Python tracebacks and full tool output on errors.")
@click.version_option(package_name="dgc")
@click.option("--cmake-dir", is_flag=True, is_eager=True, expose_value=False, callback=lambda ctx, _, on:
              _print_cmake_dir(ctx) if on else None,
              help="Print the directory of dgc's CMake package (dgcConfig.cmake, toolchains/) and exit, "
                   "e.g. cmake -DCMAKE_PREFIX_PATH=$(dgc --cmake-dir).")
def cli(debug):
    """dgc — the DeepGreen compiler: ONNX models to allocation-free native code.

    \b
    Example:
      dgc compile model.onnx --target cortex-m7 -o build/ --name kws
    """
    global _DEBUG
    _DEBUG = debug


def _print_cmake_dir(ctx) -> None:
    from dgc.cmake import CMAKE_DIR

    click.echo(CMAKE_DIR)
    ctx.exit(0)


_TARGET_HELP = "Target name (see `dgc targets`), e.g. cortex-m7, aarch64, x86-64-v3, host."


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-t", "--target", default="host", show_default=True, help=_TARGET_HELP)
@click.option("-o", "--output", "out_dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Output directory, e.g. -o build/ writes build/<name>.o and build/<name>.h.")
@click.option("--name", default=None, help="C prefix of the generated symbols and files "
              "(default: the model file's stem as a C identifier), e.g. --name kws.")
@click.option("-O", "opt", type=click.IntRange(0, 3), default=3, show_default=True,
              help="Optimization level for the pipeline and llc: -O0 .. -O3, e.g. -O2.")
@click.option("--emit", multiple=True, default=["obj,header"], show_default=True,
              help="Comma list of artefacts: obj, header, llvm (.ll), asm (.s), mlir (imported TOSA), "
                   "spec (.json), e.g. --emit obj,header,asm.")
@click.option("--input-shape", "input_shapes", multiple=True,
              help="Pin an input's symbolic dimensions: NAME=D0xD1x..., e.g. --input-shape input=1x3x96x96.")
@click.option("--dump-ir", type=click.Path(file_okay=False), default=None,
              help="Write the IR after every stage to DIR/NN-<stage>.mlir, e.g. --dump-ir build/ir.")
@click.option("--print-ir-after", multiple=True,
              help="Print the IR after STAGE (or 'all') to stderr, e.g. --print-ir-after tosa.")
@click.option("--stop-after", default=None, help="Stop after STAGE (see `dgc pipeline`), e.g. --stop-after linalg; "
              "writes what exists by then.")
@click.option("--keep-constants", is_flag=True, help="Print large constants in IR dumps (elided by default).")
@click.option("--schedule", "schedule", type=click.Path(dir_okay=False), default=None,
              help="JSON file overriding tile sizes, vectorization and fusion per ONNX node (\"key\") "
                   "or op type (\"op_type\"), e.g. --schedule sched.json (write one with --dump-schedule).")
@click.option("--dump-schedule", type=click.Path(dir_okay=False), default=None,
              help="Write the schedule dgc chose, as JSON, e.g. --dump-schedule sched.json.")
@click.option("--quantize", "quant", type=click.Choice(["int8"]), default=None,
              help="Quantize a float model to int8 first (as `dgc quantize`); needs --calibration.")
@click.option("--calibration", type=click.Path(dir_okay=False), default=None,
              help="Calibration samples for --quantize: .npz with one array per input, e.g. samples.npz.")
@click.option("--calibration-method", type=click.Choice(["minmax", "percentile", "entropy"]), default="minmax",
              show_default=True, help="How --quantize picks activation ranges.")
@click.option("--ram-limit", default="default", show_default=True,
              help="Fail (exit code 8) when arena + stack exceed this many bytes, e.g. --ram-limit 320K; "
                   "'default' is the target's typical part (see `dgc targets`), 'none' turns the check off.")
@click.option("--flash-limit", default="default", show_default=True,
              help="Fail (exit code 8) when code + read-only data exceed this many bytes, e.g. --flash-limit 1M; "
                   "'default' is the target's typical part, 'none' turns the check off.")
@click.option("--weights-section", default="", help="Put the weights in this ELF section (default .rodata.*), "
              "e.g. --weights-section .ext_flash, to place them with your linker script; the header names it.")
@click.option("--tuning-db", type=click.Path(dir_okay=False), default=None,
              help="Apply the schedules `dgc tune` stored for this target in FILE; ops it does not "
                   "hold keep the default heuristics, e.g. --tuning-db tuning.json.")
@click.option("--predict", is_flag=True, help="Ops without a --tuning-db entry get the schedule dgc's cost "
              "model ranks cheapest among the candidates `dgc tune` would try, instead of the default "
              "heuristics; nothing is run.")
@click.option("--depfile", type=click.Path(dir_okay=False), default=None,
              help="Also write a Make-style dependency file: the first output depends on the model, its "
                   "external data, --schedule/--calibration files and dgc itself, e.g. --depfile build/kws.d.")
@click.option("--arena-section", default="", help="Section for arenas defined with the header's "
              "<NAME>_ARENA_DEFINE(var), e.g. --arena-section .bss.sram2 for a chosen RAM bank.")
def compile(model, target, out_dir, name, opt, emit, input_shapes, dump_ir, print_ir_after, stop_after,
            keep_constants, schedule, dump_schedule, quant, calibration, calibration_method, ram_limit, flash_limit,
            weights_section, arena_section, tuning_db, predict, depfile):
    """Compile MODEL (.onnx) to an object file and a C header.

    \b
    Examples:
      dgc compile model.onnx --target cortex-m7 -o build/ --name kws
      dgc compile model.onnx --target aarch64 --emit obj,header,llvm,asm,mlir
      dgc compile model.onnx --target x86-64-v3 --dump-ir build/ir/
      dgc compile model.onnx --print-ir-after tosa --stop-after linalg
      dgc compile model.onnx --dump-schedule s.json   (edit, then --schedule s.json)
      dgc compile model.onnx --quantize int8 --calibration samples.npz --target cortex-m4
    """
    from .contain import compile_contained
    from .driver import c_identifier
    from .frontend.load import parse_input_shapes

    kinds = _split(emit)
    model_path = model
    if depfile and not kinds:
        raise UsageError("--depfile needs an output file", where="--emit", hint="emit at least obj")
    if calibration and not quant:
        raise UsageError("--calibration is only used with --quantize", hint="add --quantize int8")
    if quant:
        if not calibration:
            raise UsageError("--quantize int8 needs calibration samples",
                             hint="add --calibration samples.npz (one array per model input)")
        name = name or c_identifier(os.path.splitext(os.path.basename(model))[0])
        model = _quantized(model, calibration, calibration_method, "int8", 99.999, None)
    res = compile_contained(model, target, name, opt_level=opt, input_shapes=parse_input_shapes(input_shapes),
                            emit=kinds, dump_ir=dump_ir, print_ir_after=_split(print_ir_after),
                        stop_after=stop_after, keep_constants=keep_constants, schedule=schedule,
                        ram_limit=ram_limit, flash_limit=flash_limit, weights_section=weights_section,
                        arena_section=arena_section, tuning_db=tuning_db, predict=predict)
    written = _write_outputs(res, out_dir, kinds)
    if dump_schedule:
        if res.schedule is None:
            raise UsageError("no schedule to dump: the compile stopped before the schedule stage")
        _write_atomic(dump_schedule, res.schedule)
        written.append(dump_schedule)
    if depfile and written:
        from .depfile import for_compile

        _write_atomic(depfile, for_compile(written[0], model_path, schedule, calibration, tuning_db))
        written.append(depfile)
    for path in written:
        click.echo(path)
    if res.stopped_after:
        click.echo(f"stopped after stage '{res.stopped_after}'", err=True)


@cli.command("tune")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-t", "--target", default="host", show_default=True, help=_TARGET_HELP)
@click.option("--trials", type=int, default=None,
              help="Candidates to measure in all (default 32 when no --budget), spread over the op "
                   "signatures by their share of the model's estimated cost.")
@click.option("--budget", default=None, help="Time budget instead of (or besides) --trials, e.g. 90s, 10m, 1h.")
@click.option("--db", "db_path", default="tuning.json", show_default=True, type=click.Path(dir_okay=False),
              help="Tuning database: read (resume), updated after every trial; pass it to "
                   "`dgc compile --tuning-db`.")
@click.option("--seed", default=0, show_default=True, help="Seed of the candidate order (reproducible runs).")
@click.option("--order", type=click.Choice(["predicted", "seed"]), default="predicted", show_default=True,
              help="Measure the cost model's most promising candidates first (every 4th in seed order), or "
                   "all in seed order (unbiased samples, e.g. to evaluate the cost model).")
@click.option("--input-shape", "input_shapes", multiple=True, help="NAME=D0xD1x..., as for compile.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where candidates compile (and, in QEMU, are counted) in parallel: a local process pool, "
                   "or a running Ray cluster (pip install 'dgc[ray]'), e.g. --executor ray --address auto.")
@click.option("--workers", type=click.IntRange(1, None), default=None,
              help="Local pool size (default: one per core), e.g. --workers 4.")
@click.option("--address", default=None, help="Ray cluster address for --executor ray (default: the running "
              "cluster, as `ray start` set it up), e.g. --address ray://head:10001.")
def tune_cmd(model, target, trials, budget, db_path, seed, order, input_shapes, quiet, executor, workers, address):
    """Tune MODEL's schedules for TARGET by compiling and running candidates on this machine.

    \b
    Each distinct op signature (op, shapes, strides, fused tail) is tuned once; candidates run in child
    processes, the database is written after every trial (Ctrl-C, then run again to resume).
    Examples:
      dgc tune model.onnx --target host --budget 10m --db tuning.json
      dgc compile model.onnx --target host --tuning-db tuning.json
    """
    from .frontend.load import parse_input_shapes
    from .tune import parse_budget, tune

    try:
        rep = tune(model, target, trials=trials, budget_s=parse_budget(budget), db_path=db_path, seed=seed,
                   input_shapes=parse_input_shapes(input_shapes), progress=not quiet, executor=executor,
                   workers=workers, address=address, order=order)
    except KeyboardInterrupt:
        if os.path.exists(db_path):
            click.echo(f"dgc: interrupted; the trials measured so far are in {db_path}: run again to resume",
                       err=True)
        else:
            click.echo("dgc: interrupted before the first trial was measured; nothing was written", err=True)
        sys.exit(130)
    click.echo("| signature | ops | share | trials | gain |")
    click.echo("|---|--:|--:|--:|--:|")
    for r in rep.signatures:
        click.echo(f"| {r.signature} | {r.ops} | {100 * r.share:.1f}% | {r.trials} | x{r.speedup:.3f} |")
    verdict = "kept" if rep.kept else "not faster than the default: this run's choices were dropped"
    def cost(v):
        return f"{v * 1e3:.4g} ms" if rep.unit == "s" else f"{v:,.0f} est. cycles"

    click.echo(f"{rep.target}: default {cost(rep.default_s)}, tuned {cost(rep.tuned_s)}, "
               f"speedup x{rep.speedup:.3f} ({verdict}); database {db_path}")


def _quantized(path, calibration, method, activations, percentile, samples, fmt="qdq"):
    from .frontend.load import read_model
    from .quantize import quantize, read_calibration

    model = read_model(path)
    return quantize(model, read_calibration(calibration, model, samples), method, activations, percentile, fmt)


@cli.command("quantize")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--calibration", type=click.Path(dir_okay=False), required=True,
              help="Calibration samples: .npz with one array per model input named like it, samples "
                   "along a leading axis, e.g. --calibration samples.npz.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the QDQ model, e.g. -o model.int8.onnx.")
@click.option("--method", type=click.Choice(["minmax", "percentile", "entropy"]), default="minmax",
              show_default=True, help="How activation ranges are calibrated.")
@click.option("--percentile", type=click.FloatRange(50, 100), default=99.999, show_default=True,
              help="Percentile of |activation| kept by --method percentile.")
@click.option("--activations", type=click.Choice(["int8", "uint8"]), default="int8", show_default=True,
              help="Activation type (weights are always per-channel symmetric int8).")
@click.option("--samples", type=click.IntRange(1), default=None, help="Use only the first N samples.")
@click.option("--format", "fmt", type=click.Choice(["qdq", "qoperator"]), default="qdq", show_default=True,
              help="qdq: QuantizeLinear/DequantizeLinear around float ops; qoperator: QLinearConv, "
                   "QLinearMatMul and onnxruntime's com.microsoft QLinear* ops. dgc compiles both.")
def quantize_cmd(model, calibration, output, method, percentile, activations, samples, fmt):
    """Quantize float MODEL to int8 (QDQ format) by static post-training calibration.

    \b
    Per-channel symmetric int8 weights, per-tensor activations (onnxruntime.quantization).
    Example:
      python -c "import numpy as np; np.savez('s.npz', input=np.random.rand(64, 1, 49, 10))"
      dgc quantize model.onnx --calibration s.npz -o model.int8.onnx
      dgc compile model.int8.onnx --target cortex-m7
    """
    q = _quantized(model, calibration, method, activations, percentile, samples, fmt)
    _write_atomic(output, q.SerializeToString())
    click.echo(output)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _stage(directory: str, data: str | bytes, prefix: str, suffix: str = "") -> str:
    """`data` in a new temporary file in `directory`, with the permissions of a plain open()."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
    os.fchmod(fd, 0o666 & ~_umask())
    with os.fdopen(fd, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return tmp


def _write_atomic(path: str, data: str | bytes) -> None:
    os.replace(_stage(os.path.dirname(os.path.abspath(path)), data, ".dgc-"), path)


def _write_outputs(res, out_dir, kinds) -> list[str]:
    """Write every artefact to a temporary name, then rename: never a partial output."""
    files = {"obj": (".o", res.object), "header": (".h", res.header), "llvm": (".ll", res.llvm_ir),
             "asm": (".s", res.asm), "mlir": (".mlir", res.mlir),
             "spec": (".json", res.spec.to_json() if res.spec else None)}
    os.makedirs(out_dir, exist_ok=True)
    staged = []
    try:
        for kind in kinds:
            ext, data = files[kind]
            if data is None:
                continue
            staged.append((_stage(out_dir, data, f".{res.name}", ext), os.path.join(out_dir, res.name + ext)))
    except BaseException:
        for tmp, _ in staged:
            os.unlink(tmp)
        raise
    for tmp, final in staged:
        os.replace(tmp, final)
    return [final for _, final in staged]


def _size(n: int) -> str:
    return f"{n >> 20}M" if n % (1 << 20) == 0 else f"{n >> 10}K"


@cli.command()
@click.option("--cflags", "cflags_of", metavar="TARGET", default=None,
              help="Print only the C compiler flags for code linked with TARGET's objects "
                   "(CPU, FPU, float ABI), e.g. --cflags cortex-m7.")
def targets(cflags_of):
    """List the targets: name, triple, CPU, features, FPU/DSP/MVE, default RAM/flash budget
    (--ram-limit/--flash-limit default: a typical part with the core), how it runs.

    \b
    Examples:
      dgc targets
      arm-none-eabi-gcc $(dgc targets --cflags cortex-m7) -c main.c
    """
    from .targets import all_targets, get_target

    if cflags_of:
        click.echo(" ".join(get_target(cflags_of).cflags))
        return

    rows = [("name", "triple", "cpu", "features", "fpu", "int8 MACs", "RAM/flash limit", "runs on")]
    for t in all_targets():
        runs = {"host": "native", "qemu-user": t.board, "qemu-system": f"qemu-system-arm -M {t.board}",
                "none": "compile-only"}[t.runner]
        int8 = "vmladava" if t.mve else "smlad" if t.dsp else (t.int8_dot or "-")
        budget = f"{_size(t.ram_bytes)}/{_size(t.flash_bytes)}" if t.ram_bytes else "-"
        rows.append((t.name, t.triple, t.cpu, t.features or "-", t.fpu or "soft", int8, budget, runs))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


@cli.command()
@click.option("-t", "--target", default="host", show_default=True, help=_TARGET_HELP)
def pipeline(target):
    """Print the stage list for TARGET and, for upstream-pass stages, the exact passes.

    Stage names are the --stop-after / --print-ir-after values and the --dump-ir file names.

    \b
    Example:
      dgc pipeline --target cortex-m7
    """
    from dgc.pipelines import for_target

    from .driver import FINAL_STAGES
    from .targets import get_target

    t = get_target(target)
    click.echo(f"# target {t.name}: {t.triple} -mcpu={t.cpu} index={t.index_bits} bits")
    click.echo("import: ONNX -> TOSA (dgc importer)")
    for s in for_target(t):
        click.echo(f"{s.name}: {s.why}")
        click.echo(f"    {s.describe()}")
    descr = {"llvm-ir": "mlir-translate --mlir-to-llvmir", "opt": f"opt -O<N> -mtriple={t.triple}",
             "obj": f"llc -O<N> -mtriple={t.triple} -mcpu={t.cpu} -relocation-model={t.relocation_model}"}
    for s in FINAL_STAGES:
        click.echo(f"{s}: {descr[s]}")


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--input", "inputs", multiple=True, type=click.Path(dir_okay=False),
              help="Input as .npy, one per model input in order (random if omitted), e.g. --input x.npy.")
@click.option("--output", "outputs", multiple=True, type=click.Path(dir_okay=False),
              help="Where to save each output as .npy, e.g. --output y.npy (printed if omitted).")
@click.option("--input-shape", "input_shapes", multiple=True, help="NAME=D0xD1x..., as for compile.")
@click.option("-O", "opt", type=click.IntRange(0, 3), default=3, show_default=True, help="Optimization level.")
def run(model, inputs, outputs, input_shapes, opt):
    """Compile MODEL for the host and execute it.

    \b
    Example:
      dgc run model.onnx --input x.npy --output y.npy
    """
    import numpy as np

    from .driver import compile as compile_model
    from .frontend.load import parse_input_shapes
    from .verifier import random_inputs
    from dgc.runtime.runners import run_model

    res = compile_model(model, "host", opt_level=opt, input_shapes=parse_input_shapes(input_shapes))
    arrays = [np.load(p) for p in inputs] if inputs else random_inputs(res.spec)
    if len(arrays) != len(res.spec.inputs):
        raise UsageError(f"the model has {len(res.spec.inputs)} input(s), got {len(arrays)} --input")
    arrays = [_coerce(a, t) for a, t in zip(arrays, res.spec.inputs)]
    with tempfile.TemporaryDirectory(prefix="dgc-run-") as wd:
        obj = os.path.join(wd, f"{res.name}.o")
        with open(obj, "wb") as f:
            f.write(res.object)
        outs = run_model(res.spec, obj, res.target, arrays, wd)
    for i, (t, y) in enumerate(zip(res.spec.outputs, outs)):
        if i < len(outputs):
            np.save(outputs[i], y)
            click.echo(f"{t.name}: saved {list(y.shape)} {y.dtype} to {outputs[i]}")
        else:
            click.echo(f"{t.name} {list(y.shape)} {y.dtype}:\n{np.array2string(y, threshold=64)}")


def _coerce(a, t):
    import numpy as np

    if tuple(a.shape) != tuple(t.shape):
        raise UsageError(f"input '{t.name}' has shape {list(a.shape)}, the model expects {list(t.shape)}")
    return np.ascontiguousarray(a.astype(t.dtype, copy=False))


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-t", "--target", default="host", show_default=True, help=_TARGET_HELP)
@click.option("--seed", default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--input-shape", "input_shapes", multiple=True, help="NAME=D0xD1x..., as for compile.")
@click.option("-O", "opt", type=click.IntRange(0, 3), default=3, show_default=True, help="Optimization level.")
@click.option("--memcheck", type=click.Choice(["guard", "asan", "valgrind"]), default=None,
              help="Run in the memory-safety harness (Linux targets): guard pages, read-only inputs, "
                   "canaries and two threads; 'asan' builds it with AddressSanitizer, 'valgrind' runs it "
                   "under valgrind memcheck (AVX2 targets, e.g. x86-64-v3).")
@click.option("--tuning-db", type=click.Path(dir_okay=False), default=None,
              help="Verify the build with the schedules `dgc tune` stored for this target in FILE, as "
                   "`dgc compile --tuning-db`, e.g. --tuning-db tuning.json.")
@click.option("--predict", is_flag=True, help="Verify the build `dgc compile --predict` makes.")
def verify(model, target, seed, input_shapes, opt, memcheck, tuning_db, predict):
    """Compile MODEL for TARGET, run it (natively or in QEMU), compare with onnxruntime.

    Prints max abs/rel error per output and PASS/FAIL; exit code 0 on PASS, 1 on FAIL.
    Float outputs pass when max abs error <= 1e-4 * max(1, max|ref|); integers must be exact.
    An output outside that limit is compared again with onnxruntime without its graph
    optimizations: when the two references differ by more than the limit (deep quantized
    networks, where rounding ties compound from layer to layer), it passes if it is at most 1.5x
    farther from the first than the second is, at most and on average, and is not biased.
    Where onnxruntime's own uint8 x int8 kernels are inexact on this CPU (x86 without VNNI) and
    the model has a QLinearMatMul, or a MatMulInteger with a runtime B, that takes them, the
    reference is onnx's reference evaluator.

    \b
    Examples:
      dgc verify model.onnx --target cortex-m7
      dgc verify model.onnx --target x86-64-v3 --memcheck valgrind
      dgc verify model.onnx --target cortex-m7 --tuning-db tuning.json
    """
    from .frontend.load import parse_input_shapes
    from .verifier import verify as verify_model

    from .driver import c_identifier

    name = c_identifier(os.path.splitext(os.path.basename(model))[0])
    res, cmp = verify_model(model, target, seed=seed, opt_level=opt, name=name,
                            input_shapes=parse_input_shapes(input_shapes), memcheck=memcheck,
                            tuning_db=tuning_db, predict=predict)
    ok = all(c.ok for c in cmp)
    for c in cmp:
        click.echo(f"{c.name}: max abs err {c.max_abs:.3g}  max rel err {c.max_rel:.3g}  "
                   f"(limit {c.limit:.3g}{': ' + c.note if c.note else ''})  {'ok' if c.ok else 'MISMATCH'}")
    checked = f", memory-safe under {memcheck}" if memcheck else ""
    click.echo(f"{'PASS' if ok else 'FAIL'}: {res.name} on {res.target.name} "
               f"(arena {res.arena_size} bytes, object {len(res.object)} bytes{checked})")
    sys.exit(0 if ok else 1)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-t", "--target", default="host", show_default=True, help=_TARGET_HELP)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the report as JSON (schema dgc-report/1, see README), e.g. --json report.json.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              help="Write one self-contained HTML page with plots, e.g. --html report.html.")
@click.option("--name", default=None, help="C prefix, as for compile (default: the model file's stem).")
@click.option("--input-shape", "input_shapes", multiple=True, help="NAME=D0xD1x..., as for compile.")
@click.option("-O", "opt", type=click.IntRange(0, 3), default=3, show_default=True, help="Optimization level.")
def report(model, target, json_path, html_path, name, input_shapes, opt):
    """Compile MODEL for TARGET and report flash, RAM, MACs and the arena plan per layer.

    Prints a summary; --json and --html write the full report. The target's default budget is
    reported (fits: yes/NO) rather than enforced.

    \b
    Example:
      dgc report model.onnx --target cortex-m7 --json report.json --html report.html
    """
    import json

    from . import report as rpt
    from .contain import compile_contained
    from .frontend.load import parse_input_shapes

    res = compile_contained(model, target, name, opt_level=opt, input_shapes=parse_input_shapes(input_shapes),
                            ram_limit=None, flash_limit=None)
    rep = rpt.build(res)
    outputs = []
    if json_path:
        outputs.append((json_path, json.dumps(rep, indent=1) + "\n"))
    if html_path:
        outputs.append((html_path, rpt.render_html(rep)))
    for path, text in outputs:
        _write_atomic(path, text.encode())
    tot = rep["totals"]
    fits = {None: "", True: " (fits)", False: " (does NOT fit)"}
    click.echo(f"{rep['model']} on {rep['target']['name']}: {tot['macs']:,} MACs")
    click.echo(f"  flash {tot['flash']:,} B (code {tot['text']:,} + read-only {tot['rodata']:,})"
               f"{fits[tot['fits_flash']]}")
    click.echo(f"  RAM   {tot['ram']:,} B (arena {tot['arena']:,}, lower bound {tot['arena_lower_bound']:,}; "
               f"stack {tot['stack']:,}){fits[tot['fits_ram']]}")
    for path, _ in outputs:
        click.echo(path)


@cli.command()
@click.option("--markdown", is_flag=True, help="Print a Markdown table.")
def ops(markdown):
    """Print the supported ONNX ops (from the lowering registry).

    \b
    Example:
      dgc ops --markdown
    """
    from .frontend import importer  # noqa: F401  (registers lowerings)
    from .frontend.registry import registry

    rows = []
    for op, regs in registry().items():
        since = ", ".join(str(s) for s, _ in regs)
        notes = "; ".join(fn.notes for _, fn in regs if getattr(fn, "notes", ""))
        rows.append((op, since, notes))
    if markdown:
        click.echo("| op | lowering since opset | notes |\n|---|---|---|")
        for r in rows:
            click.echo(f"| {r[0]} | {r[1]} | {r[2]} |")
    else:
        width = max(len(r[0]) for r in rows)
        for r in rows:
            click.echo(f"{r[0]:<{width}} since {r[1]:<10} {r[2]}")


@cli.command()
@click.option("-t", "--target", default="host", show_default=True, help=_TARGET_HELP)
@click.option("--suite", type=click.Choice(["core", "expanded", "rest", "all"]), default="core", show_default=True,
              help="core: the 642 single-op tests of the 81 core ops; expanded: their _expanded variants; "
                   "rest: every other node test; all: everything.")
@click.option("--ops", default="", help="Only these ops, e.g. --ops Conv,MaxPool.")
@click.option("--markdown", is_flag=True, help="Print the per-op table as Markdown.")
@click.option("--failures", is_flag=True, help="Also print each failing test with its reason.")
@click.option("-j", "--jobs", default=os.cpu_count() or 1, show_default=True, help="Worker processes, e.g. -j 2.")
def conformance(target, suite, ops, markdown, failures, jobs):
    """Run the ONNX backend node tests (regenerated from the onnx wheel) and print a per-op table.

    Attribute-like inputs (shape, axes, pads, starts/ends, scales, ...) and quantization
    parameters are frozen into initializers, as an AOT compiler sees them in real models.

    \b
    Example:
      dgc conformance --suite core --ops Conv,Gemm --failures
    """
    from . import conformance as conf

    cases = {"core": conf.core_cases, "expanded": lambda: conf.core_cases(True),
             "rest": conf.non_core_cases, "all": conf.all_cases}[suite]()
    wanted = {o.strip() for o in ops.split(",") if o.strip()}
    cases = [c for c in cases if not wanted or c.op in wanted]
    with click.progressbar(length=len(cases), label=f"{suite} node tests on {target}", file=sys.stderr) as bar:
        results = conf.run_cases(cases, target, jobs=jobs, progress=lambda r: bar.update(1))
    click.echo(conf.per_op_table(results, markdown))
    if failures:
        for r in results:
            if r.status != "pass":
                click.echo(f"{r.name}: {r.status}: {r.detail}")


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="dgc", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("dgc: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"dgc: error: {e.format_message()}", err=True)
        sys.exit(2)
    except DgcError as e:
        if _DEBUG and getattr(e, "child_traceback", None):
            click.echo(e.child_traceback, err=True)
        elif _DEBUG:
            raise
        kind = "internal error" if e.exit_code == 70 and not e.line().startswith("internal compiler error") else "error"
        click.echo(f"dgc: {kind}: {e.line()}", err=True)
        if _DEBUG and getattr(e, "stderr", None):
            click.echo(e.stderr, err=True)
        sys.exit(e.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # an internal bug: say so in one line
        if _DEBUG:
            raise
        msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        click.echo(f"dgc: internal error: {type(e).__name__}: {msg} (rerun with --debug for a traceback)", err=True)
        sys.exit(70)
