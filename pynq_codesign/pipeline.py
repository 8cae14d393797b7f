"""Detection on the board: read, pre-process, run, decode, draw.

Two threads, two input buffers (double-buffering): a *reader* thread reads frame ``k``
with OpenCV, resizes and quantises it as the package says (:mod:`pynq_codesign.prepost`)
and packs it into input buffer ``k % 2``, while the *worker* (the calling thread) runs the
accelerator on frame ``k - 1`` from the other buffer, decodes its box and hands it on.

Time: on a real board every frame is stamped with the CPU clock (``measured``). On the
simulated board the accelerator's time is the board's own (simulated) clock, and the CPU
work (reading, pre-processing, decoding, drawing) is described as operation counts
(:class:`pynq_codesign.cpu_work.CpuWork`: pixels decoded, elements quantised, calls made)
that the board turns into its own CPU's seconds (:meth:`Platform.cpu_seconds`, once per
phase of each frame, in frame order, on the worker thread); nothing of this host's time
enters. :func:`board_timeline` then lays the frames on the board's timeline with the same
double-buffered schedule (``simulated``).

``codesign detect PKG --images DIR --out DIR [--sim]`` writes one annotated image and one
DAC-SDC results XML per input image (pixel coordinates), and ``summary.json``; where a
DAC-SDC XML lies beside an image it draws that ground-truth box too and reports the mean
IoU, labelled with the data set's name. ``--video FILE`` writes an annotated video and
``boxes.csv`` (coordinates relative to the frame, 0..1).

Nothing is overwritten and nothing is left half-written: ``--out`` must be new or empty
and outside the input; the results are staged in a hidden sibling folder that becomes
``--out`` only when the run is complete (:mod:`pynq_codesign.fsutil`). An image that
cannot be read (empty, not an image, a truncated JPEG) is skipped and named, as the
training loader does; two images whose names differ only in their suffix (``p.png``,
``p.bmp``) get distinct outputs (``p.png.jpg``, ``p.bmp.jpg``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from . import cpu_work
from .cpu_work import CpuWork
from .driver import Driver, FrameResult, PassTime, open_driver
from .errors import CodesignError
from .fixedpoint import dequantize
from .fsutil import check_new_output, staged_dir
from .package import Package
from .prepost import cv2_module, decode, iou, preprocess, quantize_input, to_pixels
from .wire import feature_bytes, feature_elem_bytes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
BOX_COLOUR = (0, 255, 0)          # BGR: the detected box
TRUTH_COLOUR = (255, 0, 255)      # BGR: the ground-truth box (when labels exist)
OUTLINE_COLOUR = (0, 0, 0)        # a dark edge around boxes and labels: visible on any background
SUMMARY_FILE = "summary.json"
FPS_NOTE = ("detect's FPS includes drawing and writing every annotated image and XML on the "
            "board's CPU; `codesign bench` runs the same pipeline without them, so its FPS "
            "is higher")
_SHOWN_SKIPS = 5


class PipelineError(CodesignError):
    """Input that the detection pipeline cannot use (no images, an unreadable file)."""


class UnreadableImage(PipelineError):
    """One image that cannot be decoded: skipped and reported, never a half-grey frame."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


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
    pre_work: CpuWork = field(default_factory=CpuWork)    # what the CPU did before the run
    post_work: CpuWork = field(default_factory=CpuWork)   # and after it (on_result adds)
    pre_board_s: float = 0.0         # board CPU seconds of pre_work (Platform.cpu_seconds)
    post_board_s: float = 0.0        # and of post_work
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


def frame_keys(root: Path, files: list[Path]) -> list[str]:
    """Output keys of ``files``: the path relative to ``root`` without its suffix, or
    with it where two images differ only in their suffix (``p.png`` and ``p.bmp``), so
    that no output ever overwrites another."""
    stems = [p.relative_to(root).with_suffix("").as_posix() for p in files]
    count = Counter(stems)
    return [st if count[st] == 1 else p.relative_to(root).as_posix()
            for st, p in zip(stems, files)]


def image_frames(folder: str | Path, limit: int | None = None,
                 cycle: bool = False, files: list[Path] | None = None) -> Iterator[Frame]:
    """Frames of the images below ``folder`` (not yet read: the reader thread reads them);
    ``files`` (below ``folder``) instead of every image there."""
    root = Path(folder)
    files = list_images(root) if files is None else files
    keys = frame_keys(root, files)
    n = 0
    while True:
        for key, p in zip(keys, files):
            if limit is not None and n >= limit:
                return
            yield Frame(key, path=p)
            n += 1
        if not cycle or not files:
            return


def image_problem(data: bytes, suffix: str) -> str | None:
    """Why ``data`` (a file's bytes) is not a whole image, or None (no pixel decoded)."""
    if not data:
        return "empty file"
    sfx = suffix.lower()
    if sfx in (".jpg", ".jpeg"):
        if data[:2] != b"\xff\xd8":
            return "not a JPEG (no start-of-image marker)"
        if b"\xff\xd9" not in data[-64:]:
            return "truncated JPEG (no end-of-image marker)"
    elif sfx == ".png":
        if data[:8] != b"\x89PNG\r\n\x1a\n":
            return "not a PNG"
        if b"IEND" not in data[-32:]:
            return "truncated PNG (no IEND chunk)"
    elif sfx == ".bmp":
        if data[:2] != b"BM" or len(data) < 26:
            return "not a BMP"
        if int.from_bytes(data[2:6], "little") > len(data):
            return "truncated BMP"
    return None


def read_image(path: str | Path) -> np.ndarray:
    """An image file as BGR uint8; :class:`UnreadableImage` if it is not a whole image
    (checked before decoding, so the decoder never warns about it or half-decodes it)."""
    cv2 = cv2_module()
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise UnreadableImage(p, f"cannot read this image ({e.strerror or e})") from None
    problem = image_problem(data, p.suffix)
    if problem:
        raise UnreadableImage(p, f"cannot read this image: {problem}")
    with decoder_messages() as said:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise UnreadableImage(p, "cannot read this image: OpenCV cannot decode it")
    if said:     # libjpeg decoded what it could and filled the rest: never a half image
        raise UnreadableImage(p, f"cannot read this image: {said[0]}")
    return img


_STDERR_LOCK = threading.Lock()
_CATCHER: list = []
_DECODER_WARNINGS = ("Corrupt JPEG data", "Premature end of JPEG", "libpng warning",
                     "libpng error", "Invalid SOS", "Bogus")


@contextlib.contextmanager
def decoder_messages() -> Iterator[list[str]]:
    """Catch what the image decoders print on stderr (libjpeg's "Corrupt JPEG data"
    warning, which OpenCV does not report) into the list yielded; anything else written
    to stderr meanwhile is passed on."""
    said: list[str] = []
    with _STDERR_LOCK:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:                       # no stderr descriptor: nothing to catch
            yield said
            return
        if not _CATCHER:                      # one unlinked file, reused (cheap per image)
            _CATCHER.append(tempfile.TemporaryFile())
        tmp = _CATCHER[0]
        os.dup2(tmp.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            size = os.lseek(tmp.fileno(), 0, os.SEEK_END)
            text = os.pread(tmp.fileno(), size, 0).decode("utf-8", "replace") if size else ""
            if size:
                os.ftruncate(tmp.fileno(), 0)
                os.lseek(tmp.fileno(), 0, os.SEEK_SET)
        for line in text.splitlines():
            if any(w in line for w in _DECODER_WARNINGS):
                said.append(line.strip())
            elif line.strip():
                print(line, file=sys.stderr)


def skipped_line(skipped: list[UnreadableImage]) -> str:
    """One line naming the images skipped (the first few) and how many."""
    shown = "; ".join(f"{e.path.name} ({e.reason.removeprefix('cannot read this image: ')})"
                      for e in skipped[:_SHOWN_SKIPS])
    more = f"; and {len(skipped) - _SHOWN_SKIPS} more" if len(skipped) > _SHOWN_SKIPS else ""
    return f"skipped {len(skipped)} unreadable image(s): {shown}{more}"


class Detector:
    """Pre-processing and decoding of one package around its driver."""

    def __init__(self, driver: Driver):
        self.driver = driver
        self.package: Package = driver.package
        net = self.package.design.network
        self._out_fmt = net.formats()[-1][2]
        self.skipped: list[UnreadableImage] = []     # images the last run() skipped

    def prepare(self, frame: Frame) -> np.ndarray:
        """Input codes of a frame (reads the image from disk if needed)."""
        if frame.codes is not None:
            return frame.codes
        if frame.image is None:
            frame.image = read_image(frame.path)
        net = self.package.design.network
        x = preprocess(frame.image, net)
        return quantize_input(x, net, self.package.design.overlay.rounding)

    def prepare_work(self, frame: Frame) -> CpuWork:
        """What :meth:`prepare` and packing into the input buffer make the board's CPU do
        for ``frame`` (after :meth:`prepare`: the image, if any, has been read)."""
        net = self.package.design.network
        fb = self.package.design.overlay.feature_bits
        h, w, c = net.input_height, net.input_width, net.input_channels
        nbytes = feature_bytes(h, w, c, fb)
        work = CpuWork(layout_elems=nbytes // feature_elem_bytes(fb), copy_bytes=nbytes)
        if frame.codes is not None:
            work.calls = cpu_work.CALLS_PREPARE_CODES
            return work
        ih, iw = frame.image.shape[:2]
        px = ih * iw
        work.calls, work.norm_elems = cpu_work.CALLS_PREPARE_IMAGE, h * w * c
        sfx = frame.path.suffix.lower() if frame.path is not None else ""
        if frame.path is not None:
            work.files = 1
            try:
                work.file_bytes = frame.path.stat().st_size
            except OSError:
                pass
        if sfx == ".png":
            work.png_px = px
        elif sfx == ".bmp":
            work.copy_bytes += frame.image.nbytes
        else:                                  # JPEG, or a video frame (MJPEG-like)
            work.jpeg_px = px
        if (ih, iw) != (h, w):
            if net.preprocess.resize == "area":
                work.area_px = px
            else:
                work.resize_px = h * w
        return work

    def decode_work(self, codes: np.ndarray) -> CpuWork:
        """What unpacking the output and :meth:`decode` make the board's CPU do."""
        fb = self.package.design.overlay.feature_bits
        h, w, c = codes.shape
        return CpuWork(calls=cpu_work.CALLS_DECODE,
                       layout_elems=feature_bytes(h, w, c, fb) // feature_elem_bytes(fb),
                       box_elems=int(codes.size))

    def decode(self, codes: np.ndarray) -> tuple[np.ndarray, float]:
        """Output codes -> (relative box, confidence)."""
        real = dequantize(codes, self._out_fmt)
        return decode(real, self.package.design.network.decode)

    def run(self, frames: Iterable[Frame],
            on_result: Callable[[Detection, Frame], None] | None = None) -> list[Detection]:
        """The double-buffered loop over ``frames``; ``on_result`` (draw, write) runs on the
        worker after each decode and counts in the frame's post-processing time. An image
        that cannot be read is skipped and kept in :attr:`skipped`."""
        drv = self.driver
        pf = drv.platform
        ready: queue.Queue = queue.Queue()
        free = [threading.Semaphore(1), threading.Semaphore(1)]
        stop = threading.Event()
        done_marker = object()

        self.skipped = []

        def reader() -> None:
            try:
                k = 0
                for fr in frames:
                    slot = k % 2
                    while not free[slot].acquire(timeout=0.1):
                        if stop.is_set():
                            return
                    t0 = time.perf_counter()
                    try:
                        codes = self.prepare(fr)
                    except UnreadableImage as e:
                        self.skipped.append(e)
                        free[slot].release()
                        continue
                    k += 1
                    drv.load_input(codes, slot)
                    work = self.prepare_work(fr)
                    ready.put((k, slot, fr, t0, time.perf_counter() - t0, work))
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
                k, slot, fr, t_read, pre_s, pre_work = item
                res = drv.execute(slot)
                free[slot].release()
                t1 = time.perf_counter()
                box, conf = self.decode(res.codes)
                size = None if fr.image is None else (fr.image.shape[1], fr.image.shape[0])
                det = Detection(fr.key, box, conf, res.codes, pre_s, 0.0, res, pre_work,
                                self.decode_work(res.codes), t_read=t_read, image_size=size)
                # the board's CPU time of each phase, drawn here in frame order
                det.pre_board_s = pf.cpu_seconds(pre_work, pre_s)
                if on_result is not None:
                    on_result(det, fr)
                det.post_s = time.perf_counter() - t1
                det.post_board_s = pf.cpu_seconds(det.post_work, det.post_s)
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
        # the board's own CPU time of each phase (its model of the work), never this host's
        pre = [d.pre_board_s for d in dets]
        post = [d.post_board_s for d in dets]
        rs, _, done = frame_schedule(pre, accel, post)
        return Timeline(rs, done, "simulated", pre, post, accel)
    t0 = dets[0].t_read
    return Timeline([d.t_read - t0 for d in dets], [d.t_done - t0 for d in dets],
                    "measured", [d.pre_s for d in dets], [d.post_s for d in dets], accel)


# ---------------------------------------------------------------------------
# Drawing and writing.
# ---------------------------------------------------------------------------

def _thickness(image: np.ndarray) -> int:
    """Line thickness that stays visible on a large frame (2 px at 640x360)."""
    return max(2, int(round(min(image.shape[:2]) / 180)))


def _outlined_rectangle(image, p0, p1, colour, t: int) -> None:
    cv2 = cv2_module()
    cv2.rectangle(image, p0, p1, OUTLINE_COLOUR, t + 2)
    cv2.rectangle(image, p0, p1, colour, t)


def _label(image: np.ndarray, text: str, x: int, y: int, colour, t: int) -> None:
    """``text`` in ``colour`` on a dark plate, kept inside the image."""
    cv2 = cv2_module()
    h, w = image.shape[:2]
    scale = 0.45 * t / 2
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, t // 2))
    x = min(max(x, 0), max(w - tw - 2, 0))
    y = min(max(y, th + base + 2), h - 1)
    cv2.rectangle(image, (x, y - th - base - 2), (x + tw + 2, y), OUTLINE_COLOUR, -1)
    cv2.putText(image, text, (x + 1, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, colour,
                max(1, t // 2), cv2.LINE_AA)


def draw_box(image: np.ndarray, box: np.ndarray, confidence: float,
             truth: np.ndarray | None = None) -> np.ndarray:
    """Draw the detected box (relative coordinates, green with a dark edge) and its
    confidence onto ``image``; the ground-truth box (relative, magenta) too when given."""
    h, w = image.shape[:2]
    t = _thickness(image)
    if truth is not None:
        g0, g1, g2, g3 = (int(v) for v in to_pixels(truth, w, h))
        _outlined_rectangle(image, (g0, g1), (max(g2 - 1, g0), max(g3 - 1, g1)),
                            TRUTH_COLOUR, max(1, t - 1))
        _label(image, "truth", g0, g3 + 16 * t // 2, TRUTH_COLOUR, t)
    x0, y0, x1, y1 = (int(v) for v in to_pixels(box, w, h))
    _outlined_rectangle(image, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), BOX_COLOUR, t)
    _label(image, f"{confidence:.2f}", x0, y0 - t - 1, BOX_COLOUR, t)
    return image


def truth_box(path: Path | None) -> np.ndarray | None:
    """The relative ground-truth box of an image whose DAC-SDC XML lies beside it (None
    where there is none or it is unusable: scoring is a bonus, not a requirement)."""
    from .results_xml import AnnotationError, read_xml
    if path is None:
        return None
    xml = path.with_suffix(".xml")
    if not xml.is_file():
        return None
    try:
        ann = read_xml(xml)
    except AnnotationError:
        return None
    return None if ann.box_problem() else ann.relative_box()


def _write_image_result(out: Path, det: Detection, fr: Frame) -> None:
    from .results_xml import Annotation, write_result
    cv2 = cv2_module()
    img = fr.image
    h, w = img.shape[:2]
    px = tuple(int(v) for v in to_pixels(det.box, w, h))
    truth = truth_box(fr.path)
    if truth is not None:          # scored as the XML written (pixels), as `score` would
        scale = np.array([w, h, w, h], dtype=np.float64)
        det.extra["iou"] = float(iou(np.asarray(px, dtype=np.float64) / scale, truth))
    dst = out / f"{det.key}.jpg"
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(dst), draw_box(img.copy(), det.box, det.confidence, truth)):
        raise PipelineError(f"{dst}: cannot write the annotated image")
    name = fr.path.name if fr.path is not None else f"{det.key}.jpg"
    xml = write_result(out, det.key, Annotation(name, w, h, px))
    det.post_work += CpuWork(calls=cpu_work.CALLS_WRITE_IMAGE,
                             files=2 + (truth is not None), copy_bytes=img.nbytes,
                             encode_px=h * w,
                             file_bytes=dst.stat().st_size + xml.stat().st_size)


def dataset_label(folder: str | Path) -> str:
    """How a score on ``folder`` is labelled: the data set's name, and for the built-in
    synthetic set that it is not the DAC-SDC contest's IoU."""
    from .score import SYNTH_MARKER
    root = Path(folder).resolve()
    if (root / SYNTH_MARKER).is_file():
        return (f"synthetic data set {root.name} (codesign data synth; not the DAC-SDC "
                "contest's IoU)")
    return f"data set {root.name}"


def detect_images(detector: Detector, folder: str | Path, out: str | Path) -> list[Detection]:
    """Annotated images and results XML for every image below ``folder``, written into
    the folder ``out`` (the caller stages it)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dets = detector.run(image_frames(folder), lambda d, f: _write_image_result(out, d, f))
    if not dets:
        first = detector.skipped[0] if detector.skipped else "no frame was run"
        raise PipelineError(f"{folder}: no image could be read (first: {first})")
    return dets


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


BOXES_CSV = "boxes.csv"
BOXES_HEADER = "frame,xmin,ymin,xmax,ymax,confidence"   # box relative to the frame (0..1)


def detect_video(detector: Detector, video: str | Path, out: str | Path) -> tuple[Path,
                                                                                   list[Detection]]:
    """An annotated copy of ``video`` (``OUT/<name>_detect.avi``) and ``boxes.csv``
    (boxes relative to the frame, 0..1; the XML results are in pixels)."""
    cv2 = cv2_module()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not Path(video).is_file():
        raise PipelineError(f"{video}: no such video file")
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    dst = out / f"{Path(video).stem}_detect.avi"
    writer: list = []

    def write(det: Detection, fr: Frame) -> None:
        img = draw_box(fr.image.copy(), det.box, det.confidence)
        det.post_work += CpuWork(calls=cpu_work.CALLS_WRITE_VIDEO, copy_bytes=img.nbytes,
                                 encode_px=img.shape[0] * img.shape[1])
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
    with open(out / BOXES_CSV, "w") as f:
        f.write(BOXES_HEADER + "\n")
        for d in dets:
            f.write(f"{d.key}," + ",".join(f"{v:.5f}" for v in d.box) + f",{d.confidence:.4f}\n")
    return dst, dets


def _summary(dets: list[Detection], tl: Timeline, fps: float, driver: Driver,
             skipped: list[UnreadableImage], label: str | None) -> dict:
    ious = [d.extra["iou"] for d in dets if "iou" in d.extra]
    return {
        "frames": len(dets), "fps": fps if fps == fps else None, "fps_source": tl.source,
        "fps_note": FPS_NOTE, "board": driver.platform.describe(),
        "skipped": [{"path": str(e.path), "reason": e.reason} for e in skipped],
        "iou": float(np.mean(ious)) if ious else None, "iou_images": len(ious),
        "iou_label": (f"mean IoU on {label}, images with a DAC-SDC XML beside them"
                      if ious and label else None),
        "coordinates": {"xml": "pixels of the source image (max exclusive)",
                        BOXES_CSV: "relative to the frame, 0..1"},
    }


def main(args: argparse.Namespace) -> int:
    """``codesign detect PKG (--images DIR | --video FILE) --out DIR [--sim]``."""
    src = args.video or args.images
    if args.images and not Path(args.images).is_dir():
        raise PipelineError(f"{args.images}: no such folder of images")
    if args.video and not Path(args.video).is_file():
        raise PipelineError(f"{args.video}: no such video file")
    out = check_new_output(args.out, [args.images] if args.images else [])
    if args.images:
        list_images(args.images)                 # "no images" before the board is opened
    driver = open_driver(args)
    with driver, staged_dir(out) as tmp:
        det = Detector(driver)
        if args.video:
            dst, dets = detect_video(det, args.video, tmp)
            what = f"{len(dets)} frames -> {out / dst.name} and {out / BOXES_CSV}"
            label = None
        else:
            dets = detect_images(det, args.images, tmp)
            what = f"{len(dets)} images -> annotated images and results XML in {out}"
            label = dataset_label(args.images)
        tl = board_timeline(dets, driver.platform)
        fps = len(dets) / tl.wall_s if tl.wall_s > 0 else float("nan")
        summary = _summary(dets, tl, fps, driver, det.skipped, label)
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    for e in det.skipped:
        print(f"codesign: skipped {e.path}: {e.reason}", file=sys.stderr)
    print(f"detect: {what}")
    if det.skipped:
        print(f"detect: {skipped_line(det.skipped)}")
    print(f"{fps:.2f} FPS over the run ({tl.source}, {driver.platform.describe()}); "
          f"{FPS_NOTE}")
    if summary["iou"] is not None:
        print(f"{summary['iou_label']}: {summary['iou']:.3f} over {summary['iou_images']} "
              f"images (of {len(dets)})")
    elif args.images:
        print(f"IoU: n/a (no DAC-SDC XML labels beside the images in {src})")
    return 0


# used by bench: the accelerator-side split of a frame
def transfer_seconds(passes: list[PassTime]) -> float:
    return sum(p.setup_s + p.tail_s for p in passes)


def compute_seconds(passes: list[PassTime]) -> float:
    return sum(p.compute_s for p in passes)
