"""Calibration: corrections to the analytical model's terms, fitted from measured QoS.

The model (:func:`host_search.qos_model.estimate_batch`) splits every bundle's latency
into terms (``latency_terms_ms``: per-pass overhead, weight loads, feature-map transfers,
compute per stage kind) and power into static, fabric and DDR parts. A board's hidden
physics (DDR efficiency, burst gaps, memory latency, driver costs, its CPU, its power)
scale those terms differently, and the model knows nothing of the board CPU's time per
frame (packing the input, decoding the output). :class:`Calibration` fits, from measured
(or simulated) QoS records:

* **accelerator**: one factor per latency term, measured per bundle; compute has a shared
  factor plus a small deviation per stage kind, so a kind never measured still gets the
  shared correction (Bayesian ridge regression on relative errors, prior: the model is
  right);
* **board CPU**: pre-processing and decoding time per frame, linear in the input and
  output bytes;
* **frame rate**: the double-buffered pipeline's wall time for ``n`` frames,
  ``pre + A + (n - 1) * max(pre, A)`` with ``A`` = accelerator + decoding, as the
  benchmark counts it (frames / time from the first read to the last result);
* **power**: static offset and factors on the model's static and fabric parts, plus
  per GMAC/s and per GB/s terms from the corrected frame rate;

each with an uncertainty (the posterior of the factors and the residual spread).
:class:`CalibratedEstimator` is the search's estimator (``host_search.measure.Estimator``):
``screen`` gives calibrated FPS and power with a one-sigma uncertainty, ``observe`` adds a
measurement and refits, :meth:`CalibratedEstimator.choose` picks the candidates whose
measurement would most change a decision (feasible or not: the probability that the
target FPS lies on the other side of the estimate), and every refit leaves a journal entry
(:meth:`CalibratedEstimator.journal_entry`: the corrections, and the error before and
after on the design just measured and on all measured so far).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pynq_codesign.design import Design
from pynq_codesign.qos import QoSRecord
from pynq_codesign.wire import BEAT_BYTES, feature_elem_bytes

from .qos_model import BatchEstimate, DesignBatch, estimate_batch, layer_shapes

#: Stage kinds whose compute has its own (small) deviation from the shared factor.
KINDS = ("dw", "pw", "conv3", "pool")
#: Latency features, their prior means and standard deviations (factors on the terms).
#: ``buffer_kb``: kB of buffers the driver flushes / invalidates whole per pass (cacheable
#: buffers: the send buffer, then the receive buffer), ms per kB; the model has no such
#: term (prior 0).
LAT_FEATURES = ("overhead", "weights", "transfer", "compute") + tuple(
    f"compute_{k}" for k in KINDS) + ("buffer_kb",)
LAT_PRIOR_MEAN = np.array([1.0, 1.0, 1.0, 1.0] + [0.0] * len(KINDS) + [0.0])
LAT_PRIOR_SD = np.array([3.0, 1.5, 0.7, 0.7] + [0.15] * len(KINDS) + [0.005])
#: Features whose factor cannot be negative (a term never saves time).
LAT_NONNEG = np.array([True] * 4 + [False] * len(KINDS) + [True])
#: Power features: intercept (W), model static, model fabric, GMAC/s, GB/s, the board
#: CPU's busy share (of its cores) and the accelerator's busy share.
POW_FEATURES = ("offset_w", "static", "fabric", "w_per_gmacs", "w_per_gbps",
                "w_cpu_busy", "w_accel_busy")
POW_PRIOR_MEAN = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
POW_PRIOR_SD = np.array([0.5, 0.3, 1.0, 0.1, 1.0, 1.0, 0.3])
#: Board CPU per frame: ms = a + b * k-elements (pre-processing: input map, decoding:
#: output map).
CPU_PRIOR_SD = np.array([5.0, 1.0])
#: Floor of the residual spread (relative), so that a few lucky fits stay humble.
MIN_REL_SD = 0.01
#: Frames per measurement the estimate's frame rate refers to (the farm's default).
DEFAULT_FRAMES = 16


@dataclass
class Features:
    """What the calibration reads of N design points (from the model's estimate)."""

    lat: np.ndarray            # (N, B, F) latency features per bundle, ms
    in_kb: np.ndarray          # (N,) input map, thousands of elements
    out_kb: np.ndarray         # (N,) output map, thousands of elements
    frame_ms: np.ndarray       # (N,) the model's frame overhead
    power: np.ndarray          # (N, 3) model static, fabric, DDR W
    macs: np.ndarray           # (N,)
    ddr_bytes: np.ndarray      # (N,) per frame
    raw: BatchEstimate
    cpu_cores: int = 2         # the board CPU's cores (device profile)

    @classmethod
    def of(cls, batch: DesignBatch, e: BatchEstimate | None = None) -> "Features":
        e = e if e is not None else estimate_batch(batch)
        t = e.latency_terms_ms
        n, nb = e.bundle_latency_ms.shape
        z = np.zeros((n, nb))
        comp = {k: t.get(f"compute_{k}", z) for k in KINDS}
        shp = layer_shapes(batch)
        eb = np.asarray([feature_elem_bytes(int(f)) for f in batch.feature_bits], np.float64)
        lanes = BEAT_BYTES // eb

        def kb(c, h, w):                  # a map's bytes in DDR (channels padded to a beat)
            return h * w * np.ceil(c / lanes) * lanes * eb / 1024.0
        topo = batch.topology
        pin = [kb(shp[ps.layers[0]].in_c, shp[ps.layers[0]].in_h, shp[ps.layers[0]].in_w)
               for ps in topo.passes]
        pout = [kb(shp[ps.layers[-1]].out_c, shp[ps.layers[-1]].out_h,
                   shp[ps.layers[-1]].out_w) for ps in topo.passes]
        largest = np.max([np.maximum(a, b) for a, b in zip(pin, pout)], axis=0)
        # the driver flushes the whole send buffer and invalidates the whole receive
        # buffer of every pass (cacheable buffers): the input buffer, then ping-pong
        # buffers of the largest map
        cache_kb = np.zeros((n, nb))
        for j, ps in enumerate(topo.passes):
            cache_kb[:, ps.bundle] += (pin[0] if j == 0 else largest) + largest
        cols = [t.get("overhead", z), t.get("weights", z), t.get("transfer", z),
                sum(comp.values())] + [comp[k] for k in KINDS] + [cache_kb]
        lat = np.stack(cols, axis=2)
        first, last = shp[0], shp[-1]
        in_kb = first.in_h * first.in_w * first.in_c / 1000.0
        out_kb = last.out_h * last.out_w * last.out_c / 1000.0
        p = e.power_terms_w
        power = np.stack([p["static"], p["fabric"], p["ddr"]], axis=1)
        fo = e.frame_overhead_ms if e.frame_overhead_ms is not None else np.zeros(n)
        return cls(lat, np.asarray(in_kb, np.float64), np.asarray(out_kb, np.float64),
                   np.asarray(fo, np.float64), power, np.asarray(e.macs, np.float64),
                   np.asarray(e.ddr_bytes, np.float64), e, batch.topology.device.cpu_cores)


@dataclass
class Measured:
    """What a measured QoS record says, as the calibration reads it."""

    bundles_ms: np.ndarray
    pre_ms: float
    post_ms: float
    fps: float
    frames: int
    power_w: float | None
    power_source: str | None

    @classmethod
    def of(cls, rec: QoSRecord) -> "Measured":
        split = rec.extra.get("time_split_ms", {}) or {}
        return cls(np.asarray([b.latency_ms for b in rec.bundles], np.float64),
                   float(split.get("preprocess", 0.0)), float(split.get("decode", 0.0)),
                   float(rec.fps or 0.0), int(rec.extra.get("frames", DEFAULT_FRAMES)),
                   rec.power_w, rec.power_source)


def _bayes(X: np.ndarray, y: np.ndarray, w: np.ndarray, mu0: np.ndarray,
           sd0: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted Bayesian ridge: posterior mean, covariance and the residual spread (in the
    weighted, i.e. relative, units); the spread is re-estimated twice."""
    if len(y) == 0:
        return mu0.copy(), np.diag(sd0 ** 2), 0.05
    P0 = np.diag(1.0 / sd0 ** 2)
    s2 = 0.05 ** 2
    Xw, yw = X * w[:, None], y * w
    for _ in range(3):
        A = P0 + Xw.T @ Xw / s2
        cov = np.linalg.inv(A)
        m = cov @ (P0 @ mu0 + Xw.T @ yw / s2)
        r = yw - Xw @ m
        dof = max(len(y) - 1, 1)
        s2 = max(float(r @ r) / dof, MIN_REL_SD ** 2)
    return m, cov, math.sqrt(s2)


def wall_ms(pre: np.ndarray, accel_plus_post: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """Wall time of ``n`` frames through the double-buffered pipeline (read first image to
    last result)."""
    return pre + accel_plus_post + (np.asarray(n) - 1) * np.maximum(pre, accel_plus_post)


@dataclass
class Prediction:
    """Calibrated QoS of N points, each with a one-sigma uncertainty."""

    fps: np.ndarray
    sigma_fps: np.ndarray
    power_w: np.ndarray
    sigma_power: np.ndarray
    accel_ms: np.ndarray
    bundle_ms: np.ndarray       # (N, B)
    pre_ms: np.ndarray
    post_ms: np.ndarray


@dataclass
class Calibration:
    """The fitted corrections (the prior until something was measured)."""

    lat_mean: np.ndarray = field(default_factory=lambda: LAT_PRIOR_MEAN.copy())
    lat_cov: np.ndarray = field(default_factory=lambda: np.diag(LAT_PRIOR_SD ** 2))
    lat_sd: float = 0.05
    pre: tuple[np.ndarray, np.ndarray, float] | None = None
    post: tuple[np.ndarray, np.ndarray, float] | None = None
    pow_mean: np.ndarray = field(default_factory=lambda: POW_PRIOR_MEAN.copy())
    pow_cov: np.ndarray = field(default_factory=lambda: np.diag(POW_PRIOR_SD ** 2))
    pow_sd: float = 0.05
    n: int = 0

    @classmethod
    def fit(cls, feats: Sequence[Features], meas: Sequence[Measured]) -> "Calibration":
        """Fit every correction from observations (one Features row and one Measured each)."""
        cal = cls(n=len(meas))
        if not meas:
            return cal
        X, y = [], []
        for f, m in zip(feats, meas):
            X.append(f.lat[0])
            y.append(m.bundles_ms)
        Xl, yl = np.concatenate(X), np.concatenate(y)
        ok = yl > 0
        mu, sd = LAT_PRIOR_MEAN.copy(), LAT_PRIOR_SD.copy()
        for _ in range(len(mu)):          # pin a factor that came out negative at zero
            cal.lat_mean, cal.lat_cov, cal.lat_sd = _bayes(Xl[ok], yl[ok], 1.0 / yl[ok],
                                                           mu, sd)
            neg = LAT_NONNEG & (cal.lat_mean < 0) & (sd > 1e-6)
            if not neg.any():
                break
            mu[neg], sd[neg] = 0.0, 1e-6
        ones = np.ones(len(meas))
        kin = np.array([f.in_kb[0] for f in feats])
        kout = np.array([f.out_kb[0] for f in feats])
        pre = np.array([m.pre_ms for m in meas])
        post = np.array([m.post_ms for m in meas])
        sc = max(float(np.mean(pre + post)), 0.05)
        cal.pre = _bayes(np.stack([ones, kin], 1), pre, ones / sc, np.zeros(2), CPU_PRIOR_SD)
        cal.post = _bayes(np.stack([ones, kout], 1), post, ones / sc, np.zeros(2),
                          CPU_PRIOR_SD)
        rows, yp = [], []
        for f, m in zip(feats, meas):
            if m.power_w is None or m.power_source == "estimated":
                continue
            rows.append(_power_row(f, np.array([m.fps]), np.array([m.pre_ms]),
                                   np.array([m.post_ms]),
                                   np.array([m.bundles_ms.sum()]))[0])
            yp.append(m.power_w)
        if rows:
            yp_a = np.asarray(yp)
            cal.pow_mean, cal.pow_cov, cal.pow_sd = _bayes(
                np.asarray(rows), yp_a, 1.0 / yp_a, POW_PRIOR_MEAN, POW_PRIOR_SD)
        return cal

    def predict(self, f: Features, frames: int = DEFAULT_FRAMES) -> Prediction:
        lat = f.lat                                      # (N, B, F)
        bundle = lat @ self.lat_mean
        accel = bundle.sum(axis=1)
        xs = lat.sum(axis=1)                             # (N, F)
        var_acc = np.einsum("nf,fg,ng->n", xs, self.lat_cov, xs) \
            + (self.lat_sd * accel) ** 2 / max(lat.shape[1], 1)
        if self.pre is None:
            pre = np.zeros_like(accel)
            post = f.frame_ms.copy()
            var_cpu = (0.5 * (post + 1.0)) ** 2
        else:
            ones = np.ones_like(accel)
            Xi, Xo = np.stack([ones, f.in_kb], 1), np.stack([ones, f.out_kb], 1)
            pre = np.maximum(Xi @ self.pre[0], 0.0)
            post = np.maximum(Xo @ self.post[0], 0.0)
            var_cpu = (np.einsum("nf,fg,ng->n", Xi, self.pre[1], Xi)
                       + np.einsum("nf,fg,ng->n", Xo, self.post[1], Xo))
        a = accel + post
        wall = wall_ms(pre, a, frames)
        fps = 1e3 * frames / wall
        sd_wall = np.sqrt(var_acc * frames ** 2 + var_cpu * frames ** 2)
        sigma_fps = fps * np.minimum(sd_wall / wall, 1.0)
        rows = _power_row(f, fps, pre, post, accel)
        pw = rows @ self.pow_mean
        var_p = np.einsum("nf,fg,ng->n", rows, self.pow_cov, rows) + (self.pow_sd * pw) ** 2
        return Prediction(fps, sigma_fps, pw, np.sqrt(var_p), accel, bundle, pre, post)

    def to_dict(self) -> dict:
        """The corrections for a person (and the journal)."""
        d = {"measurements": self.n,
             "latency_factors": {k: round(float(v), 4)
                                 for k, v in zip(LAT_FEATURES, self.lat_mean)},
             "latency_factor_sd": {k: round(float(math.sqrt(v)), 4)
                                   for k, v in zip(LAT_FEATURES, np.diag(self.lat_cov))},
             "latency_residual_rel_sd": round(self.lat_sd, 4),
             "power": {k: round(float(v), 4) for k, v in zip(POW_FEATURES, self.pow_mean)},
             "power_residual_rel_sd": round(self.pow_sd, 4)}
        if self.pre is not None:
            d["board_cpu_ms"] = {"pre_ms": round(float(self.pre[0][0]), 4),
                                 "pre_ms_per_kb": round(float(self.pre[0][1]), 5),
                                 "decode_ms": round(float(self.post[0][0]), 4),
                                 "decode_ms_per_kb": round(float(self.post[0][1]), 5)}
        return d


def _power_row(f: Features, fps: np.ndarray, pre_ms: np.ndarray, post_ms: np.ndarray,
               accel_ms: np.ndarray) -> np.ndarray:
    """Power features (N, 7) at ``fps`` with the frame's CPU and accelerator times: 1,
    model static, model fabric, GMAC/s, GB/s, CPU busy share (of all cores; the driver
    busy-waits on the accelerator), accelerator busy share."""
    n = f.power.shape[0]
    cpu = np.clip((pre_ms + post_ms + accel_ms) * fps / (1e3 * f.cpu_cores), 0.0, 1.0)
    acc = np.clip(accel_ms * fps / 1e3, 0.0, 1.0)
    return np.stack([np.ones(n), f.power[:, 0], f.power[:, 1], f.macs * fps / 1e9,
                     f.ddr_bytes * fps / 1e9, cpu, acc], axis=1)


def features_of(designs) -> Features:
    batch = designs if isinstance(designs, DesignBatch) else DesignBatch.from_designs(
        list(designs))
    return Features.of(batch)


def rel_errors(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    return (np.asarray(pred, np.float64) - meas) / meas


class CalibratedEstimator:
    """The search's estimator with per-term corrections and an uncertainty
    (``host_search.measure.Estimator``)."""

    label = "estimated"

    def __init__(self, frames: int = DEFAULT_FRAMES):
        self.frames = frames
        self.feats: list[Features] = []
        self.meas: list[Measured] = []
        self.names: list[str] = []
        self.cal = Calibration()
        self.entries: list[dict] = []

    def screen(self, designs):
        """Calibrated FPS and power of a batch (one topology) with one-sigma arrays."""
        from .measure import ScreenResult
        f = features_of(designs)
        p = self.cal.predict(f, self.frames)
        return ScreenResult(p.fps, p.power_w, p.sigma_fps, p.sigma_power, f.raw.fits, f.raw,
                            self.label)

    def predict(self, design: Design) -> Prediction:
        return self.cal.predict(features_of([design]), self.frames)

    def observe(self, design: Design, estimate: QoSRecord | None, measured: QoSRecord) -> None:
        """Add a measurement of ``design`` and refit (``estimate`` is not needed: the
        features come from the model's term split)."""
        f = features_of([design])
        m = Measured.of(measured)
        if len(m.bundles_ms) != f.lat.shape[1] or m.fps <= 0:
            return                                   # a record without per-bundle times
        before = self.cal.predict(f, m.frames)
        raw_fps = float(f.raw.fps[0])
        self.feats.append(f)
        self.meas.append(m)
        self.names.append(design.name)
        self.cal = Calibration.fit(self.feats, self.meas)
        after = self.cal.predict(f, m.frames)
        entry = {"design": design.name, "measured_fps": m.fps,
                 "measured_power_w": m.power_w, "power_source": m.power_source,
                 "source": measured.source,
                 "fps_error_raw": round(float(rel_errors(raw_fps, m.fps)), 5),
                 "fps_error_before": round(float(rel_errors(before.fps[0], m.fps)), 5),
                 "fps_error_after": round(float(rel_errors(after.fps[0], m.fps)), 5),
                 "sigma_fps_rel_after": round(float(after.sigma_fps[0] / after.fps[0]), 5),
                 "corrections": self.cal.to_dict()}
        if m.power_w:
            entry.update(
                power_error_raw=round(float(rel_errors(f.raw.power_w[0], m.power_w)), 5),
                power_error_before=round(float(rel_errors(before.power_w[0], m.power_w)), 5),
                power_error_after=round(float(rel_errors(after.power_w[0], m.power_w)), 5))
        fit = self.fit_errors()
        entry.update(fit)
        self.entries.append(entry)

    def fit_errors(self) -> dict:
        """FPS MAPE over every measured design: raw model and calibrated (in-sample)."""
        if not self.meas:
            return {}
        raw = [abs(float(rel_errors(f.raw.fps[0], m.fps))) for f, m in zip(self.feats,
                                                                           self.meas)]
        cal = [abs(float(rel_errors(self.cal.predict(f, m.frames).fps[0], m.fps)))
               for f, m in zip(self.feats, self.meas)]
        return {"fps_mape_raw_all": round(100 * float(np.mean(raw)), 3),
                "fps_mape_calibrated_all": round(100 * float(np.mean(cal)), 3)}

    def journal_entry(self) -> dict | None:
        """The latest refit for :meth:`host_search.journal.Journal.add_calibration`."""
        return self.entries[-1] if self.entries else None

    def choose(self, screen, k: int, target_fps: float | None = None,
               max_power_w: float | None = None) -> list[int]:
        """Indices of the ``k`` points worth measuring most: those whose feasibility the
        estimate is least sure of (the probability that the truth lies across the FPS
        target or the power limit), or without targets the largest relative
        uncertainty."""
        fps, sf = np.asarray(screen.fps), np.maximum(np.asarray(screen.sigma_fps), 1e-9)
        if target_fps is None and max_power_w is None:
            score = sf / np.maximum(fps, 1e-9)
        else:
            score = np.zeros_like(fps)
            if target_fps is not None:
                score = np.maximum(score, _p_across(fps, sf, target_fps))
            if max_power_w is not None:
                pw = np.asarray(screen.power_w)
                sp = np.maximum(np.asarray(screen.sigma_power), 1e-9)
                score = np.maximum(score, _p_across(pw, sp, max_power_w))
        order = np.argsort(-score, kind="stable")
        return [int(i) for i in order[:k]]

    def most_uncertain(self, designs: Sequence[Design], target_fps: float | None,
                       max_power_w: float | None = None) -> tuple[int, float] | None:
        """The design (of any topologies) whose feasibility is least certain, and the
        probability that its truth lies across a target; None for no designs."""
        if not designs:
            return None
        preds = [self.predict(d) for d in designs]

        def arr(name: str) -> np.ndarray:
            return np.array([float(getattr(p, name)[0]) for p in preds])
        from types import SimpleNamespace
        scr = SimpleNamespace(fps=arr("fps"), sigma_fps=arr("sigma_fps"),
                              power_w=arr("power_w"), sigma_power=arr("sigma_power"))
        i = self.choose(scr, 1, target_fps, max_power_w)[0]
        p = 0.0
        if target_fps is not None:
            p = float(_p_across(scr.fps[i:i + 1], np.maximum(scr.sigma_fps[i:i + 1], 1e-9),
                                target_fps)[0])
        if max_power_w is not None:
            p = max(p, float(_p_across(scr.power_w[i:i + 1],
                                       np.maximum(scr.sigma_power[i:i + 1], 1e-9),
                                       max_power_w)[0]))
        return i, p

    def state(self) -> dict:
        return {"kind": "calibrated", **self.cal.to_dict(), **self.fit_errors()}


def _p_across(x: np.ndarray, sd: np.ndarray, limit: float) -> np.ndarray:
    """Probability that a normal(x, sd) lies on the other side of ``limit`` than x."""
    z = np.abs(x - limit) / sd
    return 0.5 * np.vectorize(math.erfc)(z / math.sqrt(2.0))
