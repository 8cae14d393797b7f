"""The co-search's design space: a bundle template plus knobs becomes a design point.

A network in the search is a bundle template (:class:`host_search.bundles.BundleTemplate`)
stacked ``depth`` times bottom-up (:class:`NetKnobs`): bundle ``i`` outputs
``base_ch * growth**i`` channels (a multiple of 4, at most :data:`MAX_CHANNELS`), the
bundles listed in ``down`` halve the feature map (a trailing 2x2 pool, or stride 2 on the
template's first 3x3 layer when the template down-samples by stride), and the last bundle
ends with the detection head (a PW1 with ``5 x anchors`` outputs, no activation). The
weight and feature-map bit widths and the input size (a resize of the paper's 3x160x360
input) are knobs too.

The accelerator half follows the network (the network's needs resize the accelerator):
:func:`fit_accelerator` screens every parallelism / band-rows / clock choice of the
engine's stage chain with the vectorised estimate (thousands of points in milliseconds),
keeps those that fit the device, and picks the one that meets the targets with the least
power (or, when none meets them, the fastest). Its buffers are sized by
:func:`pynq_codesign.design.size_overlay`.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from pynq_codesign.design import (Bundle, Decode, Design, Layer, Network, Stage,
                                  size_overlay)
from pynq_codesign.fixedpoint import FixedFormat

from .qos_model import DesignBatch

#: The paper's network input (DAC-SDC, 3x160x360); knobs resize it.
BASE_INPUT = (160, 360)
#: Input resize factors the search may choose.
SCALES = (1.0, 0.8, 0.6, 0.5, 0.4)
DEPTHS = (3, 4, 5, 6)
BASE_CHANNELS = (8, 12, 16, 24, 32, 48, 64)
GROWTHS = (1.0, 1.25, 1.5, 2.0)
WEIGHT_BITS = (6, 8, 11, 16)
FEATURE_BITS = (6, 8, 12, 16)
MIN_DOWN, MAX_DOWN = 2, 4
MAX_CHANNELS = 512
#: Integer bits of the default formats before calibration (training re-chooses them).
WEIGHT_INT_BITS, FEATURE_INT_BITS, INPUT_FORMAT = 2, 4, FixedFormat(8, 3)

#: The accelerator choices screened per network: parallelism per stage kind, band rows,
#: fabric clock (a subset of the device's clock generator's outputs).
PARALLELISM = {
    "dw": [(pe, 1) for pe in (1, 2, 4, 8, 16)],
    "pw": [(pe, simd) for pe in (4, 8, 16, 32) for simd in (2, 4, 8, 16)],
    "conv3": [(pe, simd) for pe in (1, 2, 4, 8) for simd in (1, 2, 4, 8)],
    "pool": [(1, 1)],
}
BAND_ROWS = (2, 4, 8)
CLOCKS_MHZ = (100.0, 125.0, 142.86)
#: The engine's stage order (the default of size_overlay).
STAGE_ORDER = ("conv3", "dw", "pw", "pool")


@dataclass(frozen=True)
class NetKnobs:
    """The network knobs SCD, random and top-down move along."""

    bundle: str                 # BundleTemplate.key
    depth: int = 4
    base_ch: int = 32
    growth: float = 2.0
    down: tuple[int, ...] = (0, 1, 2)
    wbits: int = 8
    fbits: int = 8
    scale: float = 1.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["down"] = list(self.down)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NetKnobs":
        return cls(**{**d, "down": tuple(d["down"])})

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def widths(self) -> list[int]:
        out = []
        for i in range(self.depth):
            w = int(round(self.base_ch * self.growth ** i / 4.0)) * 4
            out.append(max(4, min(MAX_CHANNELS, w)))
        return out

    def input_size(self, base: tuple[int, int] = BASE_INPUT) -> tuple[int, int]:
        """The network input: ``base`` resized by ``scale`` (multiples of 4)."""
        h = max(4, int(round(base[0] * self.scale / 4.0)) * 4)
        w = max(4, int(round(base[1] * self.scale / 4.0)) * 4)
        return h, w


def down_options(depth: int) -> list[tuple[int, ...]]:
    """Every choice of down-sampling bundles for a depth (2 to 4 of them)."""
    out = []
    for k in range(MIN_DOWN, min(MAX_DOWN, depth) + 1):
        out += list(itertools.combinations(range(depth), k))
    return out


def build_network(template, knobs: NetKnobs, base_input: tuple[int, int] = BASE_INPUT,
                  decode: Decode | None = None) -> Network:
    """The network of ``knobs`` stacked from ``template`` (a BundleTemplate) for inputs
    resized from ``base_input`` (height, width)."""
    decode = decode or Decode()
    h, w = knobs.input_size(base_input)
    bundles = []
    widths = knobs.widths()
    for i in range(knobs.depth):
        layers = list(template.layers_for(widths[i], i in knobs.down))
        if i == knobs.depth - 1:
            layers.append(Layer("pw", decode.channels, activation="none"))
        bundles.append(Bundle(tuple(layers)))
    return Network(3, h, w, tuple(bundles), INPUT_FORMAT,
                   FixedFormat(knobs.wbits, WEIGHT_INT_BITS),
                   FixedFormat(knobs.fbits, FEATURE_INT_BITS), decode=decode)


def valid_network(net: Network) -> bool:
    """The feature map stays non-empty (a 2x2 pool needs at least 2x2)."""
    h, w = net.input_height, net.input_width
    for lay in net.layers:
        if lay.type == "pool":
            if h < 2 or w < 2:
                return False
            h, w = h // 2, w // 2
        elif lay.stride == 2:
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    return h >= 1 and w >= 1


# ---------------------------------------------------------------------------
# The accelerator half: screened, then sized.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AccelChoice:
    """The accelerator chosen for one network, with its screened estimate."""

    stages: tuple[tuple[str, int, int], ...]      # (kind, pe, simd)
    band_rows: int
    clock_mhz: float
    fps: float
    power_w: float
    dsp: int
    bram18: int
    lut: int
    meets: bool                  # meets the FPS target and the power cap (screened)
    screened: int                # accelerator points screened for this network
    fitting: int                 # of which fit the device
    max_fps: float = 0.0         # the fastest fitting choice (the network's headroom)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stages"] = [list(s) for s in self.stages]
        return d


@dataclass(frozen=True)
class Targets:
    """The QoS targets of a search."""

    fps: float
    max_power_w: float | None = None
    device: str = "pynq-z1"
    base_input: tuple[int, int] = BASE_INPUT     # the input size knobs resize


def stage_chain(net: Network) -> tuple[str, ...]:
    used = {lay.type for lay in net.layers}
    return tuple(k for k in STAGE_ORDER if k in used)


def _grid(kinds: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every (pe, simd per stage, band rows, clock) combination, as arrays."""
    combos = list(itertools.product(*[PARALLELISM[k] for k in kinds], BAND_ROWS, CLOCKS_MHZ))
    s = len(kinds)
    pe = np.array([[c[i][0] for i in range(s)] for c in combos], dtype=np.int64)
    simd = np.array([[c[i][1] for i in range(s)] for c in combos], dtype=np.int64)
    band = np.array([c[s] for c in combos], dtype=np.int64)
    clock = np.array([c[s + 1] for c in combos], dtype=np.float64)
    return pe, simd, band, clock


def probe_design(net: Network, device: str, name: str = "candidate") -> Design:
    """A design of ``net`` on a default-sized overlay (the topology the screen batches)."""
    ov = size_overlay(net, device=device)
    return Design(name, ov, net)


def fit_accelerator(net: Network, targets: Targets, estimator) -> AccelChoice | None:
    """Screen the accelerator choices for ``net``; None when no choice fits the device."""
    kinds = stage_chain(net)
    probe = probe_design(net, targets.device)
    pe, simd, band, clock = _grid(kinds)
    n = len(band)
    batch = DesignBatch.from_design(probe, n).with_(pe=pe, simd=simd, band_rows=band,
                                                   clock_mhz=clock).sized_to_network()
    scr = estimator.screen(batch)
    fits = scr.fits
    if not fits.any():
        return None
    fps_lo = scr.fps - scr.sigma_fps
    meets = fits & (fps_lo >= targets.fps)
    if targets.max_power_w is not None:
        meets &= (scr.power_w + scr.sigma_power) <= targets.max_power_w
    if meets.any():
        # the least power among those that meet the targets; ties: fewer DSPs, then faster
        order = np.lexsort((-scr.fps, scr.raw.dsp, np.round(scr.power_w, 3)))
        i = int(next(j for j in order if meets[j]))
    else:
        i = int(np.argmax(np.where(fits, scr.fps, -np.inf)))
    r = scr.raw
    return AccelChoice(tuple((k, int(pe[i, s]), int(simd[i, s])) for s, k in enumerate(kinds)),
                       int(band[i]), float(clock[i]), float(scr.fps[i]), float(scr.power_w[i]),
                       int(r.dsp[i]), int(r.bram18[i]), int(r.lut[i]), bool(meets[i]), n,
                       int(fits.sum()), float(np.max(np.where(fits, scr.fps, -np.inf))))


def make_design(net: Network, accel: AccelChoice, device: str, name: str) -> Design:
    """The design point: ``net`` on the overlay of ``accel``, buffers sized for ``net``."""
    stages = tuple(Stage(k, pe, simd) for k, pe, simd in accel.stages)
    ov = size_overlay(net, device=device, clock_mhz=accel.clock_mhz, stages=stages,
                      band_rows=accel.band_rows)
    return Design(name, ov, net)


def design_key(design: Design) -> str:
    """A short stable hash of a design's JSON (names excluded)."""
    d = design.to_dict()
    d.pop("name", None)
    d.pop("description", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Candidate:
    """A screened point of the space: knobs, its design and its screened accelerator."""

    knobs: NetKnobs
    design: Design
    accel: AccelChoice
    macs: int = 0
    params: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return design_key(self.design)


def realise(templates: dict, knobs: NetKnobs, targets: Targets, estimator,
            cache: dict | None = None) -> Candidate | None:
    """Knobs -> candidate (network, accelerator fitted to it); None when nothing fits.

    ``cache`` (knobs key -> result) keeps a search from screening a point twice.
    """
    k = knobs.key()
    if cache is not None and k in cache:
        return cache[k]
    out = None
    net = build_network(templates[knobs.bundle], knobs, targets.base_input)
    if valid_network(net):
        accel = fit_accelerator(net, targets, estimator)
        if accel is not None:
            design = make_design(net, accel, targets.device, "candidate")
            out = Candidate(knobs, replace(design, name=f"cand-{design_key(design)}"), accel,
                            net.macs(), net.params())
    if cache is not None:
        cache[k] = out
    return out
