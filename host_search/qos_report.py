"""``codesign estimate DESIGN [--device NAME] [--json]``: the analytical QoS of a design.

The default output is a table for a person: per bundle its estimated latency and MACs,
the resources against the device's budget, what is over budget and why the network
does not fit the overlay; every figure is labelled ``estimated``. ``--json`` prints one
JSON object (the :class:`~pynq_codesign.qos.QoSRecord` keys plus ``macs``, ``params``,
``fits``, ``over_budget``, ...) and nothing else on stdout.
"""
from __future__ import annotations

import argparse
import json

from pynq_codesign.design import load_design
from pynq_codesign.designs import published, reference_names
from pynq_codesign.qos import QoSRecord

from .qos_model import RESOURCES, estimate


def render_table(name: str, rec: QoSRecord) -> str:
    """The human-readable report of one estimate."""
    x = rec.extra
    lines = [f"{name} on {x['device']} at {x['clock_mhz']:g} MHz "
             f"(all figures estimated by the analytical model)", ""]
    w = max([len(b.name) for b in rec.bundles] + [30])
    lines.append(f"  {'bundle':<6} {'layers':<{w}} {'latency ms':>11} {'M MACs':>9}")
    for b in rec.bundles:
        lines.append(f"  {b.index:<6} {b.name:<{w}} {b.latency_ms:>11.3f} "
                     f"{(b.macs or 0) / 1e6:>9.2f}")
    lines.append(f"  {'frame':<6} {'(+ driver overhead per frame)':<{w}} "
                 f"{rec.latency_ms:>11.3f} {x['macs'] / 1e6:>9.2f}")
    lines.append("")
    lines.append(f"  speed      {rec.fps:.2f} FPS (estimated), {rec.latency_ms:.2f} ms/frame, "
                 f"weights over m_axi {x['weight_load_ms']:.2f} ms/frame")
    lines.append(f"  power      {rec.power_w:.2f} W ({rec.power_source}), "
                 f"{rec.energy_mj_per_frame:.1f} mJ/frame, "
                 f"{1000.0 / rec.energy_mj_per_frame:.2f} frames/J")
    lines.append(f"  network    {x['macs']:,} MACs, {x['params']:,} parameters")
    lines.append("")
    lines.append(f"  {'resource':<9} {'used':>8} {'budget':>8} {'share':>7}")
    for r in RESOURCES:
        used, cap = getattr(rec, r), x["budget"][r]
        flag = "  OVER" if used > cap else ""
        lines.append(f"  {r:<9} {used:>8} {cap:>8} {100.0 * used / cap:>6.1f}%{flag}")
    lines.append(f"  (estimated; multipliers: {', '.join(x['mult_impl']) or 'none'})")
    lines.append("")
    if x["fits"]:
        lines.append("  fits: yes (estimated)")
    else:
        lines.append("  fits: NO (estimated)")
        for o in x["over_budget"]:
            lines.append(f"    over budget: {o}")
        for p in x["fit_problems"]:
            lines.append(f"    network does not fit the overlay: {p}")
        big = sorted(x["buffers"], key=lambda b: -b["bram18"])[:3]
        if any("bram18" in o for o in x["over_budget"]):
            lines.append("    largest buffers: " + ", ".join(
                f"{b['name']} {b['bram18']} BRAM18" for b in big))
    return "\n".join(lines)


def published_lines(args_design: str) -> list[str]:
    """The paper's figures for a reference design named on the command line (labelled
    published, kept apart from the estimate: the paper's accelerator is not this one)."""
    if args_design not in reference_names():
        return []
    return [f"  for comparison, {rec.summary()}  -- {cite}"
            for cite, rec in published(args_design)]


def main(args: argparse.Namespace) -> int:
    design = load_design(args.design)
    rec = estimate(design, device=getattr(args, "device", None))
    if getattr(args, "json", False):
        d = rec.to_dict()
        d["design"] = design.name
        print(json.dumps(d, indent=2))
    else:
        print(render_table(design.name, rec))
        for line in published_lines(args.design):
            print(line)
    return 0
