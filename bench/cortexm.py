"""Cortex-M benchmark: dgc against a plain C reference, instruction for instruction, in QEMU.

    python3 bench/cortexm.py [--models ds_cnn,resnet8] [--target cortex-m7] [--json out.json]

For each zoo model: compile it with dgc for the target, and generate the plain C reference
of the same network (bench/cref: straightforward float loops, inlined per layer so that GCC
knows the shapes, built with arm-none-eabi-gcc -O3 -ffp-contract=off); link each into dgc's
QEMU harness (startup_cortexm.c, semihost.c, boards/<board>.ld), run one inference under
qemu-system-arm with the icount TCG plugin (dgc.runtime.icount), and report:

  instructions    EXACT count of guest instructions executed inside `<name>_run` (between
                  the harness's dgc_bench_begin/dgc_bench_end markers), the same on every
                  run: each firmware runs --runs times (default 2) and must count identically
  est. cycles     an ESTIMATE: llvm-mca -mcpu=<cpu> per executed basic block, weighted by
                  its exact execution count (zero-wait memory, no branch penalties); QEMU
                  itself does not model time
  MACs            multiply-accumulates of the Conv/Gemm/MatMul nodes in the ONNX graph
  numerics ok     both programs' outputs match onnxruntime (|err| <= 1e-4 * max(1, |ref|))

and prints a Markdown table (and, with --json, every number as JSON).
Acceptance goal of the Cortex-M performance work: ratio dgc/C <= 0.6 for ds_cnn and resnet8.

A name ending in `_qdq` (e.g. ds_cnn_qdq) is the zoo model quantized to int8 QDQ
(`dgc.zoo.quantized.qdq`): dgc compiles and is checked against onnxruntime on the QDQ model;
the C reference stays the float network (there is no int8 C reference), checked against the
float model, so its ratio compares int8 dgc code with float C; MACs are the network's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import dgc
from cref.emit import KERNELS_DIR, emit_c
from cref.graph import count_macs
from dgc import zoo
from dgc.runtime.runners import RUNTIME_DIR
from dgc.targets import get_target
from dgc.tools import run_tool
from dgc.verifier import compare, random_inputs, reference
from dgc.runtime.icount.estimate import estimate
from dgc.runtime.icount.plugin import build_firmware, run_counted

CREF_FLAGS = ["-O3", "-ffp-contract=off", "-std=c11", "-Wall", "-ffunction-sections",
              "-fdata-sections"]


def build_cref(proto, name: str, target, workdir: str):
    """The C reference of `proto` as an object for `target`: ([object], spec)."""
    os.makedirs(workdir, exist_ok=True)
    src, spec = emit_c(proto, name)
    model_c = os.path.join(workdir, f"{name}_cref.c")
    with open(model_c, "w") as f:
        f.write(src)
    obj = model_c[:-2] + ".o"
    run_tool([target.gcc, *target.gcc_flags, *CREF_FLAGS, "-I", RUNTIME_DIR, "-I", KERNELS_DIR,
              "-c", model_c, "-o", obj], what=f"compiling the C reference of {name}")
    return [obj], spec


def measure(spec, objs, target, inputs, want, workdir: str, runs: int) -> dict:
    """Run the program `runs` times under the icount plugin; counts, estimate, numerics."""
    exe = build_firmware([(spec, objs)], target, [inputs], workdir)
    counts, outputs = [], None
    for _ in range(runs):
        outs, regions = run_counted(exe, [spec], target, workdir)
        outputs = outputs or outs[0]
        counts.append(regions[0].counts)
    if any(c != counts[0] for c in counts):
        totals = [sum(c.values()) for c in counts]
        raise RuntimeError(f"{spec.name}: instruction counts differ between runs: {totals}")
    est = estimate(exe, counts[0], target)
    cmp = compare(spec, outputs, want)
    return {"instructions": est.instructions,
            "instructions_per_run": [sum(c.values()) for c in counts],
            "est_cycles": round(est.cycles), "est_blocks": est.blocks,
            "est_unmodeled_instructions": est.unmodeled,
            "numerics_ok": all(c.ok for c in cmp),
            "max_abs_err": max(c.max_abs for c in cmp), "err_limit": min(c.limit for c in cmp)}


def _protos(name: str):
    """(model dgc compiles, float network for MACs and the C reference)."""
    if name.endswith("_qdq"):
        from dgc.zoo import quantized

        return quantized.qdq(name[:-4]), zoo.build(name[:-4])
    proto = zoo.build(name)
    return proto, proto


def bench_model(name: str, target, workdir: str, runs: int = 2) -> dict:
    proto, network = _protos(name)
    res = dgc.compile(proto, target, name=name)
    inputs = random_inputs(res.spec, seed=0)
    want = reference(proto, res.spec, inputs)
    dgc_dir = os.path.join(workdir, name, "dgc")
    os.makedirs(dgc_dir, exist_ok=True)
    obj = os.path.join(dgc_dir, f"{name}.o")
    with open(obj, "wb") as f:
        f.write(res.object)
    row = {"model": name, "target": target.name, "macs": count_macs(network), "runs": runs}
    row["dgc"] = measure(res.spec, [obj], target, inputs, want, dgc_dir, runs)
    cref_dir = os.path.join(workdir, name, "cref")
    cobjs, cspec = build_cref(network, name, target, cref_dir)
    if network is not proto:
        want = reference(network, cspec, inputs)
    row["cref"] = measure(cspec, cobjs, target, inputs, want, cref_dir, runs)
    row["ratio"] = row["dgc"]["instructions"] / row["cref"]["instructions"]
    row["est_cycle_ratio"] = row["dgc"]["est_cycles"] / row["cref"]["est_cycles"]
    row["dgc_est_cycles_per_mac"] = row["dgc"]["est_cycles"] / row["macs"] if row["macs"] else None
    return row


HEADER = ("| model | MACs | dgc instructions | C-ref instructions | ratio dgc/C | dgc est. cycles "
          "| C est. cycles | dgc est. cycles/MAC | numerics ok |")


def table_row(r: dict) -> str:
    dgc_ok, c_ok = r["dgc"]["numerics_ok"], r["cref"]["numerics_ok"]
    ok = "yes" if dgc_ok and c_ok else f"dgc {'ok' if dgc_ok else 'FAIL'}, C {'ok' if c_ok else 'FAIL'}"
    per_mac = f"{r['dgc_est_cycles_per_mac']:.2f}" if r["dgc_est_cycles_per_mac"] else "-"
    return (f"| {r['model']} | {r['macs']:,} | {r['dgc']['instructions']:,} | "
            f"{r['cref']['instructions']:,} | {r['ratio']:.3f} | {r['dgc']['est_cycles']:,} | "
            f"{r['cref']['est_cycles']:,} | {per_mac} | {ok} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="lenet5,ds_cnn,resnet8", help="comma-separated zoo models; NAME_qdq for the int8 QDQ version")
    ap.add_argument("--target", default="cortex-m7", help="a Cortex-M target that QEMU runs")
    ap.add_argument("--json", help="also write every number to this JSON file")
    ap.add_argument("--runs", type=int, default=2, help="QEMU runs per program; counts must agree")
    ap.add_argument("--workdir", help="keep firmware, C sources and counts here (default: temporary)")
    args = ap.parse_args(argv)
    target = get_target(args.target)
    if target.runner != "qemu-system":
        ap.error(f"target {target.name} does not run under qemu-system-arm")
    rows = []
    with tempfile.TemporaryDirectory(prefix="dgc-bench-") as tmp:
        workdir = os.path.abspath(args.workdir or tmp)
        print(f"{target.name}: exact instruction counts in QEMU (identical over {args.runs} runs); "
              "est. cycles = llvm-mca estimate\n")
        print(HEADER)
        print("|---" * 9 + "|", flush=True)
        for name in args.models.split(","):
            rows.append(bench_model(name, target, workdir, args.runs))
            print(table_row(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if all(r["dgc"]["numerics_ok"] and r["cref"]["numerics_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
