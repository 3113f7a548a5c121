"""int8 SMLAD kernels (Cortex-M DSP cores): one register block and unroll count on every conv.

    python3 bench/dsp_unroll.py [--target cortex-m7] [--models ds_cnn_qdq,resnet8_qdq]
        [--blocks 2,2/2,2,16/4,2,16] [--unrolls 0,1,2,4,8,16] [--json out.json]

For each model (a zoo name ending in `_qdq` is its int8 QDQ version) and each (block, unroll):
every regular conv gets that block (P pixels x F filters[, 16: int16 weights]) and every conv
and depthwise conv that unroll count of its innermost loop (`dsp_kernels.UNROLLS`; 0: LLVM
decides, the default), given as a tuning database (`dgc compile --tuning-db`); the first row
is the defaults. Prints estimated cycles (llvm-mca of the exact instructions one run executes
in QEMU, as `dgc tune` counts) relative to the defaults, and the flash (code + weights) each
build takes: what the tuner's unroll dimension trades.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import dgc
from dgc.measure import count_models
from dgc.tuning import SCHEMA, TuningDB, target_key

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tuned import model_proto  # noqa: E402


def uniform_db(dsp_ops: list[dict], target, block: list[int] | None, unroll: int) -> TuningDB:
    """A database giving every conv `block` (depthwise convs keep theirs) and every op `unroll`."""
    best = {}
    for d in dsp_ops:
        dw = "depthwise" in d["linalg"]
        best[d["signature"]] = {"best": {"dsp_block": d["block"] if dw or block is None else block,
                                         "dsp_unroll": unroll}}
    return TuningDB(None, {"schema": SCHEMA, "targets": {target_key(target): best}})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="cortex-m7")
    ap.add_argument("--models", default="ds_cnn_qdq,resnet8_qdq")
    ap.add_argument("--blocks", default="2,2/2,2,16/4,2,16", help="conv blocks, '/'-separated")
    ap.add_argument("--unrolls", default="0,1,2,4,8,16")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    target = dgc.get_target(args.target)
    blocks = [[int(v) for v in b.split(",")] for b in args.blocks.split("/") if b]
    unrolls = [int(u) for u in args.unrolls.split(",")]
    rows = []
    print("| model | conv block | unroll | est. cycles | vs default | flash |")
    print("|---|---|--:|--:|--:|--:|")
    for name in [m for m in args.models.split(",") if m]:
        proto = model_proto(name)
        base = dgc.compile(proto, target, name="m")
        dsp_ops = json.loads(base.schedule).get("dsp", [])
        if not dsp_ops:
            raise SystemExit(f"{name}: no int8 SMLAD convs on {args.target} (an int8 model on a DSP core?)")
        builds = [("default", "-", base)] + [
            (",".join(map(str, b)), u, dgc.compile(proto, target, name="m", tuning_db=uniform_db(dsp_ops, target, b, u)))
            for b in blocks for u in unrolls]
        with tempfile.TemporaryDirectory(prefix="dgc-unroll-") as wd:
            objs = []
            for i, (_, _, res) in enumerate(builds):
                path = os.path.join(wd, f"v{i}.o")
                with open(path, "wb") as f:
                    f.write(res.object)
                objs.append((res.spec, path))
            cycles = [r["cycles"] for r in count_models(objs, target, wd)]
        for (block, unroll, res), c in zip(builds, cycles):
            row = {"model": name, "block": block, "unroll": unroll, "cycles": c, "vs_default": c / cycles[0],
                   "flash": res.footprint.get("flash")}
            rows.append(row)
            print(f"| {name} | {block} | {unroll} | {c:,.0f} | {row['vs_default']:.3f} | {row['flash']:,} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"target": args.target, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
