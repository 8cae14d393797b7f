"""The analytical QoS model: closed-form latency, resources and power of design points.

It estimates what the bundle engine (one engine computes every bundle in turn, the
processes of its dataflow region running at once inside a pass) does on a device, for
many design points at once: numpy arrays over design points (struct-of-arrays,
:class:`DesignBatch`) of a fixed *topology* (:class:`Topology`: layer kinds and strides,
bundles, the engine's stage chain, the device). Everything numeric may vary per point:
input size, channel widths, bit widths, parallelism (``pe``/``simd``), clock, buffer
sizes. :func:`estimate_batch` gives arrays (:class:`BatchEstimate`); :func:`estimate`
wraps it for one :class:`~pynq_codesign.design.Design` and returns a
:class:`~pynq_codesign.qos.QoSRecord` labelled ``estimated``.

What it counts (``docs/qos-model.md`` explains it for people):

* **Latency** per pass (:func:`pynq_codesign.design.plan_passes`): the descriptor (two
  m_axi bursts), then every process at once: the input stream, each stage (its weight
  load, one weight a cycle and never ahead of the m_axi fetch, then one flattened loop
  over the map at II=1; its beat/word converters alongside) and the output stream, so a
  pass takes the slowest of them plus a pipeline depth per stage; the streams share
  the DDR bandwidth (device DDR peak x :attr:`ModelConstants.ddr_efficiency`, each
  direction capped by the 64-bit stream at the fabric clock). Plus the driver's start-up
  and the DMA set-up per pass. Stage cycles (:func:`_stage_cycles`) are the closed form
  of the loops the C++ runs; :attr:`BatchEstimate.pass_cycles` (the structural part,
  no memory system) is checked against the access audit's counts of the C simulation
  (within 10 %, ``benchmarks/bench_cycles_audit.py``).
* **Resources** from :mod:`host_search.binding` (DSPs per multiplier, BRAM18 per
  buffer) plus LUT/FF for adder trees, requantisation, memory banks and control.
* **Power**: board static + PS + PL static (device profile) + fabric dynamic from
  resources x clock x activity (busy fraction of the datapath) + DDR traffic.

The model's constants live in :class:`ModelConstants`; the later calibration against
measured QoS replaces them (``ModelConstants.from_dict``), nothing else. This model
shares no code or constants with the simulated board (``pynq_codesign.platform.sim``)
beyond the device profile: the closed loop must not calibrate a model against itself.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable

import numpy as np

from pynq_codesign.design import (Design, LayerShape, Pass, check_fits, layer_macs,
                                  layer_weights, plan_passes, stage_multipliers,
                                  stage_row_elems)
from pynq_codesign.design import weight_words as design_weight_words
from pynq_codesign.devices import Device, load_device
from pynq_codesign.errors import CodesignError
from pynq_codesign.fixedpoint import container_bytes
from pynq_codesign.qos import BundleQoS, QoSRecord
from pynq_codesign.wire import BEAT_BYTES, feature_elem_bytes

from . import binding as bd

RESOURCES = ("dsp", "bram18", "lut", "ff")


class ModelError(CodesignError, ValueError):
    """Design points the model cannot evaluate (inconsistent shapes, unknown device)."""


# ---------------------------------------------------------------------------
# Constants: the one place calibration changes.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelConstants:
    """Every constant of the model. A calibration overrides fields (``with_``)."""

    # memory system
    ddr_efficiency: float = 0.70          # sustained share of DDR peak for long bursts
    dma_setup_us: float = 10.0            # per DMA transfer pair (descriptors, first beat)
    maxi_burst_beats: int = 256           # m_axi burst length for weights
    maxi_burst_gap_cycles: int = 30       # per weight burst: address + DDR latency
    pass_overhead_us: float = 40.0        # driver per pass: registers, ap_start, idle poll
    frame_overhead_us: float = 100.0      # driver per frame: cache flush / invalidate
    # datapath
    stage_depth_cycles: int = 20          # pipeline fill / drain of one stage per pass
    # resources: LUT / FF
    lut_control: int = 4500               # AXI-Lite, m_axi, two AXIS, descriptor FSM
    ff_control: int = 6500
    lut_per_stage: int = 350              # loop control, counters of one stage
    ff_per_stage: int = 500
    lut_per_dsp_mult: int = 4             # operand muxing per DSP multiplier
    ff_per_dsp_mult: int = 24             # operand / pipeline registers
    adder_lut_per_bit: float = 1.0        # fabric adder trees (one LUT per sum bit)
    adder_ff_per_bit: float = 1.0
    # requantiser per output lane (hls/requant.h), on its acc_bits + 4 datapath: ReLU /
    # ReLU6 (2 LUTs a bit), round (2), the left shift's two thresholds (2), saturation (2),
    # plus the right barrel shifter (one LUT6 per bit per two levels of its unsigned
    # amount) and the left shift of the output code; registers: three pipeline stages
    requant_lut_per_bit: float = 8.0
    requant_ff_per_bit: float = 3.0
    lut_per_bank: int = 10                # address / enable logic per memory bank
    ff_per_bank: int = 12
    lut_per_pool_lane: int = 20           # compare-select per pool lane
    ff_per_pool_lane: int = 24
    # power (fabric dynamic: microwatts per MHz per resource at full activity)
    dsp_uw_per_mhz: float = 10.0
    bram18_uw_per_mhz: float = 12.0
    lut_uw_per_mhz: float = 0.10
    ff_uw_per_mhz: float = 0.03
    idle_activity: float = 0.25           # clock tree and idle toggling share
    ddr_pj_per_byte: float = 70.0         # DDR interface energy per byte moved
    # calibration hooks (1.0 / 0.0 = uncalibrated)
    latency_scale: float = 1.0
    power_scale: float = 1.0
    power_offset_w: float = 0.0

    def with_(self, **overrides: Any) -> "ModelConstants":
        names = {f.name for f in fields(self)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise ModelError(f"unknown model constant(s) {', '.join(bad)}; "
                             f"known: {', '.join(sorted(names))}")
        return replace(self, **overrides)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConstants":
        return cls().with_(**d)


DEFAULT_CONSTANTS = ModelConstants()


# ---------------------------------------------------------------------------
# Topology and the struct-of-arrays batch.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Topology:
    """What is the same for every point of a batch."""

    layer_kinds: tuple[str, ...]
    strides: tuple[int, ...]
    bundle_of_layer: tuple[int, ...]
    n_bundles: int
    stage_kinds: tuple[str, ...]
    passes: tuple[Pass, ...]
    device: Device

    @classmethod
    def of(cls, design: Design, device: str | Device | None = None) -> "Topology":
        net, ov = design.network, design.overlay
        dev = device if isinstance(device, Device) else load_device(device or ov.device)
        return cls(tuple(lay.type for lay in net.layers),
                   tuple(lay.stride for lay in net.layers),
                   tuple(net.bundle_of_layer()), len(net.bundles), ov.stage_kinds,
                   tuple(plan_passes(net, ov)), dev)

    @property
    def n_layers(self) -> int:
        return len(self.layer_kinds)

    @property
    def n_stages(self) -> int:
        return len(self.stage_kinds)


_BATCH_SCALARS = ("input_c", "input_h", "input_w", "weight_bits", "feature_bits",
                  "bias_bits", "clock_mhz", "band_rows", "max_channels", "max_width",
                  "max_row_elems", "max_layer_weights")


_BATCH_STAGE_ARRAYS = ("out_channels", "pe", "simd", "row_elems", "weight_words")


@dataclass
class DesignBatch:
    """N design points of one topology, as arrays.

    Per point ``(N,)``: input size, overlay bit widths, clock, band rows, buffer limits.
    ``out_channels (N, L)``: output channels of every layer (only pw/conv3 columns are
    read; dw and pool keep their input's channels). ``pe`` / ``simd (N, S)``: per stage
    of the chain (pool columns are ignored). ``row_elems`` / ``weight_words (N, S)``: per
    stage, the capacities of its own memories (``Stage.row_capacity``, ``Stage.weight_words``);
    ``row_elems`` defaults to ``max_row_elems``, ``weight_words`` 0 means "none of its
    own" (the worst case over the overlay-wide limits, as ``Stage.weight_words = None``).
    Changing ``pe`` / ``simd`` changes the words a layer needs: re-size with
    :meth:`sized_to_network` or set ``weight_words`` too.
    """

    topology: Topology
    input_c: np.ndarray
    input_h: np.ndarray
    input_w: np.ndarray
    out_channels: np.ndarray
    weight_bits: np.ndarray
    feature_bits: np.ndarray
    bias_bits: np.ndarray
    clock_mhz: np.ndarray
    band_rows: np.ndarray
    pe: np.ndarray
    simd: np.ndarray
    max_channels: np.ndarray
    max_width: np.ndarray
    max_row_elems: np.ndarray
    max_layer_weights: np.ndarray
    row_elems: np.ndarray | None = None
    weight_words: np.ndarray | None = None
    acc_bits: np.ndarray | None = None       # accumulator width (default 48)

    def __post_init__(self) -> None:
        if self.acc_bits is None:
            self.acc_bits = 48
        self.acc_bits = np.asarray(self.acc_bits, dtype=np.int64)
        n = None
        for name in _BATCH_SCALARS:
            v = np.atleast_1d(np.asarray(getattr(self, name)))
            v = v.astype(np.float64 if name == "clock_mhz" else np.int64)
            if n is None:
                n = v.shape[0]
            if v.shape == (1,) and n != 1:
                v = np.broadcast_to(v, (n,))
            if v.shape != (n,):
                raise ModelError(f"{name}: shape {v.shape}, want ({n},)")
            setattr(self, name, v)
        t = self.topology
        if self.row_elems is None:
            self.row_elems = np.repeat(self.max_row_elems[:, None], t.n_stages, axis=1)
        if self.weight_words is None:
            self.weight_words = np.zeros((n, t.n_stages), dtype=np.int64)
        for name, width in (("out_channels", t.n_layers), ("pe", t.n_stages),
                            ("simd", t.n_stages), ("row_elems", t.n_stages),
                            ("weight_words", t.n_stages)):
            v = np.asarray(getattr(self, name), dtype=np.int64)
            if v.ndim == 1:
                v = np.broadcast_to(v, (n, v.shape[0]))
            if v.shape != (n, width):
                raise ModelError(f"{name}: shape {v.shape}, want ({n}, {width})")
            setattr(self, name, v)

    def __len__(self) -> int:
        return int(self.input_h.shape[0])

    @classmethod
    def from_designs(cls, designs: list[Design], device: str | None = None) -> "DesignBatch":
        """A batch of designs that share one topology."""
        if not designs:
            raise ModelError("an empty list of designs")
        topo = Topology.of(designs[0], device)
        cols: dict[str, list] = {k: [] for k in _BATCH_SCALARS}
        oc, pe, simd, rows, words = [], [], [], [], []
        for d in designs:
            t = Topology.of(d, topo.device)
            if (t.layer_kinds, t.strides, t.bundle_of_layer, t.stage_kinds) != \
                    (topo.layer_kinds, topo.strides, topo.bundle_of_layer, topo.stage_kinds):
                raise ModelError(f"design {d.name!r} has another topology than "
                                 f"{designs[0].name!r}; batch designs of one topology")
            net, ov = d.network, d.overlay
            vals = dict(input_c=net.input_channels, input_h=net.input_height,
                        input_w=net.input_width, weight_bits=ov.weight_bits,
                        feature_bits=ov.feature_bits, bias_bits=ov.bias_bits,
                        clock_mhz=ov.clock_mhz, band_rows=ov.band_rows,
                        max_channels=ov.max_channels, max_width=ov.max_width,
                        max_row_elems=ov.max_row_elems,
                        max_layer_weights=ov.max_layer_weights)
            for k in _BATCH_SCALARS:
                cols[k].append(vals[k])
            oc.append([s.out_c for s in net.shapes()])
            pe.append([s.pe for s in ov.stages])
            simd.append([s.simd for s in ov.stages])
            rows.append([s.row_capacity(ov) for s in ov.stages])
            words.append([s.weight_words or 0 for s in ov.stages])
        return cls(topo, **{k: np.asarray(v) for k, v in cols.items()},
                   out_channels=np.asarray(oc), pe=np.asarray(pe), simd=np.asarray(simd),
                   row_elems=np.asarray(rows), weight_words=np.asarray(words),
                   acc_bits=np.asarray([d.overlay.acc_bits for d in designs]))

    @classmethod
    def from_design(cls, design: Design, n: int = 1,
                    device: str | None = None) -> "DesignBatch":
        """``n`` copies of one design (change knobs with :meth:`with_`)."""
        one = cls.from_designs([design], device)
        return one.with_(**{k: np.repeat(getattr(one, k), n, axis=0)
                            for k in _BATCH_SCALARS + _BATCH_STAGE_ARRAYS})

    def with_(self, **arrays: Any) -> "DesignBatch":
        """A batch with some knobs replaced (arrays of length N, or scalars)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        n = len(self)
        for k, v in arrays.items():
            if k not in kw or k == "topology":
                raise ModelError(f"unknown batch field {k!r}")
            v = np.asarray(v)
            n = max(n, v.shape[0]) if v.ndim else n
            kw[k] = v
        for k in list(kw):
            if k == "topology":
                continue
            v = np.asarray(kw[k])
            if v.ndim == 0:
                v = np.full((n,), v)
            elif v.shape[0] != n:
                if v.shape[0] == 1:
                    v = np.repeat(v, n, axis=0)
                else:
                    raise ModelError(f"{k}: {v.shape[0]} points, others have {n}")
            kw[k] = v
        return DesignBatch(**kw)

    def sized_to_network(self, per_stage: bool = True) -> "DesignBatch":
        """The batch with every buffer limit set to what its network needs (the
        vectorised counterpart of :func:`pynq_codesign.design.size_overlay`): with
        ``per_stage`` each stage's ``row_elems`` / ``weight_words`` are those of the
        largest layer it runs; without, the overlay-wide limits (``weight_words`` 0)."""
        shp = layer_shapes(self)
        t = self.topology
        mc = np.max([np.maximum(s.in_c, s.out_c) for s in shp], axis=0)
        mw = np.max([s.in_w for s in shp], axis=0)
        mr = np.max([np.maximum(s.in_w * s.in_c, s.out_w * s.out_c) for s in shp], axis=0)
        n = len(self)
        mlw = np.max([_per_point(layer_weights(k, s), n)
                      for k, s in zip(t.layer_kinds, shp)], axis=0)
        rows = np.repeat(mr[:, None], t.n_stages, axis=1)
        words = np.zeros((n, t.n_stages), dtype=np.int64)
        if per_stage:
            rows = np.zeros((n, t.n_stages), dtype=np.int64)
            for ps in t.passes:
                for gi, slot in zip(ps.layers, ps.slots):
                    s = shp[gi]
                    rows[:, slot] = np.maximum(rows[:, slot], stage_row_elems(
                        t.stage_kinds[slot], self.pe[:, slot], self.simd[:, slot],
                        self.feature_bits, s.in_w, s.in_c))
                    words[:, slot] = np.maximum(words[:, slot], _layer_words(
                        t.layer_kinds[gi], s, self.pe[:, slot], self.simd[:, slot]))
            rows = np.where(rows > 0, rows, mr[:, None])     # a stage no layer uses
        return self.with_(max_channels=mc, max_width=mw, max_row_elems=mr,
                          max_layer_weights=np.maximum(mlw, 1), row_elems=rows,
                          weight_words=words)


def _layer_words(kind: str, s: LayerShape, pe: np.ndarray, simd: np.ndarray) -> np.ndarray:
    """Folded weight words of one layer on its stage (``design.weight_words``, per point)."""
    if kind == "pool":
        return np.zeros(np.shape(pe), dtype=np.int64)
    return np.asarray(design_weight_words(kind, pe, simd, np.asarray(s.in_c, np.int64),
                                          np.asarray(s.out_c, np.int64)), dtype=np.int64)


def layer_shapes(b: DesignBatch) -> list[LayerShape]:
    """Per layer, a :class:`LayerShape` whose fields are ``(N,)`` arrays (the rules of
    :meth:`pynq_codesign.design.Network.shapes`, vectorised)."""
    c, h, w = b.input_c, b.input_h, b.input_w
    out = []
    for i, (kind, stride) in enumerate(zip(b.topology.layer_kinds, b.topology.strides)):
        if kind == "pool":
            oc, oh, ow = c, h // 2, w // 2
        elif kind == "pw":
            oc, oh, ow = b.out_channels[:, i], h, w
        else:
            oc = c if kind == "dw" else b.out_channels[:, i]
            oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1
        out.append(LayerShape(c, h, w, oc, oh, ow))
        c, h, w = oc, oh, ow
    return out


# ---------------------------------------------------------------------------
# Results.
# ---------------------------------------------------------------------------

@dataclass
class BatchEstimate:
    """Estimates for every point of a batch, arrays of shape (N,) unless noted."""

    latency_ms: np.ndarray
    fps: np.ndarray
    power_w: np.ndarray
    energy_mj_per_frame: np.ndarray
    dsp: np.ndarray
    bram18: np.ndarray
    lut: np.ndarray
    ff: np.ndarray
    macs: np.ndarray
    params: np.ndarray
    resources_fit: np.ndarray          # every resource within the device budget
    network_fits: np.ndarray           # the network runs on the overlay (check_fits)
    fits: np.ndarray
    bundle_latency_ms: np.ndarray      # (N, bundles)
    bundle_macs: np.ndarray            # (N, bundles)
    pass_latency_ms: np.ndarray        # (N, passes)
    pass_compute_bound: np.ndarray     # (N, passes): compute (not DDR) sets the pace
    weight_load_ms: np.ndarray         # per frame
    ddr_bytes: np.ndarray              # per frame
    duty: np.ndarray                   # busy share of the datapath
    budget: dict[str, int]
    # the latency split into the model's terms, (N, bundles) ms each, summing to
    # bundle_latency_ms: "overhead" (driver + DMA set-up per pass), "weights" (m_axi),
    # "transfer" (feature-map streams, and the steady bands of memory-bound passes),
    # "compute_<kind>" (a stage kind's band work, depth, and the steady bands it paces);
    # calibration fits a correction per term (host_search.calibrate)
    latency_terms_ms: dict[str, np.ndarray] = field(default_factory=dict)
    frame_overhead_ms: np.ndarray | None = None   # per frame, outside the bundles
    # (N, passes): the engine's structural cycles per pass at II=1 (no memory system),
    # the figure the access audit of the C simulation checks (within 10 %)
    pass_cycles: np.ndarray | None = None
    # the power split (N,) W, summing to power_w before the calibration hooks
    power_terms_w: dict[str, np.ndarray] = field(default_factory=dict)

    def over_budget(self, i: int) -> list[str]:
        """What exceeds the device's budget at point ``i``, e.g. ``"dsp 260 > 220"``."""
        return [f"{r} {int(getattr(self, r)[i])} > {self.budget[r]}"
                for r in RESOURCES if getattr(self, r)[i] > self.budget[r]]


def _per_point(x: Any, n: int) -> np.ndarray:
    """An int64 array of shape (n,) from a scalar or an (n,) array."""
    return np.broadcast_to(np.asarray(x, dtype=np.int64), (n,))


def _map_unique(fn: Callable[[int], int], arr: np.ndarray) -> np.ndarray:
    """Apply a scalar contract function element-wise through the distinct values."""
    u, inv = np.unique(arr, return_inverse=True)
    return np.asarray([fn(int(x)) for x in u], dtype=np.int64)[inv].reshape(arr.shape)


def _stage_cycles(kind: str, s: LayerShape, pe: np.ndarray, simd: np.ndarray,
                  lanes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cycles of one layer on its stage at II=1, as the engine's loops run it
    (docs/accelerator.md): ``(compute, unpack, pack)``. ``compute`` is the weight and
    bias load (one weight a cycle) plus the one flattened loop over the map: dw and
    conv3 scan ``(H + 1) x (W + 1)`` steps (a window drains at the bottom and right
    edges), ``ceil(IC / lanes)`` folds each, a conv3 step that completes a window
    ``ceil(OC / PE)`` times as many; pw is a pixel pipeline (one pixel ahead). The
    converters move a pixel per ``max(beats, words)`` cycles. A pool is one loop over
    the beats of its input (``lanes``: codes per beat, :func:`binding.beat_lanes`)."""
    cd = bd._ceil_div
    zero = 0 * pe
    if kind == "pool":
        return s.in_h * s.in_w * cd(s.in_c, lanes) + zero, zero, zero
    r = pe if kind == "dw" else simd
    icf, ocf = cd(s.in_c, r), cd(s.out_c, pe)
    steps = (s.in_h + 1) * (s.in_w + 1)
    outs = s.out_h * s.out_w
    if kind == "dw":
        load, scan = 9 * s.in_c + s.in_c, steps * icf
    elif kind == "pw":
        load, scan = s.in_c * s.out_c + s.out_c, icf + outs * ocf * icf
    else:
        load = 9 * s.in_c * s.out_c + s.out_c
        scan = outs * ocf * icf + (steps - outs) * icf
    unpack = s.in_h * s.in_w * np.maximum(cd(s.in_c, lanes), icf)
    pack = outs * np.maximum(ocf, cd(s.out_c, lanes))
    return load + scan + zero, unpack + zero, pack + zero


# ---------------------------------------------------------------------------
# Resources.
# ---------------------------------------------------------------------------

def resources(b: DesignBatch, k: ModelConstants = DEFAULT_CONSTANTS,
              pack: str = "auto") -> dict[str, np.ndarray]:
    """DSP, BRAM18, LUT and FF of every point (from :mod:`host_search.binding`)."""
    t, dev = b.topology, b.topology.device
    wb, fb = b.weight_bits, b.feature_bits
    pa, pb = dev.dsp_mult_a, dev.dsp_mult_b
    n = len(b)
    mults, legal, unpacked = [], [], []
    fabric = bd.is_fabric_product(wb, fb)
    dpm = bd.dsp_per_mult(wb, fb, pa, pb)
    for s, kind in enumerate(t.stage_kinds):
        pe, simd = b.pe[:, s], b.simd[:, s]
        m = np.broadcast_to(np.asarray(stage_multipliers(kind, pe, simd), dtype=np.int64), (n,))
        m = np.broadcast_to(np.asarray(m, dtype=np.int64), (n,))
        mults.append(m)
        unpacked.append(m * dpm)
        legal.append(bd.pack_legal(kind, pe, bd.cascade_len(kind, simd), wb, fb, pa, pb)
                     if kind != "pool" else np.zeros(n, dtype=bool))
    packed = bd.choose_packing(pack, legal, unpacked, dev.dsp)
    dsp = np.zeros(n, dtype=np.int64)
    lut = np.full(n, k.lut_control, dtype=np.float64)
    ff = np.full(n, k.ff_control, dtype=np.float64)
    for s, kind in enumerate(t.stage_kinds):
        pe, simd = b.pe[:, s], b.simd[:, s]
        lut += k.lut_per_stage
        ff += k.ff_per_stage
        if kind == "pool":
            pl = bd.pool_lanes(fb)
            lut += k.lut_per_pool_lane * pl
            ff += k.ff_per_pool_lane * pl
            continue
        m, pk = mults[s], np.asarray(packed[s])
        dsp += np.where(fabric, 0, bd.stage_dsp(kind, m, pk, dpm))
        lut += np.where(fabric, m * bd.fabric_mult_luts(wb, fb), m * k.lut_per_dsp_mult)
        ff += np.where(fabric, 0, m * k.ff_per_dsp_mult)
        lut += np.where(pk & ~fabric,
                        bd.pack_luts(pe, bd.cascade_len(kind, simd), wb, fb), 0)
        # adder trees: (terms - 1) adders per output lane, as wide as the sum
        terms = {"dw": 9, "pw": simd, "conv3": 9 * simd}[kind]
        terms = np.broadcast_to(np.asarray(terms, dtype=np.int64), (n,))
        width = wb + fb + bd.guard_bits(terms)
        lut += k.adder_lut_per_bit * pe * (terms - 1) * width
        ff += k.adder_ff_per_bit * pe * (terms - 1) * width
        # accumulator across folds + requantisation, per output lane
        lut += pe * requant_luts(b.acc_bits, fb, k)
        ff += pe * k.requant_ff_per_bit * (b.acc_bits + 4)
    bram = np.zeros(n, dtype=np.int64)
    S = range(t.n_stages)
    geo = bd.buffer_geometry(t.stage_kinds, [b.pe[:, s] for s in S],
                             [b.simd[:, s] for s in S], b.band_rows,
                             [b.row_elems[:, s] for s in S],
                             [b.weight_words[:, s] for s in S], b.max_channels,
                             b.max_layer_weights, wb, fb, b.bias_bits)
    for g in geo:
        _, br, luts = bd.buffer_cost(g)
        copies = 2 if g.double_buffered else 1
        bram += br
        lut += luts + k.lut_per_bank * np.asarray(g.banks) * copies
        ff += k.ff_per_bank * np.asarray(g.banks) * copies
    return {"dsp": dsp, "bram18": bram, "lut": np.ceil(lut).astype(np.int64),
            "ff": np.ceil(ff).astype(np.int64)}


# ---------------------------------------------------------------------------
# The whole estimate.
# ---------------------------------------------------------------------------

def network_fits(b: DesignBatch, shapes: list[LayerShape] | None = None) -> np.ndarray:
    """The size rules of :func:`pynq_codesign.design.check_fits`, vectorised (bit widths
    are overlay-wide in a batch, so the per-layer format rules hold by construction),
    the per-stage capacities included."""
    t = b.topology
    shapes = shapes or layer_shapes(b)
    ok = np.ones(len(b), dtype=bool)
    for ps in t.passes:
        for gi, slot in zip(ps.layers, ps.slots):
            s, cap = shapes[gi], b.weight_words[:, slot]
            ok &= s.in_w * s.in_c <= b.row_elems[:, slot]
            words = _layer_words(t.layer_kinds[gi], s, b.pe[:, slot], b.simd[:, slot])
            ok &= (cap <= 0) | (words <= cap)
    for kind, s in zip(t.layer_kinds, shapes):
        if kind not in t.stage_kinds:
            ok[:] = False
        ok &= (s.in_c <= b.max_channels) & (s.out_c <= b.max_channels)
        ok &= s.in_w <= b.max_width
        ok &= (s.in_w * s.in_c <= b.max_row_elems) & (s.out_w * s.out_c <= b.max_row_elems)
        ok &= _per_point(layer_weights(kind, s), len(b)) <= b.max_layer_weights
        ok &= (s.in_h >= 1) & (s.out_h >= 1) & (s.out_w >= 1)
    return ok


def estimate_batch(b: DesignBatch, constants: ModelConstants = DEFAULT_CONSTANTS,
                   pack: str = "auto") -> BatchEstimate:
    """Latency, resources, power and fit of every point of ``b``."""
    k = constants
    t, dev = b.topology, b.topology.device
    n = len(b)
    f_hz = b.clock_mhz * 1e6
    shapes = layer_shapes(b)
    fb, wb = b.feature_bits, b.weight_bits
    elem_b = _map_unique(feature_elem_bytes, fb)
    w_bytes = _map_unique(container_bytes, wb)
    per_beat = BEAT_BYTES // elem_b

    def fmap_bytes(c: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
        return h * w * bd._ceil_div(c, per_beat) * per_beat * elem_b

    ddr_bw = dev.ddr_peak_bytes_per_s * k.ddr_efficiency
    stream_bw = np.minimum(BEAT_BYTES, dev.axi_hp_width_bits // 8) * f_hz
    maxi_bw = np.minimum(dev.axi_hp_width_bits // 8 * f_hz, ddr_bw)
    maxi_burst_bytes = k.maxi_burst_beats * (dev.axi_hp_width_bits // 8)

    macs_l = [_per_point(layer_macs(kind, s), n) for kind, s in zip(t.layer_kinds, shapes)]
    nw_l = [_per_point(layer_weights(kind, s), n) for kind, s in zip(t.layer_kinds, shapes)]
    params = sum(nw + (s.out_c if kind != "pool" else 0)
                 for kind, s, nw in zip(t.layer_kinds, shapes, nw_l))
    macs = sum(macs_l)

    pass_ms, pass_cb = [], []
    bundle_ms = np.zeros((n, t.n_bundles))
    bundle_macs = np.zeros((n, t.n_bundles), dtype=np.int64)
    w_ms_total = np.zeros(n)
    ddr_total = np.zeros(n)
    busy_s = np.zeros(n)
    terms: dict[str, np.ndarray] = {}

    def term(name: str) -> np.ndarray:
        return terms.setdefault(name, np.zeros((n, t.n_bundles)))

    pass_cyc = []
    lanes = bd.beat_lanes(fb)
    for ps in t.passes:
        first, last = shapes[ps.layers[0]], shapes[ps.layers[-1]]
        in_b = fmap_bytes(first.in_c, first.in_h, first.in_w)
        out_b = fmap_bytes(last.out_c, last.out_h, last.out_w)
        # the descriptor: two m_axi bursts (header, entries) before the dataflow region
        desc = bd._ceil_div(8 + 20 * len(ps.layers), 2) + 2 * k.maxi_burst_gap_cycles
        # weights and biases of the pass over m_axi, slot by slot, while the map streams
        wbytes = np.zeros(n, dtype=np.int64)
        fetched = np.zeros(n)
        t_st, c_st = [], []
        for gi, slot in zip(ps.layers, ps.slots):
            s, kind = shapes[gi], t.layer_kinds[gi]
            comp, unpk, repk = _stage_cycles(kind, s, b.pe[:, slot], b.simd[:, slot], lanes)
            t_comp = comp / f_hz
            if kind != "pool":
                nb = _align8(nw_l[gi] * w_bytes) + _align8(s.out_c * 4)
                wbytes += nb
                fetched = fetched + nb / maxi_bw + bd._ceil_div(nb, maxi_burst_bytes) \
                    * k.maxi_burst_gap_cycles / f_hz
                load = (nw_l[gi] + s.out_c) / f_hz           # a stage waits for its weights
                t_comp = t_comp + np.maximum(fetched - load, 0.0)
            t_st.append(np.maximum(t_comp, np.maximum(unpk, repk) / f_hz))
            c_st.append(np.maximum(comp, np.maximum(unpk, repk)))
            bundle_macs[:, ps.bundle] += macs_l[gi]
        t_w = fetched
        beats_in, beats_out = in_b // BEAT_BYTES, out_b // BEAT_BYTES
        t_mem = np.maximum(np.maximum(in_b, out_b) / stream_bw, (in_b + out_b) / ddr_bw)
        t_comp = np.max(t_st, axis=0)
        depth = len(ps.layers) * k.stage_depth_cycles
        t_body = np.maximum(np.maximum(t_comp, t_mem), t_w)
        over = (k.pass_overhead_us + k.dma_setup_us) * 1e-6
        t_pass = over + (desc + depth) / f_hz + t_body
        # the structural cycles (the engine's loops at II=1, no DDR): what the access
        # audit of the C simulation counts (benchmarks/bench_cycles_audit.py)
        pass_cyc.append(desc - 2 * k.maxi_burst_gap_cycles + k.stage_depth_cycles + np.maximum(
            np.max(c_st, axis=0), np.maximum(np.maximum(beats_in, beats_out),
                                             wbytes // BEAT_BYTES)))
        cb, slowest = t_comp > t_mem, np.argmax(t_st, axis=0)
        mem_bound = (t_mem >= t_comp) & (t_mem >= t_w)
        w_bound = (t_w > t_comp) & (t_w > t_mem)
        term("overhead")[:, ps.bundle] += (over + desc / f_hz) * 1e3
        term("weights")[:, ps.bundle] += np.where(w_bound, t_body, 0.0) * 1e3
        term("transfer")[:, ps.bundle] += np.where(mem_bound, t_body, 0.0) * 1e3
        for j, gi in enumerate(ps.layers):
            term(f"compute_{t.layer_kinds[gi]}")[:, ps.bundle] += (
                k.stage_depth_cycles / f_hz
                + np.where(~mem_bound & ~w_bound & (slowest == j), t_body, 0.0)) * 1e3
        pass_ms.append(t_pass * 1e3)
        pass_cb.append(cb)
        bundle_ms[:, ps.bundle] += t_pass * 1e3
        w_ms_total += t_w * 1e3
        ddr_total += in_b + out_b + wbytes
        busy_s += t_comp
    frame_ms = k.frame_overhead_us * 1e-3
    latency_ms = (bundle_ms.sum(axis=1) + frame_ms) * k.latency_scale
    bundle_ms = bundle_ms * k.latency_scale
    # spread the frame overhead over nothing: bundles sum to latency minus it
    fps = 1e3 / latency_ms
    res = resources(b, k, pack)
    duty = np.clip(busy_s * 1e3 / latency_ms, 0.0, 1.0)
    act = k.idle_activity + (1.0 - k.idle_activity) * duty
    dyn_w = b.clock_mhz * 1e-6 * act * (
        res["dsp"] * k.dsp_uw_per_mhz + res["bram18"] * k.bram18_uw_per_mhz
        + res["lut"] * k.lut_uw_per_mhz + res["ff"] * k.ff_uw_per_mhz)
    ddr_w = ddr_total * fps * k.ddr_pj_per_byte * 1e-12
    static_w = dev.static_board_w + dev.ps_active_w + dev.pl_static_w
    power = (static_w + dyn_w + ddr_w) * k.power_scale + k.power_offset_w
    budget = dev.budget()
    rfit = np.ones(n, dtype=bool)
    for r in RESOURCES:
        rfit &= res[r] <= budget[r]
    nfit = network_fits(b, shapes)
    return BatchEstimate(
        latency_ms=latency_ms, fps=fps, power_w=power,
        energy_mj_per_frame=power * latency_ms, dsp=res["dsp"], bram18=res["bram18"],
        lut=res["lut"], ff=res["ff"], macs=macs, params=params, resources_fit=rfit,
        network_fits=nfit, fits=rfit & nfit, bundle_latency_ms=bundle_ms,
        bundle_macs=bundle_macs, pass_latency_ms=np.stack(pass_ms, axis=1) * k.latency_scale,
        pass_compute_bound=np.stack(pass_cb, axis=1), weight_load_ms=w_ms_total,
        ddr_bytes=ddr_total, duty=duty, budget=budget,
        latency_terms_ms={kk: v * k.latency_scale for kk, v in terms.items()},
        pass_cycles=np.stack(pass_cyc, axis=1),
        frame_overhead_ms=np.full(n, frame_ms * k.latency_scale),
        power_terms_w={"static": np.full(n, static_w, dtype=np.float64), "fabric": dyn_w,
                       "ddr": ddr_w})


def requant_luts(acc_bits: Any, feature_bits: Any, k: ModelConstants = DEFAULT_CONSTANTS
                 ) -> Any:
    """LUTs of one requantiser lane (hls/requant.h): an ``acc_bits + 4`` datapath with
    a one-way right shift by an unsigned amount of up to ``acc_bits + 1`` (a barrel
    shifter: one LUT6 4:1 mux per bit per two of its ``ceil(log2(acc_bits + 2))``
    levels), activation, rounding, the left shift's thresholds and saturation
    (``requant_lut_per_bit`` LUTs a bit), and a left shift of the output code by up to
    32 (three levels on ``feature_bits``)."""
    w = np.asarray(acc_bits, dtype=np.int64) + 4
    levels = np.ceil(np.log2(np.asarray(acc_bits, dtype=np.float64) + 2)).astype(np.int64)
    return w * (k.requant_lut_per_bit + (levels + 1) // 2) + 3 * np.asarray(feature_bits)


def _align8(x: np.ndarray) -> np.ndarray:
    return bd._ceil_div(x, 8) * 8


# ---------------------------------------------------------------------------
# One design.
# ---------------------------------------------------------------------------

def retarget(design: Design, device: str) -> Design:
    """The design with its overlay moved to ``device`` (same knobs), checked."""
    dev = load_device(device)
    if design.overlay.clock_mhz > dev.max_clock_mhz:
        raise ModelError(f"{design.name} runs its fabric at {design.overlay.clock_mhz} MHz, "
                         f"above {device}'s limit of {dev.max_clock_mhz} MHz; lower "
                         f"overlay.clock_mhz in the design file")
    return replace(design, overlay=replace(design.overlay, device=device))


def estimate(design: Design, device: str | None = None,
             constants: ModelConstants = DEFAULT_CONSTANTS, pack: str = "auto") -> QoSRecord:
    """The estimated QoS of one design (optionally re-targeted to ``device``)."""
    if device is not None and device != design.overlay.device:
        design = retarget(design, device)
    b = DesignBatch.from_designs([design])
    e = estimate_batch(b, constants, pack)
    problems = check_fits(design.network, design.overlay)
    over = e.over_budget(0)
    from pynq_codesign.design import describe_layers
    names = describe_layers(design.network)
    bundles = [BundleQoS(i, float(e.bundle_latency_ms[0, i]), names[i],
                         int(e.bundle_macs[0, i]),
                         {"latency_source": "estimated"})
               for i in range(b.topology.n_bundles)]
    binding = bd.bind_overlay(design.overlay, pack=pack)
    passes = [{"bundle": p.bundle, "layers": list(p.layers),
               "latency_ms": float(e.pass_latency_ms[0, j]),
               "bound": "compute" if e.pass_compute_bound[0, j] else "memory"}
              for j, p in enumerate(b.topology.passes)]
    return QoSRecord(
        source="estimated", fps=float(e.fps[0]), latency_ms=float(e.latency_ms[0]),
        power_w=float(e.power_w[0]), power_source="estimated",
        energy_mj_per_frame=float(e.energy_mj_per_frame[0]), dsp=int(e.dsp[0]),
        bram18=int(e.bram18[0]), lut=int(e.lut[0]), ff=int(e.ff[0]), bundles=bundles,
        extra={"macs": int(e.macs[0]), "params": int(e.params[0]),
               "fits": bool(e.resources_fit[0]) and not problems,
               "over_budget": over, "fit_problems": problems,
               "device": design.overlay.device, "clock_mhz": design.overlay.clock_mhz,
               "budget": e.budget, "passes": passes,
               "weight_load_ms": float(e.weight_load_ms[0]),
               "ddr_bytes_per_frame": int(e.ddr_bytes[0]),
               "mult_impl": [m.mult_impl for m in binding.mults],
               "buffers": [{"name": x.name, "impl": x.impl, "bram18": x.bram18}
                           for x in binding.buffers]})
