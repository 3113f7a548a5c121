"""Depthwise conv register blocks: every candidate block of each depthwise conv of zoo models,
costed alone, against the default and the conv heuristic the default used before.

    python3 bench/dw_blocks.py --target cortex-a53 --models mobilenet_v2,mobilenet_v1_025
    python3 bench/dw_blocks.py --target host --models mobilenet_v1_025 [--json out.json]

For each distinct depthwise signature: the op alone (`dgc.predict_mca.one_op_model`, with its
strides) compiled with every register block of the tuning space (rows dividing the output
width x vector widths, one window column per step), costed like `bench/predictor.py --fresh`
(QEMU targets: estimated cycles of the exact count; host: interleaved median times). It prints
each block choice's cost relative to the best block: the default (`dgc.passes.schedule`), the
conv heuristic `_block` (the depthwise default before 2026-12-06) and the cost model's
cheapest (`dgc.predict`), then their geometric means.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile

import dgc
from dgc import zoo
from dgc.measure import count_models, time_models
from dgc.passes import schedule as S
from dgc.predict import predict
from dgc.predict_mca import KEY, one_op_model


def costs(op: dict, blocks: list[tuple[int, int]], target) -> list[float]:
    model = one_op_model(op)
    with tempfile.TemporaryDirectory(prefix="dgc-dw-") as wd:
        built = []
        for i, (r, w) in enumerate(blocks):
            res = dgc.compile(model, target, name=f"c{i}", ram_limit=None, flash_limit=None,
                              schedule=[{"key": KEY, **S.depthwise_block_schedule(r, w), "fuse": op["fuse"]}])
            path = f"{wd}/c{i}.o"
            with open(path, "wb") as f:
                f.write(res.object)
            built.append((res.spec, path))
        if target.runner == "host":
            return time_models(built, target, wd, samples=21)
        return [c["cycles"] for c in count_models(built, target, wd)]


def rows(models: list[str], target):
    seen = set()
    for name in models:
        ops = json.loads(dgc.compile(zoo.build(name), target, name="m").schedule)["ops"]
        for op in ops:
            sig = S.entry_signature(op)
            if op["linalg"] != "linalg.depthwise_conv_2d_nhwc_hwc" or sig in seen:
                continue
            seen.add(sig)
            blocks = S.depthwise_blocks(target, op["loops"])
            cost = costs(op, blocks, target)
            best = min(cost)
            old = S._block(target, op["loops"][2], op["loops"][3])
            pick = min(blocks, key=lambda b: (predict(op, S.depthwise_block_schedule(*b), target), -b[0], b[1]))

            def rel(b):
                return cost[blocks.index(tuple(b))] / best if tuple(b) in blocks else None

            yield {"signature": sig, "best": list(blocks[cost.index(best)]), "default": op["tile"][2:4],
                   "default_rel": rel(op["tile"][2:4]), "old": list(old), "old_rel": rel(old), "model": list(pick),
                   "model_rel": rel(pick)}


def _geo(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="host")
    ap.add_argument("--models", default="mobilenet_v1_025")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    target = dgc.get_target(args.target)
    unit = "median seconds" if target.runner == "host" else "estimated cycles"
    print(f"target {target.name}; cost = {unit} of the op alone, relative to its best block\n")
    print("| signature | best | default | x | old heuristic | x | model | x |\n|---|---|---|--:|---|--:|---|--:|")
    found = []
    for row in rows([m for m in args.models.split(",") if m], target):
        found.append(row)
        fmt = [f"{row[k]:.3f}" if row[k] is not None else "-" for k in ("default_rel", "old_rel", "model_rel")]
        print(f"| {row['signature'].split(':', 1)[1]} | {row['best']} | {row['default']} | {fmt[0]} | "
              f"{row['old']} | {fmt[1]} | {row['model']} | {fmt[2]} |", flush=True)
    means = {k: _geo([r[k] for r in found if r[k] is not None]) for k in ("default_rel", "old_rel", "model_rel")}
    print(f"\ngeomean over {len(found)}: default {means['default_rel']:.3f}, old heuristic {means['old_rel']:.3f}, "
          f"model {means['model_rel']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"target": target.name, "rows": found, "geomean": means}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
