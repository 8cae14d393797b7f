"""The DAC-SDC data layout: scanning, validation, the split by sub-category, network inputs.

A data set is a folder of sub-category folders (``boat1/``, ``car3/``, ...); each holds
one JPEG per image (640x360 in the contest) and one XML per image, same stem, with the
image size and one object's box (see :mod:`pynq_codesign.results_xml`)::

    root/boat1/0001.jpg  root/boat1/0001.xml  root/boat1/0002.jpg ...
    root/car3/0001.jpg   ...

JPEGs directly in ``root`` are read too, as one sub-category named after the folder.

:func:`load_dataset` scans the folders without decoding a pixel: it parses each XML,
reads each JPEG's header (size) and checks its end-of-image marker (a truncated file
has none). Anything wrong (unreadable file, truncated or non-JPEG image, malformed XML,
missing fields, a box outside the image, an image whose size differs from its XML) is
recorded as a :class:`Skipped` item with the path and the reason, announced in one
warning line, and left out; the scan never stops on a bad file. An empty or missing
root raises :class:`DataError`.

Pixels are decoded only when asked for (:func:`read_image`, :func:`iter_inputs`), through
:func:`pynq_codesign.prepost.preprocess`, the one pre-processing implementation.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from pynq_codesign.design import Network
from pynq_codesign.errors import CodesignError, FileProblem
from pynq_codesign.prepost import preprocess
from pynq_codesign.results_xml import Annotation, AnnotationError, read_xml

log = logging.getLogger(__name__)

JPEG_SUFFIXES = (".jpg", ".jpeg")
# Start-of-frame markers carry the image size (0xC4, 0xC8 and 0xCC are not frames).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_HEADER_LIMIT = 1 << 20          # bytes of header to walk before giving up on a frame
_SHOWN_SKIPS = 5                 # skipped items named in the warning line


class DataError(CodesignError):
    """A data set folder that cannot be used at all (missing, empty, nothing valid)."""


class CorruptImage(FileProblem):
    """An image file that cannot be decoded: ``path`` names it, ``reason`` says why."""


@dataclass(frozen=True)
class Sample:
    """One labelled image: where it is, its sub-category, its box in pixels, its size."""

    image: Path                      # the JPEG
    subcategory: str                 # its folder, e.g. "boat1"
    box: tuple[int, int, int, int]   # xmin, ymin, xmax, ymax in pixels (max exclusive)
    width: int
    height: int
    name: str = ""                   # the object's name in the XML, e.g. "boat"
    key: str = ""                    # path relative to the root without suffix: "boat1/0001"

    @property
    def category(self) -> str:
        """The sub-category without its number: ``boat1`` -> ``boat``."""
        return _category(self.subcategory)

    @property
    def relative_box(self) -> np.ndarray:
        """The box divided by the image size, ``[xmin, ymin, xmax, ymax]`` in 0..1."""
        scale = np.array([self.width, self.height, self.width, self.height], dtype=np.float64)
        return np.asarray(self.box, dtype=np.float64) / scale

    @property
    def area_fraction(self) -> float:
        """The box's area over the image's area."""
        xmin, ymin, xmax, ymax = self.box
        return (xmax - xmin) * (ymax - ymin) / float(self.width * self.height)

    def annotation(self) -> Annotation:
        return Annotation(self.image.name, self.width, self.height, self.box,
                          self.name or self.category)


@dataclass(frozen=True)
class Skipped:
    """A file left out of the data set, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Dataset:
    """The valid samples of a data set folder (sorted by key) and the items skipped."""

    root: Path
    samples: tuple[Sample, ...]
    skipped: tuple[Skipped, ...] = ()

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    @property
    def subcategories(self) -> tuple[str, ...]:
        return tuple(sorted({s.subcategory for s in self.samples}))

    def by_subcategory(self) -> dict[str, tuple[Sample, ...]]:
        out: dict[str, list[Sample]] = {}
        for s in self.samples:
            out.setdefault(s.subcategory, []).append(s)
        return {k: tuple(v) for k, v in sorted(out.items())}

    def select(self, subcategories: Iterable[str]) -> "Dataset":
        """The samples of the given sub-categories (the skipped list is not carried over)."""
        keep = set(subcategories)
        return Dataset(self.root, tuple(s for s in self.samples if s.subcategory in keep))


# ---------------------------------------------------------------------------
# Cheap JPEG checks (no pixel decoding).
# ---------------------------------------------------------------------------

def jpeg_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` from a JPEG's frame header; checks the file's end marker too.

    Raises :class:`CorruptImage` for a file that is not a JPEG, has no frame header, or
    lacks the end-of-image marker (a truncated file). Reads the header and the last bytes
    only.
    """
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\xff\xd8":
                raise CorruptImage(path, "not a JPEG file (no start-of-image marker)")
            size = _walk_to_frame(f, path)
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(0, end - 64))
            tail = f.read().rstrip(b"\x00\r\n\t ")
    except OSError as e:
        raise CorruptImage(path, f"cannot read ({e.strerror or e})") from None
    if not tail.endswith(b"\xff\xd9"):
        raise CorruptImage(path, "truncated JPEG (no end-of-image marker)")
    return size


def _walk_to_frame(f, path) -> tuple[int, int]:
    while f.tell() < _HEADER_LIMIT:
        b = f.read(1)
        if not b:
            break
        if b != b"\xff":
            continue
        marker = f.read(1)
        while marker == b"\xff":           # fill bytes
            marker = f.read(1)
        if not marker:
            break
        m = marker[0]
        if m == 0x01 or 0xD0 <= m <= 0xD7:  # stand-alone markers
            continue
        if m in (0xD9, 0xDA):
            raise CorruptImage(path, "JPEG has no frame header before its image data")
        seg = f.read(2)
        if len(seg) < 2:
            break
        length = int.from_bytes(seg, "big")
        if m in _SOF:
            head = f.read(5)
            if len(head) < 5:
                break
            height = int.from_bytes(head[1:3], "big")
            width = int.from_bytes(head[3:5], "big")
            if width == 0 or height == 0:
                raise CorruptImage(path, f"JPEG frame header gives size {width}x{height}")
            return width, height
        if length < 2:
            raise CorruptImage(path, f"JPEG segment 0x{m:02X} has length {length}")
        f.seek(length - 2, os.SEEK_CUR)
    raise CorruptImage(path, "truncated JPEG (no frame header)")


# ---------------------------------------------------------------------------
# Scanning.
# ---------------------------------------------------------------------------

def _is_jpeg(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in JPEG_SUFFIXES and not p.name.startswith(".")


def _folders(root: Path) -> list[tuple[str, Path]]:
    """(sub-category, folder) pairs: the root's sub-folders, plus the root if it holds JPEGs."""
    subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    out = [(p.name, p) for p in subs]
    if any(_is_jpeg(p) for p in root.iterdir()):
        out.insert(0, (root.name, root))
    return out


def _scan_folder(root: Path, sub: str, folder: Path,
                 samples: list[Sample], skipped: list[Skipped]) -> None:
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    images = {p.stem: p for p in files if _is_jpeg(p)}
    xmls = {p.stem: p for p in files if p.is_file() and p.suffix.lower() == ".xml"}
    for stem in sorted(set(xmls) - set(images)):
        skipped.append(Skipped(xmls[stem], "annotation without an image"))
    for stem, img in sorted(images.items()):
        xml = xmls.get(stem)
        if xml is None:
            skipped.append(Skipped(img, f"no annotation ({stem}.xml is missing)"))
            continue
        try:
            ann = read_xml(xml)
        except AnnotationError as e:
            skipped.append(Skipped(xml, e.reason))
            continue
        problem = ann.box_problem()
        if problem:
            skipped.append(Skipped(xml, problem))
            continue
        try:
            size = jpeg_size(img)
        except CorruptImage as e:
            skipped.append(Skipped(img, e.reason))
            continue
        if size != (ann.width, ann.height):
            skipped.append(Skipped(img, f"image is {size[0]}x{size[1]} but its XML says "
                                        f"{ann.width}x{ann.height}"))
            continue
        key = img.relative_to(root).with_suffix("").as_posix()
        samples.append(Sample(image=img, subcategory=sub, box=ann.box, width=ann.width,
                              height=ann.height, name=ann.name, key=key))


def load_dataset(root: str | os.PathLike) -> Dataset:
    """Scan a DAC-SDC style folder; bad items are skipped, reported and kept in ``skipped``.

    Raises :class:`DataError` when the folder is missing, empty, or has no valid sample.
    """
    root = Path(root)
    hint = (f"point it at the DAC-SDC training data (sub-folders such as boat1/ holding "
            f"0001.jpg + 0001.xml) or write the built-in set with "
            f"`codesign data synth --out {root}`")
    if not root.exists():
        raise DataError(f"data set folder {root} does not exist: {hint}")
    if not root.is_dir():
        raise DataError(f"data set path {root} is not a folder: {hint}")
    samples: list[Sample] = []
    skipped: list[Skipped] = []
    for sub, folder in _folders(root):
        _scan_folder(root, sub, folder, samples, skipped)
    if skipped:
        shown = "; ".join(str(s) for s in skipped[:_SHOWN_SKIPS])
        more = f"; and {len(skipped) - _SHOWN_SKIPS} more" if len(skipped) > _SHOWN_SKIPS else ""
        log.warning("data set %s: skipped %d item(s): %s%s", root, len(skipped), shown, more)
    if not samples:
        if skipped:
            raise DataError(f"data set folder {root} has no valid image: all {len(skipped)} "
                            f"item(s) were skipped, first {skipped[0]}")
        raise DataError(f"data set folder {root} holds no images: {hint}")
    samples.sort(key=lambda s: s.key)
    return Dataset(root=root, samples=tuple(samples), skipped=tuple(skipped))


# ---------------------------------------------------------------------------
# The split by sub-category.
# ---------------------------------------------------------------------------

#: Hold-out modes of :func:`split_by_subcategory`.
HOLD_OUT_MODES = ("subcategory", "category")


@dataclass(frozen=True)
class Split:
    """Training and validation sides of a data set.

    ``mode`` says how the validation side was chosen:

    * ``"subcategory"``: whole sub-categories held out, every category keeping at least one
      training sub-category (the default: the contest scores unseen *sequences* of the
      object kinds it trained on);
    * ``"category"``: whole categories held out (every sub-category of an object kind);
      also the fallback when no category has two sub-categories;
    * ``"image"``: the fallback on a data set with a single sub-category, where the last
      images (in file order) are held out;
    * ``"given"``: the sub-categories the caller named.
    """

    train: Dataset
    val: Dataset
    mode: str
    val_subcategories: tuple[str, ...] = field(default=())


def _category(sub: str) -> str:
    return re.sub(r"\d+$", "", sub) or sub


def split_by_subcategory(dataset: Dataset, val_fraction: float = 0.2, seed: int = 0,
                         hold_out: str = "subcategory",
                         val_subcategories: Sequence[str] = ()) -> Split:
    """Split so that no sub-category is on both sides; deterministic for a seed.

    ``hold_out="subcategory"`` (default): the sub-categories of categories that have two or
    more are shuffled with ``seed`` and moved to validation in that order (skipping one
    whose category would lose its last training sub-category) until validation holds at
    least ``val_fraction`` of the images. Every category keeps training examples; a
    category with a single sub-category is never validated on. When no category has two
    sub-categories this falls back to ``"category"``.

    ``hold_out="category"``: whole categories are shuffled and moved to validation until
    it holds ``val_fraction`` of the images; each side keeps at least one. With a single
    category, its sub-categories are held out the same way; with a single sub-category,
    its last ``val_fraction`` of images (at least one), since consecutive frames of one
    sequence are the least alike. ``mode`` says which split was made.

    ``val_subcategories`` (non-empty): exactly these sub-categories are validated on (mode
    ``"given"``; ``hold_out``, ``val_fraction`` and ``seed`` are then unused), e.g. to
    compare with a result measured on a known split.
    """
    if val_subcategories:
        return _given_split(dataset, val_subcategories)
    if hold_out not in HOLD_OUT_MODES:
        raise DataError(f"hold-out mode must be one of {', '.join(HOLD_OUT_MODES)}, got "
                        f"{hold_out!r}")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"validation fraction must lie between 0 and 1 (exclusive), got "
                        f"{val_fraction}")
    if len(dataset) < 2:
        raise DataError(f"data set {dataset.root} has {len(dataset)} valid image(s); a "
                        "train/validation split needs at least 2")
    groups = dataset.by_subcategory()
    names = list(groups)
    if len(names) == 1:
        samples = dataset.samples
        n_val = min(len(samples) - 1, max(1, int(round(val_fraction * len(samples)))))
        return Split(train=Dataset(dataset.root, samples[:-n_val]),
                     val=Dataset(dataset.root, samples[-n_val:]),
                     mode="image", val_subcategories=tuple(names))
    target = val_fraction * len(dataset)
    rng = np.random.default_rng(seed)
    cats: dict[str, list[str]] = {}
    for n in names:
        cats.setdefault(_category(n), []).append(n)
    val: list[str] = []
    mode = hold_out
    if hold_out == "subcategory":
        left = {c: len(v) for c, v in cats.items()}
        holdable = [n for n in names if left[_category(n)] > 1]
        count = 0
        for i in rng.permutation(len(holdable)):
            if count >= target:
                break
            n = holdable[i]
            if left[_category(n)] > 1:
                val.append(n)
                left[_category(n)] -= 1
                count += len(groups[n])
        if not val:
            mode = "category"
    if mode == "category":
        units = list(cats.values()) if len(cats) > 1 else [[n] for n in names]
        order = [units[i] for i in rng.permutation(len(units))]
        count = 0
        for unit in order[:-1]:             # the last one always stays for training
            if count >= target and val:
                break
            val += unit
            count += sum(len(groups[n]) for n in unit)
    train = [n for n in names if n not in val]
    return Split(train=dataset.select(train), val=dataset.select(val), mode=mode,
                 val_subcategories=tuple(sorted(val)))


def _given_split(dataset: Dataset, val_subcategories: Sequence[str]) -> Split:
    names = dataset.subcategories
    val = sorted(set(val_subcategories))
    unknown = [n for n in val if n not in names]
    if unknown:
        raise DataError(f"validation sub-categor{'ies' if len(unknown) > 1 else 'y'} "
                        f"{', '.join(unknown)} not in {dataset.root}; it has "
                        f"{', '.join(names)}")
    train = [n for n in names if n not in val]
    if not train:
        raise DataError(f"validating on every sub-category of {dataset.root} leaves nothing "
                        "to train on; name fewer")
    return Split(train=dataset.select(train), val=dataset.select(val), mode="given",
                 val_subcategories=tuple(val))


# ---------------------------------------------------------------------------
# Pixels: decoding and network inputs.
# ---------------------------------------------------------------------------

def read_image(sample: Sample | str | os.PathLike) -> np.ndarray:
    """Decode an image as OpenCV does (BGR uint8 ``[H, W, 3]``); :class:`CorruptImage` if not."""
    import cv2  # noqa: PLC0415

    path = sample.image if isinstance(sample, Sample) else Path(sample)
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise CorruptImage(path, f"cannot read ({e.strerror or e})") from None
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise CorruptImage(path, "OpenCV cannot decode the image")
    if isinstance(sample, Sample) and img.shape[:2] != (sample.height, sample.width):
        raise CorruptImage(path, f"decoded size {img.shape[1]}x{img.shape[0]} differs from "
                                 f"the annotation's {sample.width}x{sample.height}")
    return img


def iter_inputs(samples: Iterable[Sample], network: Network,
                skipped: list[Skipped] | None = None
                ) -> Iterator[tuple[np.ndarray, np.ndarray, Sample]]:
    """``(x, box, sample)`` per image: ``x`` the network input ``[H, W, C]`` (float64, from
    :func:`pynq_codesign.prepost.preprocess`), ``box`` the relative box (float64 ``[4]``).

    An image that fails to decode is reported, appended to ``skipped`` and left out.
    """
    for s in samples:
        try:
            img = read_image(s)
        except CorruptImage as e:
            log.warning("skipped %s: %s", e.path, e.reason)
            if skipped is not None:
                skipped.append(Skipped(Path(e.path), e.reason))
            continue
        yield preprocess(img, network), s.relative_box, s


def load_inputs(samples: Sequence[Sample], network: Network, dtype=np.float32,
                skipped: list[Skipped] | None = None
                ) -> tuple[np.ndarray, np.ndarray, tuple[Sample, ...]]:
    """All network inputs at once: ``(X [N, H, W, C], boxes [N, 4], kept samples)``."""
    h, w, c = network.input_height, network.input_width, network.input_channels
    x = np.empty((len(samples), h, w, c), dtype=dtype)
    boxes = np.empty((len(samples), 4), dtype=np.float64)
    kept: list[Sample] = []
    for xi, bi, s in iter_inputs(samples, network, skipped):
        x[len(kept)] = xi
        boxes[len(kept)] = bi
        kept.append(s)
    return x[:len(kept)], boxes[:len(kept)], tuple(kept)
