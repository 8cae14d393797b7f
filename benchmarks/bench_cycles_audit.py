"""Model vs audited cycles per pass: the QoS model's closed form against the C++ itself.

For DNN-A/B/C (on a reduced input: the loop structure is the same, the counts scale with
the map) and 20 random designs (two random overlays), every pass runs through the access
audit of the C simulation (host_search/audit.py: the instrumented g++ build counts each
pipelined loop's iterations and checks II=1), and the QoS model's structural cycles per
pass (host_search/qos_model.py, BatchEstimate.pass_cycles) are printed beside them.

    .venv/bin/python benchmarks/bench_cycles_audit.py [--height 32 --width 72] [--random 20]

Figures: "audited" = counted in C simulation (cycles at II=1 plus pipeline depths, what
the engine's loops take without memory stalls); "estimated" = the model's closed form.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host_search import audit  # noqa: E402
from pynq_codesign.design import load_design  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=32)
    ap.add_argument("--width", type=int, default=72)
    ap.add_argument("--random", type=int, default=20, help="random designs (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    designs = [audit.reduced(load_design(n), args.height, args.width) for n in
               ("dnn-a", "dnn-b", "dnn-c")]
    rng = np.random.default_rng(args.seed)
    ovs = audit.RANDOM_OVERLAYS
    designs += [audit.random_design(ovs[i % len(ovs)], rng, f"random-{i}")
                for i in range(args.random)]
    engines: dict[int, audit.AuditEngine] = {}
    print(f"{'design':<10} {'pass':>4} {'audited cycles':>15} {'estimated cycles':>17} "
          f"{'error':>7}  II=1")
    errors, violations, inexact = [], 0, 0
    for d in designs:
        hid = d.overlay.hardware_id
        if hid not in engines:
            engines[hid] = audit.build(d.overlay)
        r = audit.audit_design(d, engines[hid])
        errs = audit.model_errors(d, r)
        from host_search.qos_model import DesignBatch, estimate_batch
        est = estimate_batch(DesignBatch.from_design(d)).pass_cycles[0]
        violations += len(r.violations)
        inexact += not r.exact
        for pa, m, e in zip(r.passes, est, errs):
            ok = "yes" if not pa.violations else f"NO ({len(pa.violations)} loops)"
            print(f"{d.name:<10} {pa.index:>4} {pa.cycles:>15,} {int(m):>17,} {100 * e:>+6.1f}%  {ok}")
        errors += errs
    within = sum(abs(e) <= 0.10 for e in errors)
    worst = max(abs(e) for e in errors)
    print(f"\n{len(designs)} designs, {len(errors)} passes; audit violations: {violations}; "
          f"outputs differing from the emulator: {inexact}; host wall clock "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"estimated vs audited cycles per pass: {within} of {len(errors)} within 10% "
          f"(worst {100 * worst:.1f}%, mean |error| {100 * np.mean(np.abs(errors)):.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
