"""Where a candidate's QoS comes from: sources that measure, estimators that screen.

Two interfaces (docs/search.md; LOOP implements them for board farms):

* :class:`QoSSource`: ``measure(designs, seed)`` gives one :class:`QoSRecord` per design
  (``None`` where it cannot), ``can_measure(design)`` says whether an overlay that runs it
  is on a board. :class:`EstimateSource` is the analytical model (``estimated``);
  :class:`SimBoardSource` is an in-process simulated board that loads a random-weight
  package of the candidate (:func:`pynq_codesign.randparams.random_package`) and runs the
  benchmark on it (``simulated``), as the closed loop measures a real board.
* :class:`Estimator`: ``screen(batch)`` gives FPS and power arrays with an uncertainty for
  thousands of points (:class:`ScreenResult`, labelled ``estimated``); ``observe`` feeds a
  measurement back. :class:`RawEstimator` is the model as it is; :class:`RatioEstimator`
  scales it by the measured/estimated ratios seen so far (a minimal calibration used with
  ``--sim-board`` when ``host_search.calibrate.CalibratedEstimator`` is not installed).

The estimate knows no board CPU time (pre-processing, decoding); a measurement does, so a
board's FPS is lower than the estimate's: screening with a calibrated estimator closes that.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from pynq_codesign.design import Design
from pynq_codesign.qos import QoSRecord

from .qos_model import BatchEstimate, DesignBatch, estimate, estimate_batch

#: Frames a simulated board runs per measurement (after one warm-up frame).
SIM_FRAMES = 3
#: Relative FPS / power uncertainty of a ratio estimator before any observation.
PRIOR_SIGMA = 0.0


@dataclass
class ScreenResult:
    """Screened QoS of a batch: arrays of shape (N,), labelled by where they came from."""

    fps: np.ndarray
    power_w: np.ndarray
    sigma_fps: np.ndarray
    sigma_power: np.ndarray
    fits: np.ndarray
    raw: BatchEstimate
    label: str = "estimated"


@runtime_checkable
class QoSSource(Protocol):
    name: str

    def can_measure(self, design: Design) -> bool: ...

    def measure(self, designs: Sequence[Design], seed: int = 0) -> list[QoSRecord | None]: ...


@runtime_checkable
class Estimator(Protocol):
    def screen(self, designs) -> ScreenResult: ...

    def observe(self, design: Design, estimate: QoSRecord, measured: QoSRecord) -> None: ...


def _as_batch(designs) -> DesignBatch:
    if isinstance(designs, DesignBatch):
        return designs
    return DesignBatch.from_designs(list(designs))


class RawEstimator:
    """The analytical model as it is; observations change nothing."""

    label = "estimated"

    def screen(self, designs) -> ScreenResult:
        e = estimate_batch(_as_batch(designs))
        z = np.zeros_like(e.fps)
        return ScreenResult(e.fps, e.power_w, z, z, e.fits, e, self.label)

    def observe(self, design: Design, estimate: QoSRecord, measured: QoSRecord) -> None:
        return None

    def state(self) -> dict:
        return {"kind": "raw"}


@dataclass
class RatioEstimator:
    """The model scaled by the geometric mean of measured / estimated FPS and power; the
    spread of those ratios is its uncertainty (one sigma)."""

    fps_ratios: list[float] = field(default_factory=list)
    power_ratios: list[float] = field(default_factory=list)
    label: str = "estimated"

    @staticmethod
    def _stats(ratios: list[float]) -> tuple[float, float]:
        if not ratios:
            return 1.0, PRIOR_SIGMA
        logs = np.log(np.asarray(ratios))
        sd = float(logs.std(ddof=1)) if len(logs) > 1 else 0.1
        return float(math.exp(logs.mean())), sd

    def screen(self, designs) -> ScreenResult:
        e = estimate_batch(_as_batch(designs))
        kf, sf = self._stats(self.fps_ratios)
        kp, sp = self._stats(self.power_ratios)
        fps, pw = e.fps * kf, e.power_w * kp
        return ScreenResult(fps, pw, fps * sf, pw * sp, e.fits, e, self.label)

    def observe(self, design: Design, estimate: QoSRecord, measured: QoSRecord) -> None:
        if measured.fps and estimate.fps:
            self.fps_ratios.append(measured.fps / estimate.fps)
        if measured.power_w and estimate.power_w:
            self.power_ratios.append(measured.power_w / estimate.power_w)

    def state(self) -> dict:
        kf, sf = self._stats(self.fps_ratios)
        kp, sp = self._stats(self.power_ratios)
        return {"kind": "ratio", "fps_scale": kf, "fps_sigma_rel": sf, "power_scale": kp,
                "power_sigma_rel": sp, "observations": len(self.fps_ratios)}


class EstimateSource:
    """QoS from the analytical model (never a board: every design needs a build)."""

    name = "estimate"

    def can_measure(self, design: Design) -> bool:
        return False

    def measure(self, designs: Sequence[Design], seed: int = 0) -> list[QoSRecord | None]:
        return [estimate(d) for d in designs]


class SimBoardSource:
    """An in-process simulated PYNQ board with hidden physics drawn from ``board_seed``.

    It loads whatever overlay a package asks for (a simulated bitstream is built at once),
    so it measures every candidate; the records say ``simulated``. Weights are random: the
    timing does not depend on their values.
    """

    #: a simulated board loads any overlay, but no bitstream of it exists for a real one
    simulated = True

    def __init__(self, board_seed: int, frames: int = SIM_FRAMES):
        self.board_seed = int(board_seed)
        self.frames = frames
        self.name = f"sim-board:{self.board_seed}"

    def can_measure(self, design: Design) -> bool:
        return True

    def measure(self, designs: Sequence[Design], seed: int = 0) -> list[QoSRecord | None]:
        from pynq_codesign.bench import run_bench, to_record
        from pynq_codesign.driver import Driver
        from pynq_codesign.platform.sim.board import SimPlatform
        from pynq_codesign.randparams import random_package
        out: list[QoSRecord | None] = []
        with tempfile.TemporaryDirectory(prefix="codesign-sim-") as tmp:
            for i, d in enumerate(designs):
                pkg = random_package(Path(tmp) / f"p{i}", d, seed=seed)
                with Driver(SimPlatform(self.board_seed), pkg) as drv:
                    rec = to_record(drv, run_bench(drv, self.frames, warmup=1))
                rec.extra["board_seed"] = self.board_seed
                out.append(rec)
        return out
