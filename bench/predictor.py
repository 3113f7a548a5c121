"""How well dgc's cost model (dgc.predict) ranks schedules: Spearman rank correlation between
predicted cost and measured cost over the trials of tuning databases.

    dgc tune model.onnx --target host --trials 60 --db model.json
    python3 bench/predictor.py --target host model.json [more.json ...] [--min-trials 5]

For every signature with at least --min-trials measured candidates it prints the number of
trials and rho (measured cost: the whole model's time with that candidate, or its estimated
cycles on Cortex-M), then the mean rho over the convolution and matmul signatures.
Goal of the auto-tuning work: rho >= 0.8.
"""

from __future__ import annotations

import argparse
import json

import dgc
from dgc.predict import predict, spearman
from dgc.tuning import target_key


def rows(path: str, target, min_trials: int):
    with open(path) as f:
        db = json.load(f)
    for sig, e in db["targets"].get(target_key(target), {}).items():
        trials = [t for t in e.get("trials", []) if "seconds" in t]
        if len(trials) < min_trials:
            continue
        linalg, loops, kinds, _ = sig.split(":")
        entry = {"linalg": linalg, "loops": [int(x) for x in loops.split("x")], "kinds": kinds}
        rho = spearman([predict(entry, t["schedule"], target) for t in trials], [t["seconds"] for t in trials])
        yield sig, len(trials), rho


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dbs", nargs="+")
    ap.add_argument("--target", default="host")
    ap.add_argument("--min-trials", type=int, default=5)
    args = ap.parse_args(argv)
    target = dgc.get_target(args.target)
    found = [r for path in args.dbs for r in rows(path, target, args.min_trials)]
    print("| signature | trials | rho |\n|---|--:|--:|")
    for sig, n, rho in found:
        print(f"| {sig} | {n} | {rho:.3f} |")
    ops = [rho for sig, _, rho in found if "conv" in sig or "matmul" in sig]
    if ops:
        print(f"mean rho over {len(ops)} conv/matmul signatures: {sum(ops) / len(ops):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
