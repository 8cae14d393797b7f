"""The co-search: bundles, QoR potential, exploration, winners, packages, report.

``codesign search --device pynq-z1 --data DIR --target-fps F --budget IMAGE_EPOCHS --out RUN``
runs, in order (each step journalled, :mod:`host_search.journal`):

1. **bundles** (:mod:`host_search.bundles`): enumerate, deduplicate and estimate every bundle
   on the device (overlay sized for its prototype, parallelism chosen to fit);
2. **QoR** (:mod:`host_search.qor`, strategy ``scd`` only): prototypes fast-trained, the top
   bundles of each QoS group kept;
3. **exploration** by the strategy: ``scd`` (:mod:`host_search.scd`), or the baselines
   ``random`` and ``topdown`` (:mod:`host_search.baselines`), all charged in one unit:
   image-epochs of training (training images x epochs, at the resolution trained, as the
   trainer reports them); estimate calls are counted separately and cost no budget;
4. **winners**: the best candidates that meet the targets (by their QoS label's source:
   measured or simulated when a board measured them, else estimated) get the full float +
   QAT training at full resolution, are exported as deployment packages
   (``RUN/packages/NAME``) with their overlay build projects (``PKG/overlay-build``);
5. ``RUN/result.json`` and the report (``RUN/report/``, :mod:`host_search.search_report`).

``--resume RUN`` re-runs the same search from its journal (see :mod:`host_search.journal`):
finished evaluations are taken from it, so none is repeated or lost, and the result equals
an unbroken run's. Every random choice is drawn from ``(seed, strategy, step)``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from pynq_codesign.design import Design
from pynq_codesign.devices import device_names
from pynq_codesign.errors import CodesignError
from pynq_codesign.qos import QoSRecord

from .bundles import BundleInfo, BundleTemplate, enumerate_bundles, estimate_bundles
from .executors import FINAL_THREADS, SPLIT_SEED, TrainTask, batch_size_for, make_executor
from .journal import JOURNAL, Journal, JournalError
from .measure import EstimateSource, RatioEstimator, RawEstimator, SimBoardSource
from .qos_model import estimate
from .space import (BASE_INPUT, Candidate, NetKnobs, Targets, build_network, design_key,
                    fit_accelerator, realise, valid_network)

STRATEGIES = ("scd", "random", "topdown")
STRATEGY_IDS = {s: i for i, s in enumerate(STRATEGIES)}
RESULT = "result.json"
PACKAGES = "packages"
REPORT = "report"
#: Least chance that a screened candidate's truth lies across a target for the search to
#: measure it untrained (a calibrated estimator's uncertainty decides; one per SCD step).
PROBE_MIN_CHANCE = 0.05


class SearchError(CodesignError):
    """A search that cannot start or continue; the message says what to do."""


@dataclass(frozen=True)
class SearchConfig:
    """Everything that decides a search's result (the journal keeps it for --resume)."""

    device: str
    data: str
    target_fps: float
    budget: int
    strategy: str = "scd"
    seed: int = 0
    max_power_w: float | None = None
    proto_epochs: int = 1           # QoR prototypes: float epochs (fast resolution)
    cand_epochs: int = 3            # candidates: float epochs (fast resolution) ...
    cand_qat_epochs: int = 1        # ... plus QAT epochs (the bit widths matter)
    final_epochs: int = 6           # winners: float epochs at full resolution ...
    final_qat_epochs: int = 2       # ... plus QAT epochs
    replicas: int = 3               # bundle copies in a prototype
    bundle_layers: int = 3          # the most convolutions in a bundle
    qor_share: float = 0.3          # share of the budget the QoR prototypes may use
    keep: int = 1                   # bundles kept per QoS group
    batch: int = 2                  # candidates trained per step
    winners: int = 1
    input: tuple[int, int] = BASE_INPUT    # network input (height, width) before resizing
    sim_board: int | None = None    # measure on an in-process simulated board of this seed
    boards: tuple[str, ...] = ()
    token_file: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["boards"] = list(self.boards)
        d["input"] = list(self.input)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SearchConfig":
        return cls(**{**d, "boards": tuple(d.get("boards") or ()),
                      "input": tuple(d.get("input") or BASE_INPUT)})

    def check(self) -> None:
        if self.device not in device_names():
            raise SearchError(f"--device {self.device!r}: unknown; known: "
                              f"{', '.join(device_names())}")
        if self.strategy not in STRATEGIES:
            raise SearchError(f"--strategy must be one of {', '.join(STRATEGIES)}")
        if not (self.target_fps > 0 and math.isfinite(self.target_fps)):
            raise SearchError(f"--target-fps must be a positive number, got {self.target_fps}")
        if self.max_power_w is not None and not self.max_power_w > 0:
            raise SearchError(f"--max-power must be a positive number of watts, got "
                              f"{self.max_power_w}")
        if self.budget < 1:
            raise SearchError(f"--budget {self.budget}: the budget is image-epochs of "
                              "training (images x epochs) and must be at least one "
                              "candidate's training; try --budget 2000")
        for name in ("proto_epochs", "cand_epochs", "final_epochs", "replicas", "batch",
                     "winners", "keep", "bundle_layers"):
            if getattr(self, name) < 1:
                raise SearchError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0.0 <= self.qor_share < 1.0:
            raise SearchError("--qor-share must lie in [0, 1)")


@dataclass
class Evaluated:
    """A trained candidate: its IoU (fast training), charge and QoS by source."""

    cand: Candidate
    key: str
    status: str
    iou: float | None = None            # fixed-point validation IoU (fast training)
    float_iou: float | None = None
    image_epochs: int = 0
    step: int = 0
    qos: dict = field(default_factory=dict)      # source label -> QoS record dict
    error: str | None = None
    needs_build: bool = True                      # no built bitstream of its overlay yet

    def best_qos(self) -> dict:
        for label in ("measured", "simulated", "estimated"):
            if label in self.qos:
                return self.qos[label]
        return {}

    def meets(self, targets: Targets) -> bool:
        q = self.best_qos()
        if not q or q.get("fps") is None or q["fps"] < targets.fps:
            return False
        return targets.max_power_w is None or (q.get("power_w") or 0) <= targets.max_power_w


# ---------------------------------------------------------------------------
# The search context the strategies use.
# ---------------------------------------------------------------------------

class Search:
    """State and services of one search: screening, training, budget, journal."""

    def __init__(self, cfg: SearchConfig, run: Path, journal: Journal, executor, source,
                 estimator, progress: bool = True):
        self.cfg = cfg
        self.run = run
        self.journal = journal
        self.executor = executor
        self.source = source
        self.estimator = estimator
        self.targets = Targets(cfg.target_fps, cfg.max_power_w, cfg.device,
                               tuple(cfg.input))
        self.templates: dict[str, BundleTemplate] = {}
        self.bundles: list[BundleInfo] = []
        self.kept: list[str] = []
        self.charged = 0
        self.estimate_calls = 0
        self.trained: dict[str, Evaluated] = {}
        self.order: list[str] = []
        self._cache: dict = {}
        self._probed: set[str] = set()     # candidates measured untrained (probe_uncertain)
        self.rejected: dict[str, Evaluated] = {}   # measured untrained, missed the targets
        self.train_images = 0
        self.progress = Progress(cfg.budget, progress)
        self.replayed = 0

    # --- randomness ------------------------------------------------------------------------
    def rng(self, step: int, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, STRATEGY_IDS[self.cfg.strategy], step,
                                      salt])

    # --- screening -------------------------------------------------------------------------
    def screen(self, knobs: NetKnobs) -> Candidate | None:
        before = len(self._cache)
        c = realise(self.templates, knobs, self.targets, self.estimator, self._cache)
        if len(self._cache) > before and c is not None:
            self.estimate_calls += c.accel.screened
        return c

    def record_screen(self, step: int, cands: list[Candidate], role: str) -> None:
        if role == "neighbour":
            self.probe_uncertain(cands)
        rows = []
        for c in cands:
            a = c.accel
            rows.append({"design_key": c.key, "knobs": c.knobs.to_dict(), "fps": a.fps,
                         "power_w": a.power_w, "dsp": a.dsp, "bram18": a.bram18,
                         "lut": a.lut, "meets": a.meets, "max_fps": a.max_fps,
                         "macs": c.macs, "source": "estimated", "role": role})
        if rows:
            self.journal.add_estimates(self.cfg.strategy, step, rows)

    def step_done(self, step: int, data: dict) -> None:
        data = {**data, "charged": self.charged, "estimate_calls": self.estimate_calls}
        self.journal.add_step(self.cfg.strategy, step, data)

    # --- budget ----------------------------------------------------------------------------
    def cost(self, epochs: int) -> int:
        return self.train_images * epochs

    @property
    def cand_cost(self) -> int:
        return self.cost(self.cfg.cand_epochs + self.cfg.cand_qat_epochs)

    def affordable(self, n: int, cost: int | None = None) -> int:
        cost = cost or self.cand_cost
        return max(0, min(n, (self.cfg.budget - self.charged) // max(1, cost)))

    # --- training --------------------------------------------------------------------------
    def _task(self, kind: str, design: Design, key: str, epochs: int, qat: int,
              fast: bool) -> TrainTask:
        return TrainTask(key=key, kind=kind, design=design.to_dict(), data=self.cfg.data,
                         out=str(self.run / "evals" / key), cache=str(self.run / "cache"),
                         seed=self.cfg.seed, epochs=epochs, qat_epochs=qat, fast=fast,
                         batch_size=batch_size_for(self.train_images, fast),
                         threads=FINAL_THREADS if kind == "final" else 1)

    def run_tasks(self, items: list[tuple[TrainTask, int | None, dict | None]]) -> list[dict]:
        """Run training tasks (taking finished ones from the journal); results in order."""
        results: dict[str, dict] = {}
        todo: list[TrainTask] = []
        for task, step, knobs in items:
            fin = self.journal.finished_eval(task.key)
            if fin is not None:
                results[task.key] = {**(fin["result"] or {}), "status": fin["status"],
                                     "error": fin["error"],
                                     "image_epochs": fin["image_epochs"]}
                self.replayed += 1
                continue
            if task.key in results or any(t.key == task.key for t in todo):
                continue
            self.journal.eval_started(task.key, task.kind, self.cfg.strategy, step,
                                      task.seed, task.design, knobs)
            todo.append(task)

        def done(task: TrainTask, res: dict) -> None:
            ie = int(res.get("image_epochs") or 0)
            self.journal.eval_finished(task.key, res["status"],
                                       res if res["status"] == "done" else None, ie,
                                       int(res.get("attempts", 1)), res.get("error"))
            self.progress.note(f"{task.kind} {task.key}: " + (
                f"IoU {res['fixed_iou']:.3f} fixed point / {res['float_iou']:.3f} float "
                f"({ie} image-epochs)" if res["status"] == "done" and res.get("fixed_iou")
                is not None else f"{res['status']} {res.get('error') or ''}"))
            results[task.key] = res
        if todo:
            self.executor.run(todo, done)
        return [results[t.key] for t, _, _ in items]

    def train(self, cands: list[Candidate], step: int, kind: str = "cand",
              check: bool = True) -> list[Evaluated]:
        """Fast-train candidates (memoised by the journal), charge them, measure them.
        With ``check``, a candidate the source can measure is measured first and not
        trained when it misses the targets (it is then in ``rejected``, not returned)."""
        cfg = self.cfg
        items = []
        for c in cands:
            key = f"{kind}-{c.key}-s{cfg.seed}"
            epochs, qat = ((cfg.proto_epochs, 0) if kind == "proto"
                           else (cfg.cand_epochs, cfg.cand_qat_epochs))
            items.append((self._task(kind, c.design, key, epochs, qat, True), step,
                          c.knobs.to_dict()))
        out = []
        if kind == "cand" and check:
            # timing needs no trained weights: a board that can measure a candidate checks
            # it before its training is paid for; one that misses the targets is rejected
            kept_items = []
            for it, c in zip(items, cands):
                rec = self._measure_untrained(c)
                if rec is not None and not _record_meets(rec, self.targets):
                    ev = Evaluated(c, it[0].key, "rejected", step=step,
                                   error=f"{rec.get('fps') or 0:.1f} FPS ({rec['source']}) "
                                         "misses the target before training")
                    ev.qos[rec["source"]] = {k: rec.get(k) for k in (
                        "source", "fps", "latency_ms", "power_w", "power_source")}
                    self.rejected[c.key] = ev
                    self.progress.note(f"{it[0].key}: rejected untrained, {ev.error}")
                    continue
                kept_items.append((it, c))
            items = [it for it, _ in kept_items]
            cands = [c for _, c in kept_items]
        for (task, _, _), c, res in zip(items, cands, self.run_tasks(items)):
            ie = int(res.get("image_epochs") or 0)
            self.charged += ie
            self.progress.advance(ie, self.charged)
            ev = Evaluated(c, task.key, res["status"], res.get("fixed_iou"),
                           res.get("float_iou"), ie, step, error=res.get("error"))
            ev.qos["estimated"] = {"source": "estimated", "fps": c.accel.fps,
                                   "power_w": c.accel.power_w, "dsp": c.accel.dsp,
                                   "bram18": c.accel.bram18, "lut": c.accel.lut,
                                   "fps_raw_model": estimate(c.design).fps}
            if kind != "proto" and res["status"] == "done":
                self.measure(ev)
            if kind != "proto":
                self.trained[ev.key] = ev
                self.order.append(ev.key)
            out.append(ev)
        return out

    def measure(self, ev: Evaluated) -> None:
        """QoS of a trained candidate from the source, when it can measure it."""
        d = ev.cand.design
        if not self.source.can_measure(d):
            # judged by estimate: no board has an overlay that runs it
            if self.journal.measurement(ev.cand.key, self.source.name) is None:
                self.journal.add_measurement(ev.cand.key, {**ev.qos["estimated"],
                                                           "needs_build": True},
                                             self.source.name, ev.key)
            ev.needs_build = True
            return
        rec = self.journal.measurement(ev.cand.key, self.source.name)
        fresh = rec is None
        if rec is None:
            got = self.source.measure([d], seed=self.cfg.seed)[0]
            if got is None:
                return
            rec = got.to_dict()
            self.journal.add_measurement(ev.cand.key, rec, self.source.name, ev.key)
        ev.qos[rec["source"]] = {k: rec.get(k) for k in ("source", "fps", "latency_ms",
                                                         "power_w", "power_source")}
        ev.needs_build = bool(getattr(self.source, "simulated", False))
        if ev.cand.key in self._probed:      # measured untrained already, and observed
            return
        self.estimator.observe(d, estimate(d), QoSRecord.from_dict(rec))
        entry = getattr(self.estimator, "journal_entry", lambda: None)()
        if fresh and entry is not None:      # corrections + error before/after (calibrate)
            self.journal.add_calibration({**entry, "design_key": ev.cand.key})
        self._cache.clear()          # the estimator changed: screen again

    def _measure_untrained(self, c: Candidate) -> dict | None:
        """The source's QoS record of ``c`` (random weights), measured once and observed
        once (replayed from the journal on resume); None when the source cannot."""
        if not self.source.can_measure(c.design):
            return None
        rec = self.journal.measurement(c.key, self.source.name)
        fresh = rec is None
        if fresh:
            m = self.source.measure([c.design], seed=self.cfg.seed)[0]
            if m is None:
                return None
            rec = m.to_dict()
            self.journal.add_measurement(c.key, rec, self.source.name)
        if c.key not in self._probed:
            self._probed.add(c.key)
            self.estimator.observe(c.design, estimate(c.design), QoSRecord.from_dict(rec))
            entry = getattr(self.estimator, "journal_entry", lambda: None)()
            if fresh and entry is not None:
                self.journal.add_calibration({**entry, "design_key": c.key})
            self._cache.clear()
        return rec

    def probe_uncertain(self, cands: list[Candidate]) -> None:
        """Measure, untrained (timing needs no trained weights), the screened candidate
        whose feasibility the calibrated estimate is least sure of, when that chance is
        worth a measurement (host_search.calibrate; replayed from the journal on resume)."""
        pick = getattr(self.estimator, "most_uncertain", None)
        cands = [c for c in cands
                 if c.key not in self._probed and self.source.can_measure(c.design)]
        got = pick([c.design for c in cands], self.targets.fps, self.targets.max_power_w) \
            if pick is not None and cands else None
        if got is None or got[1] < PROBE_MIN_CHANCE:
            return
        c = cands[got[0]]
        self._probed.add(c.key)
        rec = self.journal.measurement(c.key, self.source.name)
        fresh = rec is None
        if rec is None:
            m = self.source.measure([c.design], seed=self.cfg.seed)[0]
            if m is None:
                return
            rec = m.to_dict()
            self.journal.add_measurement(c.key, rec, self.source.name)
        self.estimator.observe(c.design, estimate(c.design), QoSRecord.from_dict(rec))
        entry = self.estimator.journal_entry()
        if fresh and entry is not None:
            self.journal.add_calibration({**entry, "design_key": c.key, "probe": True})
        self._cache.clear()

    # --- results ---------------------------------------------------------------------------
    def feasible(self) -> list[Evaluated]:
        return [e for e in (self.trained[k] for k in self.order)
                if e.status == "done" and e.iou is not None and e.meets(self.targets)]

    def best(self) -> Evaluated | None:
        f = self.feasible()
        if not f:
            return None
        return max(f, key=lambda e: (e.iou, e.float_iou or 0.0,
                                     e.best_qos().get("fps") or 0.0, e.key))


# ---------------------------------------------------------------------------
# Progress: a bar with ETA on a terminal, plain lines otherwise.
# ---------------------------------------------------------------------------

class Progress:
    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.bar = None
        self.t0 = time.time()
        if self.tty:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="img-ep", desc="search budget",
                                file=sys.stderr, dynamic_ncols=True)
            except ImportError:          # pragma: no cover - tqdm is in [host]
                self.bar = None

    def note(self, msg: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr, flush=True)

    def advance(self, n: int, charged: int) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(min(n, max(0, self.total - self.bar.n)))
            return
        el = time.time() - self.t0
        eta = el / charged * (self.total - charged) if charged else float("nan")
        print(f"budget {charged}/{self.total} image-epochs, {el:.0f} s elapsed"
              + (f", about {eta:.0f} s left" if math.isfinite(eta) and eta > 0 else ""),
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------
# The phases.
# ---------------------------------------------------------------------------

def _record_meets(rec: dict, targets: Targets) -> bool:
    if (rec.get("fps") or 0.0) < targets.fps:
        return False
    return targets.max_power_w is None or (rec.get("power_w") or 0.0) <= targets.max_power_w


def data_images(data: str) -> tuple[int, int]:
    """(training, validation) images of the data set's split (what every run trains on)."""
    from .data import load_dataset, split_by_subcategory
    ds = load_dataset(data)
    sp = split_by_subcategory(ds, seed=SPLIT_SEED)
    return len(sp.train.samples), len(sp.val.samples)


def fastest_in_space(s: Search, live: list[BundleInfo]) -> tuple[float, str]:
    """The best estimated FPS of the smallest network of the live bundles (those whose
    prototypes are fastest: the smallest networks rank alike)."""
    best, name = 0.0, ""
    for b in sorted(live, key=lambda b: (-b.estimate["max_fps"], b.key))[:8]:
        k = NetKnobs(b.key, 3, 8, 1.0, (0, 1, 2), 6, 6, 0.4)
        net = build_network(b.template, k, s.targets.base_input)
        if not valid_network(net):
            continue
        a = fit_accelerator(net, replace(s.targets, fps=float("inf")), s.estimator)
        if a is not None and a.max_fps > best:
            best, name = a.max_fps, b.key
    return best, name


def run_bundles(s: Search) -> list[BundleInfo]:
    cfg = s.cfg
    bundles = enumerate_bundles(cfg.bundle_layers)
    s.templates = {b.key: b.template for b in bundles}
    estimate_bundles(bundles, s.targets, s.estimator, cfg.replicas)
    for b in bundles:
        s.estimate_calls += b.estimate.get("accel", {}).get("screened", 0)
    live = [b for b in bundles if not b.dropped]
    s.bundles = bundles
    fastest, name = fastest_in_space(s, live)
    if fastest < cfg.target_fps:
        raise SearchError(f"no design in the search space reaches {cfg.target_fps:g} FPS on "
                          f"{cfg.device}: the fastest ({name}, smallest knobs) is estimated "
                          f"at {fastest:.1f} FPS; lower --target-fps")
    s.progress.note(f"bundles: {len(bundles)} enumerated, {len(live)} fit {cfg.device} "
                    f"(estimated); {s.estimate_calls} accelerator points screened")
    return live


def write_bundles(s: Search, groups: dict[str, str] | None = None,
                  ious: dict[str, float | None] | None = None) -> None:
    for b in s.bundles:
        s.journal.add_bundle(b.key, b.template.to_dict(), b.dropped, b.stage,
                             b.estimate or None, b.prototype or None,
                             (groups or {}).get(b.key), (ious or {}).get(b.key))


def run_qor(s: Search, live: list[BundleInfo]) -> list[str]:
    """Prototype, group and keep bundles (strategy scd); returns the kept bundle keys."""
    from .qor import keep_top, select_prototypes
    cfg = s.cfg
    proto_cost = s.cost(cfg.proto_epochs)
    n = max(1, int(cfg.qor_share * cfg.budget) // max(1, proto_cost))
    n = min(n, len(live), max(1, (cfg.budget - s.cand_cost) // max(1, proto_cost)))
    sel = select_prototypes(live, n, cfg.target_fps, cfg.max_power_w)
    if not sel.chosen:
        write_bundles(s, sel.groups)
        raise SearchError(f"no bundle's prototype gets within {cfg.target_fps:g} FPS on "
                          f"{cfg.device} (estimated); lower --target-fps or raise --max-power")
    write_bundles(s, sel.groups)
    s.progress.note(f"QoR: prototyping {len(sel.chosen)} bundle(s): "
                    + ", ".join(f"{b.key} [{sel.groups[b.key]}]" for b in sel.chosen))
    protos = []
    for b in sel.chosen:
        d = Design.from_dict(b.prototype)
        protos.append(Candidate(NetKnobs(b.key), d, _accel_of(b), b.estimate["macs"]))
    evs = s.train(protos, step=-1, kind="proto")
    ious = {b.key: e.float_iou for b, e in zip(sel.chosen, evs)}
    errors = {b.key: (e.error or "failed") for b, e in zip(sel.chosen, evs)
              if e.status != "done"}
    kept = keep_top(sel.chosen, sel.groups, ious, cfg.keep, errors)
    write_bundles(s, sel.groups, ious)
    if not kept:
        raise SearchError("every prototype's training failed; see the journal's evals table "
                          f"in {s.journal.path}")
    s.progress.note("QoR kept: " + ", ".join(f"{b.key} (IoU {ious[b.key] or 0:.3f})"
                                             for b in kept))
    return [b.key for b in kept]


def _accel_of(b: BundleInfo):
    from .space import AccelChoice
    a = dict(b.estimate["accel"])
    a["stages"] = tuple(tuple(x) for x in a["stages"])
    return AccelChoice(**a)


def calibrate_start(s: Search, live: list[BundleInfo], n: int = 3) -> None:
    """With a source that measures, measure (untrained) the prototypes of ``n`` bundles
    spread over the estimated speeds before any strategy starts, so every strategy screens
    with a calibrated estimate from its first step (same for all strategies)."""
    ordered = sorted((b for b in live if b.prototype), key=lambda b: (b.estimate["max_fps"],
                                                                       b.key))
    if not ordered:
        return
    picks = []
    for q in np.linspace(0.2, 0.8, n):
        b = ordered[int(round(q * (len(ordered) - 1)))]
        if b not in picks:
            picks.append(b)
    for b in picks:
        d = Design.from_dict(b.prototype)
        if s.source.can_measure(d):
            s._measure_untrained(Candidate(NetKnobs(b.key), d, _accel_of(b),
                                           b.estimate["macs"]))


def run_strategy(s: Search, live: list[BundleInfo]) -> None:
    calibrate_start(s, live)
    if s.cfg.strategy == "scd":
        from .scd import run_scd
        run_scd(s)
    elif s.cfg.strategy == "random":
        from .baselines import run_random
        run_random(s, [b.key for b in live])
    else:
        from .baselines import run_topdown
        run_topdown(s)


# ---------------------------------------------------------------------------
# Winners: full training, packages, overlay projects.
# ---------------------------------------------------------------------------

def winners(s: Search) -> list[Evaluated]:
    f = sorted(s.feasible(), key=lambda e: (-e.iou, -(e.float_iou or 0.0),
                                            -(e.best_qos().get("fps") or 0), e.key))
    return f[:s.cfg.winners]


def finish_winner(s: Search, ev: Evaluated) -> dict:
    """Full float + QAT training, export, overlay project, QoS of the package."""
    from .export import export_run
    from .overlay_build import write_project
    from pynq_codesign.package import PackageError, load_package
    cfg = s.cfg
    name = f"{cfg.strategy}-{ev.cand.key}"
    design = replace(ev.cand.design, name=name,
                     description=f"found by codesign search ({cfg.strategy}, seed {cfg.seed}), "
                                 f"bundle {ev.cand.knobs.bundle}")
    key = f"final-{ev.cand.key}-s{cfg.seed}"
    task = s._task("final", design, key, cfg.final_epochs, cfg.final_qat_epochs, False)
    res = s.run_tasks([(task, None, ev.cand.knobs.to_dict())])[0]
    if res["status"] != "done":
        raise SearchError(f"the winner's full training failed: {res.get('error')}; "
                          f"re-run `codesign search --resume {s.run}`")
    pkg_dir = s.run / PACKAGES / name
    pkg = None
    if (pkg_dir / "manifest.json").is_file():
        try:
            pkg = load_package(pkg_dir)
        except PackageError:
            pkg = None
    if pkg is None:
        tmp = s.run / PACKAGES / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if pkg_dir.exists():
            shutil.rmtree(pkg_dir)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        export_run(task.out, tmp, golden=2)
        os.replace(tmp, pkg_dir)
        pkg = load_package(pkg_dir)
    write_project(pkg, cfg.device, pkg_dir / "overlay-build")
    qos = {"estimated": estimate(pkg.design).to_dict()}
    if s.source.can_measure(pkg.design):
        rec = s.journal.measurement(design_key(pkg.design), s.source.name)
        if rec is None:
            rec = _measure_package(s, pkg)
            if rec is not None:
                s.journal.add_measurement(design_key(pkg.design), rec, s.source.name, key)
        if rec is not None:
            qos[rec["source"]] = rec
    label = next(x for x in ("measured", "simulated", "estimated") if x in qos)
    simulated_only = bool(getattr(s.source, "simulated", False))
    return {"name": name, "package": str(pkg_dir), "overlay_project": str(pkg_dir /
                                                                        "overlay-build"),
            "design_key": ev.cand.key, "bundle": ev.cand.knobs.bundle,
            "knobs": ev.cand.knobs.to_dict(), "accelerator": ev.cand.accel.to_dict(),
            "iou_fixed_point": res.get("fixed_iou"), "iou_float": res.get("float_iou"),
            "iou_label": "validation mean IoU after full float + QAT training, fixed point "
                         "integer-exact (as the accelerator computes)",
            "search_iou_fixed_point": ev.iou,
            "final_training_image_epochs": res.get("image_epochs"),
            "qos": qos, "qos_source": label,
            "meets_target": bool((qos[label].get("fps") or 0) >= cfg.target_fps),
            "needs_build": bool(simulated_only or not s.source.can_measure(pkg.design)),
            "needs_build_note": "no bitstream of this overlay exists yet: run "
                                f"{pkg_dir / 'overlay-build' / 'run.sh'} on a machine "
                                "with Vivado before a real board can run it"}


def _measure_package(s: Search, pkg) -> dict | None:
    if isinstance(s.source, SimBoardSource):
        from pynq_codesign.bench import run_bench, to_record
        from pynq_codesign.driver import Driver
        from pynq_codesign.platform.sim.board import SimPlatform
        with Driver(SimPlatform(s.source.board_seed), pkg) as drv:
            rec = to_record(drv, run_bench(drv, s.source.frames, warmup=1))
        return rec.to_dict()
    got = s.source.measure([pkg.design], seed=s.cfg.seed)[0]
    return got.to_dict() if got is not None else None


# ---------------------------------------------------------------------------
# Running a search.
# ---------------------------------------------------------------------------

def _source_and_estimator(cfg: SearchConfig):
    if cfg.boards:
        try:
            from .calibrate import CalibratedEstimator
            from .client import BoardFarmSource
        except ImportError as e:
            raise SearchError(f"--board needs the closed-loop client ({e})")
        return (BoardFarmSource(list(cfg.boards), token_file=cfg.token_file),
                CalibratedEstimator())
    if cfg.sim_board is not None:
        try:
            from .calibrate import CalibratedEstimator
            est = CalibratedEstimator()
        except ImportError:
            est = RatioEstimator()
        return SimBoardSource(cfg.sim_board), est
    return EstimateSource(), RawEstimator()


def run_search(cfg: SearchConfig, run: Path, executor: str = "local", workers: int = 1,
               address: str | None = None, progress: bool = True, resume: bool = False) -> dict:
    """Run (or resume) a search; returns the result dict (also RUN/result.json)."""
    cfg.check()
    train_n, val_n = data_images(cfg.data)
    if train_n < 1 or val_n < 1:
        raise SearchError(f"{cfg.data}: the split leaves {train_n} training and {val_n} "
                          "validation images; the search needs both")
    cand_cost = train_n * (cfg.cand_epochs + cfg.cand_qat_epochs)
    if cand_cost > cfg.budget:
        raise SearchError(f"--budget {cfg.budget} pays for no candidate: one costs "
                          f"{cand_cost} image-epochs here ({train_n} training images x "
                          f"{cfg.cand_epochs + cfg.cand_qat_epochs} epochs); raise --budget")
    run = Path(run)
    journal = Journal.open(run) if resume else Journal.create(run, cfg.to_dict())
    source, estimator = _source_and_estimator(cfg)
    ex = None
    try:
        s = Search(cfg, run, journal, None, source, estimator, progress)
        s.train_images = train_n
        journal.log("start", f"{'resume' if resume else 'start'} {cfg.strategy} seed "
                             f"{cfg.seed}, executor {executor}")
        t0 = time.time()
        ex = make_executor(executor, workers, address)
        s.executor = ex
        live = run_bundles(s)
        if cfg.strategy == "scd":
            s.kept = run_qor(s, live)
        else:
            write_bundles(s)
        run_strategy(s, live)
        wins = winners(s)
        if not wins:
            raise SearchError(f"no trained candidate met {cfg.target_fps:g} FPS within the "
                              f"budget of {cfg.budget} image-epochs (by "
                              f"{source.name}); raise --budget or lower --target-fps")
        finals = [finish_winner(s, w) for w in wins]
        result = build_result(s, finals, time.time() - t0)
        _atomic_json(run / RESULT, result)
        journal.set_meta("finished", time.time())
        journal.log("finish", f"best {finals[0]['name']}")
    finally:
        s_prog = locals().get("s")
        if s_prog is not None:
            s_prog.progress.close()
        if ex is not None:
            ex.close()
    from .search_report import write_report
    write_report(run)
    journal.close()
    return result


def pareto(evs: list[Evaluated]) -> list[Evaluated]:
    """Designs no other beats on both IoU and FPS (each by its best source)."""
    pts = [e for e in evs if e.status == "done" and e.iou is not None]
    front = []
    for e in pts:
        fe = e.best_qos().get("fps") or 0
        if not any((o.iou >= e.iou and (o.best_qos().get("fps") or 0) >= fe) and
                   (o.iou > e.iou or (o.best_qos().get("fps") or 0) > fe) for o in pts):
            front.append(e)
    return sorted(front, key=lambda e: -(e.best_qos().get("fps") or 0))


def build_result(s: Search, finals: list[dict], wall_s: float) -> dict:
    cfg = s.cfg
    evs = [s.trained[k] for k in s.order]
    front = pareto(evs)
    return {
        "best": finals[0], "winners": finals,
        "config": cfg.to_dict(), "strategy": cfg.strategy, "seed": cfg.seed,
        "budget_image_epochs": cfg.budget, "charged_image_epochs": s.charged,
        "estimate_calls": s.estimate_calls, "candidates_trained": len(evs),
        "source": s.source.name, "wall_s_this_session": round(wall_s, 1),
        "evaluations_replayed_from_journal": s.replayed,
        "pareto": [_row(e) for e in front],
        "labels": {"iou": "fixed-point validation IoU after the search's fast training "
                          "(reduced resolution, few epochs)",
                   "qos": "each figure keyed by its source: estimated (analytical model), "
                          "simulated (simulated board), measured (a real board)"},
    }


def _row(e: Evaluated) -> dict:
    q = e.best_qos()
    a = e.cand.accel
    return {"design_key": e.cand.key, "bundle": e.cand.knobs.bundle, "iou": e.iou,
            "fps": q.get("fps"), "fps_source": q.get("source"), "power_w": q.get("power_w"),
            "power_source": q.get("power_source") or q.get("source"), "dsp": a.dsp,
            "bram18": a.bram18, "resources_source": "estimated",
            "needs_build": e.needs_build,
            "knobs": e.cand.knobs.to_dict()}


def _atomic_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def print_summary(result: dict) -> None:
    b = result["best"]
    q = b["qos"][b["qos_source"]]
    print(f"Pareto designs (IoU: {result['labels']['iou']}):")
    print(f"  {'design':<22}{'bundle':<22}{'IoU':>6}{'FPS':>8} {'src':<10}{'power W':>8} "
          f"{'src':<10}{'DSP':>5}{'BRAM18':>7} (resources estimated)")
    for r in result["pareto"]:
        print(f"  {r['design_key']:<22}{r['bundle']:<22}{r['iou']:>6.3f}{r['fps']:>8.1f} "
              f"{r['fps_source']:<10}{(r['power_w'] or 0):>8.2f} {r['power_source']:<10}"
              f"{r['dsp']:>5}{r['bram18']:>7}")
    print(f"best: {b['name']} ({b['bundle']}): IoU {b['iou_fixed_point']:.3f} fixed point "
          f"after full training; {q['fps']:.1f} FPS ({b['qos_source']}), "
          f"{(q.get('power_w') or 0):.2f} W ({q.get('power_source') or b['qos_source']})"
          f"{'; needs an overlay build' if b['needs_build'] else ''}")
    print(f"package: {b['package']}; budget {result['charged_image_epochs']}/"
          f"{result['budget_image_epochs']} image-epochs, {result['estimate_calls']} "
          f"estimate calls; report: {Path(b['package']).parents[1] / REPORT / 'report.html'}")


# ---------------------------------------------------------------------------
# The command.
# ---------------------------------------------------------------------------

def _input_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise SearchError(f"--input {text!r}: give HEIGHTxWIDTH, e.g. 160x360")
    if h < 16 or w < 16:
        raise SearchError(f"--input {text}: at least 16x16")
    return h, w


def main(args: argparse.Namespace) -> int:
    """``codesign search ...``, ``codesign search --resume RUN``, ``codesign search report RUN``."""
    rest = list(getattr(args, "action", None) or [])
    if rest:
        if rest[0] != "report" or len(rest) != 2:
            raise SearchError("usage: codesign search report RUN (or codesign search "
                              "--device ... --out RUN, or codesign search --resume RUN)")
        from .search_report import write_report
        path = write_report(Path(rest[1]))
        print(f"report: {path}")
        return 0
    if args.resume:
        run = Path(args.resume)
        j = Journal.open(run)
        try:
            cfg = SearchConfig.from_dict(j.config())
        except TypeError as e:
            raise JournalError(f"{run / JOURNAL}: its configuration is not one this version "
                               f"reads ({e})")
        finally:
            j.close()
    else:
        missing = [o for o, v in (("--data", args.data), ("--target-fps", args.target_fps),
                                  ("--budget", args.budget), ("--out", args.out)) if v is None]
        if missing:
            raise SearchError(f"{', '.join(missing)} required (or --resume RUN)")
        run = Path(args.out)
        if not Path(args.data).is_dir():
            raise SearchError(f"--data {args.data}: no such folder; write the built-in set "
                              f"with `codesign data synth --out {args.data}`")
        cfg = SearchConfig(
            device=args.device, data=str(Path(args.data).resolve()),
            target_fps=float(args.target_fps), budget=int(args.budget),
            strategy=args.strategy, seed=args.seed, max_power_w=args.max_power,
            proto_epochs=args.proto_epochs, cand_epochs=args.cand_epochs,
            cand_qat_epochs=args.cand_qat_epochs, final_epochs=args.final_epochs,
            final_qat_epochs=args.final_qat_epochs, bundle_layers=args.bundle_layers,
            batch=args.batch, input=_input_size(args.input), sim_board=args.sim_board, boards=tuple(args.board or ()),
            token_file=args.token_file)
        cfg.check()
    result = run_search(cfg, run, args.executor, args.workers, args.address,
                        progress=True, resume=bool(args.resume))
    print_summary(result)
    return 0
