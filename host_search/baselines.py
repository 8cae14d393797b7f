"""The baselines the co-search is measured against, at the same budget.

* ``random``: points drawn uniformly from the same space (every bundle that fits the
  device, every knob), the accelerator fitted the same way; points the estimate says
  miss the targets are rejected for free (estimate calls, no training), the rest trained
  ``batch`` at a time until the budget is spent.
* ``topdown``: the flow the paper argues against. Start from a large backbone (DW3-PW1
  bundles, MobileNet-like: 6 repetitions from 64 channels, 16-bit weights and feature maps,
  full input), train it, then cut width, depth and bits in turn until the estimate meets
  the targets, train the compressed network; with budget left, cut again in another order
  from the backbone (and further from each compliant design).
"""
from __future__ import annotations

import itertools
from dataclasses import replace

from .space import (BASE_CHANNELS, DEPTHS, FEATURE_BITS, GROWTHS, SCALES, WEIGHT_BITS,
                    NetKnobs, down_options)

RANDOM_DRAWS_PER_STEP = 400
#: Steps without a training (nothing feasible drawn, or every pick rejected by a board)
#: before random search gives up.
MAX_IDLE_STEPS = 50
BACKBONE = NetKnobs("DW3-PW1+pool", depth=6, base_ch=64, growth=2.0, down=(0, 1, 2, 3),
                    wbits=16, fbits=16, scale=1.0)
CUTS = ("width", "depth", "bits")


def random_knobs(rng, bundles: list[str]) -> NetKnobs:
    depth = int(rng.choice(DEPTHS))
    downs = down_options(depth)
    return NetKnobs(bundles[int(rng.integers(len(bundles)))], depth,
                    int(rng.choice(BASE_CHANNELS)), float(rng.choice(GROWTHS)),
                    downs[int(rng.integers(len(downs)))], int(rng.choice(WEIGHT_BITS)),
                    int(rng.choice(FEATURE_BITS)), float(rng.choice(SCALES)))


def run_random(s, bundles: list[str]) -> None:
    cfg = s.cfg
    seen: set[str] = set()
    idle = 0
    for step in range(0, 10_000):
        n = s.affordable(cfg.batch)
        if n == 0:
            break
        rng = s.rng(step)
        pick, screened, rejected = [], [], 0
        for _ in range(RANDOM_DRAWS_PER_STEP):
            c = s.screen(random_knobs(rng, bundles))
            if c is None:
                rejected += 1
                continue
            screened.append(c)
            if c.accel.meets and c.key not in seen:
                seen.add(c.key)
                pick.append(c)
                if len(pick) == n:
                    break
            else:
                rejected += 1
        s.record_screen(step, screened, "random")
        if not pick:
            idle += 1
            s.step_done(step, {"coordinate": "random", "screened": len(screened),
                               "feasible": 0, "pruned": rejected, "trained": []})
            if idle >= MAX_IDLE_STEPS:
                break
            continue
        evs = s.train(pick, step)
        idle = 0 if evs else idle + 1
        best = s.best()
        s.step_done(step, {"coordinate": "random", "screened": len(screened) + rejected,
                           "feasible": len(pick), "pruned": rejected,
                           "trained": [e.key for e in evs], "ious": [e.iou for e in evs],
                           "best_iou": best.iou if best else None,
                           "current": best.cand.key if best else None})
        if idle >= MAX_IDLE_STEPS:
            break


def cut(k: NetKnobs, what: str) -> NetKnobs | None:
    """One compression step along ``what``; None when that dimension is at its floor."""
    if what == "width":
        smaller = [b for b in BASE_CHANNELS if b < k.base_ch]
        return replace(k, base_ch=smaller[-1]) if smaller else None
    if what == "depth":
        if k.depth <= DEPTHS[0]:
            return None
        d = k.depth - 1
        down = tuple(i for i in k.down if i < d)
        if len(down) < 2:
            down = tuple(range(min(2, d)))
        return replace(k, depth=d, down=down)
    wb = [b for b in WEIGHT_BITS if b < k.wbits]
    fb = [b for b in FEATURE_BITS if b < k.fbits]
    if not wb and not fb:
        return None
    return replace(k, wbits=wb[-1] if wb else k.wbits, fbits=fb[-1] if fb else k.fbits)


def compress(s, start: NetKnobs, order: tuple[str, ...]):
    """Cut in ``order`` round-robin until the estimate meets the targets (or nothing to cut)."""
    k = start
    c = s.screen(k)
    path = []
    i = 0
    stuck = 0
    while (c is None or not c.accel.meets) and stuck < len(order):
        nk = cut(k, order[i % len(order)])
        i += 1
        if nk is None:
            stuck += 1
            continue
        stuck = 0
        k = nk
        c = s.screen(k)
        if c is not None:
            path.append(c)
    return (c if c is not None and c.accel.meets else None), path


def run_topdown(s) -> None:
    from .bundles import BundleTemplate
    s.templates.setdefault(BACKBONE.bundle, BundleTemplate(("dw", "pw"), (1.0, 1.0), "pool"))
    rng = s.rng(0)
    big = s.screen(BACKBONE)
    step = 0
    if big is not None and s.affordable(1):
        s.record_screen(step, [big], "backbone")
        evs = s.train([big], step, check=False)     # the backbone is trained regardless
        s.step_done(step, {"coordinate": "backbone", "screened": 1, "feasible":
                           int(big.accel.meets), "pruned": 0, "trained": [e.key for e in evs],
                           "ious": [e.iou for e in evs], "current": big.key})
    orders = list(itertools.permutations(CUTS))
    first = int(rng.integers(len(orders)))
    orders = orders[first:] + orders[:first]
    starts = [BACKBONE]
    done: set[str] = {big.key} if big is not None else set()
    while s.affordable(1) and starts:
        progressed = False
        new_starts = []
        for origin in starts:
            for order in orders:
                if not s.affordable(1):
                    break
                c, path = compress(s, origin, order)
                step += 1
                s.record_screen(step, path, "cut")
                if c is None or c.key in done:
                    continue
                done.add(c.key)
                evs = s.train([c], step)
                progressed = True
                new_starts.append(c.knobs)
                best = s.best()
                s.step_done(step, {"coordinate": "cut " + ">".join(order),
                                   "screened": len(path), "feasible": 1,
                                   "pruned": len(path) - 1, "trained": [e.key for e in evs],
                                   "ious": [e.iou for e in evs],
                                   "best_iou": best.iou if best else None,
                                   "current": c.key})
        # further compression from each compliant design (one more cut each way)
        starts = [k2 for k in new_starts for w in CUTS if (k2 := cut(k, w)) is not None]
        if not progressed and not starts:
            break
        if not progressed:
            starts = starts[:8]
