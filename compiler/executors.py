"""Where `dgc tune` compiles its candidates (and, in QEMU, counts them): executors.

An executor runs one function over a list of argument tuples and returns the results in
order: `map(fn, jobs)`. Two are provided:

- `LocalExecutor(workers)`: a process pool on this machine (default: one worker per core;
  `workers=1` runs inline). Each job is itself contained (`compile_contained` compiles in a
  further child process), so a crash in MLIR/LLVM loses one candidate, not the pool.
- `RayExecutor(address)`: the same jobs as Ray tasks on a running cluster (`pip install
  'dgc[ray]'`, `ray start --head` on the head node, `--executor ray --address auto`);
  `address="local"` starts a private local instance (used by the tests).

Jobs are plain functions of picklable values (model bytes, target name, database dict, object
bytes), so they run the same on any worker; results are plain dicts, errors included
(`{"error": one line}`): a failing candidate is data for the tuner, not an exception.
x86 timing never fans out: it must run on this machine, one batch at a time, or the
candidates would be timed on different hardware under different load.
"""

from __future__ import annotations

import os
import tempfile

from dgc.errors import DgcError, UsageError, first_line


# ---- jobs ------------------------------------------------------------------------------------

def compile_job(model_bytes: bytes, target: str, db_data: dict, input_shapes, flash_limit: int | None = None) -> dict:
    """The model compiled (contained) with the schedules of the tuning-database dict `db_data`:
    {"spec": ModelSpec JSON, "object": bytes} or {"error": one line} (also when over
    `flash_limit` bytes)."""
    import onnx

    from .contain import compile_contained
    from .tuning import TuningDB

    proto = onnx.load_from_string(model_bytes)
    try:
        res = compile_contained(proto, target, "tuned", input_shapes=input_shapes, ram_limit=None,
                                flash_limit=flash_limit, tuning_db=TuningDB(None, db_data))
    except DgcError as e:
        return {"error": first_line(e)}
    return {"spec": res.spec.to_json(), "object": res.object}


def count_job(spec_json: str, obj: bytes, target: str) -> dict:
    """One object run once in QEMU under the instruction-count plugin: {"instructions",
    "cycles"} (dgc.measure.count_models) or {"error": one line}."""
    from dgc.spec import ModelSpec

    from .measure import MeasureError, count_models
    from .targets import get_target

    with tempfile.TemporaryDirectory(prefix="dgc-count-") as wd:
        path = os.path.join(wd, "model.o")
        with open(path, "wb") as f:
            f.write(obj)
        try:
            (r,) = count_models([(ModelSpec.from_json(spec_json), path)], get_target(target), wd)
        except (MeasureError, DgcError) as e:
            return {"error": first_line(e)}
    return r


# ---- executors -------------------------------------------------------------------------------

class _Executor:
    workers = 1

    def map(self, fn, jobs: list[tuple]) -> list:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _call(args):
    fn, job = args
    return fn(*job)


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the tuner (which saves and stops): no worker tracebacks."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalExecutor(_Executor):
    """A process pool of `workers` (default: the cores this process may use)."""

    def __init__(self, workers: int | None = None):
        if workers is None:
            workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if workers < 1:
            raise UsageError("--workers must be at least 1", where="--workers")
        self.workers = workers
        self._pool = None

    def map(self, fn, jobs: list[tuple]) -> list:
        if self.workers == 1 or len(jobs) <= 1:
            return [fn(*j) for j in jobs]
        if self._pool is None:
            import concurrent.futures
            import multiprocessing

            # spawn: the parent holds MLIR contexts and threads that fork must not copy
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint)
        return list(self._pool.map(_call, [(fn, j) for j in jobs]))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(_Executor):
    """Jobs as Ray tasks on the cluster at `address` ("auto"/None: the running cluster;
    "ray://host:10001": a remote one through Ray Client; "local": a private local instance of
    2 CPUs). `workers` is the cluster's CPU count (a tuner batch's size)."""

    def __init__(self, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise UsageError("--executor ray needs the Ray package", hint="pip install 'dgc[ray]'") from None
        self._ray = ray
        self._owned = False
        if not ray.is_initialized():
            try:
                if address == "local":
                    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=address or "auto", log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UsageError(f"cannot connect to a Ray cluster at '{address or 'auto'}': "
                                 f"{first_line(e)}",
                                 hint="start one with `ray start --head` or pass --address") from None
            self._owned = True
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(_call)

    def map(self, fn, jobs: list[tuple]) -> list:
        return self._ray.get([self._remote.remote((fn, j)) for j in jobs])

    def close(self) -> None:
        if self._owned:
            self._ray.shutdown()
            self._owned = False


def make_executor(name: str = "local", workers: int | None = None, address: str | None = None) -> _Executor:
    """"local" (a process pool of `workers`) or "ray" (the cluster at `address`)."""
    if name == "local":
        if address is not None:
            raise UsageError("--address is for --executor ray", where="--address")
        return LocalExecutor(workers)
    if name == "ray":
        if workers is not None:
            raise UsageError("--workers is for --executor local (Ray uses the cluster's CPUs)", where="--workers")
        return RayExecutor(address)
    raise UsageError(f"unknown executor '{name}'", where="--executor", hint="use local or ray")
