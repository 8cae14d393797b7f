"""The benchmark: FPS, latency, per-bundle time, time split, power, energy, IoU.

``codesign bench PKG [--sim] --frames N [--images DIR] [--power SRC] [--json]`` runs the
detection pipeline (:mod:`pynq_codesign.pipeline`: double-buffered, reader thread +
accelerator) after ``--warmup`` frames, and reports, DAC-SDC style:

* **FPS** over the run: frames divided by the time from reading the first image to the
  last result (the contest's rule);
* **latency** per frame (from reading its image to its result): mean, p50, p99;
* **per-bundle** accelerator time, and the split of a frame's time into pre-processing,
  transfers (driver set-up and DMA tail), compute (ap_start to idle) and decode;
* **power** (:mod:`pynq_codesign.power`) and **energy** per frame;
* **IoU** when the images have DAC-SDC XML labels beside them (``null`` otherwise: the
  package's golden inputs, used without ``--images``, have no labels), labelled with the
  data set's name;
* **which images** (``images``): how many distinct images for how many frames (they are
  cycled, and it says so, when ``--frames`` exceeds their number), whether training held
  them out (from the split the package records) and the unreadable ones skipped.

The JSON is the QoS record (:class:`pynq_codesign.qos.QoSRecord`): ``source`` is
``measured`` on a board and ``simulated`` on the simulated board; ``power_source`` says
where the power figure came from (``estimated`` on a PYNQ-Z1 without a meter).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .design import describe_layers, layer_macs
from .devices import load_device
from .driver import Driver, open_driver
from .errors import CodesignError
from .pipeline import (Detection, Detector, Frame, Timeline, UnreadableImage, board_timeline,
                       compute_seconds, dataset_label, image_frames, image_problem,
                       list_images, skipped_line, transfer_seconds)
from .power import Activity, PowerReading, estimate_power, open_recorder
from .prepost import iou
from .qos import BundleQoS, QoSRecord


class BenchError(CodesignError):
    """Benchmark options that cannot work."""


@dataclass
class BenchRun:
    """What a benchmark measured, before it becomes a QoS record."""

    detections: list[Detection]
    timeline: Timeline
    power: PowerReading
    ious: list[float]
    images: dict | None = None       # which images were used (None: the golden inputs)


def usable_images(folder: str | Path, wanted: int) -> tuple[list[Path], list[UnreadableImage]]:
    """Up to ``wanted`` whole images below ``folder`` (checked without decoding), and the
    unreadable ones met on the way (skipped and reported, as the training loader does)."""
    good: list[Path] = []
    bad: list[UnreadableImage] = []
    for p in list_images(folder):
        try:
            problem = image_problem(p.read_bytes(), p.suffix)
        except OSError as e:
            problem = f"cannot read ({e.strerror or e})"
        if problem:
            bad.append(UnreadableImage(p, f"cannot read this image: {problem}"))
            continue
        good.append(p)
        if len(good) >= wanted:
            break
    if not good:
        raise BenchError(f"--images {folder}: no readable image ({skipped_line(bad)})")
    return good, bad


def images_used(package, folder: str | Path, files: list[Path], frames: int) -> dict:
    """What ``bench --images`` ran on: how many distinct images for how many frames, and
    whether training held them out (from the split the package records)."""
    root = Path(folder).resolve()
    split = (package.manifest.get("info") or {}).get("data_split") or {}
    val = set(split.get("val_subcategories") or [])
    subs = [p.resolve().relative_to(root).parts[0] if len(p.resolve().relative_to(root).parts)
            > 1 else root.name for p in files]
    same_set = bool(split.get("data_name")) and split.get("data_name") == root.name
    held = sum(1 for s in subs if s in val)
    if not split:
        seen = "unknown whether training saw them (the package records no data split)"
    elif held == len(subs):
        seen = "all from sub-categories training held out (validation images)"
    elif same_set:
        seen = (f"{held} from held-out sub-categories, {len(subs) - held} from sub-categories "
                "training used: their IoU is not a held-out score")
    else:
        seen = (f"not from the training data set {split.get('data_name')!r} (as far as the "
                "folder name tells)" if held == 0 else
                f"{held} from sub-categories named like the held-out ones")
    repeats = -(-frames // len(files))
    return {"folder": str(folder), "distinct": len(files), "frames": frames,
            "repeated": frames > len(files),
            "note": (f"{len(files)} distinct images for {frames} frames: each used up to "
                     f"{repeats} times" if frames > len(files) else
                     f"{frames} distinct images") + f"; {seen}",
            "held_out": held, "training_data": split.get("data_name")}


def golden_frames(driver: Driver, n: int) -> list[Frame]:
    """``n`` frames cycling through the package's golden inputs (no labels)."""
    gold = driver.package.golden
    if not gold:
        raise BenchError("the package has no golden inputs; give --images DIR")
    return [Frame(f"golden{k % len(gold)}", codes=gold[k % len(gold)][0]) for k in range(n)]


def _labels(frames: list[Frame]) -> dict[str, np.ndarray]:
    """Relative ground-truth boxes of frames whose image has a DAC-SDC XML beside it."""
    from .results_xml import AnnotationError, read_xml
    out = {}
    for fr in frames:
        if fr.path is None:
            continue
        xml = fr.path.with_suffix(".xml")
        if xml.is_file():
            try:
                out[fr.key] = read_xml(xml).relative_box()
            except AnnotationError:
                continue
    return out


def activity(driver: Driver, tl: Timeline, n: int) -> Activity:
    """What the board did per second during the run (the power model's inputs)."""
    pkg = driver.package
    net = pkg.design.network
    wall = max(tl.wall_s, 1e-12)
    fps = n / wall
    macs = sum(layer_macs(lay.type, s) for lay, s in zip(net.layers, net.shapes()))
    moved = sum(p.in_bytes + p.out_bytes for p in pkg.program.passes) + pkg.program.params.size
    device = load_device(pkg.design.overlay.device)
    cpu = (sum(tl.pre_s) + sum(tl.post_s) + sum(tl.accel_s)) / (device.cpu_cores * wall)
    return Activity(cpu_busy=min(cpu, 1.0), macs_per_s=macs * fps, bytes_per_s=moved * fps,
                    accel_busy=min(sum(tl.accel_s) / wall, 1.0))


def run_bench(driver: Driver, frames: int, warmup: int = 2, images: str | None = None,
              power: str = "auto", on_result=None) -> BenchRun:
    """Warm up, then run ``frames`` frames and measure (the driver must be open);
    ``on_result(detection, frame)`` sees each measured frame as it completes (the board
    service streams it)."""
    if frames < 1:
        raise BenchError(f"--frames must be at least 1, got {frames}")
    if warmup < 0:
        raise BenchError(f"--warmup must be 0 or more, got {warmup}")
    det = Detector(driver)
    pf = driver.platform
    device = load_device(driver.package.design.overlay.device)
    used = None
    if images:
        files, bad = usable_images(images, frames)
        frame_list = list(image_frames(images, limit=frames, cycle=True, files=files))
        warm = list(image_frames(images, limit=warmup, cycle=True, files=files))
        used = images_used(driver.package, images, files, frames)
    else:
        frame_list = golden_frames(driver, frames)
        warm = golden_frames(driver, warmup)
    labels = _labels(frame_list)
    recorder = open_recorder(power, pf, device)
    if warm:
        det.run(warm)
    if recorder is not None:
        recorder.start()
    try:
        dets = det.run(frame_list, on_result)
    finally:
        reading = recorder.stop() if recorder is not None else None
    if images:
        skipped = bad + det.skipped
        used["skipped"] = [{"path": str(e.path), "reason": e.reason} for e in skipped]
        if skipped:
            used["note"] += "; " + skipped_line(skipped)
    tl = board_timeline(dets, pf)
    act = activity(driver, tl, len(dets))
    if reading is None:
        sensed = None
        if pf.source == "simulated" and power in ("auto", "rails"):
            sensed = pf.sensor_power_w(act, tl.wall_s)
        reading = (PowerReading(sensed, "simulated", pf.sensor_detail())
                   if sensed is not None else estimate_power(device, act))
    ious = [float(iou(d.box, labels[d.key])) for d in dets if d.key in labels]
    return BenchRun(dets, tl, reading, ious, used)


def to_record(driver: Driver, run: BenchRun) -> QoSRecord:
    """The QoS record of a benchmark run (source from the platform)."""
    pkg, pf, tl = driver.package, driver.platform, run.timeline
    net = pkg.design.network
    n = len(run.detections)
    lat_ms = np.asarray(tl.latencies_s, dtype=np.float64) * 1e3
    n_b = len(net.bundles)
    per_bundle = np.mean([d.accel.bundle_seconds(n_b) for d in run.detections], axis=0) * 1e3
    names = describe_layers(net)
    macs_b = [0] * n_b
    for bi, lay, s in zip(net.bundle_of_layer(), net.layers, net.shapes()):
        macs_b[bi] += layer_macs(lay.type, s)
    bundles = [BundleQoS(i, float(per_bundle[i]), names[i], macs_b[i],
                         {"latency_source": pf.source}) for i in range(n_b)]
    accel_transfer = [transfer_seconds(d.accel.passes) for d in run.detections]
    accel_compute = [compute_seconds(d.accel.passes) for d in run.detections]
    split = {"preprocess": 1e3 * float(np.mean(tl.pre_s)),
             "transfers": 1e3 * float(np.mean(accel_transfer)),
             "compute": 1e3 * float(np.mean(accel_compute)),
             "decode": 1e3 * float(np.mean(tl.post_s))}
    extra = {
        "design": pkg.design.name, "hardware_id": pkg.design.overlay.hardware_id_hex,
        "frames": n, "board": pf.describe(), "time_split_ms": split,
        "wall_s": tl.wall_s, "power_detail": run.power.detail,
        "iou_frames": len(run.ious),
        "images": run.images if run.images is not None else {
            "note": f"the package's {len(pkg.golden)} golden input(s), cycled (no labels)"},
        "fps_rule": "frames / time from reading the first image to the last result",
    }
    if pf.source == "simulated":
        extra["cpu_time_note"] = ("board CPU time from the simulated board's own Cortex-A9 "
                                  "model (cost per operation of the frame's work, drawn per "
                                  "board seed; not this host's time); accelerator time from "
                                  "the board's timing model")
    if not run.ious:
        extra["iou_note"] = ("no labels: the package's golden inputs or images without DAC-SDC "
                             "XML beside them")
    return QoSRecord(
        source=pf.source, fps=n / tl.wall_s if tl.wall_s > 0 else None,
        latency_ms=float(lat_ms.mean()), latency_ms_p50=float(np.percentile(lat_ms, 50)),
        latency_ms_p99=float(np.percentile(lat_ms, 99)), power_w=float(run.power.watts),
        power_source=run.power.source,
        iou=float(np.mean(run.ious)) if run.ious else None, bundles=bundles, extra=extra)


def main(args: argparse.Namespace) -> int:
    """``codesign bench PKG [--sim] --frames N [--json] ...``."""
    if args.images and not Path(args.images).is_dir():
        raise BenchError(f"--images {args.images}: no such folder")
    driver = open_driver(args)
    with driver:
        run = run_bench(driver, args.frames, args.warmup, args.images, args.power)
        rec = to_record(driver, run)
    d = rec.to_dict()
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    s = d["time_split_ms"]
    print(f"{rec.summary()}")
    print(f"latency p50 {rec.latency_ms_p50:.2f} ms, p99 {rec.latency_ms_p99:.2f} ms "
          f"({rec.source}); {d['frames']} frames on the {d['board']}")
    print("per frame: " + ", ".join(f"{k} {v:.2f} ms" for k, v in s.items())
          + f" ({rec.source})")
    for b in rec.bundles:
        print(f"  bundle {b.index} {b.name}: {b.latency_ms:.3f} ms ({rec.source})")
    print(f"images: {d['images']['note']}")
    if rec.iou is None:
        print("IoU: n/a (" + d.get("iou_note", "no labels") + ")")
    elif args.images:
        print(f"IoU {rec.iou:.3f} over {d['iou_frames']} labelled frames on "
              f"{dataset_label(args.images)} ({rec.source} board, this package's weights)")
    return 0
