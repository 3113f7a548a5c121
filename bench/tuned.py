"""Default vs `--predict` vs tuned schedules of zoo models, measured in one run per model.

    python3 bench/tuned.py --target host --models lenet5,ds_cnn,resnet8 --trials 40 \
        [--db-dir tuned/] [--seed 0] [--json out.json]
    python3 bench/tuned.py --target cortex-m7 --models ds_cnn,resnet8,ds_cnn_qdq,resnet8_qdq

For each model: `dgc tune` with --trials into DB_DIR/<model>.<target>.json (a database already
there is resumed: trials it holds are not measured again), then three compiles - default
heuristics, `predict=True` (the cost model's pick, nothing run) and `tuning_db=` that database -
measured together: on x86 in one child process, interleaved (`dgc.measure.time_models`,
medians); on Cortex-M, the llvm-mca cycle estimate of the exact instructions one run executes
in QEMU (`dgc.measure.count_models`). Prints a table (speedups are default / variant) and the
geometric means; `predict/tuned` is the cost of the predicted schedules relative to the tuned
(goal: <= 1.15); the last column is the flash (code + weights, bytes) of the default and the
tuned object (tuned int8 kernels may unroll loops and store int16 weights). On x86 the default
object is timed twice in the same run ("default again": the spread of the measurement itself),
and the whole run is repeated `--rounds` times (3) in fresh child processes: every ratio is
the median of the rounds' (one run on a shared machine was seen 23% off),
and a variant whose object is the default's, byte for byte, is marked (=). A name ending in `_qdq` is the int8 QDQ version of the zoo model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile

import dgc
from dgc import zoo
from dgc.measure import count_models, median_of_runs, time_models
from dgc.tune import tune


def model_proto(name: str):
    if name.endswith("_qdq"):
        from dgc.zoo import quantized

        return quantized.qdq(name[:-4])
    return zoo.build(name)


def measure(name: str, target, db: str, workdir: str, samples: int, rounds: int) -> dict:
    proto = model_proto(name)
    variants = {"default": {}, "predict": {"predict": True}, "tuned": {"tuning_db": db}}
    objs, spec, flash, code = [], None, {}, {}
    os.makedirs(workdir, exist_ok=True)
    for v, kw in variants.items():
        res = dgc.compile(proto, target, name=name, **kw)
        flash[v], code[v] = res.footprint.get("flash"), res.object
        path = os.path.join(workdir, f"{name}.{v}.o")
        with open(path, "wb") as f:
            f.write(res.object)
        objs.append(path)
        spec = res.spec
    if target.runner == "host":
        # the default twice (two libraries, same bytes): how far apart the same object times in this run;
        # `rounds` independent runs (child processes), each variant's time the median of its
        # per-round ratios to the default times the default's median time
        *costs, again = median_of_runs([time_models([(spec, o) for o in objs + objs[:1]], target, workdir,
                                                    samples=samples) for _ in range(rounds)])
        noise, unit = again / costs[0], "s"
    else:
        costs, unit = [r["cycles"] for r in count_models([(spec, o) for o in objs], target, workdir)], "cycles"
        noise = 1.0  # exact counts
    row = dict(zip(variants, costs))
    row.update(model=name, unit=unit, tuned_speedup=row["default"] / row["tuned"],
               predict_speedup=row["default"] / row["predict"], predict_vs_tuned=row["predict"] / row["tuned"],
               flash=flash, default_again=noise,
               same_as_default=[v for v in ("predict", "tuned") if code[v] == code["default"]])
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="host")
    ap.add_argument("--models", default="lenet5,ds_cnn,resnet8,mobilenet_v1_025,fc_autoencoder,tiny_bert")
    ap.add_argument("--trials", type=int, default=40, help="dgc tune --trials per model (0: use the database as is)")
    ap.add_argument("--db-dir", default=None, help="where the tuning databases are kept (default: a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--order", choices=("predicted", "seed"), default="predicted", help="dgc tune --order")
    ap.add_argument("--samples", type=int, default=31, help="x86: timing rounds per measurement")
    ap.add_argument("--rounds", type=int, default=3,
                    help="x86: independent timing runs; each speedup is the median of the runs' ratios")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.samples < 1:
        ap.error("--rounds and --samples must be at least 1")
    target = dgc.get_target(args.target)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dgc-tuned-") as tmp:
        db_dir = args.db_dir or tmp
        os.makedirs(db_dir, exist_ok=True)
        for name in [m for m in args.models.split(",") if m]:
            db = os.path.join(db_dir, f"{name}.{args.target}.json")
            if args.trials:
                path = os.path.join(tmp, f"{name}.onnx")
                import onnx

                onnx.save(model_proto(name), path)
                tune(path, target, trials=args.trials, db_path=db, seed=args.seed, progress=False, order=args.order)
            row = measure(name, target, db, os.path.join(tmp, name), args.samples, args.rounds)
            print(f"{name}: tuned x{row['tuned_speedup']:.3f}, predict x{row['predict_speedup']:.3f}, "
                  f"default again x{1 / row['default_again']:.3f}", file=sys.stderr, flush=True)
            rows.append(row)
    geo = {k: math.exp(statistics.fmean(math.log(r[k]) for r in rows))
           for k in ("tuned_speedup", "predict_speedup", "predict_vs_tuned")} if rows else {}
    unit = rows[0]["unit"] if rows else ""
    print(f"target {args.target}; cost = {'median seconds per run' if unit == 's' else 'estimated cycles'}; "
          f"dgc tune --trials {args.trials} --seed {args.seed} --order {args.order}"
          + (f"; x86 ratios: medians of {args.rounds} independent runs" if unit == "s" else ""))
    print("\n| model | default | predict | tuned | tuned speedup | predict speedup | predict/tuned | "
          "default again | flash default / tuned |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    fmt = (lambda x: f"{x * 1e3:.4g} ms") if unit == "s" else (lambda x: f"{x:,.0f}")
    for r in rows:
        same = {v: " (=)" if v in r["same_as_default"] else "" for v in ("predict", "tuned")}
        print(f"| {r['model']} | {fmt(r['default'])} | {fmt(r['predict'])} | {fmt(r['tuned'])} | "
              f"x{r['tuned_speedup']:.3f}{same['tuned']} | x{r['predict_speedup']:.3f}{same['predict']} | "
              f"{r['predict_vs_tuned']:.3f} | x{1 / r['default_again']:.3f} | "
              f"{r['flash']['default']:,} / {r['flash']['tuned']:,} B |")
    if geo:
        print(f"| geomean | | | | x{geo['tuned_speedup']:.3f} | x{geo['predict_speedup']:.3f} | "
              f"{geo['predict_vs_tuned']:.3f} | | |")
    print("\n(=): the same object as the default, byte for byte; default again: the default's object timed "
          "a second time in the same run, as its own library (the measurement's own spread)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"target": args.target, "trials": args.trials, "seed": args.seed, "models": rows,
                       "geomean": geo}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
