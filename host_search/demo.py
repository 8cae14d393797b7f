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

The notebooks (``notebooks/``) use :func:`notebook_package` for a package when none is given.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pynq_codesign.errors import CodesignError

#: the ``codesign`` command of this interpreter (no PATH needed)
CODESIGN = [sys.executable, "-m", "pynq_codesign.cli"]
#: environment variables the notebooks read (documented in notebooks/README.md)
ENV_PACKAGE = "CODESIGN_PACKAGE"
ENV_DEMO_OUT = "CODESIGN_DEMO_OUT"
ENV_NB_WORK = "CODESIGN_NB_WORK"


class DemoError(CodesignError):
    """A demo step that failed; the message names the step and what to do."""


# ---------------------------------------------------------------------------
# Running codesign steps, printed as a person would type them.
# ---------------------------------------------------------------------------

def run_step(title: str, args: list[str], capture: bool = False, quiet: bool = False,
             ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    """Print ``== title`` and ``$ codesign ARGS``, run it, raise :class:`DemoError` on a
    failure (with the command, so a person can repeat it by hand)."""
    print(f"\n== {title}\n$ codesign {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(CODESIGN + args, text=True,
                       stdout=subprocess.PIPE if capture else (subprocess.DEVNULL if quiet
                                                               else None),
                       stderr=subprocess.PIPE if quiet else None,
                       preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    if r.returncode not in ok_codes:
        tail = (r.stderr or "").strip().splitlines()[-1:] if quiet else []
        raise DemoError(f"step failed (exit {r.returncode}): codesign {' '.join(args)}"
                        + (f": {tail[0]}" if tail else ""))
    print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    return r


# ---------------------------------------------------------------------------
# A package for the notebooks.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class NotebookInputs:
    """What a notebook runs on: a package, a folder of labelled images (or None) and a
    sentence saying where they came from."""

    package: Path
    images: Path | None
    origin: str


def _demo_package(demo_out: Path) -> NotebookInputs | None:
    pkg, held = demo_out / "package", demo_out / "heldout"
    if (pkg / "manifest.json").is_file():
        return NotebookInputs(pkg, held if held.is_dir() else None,
                              f"the package `codesign demo` deployed ({pkg})")
    return None


def tiny_package(work: str | Path, images: int = 32, epochs: int = 2,
                 seed: int = 0) -> NotebookInputs:
    """A small trained package made in seconds (reused when already there): a built-in
    data set of ``images`` images, DNN-A trained in fast mode (half resolution) for
    ``epochs`` float epochs and one QAT epoch, exported. Its boxes are rough: it exists
    to show the flow; ``make demo`` trains a real one."""
    work = Path(work)
    data, held, run, pkg = work / "data", work / "heldout", work / "run", work / "package"
    if not (pkg / "manifest.json").is_file():
        for p in (run, pkg):
            _remove_tree(p)
        if not (data / "synth.json").is_file():
            run_step("A tiny built-in data set", ["data", "synth", "--out", str(data),
                                                  "--n", str(images), "--seed", str(seed)])
        if not (held / "synth.json").is_file():
            run_step("Held-out images (another seed: never trained on)",
                     ["data", "synth", "--out", str(held), "--n", "8",
                      "--seed", str(seed + 1)])
        run_step("Train DNN-A briefly (fast mode: half resolution)",
                 ["train", "dnn-a", "--data", str(data), "--epochs", str(epochs),
                  "--qat-epochs", "1", "--fast", "--out", str(run), "--seed", str(seed)])
        run_step("Export the deployment package", ["export", str(run), "--out", str(pkg)])
    return NotebookInputs(pkg, held, f"a tiny package trained here in seconds ({pkg}); "
                                     "its boxes are rough: run `make demo` for a real one")


def notebook_package(package: str | os.PathLike | None = None,
                     images: str | os.PathLike | None = None) -> NotebookInputs:
    """The package a notebook uses: ``package`` if given, else ``$CODESIGN_PACKAGE``, else
    the demo's (``$CODESIGN_DEMO_OUT``, default ``../demo-out`` then ``demo-out``), else a
    tiny one made under ``$CODESIGN_NB_WORK`` (default ``./work``)."""
    given = package or os.environ.get(ENV_PACKAGE)
    if given:
        return NotebookInputs(Path(given), Path(images) if images else None,
                              f"the package given ({given})")
    env_demo = os.environ.get(ENV_DEMO_OUT)
    for d in ([Path(env_demo)] if env_demo else [Path("..") / "demo-out", Path("demo-out")]):
        found = _demo_package(d)
        if found is not None:
            return found if images is None else NotebookInputs(found.package, Path(images),
                                                               found.origin)
    made = tiny_package(os.environ.get(ENV_NB_WORK) or "work")
    return made if images is None else NotebookInputs(made.package, Path(images), made.origin)


def _remove_tree(p: Path) -> None:
    import shutil
    if p.exists():
        shutil.rmtree(p)


# ---------------------------------------------------------------------------
# The demo's plan: how big each step is.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoPlan:
    """The sizes of one demo run. ``full`` finishes in under 15 minutes on 2 cores,
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
    "full": DemoPlan("full", images=240, heldout=40, budget=2400, target_fps=15.0,
                     final_epochs=12, final_qat_epochs=4, frames=60, ref_frames=20),
}
REFERENCE_DESIGNS = ("dnn-a", "dnn-b", "dnn-c")
HELDOUT_NAME = "heldout"       # the folder name on the board's images folder too


# ---------------------------------------------------------------------------
# The simulated board service, a real process.
# ---------------------------------------------------------------------------

def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the service gets SIGTERM when the demo dies, even by SIGKILL."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class BoardService:
    """``codesign board serve --sim`` as a child process on 127.0.0.1 and a free port.

    A context manager: entering starts it and waits for its ``serving on URL`` line,
    leaving stops it (SIGTERM, then SIGKILL), also after an error or Ctrl-C. Its output
    goes to ``log``."""

    START_TIMEOUT_S = 90.0

    def __init__(self, data_dir: Path, token_file: Path, log: Path, board_seed: int):
        self.data_dir, self.token_file, self.log = data_dir, token_file, log
        self.board_seed = board_seed
        self.url: str | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def command(self) -> list[str]:
        return ["board", "serve", "--sim", "--board-seed", str(self.board_seed),
                "--host", "127.0.0.1", "--port", "0", "--token-file", str(self.token_file),
                "--data-dir", str(self.data_dir)]

    def __enter__(self) -> "BoardService":
        import queue
        import threading
        write_token(self.token_file)
        print(f"\n== Start the simulated board service (a separate process; log: {self.log})"
              f"\n$ codesign {' '.join(self.command)}", flush=True)
        self.log.write_text("")
        log = open(self.log, "a", encoding="utf-8")     # appends, as the pump below does
        self.proc = subprocess.Popen(CODESIGN + self.command, stdout=subprocess.PIPE,
                                     stderr=log, text=True, start_new_session=True,
                                     preexec_fn=_die_with_parent if sys.platform == "linux"
                                     else None)
        log.close()
        lines: queue.Queue = queue.Queue()

        def pump() -> None:   # the service's stdout into the log, the first lines to us
            with open(self.log, "a", encoding="utf-8") as f:
                for line in self.proc.stdout:
                    f.write(line)
                    f.flush()
                    lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, name="service-log", daemon=True).start()
        deadline = time.monotonic() + self.START_TIMEOUT_S
        try:
            while self.url is None:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    raise DemoError(f"the board service did not start within "
                                    f"{self.START_TIMEOUT_S:.0f} s; see {self.log}")
                if line is None:
                    raise DemoError(f"the board service exited at start (exit "
                                    f"{self.proc.wait()}): {_last_line(self.log)}")
                if line.startswith("serving on "):
                    self.url = line.split()[-1].strip()
        except BaseException:
            self.stop()
            raise
        print(f"   serving on {self.url} (simulated board, seed {self.board_seed})",
              flush=True)
        return self

    def stop(self) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.proc is not None:
            print(f"\n(board service stopped; its log: {self.log})", flush=True)


def write_token(path: Path) -> None:
    """A fresh bearer token, mode 600 (the service reads it; so does the client)."""
    import secrets
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secrets.token_urlsafe(32) + "\n")


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(nothing logged)"


# ---------------------------------------------------------------------------
# The steps.
# ---------------------------------------------------------------------------

@dataclass
class Deployed:
    """The best design as deployed through the service: its benchmark on the held-out
    images (QoS record), the stream's per-frame samples, its estimate."""

    package: Path
    record: "QoSRecord"          # on the held-out images (JPEG read + resize on the ARM)
    ready: "QoSRecord"           # on ready input codes (the golden inputs), as the search measured
    estimate: "QoSRecord"
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
    _remove_tree(det)
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
    estimated: "QoSRecord | None"
    simulated: "QoSRecord | None"
    published: list[tuple[str, "QoSRecord"]]


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
        _remove_tree(pkg)
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


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        p = out / name
        if p.is_dir():
            _remove_tree(p)
        elif p.exists():
            p.unlink()


def main(args) -> int:
    """``codesign demo [--quick] [--out DIR]``."""
    import shutil
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
    print(f"\n== Result: the best design, deployed (built-in data set, simulated board)")
    print(format_rows(rows))
    print(f"\n== Reproduction check (the paper's designs)\n{repro}")
    print(f"\nbench.json: {bench}")
    print(f"report: {report.resolve()}")
    print(f"search report: {(out / 'search' / 'report' / 'report.html').resolve()}")
    print(f"(demo took {time.perf_counter() - t0:.0f} s)")
    return 0
