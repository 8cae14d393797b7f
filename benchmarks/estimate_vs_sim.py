"""The analytical estimate beside the simulated board, per bundle, for reference designs.

The two timing sources are independent by design (host_search/qos_model.py and
pynq_codesign/platform/sim/timing.py share nothing but the device profile), so their gap
is what a calibration against measurements has to close. This prints, for each design,
each bundle's accelerator latency as *estimated* and as *simulated* on three simulated
boards (different hidden physics), and their ratio. Weights are random (the timing does
not depend on their values).

    .venv/bin/python benchmarks/estimate_vs_sim.py [--designs dnn-a,dnn-c] [--frames 4]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from host_search.qos_model import estimate  # noqa: E402
from pynq_codesign import randparams  # noqa: E402
from pynq_codesign.bench import run_bench, to_record  # noqa: E402
from pynq_codesign.design import load_design  # noqa: E402
from pynq_codesign.driver import Driver  # noqa: E402
from pynq_codesign.platform.sim.board import SimPlatform  # noqa: E402


def compare(name: str, frames: int, seeds: tuple[int, ...], tmp: Path) -> None:
    design = load_design(name)
    est = estimate(design)
    pkg = randparams.random_package(tmp / name, design)
    sims = []
    for seed in seeds:
        with Driver(SimPlatform(seed), pkg) as drv:
            sims.append(to_record(drv, run_bench(drv, frames, warmup=1)))
    print(f"\n== {name}: accelerator latency per bundle, ms "
          f"(estimated | simulated on board seeds {', '.join(map(str, seeds))})")
    for i, b in enumerate(est.bundles):
        sim = [s.bundles[i].latency_ms for s in sims]
        ratio = sum(sim) / len(sim) / b.latency_ms
        print(f"  bundle {i} {b.name:<45} {b.latency_ms:7.2f} | "
              + " ".join(f"{x:7.2f}" for x in sim) + f"   sim/est {ratio:5.2f}")
    tot_sim = [sum(b.latency_ms for b in s.bundles) for s in sims]
    tot_est = sum(b.latency_ms for b in est.bundles)
    print(f"  {'all bundles':<54} {tot_est:7.2f} | "
          + " ".join(f"{x:7.2f}" for x in tot_sim)
          + f"   sim/est {sum(tot_sim) / len(tot_sim) / tot_est:5.2f}")
    print(f"  frame rate: {est.fps:.1f} FPS estimated (accelerator + driver overhead); "
          + ", ".join(f"{s.fps:.1f}" for s in sims)
          + " FPS simulated (whole pipeline, board CPU included)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", default="dnn-a,dnn-b,dnn-c")
    ap.add_argument("--frames", type=int, default=4)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        for name in a.designs.split(","):
            compare(name, a.frames, (0, 1, 2), Path(t))
    return 0


if __name__ == "__main__":
    sys.exit(main())
