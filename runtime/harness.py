"""The generated C test harness: one program that runs each linked model once.

`render_harness(specs)` returns `harness.c` for the models in `specs`. It includes each
model's generated header, so the calls are compiled against the C contract, and uses the
file I/O of `dgc_harness.h`: inputs are read from `<dir>/<input_file(...)>` with dir =
argv[1], outputs written to `<dir>/<output_file(...)>`, and what every `<name>_run`
returned to STATUS_FILE (one int32 per model, in order). Outputs of a model that returned
non-zero are not written. The exit status is 0, or DGC_EXIT_IO when a file failed.

All buffers are static and marked DGC_BIG (the board's largest RAM on Cortex-M). The
models run one after another, so they share one arena sized for the largest.

On Cortex-M each call's stack high-water mark (the stack below the caller's stack pointer is
painted before the call and scanned after it) goes to STACK_FILE, one int32 per model.

Each `<name>_run` call sits between calls of two empty, never-inlined functions,
`dgc_bench_begin()` and `dgc_bench_end()`: a benchmark finds them by symbol and measures
what runs in between (bench/cortexm.py counts the instructions there under QEMU).
"""

from __future__ import annotations

from dgc.spec import ModelSpec

STATUS_FILE = "status.bin"
STACK_FILE = "stack.bin"  # Cortex-M: bytes of stack each model's run used (int32 each), see _STACK_PAINT

# On Cortex-M the stack below the caller's stack pointer is painted before each model call and
# scanned after it: the lowest byte that changed is the run's stack high-water mark.
_STACK_PAINT = r"""
#if defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'
#define DGC_MEASURE_STACK 1
#ifndef DGC_STACK_PAINT_BYTES
#define DGC_STACK_PAINT_BYTES 32768u
#endif
#define DGC_STACK_PAINT_VALUE 0xA5u
/* Paint the DGC_STACK_PAINT_BYTES below sp (volatile: neither elided nor turned into a call). */
#define DGC_PAINT_BELOW(sp) do { \
        volatile uint8_t *p_ = (sp) - DGC_STACK_PAINT_BYTES; \
        while (p_ < (sp)) *p_++ = DGC_STACK_PAINT_VALUE; } while (0)
static int32_t dgc_stack_used(uint8_t *sp)
{
    volatile uint8_t *p = sp - DGC_STACK_PAINT_BYTES;
    while (p < sp && *p == DGC_STACK_PAINT_VALUE)
        p++;
    return (int32_t)(sp - p);
}
#define DGC_SP(sp) __asm__ volatile("mov %0, sp" : "=r"(sp))
#else
#define DGC_MEASURE_STACK 0
#endif
"""


def input_file(spec: ModelSpec, i: int) -> str:
    return f"{spec.name}.input{i}.bin"


def output_file(spec: ModelSpec, i: int) -> str:
    return f"{spec.name}.output{i}.bin"


def _buffer(spec: ModelSpec, kind: str, i: int) -> str:
    return f"h_{spec.name}_{kind}{i}"


def _macro(spec: ModelSpec, kind: str, i: int, what: str) -> str:
    return f"{spec.name.upper()}_{kind.upper()}{i}_{what}"


def _buffers(spec: ModelSpec) -> list[str]:
    lines = []
    for kind, tensors in (("input", spec.inputs), ("output", spec.outputs)):
        for i, t in enumerate(tensors):
            n = _macro(spec, kind, i, "SIZE")
            lines.append(f"static {t.ctype} {_buffer(spec, kind, i)}[{n} ? {n} : 1] DGC_BIG;")
    return lines


def _run_function(spec: ModelSpec) -> list[str]:
    """`static int run_<name>(dir, status)`: load inputs, call, save outputs."""
    lines = [f"static int run_{spec.name}(const char *dir, int32_t *status, int32_t *stack)", "{",
             "    int io = 0;", "    (void)stack;"]
    for i in range(len(spec.inputs)):
        lines.append(f'    io |= dgc_load(dir, "{input_file(spec, i)}", '
                     f'{_buffer(spec, "input", i)}, {_macro(spec, "input", i, "BYTES")});')
    args = [_buffer(spec, "input", i) for i in range(len(spec.inputs))]
    args += [_buffer(spec, "output", i) for i in range(len(spec.outputs))]
    args.append("h_arena" if spec.arena_size else "NULL")
    # painting and scanning stay outside the benchmark markers: they are not the model's work
    lines += ["    if (io)", "        return io;",
              "#if DGC_MEASURE_STACK",
              "    uint8_t *sp;",
              "    DGC_SP(sp);",
              "    DGC_PAINT_BELOW(sp);",
              "#endif",
              "    dgc_bench_begin();",
              f"    *status = {spec.entry}({', '.join(args)});",
              "    dgc_bench_end();",
              "#if DGC_MEASURE_STACK",
              "    *stack = dgc_stack_used(sp);",
              "#endif",
              "    if (*status != DGC_OK)", "        return 0;"]
    for i in range(len(spec.outputs)):
        lines.append(f'    io |= dgc_save(dir, "{output_file(spec, i)}", '
                     f'{_buffer(spec, "output", i)}, {_macro(spec, "output", i, "BYTES")});')
    return lines + ["    return io;", "}", ""]


def _main(specs: list[ModelSpec]) -> list[str]:
    lines = ["int main(int argc, char **argv)", "{",
             '    const char *dir = argc > 1 ? argv[1] : ".";',
             f"    int32_t status[{len(specs)}] = {{0}}, stack[{len(specs)}] = {{0}};",
             "    int io = 0;"]
    lines += [f"    io |= run_{s.name}(dir, &status[{k}], &stack[{k}]);" for k, s in enumerate(specs)]
    lines += [f'    io |= dgc_save(dir, "{STATUS_FILE}", status, sizeof status);',
              "#if DGC_MEASURE_STACK",
              f'    io |= dgc_save(dir, "{STACK_FILE}", stack, sizeof stack);',
              "#endif",
              "    if (io)",
              '        dgc_log("dgc harness: a tensor file could not be read or written");',
              "    return io ? DGC_EXIT_IO : 0;", "}"]
    return lines


def render_harness(specs: list[ModelSpec]) -> str:
    arena = max([s.arena_size for s in specs] + [1])
    align = max([s.arena_align for s in specs] + [16])
    lines = ["/* harness.c -- generated by dgc.runtime.harness; do not edit. */",
             "#include <stddef.h>", "#include <stdint.h>", "#include <stdbool.h>", "",
             '#include "dgc_runtime.h"', '#include "dgc_harness.h"']
    lines += [f'#include "{s.name}.h"' for s in specs]
    lines += ["", "/* Benchmark markers around each model call; noipa: never inlined, cloned or merged. */",
              'void __attribute__((noipa)) dgc_bench_begin(void) { __asm__ volatile(""); }',
              'void __attribute__((noipa)) dgc_bench_end(void) { __asm__ volatile(""); }']
    lines += _STACK_PAINT.split("\n")
    lines += ["", "/* One arena for all: the models run one after another. */",
              f"static uint8_t h_arena[{arena}] DGC_BIG DGC_ALIGNED({align});"]
    for s in specs:
        lines += _buffers(s)
    lines.append("")
    for s in specs:
        lines += _run_function(s)
    return "\n".join(lines + _main(specs)) + "\n"
