"""How well dgc's cost models rank schedules: Spearman rank correlation between predicted cost
and measured cost over the trials of tuning databases.

    dgc tune model.onnx --target host --trials 60 --db model.json
    python3 bench/predictor.py --target host model.json [more.json ...] [--min-trials 5]
        [--model analytic|mca|both]
    python3 bench/predictor.py --target host --fresh lenet5,ds_cnn,resnet8 [--candidates 12]
        [--repeat 3]

Models: `analytic` (dgc.predict: a register-block roofline, instant) and `mca` (dgc.predict_mca:
compiles every candidate alone and runs llvm-mca on its loops, ~1 s each). For every signature
with at least --min-trials measured candidates it prints the number of trials and rho per model
(measured cost: the whole model's time with that candidate, or its estimated cycles on
Cortex-M), then the mean rho over the convolution and matmul signatures (and, apart, over
poolings, which `--fresh` samples too) and, for mca, the seconds per prediction. Goal of the
auto-tuning work: rho >= 0.8. With --repeat N (x86) every signature's candidates are timed N
times and costed by the geometric mean; the first two runs' rank correlation says how well the
measurement reproduces itself (memory-bound ops whose candidates lie within a few percent of
each other rank by noise).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time

import dgc
from dgc.predict import predict, spearman
from dgc.tuning import target_key


def entry_of(sig: str) -> dict:
    """The op entry of a signature (`dgc.passes.schedule.signature`)."""
    linalg, loops, kinds, fuse, *rest = sig.split(":")
    entry = {"linalg": linalg, "loops": [int(x) for x in loops.split("x")], "kinds": kinds, "fuse": fuse == "fused"}
    window = [1, 1, 1, 1]
    for part in rest:
        if part[:1] in "sd" and part[1:2].isdigit():
            k = 0 if part[0] == "s" else 2
            window[k:k + 2] = [int(x) for x in part[1:].split("x")]
        elif re.fullmatch(r"(?:[if]\d+|index)(?:,(?:[if]\d+|index))*", part):  # element types
            entry["dtype"] = part
        else:
            entry["kernel"] = part
    if window != [1, 1, 1, 1]:
        entry["window"] = window
    return entry


def signatures(path: str, target, min_trials: int, match: str = ""):
    """(signature, entry, measured trials) of a database."""
    with open(path) as f:
        db = json.load(f)
    for sig, e in db["targets"].get(target_key(target), {}).items():
        trials = [t for t in e.get("trials", []) if "seconds" in t and "joint" not in t]  # joint: all convs
        if len(trials) >= min_trials and match in sig:
            yield sig, entry_of(sig), trials


def _mca_costs(entry, trials, target, stats):
    from dgc.predict_mca import predict_mca

    out = []
    for t in trials:
        t0 = time.perf_counter()
        try:
            out.append(predict_mca(entry, t["schedule"], target))
        except Exception as e:  # noqa: BLE001 - one candidate the model cannot take: report, rank last
            print(f"  mca failed for {entry['linalg']} {t['schedule']}: {e}", file=sys.stderr)
            out.append(float("inf"))
        stats.append(time.perf_counter() - t0)
    return out


def fresh_samples(models: list[str], target, per_sig: int, seed: int, match: str = "", repeat: int = 1,
                  retest: list | None = None):
    """(signature, entry, trials) for every conv/matmul/pooling signature of the zoo `models`: the
    default and per_sig - 1 candidates in seed order, each compiled as the op alone
    (`dgc.predict_mca.one_op_model`) and costed on its own: x86 times of all of a signature's
    candidates in one interleaved run (the op is the whole measured time, so the noise of
    whole-model times does not drown it), QEMU targets the estimated cycles of the exact count.
    x86 with repeat > 1: that run `repeat` times, each candidate's cost the geometric mean of
    its times, and each signature's rank correlation between the first two runs appended to
    `retest` (how far the measurement itself reproduces its own ranking)."""
    import random
    import tempfile

    import onnx

    from dgc import zoo
    from dgc.measure import count_models, time_models
    from dgc.passes.schedule import entry_signature
    from dgc.predict_mca import KEY, one_op_model
    from dgc.tuning import candidates

    seen = set()
    for name in models:
        model = onnx.load(name) if name.endswith(".onnx") else zoo.build(name)
        ops = json.loads(dgc.compile(model, target, name="m").schedule)["ops"]
        for op in ops:
            sig = entry_signature(op)
            if sig in seen or match not in sig or not ("conv" in sig or "matmul" in sig or "pooling" in sig):
                continue
            seen.add(sig)
            try:
                model = one_op_model(op)
            except ValueError:
                continue
            space = candidates(op, target, random.Random(seed))[:per_sig]
            built, trials = [], []
            with tempfile.TemporaryDirectory(prefix="dgc-pred-") as wd:
                for i, c in enumerate(space):
                    try:
                        res = dgc.compile(model, target, name=f"c{i}", ram_limit=None, flash_limit=None,
                                          schedule=[{"key": KEY, **c, "fuse": op["fuse"]}])
                    except dgc.DgcError as e:
                        print(f"  {sig}: candidate {c} does not compile alone: {e}", file=sys.stderr)
                        continue
                    obj = f"{wd}/c{i}.o"
                    with open(obj, "wb") as f:
                        f.write(res.object)
                    built.append((res.spec, obj))
                    trials.append({"schedule": c})
                if target.runner == "host":
                    runs = [time_models(built, target, wd, samples=21) for _ in range(max(1, repeat))]
                    costs = [math.prod(r[i] for r in runs) ** (1 / len(runs)) for i in range(len(built))]
                    if len(runs) > 1 and retest is not None and len(built) >= 2:
                        retest.append(spearman(runs[0], runs[1]))
                else:
                    costs = [r["cycles"] for r in count_models(built, target, wd)]
            for t, c in zip(trials, costs):
                t["seconds"] = c
            yield sig, op, trials


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dbs", nargs="*")
    ap.add_argument("--fresh", default="", help="instead of databases: zoo models (or .onnx files) whose conv/matmul "
                    "ops are sampled and costed alone now, e.g. --fresh lenet5,ds_cnn,resnet8")
    ap.add_argument("--candidates", type=int, default=12, help="--fresh: candidates per signature")
    ap.add_argument("--seed", type=int, default=0, help="--fresh: candidate sample seed")
    ap.add_argument("--repeat", type=int, default=1, help="--fresh on x86: time each signature's candidates this "
                    "many times (geometric mean), and print how well the first two runs rank alike")
    ap.add_argument("--save", default=None, help="--fresh: also write the costed samples as a tuning-database "
                    "JSON, to evaluate again (or other models) without measuring")
    ap.add_argument("--target", default="host")
    ap.add_argument("--min-trials", type=int, default=5)
    ap.add_argument("--model", choices=("analytic", "mca", "both"), default="analytic")
    ap.add_argument("--match", default="", help="only signatures containing this text")
    args = ap.parse_args(argv)
    target = dgc.get_target(args.target)
    models = ("analytic", "mca") if args.model == "both" else (args.model,)
    found, stats, saved, retest = [], [], {}, []
    print("| signature | trials | " + " | ".join(f"rho {m}" for m in models) + " |\n|---|--:|"
          + "--:|" * len(models), flush=True)
    sources = [signatures(path, target, args.min_trials, args.match) for path in args.dbs]
    if args.fresh:
        sources.append(fresh_samples([m for m in args.fresh.split(",") if m], target, args.candidates, args.seed,
                                     args.match, args.repeat, retest))
    for source in sources:
        for sig, entry, trials in source:
            if args.save and source is sources[-1] and args.fresh:
                saved[sig] = {"trials": trials}
            if len(trials) < args.min_trials:
                continue
            measured = [t["seconds"] for t in trials]
            rhos = []
            for m in models:
                pred = [predict(entry, t["schedule"], target) for t in trials] if m == "analytic" \
                    else _mca_costs(entry, trials, target, stats)
                rhos.append(spearman(pred, measured))
            found.append((sig, rhos))
            print(f"| {sig} | {len(trials)} | " + " | ".join(f"{r:.3f}" for r in rhos) + " |", flush=True)
    for what, ops in (("conv/matmul", [rhos for sig, rhos in found if "conv" in sig or "matmul" in sig]),
                      ("pooling", [rhos for sig, rhos in found if "pooling" in sig])):
        if ops:
            means = ", ".join(f"{m} {sum(r[i] for r in ops) / len(ops):.3f}" for i, m in enumerate(models))
            print(f"mean rho over {len(ops)} {what} signatures: {means}")
    if retest:
        print(f"measurement test-retest: mean rho {sum(retest) / len(retest):.3f} between two timing runs "
              f"over {len(retest)} signatures")
    if args.save:
        from dgc.tuning import SCHEMA, TuningDB

        TuningDB(args.save, {"schema": SCHEMA, "targets": {target_key(target): saved}}).save()
    if stats:
        print(f"mca: {len(stats)} predictions, {sum(stats) / len(stats):.2f} s each "
              f"(cache hits included), {sum(stats):.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
