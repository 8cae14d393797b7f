"""The access audit: the C simulation instrumented to see what the hardware would see.

:func:`build` compiles the engine's C++ (the same sources as :mod:`host_search.csim`) with
``-DPCD_AUDIT``: the hooks of ``hls/audit.h`` then record, per iteration of every
pipelined loop, the words each memory bank reads and writes and each stream's reads and
writes (``hls/sim/audit_rt.h``). An iteration that needs more than one cycle (more words
of one bank than its ports give, a word written in part, a stream touched twice, a
pipelined loop nested inside) breaks II=1; the audit names the loop and the first reason.

It also counts each pipelined loop's entries and iterations: a loop's cycles are what its
iterations need plus its pipeline depth per entry, a process's cycles the sum over its
loops plus its sequential stream operations, and a pass's cycles those before the
dataflow region (the descriptor) plus the slowest dataflow process (they run at once).
These *audited cycles per pass* are the structural truth the QoS model is checked
against (``benchmarks/bench_cycles_audit.py``) and that the simulated board's trip counts
(:mod:`pynq_codesign.platform.sim.structure`) must equal.
"""
from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pynq_codesign.design import Bundle, Design, Layer, Network, Overlay, Stage, check_fits
from pynq_codesign.fixedpoint import FixedFormat
from pynq_codesign.platform.sim.emulator import run_program as emulate
from pynq_codesign.randparams import random_inputs, random_program
from pynq_codesign.wire import Program, pack_feature, unpack_feature

from . import csim
from .binding import Binding

#: The audit build: the C simulation's flags plus the hooks.
AUDIT_FLAGS = csim.CXX_FLAGS + ("-DPCD_AUDIT",)
#: The dataflow region's processes start after this one (descriptor read, sequential).
TOP = "top"


class AuditError(csim.CsimError):
    """The audit build could not run (not a violation: those are in the results)."""


@dataclass(frozen=True)
class LoopAudit:
    """One pipelined loop in one pass: entries, iterations, cycles, violations."""

    process: str
    label: str
    depth: int
    entries: int
    iters: int
    cycles: int            # sum over iterations of the cycles each needed (II=1: iters)
    bad_iters: int         # iterations that needed more than one cycle
    max_ii: int
    problem: str           # the first violation, in words ('' when none)

    @property
    def ok(self) -> bool:
        return self.bad_iters == 0

    @property
    def total_cycles(self) -> int:
        """Cycles of the loop with its fill and drain (depth per entry)."""
        return self.cycles + self.entries * self.depth

    def describe(self) -> str:
        return (f"{self.process}/{self.label}: {self.bad_iters} of {self.iters} iterations "
                f"need up to {self.max_ii} cycles ({self.problem})")


@dataclass(frozen=True)
class PassAudit:
    """What the audit saw in one pass."""

    index: int
    loops: tuple[LoopAudit, ...]
    seq_ops: dict = field(default_factory=dict)       # per process, outside pipelines
    maxi_single: dict = field(default_factory=dict)   # single m_axi reads per process

    def process_cycles(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for lp in self.loops:
            out[lp.process] = out.get(lp.process, 0) + lp.total_cycles
        for p, n in self.seq_ops.items():
            out[p] = out.get(p, 0) + int(n)
        for p, n in self.maxi_single.items():
            out[p] = out.get(p, 0) + int(n)
        return out

    @property
    def cycles(self) -> int:
        """Cycles of the pass: the descriptor (before the dataflow region) plus the
        slowest dataflow process."""
        pc = self.process_cycles()
        top = pc.pop(TOP, 0)
        return top + (max(pc.values()) if pc else 0)

    @property
    def violations(self) -> list[LoopAudit]:
        return [lp for lp in self.loops if not lp.ok]


@dataclass(frozen=True)
class DesignAudit:
    """Every pass of one design through the audit build, with the output checked."""

    name: str
    passes: tuple[PassAudit, ...]
    exact: bool            # the audit build's output equals the emulator's
    program: Program | None = None

    @property
    def cycles(self) -> list[int]:
        return [p.cycles for p in self.passes]

    @property
    def violations(self) -> list[str]:
        return [f"pass {p.index}: {lp.describe()}" for p in self.passes for lp in p.violations]

    @property
    def ok(self) -> bool:
        return self.exact and not self.violations


class AuditEngine(csim.CsimEngine):
    """A loaded audit build: :meth:`audit_pass` runs a pass and returns the audit too."""

    def __init__(self, path: Path, overlay):
        super().__init__(path, overlay)
        f = getattr(self._lib, "pcd_audit_report", None)
        if f is None:
            raise AuditError(f"{path} was not built with -DPCD_AUDIT")
        f.argtypes = [ctypes.c_char_p, ctypes.c_int]
        f.restype = ctypes.c_int
        self._report = f

    def last_report(self) -> dict:
        n = self._report(None, 0)
        buf = ctypes.create_string_buffer(n + 1)
        self._report(buf, n + 1)
        return json.loads(buf.value.decode())

    def audit_program(self, program: Program, x: np.ndarray
                      ) -> tuple[np.ndarray, list[PassAudit]]:
        """Every pass on input codes ``x`` (the stream protocol checked as in
        :meth:`csim.CsimEngine.run_program`); the output codes and each pass's audit."""
        fb = self.overlay.feature_bits
        buf = pack_feature(np.asarray(x), fb)
        audits: list[PassAudit] = []
        y = None
        for i, ps in enumerate(program.passes):
            r = self.run_pass(buf, program.params, ps.desc_offset, ps.out_bytes)
            if r.status or r.out.size != ps.out_bytes or r.n_last != 1 or r.in_left:
                raise AuditError(f"pass {i}: the audit build broke the pass (status "
                                 f"{r.status}, {r.out.size} of {ps.out_bytes} bytes, "
                                 f"TLASTs {r.n_last}, input beats left {r.in_left})")
            audits.append(_parse(i, self.last_report()))
            buf = r.out
            c, h, w = ps.out_shape
            y = unpack_feature(buf, h, w, c, fb)
        return y, audits


def _parse(index: int, rep: dict) -> PassAudit:
    loops = tuple(LoopAudit(**lp) for lp in rep["loops"])
    return PassAudit(index, loops, dict(rep.get("seq_ops", {})),
                     dict(rep.get("maxi_single", {})))


def build(overlay, binding: Binding | None = None,
          build_root: str | Path | None = None) -> AuditEngine:
    """The audit build of ``overlay``'s engine, compiled (or reused) and loaded."""
    lib = csim.build_library(overlay, binding, build_root, flags=AUDIT_FLAGS)
    return AuditEngine(lib, overlay)


def reduced(design: Design, height: int, width: int) -> Design:
    """The same overlay and layers on a smaller input (the audit's counts scale with the
    map; the loop structure does not)."""
    d = design.to_dict()
    d["network"]["input"].update(height=int(height), width=int(width))
    return Design.from_dict(d)


def audit_design(design: Design, engine: AuditEngine | None = None, seed: int = 0
                 ) -> DesignAudit:
    """Random weights and a random input through every pass of ``design`` in the audit
    build; the output is compared with the emulator's (bit for bit)."""
    engine = engine or build(design.overlay)
    prog = random_program(design, seed)
    x = random_inputs(design, 1, seed + 1)[0]
    y, audits = engine.audit_program(prog, x)
    exact = bool(np.array_equal(y, emulate(prog, x, design.overlay)))
    return DesignAudit(design.name, tuple(audits), exact, prog)


def structure_mismatches(design: Design, result: DesignAudit) -> list[str]:
    """Where the simulated board's loop structure (pynq_codesign.platform.sim.structure)
    differs from what the audit counted, loop by loop ([] = equal)."""
    from pynq_codesign.platform.sim.structure import pass_loops
    from pynq_codesign.wire import read_descriptor
    out = []
    for pa, ps in zip(result.passes, result.program.passes):
        header, entries = read_descriptor(result.program.params, ps.desc_offset)
        want = {(lc.process, lc.label): (lc.entries, lc.iters)
                for lc in pass_loops(header, entries, design.overlay)}
        got = {(lp.process, lp.label): (lp.entries, lp.iters) for lp in pa.loops}
        if want != got:
            out.append(f"pass {pa.index}: structure {sorted(set(want.items()) - set(got.items()))}"
                       f" vs audit {sorted(set(got.items()) - set(want.items()))}")
    return out


def with_name(design: Design, name: str) -> Design:
    return replace(design, name=name)


#: Overlays for random designs: word sizes that divide the beat, exceed it, and neither
#: (pe 3, simd 5), two feature widths (8 and 12 bits: 8 and 4 codes a beat).
RANDOM_OVERLAYS = (
    Overlay(weight_bits=8, feature_bits=8, band_rows=2, max_channels=16, max_width=12,
            max_row_elems=16 * 12, max_layer_weights=9 * 16 * 16,
            stages=(Stage("conv3", 3, 5), Stage("dw", 2), Stage("pw", 4, 16), Stage("pool"))),
    Overlay(weight_bits=6, feature_bits=12, band_rows=3, max_channels=16, max_width=12,
            max_row_elems=16 * 12, max_layer_weights=9 * 16 * 16,
            stages=(Stage("dw", 5), Stage("pw", 3, 3), Stage("pool"))),
)


def random_design(overlay: Overlay, rng: np.random.Generator, name: str = "random") -> Design:
    """A one-bundle network on ``overlay``'s chain (some slots left out, so passes bypass
    them), random shapes, strides, channel counts and activations; drawn again until it
    fits the overlay (design.check_fits)."""
    while True:
        d = _draw_design(overlay, rng, name)
        if not check_fits(d.network, overlay):
            return d


def _draw_design(ov: Overlay, rng: np.random.Generator, name: str) -> Design:
    c, h, w = int(rng.integers(1, 12)), int(rng.integers(2, 9)), int(rng.integers(2, 11))
    layers = []
    for kind in ov.stage_kinds:
        if layers and rng.random() < 0.25:
            continue
        stride = int(rng.integers(1, 3)) if kind in ("dw", "conv3") else 1
        oc = int(rng.integers(1, 15)) if kind in ("pw", "conv3") else None
        act = str(rng.choice(["none", "relu", "relu6"]))
        fmt = FixedFormat(ov.feature_bits, int(rng.integers(0, 4)))
        wf = FixedFormat(ov.weight_bits, 1) if kind != "pool" else None
        layers.append(Layer(kind, oc, stride, act, wf, fmt if kind != "pool" else None))
    net = Network(input_channels=c, input_height=h, input_width=w,
                  bundles=(Bundle(tuple(layers)),),
                  input_format=FixedFormat(ov.feature_bits, 3),
                  weight_format=FixedFormat(ov.weight_bits, 1),
                  feature_format=FixedFormat(ov.feature_bits, 3))
    return Design(name, ov, net)


def model_errors(design: Design, result: DesignAudit) -> list[float]:
    """Per pass, (model - audited) / audited of the QoS model's structural cycles
    (:attr:`host_search.qos_model.BatchEstimate.pass_cycles`)."""
    from .qos_model import DesignBatch, estimate_batch
    est = estimate_batch(DesignBatch.from_design(design)).pass_cycles[0]
    return [(float(m) - a) / a for m, a in zip(est, result.cycles)]
