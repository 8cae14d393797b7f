"""Where candidate training runs: local worker processes (default) or Ray tasks.

A :class:`TrainTask` (plain JSON-able fields) is one precise evaluation: train a design on
the data set into its own folder (:func:`host_search.train.train`; a folder left by a killed
run resumes from its last epoch) and return the labelled validation IoUs and the
image-epochs actually trained. :func:`run_task` is the one function every executor calls,
with the task's own number of torch threads (one for prototypes and candidates,
:data:`FINAL_THREADS` for a winner's full training, which runs alone), so a seed gives the
same result whichever executor ran it.

* :class:`LocalExecutor` keeps ``workers`` processes (spawned; one task at a time each). A
  worker that dies (killed, out of memory) is replaced and its task retried up to
  ``retries`` times, then recorded as failed; the search goes on.
* :class:`RayExecutor` submits the same function as Ray tasks to an existing cluster
  (``--address``) or a local one, reserving the task's threads as ``num_cpus``; Ray retries
  a task whose worker died (``max_retries``), then it is recorded as failed.

``run(tasks, on_done)`` returns the results in task order and calls ``on_done(task,
result)`` as each one finishes (the journal writes it then). A task that raised gives
``{"status": "failed", "error": ...}`` without a retry (it would fail the same way).

Faults for tests: the environment variable ``PYNQ_CODESIGN_SEARCH_FAULT=die:KIND:N`` makes
a worker exit abruptly on the first ``N`` attempts of every task of kind ``KIND``.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from dataclasses import asdict, dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable

from pynq_codesign.errors import CodesignError

FAULT_ENV = "PYNQ_CODESIGN_SEARCH_FAULT"
#: The data split is the same for every candidate, strategy and seed.
SPLIT_SEED = 0
DEFAULT_RETRIES = 1


#: Mini-batch of the search's fast trainings (QoR prototypes and candidates). Their few
#: epochs need optimiser steps more than large batches: at 8 a slow-starting network (deep,
#: or narrow) has not left the ground after 2-3 epochs, and the candidates' order said
#: little of their order after full training. At 2 the fast IoUs of 8 designs drawn from
#: the space rank their full IoUs at 0.90 and 0.95 on two 16-scene sets (means of 3 seeds,
#: every seed 0.83 or more; 0.60-0.67 at 4), for the same image-epochs
#: (benchmarks/bench_detection.py --rank 8 --rank-from space --eval;
#: docs/training.md, "Fast vs full", rounds 4 to 6).
FAST_BATCH = 2

#: Torch threads of a winner's full training. The search trains its winners one at a time,
#: after every candidate, so one thread would leave the other workers idle for the longest
#: training of the run. A constant, not the worker count: a seed's result depends on the
#: thread count, and must not depend on ``--workers`` or the executor.
FINAL_THREADS = 2


def batch_size_for(train_images: int, fast: bool = False) -> int:
    """Mini-batch size for a data set: the trainer's default (8), or :data:`FAST_BATCH` for
    the fast trainings; smaller on tiny sets (at least 8 steps an epoch, down to 4 or
    :data:`FAST_BATCH`, whichever is smaller)."""
    top = FAST_BATCH if fast else 8
    return max(min(4, top), min(top, train_images // 8))


class ExecutorError(CodesignError):
    """An executor that cannot start (Ray missing or unreachable)."""


@dataclass(frozen=True)
class TrainTask:
    key: str
    kind: str                  # "proto", "cand", "final"
    design: dict               # the design JSON (full resolution)
    data: str
    out: str                   # the training run folder
    cache: str                 # the shared pre-processed image cache
    seed: int
    epochs: int
    qat_epochs: int
    fast: bool
    attempt: int = 0
    batch_size: int = 16
    threads: int = 1           # torch threads (FINAL_THREADS for "final")

    def to_dict(self) -> dict:
        return asdict(self)


def _fault(task: TrainTask) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if spec.startswith("die:"):
        _, kind, n = spec.split(":")
        if task.kind == kind and task.attempt < int(n):
            os._exit(17)


def run_task(task: dict) -> dict:
    """Train one task (a :class:`TrainTask` as a dict) and return its result dict."""
    from pynq_codesign.design import Design

    from .train import TrainConfig, load_data, reduced_design, train
    t = TrainTask(**task)
    _fault(t)
    t0 = time.perf_counter()
    design = Design.from_dict(t.design)
    if t.fast:
        design = reduced_design(design)
    cfg = TrainConfig(epochs=t.epochs, qat_epochs=t.qat_epochs, seed=t.seed, threads=t.threads,
                      fast=t.fast, batch_size=t.batch_size)
    data = load_data(t.data, design, seed=SPLIT_SEED, cache_dir=t.cache)
    res = train(design, data, Path(t.out), cfg)
    images = int(data.info["train_images"])
    epochs = len(res.metrics.get("history", []))
    return {"status": "done", "float_iou": _num(res.float_iou), "fixed_iou": _num(res.fixed_iou),
            "images": images, "epochs": epochs, "image_epochs": images * epochs,
            "input": [design.network.input_height, design.network.input_width],
            "val_images": int(data.info["val_images"]), "run": str(t.out),
            "wall_s": round(time.perf_counter() - t0, 3), "design": res.design.to_dict()}


def _num(x) -> float | None:
    x = float(x)
    return None if x != x else x


def _safe_run(task: dict) -> dict:
    try:
        return run_task(task)
    except CodesignError as e:
        return {"status": "failed", "error": str(e)}
    except Exception as e:  # noqa: BLE001 - recorded, the search goes on
        return {"status": "failed", "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(limit=5)}


# ---------------------------------------------------------------------------
# Local worker processes.
# ---------------------------------------------------------------------------

def _die_with_parent() -> None:
    """Linux: the worker gets SIGKILL when the search process dies (no orphan training)."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main(conn) -> None:
    _die_with_parent()          # torch threads: run_task sets the task's own
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        conn.send(_safe_run(task))


class _Worker:
    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.task: dict | None = None
        self.index = -1

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


class LocalExecutor:
    """``workers`` local processes, one task at a time each (with the task's threads)."""

    name = "local"

    def __init__(self, workers: int = 1, retries: int = DEFAULT_RETRIES):
        self.n = max(1, int(workers))
        self.retries = retries
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []

    def _ensure(self) -> None:
        while len(self._workers) < self.n:
            self._workers.append(_Worker(self._ctx))

    def run(self, tasks: list[TrainTask],
            on_done: Callable[[TrainTask, dict], None] | None = None) -> list[dict]:
        self._ensure()
        results: list[dict | None] = [None] * len(tasks)
        queue = list(range(len(tasks)))
        attempts = [0] * len(tasks)
        while queue or any(w.task is not None for w in self._workers):
            for w in self._workers:
                if w.task is None and queue:
                    i = queue.pop(0)
                    w.task = asdict(tasks[i]) | {"attempt": attempts[i]}
                    w.index = i
                    w.conn.send(w.task)
            busy = [w for w in self._workers if w.task is not None]
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
            for w in list(busy):
                i = w.index
                res = None
                if w.conn in ready:
                    try:
                        res = w.conn.recv()
                    except (EOFError, OSError):
                        res = None
                if res is None and (w.proc.sentinel in ready or not w.proc.is_alive()):
                    code = w.proc.exitcode
                    self._workers.remove(w)
                    w.stop()
                    self._workers.append(_Worker(self._ctx))
                    attempts[i] += 1
                    if attempts[i] <= self.retries:
                        queue.insert(0, i)
                        continue
                    res = {"status": "failed", "attempts": attempts[i],
                           "error": f"the worker process died (exit code {code}) on "
                                    f"{attempts[i]} attempts"}
                if res is None:
                    continue
                w.task = None
                res.setdefault("attempts", attempts[i] + 1)
                results[i] = res
                if on_done is not None:
                    on_done(tasks[i], res)
        return [r for r in results if r is not None]

    def close(self) -> None:
        for w in self._workers:
            w.stop()
        self._workers = []


# ---------------------------------------------------------------------------
# Ray.
# ---------------------------------------------------------------------------

class RayExecutor:
    """The same tasks as Ray tasks on a cluster (``address``) or a local Ray instance."""

    name = "ray"

    def __init__(self, address: str | None = None, retries: int = DEFAULT_RETRIES):
        try:
            import ray
        except ImportError:
            raise ExecutorError("--executor ray needs Ray: pip install '.[ray]' (or "
                                "pip install 'ray>=2.9')")
        self._ray = ray
        try:
            if not ray.is_initialized():
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR", configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ExecutorError(f"cannot reach the Ray cluster at {address or 'auto'}: {e}; "
                                "start one with `ray start --head` or give --address HOST:PORT")
        self._fn = ray.remote(num_cpus=1, max_retries=retries)(_safe_run)

    def _largest_node_cpus(self) -> int:
        return int(max((n.get("Resources", {}).get("CPU", 0) for n in self._ray.nodes()
                        if n.get("Alive")), default=1))

    def run(self, tasks: list[TrainTask],
            on_done: Callable[[TrainTask, dict], None] | None = None) -> list[dict]:
        ray = self._ray
        # reserve the task's threads, but no more than the largest live node has (a task
        # asking for more would wait forever; it still trains with its own threads)
        node = self._largest_node_cpus()
        refs = [self._fn.options(num_cpus=max(1, min(t.threads, node))).remote(asdict(t))
                for t in tasks]
        index = {r: i for i, r in enumerate(refs)}
        results: list[dict | None] = [None] * len(tasks)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = index[ref]
                try:
                    res = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a crashed worker after retries
                    res = {"status": "failed", "error": f"Ray task failed: "
                                                        f"{type(e).__name__}: {e}"}
                results[i] = res
                if on_done is not None:
                    on_done(tasks[i], res)
        return [r for r in results if r is not None]

    def close(self) -> None:
        try:
            self._ray.shutdown()
        except Exception:  # noqa: BLE001
            pass


def make_executor(kind: str, workers: int = 1, address: str | None = None):
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(address)
    raise ExecutorError(f"--executor must be local or ray, got {kind!r}")
