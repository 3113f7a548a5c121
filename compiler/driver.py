"""The stage loop: import, run the target's pipeline, translate, optimize, generate code.

`compile()` is the Python API behind `dgc compile`. Dumping has one hook here
(`NN-<stage>.mlir` with MLIR's banner); stages never print or open files. A failing stage
raises `PipelineError` naming the stage and the ONNX node and saves a repro of its input.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sys
import tempfile
import time

import numpy as np

from dgc.pipelines.stage import Stage

from . import backend, footprint, stack
from .errors import PipelineError, UsageError
from .frontend.importer import import_model
from .frontend.load import load
from .header import render_header
from .ir import PassManager, ir
from .spec import ModelSpec, TensorSpec
from .targets import Target, get_target

FINAL_STAGES = ("llvm-ir", "opt", "obj")  # after the MLIR pipeline
EMIT_KINDS = ("obj", "header", "llvm", "asm", "mlir", "spec")


@dataclasses.dataclass
class StageContext:
    """What Python stages may read and write."""

    target: Target
    name: str
    opt_level: int
    blobs: dict  # dense_resource key -> numpy array (from the importer)
    weights: dict = dataclasses.field(default_factory=dict)  # symbol -> (bytes, align)
    arena_size: int = 0
    arena_lower_bound: int = 0  # the most bytes live at once (memory-plan); arena_size >= it
    buffers: list = dataclasses.field(default_factory=list)  # memory_plan.Buffer per arena buffer
    fused_into: dict = dataclasses.field(default_factory=dict)  # ONNX node -> node whose loops compute it
    op_nodes: list = dataclasses.field(default_factory=list)  # ONNX node of each top-level op (memory-plan)
    node_types: dict = dataclasses.field(default_factory=dict)  # ONNX node name -> op type
    schedule_overrides: list = dataclasses.field(default_factory=list)  # --schedule entries
    tuning: dict = dataclasses.field(default_factory=dict)  # op signature -> tuned schedule fields
    predict: bool = False  # untuned ops: the cost model's (dgc.predict) best candidate, not the default
    schedule: list = dataclasses.field(default_factory=list)  # OpSchedule chosen per op
    dsp_ops: list = dataclasses.field(default_factory=list)  # dsp_kernels.describe: int8 SMLAD convs, blocks chosen
    dsp_blocks: dict = dataclasses.field(default_factory=dict)  # ONNX node key -> {"pixels", "filters"} (tuned)


@dataclasses.dataclass
class CompileResult:
    name: str
    target: Target
    spec: ModelSpec | None = None
    header: str | None = None
    object: bytes | None = None
    llvm_ir: str | None = None
    asm: str | None = None
    mlir: str | None = None  # the imported TOSA module (constants elided unless kept)
    timings: dict = dataclasses.field(default_factory=dict)
    stopped_after: str | None = None
    schedule: str | None = None  # JSON of the schedule the schedule stage chose (--dump-schedule)
    arena_lower_bound: int = 0  # the most buffer bytes live at once: no plan of this op order needs less
    buffers: list = dataclasses.field(default_factory=list)  # memory_plan.Buffer: the arena's contents
    stack: object = None  # stack.StackBound of the entry point (after "obj")
    footprint: dict = dataclasses.field(default_factory=dict)  # bytes: flash, text, rodata, data, bss, arena, stack, ram
    loaded: object = None  # frontend.load.LoadedModel: the graph as compiled (after rewrites and folding)
    fused_into: dict = dataclasses.field(default_factory=dict)  # ONNX node -> node whose loops compute it
    op_nodes: list = dataclasses.field(default_factory=list)  # ONNX node of each op position of the buffers' lifetimes

    @property
    def arena_size(self) -> int:
        return self.spec.arena_size if self.spec else 0


C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern float for goto
if inline int long register restrict return short signed sizeof static struct switch typedef union unsigned
void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert
_Thread_local alignas alignof bool constexpr false nullptr static_assert thread_local true typeof
typeof_unqual _BitInt _Decimal32 _Decimal64 _Decimal128""".split())


def c_identifier(text: str) -> str:
    """A file stem made into a usable C prefix (the default --name)."""
    ident = re.sub(r"\W", "_", text).strip("_") or "model"
    ident = ident if not ident[0].isdigit() else f"m_{ident}"
    return ident if ident not in C_KEYWORDS and not ident.startswith("__") else f"m_{ident}"


def check_name(name: str) -> None:
    """An explicit --name must be usable as given: a C identifier, not a keyword or reserved."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise UsageError(f"--name '{name}' is not a C identifier",
                         hint="use letters, digits and '_', not starting with a digit, e.g. --name kws")
    if name in C_KEYWORDS or name.startswith("__") or re.match(r"_[A-Z]", name):
        raise UsageError(f"--name '{name}' is a C keyword or reserved identifier", hint="pick another, e.g. --name kws")


def stage_names(target: Target) -> list[str]:
    from dgc.pipelines import for_target

    return ["import"] + [s.name for s in for_target(target)] + list(FINAL_STAGES)


def _asm(module, keep_constants: bool) -> str:
    if keep_constants:
        return module.operation.get_asm(enable_debug_info=True)
    return module.operation.get_asm(large_elements_limit=16, large_resource_limit=64,
                                    enable_debug_info=True)


class _Dumper:
    def __init__(self, dump_dir, print_after, keep_constants):
        self.dir, self.print_after, self.keep = dump_dir, set(print_after or ()), keep_constants
        self.count = 0
        if dump_dir:
            os.makedirs(dump_dir, exist_ok=True)

    def __call__(self, stage: str, module) -> None:
        if not self.dir and not self.print_after:
            return
        text = f"// -----// IR Dump After {stage} //----- //\n" + _asm(module, self.keep)
        if self.dir:
            with open(os.path.join(self.dir, f"{self.count:02d}-{stage}.mlir"), "w") as f:
                f.write(text)
        if stage in self.print_after or "all" in self.print_after:
            sys.stderr.write(text)
        self.count += 1


OBSERVER = None  # callable(stage name, module) told before each stage (dgc.contain sets it)


def _observe(stage: str, module) -> None:
    if OBSERVER is not None:
        OBSERVER(stage, module)


def _run_stage(stage, module, ctx, workdir):
    _observe(stage.name, module)
    try:
        if stage.fn is not None:
            stage.fn(module, ctx)
        else:
            PassManager.parse(stage.pipeline).run(module.operation)
        module.operation.verify()
    except ir.MLIRError as err:
        raise _stage_failure(stage, err, module, workdir) from None


def _stage_failure(stage, err, module, workdir) -> PipelineError:
    msg = "; ".join(str(d.message) for d in err.error_diagnostics[:1]) or str(err)
    loc = next((str(d.location) for d in err.error_diagnostics), "")
    node = re.search(r'loc\("([^"]+)"', loc)
    repro = os.path.join(workdir, f"repro-{stage.name}.mlir")
    with open(repro, "w") as f:
        f.write(module.operation.get_asm(enable_debug_info=True))  # complete: replayable
    where = f'stage {stage.name}' + (f', ONNX node "{node.group(1)}"' if node else "")
    hint = f"input IR saved to {repro}"
    if stage.passes:
        hint += f"; replay: mlir-opt --pass-pipeline='{stage.pipeline}' {repro}"
    return PipelineError(msg.splitlines()[0][:300], where=where, hint=hint)


# (op, input index of the quantized tensor) -> input indices of its scale and zero point
_QPARAMS_IN = {("DequantizeLinear", 0): (1, 2), ("QLinearConv", 0): (1, 2), ("QLinearMatMul", 0): (1, 2),
               ("QLinearMatMul", 3): (4, 5), ("QLinearAdd", 0): (1, 2), ("QLinearAdd", 3): (4, 5),
               ("QLinearAveragePool", 0): (1, 2), ("QLinearGlobalAveragePool", 0): (1, 2),
               ("QLinearSigmoid", 0): (1, 2), ("QLinearLeakyRelu", 0): (1, 2)}
_QPARAMS_OUT = {"QuantizeLinear": (1, 2), "QLinearConv": (6, 7), "QLinearMatMul": (6, 7), "QLinearAdd": (6, 7),
                "QLinearAveragePool": (3, 4), "QLinearGlobalAveragePool": (3, 4), "QLinearSigmoid": (3, 4),
                "QLinearLeakyRelu": (3, 4)}


def _boundary_qparams(lm, tensor: str, is_input: bool) -> tuple[float | None, int | None]:
    """(scale, zero point) of an int8/uint8 model input or output, when every quantized op that
    reads it (or the one that writes it) gives the same constant per-tensor ones."""
    if np.dtype(lm.dtypes[tensor]).name not in ("int8", "uint8"):
        return None, None
    found = set()
    for node in lm.model.graph.node:
        if is_input:
            slots = [_QPARAMS_IN.get((node.op_type, i)) for i, n in enumerate(node.input) if n == tensor]
        else:
            slots = [_QPARAMS_OUT.get(node.op_type)] if tensor in node.output[:1] else []
        for slot in slots:
            if slot is None:
                return None, None
            s = lm.consts.get(node.input[slot[0]])
            z = lm.consts.get(node.input[slot[1]]) if len(node.input) > slot[1] and node.input[slot[1]] else 0
            if s is None or z is None or np.size(s) != 1 or np.size(z) != 1:
                return None, None
            found.add((float(np.asarray(s, np.float32).reshape(())), int(np.asarray(z).reshape(()))))
    return found.pop() if len(found) == 1 else (None, None)


def _section_name(name: str, option: str) -> str:
    if name and not re.fullmatch(r"\.?[A-Za-z_][A-Za-z0-9_.$]*", name):
        raise UsageError(f"{option} '{name}' is not a section name",
                         hint="use letters, digits, '_', '.' and '$', e.g. .ext_flash or .bss.sram2")
    return name or ""


def _spec(lm, name, arena, extern, stack_size: int = 0) -> ModelSpec:
    def tensors(names, is_input=False):
        return tuple(TensorSpec(n, tuple(lm.shapes[n]), np.dtype(lm.dtypes[n]).name,
                                *_boundary_qparams(lm, n, is_input)) for n in names)

    return ModelSpec(name, tensors(lm.inputs, True), tensors(lm.outputs), arena, extern_symbols=tuple(extern),
                     stack_size=stack_size)


def compile(model, target="host", name: str | None = None, *, opt_level: int = 3,
            input_shapes: dict | None = None, emit=("obj", "header"), dump_ir: str | None = None,
            print_ir_after=(), stop_after: str | None = None, keep_constants: bool = False,
            workdir: str | None = None, schedule=None, ram_limit=footprint.DEFAULT,
            flash_limit=footprint.DEFAULT, weights_section: str = "", arena_section: str = "",
            tuning_db=None, predict: bool = False) -> CompileResult:
    """Compile an ONNX model (path, bytes or ModelProto) for `target`.

    `schedule`: overrides of the schedule stage's choices, a path to a JSON file (as written
    by `--dump-schedule`) or the list of entries; `res.schedule` is the JSON of what was used.
    `ram_limit` / `flash_limit`: bytes (or '512K', '2M'), None for no limit, or "default" for
    the target's part (`Target.ram_bytes` / `flash_bytes`); over budget raises FootprintError.
    `weights_section`: the ELF section for the weights (e.g. ".ext_flash"; default .rodata.*);
    `arena_section`: the section the header's <NAME>_ARENA_DEFINE puts an arena in.
    `tuning_db`: a tuning database (`dgc tune`; path or loaded `TuningDB`): ops whose signature
    it holds for this target get the tuned schedule, the others the defaults.
    `predict`: ops without a tuned schedule get the candidate the cost model (`dgc.predict`)
    ranks cheapest instead of the default heuristics; nothing is run.
    """
    from dgc.passes.schedule import read_schedule_file, validate_entries

    from dgc.pipelines import for_target

    tgt = target if isinstance(target, Target) else get_target(target)
    limits = (footprint.parse_size(ram_limit, "--ram-limit"), footprint.parse_size(flash_limit, "--flash-limit"))
    sections = (_section_name(weights_section, "--weights-section"), _section_name(arena_section, "--arena-section"))
    if name is None:
        name = os.path.splitext(os.path.basename(model))[0] if isinstance(model, (str, os.PathLike)) else "model"
        name = c_identifier(name)
    else:
        check_name(name)
    if opt_level not in (0, 1, 2, 3):
        raise UsageError(f"bad optimization level {opt_level}", hint="use 0, 1, 2 or 3")
    names = stage_names(tgt)
    if stop_after is not None and stop_after not in names:
        raise UsageError(f"unknown stage '{stop_after}'", hint="stages: " + ", ".join(names))
    bad = [k for k in emit if k not in EMIT_KINDS]
    if bad:
        raise UsageError(f"unknown --emit kind '{bad[0]}'", hint="choose from " + ", ".join(EMIT_KINDS))
    overrides = read_schedule_file(schedule) if isinstance(schedule, (str, os.PathLike)) else \
        validate_entries(list(schedule or []), "the schedule argument")
    tuning = {}
    if tuning_db is not None:
        from dgc.tuning import TuningDB

        db = tuning_db if isinstance(tuning_db, TuningDB) else TuningDB.load(tuning_db, must_exist=True)
        tuning = db.schedules(tgt)
    res = CompileResult(name, tgt)
    own_tmp = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="dgc-")
    os.makedirs(workdir, exist_ok=True)
    try:
        _compile(model, tgt, name, opt_level, input_shapes, emit, stop_after, keep_constants,
                 _Dumper(dump_ir, print_ir_after, keep_constants), workdir, res, for_target(tgt),
                 overrides, limits, sections, tuning, predict)
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
    return res


def _timed(res, key, fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    res.timings[key] = res.timings.get(key, 0.0) + time.perf_counter() - t0
    return out


def _compile(model, tgt, name, opt_level, input_shapes, emit, stop_after, keep, dump, workdir, res, stages,
             overrides, limits, sections, tuning, predict):
    from dgc.passes.schedule import dump as dump_schedule

    with ir.Context(), ir.Location.unknown():
        _observe("load", None)
        lm = _timed(res, "load", load, model, input_shapes)
        _observe("import", None)
        module, emitter = _timed(res, "import", import_model, lm, name, tgt.simd)
        try:
            module.operation.verify()
        except ir.MLIRError as err:
            raise _stage_failure(Stage("import", "ONNX to TOSA"), err, module, workdir) from None
        if "mlir" in emit:
            res.mlir = _asm(module, keep)
        dump("import", module)
        ctx = StageContext(tgt, name, opt_level, emitter.blobs, schedule_overrides=overrides, tuning=tuning,
                           predict=predict,
                           node_types={n.name: n.op_type for n in lm.model.graph.node})
        res.spec = _spec(lm, name, 0, ())
        if stop_after == "import":
            res.stopped_after = "import"
            return
        for stage in stages:
            _timed(res, stage.name, _run_stage, stage, module, ctx, workdir)
            dump(stage.name, module)
            if stage.name == "schedule":
                res.schedule = dump_schedule(ctx.schedule, tgt, ctx.dsp_ops)
            if stage.name == "memory-plan":
                res.arena_lower_bound, res.buffers = ctx.arena_lower_bound, ctx.buffers
                res.fused_into, res.op_nodes = dict(ctx.fused_into), list(ctx.op_nodes)
            if stop_after == stage.name:
                res.stopped_after = stage.name
                res.spec = _spec(lm, name, ctx.arena_size, ())
                return
        mlir_path = os.path.join(workdir, f"{name}.llvm.mlir")
        with open(mlir_path, "w") as f:
            f.write(module.operation.get_asm())
    _finish(res, lm, ctx, mlir_path, tgt, opt_level, emit, stop_after, workdir, limits, sections)


def _finish(res, lm, ctx, mlir_path, tgt, opt_level, emit, stop_after, workdir, limits, sections):
    name = res.name
    ll = os.path.join(workdir, f"{name}.ll")
    _timed(res, "llvm-ir", backend.translate, mlir_path, ll)
    if stop_after != "llvm-ir" and opt_level > 0:
        opt_ll = os.path.join(workdir, f"{name}.opt.ll")
        _timed(res, "opt", backend.optimize, ll, opt_ll, tgt, opt_level)
        ll = opt_ll
    with open(ll) as f:
        text = f.read()
    stack.check_no_dynamic_alloca(text)
    asm_stack = stack.asm_stack(text)
    full = os.path.join(workdir, f"{name}.full.ll")
    _timed(res, "splice", backend.splice_weights, ll, full, ctx.weights, sections[0])
    if "llvm" in emit:
        with open(full) as f:
            res.llvm_ir = f.read()
    if stop_after in ("llvm-ir", "opt"):
        res.stopped_after = stop_after
        res.spec = _spec(lm, name, ctx.arena_size, ())
        return
    obj = os.path.join(workdir, f"{name}.o")
    _timed(res, "obj", backend.codegen, full, obj, tgt, opt_level, "obj")
    with open(obj, "rb") as f:
        res.object = f.read()
    if "asm" in emit:
        s = os.path.join(workdir, f"{name}.s")
        backend.codegen(full, s, tgt, opt_level, "asm")
        with open(s) as f:
            res.asm = f.read()
    defined, undefined = backend.symbols(obj)
    extra = [d for d in defined if d != f"{name}_run"]
    if extra:
        raise PipelineError(f"object exports unexpected global symbols {extra}", where="stage obj")
    doc = stack.read_object(obj)
    res.stack = _timed(res, "stack", stack.compute, doc, f"{name}_run", tgt.triple, asm_stack)
    sec = footprint.sections(doc)
    res.footprint = dict(flash=sec.flash, text=sec.text, rodata=sec.rodata, data=sec.data, bss=sec.bss,
                         arena=ctx.arena_size, stack=res.stack.bound,
                         ram=ctx.arena_size + res.stack.bound + sec.data + sec.bss)
    res.loaded = lm
    footprint.check(res, lm.consts, tgt, *limits)
    res.spec = dataclasses.replace(_spec(lm, name, ctx.arena_size, undefined, res.stack.bound),
                                   weights_section=sections[0], arena_section=sections[1])
    res.header = render_header(res.spec)
