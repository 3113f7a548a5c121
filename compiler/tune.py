"""`dgc tune`: search each op signature's schedule space by compiling and executing the model.

For every distinct op signature of the model (`dgc.passes.schedule.signature`: identical
layers are tuned once) the tuner tries schedules from `dgc.tuning.candidates` - the default
first, then the cost model's most promising (`search_order`: `dgc.predict.rank`, every 4th
candidate in seed order instead, for what the model misjudges; the int8 SMLAD kernels of
Cortex-M DSP cores, which have no cost model, are searched coordinate-wise instead: first the
default's neighbours (its block with other unroll counts, then its unroll count with other
blocks), and after each round of ROUND candidates that improved on the best, the new best's,
`neighbours_first`) - and keeps one only when the whole model with it runs faster than with the current
best, both timed in the same child process (`dgc.measure`: interleaved batches, medians),
by at least 3% (0.1% for exact QEMU counts), confirmed by a second independent run (the candidate's slower time against
the incumbent's faster one: noise on a shared machine must not choose). Each candidate compiles in a child process too
(`compile_contained`), so a crash in MLIR/LLVM or in the generated code only loses that
candidate. Trials (or the --budget's time) are spread over the signatures by their share of
the model's estimated cost (`estimated_cost`: the cost model's cycles of each op with its
default schedule, summed over the signature's ops), costliest first.

Every trial is written to the database as soon as it is measured (`TuningDB.save`, atomic):
Ctrl-C loses at most the running trial and a new run resumes where it stopped. Entries another
dgc version measured (their "dgc" field) are tuned again from scratch: their times and best
schedule were for other code. At the end
the default and the tuned model are timed again in one run (on x86 three independent runs, the
median of their ratios); if the tuned one is not faster,
this run's choices are dropped (the database keeps the trials): tuning never makes a model
slower. Candidate order is reproducible (`seed`).

Costs: on x86 targets this machine executes, seconds per run (measured); on Cortex-M targets
(qemu-system) and AArch64/ARMv7-A Linux targets (qemu-user), the llvm-mca cycle estimate of
the exact instructions one run executes in QEMU (`dgc.measure.count_models`; deterministic,
so no confirmation run).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import tempfile
import time

from dgc.errors import DgcError, UsageError
from dgc.spec import ModelSpec
from dgc.targets import get_target, host_can_run

from .predict import predict
from .tuning import SCHEMA, TuningDB, candidates, dgc_version, target_key

MARGIN = 0.97  # a timed candidate must be >= 3% faster than the incumbent to replace it
EXACT_MARGIN = 0.999  # one counted in QEMU (no noise): >= 0.1% fewer estimated cycles
VERDICT_RUNS = 3  # independent timing runs of default against tuned at the end (x86)


@dataclasses.dataclass
class SignatureResult:
    signature: str
    ops: int
    share: float  # of the model's estimated cost (estimated_cost)
    trials: int  # measured in this run
    speedup: float  # product of the accepted trials' measured gains (whole model, incumbent / new)


@dataclasses.dataclass
class TuneReport:
    target: str
    default_s: float
    tuned_s: float
    signatures: list[SignatureResult]
    kept: bool  # False: the tuned model was not faster, this run's choices were dropped
    unit: str = "s"  # of default_s / tuned_s: "s" (x86) or "cycles" (Cortex-M, estimated)

    @property
    def speedup(self) -> float:
        return self.default_s / self.tuned_s if self.tuned_s else 1.0


def estimated_cost(op: dict, target) -> float:
    """Cycles the cost model (dgc.predict) expects of the op `op` (an item of `--dump-schedule`)
    with its default schedule: what decides its share of the tuning budget. The int8 SMLAD
    kernels (`"dsp"` items, no cost model) count one cycle per MAC: 0.86-1.3 measured on
    Cortex-M7 (bench/cortexm.py)."""
    if "tile" not in op:
        return float(math.prod(op["loops"]))
    return predict(op, op, target)


def parse_budget(text: str | None) -> float | None:
    """'10m', '90s', '1h', '300' (seconds) -> seconds."""
    if text is None:
        return None
    t = text.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(t[-1:], None)
    num = t[:-1] if scale else t
    try:
        v = float(num) * (scale or 1)
    except ValueError:
        v = -1
    if v <= 0:
        raise UsageError(f"bad --budget '{text}'", where="--budget", hint="use e.g. 90s, 10m or 1h")
    return v


def tune(model, target="host", *, trials: int | None = None, budget_s: float | None = None,
         db_path: str | None = None, seed: int = 0, input_shapes=None, progress: bool = True,
         samples: int = 15, executor: str = "local", workers: int | None = None,
         address: str | None = None, order: str = "predicted") -> TuneReport:
    """Tune `model`'s schedules for `target` (see the module doc). `executor`: "local" (a
    process pool of `workers`, default one per core) or "ray" (a Ray cluster at `address`,
    default the running one: `pip install 'dgc[ray]'`) compiles and, in QEMU, counts the
    candidates of a batch in parallel; x86 timing always runs here, one batch at a time.
    `order`: "predicted" (`search_order`) or "seed" (random, seeded: unbiased samples of the
    space, e.g. to evaluate a cost model with bench/predictor.py)."""
    from .executors import make_executor

    from .frontend.load import read_model

    tgt = get_target(target) if isinstance(target, str) else target
    if not (tgt.runner in ("qemu-system", "qemu-user") or (tgt.runner == "host" and host_can_run(tgt))):
        raise UsageError(f"dgc tune measures by running the model: target '{tgt.name}' runs neither on this "
                         "machine nor in QEMU", hint="tune an x86 target this CPU executes (e.g. host), a "
                         "Cortex-M target or an AArch64/ARMv7-A Linux target")
    if order not in ("predicted", "seed"):
        raise UsageError(f"unknown search order '{order}'", where="--order", hint="use predicted or seed")
    if trials is None and budget_s is None:
        trials = 32
    if trials is not None and trials < 1:
        raise UsageError("--trials must be at least 1", where="--trials")
    proto = read_model(model)
    db = TuningDB.load(db_path)
    db.check_writable()  # an unwritable --db fails now, not after the first trial
    workdir = tempfile.mkdtemp(prefix="dgc-tune-")
    try:
        with make_executor(executor, workers=workers, address=address) as ex:
            return _Tuner(proto, tgt, db, workdir, seed, input_shapes, samples,
                          os.path.basename(str(model)) if isinstance(model, (str, os.PathLike)) else "model",
                          progress, ex, order).run(trials, budget_s)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


EXPLORE = 4  # every 4th candidate measured is the next in seed order, not the predicted best
ROUND = 8  # SMLAD candidates measured between re-orderings (`neighbours_first`); not the batch size
JOINT = 4  # SMLAD conv choices first tried on every conv of the model at once (`_Tuner._tune_jointly`)


def search_order(entry: dict, space: list[dict], target) -> list[dict]:
    """`space` (default first, the rest in seed order) in the order to measure it: the
    default, then the candidates the cost model ranks cheapest (`dgc.predict.rank`), except
    that every EXPLORE-th slot takes the next candidate in seed order, so what the model
    ranks wrongly is still reached on a long run. Int8 SMLAD convs are ordered by their cycle
    model (`predict.smlad_cycles`), depthwise convs (no cycle model) with their `--predict`
    choice first (`predict.dw_unroll_choice`); ties broken by int16 weights first (they drop
    the SXTB16s of the weights from the loop), then loops unrolled once or twice last (more
    loop overhead: they rarely win), then seed order. The int8 dot-product kernels' blocks
    (no cost model) go in seed order."""
    from .predict import rank

    if len(space) <= 2:
        return space
    from dgc.passes.dsp_kernels import KERNEL

    if "dsp_block" in space[0] and entry.get("kernel") != KERNEL:  # dot-product kernels: no model
        ranked = list(range(1, len(space)))
    elif "dsp_block" in space[0]:
        depthwise = "depthwise" in entry.get("linalg", "")
        keys = smlad_keys(space, None if depthwise else entry["loops"])
        if depthwise:  # its --predict choice (a rule, `dw_unroll_choice`) first
            from .predict import dw_unroll_choice

            pick = dw_unroll_choice(entry)
            keys = [(c != pick, *k) for c, k in zip(space, keys)]
        ranked = sorted(range(1, len(space)), key=lambda i: (*keys[i], i))
    else:
        ranked = [i for i in rank(entry, space, target) if i != 0]
    seeded = list(range(1, len(space)))
    out, used = [0], {0}
    while len(out) < len(space):  # both pools order every index: neither runs out first
        pool = seeded if len(out) % EXPLORE == 0 else ranked
        i = next(j for j in pool if j not in used)
        out.append(i)
        used.add(i)
    return [space[i] for i in out]


def smlad_keys(choices: list[dict], loops: list[int] | None) -> list[tuple]:
    """Search order of SMLAD choices of one op (`loops`; None: a depthwise conv, no model):
    predicted cycles (`predict.smlad_cycles`), then int16 weights first, then loops unrolled
    once or twice last."""
    from .predict import smlad_cycles_many

    cost = smlad_cycles_many(loops, choices) if loops else [0.0] * len(choices)
    return [(round(k), len(c["dsp_block"]) < 3, c.get("dsp_unroll", 0) in (1, 2)) for k, c in zip(cost, choices)]


def neighbours_first(pending: list[dict], best: dict) -> list[dict]:
    """Coordinate search over the two choices of an int8 SMLAD kernel (its cycle model covers
    only the K loops of convs): once a candidate wins, the untried ones with its register block come next (its other
    unroll counts), then those with its unroll count (other blocks), then the rest, each group
    in its previous order."""
    block, unroll = best.get("dsp_block"), best.get("dsp_unroll")
    return sorted(pending, key=lambda c: (c.get("dsp_block") != block, c.get("dsp_unroll") != unroll))


class _Tuner:
    def __init__(self, proto, tgt, db, workdir, seed, input_shapes, samples, model_name, progress, executor,
                 order="predicted"):
        self.order = order
        self.flash_limit = None  # bytes a candidate may take (the part's flash, when the default fits)
        self.proto, self.tgt, self.db, self.workdir = proto, tgt, db, workdir
        self.model_bytes = proto.SerializeToString()
        self.executor = executor
        self.batch = max(1, executor.workers)
        self.rng = random.Random(seed)
        self.input_shapes, self.samples, self.model_name, self.progress = input_shapes, samples, model_name, progress
        self.entries = db.entries(tgt)
        self.n = 0
        self.cycles: dict[str, float] = {}  # object path -> estimated cycles (Cortex-M)

    # -- compile and time ---------------------------------------------------------------------
    def compile(self, schedules: dict):
        """The model with `schedules` (signature -> fields): (spec, object path); DgcError if it fails."""
        (built,) = self.compile_many([schedules])
        if isinstance(built, str):
            raise UsageError(f"the model does not compile for '{self.tgt.name}' with these schedules: {built}")
        return built

    def compile_many(self, schedule_sets: list[dict]) -> list:
        """Each schedule set compiled in a contained child, fanned out on the executor: per set
        (spec, object path) or the one-line error."""
        from .executors import compile_job

        jobs = [(self.model_bytes, self.tgt.name, {"schema": SCHEMA, "targets": {target_key(self.tgt): {
            s: {"best": f} for s, f in sets.items()}}}, self.input_shapes, self.flash_limit) for sets in schedule_sets]
        out = []
        for r in self.executor.map(compile_job, jobs):
            if "error" in r:
                out.append(r["error"])
                continue
            self.n += 1
            obj = os.path.join(self.workdir, f"m{self.n}.o")
            with open(obj, "wb") as f:
                f.write(r["object"])
            out.append((ModelSpec.from_json(r["spec"]), obj))
        return out

    @property
    def exact(self) -> bool:
        """Costs counted in QEMU (Cortex-M, ARM Linux) are estimated cycles of exact
        instruction counts: no noise."""
        return self.tgt.runner != "host"

    @property
    def margin(self) -> float:
        return EXACT_MARGIN if self.exact else MARGIN

    def time(self, spec, objs: list[str], samples: int | None = None) -> list[float]:
        """Seconds per run (x86, measured together in one child process) or estimated cycles
        (counted in QEMU, each object once, fanned out on the executor)."""
        from .executors import count_job
        from .measure import MeasureError, time_models

        if not self.exact:
            return time_models([(spec, o) for o in objs], self.tgt, self.workdir, samples=samples or self.samples)
        todo = sorted({o for o in objs if o not in self.cycles})
        blobs = []
        for o in todo:
            with open(o, "rb") as f:
                blobs.append(f.read())
        for o, r in zip(todo, self.executor.map(count_job, [(spec.to_json(), b, self.tgt.name) for b in blobs])):
            if "error" in r:
                raise MeasureError(r["error"])
            self.cycles[o] = r["cycles"]
        return [self.cycles[o] for o in objs]

    # -- the search ------------------------------------------------------------------------------
    def run(self, trials: int | None, budget_s: float | None) -> TuneReport:
        from dgc.passes.schedule import entry_signature

        from .contain import compile_contained

        start = time.monotonic()
        base = compile_contained(self.proto, self.tgt, "tuned", input_shapes=self.input_shapes, ram_limit=None,
                                 flash_limit=None)
        if self.tgt.flash_bytes and base.footprint.get("flash", 0) <= self.tgt.flash_bytes:
            self.flash_limit = self.tgt.flash_bytes  # e.g. int16 weights: not past the part's flash
        base_obj = os.path.join(self.workdir, "default.o")
        with open(base_obj, "wb") as f:
            f.write(base.object)
        report = json.loads(base.schedule)
        ops = report["ops"] + report.get("dsp", [])  # int8 SMLAD convs (Cortex-M DSP): register blocks
        groups: dict[str, list[dict]] = {}
        for op in ops:
            groups.setdefault(entry_signature(op), []).append(op)
        volume = {s: sum(estimated_cost(o, self.tgt) for o in g) for s, g in groups.items()}
        total = sum(volume.values()) or 1
        order = sorted(groups, key=lambda s: (-volume[s], s))
        spaces = {s: candidates(groups[s][0], self.tgt, self.rng) for s in order}  # ordered when tuned
        for s in order:  # measured by another dgc version (other code, other defaults): tuned again
            if isinstance(e := self.entries.get(s), dict) and e.get("dgc", dgc_version()) != dgc_version():
                self.entries[s] = {}
        chosen = {s: e["best"] for s in order if isinstance(e := self.entries.get(s), dict) and "best" in e}
        before = dict(chosen)
        joint_sigs, joint = self._joint_candidates(order, groups, spaces, chosen)
        joint = joint[:trials] if trials is not None else joint
        plan = self._plan(order, volume, spaces, trials - len(joint) if trials is not None else None)
        bar = _progress(sum(plan.values()) + len(joint) if trials is not None else None, budget_s, self.progress)
        results = []
        try:
            inc_spec, inc_obj = (base.spec, base_obj) if not chosen else self.compile(chosen)
            if joint:
                inc_spec, inc_obj = self._tune_jointly(joint_sigs, joint, chosen, inc_spec, inc_obj, bar)
            left_volume = total
            for sig in order:
                deadline = None
                if budget_s is not None:
                    remaining = budget_s - (time.monotonic() - start)
                    if remaining <= 0:
                        break
                    deadline = time.monotonic() + remaining * volume[sig] / left_volume
                left_volume -= volume[sig]
                r, inc_spec, inc_obj = self._tune_signature(sig, groups[sig], volume[sig] / total, spaces[sig],
                                                            plan.get(sig), deadline, chosen, inc_spec, inc_obj, bar)
                results.append(r)
        finally:
            bar.close()
        # the verdict: default and tuned (the incumbent is the compile of `chosen`) timed again
        # in one run; measured on x86, in VERDICT_RUNS independent runs, the tuned time being
        # the default's median times the median of the runs' ratios (one run on a shared
        # machine was seen 23% off, either way)
        from .measure import median_of_runs

        t_default, t_tuned = median_of_runs([self.time(base.spec, [base_obj, inc_obj], samples=2 * self.samples + 1)
                                             for _ in range(1 if self.exact or not chosen else VERDICT_RUNS)])
        if not chosen:  # the default itself: one object timed twice
            t_tuned = t_default
        kept = t_tuned <= t_default
        if not kept:  # never slower: drop this run's choices, keep the trials
            for sig in chosen:
                entry = self.entries.get(sig, {})
                if sig in before:
                    entry["best"] = before[sig]
                else:
                    entry.pop("best", None)
            t_tuned = t_default
        for sig in chosen:
            if "best" in self.entries.get(sig, {}):
                self.entries[sig]["speedup"] = round(t_default / t_tuned, 4)
        self.db.save()
        return TuneReport(self.tgt.name, t_default, t_tuned, results, kept, "cycles" if self.exact else "s")

    def _plan(self, order, volume, spaces, trials) -> dict:
        """Trials per signature by share of the estimated cost (at least one each while any are left)."""
        if trials is None:
            return {}
        plan, left, left_volume = {}, trials, sum(volume.values()) or 1
        for sig in order:
            untried = len(spaces[sig]) - 1
            n = min(untried, left, max(1, round(left * volume[sig] / left_volume)))
            plan[sig] = n
            left -= n
            left_volume -= volume[sig]
        return plan

    def _joint_candidates(self, order, groups, spaces, chosen) -> tuple[list[str], list[dict]]:
        """The int8 SMLAD conv signatures not tuned yet (when there are two or more) and the JOINT
        choices, block and unroll count, that every one of them allows and that have the fewest
        predicted cycles summed over their ops (`predict.smlad_cycles`; ties: int16 weights,
        then unrolled more than twice). The layers of a network tend to share their best kernel variant (on
        ResNet-8 int8, Cortex-M7, 4x2 int16 blocks unrolled 16 times on every conv beat 200
        trials of op-by-op search from the default), so the search tries those on all of them
        at once before it refines op by op."""
        from dgc.passes.dsp_kernels import KERNEL

        if self.order != "predicted":
            return [], []
        sigs = [s for s in order if "dsp_block" in spaces[s][0] and "depthwise" not in groups[s][0]["linalg"]
                and groups[s][0].get("kernel") == KERNEL and s not in chosen and not self.entries.get(s, {}).get("trials")]
        if len(sigs) < 2:
            return [], []
        key = lambda c: json.dumps(c, sort_keys=True)  # noqa: E731
        common = set.intersection(*({key(c) for c in spaces[s][1:]} for s in sigs))
        cands = [json.loads(k) for k in sorted(common)]
        keys = [smlad_keys(cands, groups[s][0]["loops"]) for s in sigs]
        total = [(sum(len(groups[s]) * k[i][0] for s, k in zip(sigs, keys)), *keys[0][i][1:], key(c))
                 for i, c in enumerate(cands)]
        return sigs, [cands[i] for i in sorted(range(len(cands)), key=total.__getitem__)[:JOINT]]

    def _tune_jointly(self, sigs, cands, chosen, inc_spec, inc_obj, bar):
        """Each of `cands` on every conv of `sigs` at once, measured together with the incumbent;
        the cheapest becomes every one's best if it beats the incumbent. Recorded in each
        signature's trials with "joint": the number of signatures it was applied to (these
        costs are not one op's: `bench/predictor.py` leaves them out)."""
        trials = [{"schedule": c, "joint": len(sigs)} for c in cands]
        ok, costs = self._try(trials, [{**chosen, **{s: c for s in sigs}} for c in cands], inc_spec, inc_obj)
        if costs is not None:
            t_inc = costs[0]
            timed = [i for i in range(len(ok)) if costs[1 + i] is not None]
            i = min(timed, key=lambda i: costs[1 + i], default=None)
            if i is not None and costs[1 + i] < t_inc * self.margin:
                for s in sigs:
                    chosen[s] = self.entries.setdefault(s, {})["best"] = ok[i][0]["schedule"]
                inc_spec, inc_obj = ok[i][1]
        for s in sigs:
            self.entries.setdefault(s, {}).setdefault("trials", []).extend(dict(t) for t in trials)
        self.db.save()
        bar.update(len(cands))
        return inc_spec, inc_obj

    def _tune_signature(self, sig, ops, share, space, n_trials, deadline, chosen, inc_spec, inc_obj, bar):
        entry = self.entries.setdefault(sig, {})
        entry.setdefault("trials", [])
        entry.update({"dgc": dgc_version(), "model": self.model_name, "ops": len(ops)})
        # a joint trial measured a choice on all convs at once, not on this one alone
        tried = {json.dumps(t["schedule"], sort_keys=True) for t in entry["trials"] if "joint" not in t}
        if "best" in entry:
            tried.add(json.dumps(entry["best"], sort_keys=True))
        pending = [c for c in space[1:] if json.dumps(c, sort_keys=True) not in tried]
        if len(pending) > 1 and self.order == "predicted" and (n_trials is None or n_trials > 0):
            ranked = search_order(ops[0], space, self.tgt)  # here, not up front: trials start sooner
            pending.sort(key=lambda c: ranked.index(c))
        gain, done = 1.0, 0
        # SMLAD blocks x unroll counts: re-ordered around each new best every ROUND candidates
        # (fixed rounds, so the database still does not depend on the number of workers)
        local, in_round, round_best = self.order == "predicted" and "dsp_block" in space[0], 0, entry.get("best")
        if local:  # from the best so far (the default at first): its neighbours first
            pending = neighbours_first(pending, round_best or space[0])
        while pending:
            if n_trials is not None and done >= n_trials:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            k = min(self.batch, len(pending), n_trials - done if n_trials is not None else len(pending))
            if local:
                k = min(k, ROUND - in_round)
            batch, pending = pending[:k], pending[k:]
            done += k
            trials = [{"schedule": c} for c in batch]
            ok, costs = self._try(trials, [{**chosen, sig: c} for c in batch], inc_spec, inc_obj)
            if costs is not None:
                t_inc = costs[0]
                for i in self._winners(ok, costs):
                    t_best = costs[1 + i]
                    ok[i][0]["incumbent"] = t_inc
                    if t_best >= t_inc * self.margin:
                        continue
                    if not self.exact:  # confirmed by a second run (noise)
                        again = self.time(ok[i][1][0], [inc_obj, ok[i][1][1]])
                        t_inc, t_best = min(t_inc, again[0]), max(t_best, again[1])
                        ok[i][0].update(seconds=t_best, incumbent=t_inc)
                    if t_best < t_inc * self.margin:
                        gain *= t_inc / t_best
                        chosen[sig] = entry["best"] = ok[i][0]["schedule"]
                        inc_spec, inc_obj = ok[i][1]
                        t_inc = t_best
            entry["trials"].extend(trials)
            self.db.save()
            bar.update(k)
            in_round += k
            if local and in_round >= ROUND:
                in_round = 0
                if entry.get("best") not in (None, round_best):
                    pending = neighbours_first(pending, entry["best"])
                round_best = entry.get("best")
            best = [t["incumbent"] / t["seconds"] for t in entry["trials"] if "seconds" in t]
            bar.set_postfix_str(f"{sig.split(':')[0].split('.')[-1]} best x{max(best, default=1):.2f}")
        return SignatureResult(sig, len(ops), share, done, gain), inc_spec, inc_obj

    def _try(self, trials, schedule_sets, inc_spec, inc_obj):
        """Compile each schedule set and measure the builds together with the incumbent: the
        builds as [(trial, (spec, object))] and [incumbent, candidate...] costs (`_measure`);
        each trial gets its "error", or its "seconds" and the "incumbent"'s."""
        built = self.compile_many(schedule_sets)
        ok = [(t, b) for t, b in zip(trials, built) if not isinstance(b, str)]
        for t, b in zip(trials, built):
            if isinstance(b, str):
                t["error"] = b[:300]
        costs = self._measure(ok, inc_spec, inc_obj)
        if costs is not None:
            for (t, _), c in zip(ok, costs[1:]):
                if c is not None:
                    t.update(seconds=c, incumbent=costs[0])
        return ok, costs

    def _measure(self, ok, inc_spec, inc_obj) -> list | None:
        """[incumbent, candidate...] costs of one batch measured together; when that run fails
        (a candidate crashes), each candidate alone with the incumbent, None for the culprits."""
        from .measure import MeasureError

        if not ok:
            return None
        try:
            return self.time(ok[0][1][0], [inc_obj] + [obj for _, (_, obj) in ok])
        except MeasureError:
            pass
        costs = [self.time(inc_spec, [inc_obj])[0]]
        for t, (spec, obj) in ok:
            try:
                costs.append(self.time(spec, [inc_obj, obj])[1])
            except MeasureError as e:
                t["error"] = str(e)[:300]
                costs.append(None)
        return costs

    def _winners(self, ok, costs) -> list[int]:
        """Candidates of a batch to consider, in order. Exact costs do not depend on the
        incumbent: each in candidate order, so a batch decides as one-at-a-time would (the
        result does not depend on the number of workers). Timed costs: the batch's fastest."""
        timed = [i for i in range(len(ok)) if costs[1 + i] is not None]
        if self.exact:
            return timed
        return [min(timed, key=lambda i: costs[1 + i])] if timed else []


def _progress(total, budget_s, enabled):
    """tqdm bar: trials done, ETA, best speedup of the signature being tuned."""
    from tqdm import tqdm

    unit = "trial"
    if total is None and budget_s is not None:
        return tqdm(total=None, unit=unit, disable=not enabled, desc="tuning",
                    bar_format="{desc}: {n} trials [{elapsed}<" + f"{budget_s:.0f}s budget" + ", {postfix}]")
    return tqdm(total=total, unit=unit, disable=not enabled, desc="tuning")
