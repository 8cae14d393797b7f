"""The demo's report: ``DIR/report.html``, one self-contained page (figures inlined).

It links the search's own report (``search/report/report.html``) and shows the deployed
design's figures: the latency histogram and power samples from the board service's QoS
stream, per-bundle time on the board beside the estimate, the reproduction check against
the published figures, and annotated held-out detections. Every figure names its source.
Figures are drawn with matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Sequence

#: annotated held-out images shown in the report
REPORT_IMAGES = 6


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def latency_figure(lat_ms: Sequence[float], source: str) -> str | None:
    if not lat_ms:
        return None
    import matplotlib.pyplot as plt
    import numpy as np
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(lat_ms, bins=min(20, max(5, len(lat_ms) // 2)), color="tab:blue")
    ax.axvline(float(np.percentile(lat_ms, 50)), color="k", ls="--", label="p50")
    ax.axvline(float(np.percentile(lat_ms, 99)), color="r", ls=":", label="p99")
    ax.set_xlabel(f"per-frame latency, ms ({source}; pre-processing + accelerator)")
    ax.set_ylabel("frames")
    ax.legend()
    ax.set_title("latency histogram (board service's QoS stream)")
    return _png(fig)


def bundle_figure(board, est) -> str:
    """Per-bundle time on the board beside the estimate."""
    import matplotlib.pyplot as plt
    import numpy as np
    n = len(board.bundles)
    names = [f"{b.index}: {b.name}" for b in board.bundles]
    y = np.arange(n)
    fig, ax = plt.subplots(figsize=(7, 0.45 * n + 1.5))
    ax.barh(y - 0.2, [b.latency_ms for b in board.bundles], 0.4, label=board.source,
            color="tab:green")
    if est is not None and len(est.bundles) == n:
        ax.barh(y + 0.2, [b.latency_ms for b in est.bundles], 0.4, label=est.source,
                color="tab:gray")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("accelerator ms per frame")
    ax.legend()
    ax.set_title("per-bundle time")
    return _png(fig)


def reproduction_figure(rows) -> str:
    import matplotlib.pyplot as plt
    import numpy as np
    names = [r.name for r in rows]
    x = np.arange(len(rows))

    def fps(rec):
        return rec.fps if rec is not None and rec.fps is not None else 0.0

    pub = [max((fps(q) for _, q in r.published), default=0.0) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(x - 0.2, [fps(r.simulated) for r in rows], 0.4, label="simulated board",
           color="tab:green")
    ax.bar(x + 0.2, pub, 0.4, label="published", color="tab:orange")
    ax.set_xticks(x, names)
    ax.set_ylabel("FPS (whole pipeline)")
    ax.legend()
    ax.set_title("reproduction check: FPS")
    return _png(fig)


def _images(detect_dir: Path, k: int) -> list[tuple[str, str]]:
    files = sorted(detect_dir.rglob("*.jpg"))
    step = max(1, len(files) // k) if files else 1
    out = []
    for p in files[::step][:k]:
        data = base64.b64encode(p.read_bytes()).decode()
        out.append((p.relative_to(detect_dir).as_posix(), "data:image/jpeg;base64," + data))
    return out


def _table(rows: list[tuple[str, str, str]]) -> str:
    body = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td>"
                   f"<td>{html.escape(c)}</td></tr>" for a, b, c in rows)
    return ("<table><tr><th>figure</th><th>value</th><th>source</th></tr>" + body
            + "</table>")


def write_report(out: Path, title: str, summary_rows: list[tuple[str, str, str]],
                 repro_text: str, deployed, rows, search_report: Path | None,
                 notes: Sequence[str]) -> Path:
    """Write ``out/report.html`` (staged, then renamed) and return its path."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    figs = []
    lat = latency_figure(deployed.frame_latency_ms, deployed.record.source)
    if lat:
        figs.append(("Latency", lat))
    figs.append(("Per-bundle time", bundle_figure(deployed.record, deployed.estimate)))
    figs.append(("Reproduction check", reproduction_figure(rows)))
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if search_report is not None and search_report.is_file():
        rel = search_report.relative_to(out).as_posix()
        parts.append(f'<p>The search: <a href="{html.escape(rel)}">its report</a> (every '
                     "candidate, the Pareto front, estimated against measured QoS, the "
                     "calibration).</p>")
    parts.append("<h2>The deployed design</h2>" + _table(summary_rows))
    parts += [f"<p class=note>{html.escape(n)}</p>" for n in notes]
    for name, src in figs:
        parts.append(f"<h2>{html.escape(name)}</h2><img src=\"{src}\" alt=\"{name}\">")
    parts.append("<h2>Reproduction check (text)</h2><pre>" + html.escape(repro_text)
                 + "</pre>")
    imgs = _images(out / "detect", REPORT_IMAGES)
    if imgs:
        parts.append("<h2>Held-out detections (simulated board; green: detected, "
                     "magenta: label)</h2><div class=grid>"
                     + "".join(f"<figure><img src=\"{s}\" alt=\"{html.escape(k)}\">"
                               f"<figcaption>{html.escape(k)}</figcaption></figure>"
                               for k, s in imgs) + "</div>")
    page = ("<!doctype html><html><head><meta charset=utf-8><title>"
            + html.escape(title) + "</title><style>body{font-family:sans-serif;max-width:"
            "1100px;margin:auto;padding:1em}table{border-collapse:collapse}td,th{border:1px "
            "solid #ccc;padding:3px 8px;text-align:left}.note{color:#555}.grid{display:grid;"
            "grid-template-columns:repeat(2,1fr);gap:8px}.grid img{width:100%}"
            "img{max-width:100%}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")
    dst = out / "report.html"
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(dst)
    return dst
