"""The simulated board's timing: the engine's loop structure plus this board's physics.

This is the simulated board's *own* account of time, independent of the host's
closed-form estimate: it shares nothing with ``host_search`` but the device profile. Per
engine pass:

* **Structure** (:mod:`.structure`): the exact trip counts of every pipelined loop of
  the HLS engine, per dataflow process (descriptor bursts, parameter fetch, input
  stream, each stage's converters, weight load and flattened map loop, output stream):
  the same counts the access audit of the C simulation takes from the C++ (tests hold
  them equal). Each loop costs its iterations (II=1) plus this board's fill and drain per
  entry (:data:`STAGE_DEPTH_CYCLES`, :data:`LOOP_FILL_CYCLES`).
* **Physics on top**: ap_start, the descriptor over ``m_axi`` with the DDR round trip per
  burst; the weights over ``m_axi`` in bursts, a stage's map loop starting only once its
  weights are in; the input and output DMA streams in bursts of 16 beats with idle
  cycles between bursts, throttled by the DDR's efficient bandwidth (shared between the
  read and the write stream in proportion to their bytes), starting after the DMA's
  set-up. The processes of the dataflow region run at once, so the pass takes as long as
  the slowest plus the chain's fill; DDR refreshes and CPU traffic stall it now and then
  (one chance per band of rows).
* **Epilogue**: the core goes idle when the last process drains; the receive channel is
  idle when the last beat is in DDR.

Driver calls (register writes and reads, ``transfer()`` with its cache flush, poll loops,
the driver's own Python per pass) cost CPU time on the board's ARM and advance the
simulated clock too. The CPU's work outside the driver (reading, pre-processing, decoding)
is :mod:`.cpu`'s.

Every simulated board draws hidden physical parameters (:class:`_Physics`) from its seed,
within ranges typical of a PYNQ-Z1; they stay private to the simulated board: only
measurements reveal them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...design import LayerShape, Overlay, layer_macs, layer_weights
from ...devices import Device
from ...fixedpoint import container_bytes
from ...wire import BEAT_BYTES, HEADER_WORDS, LAYER_TYPE_ID, LAYER_WORDS, padded_channels
from .structure import TOP, pass_loops

_KIND = {v: k for k, v in LAYER_TYPE_ID.items()}

#: Beats per AXI burst of the DMA on the HP port (the AXI DMA's default max burst).
DMA_BURST_BEATS = 16
#: Beats per m_axi burst of the weight port (HLS ``max_read_burst_length`` default).
MAXI_BURST_BEATS = 16
#: Pipeline depth (cycles from first input to first output) of each stage's map loop.
STAGE_DEPTH_CYCLES = {"DW_MAP": 14, "PW_MAP": 10, "C3_MAP": 18, "POOL_MAP": 3}
#: Fill and drain of any other pipelined loop (converters, loads, stream edges).
LOOP_FILL_CYCLES = 3
#: Cycles from ap_start until the core issues its first m_axi read.
START_CYCLES = 8


@dataclass(frozen=True)
class _Physics:
    """A board's hidden physical parameters (private to the simulated board)."""

    ddr_efficiency: float        # share of the DDR peak that long HP streams reach
    dma_setup_s: float           # from a transfer's length write to its first beat
    burst_gap_cycles: int        # idle fabric cycles between two 16-beat bursts
    mem_latency_cycles: int      # m_axi read round trip (address to first data)
    stall_prob: float            # chance that a band's transfer hits a refresh / CPU burst
    stall_mean_cycles: float     # mean length of such a stall
    clock_ppm: float             # PLL output vs nominal fabric clock
    reg_write_s: float           # one MMIO write from Python on the ARM
    reg_read_s: float            # one MMIO read
    dma_call_s: float            # one DMA channel transfer() call (MMIO writes + checks)
    cache_bytes_per_s: float     # cache flush / invalidate throughput
    poll_s: float                # one iteration of a Python poll loop
    static_scale: float          # the board's static power vs the profile's typical figure
    pl_w_per_gmacs: float        # fabric dynamic power per 10^9 MAC/s
    ddr_w_per_gbps: float        # DDR + HP port power per GB/s moved
    driver_pass_s: float         # the driver's own Python per pass (loop, closures, checks)


def _draw_physics(seed: int) -> _Physics:
    """A board's hidden parameters from its seed (realistic ranges for a PYNQ-Z1)."""
    r = np.random.default_rng([0x5EED, int(seed) & 0xFFFFFFFF])
    u = lambda lo, hi: float(r.uniform(lo, hi))  # noqa: E731
    driver = dict(
        ddr_efficiency=u(0.55, 0.82), dma_setup_s=u(0.8e-6, 3.5e-6),
        burst_gap_cycles=int(r.integers(1, 7)), mem_latency_cycles=int(r.integers(22, 48)),
        stall_prob=u(0.01, 0.08), stall_mean_cycles=u(60, 400), clock_ppm=u(-250, 250),
        reg_write_s=u(2.5e-6, 7e-6), reg_read_s=u(2.5e-6, 7e-6), dma_call_s=u(30e-6, 90e-6),
        cache_bytes_per_s=u(0.5e9, 1.4e9), poll_s=u(4e-6, 12e-6))
    u(0.75, 1.25)      # the retired CPU slowdown (the board CPU is :mod:`.cpu` now): still
    #                    drawn, so that every later parameter of a seed stays as it was
    return _Physics(**driver, static_scale=u(0.85, 1.15), pl_w_per_gmacs=u(0.035, 0.09),
                    ddr_w_per_gbps=u(0.35, 0.6), driver_pass_s=u(15e-6, 45e-6))


@dataclass
class PassTimeline:
    """When one pass's events happen (absolute simulated seconds) and what it did."""

    core_start: float
    core_idle: float
    send_idle: float
    recv_idle: float
    weights_s: float             # prologue: descriptor and weight loads
    macs: int
    bytes_moved: int
    stall_s: float = 0.0
    stages: list[str] = field(default_factory=list)


class TimingModel:
    """The pass-level timing of one simulated board (device + overlay + hidden physics)."""

    def __init__(self, device: Device, overlay: Overlay, physics: _Physics, seed: int,
                 run_seed: int = 0):
        self._dev = device
        self._ov = overlay
        self._ph = physics
        key = [0x57A11, int(seed) & 0xFFFFFFFF] + ([int(run_seed) & 0xFFFFFFFF] if run_seed
                                                   else [])
        self._rng = np.random.default_rng(key)
        self.f_hz = overlay.clock_mhz * 1e6 * (1.0 + physics.clock_ppm * 1e-6)
        # bytes per fabric cycle the DDR sustains for streaming, both directions together
        self._ddr_bpc = device.ddr_peak_bytes_per_s * physics.ddr_efficiency / self.f_hz
        self._port_bpc = device.axi_hp_width_bits / 8

    # -- pieces ---------------------------------------------------------------------
    def _stream_cycles(self, nbytes: int, share: float) -> float:
        """Cycles to move ``nbytes`` as DMA bursts on one HP port with a DDR share."""
        beats = nbytes / BEAT_BYTES
        bursts = math.ceil(beats / DMA_BURST_BEATS)
        port = beats + bursts * self._ph.burst_gap_cycles
        ddr = nbytes / max(self._ddr_bpc * share, 1e-9)
        return max(port, ddr)

    def _maxi_cycles(self, nbytes: int) -> float:
        beats = math.ceil(nbytes / BEAT_BYTES)
        bursts = math.ceil(beats / MAXI_BURST_BEATS)
        return max(beats + bursts * self._ph.mem_latency_cycles, nbytes / self._ddr_bpc)

    def _stall(self) -> float:
        if self._rng.random() < self._ph.stall_prob:
            return float(self._rng.exponential(self._ph.stall_mean_cycles))
        return 0.0

    # -- a pass -----------------------------------------------------------------------
    def run_pass(self, header: dict, entries: list[dict], t_send: float, t_recv: float,
                 t_start: float, elem_bytes: int) -> PassTimeline:
        """Event times of one pass: the send was issued at ``t_send``, the receive at
        ``t_recv``, ap_start at ``t_start`` (simulated seconds)."""
        ov, ph, f = self._ov, self._ph, self.f_hz
        fb = ov.feature_bits
        cyc = lambda s: s * f  # noqa: E731   seconds -> cycles
        loops = pass_loops(header, entries, ov)
        proc: dict[str, float] = {}
        load: dict[str, float] = {}          # a compute process's weight and bias loads
        for lc in loops:
            fill = STAGE_DEPTH_CYCLES.get(lc.label, LOOP_FILL_CYCLES)
            c = lc.iters + lc.entries * fill
            proc[lc.process] = proc.get(lc.process, 0.0) + c
            if lc.label.startswith("LOAD_"):
                load[lc.process] = load.get(lc.process, 0.0) + c
        # prologue: ap_start, the descriptor over m_axi (bursts pay the DDR round trip)
        desc_bytes = 4 * (HEADER_WORDS + LAYER_WORDS * len(entries))
        pro = START_CYCLES + self._maxi_cycles(desc_bytes) + ph.mem_latency_cycles
        proc.pop(TOP, None)
        # the weights over m_axi, slot by slot; a stage's map waits for its own
        wb = container_bytes(ov.weight_bits)
        kinds = [_KIND[e["type"]] for e in entries]
        fetched, wbytes, macs = 0.0, 0, 0
        for e, kind in zip(entries, kinds):            # slot order (the descriptor's)
            shape = LayerShape(e["in_c"], e["in_h"], e["in_w"], e["out_c"], e["out_h"],
                               e["out_w"])
            macs += layer_macs(kind, shape)
            n = layer_weights(kind, shape)
            if not n:
                continue
            nbytes = n * wb + 4 * e["out_c"]
            wbytes += nbytes
            fetched += self._maxi_cycles(nbytes)
            key = f"stage{e['slot']}/compute"
            if key in proc and fetched > load.get(key, 0.0):     # waits for its weights
                proc[key] += fetched - load.get(key, 0.0)
        if "fetch_params" in proc:
            proc["fetch_params"] = max(proc["fetch_params"], fetched)
        # the DMA streams: bursts, gaps, the DDR's share
        in_total = header["in_h"] * header["in_w"] * padded_channels(header["in_c"], fb) \
            * elem_bytes
        out_total = header["out_h"] * header["out_w"] * padded_channels(header["out_c"], fb) \
            * elem_bytes
        share_in = in_total / max(in_total + out_total, 1)
        read_c = self._stream_cycles(in_total, share_in)
        write_c = self._stream_cycles(out_total, 1.0 - share_in)
        proc["read_input"] = max(proc.get("read_input", 0.0), read_c)
        proc["write_output"] = max(proc.get("write_output", 0.0), write_c)
        chain_fill = sum(STAGE_DEPTH_CYCLES.get(lc.label, 0) for lc in loops)
        nb = max(1, math.ceil(header["in_h"] / ov.band_rows))
        stall_total = sum(self._stall() for _ in range(nb))
        t0 = cyc(t_start) + pro
        begin = max(t0, cyc(t_send + ph.dma_setup_s))
        body = max(proc.values()) + chain_fill + stall_total
        core_idle = begin + body + 2
        send_idle = max(begin + read_c, core_idle - chain_fill - write_c / 2)
        recv_idle = max(core_idle, cyc(t_recv + ph.dma_setup_s) + write_c) + DMA_BURST_BEATS
        return PassTimeline(
            core_start=t_start, core_idle=core_idle / f, send_idle=min(send_idle, core_idle) / f,
            recv_idle=recv_idle / f, weights_s=(pro + fetched) / f, macs=macs,
            bytes_moved=in_total + out_total + wbytes + desc_bytes, stall_s=stall_total / f,
            stages=kinds)

    def probe(self, t_start: float) -> float:
        """When the core is idle again after a probe (descriptor header read only)."""
        return t_start + (START_CYCLES + self._maxi_cycles(4 * HEADER_WORDS) + 4) / self.f_hz

    # -- the driver's CPU costs ---------------------------------------------------------
    def reg_write(self) -> float:
        return self._ph.reg_write_s

    def reg_read(self) -> float:
        return self._ph.reg_read_s

    def dma_call(self, cache_bytes: int) -> float:
        return self._ph.dma_call_s + cache_bytes / self._ph.cache_bytes_per_s

    def cache_op(self, nbytes: int) -> float:
        return nbytes / self._ph.cache_bytes_per_s

    def poll_quantum(self) -> float:
        """The extra time a poll loop spends after the event: half a poll on average."""
        return float(self._rng.uniform(0.0, 1.0)) * self._ph.poll_s + self._ph.reg_read_s

    def driver_pass(self) -> float:
        """The driver's own Python per pass, beyond its register and DMA calls."""
        return self._ph.driver_pass_s

    # -- power --------------------------------------------------------------------------
    def power_w(self, accel_busy: float, macs_per_s: float, bytes_per_s: float,
                cpu_busy: float) -> float:
        """The board's true power for an activity (what a meter on it would read)."""
        d = self._dev
        return (d.static_board_w * self._ph.static_scale + d.pl_static_w
                + d.ps_active_w * min(max(cpu_busy, 0.0), 1.0) * d.cpu_cores / 2
                + self._ph.pl_w_per_gmacs * macs_per_s / 1e9
                + self._ph.ddr_w_per_gbps * bytes_per_s / 1e9
                + 0.05 * min(max(accel_busy, 0.0), 1.0))


def frame_schedule(pre_s: list[float], accel_s: list[float], post_s: list[float],
                   buffers: int = 2) -> tuple[list[float], list[float], list[float]]:
    """When each frame's input starts, its accelerator work starts, and its result is done,
    for the double-buffered pipeline: a reader thread pre-processes frame ``k`` into input
    buffer ``k % buffers`` (free once frame ``k - buffers`` was run), a worker thread runs
    the accelerator on it, then decodes and draws (``post``). Returns
    ``(read_start, accel_start, done)`` in seconds from the first read."""
    n = len(pre_s)
    read_start, pre_end, acc_start, done = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
    for k in range(n):
        free = acc_start[k - buffers] + accel_s[k - buffers] if k >= buffers else 0.0
        read_start[k] = max(pre_end[k - 1] if k else 0.0, free)
        pre_end[k] = read_start[k] + pre_s[k]
        acc_start[k] = max(pre_end[k], done[k - 1] if k else 0.0)
        done[k] = acc_start[k] + accel_s[k] + post_s[k]
    return read_start, acc_start, done
