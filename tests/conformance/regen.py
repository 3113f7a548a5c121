"""Regenerate tests/conformance/expected_<target>.toml from a run (a developer tool).

    python3 tests/conformance/regen.py host [--suite core]

Every case that does not pass is written with its reason; cases whose tensors use float8,
4-/2-bit or string types are listed under [excluded] (dgc rejects those types with a clear
error and they do not count in the pass rate), the others under [gaps].
"""

from __future__ import annotations

import os
import re
import sys

from dgc import conformance as conf

_EXCLUDED = re.compile(r"type (float8\w*|int4|uint4|int2|uint2|float4\w*|object|string)\b")


def main(target: str = "host", suite: str = "core") -> None:
    cases = conf.core_cases(expanded=(suite == "expanded"))
    results = conf.run_cases(cases, target, jobs=os.cpu_count() or 1)
    excluded, gaps = [], []
    for r in results:
        if r.status == "pass":
            continue
        reason = r.detail.replace("\\", "/").replace('"', "'")
        reason = re.sub(r"/tmp/\S+", "<tmp>", reason)[:240]
        (excluded if _EXCLUDED.search(r.detail) else gaps).append((r.name, f"{r.status}: {reason}"))
    passed = sum(r.status == "pass" for r in results)
    path = os.path.join(os.path.dirname(__file__), f"expected_{target}_{suite}.toml")
    with open(path, "w") as f:
        f.write(f"# {suite} ONNX node tests on {target}: {passed} of {len(results)} pass, "
                f"{len(excluded)} excluded (exotic types), {len(gaps)} gaps.\n"
                "# Regenerate with: python3 tests/conformance/regen.py " + f"{target} --suite {suite}\n\n")
        for title, rows in (("excluded", excluded), ("gaps", gaps)):
            f.write(f"[{title}]\n")
            for name, why in rows:
                f.write(f'{name} = "{why}"\n')
            f.write("\n")
    print(f"{path}: {passed}/{len(results)} pass, {len(excluded)} excluded, {len(gaps)} gaps")


if __name__ == "__main__":
    args = sys.argv[1:]
    suite = "core"
    if "--suite" in args:
        i = args.index("--suite")
        suite = args[i + 1]
        del args[i:i + 2]
    main(*(args or ["host"]), suite=suite)
