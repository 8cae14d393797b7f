"""Detection on the board: read, pre-process, run, decode, draw.

Two threads, two input buffers (double-buffering): a *reader* thread reads frame ``k``
with OpenCV, resizes and quantises it as the package says (:mod:`pynq_codesign.prepost`)
and packs it into input buffer ``k % 2``, while the *worker* (the calling thread) runs the
accelerator on frame ``k - 1`` from the other buffer, decodes its box and hands it on.

Time: on a real board every frame is stamped with the CPU clock (``measured``). On the
simulated board the accelerator's time is the board's own (simulated) clock, and the CPU
work (reading, pre-processing, decoding, drawing) is this machine's measured CPU time of
the thread that did it, scaled to the board's ARM (:meth:`SimPlatform.cpu_seconds`); :func:`board_timeline` then lays the
frames on the board's timeline with the same double-buffered schedule (``simulated``).

``codesign detect PKG --images DIR --out DIR [--sim]`` writes one annotated image and one
DAC-SDC results XML per input image; ``--video FILE`` writes an annotated video and a CSV
of boxes.
"""
from __future__ import annotations

import argparse
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .driver import Driver, FrameResult, PassTime, open_driver
from .errors import CodesignError
from .fixedpoint import dequantize
from .package import Package
from .prepost import cv2_module, decode, preprocess, quantize_input, to_pixels

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
BOX_COLOUR = (0, 255, 0)          # BGR
BOX_THICKNESS = 2


class PipelineError(CodesignError):
    """Input that the detection pipeline cannot use (no images, an unreadable file)."""


@dataclass
class Frame:
    """One input: a key (its path relative to the folder, no suffix), and either an image
    (BGR uint8) or ready input codes (the golden vectors)."""

    key: str
    image: np.ndarray | None = None
    codes: np.ndarray | None = None
    path: Path | None = None


@dataclass
class Detection:
    """One frame's result with its time stamps and costs."""

    key: str
    box: np.ndarray                  # relative xmin, ymin, xmax, ymax
    confidence: float
    codes: np.ndarray                # output codes of the network
    pre_s: float                     # host-measured: read + pre-process + pack
    post_s: float                    # host-measured: decode (+ draw/write by the caller)
    accel: FrameResult
    pre_cpu_s: float = 0.0           # the same, CPU time of the reader thread
    post_cpu_s: float = 0.0          # the same, CPU time of the worker thread
    t_read: float = 0.0              # host wall clock when reading started
    t_done: float = 0.0              # host wall clock when the result was handed on
    image_size: tuple[int, int] | None = None   # (width, height) of the source image
    extra: dict = field(default_factory=dict)


def list_images(folder: str | Path) -> list[Path]:
    """Every image below ``folder`` in sorted order; :class:`PipelineError` if none."""
    root = Path(folder)
    if not root.is_dir():
        raise PipelineError(f"{root}: no such folder of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                   and p.is_file() and not p.name.startswith("."))
    if not files:
        raise PipelineError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return files


def image_frames(folder: str | Path, limit: int | None = None,
                 cycle: bool = False) -> Iterator[Frame]:
    """Frames of the images below ``folder`` (not yet read: the reader thread reads them)."""
    root = Path(folder)
    files = list_images(root)
    n = 0
    while True:
        for p in files:
            if limit is not None and n >= limit:
                return
            yield Frame(p.relative_to(root).with_suffix("").as_posix(), path=p)
            n += 1
        if not cycle:
            return


class Detector:
    """Pre-processing and decoding of one package around its driver."""

    def __init__(self, driver: Driver):
        self.driver = driver
        self.package: Package = driver.package
        net = self.package.design.network
        self._out_fmt = net.formats()[-1][2]

    def prepare(self, frame: Frame) -> np.ndarray:
        """Input codes of a frame (reads the image from disk if needed)."""
        if frame.codes is not None:
            return frame.codes
        if frame.image is None:
            cv2 = cv2_module()
            frame.image = cv2.imread(str(frame.path), cv2.IMREAD_COLOR)
            if frame.image is None:
                raise PipelineError(f"{frame.path}: cannot read this image")
        net = self.package.design.network
        x = preprocess(frame.image, net)
        return quantize_input(x, net, self.package.design.overlay.rounding)

    def decode(self, codes: np.ndarray) -> tuple[np.ndarray, float]:
        """Output codes -> (relative box, confidence)."""
        real = dequantize(codes, self._out_fmt)
        return decode(real, self.package.design.network.decode)

    def run(self, frames: Iterable[Frame],
            on_result: Callable[[Detection, Frame], None] | None = None) -> list[Detection]:
        """The double-buffered loop over ``frames``; ``on_result`` (draw, write) runs on the
        worker after each decode and counts in the frame's post-processing time."""
        drv = self.driver
        ready: queue.Queue = queue.Queue()
        free = [threading.Semaphore(1), threading.Semaphore(1)]
        stop = threading.Event()
        done_marker = object()

        def reader() -> None:
            try:
                for k, fr in enumerate(frames):
                    slot = k % 2
                    while not free[slot].acquire(timeout=0.1):
                        if stop.is_set():
                            return
                    t0, c0 = time.perf_counter(), time.thread_time()
                    codes = self.prepare(fr)
                    drv.load_input(codes, slot)
                    ready.put((k, slot, fr, t0, time.perf_counter() - t0,
                               time.thread_time() - c0))
                    if stop.is_set():
                        return
            except BaseException as e:  # noqa: BLE001 - handed to the worker
                ready.put(e)
                return
            ready.put(done_marker)

        th = threading.Thread(target=reader, name="reader", daemon=True)
        th.start()
        results: list[Detection] = []
        try:
            while True:
                item = ready.get()
                if item is done_marker:
                    break
                if isinstance(item, BaseException):
                    raise item
                k, slot, fr, t_read, pre_s, pre_cpu = item
                res = drv.execute(slot)
                free[slot].release()
                t1, c1 = time.perf_counter(), time.thread_time()
                box, conf = self.decode(res.codes)
                size = None if fr.image is None else (fr.image.shape[1], fr.image.shape[0])
                det = Detection(fr.key, box, conf, res.codes, pre_s, 0.0, res, pre_cpu,
                                t_read=t_read, image_size=size)
                if on_result is not None:
                    on_result(det, fr)
                det.post_s = time.perf_counter() - t1
                det.post_cpu_s = time.thread_time() - c1
                det.t_done = time.perf_counter()
                fr.image = None                       # keep memory flat on long runs
                results.append(det)
        finally:
            stop.set()
            th.join(timeout=5.0)
        return results


@dataclass
class Timeline:
    """Frames on the board's timeline (seconds from the first read)."""

    read_start: list[float]
    done: list[float]
    source: str                       # measured | simulated
    pre_s: list[float]                # board CPU seconds per frame
    post_s: list[float]
    accel_s: list[float]              # board seconds in the driver + accelerator

    @property
    def wall_s(self) -> float:
        return self.done[-1] - self.read_start[0] if self.done else 0.0

    @property
    def latencies_s(self) -> list[float]:
        return [d - r for r, d in zip(self.read_start, self.done)]


def board_timeline(dets: list[Detection], platform) -> Timeline:
    """The frames' times as the board sees them (see the module docstring)."""
    from .platform.sim.timing import frame_schedule
    if not dets:
        raise PipelineError("no frames were run")
    accel = [d.accel.accel_s for d in dets]
    if platform.source == "simulated":
        # CPU time of the thread, not its wall time: this host's other load and the GIL
        # held by the emulator must not count as work the board's CPU would do
        pre = [platform.cpu_seconds(d.pre_cpu_s) for d in dets]
        post = [platform.cpu_seconds(d.post_cpu_s) for d in dets]
        rs, _, done = frame_schedule(pre, accel, post)
        return Timeline(rs, done, "simulated", pre, post, accel)
    t0 = dets[0].t_read
    return Timeline([d.t_read - t0 for d in dets], [d.t_done - t0 for d in dets],
                    "measured", [d.pre_s for d in dets], [d.post_s for d in dets], accel)


# ---------------------------------------------------------------------------
# Drawing and writing.
# ---------------------------------------------------------------------------

def draw_box(image: np.ndarray, box: np.ndarray, confidence: float) -> np.ndarray:
    """Draw the detected box (relative coordinates) and its confidence onto ``image``."""
    cv2 = cv2_module()
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in to_pixels(box, w, h))
    cv2.rectangle(image, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), BOX_COLOUR,
                  BOX_THICKNESS)
    cv2.putText(image, f"{confidence:.2f}", (x0, max(y0 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                0.4, BOX_COLOUR, 1, cv2.LINE_AA)
    return image


def _write_image_result(out: Path, det: Detection, fr: Frame) -> None:
    from .results_xml import Annotation, write_result
    cv2 = cv2_module()
    img = fr.image
    h, w = img.shape[:2]
    px = tuple(int(v) for v in to_pixels(det.box, w, h))
    dst = out / f"{det.key}.jpg"
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(dst), draw_box(img.copy(), det.box, det.confidence)):
        raise PipelineError(f"{dst}: cannot write the annotated image")
    name = fr.path.name if fr.path is not None else f"{det.key}.jpg"
    write_result(out, det.key, Annotation(name, w, h, px))


def detect_images(detector: Detector, folder: str | Path, out: str | Path) -> list[Detection]:
    """Annotated images and results XML for every image below ``folder``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return detector.run(image_frames(folder), lambda d, f: _write_image_result(out, d, f))


def video_frames(path: str | Path) -> Iterator[Frame]:
    cv2 = cv2_module()
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise PipelineError(f"{path}: cannot open this video")
    try:
        k = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            yield Frame(f"frame{k:06d}", image=img)
            k += 1
    finally:
        cap.release()


def detect_video(detector: Detector, video: str | Path, out: str | Path) -> tuple[Path,
                                                                                   list[Detection]]:
    """An annotated copy of ``video`` (``OUT/<name>_detect.avi``) and ``boxes.csv``."""
    cv2 = cv2_module()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    dst = out / f"{Path(video).stem}_detect.avi"
    writer: list = []

    def write(det: Detection, fr: Frame) -> None:
        img = draw_box(fr.image.copy(), det.box, det.confidence)
        if not writer:
            h, w = img.shape[:2]
            vw = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (w, h))
            if not vw.isOpened():
                raise PipelineError(f"{dst}: OpenCV cannot write this video")
            writer.append(vw)
        writer[0].write(img)

    try:
        dets = detector.run(video_frames(video), write)
    finally:
        if writer:
            writer[0].release()
    if not dets:
        raise PipelineError(f"{video}: no frames could be read")
    with open(out / "boxes.csv", "w") as f:
        f.write("frame,xmin,ymin,xmax,ymax,confidence\n")
        for d in dets:
            f.write(f"{d.key}," + ",".join(f"{v:.5f}" for v in d.box) + f",{d.confidence:.4f}\n")
    return dst, dets


def main(args: argparse.Namespace) -> int:
    """``codesign detect PKG (--images DIR | --video FILE) --out DIR [--sim]``."""
    driver = open_driver(args)
    with driver:
        det = Detector(driver)
        if args.video:
            dst, dets = detect_video(det, args.video, args.out)
            what = f"{len(dets)} frames -> {dst}"
        else:
            dets = detect_images(det, args.images, args.out)
            what = f"{len(dets)} images -> annotated images and results XML in {args.out}"
        tl = board_timeline(dets, driver.platform)
    fps = len(dets) / tl.wall_s if tl.wall_s > 0 else float("nan")
    print(f"detect: {what}")
    print(f"{fps:.2f} FPS over the run ({tl.source}, {driver.platform.describe()})")
    return 0


# used by bench: the accelerator-side split of a frame
def transfer_seconds(passes: list[PassTime]) -> float:
    return sum(p.setup_s + p.tail_s for p in passes)


def compute_seconds(passes: list[PassTime]) -> float:
    return sum(p.compute_s for p in passes)
