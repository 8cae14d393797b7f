"""The search report, drawn from the journal alone: ``RUN/report/report.html`` + PNGs.

Four plots (matplotlib, Agg backend), written as PNG files and embedded in one
self-contained HTML page (base64 images, no external file or script):

* ``pareto.png``: every trained candidate's fast-training IoU against its FPS (by its best
  source), the Pareto front, the target;
* ``qos.png``: every screened and trained candidate's FPS and power against the targets,
  marked by source (estimated / simulated / measured);
* ``trajectory.png``: the strategy's steps: best IoU so far and budget spent;
* ``bundles.png``: the bundle table: estimated FPS and DSPs of every bundle that reached
  the estimate, coloured by its fate (kept / dropped, with the drop stage).

``codesign search report RUN`` redraws it (the journal is only read).
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

from .journal import Journal

REPORT_DIR = "report"


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> bytes:
    """Write ``fig`` as PNG to ``path`` (stage, then rename), close it, return the bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    data = buf.getvalue()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return data


def _best_qos(e: dict, meas: dict) -> dict:
    m = meas.get(e["design_key"])
    if m:
        return m
    return {"source": "estimated", "fps": e.get("est_fps"), "power_w": e.get("est_power")}


def collect(j: Journal) -> dict:
    """Everything the report shows, from the journal."""
    cfg = j.config()
    est = j.estimates()
    est_by_key = {}
    for r in est:
        est_by_key.setdefault(r["design_key"], r)
    meas = {}
    for m in j.measurements():
        rec = m["record"]
        meas.setdefault(m["design_key"], {"source": rec.get("source"), "fps": rec.get("fps"),
                                          "power_w": rec.get("power_w")})
    cands = []
    for e in j.evals():
        if e["kind"] != "cand":
            continue
        dk = e["key"].split("-")[1]
        r = e["result"] or {}
        er = est_by_key.get(dk, {})
        row = {"key": e["key"], "design_key": dk, "status": e["status"], "step": e["step"],
               "iou": r.get("fixed_iou"), "float_iou": r.get("float_iou"),
               "image_epochs": e["image_epochs"], "est_fps": er.get("fps"),
               "est_power": er.get("power_w"), "dsp": er.get("dsp"),
               "bundle": (e["knobs"] or {}).get("bundle")}
        q = _best_qos(row, meas)
        row.update(fps=q.get("fps"), fps_source=q.get("source"), power_w=q.get("power_w"))
        cands.append(row)
    cals = [json.loads(r["data"]) for r in j.rows("calibrations")]
    return {"config": cfg, "estimates": est, "cands": cands, "steps": j.steps(),
            "bundles": j.bundles(), "measurements": meas, "calibrations": cals,
            "finished": j.get_meta("finished") is not None}


def _pareto(rows: list[dict]) -> list[dict]:
    pts = [r for r in rows if r["iou"] is not None and r["fps"] is not None]
    return sorted([r for r in pts if not any(
        o["iou"] >= r["iou"] and o["fps"] >= r["fps"] and (o["iou"] > r["iou"] or
                                                           o["fps"] > r["fps"])
        for o in pts)], key=lambda r: r["fps"])


def plot_pareto(d: dict, path: Path) -> bytes:
    plt = _plt()
    cfg = d["config"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    rows = [r for r in d["cands"] if r["iou"] is not None and r["fps"] is not None]
    for src, mk in (("estimated", "o"), ("simulated", "s"), ("measured", "D")):
        pts = [r for r in rows if r["fps_source"] == src]
        if pts:
            ax.scatter([r["fps"] for r in pts], [r["iou"] for r in pts], marker=mk, alpha=0.6,
                       label=f"candidates (FPS {src})")
    front = _pareto(rows)
    if front:
        ax.plot([r["fps"] for r in front], [r["iou"] for r in front], "k--", lw=1,
                label="Pareto front")
    ax.axvline(cfg["target_fps"], color="r", lw=1, label=f"target {cfg['target_fps']:g} FPS")
    ax.set_xlabel("FPS (by source, see legend)")
    ax.set_ylabel("validation IoU, fixed point (fast training)")
    ax.set_title(f"{cfg['strategy']}: trained candidates")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_qos(d: dict, path: Path) -> bytes:
    plt = _plt()
    cfg = d["config"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    est = [r for r in d["estimates"] if r["fps"] is not None]
    if est:
        ax.scatter([r["fps"] for r in est], [r["power_w"] for r in est], s=6, alpha=0.25,
                   c="grey", label="screened (estimated)")
    tr = [r for r in d["cands"] if r["fps"] is not None]
    for src, mk in (("estimated", "o"), ("simulated", "s"), ("measured", "D")):
        pts = [r for r in tr if r["fps_source"] == src]
        if pts:
            ax.scatter([r["fps"] for r in pts], [r["power_w"] or 0 for r in pts], marker=mk,
                       label=f"trained ({src})")
    ax.axvline(cfg["target_fps"], color="r", lw=1, label="target FPS")
    if cfg.get("max_power_w"):
        ax.axhline(cfg["max_power_w"], color="m", lw=1, label="max power")
    ax.set_xlabel("FPS")
    ax.set_ylabel("power (W)")
    ax.set_title("candidates' QoS against the targets")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_trajectory(d: dict, path: Path) -> bytes:
    plt = _plt()
    steps = sorted(d["steps"], key=lambda s: s["step"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    xs = [s["step"] for s in steps]
    best = [s.get("best_iou") if (s.get("best_iou") or -1) >= 0 else None for s in steps]
    ax.plot(xs, [b if b is not None else float("nan") for b in best], "b-o", ms=3,
            label="best IoU so far (fast training)")
    for s in steps:
        for v in s.get("ious") or []:
            if v is not None:
                ax.plot(s["step"], v, "k.", alpha=0.5)
    ax.set_xlabel("step")
    ax.set_ylabel("validation IoU, fixed point")
    ax2 = ax.twinx()
    ax2.plot(xs, [s.get("charged", 0) for s in steps], "g:", label="budget spent")
    ax2.set_ylabel("image-epochs charged")
    ax.set_title(f"{d['config']['strategy']} trajectory (dots: trained candidates)")
    ax.legend(loc="upper left", fontsize=7)
    ax2.legend(loc="lower right", fontsize=7)
    return _save(fig, path)


def plot_bundles(d: dict, path: Path) -> bytes:
    plt = _plt()
    rows = [b for b in d["bundles"] if b["estimate"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    fates = {}
    for b in rows:
        fate = "kept" if not b["dropped"] else f"dropped at {b['stage']}"
        fates.setdefault(fate, []).append(b)
    for fate, bs in sorted(fates.items()):
        ax.scatter([b["estimate"]["max_fps"] if "max_fps" in b["estimate"] else
                    b["estimate"]["fps"] for b in bs], [b["estimate"]["dsp"] for b in bs],
                   label=f"{fate} ({len(bs)})", alpha=0.7,
                   s=[60 if b["iou"] is not None else 14 for b in bs])
    ax.axvline(d["config"]["target_fps"], color="r", lw=1, label="target FPS")
    ax.set_xlabel("prototype's best FPS (estimated)")
    ax.set_ylabel("DSPs at the chosen parallelism (estimated)")
    ax.set_title("bundles (large marks: prototype trained)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _table(headers: list[str], rows: list[list]) -> str:
    h = "".join(f"<th>{html.escape(str(x))}</th>" for x in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(x))}</td>" for x in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.3f}"
    return "" if x is None else str(x)


def write_report(run: Path) -> Path:
    """Draw the report of ``run`` from its journal; returns ``report.html``'s path."""
    run = Path(run)
    j = Journal.open(run)
    try:
        d = collect(j)
    finally:
        j.close()
    out = run / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    imgs = {}
    for name, fn in (("pareto", plot_pareto), ("qos", plot_qos),
                     ("trajectory", plot_trajectory), ("bundles", plot_bundles)):
        imgs[name] = base64.b64encode(fn(d, out / f"{name}.png")).decode()
    cfg = d["config"]
    result = {}
    if (run / "result.json").is_file():
        try:
            result = json.loads((run / "result.json").read_text())
        except json.JSONDecodeError:
            result = {}
    best = result.get("best")
    parts = [f"<h1>Co-search report: {html.escape(str(run.name))}</h1>",
             f"<p>strategy <b>{cfg['strategy']}</b>, seed {cfg['seed']}, device "
             f"{cfg['device']}, target {cfg['target_fps']:g} FPS"
             + (f", max power {cfg['max_power_w']:g} W" if cfg.get("max_power_w") else "")
             + f", budget {cfg['budget']} image-epochs; data {html.escape(cfg['data'])}. "
             + ("Finished." if d["finished"] else "Not finished (a report of the journal "
                                                   "so far).") + "</p>"]
    if best:
        q = best["qos"][best["qos_source"]]
        parts.append(f"<p>Best design <b>{html.escape(best['name'])}</b> ({best['bundle']}):"
                     f" fixed-point IoU {best['iou_fixed_point']:.3f} after full training; "
                     f"{q['fps']:.1f} FPS ({best['qos_source']}); package "
                     f"{html.escape(best['package'])}"
                     + ("; <b>needs an overlay build</b>" if best["needs_build"] else "")
                     + "</p>")
    pareto = _pareto([r for r in d["cands"] if r["iou"] is not None])
    parts.append("<h2>Pareto designs</h2>" + _table(
        ["design", "bundle", "IoU (fast, fixed point)", "FPS", "FPS source", "power W",
         "DSP (estimated)"],
        [[r["design_key"], r["bundle"], r["iou"], r["fps"], r["fps_source"], r["power_w"],
          r["dsp"]] for r in pareto]))
    for name, title in (("pareto", "Pareto front"), ("qos", "QoS against the targets"),
                        ("trajectory", "Trajectory"), ("bundles", "Bundles")):
        parts.append(f"<h2>{title}</h2><img alt='{name}' src='data:image/png;base64,"
                     f"{imgs[name]}'>")
    parts.append("<h2>Bundle table</h2>" + _table(
        ["bundle", "stage", "est. best FPS", "est. DSP", "est. BRAM18", "prototype IoU",
         "group", "fate"],
        [[b["key"], b["stage"], (b["estimate"] or {}).get("max_fps"),
          (b["estimate"] or {}).get("dsp"), (b["estimate"] or {}).get("bram18"), b["iou"],
          b["grp"], b["dropped"] or "kept"] for b in d["bundles"]]))
    if d["calibrations"]:                # closed loop: host_search.calibrate's entries
        pct = lambda x: None if x is None else f"{100 * x:+.1f}%"  # noqa: E731
        parts.append(
            "<h2>Estimated against measured, before and after calibration</h2><p>Each row "
            "is one measurement in the order the search took them: the FPS and power "
            "measured (source as labelled), and the estimate's error on that design from "
            "the raw model, the calibration before this measurement, and after it.</p>"
            + _table(["design", "source", "FPS measured", "FPS error raw", "before", "after",
                      "power W", "power source", "power error raw", "before", "after",
                      "FPS MAPE all measured: raw / calibrated"],
                     [[c.get("design_key", c["design"]), c.get("source"),
                       c["measured_fps"], pct(c["fps_error_raw"]),
                       pct(c["fps_error_before"]), pct(c["fps_error_after"]),
                       c.get("measured_power_w"), c.get("power_source"),
                       pct(c.get("power_error_raw")), pct(c.get("power_error_before")),
                       pct(c.get("power_error_after")),
                       f"{c.get('fps_mape_raw_all')}% / {c.get('fps_mape_calibrated_all')}%"]
                      for c in d["calibrations"]]))
    parts.append("<h2>Trained candidates</h2>" + _table(
        ["evaluation", "step", "status", "IoU fixed", "IoU float", "FPS", "FPS source",
         "image-epochs"],
        [[r["key"], r["step"], r["status"], r["iou"], r["float_iou"], r["fps"],
          r["fps_source"], r["image_epochs"]] for r in d["cands"]]))
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>co-search report</title>"
            "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}"
            "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
            "padding:2px 6px}img{max-width:100%}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")
    path = out / "report.html"
    tmp = path.with_name("report.html.tmp")
    tmp.write_text(page)
    os.replace(tmp, path)
    return path
