"""Compile time per zoo model and target (wall clock, one process, this machine).

    python3 bench/compile_time.py [--targets host,cortex-m7] [--models lenet5,resnet18]

Prints a Markdown table: seconds per compile, object size, arena size.
"""

from __future__ import annotations

import argparse
import time

import dgc
from dgc import zoo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--targets", default="host,cortex-m7")
    ap.add_argument("--models", default=",".join(zoo.MODELS))
    args = ap.parse_args()
    targets = args.targets.split(",")
    print("| model | " + " | ".join(f"{t} s | {t} object B | {t} arena B" for t in targets) + " |")
    print("|---" * (1 + 3 * len(targets)) + "|")
    for name in args.models.split(","):
        proto = zoo.build(name)
        cells = []
        for t in targets:
            t0 = time.perf_counter()
            res = dgc.compile(proto, t, name=name)
            cells += [f"{time.perf_counter() - t0:.1f}", str(len(res.object)), str(res.arena_size)]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
