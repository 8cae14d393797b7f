"""The simulated board's frame rate for reference designs, and where a frame's time goes.

For each design (a trained package with --package, else dnn-a and dnn-c with random
integer weights: the timing does not depend on the weights' values) it runs the board
benchmark on three simulated boards (different seeds: different hidden physics) and
prints, all labelled *simulated*:

* FPS over the run (DAC-SDC rule), p50/p99 latency, the accelerator's time per frame;
* the share of a frame's board time spent outside the accelerator's compute: CPU
  pre-processing, driver (register writes, DMA calls, cache maintenance, polling), decode;
* on this host (labelled *host wall clock*): the share of the run's time the emulator took
  vs everything else, to show what the simulation itself costs.

    .venv/bin/python benchmarks/bench_sim_board.py [--frames 12] [--package PKG]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pynq_codesign.bench import run_bench, to_record  # noqa: E402
from pynq_codesign.design import load_design  # noqa: E402
from pynq_codesign.driver import Driver  # noqa: E402
from pynq_codesign import randparams  # noqa: E402
from pynq_codesign.package import load_package  # noqa: E402
from pynq_codesign.platform.sim import emulator  # noqa: E402
from pynq_codesign.platform.sim.board import SimPlatform  # noqa: E402


def random_package(name: str, out: Path):
    """A package of reference design ``name`` with random weights (emulator goldens)."""
    return randparams.random_package(out, load_design(name))


class _EmulatorClock:
    """Host wall time spent inside the emulator (to separate the simulation's own cost)."""

    def __init__(self):
        self.seconds = 0.0
        self._orig = emulator.run_pass

    def __enter__(self):
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return self._orig(*a, **k)
            finally:
                self.seconds += time.perf_counter() - t
        import pynq_codesign.platform.sim.board as board
        board.run_pass = timed
        return self

    def __exit__(self, *exc):
        import pynq_codesign.platform.sim.board as board
        board.run_pass = self._orig


def bench_package(pkg, frames: int, seeds=(0, 1, 2)) -> None:
    print(f"\n== {pkg.design.name} ({pkg.design.overlay.device}, "
          f"{pkg.design.overlay.clock_mhz:g} MHz), {frames} frames, golden inputs")
    for seed in seeds:
        with Driver(SimPlatform(seed), pkg) as drv, _EmulatorClock() as emu:
            t0 = time.perf_counter()
            run = run_bench(drv, frames, warmup=1)
            host = time.perf_counter() - t0
            rec = to_record(drv, run)
        d = rec.to_dict()
        s = d["time_split_ms"]
        drv_ms = s["transfers"]
        frame_ms = s["preprocess"] + s["transfers"] + s["compute"] + s["decode"]
        outside = (s["preprocess"] + drv_ms + s["decode"]) / frame_ms
        print(f"board seed {seed}: {rec.fps:6.2f} FPS, latency p50 {rec.latency_ms_p50:6.2f} ms, "
              f"p99 {rec.latency_ms_p99:6.2f} ms, accelerator {s['compute']:6.2f} ms/frame "
              f"[simulated]")
        print(f"   frame time split: pre-processing {s['preprocess']:.2f} ms, driver+transfers "
              f"{drv_ms:.2f} ms, compute {s['compute']:.2f} ms, decode {s['decode']:.2f} ms; "
              f"outside the accelerator's compute: {100 * outside:.1f} % [simulated]")
        print(f"   power {rec.power_w:.2f} W ({rec.power_source}), "
              f"{rec.energy_mj_per_frame:.1f} mJ/frame; this host ran the simulation in "
              f"{host:.2f} s, {100 * emu.seconds / host:.0f} % of it in the emulator "
              f"[host wall clock]")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--package", action="append", help="a package to benchmark (repeatable)")
    ap.add_argument("--designs", default="dnn-a,dnn-c",
                    help="reference designs to build random-weight packages for")
    a = ap.parse_args()
    if a.package:
        pkgs = [load_package(p) for p in a.package]
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench-sim-"))
        pkgs = [random_package(n, tmp / n) for n in a.designs.split(",")]
    print("Simulated board benchmark: every figure below is simulated (the board's own timing "
          "model; CPU time = the board's own Cortex-A9 model of the frame's work), except those "
          "marked host wall clock.")
    for pkg in pkgs:
        bench_package(pkg, a.frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
