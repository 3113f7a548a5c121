"""The tuning database and the schedule space `dgc tune` searches.

Database (JSON, schema "dgc-tuning/1"), keyed by target and op signature
(`dgc.passes.schedule.signature`: Linalg op, loop ranges, loop kinds, fused tail or not,
":s2x2" / ":d2x2" for windowed ops of strides / dilations other than 1, and the element types
when any is not f32, e.g. ":i8,i32"):

    {"schema": "dgc-tuning/1",
     "targets": {"host-znver4": {
        "linalg.conv_2d_nhwc_hwcf:1x28x28x64x3x3x32:pppprrr:fused": {
            "best": {"tile": [...], "reduce": [...], "outer": [...], "vectorize": true},
            "speedup": 1.18,          # model time with the default / with best, same run
            "dgc": "0.1.0", "model": "resnet8.onnx",
            "trials": [{"schedule": {...}, "seconds": 0.00041, "incumbent": 0.00046}, ...]}}}}

`best` is only present when a candidate beat the default; `trials` keeps every measured
candidate, so an interrupted `dgc tune` resumes without measuring them again. The target key
is the target name, with the CPU for `host` (`host-znver4`): a database tuned on one machine
says nothing about another. `dgc compile --tuning-db` applies `best` of every signature the
database holds for the target; other ops keep the default heuristics.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import tempfile

from dgc.errors import UsageError, read_json_file

SCHEMA = "dgc-tuning/1"
FIELDS = ("tile", "reduce", "outer", "order", "vectorize")


def target_key(target) -> str:
    return f"host-{target.cpu}" if target.name == "host" else target.name


def dgc_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dgc")
    except PackageNotFoundError:
        return "unknown"


@dataclasses.dataclass
class TuningDB:
    path: str | None
    data: dict

    @classmethod
    def load(cls, path: str | os.PathLike | None, must_exist: bool = False) -> "TuningDB":
        if path is None or (not os.path.exists(path) and not must_exist):
            return cls(None if path is None else os.fspath(path), {"schema": SCHEMA, "targets": {}})
        where = f"tuning database '{path}'"
        data = read_json_file(path, where, hint="write it with `dgc tune --db FILE`")
        if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("targets"), dict):
            raise UsageError(f"{where} is not a dgc tuning database (schema {SCHEMA})",
                             hint="write it with `dgc tune --db FILE`")
        return cls(os.fspath(path), data)

    def entries(self, target) -> dict:
        return self.data["targets"].setdefault(target_key(target), {})

    def schedules(self, target) -> dict:
        """signature -> schedule fields of the best candidate, for the compiler."""
        out = {}
        for sig, e in self.data["targets"].get(target_key(target), {}).items():
            best = e.get("best") if isinstance(e, dict) else None
            if isinstance(best, dict):
                out[sig] = {k: v for k, v in best.items() if k in FIELDS or k in ("dsp_block", "dsp_unroll")}
        return out

    def save(self) -> None:
        """Atomically (temp file + rename): an interrupted tuner never leaves half a file. A
        path that cannot be written raises UsageError."""
        self._write(json.dumps(self.data, indent=1, sort_keys=True) + "\n")

    def check_writable(self) -> None:
        """UsageError now if `save` could not write the database; writes nothing."""
        self._write(None)

    def _write(self, text: str | None) -> None:
        if self.path is None:
            return
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(self.path)), prefix=".dgc-tuning-")
            with os.fdopen(fd, "w") as f:
                f.write(text or "")
            if text is not None:
                os.replace(tmp, self.path)
                tmp = None
        except OSError as e:
            raise UsageError(f"cannot write tuning database '{self.path}': {e.strerror or e}", where="--db",
                             hint="give a --db path in a writable directory") from None
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)


# ---- the schedule space ------------------------------------------------------------------

def _divisors(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def _widths(dim: int, lanes: int, regs: int) -> list[int]:
    """Vector widths for an innermost dimension: one to 8 whole registers dividing it (a part
    register would be a partial vector every step; rows of 3 or 5 registers are carried as
    3 or 5 vectors, see `schedule._split_carried`), or all of a short dimension."""
    if dim <= lanes:
        return [dim]
    out = [lanes * k for k in range(1, 9) if k <= regs and dim % (lanes * k) == 0]
    return out or [d for d in _divisors(dim, lanes)][-1:]


def candidates(entry: dict, target, rng: random.Random, limit: int = 400) -> list[dict]:
    """Schedules to try for the op `entry` (an item of `--dump-schedule`): the default first,
    then the register blocks (rows x vector widths within the register file), reduction steps
    (input channels per step; one window column or the whole window row unrolled), cache
    blocks around them that keep every tile a divisor of its loop, and loop orders of convs
    and matmuls (output channels innermost, outermost, or per image row), in random order."""
    if "space" in entry:  # an int8 conv of the SMLAD kernels (the "dsp" list): register blocks x unroll counts
        unrolls = entry.get("unrolls", [0])
        pairs = [(b, u) for b in entry["space"] for u in unrolls][1:]
        rest = [{"dsp_block": list(b), "dsp_unroll": u} for b, u in pairs]
        rng.shuffle(rest)
        return [{"dsp_block": list(entry["space"][0]), "dsp_unroll": unrolls[0]}] + rest[:limit]
    loops, kinds, linalg = entry["loops"], entry["kinds"], entry["linalg"]
    natural = [i for i, k in enumerate(kinds) if k == "p"]
    default = {k: entry.get(k, natural) for k in FIELDS}
    lanes = max(1, target.vector_bits // 32)
    regs = max(2, target.vector_regs - 2)
    found: list[dict] = []

    def add(tile, reduce, outer, cols=None):
        """The candidate in the natural loop order and, when the column (output channel)
        loop runs more than once, with it outermost and, for convs, between the image rows
        and the row's pixel blocks: the weight tile stays in cache while the pixels go by."""
        orders = [natural]
        within = [o or d for o, d in zip(outer, loops)]
        if cols is not None and within[cols] > tile[cols] and \
                any(within[i] > max(1, tile[i]) for i in natural if i != cols):
            rest = [i for i in natural if i != cols]
            orders.append([cols, *rest])
            if linalg.startswith("linalg.conv_2d") and within[1] > 1:
                orders.append([*rest[:2], cols, *rest[2:]])
        for order in orders:
            c = {"tile": tile, "reduce": reduce, "outer": outer, "order": order, "vectorize": True}
            if c != default and c not in found:
                found.append(c)

    p = [i for i, k in enumerate(kinds) if k == "p"]
    from dgc.passes.schedule import row_reduction

    if row_reduction(entry):  # one row per tile: the whole row, or chunks of 1, 2, 4, 8 vectors
        n = loops[-1]
        for chunk in [0] * (n <= 16 * lanes) + [lanes * k for k in (1, 2, 4, 8) if n % (lanes * k) == 0 and lanes * k < n]:
            add([1] * (len(loops) - 1) + [0], [0] * (len(loops) - 1) + [chunk], [0] * len(loops))
    elif linalg.startswith(("linalg.conv_2d", "linalg.depthwise", "linalg.pooling")):
        row, col = 2, 3  # (n, oh, ow, c|f, kh, kw[, c])
        red_steps = [1]
        if len(loops) == 7:
            red_steps = [s for s in (1, 2, 4) if loops[6] % s == 0]
        kw_steps = sorted({1, loops[5]})  # one window column per step, or the whole row unrolled
        for w in _widths(loops[col], lanes, regs):
            vecs = -(-w // lanes)
            for r in _divisors(loops[row], max(1, regs // vecs)):
                tile = [1, 1, r, w] + [0] * (len(loops) - 4)
                outers = [0]
                if len(loops) == 7:
                    outers += [m for m in range(2 * w, loops[col], w) if loops[col] % m == 0][:4]
                for s, kw in ((s, kw) for s in red_steps for kw in kw_steps):
                    red = [0, 0, 0, 0, 1, kw] + ([s] if len(loops) == 7 else [])
                    for o in outers:
                        outer = [0] * len(loops)
                        outer[col] = o
                        add(tile, red, outer, col if len(loops) == 7 else None)
    elif len(p) >= 2 and "r" in kinds:  # matmul-like: (..., m, n, k)
        m, n = p[-2], p[-1]
        for w in _widths(loops[n], lanes, regs):
            vecs = -(-w // lanes)
            for r in _divisors(loops[m], max(1, regs // vecs)):
                tile = [1 if k == "p" else 0 for k in kinds]
                tile[m], tile[n] = r, w
                add(tile, [1 if k == "r" else 0 for k in kinds], [0] * len(loops), n)
    elif kinds and kinds[-1] == "p" and "r" not in kinds and linalg == "linalg.generic":
        for w in (lanes * k for k in (1, 2, 4, 8)):
            if loops[-1] % w == 0:
                add([1] * (len(loops) - 1) + [w], [0] * len(loops), [0] * len(loops))
    rng.shuffle(found)
    return [default] + found[:limit]
