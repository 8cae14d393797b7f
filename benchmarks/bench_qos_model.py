"""Design points per second of the vectorised analytical QoS model on one core.

Run: ``.venv/bin/python benchmarks/bench_qos_model.py [--n 20000] [--repeat 5]``.
Draws random knobs (parallelism, bit widths, clock, band rows, channel widths, input
size) around DNN-C's topology, evaluates them with ``estimate_batch`` and prints the
rate, next to the scalar ``estimate`` rate measured in the same run.
"""
from __future__ import annotations

import argparse
import os
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")          # one core

import numpy as np  # noqa: E402

from host_search.qos_model import DesignBatch, estimate, estimate_batch  # noqa: E402
from pynq_codesign.design import load_design  # noqa: E402


def random_batch(design, n: int, seed: int = 0) -> DesignBatch:
    rng = np.random.default_rng(seed)
    base = DesignBatch.from_design(design, 1)
    S = base.pe.shape[1]
    scale = rng.choice([0.5, 0.75, 1.0, 1.25, 1.5], size=(n, 1))
    oc = np.maximum(1, np.round(base.out_channels * scale)).astype(np.int64)
    oc[:, -1] = base.out_channels[0, -1]            # the detection head stays
    return base.with_(
        input_h=rng.choice([80, 120, 160], n), input_w=rng.choice([180, 270, 360], n),
        out_channels=oc, weight_bits=rng.integers(4, 17, n),
        feature_bits=rng.integers(4, 17, n), clock_mhz=rng.choice([100.0, 125.0, 142.86], n),
        band_rows=rng.integers(2, 17, n), pe=2 ** rng.integers(0, 6, (n, S)),
        simd=2 ** rng.integers(0, 5, (n, S))).sized_to_network()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--design", default="dnn-c")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    design = load_design(a.design)
    batch = random_batch(design, a.n)
    estimate_batch(batch)                            # warm-up
    best = float("inf")
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        estimate_batch(batch)
        best = min(best, time.perf_counter() - t0)
    rate = a.n / best
    t0 = time.perf_counter()
    k = 50
    for _ in range(k):
        estimate(design)
    scalar = k / (time.perf_counter() - t0)
    print(f"design: {a.design} ({len(batch.topology.layer_kinds)} layers, "
          f"{len(batch.topology.passes)} passes), batch of {a.n} random points")
    print(f"vectorised estimate_batch: {rate:,.0f} design points/s (best of {a.repeat})")
    print(f"scalar estimate():         {scalar:,.0f} designs/s")
    print(f"vectorised / scalar:       {rate / scalar:,.0f}x")
    print(f"target >= 100,000 points/s: {'met' if rate >= 1e5 else 'NOT met'}")


if __name__ == "__main__":
    main()
