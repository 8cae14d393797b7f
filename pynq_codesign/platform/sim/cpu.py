"""The simulated board's CPU: what its ARM Cortex-A9 takes for the pipeline's work.

A PYNQ-Z1's processing system is a dual-core Cortex-A9 at 650 MHz (32 KB L1 caches, a
512 KB shared L2, DDR3 on a 16-bit bus) running CPython 3.10 with numpy 1.x (armhf: VFPv3
doubles, NEON for some integer loops) and OpenCV with libjpeg-turbo. The pipeline
describes each frame's CPU work as operation counts (:class:`pynq_codesign.cpu_work.CpuWork`);
this module turns them into board seconds with a cost per operation. Every simulated board
draws its costs from its seed (:class:`_CpuPhysics`, private like the rest of its physics),
within these ranges and for these reasons:

============================  ================  =============================================
cost                          range             why
============================  ================  =============================================
Python-level call             3-8 us            CPython on a 650 MHz A9 runs a plain
                                                function call in ~1 us; a numpy call (argument
                                                parsing, dtype resolution, allocation) 5-10 us
file opened                   60-200 us         open/stat/read or write/close syscalls on
                                                ext4 on the SD card, through the page cache
copy, per byte                1.4-3.0 ns        memcpy at 330-700 MB/s (the A9's memory path
                                                to DDR3-1050 x16)
JPEG decode, per pixel        30-80 ns          libjpeg-turbo with NEON: 12-33 Mpixel/s for
                                                4:2:0 photographs at 650 MHz
PNG decode, per pixel         60-160 ns         zlib inflate + un-filtering, no NEON path
bilinear resize, per output   6-16 ns           cv2.resize INTER_LINEAR, uint8, 3 channels
area resize, per source px    8-20 ns           INTER_AREA at a non-integer ratio reads every
                                                source pixel with weights
normalise + quantise, per     100-240 ns        about nine float64 numpy passes (astype, /255,
element                                         -mean, /std, scale, round, clip, astype) over
                                                arrays larger than the L2; a VFP double
                                                divide takes ~25 cycles
DMA layout pack/unpack,       4-10 ns           zero fill and a strided casting assignment
per element
box decode, per output elem   15-40 ns          dequantise, astype, argmax over a strided view
                                                (arrays in L2)
JPEG encode, per pixel        60-140 ns         libjpeg-turbo compress at OpenCV's quality 95
per-phase jitter (rel. sd)    0.8-2.5 %         cache state, interrupts, CPython's collector
============================  ================  =============================================

Jitter is drawn per phase of every frame from a generator seeded by (board seed, run
seed), so a run repeats exactly for the same pair, in one process or another, whatever the
host is doing. The draw shares nothing with the host's model (``host_search``): not code,
not constants; only measurements reveal a board's CPU.

Board-side code: numpy only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from ...cpu_work import CpuWork


@dataclass(frozen=True)
class _CpuPhysics:
    """A board CPU's hidden costs per operation (seconds; private to the simulated board)."""

    call_s: float
    file_s: float
    copy_s_per_byte: float
    jpeg_s_per_px: float
    png_s_per_px: float
    resize_s_per_px: float
    area_s_per_px: float
    norm_s_per_elem: float
    layout_s_per_elem: float
    box_s_per_elem: float
    encode_s_per_px: float
    jitter_sd: float


def _draw_cpu(seed: int) -> _CpuPhysics:
    """A board CPU's costs from its seed (ranges: the module docstring's table)."""
    r = np.random.default_rng([0xA9C0, int(seed) & 0xFFFFFFFF])
    u = lambda lo, hi: float(r.uniform(lo, hi))  # noqa: E731
    return _CpuPhysics(
        call_s=u(3e-6, 8e-6), file_s=u(60e-6, 200e-6), copy_s_per_byte=u(1.4e-9, 3.0e-9),
        jpeg_s_per_px=u(30e-9, 80e-9), png_s_per_px=u(60e-9, 160e-9),
        resize_s_per_px=u(6e-9, 16e-9), area_s_per_px=u(8e-9, 20e-9),
        norm_s_per_elem=u(100e-9, 240e-9), layout_s_per_elem=u(4e-9, 10e-9),
        box_s_per_elem=u(15e-9, 40e-9), encode_s_per_px=u(60e-9, 140e-9),
        jitter_sd=u(0.008, 0.025))


#: Which cost each count of a :class:`CpuWork` pays (file bytes move at the copy rate).
_COST_OF = {"calls": "call_s", "files": "file_s", "file_bytes": "copy_s_per_byte",
            "jpeg_px": "jpeg_s_per_px", "png_px": "png_s_per_px",
            "copy_bytes": "copy_s_per_byte", "resize_px": "resize_s_per_px",
            "area_px": "area_s_per_px", "norm_elems": "norm_s_per_elem",
            "layout_elems": "layout_s_per_elem", "box_elems": "box_s_per_elem",
            "encode_px": "encode_s_per_px"}
assert set(_COST_OF) == {f.name for f in fields(CpuWork)}


class CpuModel:
    """The CPU of one simulated board (``board_seed``) for one run (``run_seed``)."""

    def __init__(self, board_seed: int, run_seed: int = 0):
        self._ph = _draw_cpu(board_seed)
        self._rng = np.random.default_rng([0xC9A9, int(board_seed) & 0xFFFFFFFF,
                                           int(run_seed) & 0xFFFFFFFF])

    def nominal_s(self, work: CpuWork) -> float:
        """Seconds of ``work`` on this board's CPU without jitter."""
        ph = self._ph
        return sum(getattr(work, k) * getattr(ph, c) for k, c in _COST_OF.items())

    def seconds(self, work: CpuWork) -> float:
        """Seconds of ``work`` on this board's CPU, with this run's next jitter draw."""
        z = float(self._rng.standard_normal())
        return self.nominal_s(work) * math.exp(self._ph.jitter_sd * z)
