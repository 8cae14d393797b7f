"""The user's first hour: ``codesign demo [--quick] [--out DIR]`` (what ``make demo`` runs).

On one machine, end to end, with every step a ``codesign`` command printed before it runs:

1. make the built-in data set (``codesign data synth``) and a held-out set with another seed
   that neither the search nor training ever sees;
2. start the simulated board service as a real process on 127.0.0.1 (a free port, a token
   file in the out folder; stopped at the end, also on an error or Ctrl-C);
3. run the closed-loop co-search against it (``codesign search --board URL``);
4. deploy the best package through the service and benchmark it there;
5. run detection on the held-out images (annotated images, IoU);
6. the reproduction check: DNN-A/B/C estimated and on the simulated board, next to the
   paper's figures (``published``);
7. end with a table (each figure labelled) and ``DIR/report.html``.

Child processes and the service: :mod:`host_search.processes`; the report:
:mod:`host_search.demo_report`.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pynq_codesign.errors import CodesignError
from pynq_codesign.qos import QoSRecord

from .processes import BoardService, run_step


class DemoError(CodesignError):
    """The demo cannot go on; the message says why and what to do."""


# ---------------------------------------------------------------------------
# The demo's plan: how big each step is.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoPlan:
    """The sizes of one demo run. ``full`` takes 13-16 minutes on 2 cores,
    ``quick`` in about two."""

    name: str
    images: int              # built-in data set (the search trains and validates on it)
    heldout: int             # held-out images (another seed): detection and IoU
    budget: int              # search budget, image-epochs
    target_fps: float        # the search's FPS target (whole pipeline, on the board)
    final_epochs: int        # the winner's float epochs at full resolution ...
    final_qat_epochs: int    # ... and QAT epochs
    frames: int              # benchmark frames through the service
    ref_frames: int          # frames per reference design in the reproduction check
    proto_epochs: int = 1
    cand_epochs: int = 2
    cand_qat_epochs: int = 1


PLANS = {
    "quick": DemoPlan("quick", images=48, heldout=16, budget=160, target_fps=15.0,
                      final_epochs=3, final_qat_epochs=1, frames=16, ref_frames=6,
                      cand_epochs=1),
    # full: 160 held-out images are one unseen scene of each of the 16 object kinds;
    # the winner's 28 + 2 epochs score 5 points above 14 + 2 on them (docs/search.md)
    "full": DemoPlan("full", images=240, heldout=160, budget=4000, target_fps=15.0,
                     final_epochs=28, final_qat_epochs=2, frames=60, ref_frames=20,
                     cand_epochs=3),
}
REFERENCE_DESIGNS = ("dnn-a", "dnn-b", "dnn-c")
HELDOUT_NAME = "heldout"       # the folder name on the board's images folder too


# ---------------------------------------------------------------------------
# ---------------------------------------------------------------------------
# The steps.
# ---------------------------------------------------------------------------

@dataclass
class Deployed:
    """The best design as deployed through the service: its benchmark on the held-out
    images (QoS record), the stream's per-frame samples, its estimate."""

    package: Path
    record: QoSRecord          # on the held-out images (JPEG read + resize on the ARM)
    ready: QoSRecord           # on ready input codes (the golden inputs), as the search measured
    estimate: QoSRecord
    frame_latency_ms: list[float]
    power_samples_w: list[float]


def make_data(out: Path, plan: DemoPlan, seed: int) -> tuple[Path, Path]:
    data, held = out / "data", out / HELDOUT_NAME
    run_step(f"Built-in UAV-like data set ({plan.images} images, DAC-SDC layout)",
             ["data", "synth", "--out", str(data), "--n", str(plan.images), "--seed", str(seed)])
    run_step(f"Held-out images ({plan.heldout}, another seed: the search never sees them)",
             ["data", "synth", "--out", str(held), "--n", str(plan.heldout),
              "--seed", str(seed + 1000)])
    return data, held


def search_args(out: Path, data: Path, plan: DemoPlan, seed: int, url: str, token: Path,
                workers: int) -> list[str]:
    return ["search", "--device", "pynq-z1", "--data", str(data),
            "--target-fps", f"{plan.target_fps:g}", "--budget", str(plan.budget),
            "--out", str(out / "search"), "--seed", str(seed), "--workers", str(workers),
            "--board", url, "--token-file", str(token),
            "--proto-epochs", str(plan.proto_epochs), "--cand-epochs", str(plan.cand_epochs),
            "--cand-qat-epochs", str(plan.cand_qat_epochs),
            "--final-epochs", str(plan.final_epochs),
            "--final-qat-epochs", str(plan.final_qat_epochs)]


def read_result(search_dir: Path) -> dict:
    import json
    p = search_dir / "result.json"
    try:
        result = json.loads(p.read_text())
        pkg = Path(result["best"]["package"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DemoError(f"{p}: the search left no usable result ({e}); see its output above")
    if not (pkg / "manifest.json").is_file():
        raise DemoError(f"{pkg}: the search's best package is missing")
    return result


def deploy(client, package: Path, frames: int) -> Deployed:
    """Upload the package to the board service, benchmark it on the held-out images, and
    read the run's per-frame samples back from the service's QoS stream."""
    from pynq_codesign.package import load_package

    from .qos_model import estimate
    print(f"\n== Deploy the best package to the board service and benchmark it there"
          f"\n   upload {package} -> {client.url}", flush=True)
    t0 = time.perf_counter()
    design_id = client.upload(package)
    job = client.bench(design_id, frames=frames, warmup=2, images=HELDOUT_NAME)
    rec = client.wait(job, timeout=900)
    lat, power = _job_samples(client, job)
    print(f"   held-out images: {rec.summary()}", flush=True)
    ready = client.wait(client.bench(design_id, frames=frames, warmup=2, images=None),
                        timeout=900)
    print(f"   ready inputs (as the search measured): {ready.summary()}  "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return Deployed(package, rec, ready, estimate(load_package(package).design), lat, power)


def _job_samples(client, job: str) -> tuple[list[float], list[float]]:
    """The job's per-frame latencies and power samples, replayed from the QoS stream
    (an id of another boot replays this boot from its start)."""
    import threading
    stop = threading.Event()
    lat: list[float] = []
    power: list[float] = []
    timer = threading.Timer(60.0, stop.set)     # never wait long for a figure
    timer.start()
    try:
        for ev in client.stream(last_event_id="replay-0", kinds=("frame", "power", "result"),
                                stop=stop):
            if ev.data.get("job") != job:
                continue
            if ev.kind == "frame":
                lat.append(float(ev.data["latency_ms"]))
            elif ev.kind == "power":
                power.append(float(ev.data["power_w"]))
            else:
                break
    finally:
        stop.set()
        timer.cancel()
    return lat, power


def detect_heldout(package: Path, held: Path, out: Path, board_seed: int) -> dict:
    """Annotated detections of every held-out image and their mean IoU (``codesign
    detect`` on the simulated board of the same seed, then ``codesign score``)."""
    import json
    det = out / "detect"
    _remove(det)
    run_step("Detection on the held-out images (annotated images + DAC-SDC results XML)",
             ["detect", str(package), "--images", str(held), "--out", str(det), "--sim",
              "--board-seed", str(board_seed)])
    r = run_step("Score the detections against the held-out labels",
                 ["score", str(det), str(held), "--json"], capture=True)
    return json.loads(r.stdout)


@dataclass
class ReferenceRow:
    """One row of the reproduction check."""

    name: str
    estimated: QoSRecord | None
    simulated: QoSRecord | None
    published: list[tuple[str, QoSRecord]]


def reproduction(client, out: Path, frames: int, seed: int) -> list[ReferenceRow]:
    """DNN-A/B/C: estimated, on the simulated board (through the service; random weights,
    since speed and energy do not depend on their values) and published."""
    from pynq_codesign.designs import published, reference_design
    from pynq_codesign.randparams import random_package

    from .qos_model import estimate
    print("\n== Reproduction check: the paper's DNN-A/B/C estimated, on the simulated board "
          "(random weights: speed and energy do not depend on them) and published", flush=True)
    rows = []
    for name in REFERENCE_DESIGNS:
        design = reference_design(name)
        pkg = out / "reference" / name
        _remove(pkg)
        random_package(pkg, design, seed=seed)
        rec = client.measure(pkg, frames=frames, warmup=1, timeout=600)
        rows.append(ReferenceRow(name, estimate(design), rec, published(name)))
        print(f"   {name}: {rec.summary()}", flush=True)
    for other in ("paper-best", "tgiif"):
        rows.append(ReferenceRow(other, None, None, published(other)))
    return rows


# ---------------------------------------------------------------------------
# Tables, bench.json, the command.
# ---------------------------------------------------------------------------

def _f(v, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def summary_rows(dep: Deployed, det: dict, board_seed: int) -> list[tuple[str, str, str]]:
    """(figure, value, source) of the deployed design."""
    r, e = dep.record, dep.estimate
    ipj = 1e3 / r.energy_mj_per_frame if r.energy_mj_per_frame else None
    board = f"{r.source} (board service, simulated board seed {board_seed})"
    return [
        ("IoU, held-out images", _f(det.get("mean_iou"), ".3f"),
         f"{r.source} board, fixed point; {det.get('images')} images of the built-in "
         "synthetic set (not comparable to DAC-SDC contest IoU)"),
        ("FPS on the held-out images", _f(r.fps, ".1f"),
         f"{board}; reading and resizing each JPEG on the ARM included"),
        ("FPS on ready inputs", _f(dep.ready.fps, ".1f"),
         f"{dep.ready.source}; input codes already in memory, as the search measured"),
        ("latency mean / p50 / p99, ms",
         f"{_f(r.latency_ms, '.1f')} / {_f(r.latency_ms_p50, '.1f')} / "
         f"{_f(r.latency_ms_p99, '.1f')}", board),
        ("power, W", _f(r.power_w, ".2f"), f"{r.power_source}"),
        ("energy, mJ per frame", _f(r.energy_mj_per_frame, ".1f"), f"{r.power_source}"),
        ("images per joule", _f(ipj, ".2f"), f"{r.power_source}"),
        ("DSP / BRAM18", f"{_f(e.dsp, 'd')} / {_f(e.bram18, 'd')}",
         "estimated (analytical model; Vivado's report after an overlay build)"),
        ("accelerator ms per frame",
         f"{sum(b.latency_ms for b in r.bundles):.2f} / {sum(b.latency_ms for b in e.bundles):.2f}",
         f"{r.source} / estimated"),
    ]


def format_rows(rows: list[tuple[str, str, str]]) -> str:
    w0 = max(len(a) for a, _, _ in rows)
    w1 = max(len(b) for _, b, _ in rows)
    return "\n".join(f"  {a:<{w0}}  {b:>{w1}}  [{c}]" for a, b, c in rows)


def reproduction_text(rows: list[ReferenceRow]) -> str:
    """The reproduction table: each column says where its figures came from."""
    head = (f"  {'design':<12}{'FPS':>9}{'FPS':>11}{'FPS':>11}"
            f"{'mJ/frame':>11}{'mJ/frame':>11}{'mJ/frame':>11}")
    sub = (f"  {'':<12}{'estimated*':>9}{'simulated':>11}{'published':>11}"
           f"{'estimated*':>11}{'simulated':>11}{'published':>11}")
    lines = [head, sub]
    for r in rows:
        pub = r.published[0][1] if r.published else None
        e, s = r.estimated, r.simulated
        lines.append(f"  {r.name:<12}{_f(e and e.fps, '.1f'):>9}{_f(s and s.fps, '.1f'):>11}"
                     f"{_f(pub and pub.fps, '.1f'):>11}"
                     f"{_f(e and e.energy_mj_per_frame, '.1f'):>11}"
                     f"{_f(s and s.energy_mj_per_frame, '.1f'):>11}"
                     f"{_f(pub and pub.energy_mj_per_frame, '.1f'):>11}")
    lines.append("  * estimated: the analytical model of the accelerator alone (no "
                 "pre-processing on the ARM); simulated: the whole pipeline on the simulated "
                 "board, power estimated/simulated as labelled in its record")
    lines.append("  published figures and their sources:")
    for r in rows:
        for cite, q in r.published:
            bits = [f"{q.fps:g} FPS" if q.fps else "",
                    f"{q.energy_mj_per_frame:.4g} mJ/frame" if q.energy_mj_per_frame else "",
                    f"{q.power_w:g} W" if q.power_w else ""]
            lines.append(f"    {r.name}: {', '.join(b for b in bits if b)} (published) -- {cite}")
    lines.append("  (the papers' IoU figures are on the DAC-SDC contest data and are not shown "
                 "beside the built-in set's IoU: the two are not comparable)")
    return "\n".join(lines)


def write_bench_json(out: Path, dep: Deployed, det: dict, result: dict) -> Path:
    """``DIR/bench.json``: the deployed design's QoS record from the board service, with
    ``iou`` the held-out detection's mean IoU and resources from the estimate, labelled."""
    import json
    d = dep.record.to_dict()
    d.update({
        "iou_bench": d.get("iou"),
        "iou": det.get("mean_iou"),
        "iou_source": (f"{dep.record.source} board, fixed point, {det.get('images')} held-out "
                       "images of the built-in synthetic set (codesign detect + codesign score)"),
        "dsp": dep.estimate.dsp, "bram18": dep.estimate.bram18, "lut": dep.estimate.lut,
        "ff": dep.estimate.ff, "resources_source": "estimated",
        "package": str(dep.package),
        "search_best": {k: result["best"].get(k) for k in ("name", "bundle",
                                                            "iou_fixed_point",
                                                            "qos_source")},
    })
    dst = out / "bench.json"
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.write_text(json.dumps(d, indent=2, default=str) + "\n")
    tmp.replace(dst)
    return dst


#: what the demo writes under DIR (removed at the start of a run)
OUTPUTS = ("data", HELDOUT_NAME, "board", "search", "package", "detect", "reference",
           "report.html", "bench.json", "board.token", "board-service.log")


def _remove(p: Path) -> None:
    shutil.rmtree(p, ignore_errors=True)


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        p = out / name
        if p.is_dir():
            _remove(p)
        elif p.exists():
            p.unlink()


def main(args) -> int:
    """``codesign demo [--quick] [--out DIR]``."""
    from dataclasses import replace

    from .client import BoardClient
    from .demo_report import write_report
    plan = PLANS["quick" if args.quick else "full"]
    plan = replace(plan, target_fps=args.target_fps or plan.target_fps,
                   budget=args.budget or plan.budget)
    out = Path(args.out)
    _prepare_out(out)
    t0 = time.perf_counter()
    print(f"codesign demo ({plan.name}): everything goes to {out}/; each step is a codesign "
          "command you can run by hand", flush=True)
    data, held = make_data(out, plan, args.seed)
    board_dir = out / "board"
    (board_dir / "images").mkdir(parents=True)
    shutil.copytree(held, board_dir / "images" / HELDOUT_NAME)
    token = out / "board.token"
    with BoardService(board_dir, token, out / "board-service.log", args.board_seed) as svc:
        run_step(f"Closed-loop co-search against the board service (budget {plan.budget} "
                 f"image-epochs, target {plan.target_fps:g} FPS)",
                 search_args(out, data, plan, args.seed, svc.url, token, args.workers))
        result = read_result(out / "search")
        pkg = out / "package"
        shutil.copytree(result["best"]["package"], pkg)
        client = BoardClient(svc.url, token_file=token)
        dep = deploy(client, pkg, plan.frames)
        refs = reproduction(client, out, plan.ref_frames, args.seed)
    det = detect_heldout(pkg, held, out, args.board_seed)
    bench = write_bench_json(out, dep, det, result)
    rows = summary_rows(dep, det, args.board_seed)
    repro = reproduction_text(refs)
    notes = [f"design {result['best'].get('name')} ({result['best'].get('bundle')}), chosen by "
             f"the search; package {pkg}",
             "Every figure says where it came from: simulated (the simulated board, through "
             "the board service), estimated (the analytical model), published (a paper).",
             "A PYNQ-Z1 has no power sensors: on a real board its power is estimated unless an "
             "external meter is attached; the simulated board carries a simulated meter."]
    report = write_report(out, f"codesign demo ({plan.name})", rows, repro, dep, refs,
                          out / "search" / "report" / "report.html", notes)
    print("\n== Result: the best design, deployed (built-in data set, simulated board)")
    print(format_rows(rows))
    print(f"\n== Reproduction check (the paper's designs)\n{repro}")
    print(f"\nbench.json: {bench}")
    print(f"report: {report.resolve()}")
    print(f"search report: {(out / 'search' / 'report' / 'report.html').resolve()}")
    print(f"(demo took {time.perf_counter() - t0:.0f} s)")
    return 0
