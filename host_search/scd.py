"""Stochastic coordinate descent over the network and the accelerator together.

The state is one point of the space (:class:`host_search.space.NetKnobs`: the bundle among
those QoR kept, repetitions, first width, width growth, down-sampling positions, weight and
feature bits, input resize). Each step draws a coordinate at random (from ``(seed,
step)``) and screens *every* value along it; for each of those networks the accelerator is
re-fitted (:func:`host_search.space.fit_accelerator` screens every parallelism, band-rows
and clock choice with the vectorised estimate: the network's needs resize the accelerator).
Networks that meet the targets at no accelerator choice are pruned (hardware limits prune
the network space). The promising survivors (the highest predicted IoU, see
:func:`promise`) are trained precisely, ``batch`` at a time; the state moves to a trained
neighbour that beats the best IoU so far and that meets the targets.

Before anything is trained, the start point is walked to feasibility by screening alone
(the fastest neighbour along each coordinate until the targets are met), then grown back
while it stays feasible, so the first training is spent on a design that uses the device.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .space import (BASE_CHANNELS, DEPTHS, FEATURE_BITS, GROWTHS, SCALES, WEIGHT_BITS,
                    Candidate, NetKnobs, down_options)

COORDS = ("bundle", "depth", "base_ch", "growth", "down", "wbits", "fbits", "scale")
#: Steps without any trainable neighbour before a random restart / the end.
MAX_IDLE = 12
MAX_STEPS = 400


def values(coord: str, k: NetKnobs, bundles: list[str]) -> list[NetKnobs]:
    """Every neighbour of ``k`` along ``coord`` (``k`` itself excluded)."""
    if coord == "bundle":
        return [replace(k, bundle=b) for b in bundles if b != k.bundle]
    if coord == "depth":
        out = []
        for d in DEPTHS:
            if d == k.depth:
                continue
            down = tuple(i for i in k.down if i < d)
            extra = [i for i in range(d) if i not in down]
            while len(down) < 2 and extra:
                down = tuple(sorted(down + (extra.pop(0),)))
            if len(down) > 4:
                down = down[:4]
            out.append(replace(k, depth=d, down=down))
        return out
    if coord == "down":
        return [replace(k, down=o) for o in down_options(k.depth) if o != k.down]
    table = {"base_ch": BASE_CHANNELS, "growth": GROWTHS, "wbits": WEIGHT_BITS,
             "fbits": FEATURE_BITS, "scale": SCALES}[coord]
    return [replace(k, **{coord: v}) for v in table if v != getattr(k, coord)]


def features(c: Candidate) -> np.ndarray:
    k = c.knobs
    return np.array([1.0, np.log(max(c.macs, 1)), np.log(max(c.params, 1)), k.wbits / 16,
                     k.fbits / 16, k.scale, k.depth / 6], dtype=np.float64)


def promise(cands: list[Candidate], trained: list[tuple[Candidate, float]]) -> np.ndarray:
    """Predicted IoU of untrained candidates: a ridge fit on what was trained so far
    (features: log MACs, log parameters, bit widths, input scale, depth); before four
    trainings, the capacity (log MACs) alone."""
    x = np.stack([features(c) for c in cands])
    if len(trained) < 4:
        return x[:, 1] * 1e-3 + x[:, 3] * 1e-4 + x[:, 4] * 1e-4
    xt = np.stack([features(c) for c, _ in trained])
    y = np.array([v for _, v in trained])
    lam = 1e-2 * np.eye(xt.shape[1])
    lam[0, 0] = 0.0
    w = np.linalg.solve(xt.T @ xt + lam, xt.T @ y)
    return x @ w


def start_point(s, bundle: str) -> Candidate | None:
    """A feasible start for ``bundle``: walk to the targets, then grow while feasible."""
    k = NetKnobs(bundle, depth=4, base_ch=16, growth=2.0, down=(0, 1, 2), wbits=8, fbits=8,
                 scale=1.0)
    c = s.screen(k)
    for _ in range(30):                 # towards feasibility: the fastest neighbour
        if c is not None and c.accel.meets:
            break
        best = None
        for coord in COORDS[1:]:
            for n in values(coord, k, []):
                cn = s.screen(n)
                if cn is not None and (best is None or cn.accel.max_fps > best.accel.max_fps):
                    best = cn
        if best is None or (c is not None and best.accel.max_fps <= c.accel.max_fps):
            return c if c is not None and c.accel.meets else None
        c, k = best, best.knobs
    if c is None or not c.accel.meets:
        return None
    for _ in range(30):                 # grow capacity while the targets hold
        grown = [cn for coord in ("base_ch", "depth", "scale", "wbits")
                 for cn in (s.screen(n) for n in values(coord, k, []))
                 if cn is not None and cn.accel.meets and cn.macs > c.macs]
        if not grown:
            break
        c = min(grown, key=lambda x: (x.macs, x.key))
        k = c.knobs
    return c


def _score(e) -> tuple[float, float]:
    """What SCD maximises: the fixed-point IoU, the float IoU breaking ties."""
    return (e.iou or 0.0, e.float_iou or 0.0)


def run_scd(s) -> None:
    """Stochastic coordinate descent until the budget is spent (``s``: search.Search)."""
    cfg = s.cfg
    bundles = list(s.kept)
    starts = [c for c in (start_point(s, b) for b in bundles) if c is not None]
    if not starts:
        from .search import SearchError
        raise SearchError(f"no network of the kept bundles ({', '.join(bundles)}) meets "
                          f"{cfg.target_fps:g} FPS on {cfg.device} (estimated); lower "
                          "--target-fps")
    cur = starts[0]
    s.record_screen(0, starts, "start")
    n0 = s.affordable(cfg.batch)
    first = starts[:max(1, n0)]
    evs = s.train(first, step=0)
    trained = {e.cand.key for e in evs}
    best_iou, best = -1.0, (-1.0, -1.0)
    for e in evs:
        if e.status == "done" and e.meets(s.targets) and _score(e) > best:
            best, best_iou, cur = _score(e), e.iou or 0.0, e.cand
    s.step_done(0, {"coordinate": "start", "current": cur.key, "best_iou": best_iou,
                    "trained": [e.key for e in evs], "ious": [e.iou for e in evs],
                    "screened": len(starts),
                    "feasible": len(starts), "pruned": 0, "current_knobs": cur.knobs.to_dict(),
                    "accelerator": cur.accel.to_dict()})
    idle, last = 0, None
    for step in range(1, MAX_STEPS):
        if s.affordable(1) == 0:
            break
        rng = s.rng(step)
        choices = [c for c in COORDS if c != last and not (c == "bundle" and len(bundles) < 2)]
        coord = choices[int(rng.integers(len(choices)))]
        last = coord
        neigh = [c for c in (s.screen(n) for n in values(coord, cur.knobs, bundles))
                 if c is not None]
        feas = [c for c in neigh if c.accel.meets]
        fresh = [c for c in feas if f"cand-{c.key}-s{cfg.seed}" not in s.trained
                 and c.key not in trained and c.key not in s.rejected]
        s.record_screen(step, neigh, "neighbour")
        data = {"coordinate": coord, "screened": len(neigh), "feasible": len(feas),
                "pruned": len(neigh) - len(feas), "trained": []}
        if not fresh:
            idle += 1
            if idle >= MAX_IDLE:
                # restart from a random feasible, untrained point near a kept bundle
                k = cur.knobs
                for c2 in COORDS[1:]:
                    opts = values(c2, k, bundles)
                    if opts:
                        k = opts[int(rng.integers(len(opts)))]
                cand = s.screen(k)
                if cand is not None and cand.accel.meets:
                    cur = cand
                idle = 0
                data["restart"] = cur.key
            s.step_done(step, {**data, "current": cur.key, "best_iou": best_iou,
                               "current_knobs": cur.knobs.to_dict(),
                               "accelerator": cur.accel.to_dict()})
            continue
        idle = 0
        hist = [(s.trained[k].cand, s.trained[k].iou) for k in s.order
                if s.trained[k].iou is not None]
        score = promise(fresh, hist)
        order = sorted(range(len(fresh)), key=lambda i: (-score[i], fresh[i].key))
        pick = [fresh[i] for i in order[:s.affordable(cfg.batch)]]
        evs = s.train(pick, step)
        trained |= {c.key for c in pick}
        if not evs:
            idle += 1
        moved = False
        for e in evs:
            if e.status == "done" and e.meets(s.targets) and _score(e) > best:
                best, best_iou, cur, moved = _score(e), e.iou or 0.0, e.cand, True
        s.step_done(step, {**data, "trained": [e.key for e in evs], "moved": moved,
                           "current": cur.key, "best_iou": best_iou,
                           "ious": [e.iou for e in evs], "current_knobs": cur.knobs.to_dict(),
                           "accelerator": cur.accel.to_dict()})
