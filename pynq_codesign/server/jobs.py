"""Benchmark jobs: queued in order, run one at a time on the board, streamed as they run.

One worker thread owns the board (the fabric takes one program at a time): it takes jobs
from a FIFO queue, loads the job's package, runs :func:`pynq_codesign.bench.run_bench`
and publishes every measured frame on the event bus as it completes (per-frame latency
and accelerator time, per-bundle times, a rolling FPS; on the simulated board also the
power meter's samples of that frame), then the job's QoS record. Every sample carries its
``source`` (``simulated`` or ``measured``). Job state goes to disk at every change
(:class:`~.store.Store`), so finished results survive a restart and unfinished jobs run
again after one.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Callable

from ..bench import activity, run_bench, to_record
from ..driver import Driver
from ..errors import CodesignError
from ..pipeline import Timeline
from ..platform.base import Platform
from .events import EventBus
from .store import Job, Store, new_id

#: Frames over which the stream's rolling FPS is taken.
ROLLING_FRAMES = 8
#: Most jobs waiting in the queue.
MAX_QUEUED = 256


class JobError(CodesignError):
    """A job request the board cannot take."""


class JobRunner:
    """The board's one worker: jobs in order, results to the store, samples to the bus."""

    def __init__(self, store: Store, bus: EventBus, platform: Callable[[], Platform],
                 timeout: float = 10.0, power: str = "auto", images_root: Path | None = None):
        self.store, self.bus = store, bus
        self._platform = platform
        self._timeout = timeout
        self._power = power
        self.images_root = images_root
        self._q: queue.Queue[str] = queue.Queue()
        self._submit_lock = threading.Lock()
        self.loaded: dict | None = None
        self.current: str | None = None
        self._thread = threading.Thread(target=self._work, name="board-jobs", daemon=True)

    def start(self) -> None:
        for job in self.store.unfinished():          # interrupted by a restart
            if job.state == "running":
                job.requeued += 1
            job.state, job.started = "queued", None
            job.progress = {"frames_done": 0, "frames": job.frames}
            self.store.save_job(job)
            self._q.put(job.id)
        self._thread.start()

    @property
    def queued(self) -> int:
        return self._q.qsize()

    def submit(self, design_id: str, frames: int, warmup: int, images: str | None) -> Job:
        with self._submit_lock:
            if self._q.qsize() >= MAX_QUEUED:
                raise JobError(f"{MAX_QUEUED} jobs are waiting already; try again later")
            job = Job(new_id("j"), self.store.next_seq(), design_id, frames, warmup, images)
            job.progress = {"frames_done": 0, "frames": frames}
            self.store.save_job(job)
            self._publish_job(job)
            self._q.put(job.id)
        return job

    # --- the worker --------------------------------------------------------------------
    def _publish_job(self, job: Job) -> None:
        d = {"type": "job", "job": job.id, "design_id": job.design_id, "state": job.state,
             "progress": job.progress}
        if job.error:
            d["error"] = job.error
        self.bus.publish("job", d)

    def _work(self) -> None:
        while True:
            job_id = self._q.get()
            job = self.store.jobs.get(job_id)
            if job is None or job.state != "queued":
                continue
            self.current = job_id
            try:
                self._run(job)
            except CodesignError as e:
                self._fail(job, str(e))
            except Exception as e:  # noqa: BLE001 - a bug: logged here, a line to the client
                traceback.print_exc(file=sys.stderr)
                self._fail(job, f"internal error ({type(e).__name__}); see the service log")
            finally:
                self.current = None

    def _fail(self, job: Job, msg: str) -> None:
        job.state, job.error, job.finished = "failed", msg, time.time()
        self.store.save_job(job)
        self._publish_job(job)

    def _images(self, job: Job) -> str | None:
        if not job.images:
            return None
        if self.images_root is None:
            raise JobError("this board has no images folder (--data-dir DIR/images); bench on "
                           "the package's golden inputs (images: null)")
        return str(self.images_root / job.images)

    def _run(self, job: Job) -> None:
        pkg = self.store.load(job.design_id)
        job.state, job.started = "running", time.time()
        self.store.save_job(job)
        self._publish_job(job)
        pf = self._platform()
        drv = Driver(pf, pkg, timeout=self._timeout)
        n_b = len(pkg.design.network.bundles)
        recent: deque = deque(maxlen=ROLLING_FRAMES)
        state = {"k": 0, "t": None}
        with drv:
            self.loaded = {"design_id": job.design_id, "name": pkg.design.name,
                           "hardware_id": pkg.design.overlay.hardware_id_hex}

            def on_result(det, frame) -> None:
                self._frame_sample(job, drv, det, n_b, recent, state)

            run = run_bench(drv, job.frames, job.warmup, self._images(job), self._power,
                            on_result)
            rec = to_record(drv, run)
        job.record = rec.to_dict()
        job.state, job.finished = "done", time.time()
        job.progress = {"frames_done": job.frames, "frames": job.frames}
        self.store.save_job(job)
        self.bus.publish("result", {"type": "result", "job": job.id,
                                    "design_id": job.design_id, "record": job.record,
                                    "source": rec.source})
        self._publish_job(job)

    def _frame_sample(self, job: Job, drv: Driver, det, n_b: int, recent: deque,
                      state: dict) -> None:
        """Publish one frame's sample (and the power meter's samples of its time)."""
        pf = drv.platform
        k = state["k"]
        state["k"] += 1
        accel = det.accel.accel_s
        sim = pf.source == "simulated"
        pre = det.pre_board_s
        now = pf.now() if sim else time.perf_counter()
        period = max(pre, accel) if sim else (now - state["t"] if state["t"] else accel + pre)
        state["t"] = now
        recent.append(max(period, 1e-9))
        fps = len(recent) / sum(recent)
        sample = {"type": "frame", "job": job.id, "design_id": job.design_id, "frame": k,
                  "frames": job.frames, "latency_ms": 1e3 * (pre + accel),
                  "accel_ms": 1e3 * accel, "preprocess_ms": 1e3 * pre, "fps": fps,
                  "bundles_ms": [1e3 * s for s in det.accel.bundle_seconds(n_b)],
                  "source": pf.source}
        self.bus.publish("frame", sample)
        meter = getattr(pf, "power_meter", None)
        if sim and meter is not None:
            tl = Timeline([0.0], [period], "simulated", [pre], [0.0], [accel])
            act = activity(drv, tl, 1)
            t0 = state.get("pt", now - period)
            state["pt"] = now
            for t, w in meter.samples(act, t0, now):
                self.bus.publish("power", {"type": "power", "job": job.id, "t": t,
                                           "power_w": w, "source": meter.source})
        job.progress = {"frames_done": k + 1, "frames": job.frames}
