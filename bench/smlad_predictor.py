"""How well the int8 SMLAD cycle model (dgc.predict.smlad_cycles) ranks the choices of each conv.

    python3 bench/smlad_predictor.py [--target cortex-m7] [--models mobilenet_v1_025_qdq]
        [--per-op 10] [--seed 1] [--json out.json]

For each int8 SMLAD conv signature of each model (a zoo name ending in `_qdq` is its int8 QDQ
version; depthwise convs have no cycle model, `predict.dw_unroll_choice` is a rule), `--per-op`
choices (register block, unroll count) are drawn from its space with `--seed`; each is applied
to that signature alone (a tuning database) and the whole model's cycles are counted in QEMU
(llvm-mca of the exact instructions executed, as `dgc tune` measures; the other ops keep their
defaults, so the differences are the op's). Prints, per signature, Spearman's rank correlation
between the predicted cycles of the op's K loops and the measured cycles of the model, and their
mean. The model has two constants (predict.LLVM_CPI, BLOCK_CYCLES) taken from ResNet-8 int8; the
default model here, MobileNet v1 0.25 (MLPerf Tiny VWW), is held out from them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile

import dgc
from dgc.measure import count_models
from dgc.predict import smlad_cycles_many, spearman
from dgc.tuning import SCHEMA, TuningDB, target_key

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tuned import model_proto  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="cortex-m7")
    ap.add_argument("--models", default="mobilenet_v1_025_qdq")
    ap.add_argument("--per-op", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    target = dgc.get_target(args.target)
    rng = random.Random(args.seed)
    rows = []
    print("| model | signature | choices | Spearman |")
    print("|---|---|--:|--:|")
    with tempfile.TemporaryDirectory() as wd:
        for name in [m for m in args.models.split(",") if m]:
            proto = model_proto(name)
            ops = json.loads(dgc.compile(proto, target, name="m").schedule).get("dsp", [])
            seen = set()
            for d in ops:
                if "depthwise" in d["linalg"] or d["signature"] in seen:
                    continue
                seen.add(d["signature"])
                space = [{"dsp_block": b, "dsp_unroll": u} for b in d["space"] for u in d["unrolls"]]
                choices = rng.sample(space, min(args.per_op, len(space)))
                measured = []
                for c in choices:
                    db = TuningDB(None, {"schema": SCHEMA, "targets": {target_key(target): {d["signature"]: {"best": c}}}})
                    res = dgc.compile(proto, target, name="m", tuning_db=db)
                    obj = os.path.join(wd, "m.o")
                    with open(obj, "wb") as f:
                        f.write(res.object)
                    measured.append(count_models([(res.spec, obj)], target, wd)[0]["cycles"])
                predicted = smlad_cycles_many(d["loops"], choices)
                rho = spearman(predicted, measured)
                rows.append({"model": name, "signature": d["signature"], "choices": choices,
                             "predicted": predicted, "measured": measured, "spearman": rho})
                print(f"| {name} | {d['signature']} | {len(choices)} | {rho:.3f} |", flush=True)
    mean = sum(r["spearman"] for r in rows) / len(rows)
    print(f"\nmean Spearman over {len(rows)} signatures: {mean:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
