"""QoR potential: which bundles deserve the search (DESIGN.md section 1, step 2).

Every bundle that survived enumeration and the hardware estimate
(:mod:`host_search.bundles`) is put in a *QoS group* by how its prototype's best estimated
FPS on the device stands against the target (:func:`qos_group`). Within the prototype
budget, bundles are picked round-robin over the groups (nearest the target first), each
group's in order of estimated hardware efficiency (MAC/s the fitted accelerator achieves),
and their prototypes (the bundle replicated ``n`` times) are fast-trained
(:func:`host_search.train.reduced_design` resolution). The top ``keep`` bundles of each
group by validation IoU go on to the search; every other bundle keeps the reason it was
dropped (written to the journal).
"""
from __future__ import annotations

from dataclasses import dataclass

from .bundles import BundleInfo

#: QoS groups around the target FPS, nearest the target first (the picking order).
GROUPS = (("near", 1.0, 1.5), ("headroom", 1.5, 3.0), ("fast", 3.0, float("inf")),
          ("short", 0.5, 1.0))
#: A prototype that reaches less than this share of the target at any parallelism is dropped.
MIN_FPS_SHARE = 0.5


def qos_group(est: dict, target_fps: float, max_power_w: float | None) -> str | None:
    """The group of a bundle's estimate, or None when hardware rules it out."""
    share = est["max_fps"] / target_fps
    if max_power_w is not None and est["meets"] is False and share >= 1.0 and \
            est["power_w"] > max_power_w:
        return None
    for name, lo, hi in GROUPS:
        if lo <= share < hi:
            return name
    return None


@dataclass
class Selection:
    """Bundles to prototype, in training order, with their groups."""

    chosen: list[BundleInfo]
    groups: dict[str, str]          # bundle key -> group


def select_prototypes(bundles: list[BundleInfo], n: int, target_fps: float,
                      max_power_w: float | None) -> Selection:
    """Group the live bundles, drop those hardware rules out, pick ``n`` to prototype."""
    by_group: dict[str, list[BundleInfo]] = {g[0]: [] for g in GROUPS}
    groups: dict[str, str] = {}
    for b in bundles:
        if b.dropped:
            continue
        est = b.estimate
        g = qos_group(est, target_fps, max_power_w)
        b.stage = "group"
        if g is None:
            if est["max_fps"] < MIN_FPS_SHARE * target_fps:
                b.dropped = (f"hardware: at most {est['max_fps']:.1f} FPS (estimated) at any "
                             f"parallelism, under {MIN_FPS_SHARE:g}x the target "
                             f"{target_fps:g}")
            else:
                b.dropped = (f"hardware: {est['power_w']:.2f} W (estimated) at the target, "
                             f"over --max-power {max_power_w:g}")
            continue
        groups[b.key] = g
        by_group[g].append(b)
    for g in by_group.values():
        g.sort(key=lambda b: (-b.estimate["macs"] * b.estimate["max_fps"], b.key))
    chosen: list[BundleInfo] = []
    rank = 0
    while len(chosen) < n and any(rank < len(v) for v in by_group.values()):
        for name, _, _ in GROUPS:
            v = by_group[name]
            if rank < len(v) and len(chosen) < n:
                chosen.append(v[rank])
        rank += 1
    picked = {b.key for b in chosen}
    for name, v in by_group.items():
        for b in v:
            if b.key not in picked:
                b.stage = "select"
                b.dropped = (f"not prototyped: the QoR budget pays for {n} prototype(s); "
                             f"group '{name}' had bundles of higher estimated MAC/s")
    return Selection(chosen, groups)


def keep_top(chosen: list[BundleInfo], groups: dict[str, str], ious: dict[str, float | None],
             keep: int, errors: dict[str, str]) -> list[BundleInfo]:
    """The top ``keep`` prototypes of each group by validation IoU; the rest dropped."""
    kept: list[BundleInfo] = []
    by_group: dict[str, list[BundleInfo]] = {}
    for b in chosen:
        b.stage = "qor"
        if b.key in errors:
            b.dropped = f"prototype training failed: {errors[b.key]}"
            continue
        by_group.setdefault(groups[b.key], []).append(b)
    for name, v in by_group.items():
        v.sort(key=lambda b: (-(ious.get(b.key) or 0.0), b.key))
        for i, b in enumerate(v):
            if i < keep:
                kept.append(b)
            else:
                best = v[0]
                b.dropped = (f"QoR: prototype IoU {ious.get(b.key) or 0.0:.3f} below group "
                             f"'{name}''s kept {best.key} ({ious.get(best.key) or 0.0:.3f})")
    kept.sort(key=lambda b: (-(ious.get(b.key) or 0.0), b.key))
    return kept
