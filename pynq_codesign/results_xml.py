"""Box annotations in the DAC-SDC XML format: ground truth and detection results alike.

The DAC-SDC data set gives one XML file beside each JPEG; a contest entry writes one XML
file per image with its detected box, named after the image. Both look like::

    <annotation>
      <filename>0001.jpg</filename>
      <size><width>640</width><height>360</height></size>
      <object>
        <name>boat</name>
        <bndbox><xmin>120</xmin><ymin>80</ymin><xmax>152</xmax><ymax>97</ymax></bndbox>
      </object>
    </annotation>

Coordinates are integer pixels; a box covers ``xmin <= x < xmax``, ``ymin <= y < ymax``
(so ``xmax - xmin`` is its width). The contest's own result writer named the image height
``<length>`` instead of ``<height>``: the reader accepts either, the writer writes
``<height>`` so that a results folder reads back with the same code as the data set.

Standard library and numpy only: the board's ``codesign detect`` writes its results with
this module.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import FileProblem
from .fsutil import write_file_atomic

BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")
DEFAULT_NAME = "object"


class AnnotationError(FileProblem, ValueError):
    """An annotation XML that cannot be read: ``path`` names the file, ``reason`` says why."""


@dataclass(frozen=True)
class Annotation:
    """One image's single object: its file name, image size and box in pixels."""

    filename: str
    width: int
    height: int
    box: tuple[int, int, int, int]     # xmin, ymin, xmax, ymax (pixels, max exclusive)
    name: str = DEFAULT_NAME

    def box_problem(self) -> str | None:
        """Why the box is not a proper box inside the image, or None when it is."""
        xmin, ymin, xmax, ymax = self.box
        if self.width <= 0 or self.height <= 0:
            return f"image size {self.width}x{self.height} is not positive"
        if not (xmin < xmax and ymin < ymax):
            return f"box {list(self.box)} is empty (needs xmin < xmax and ymin < ymax)"
        if xmin < 0 or ymin < 0 or xmax > self.width or ymax > self.height:
            return (f"box {list(self.box)} lies outside the {self.width}x{self.height} "
                    "image")
        return None

    def relative_box(self) -> np.ndarray:
        """The box divided by the image size: ``[xmin, ymin, xmax, ymax]`` in 0..1 (float64)."""
        scale = np.array([self.width, self.height, self.width, self.height], dtype=np.float64)
        return np.asarray(self.box, dtype=np.float64) / scale


def to_xml(ann: Annotation) -> str:
    """The annotation as an XML document (text, UTF-8 declaration, tab indented)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = ann.filename
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(int(ann.width))
    ET.SubElement(size, "height").text = str(int(ann.height))
    obj = ET.SubElement(root, "object")
    ET.SubElement(obj, "name").text = ann.name
    bnd = ET.SubElement(obj, "bndbox")
    for key, v in zip(BOX_FIELDS, ann.box):
        ET.SubElement(bnd, key).text = str(int(v))
    ET.indent(root, space="\t")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def write_xml(path: str | os.PathLike, ann: Annotation) -> Path:
    """Write one annotation file atomically (a crash never leaves half a file)."""
    return write_file_atomic(path, to_xml(ann))


def _number(node: ET.Element | None, what: str, source: str) -> int:
    if node is None or node.text is None or not node.text.strip():
        raise AnnotationError(source, f"missing <{what}>")
    text = node.text.strip()
    try:
        v = float(text)
    except ValueError:
        raise AnnotationError(source, f"<{what}> is not a number: {text!r}") from None
    if not np.isfinite(v):
        raise AnnotationError(source, f"<{what}> is not finite: {text!r}")
    return int(round(v))


def parse_xml(data: str | bytes, source: str | os.PathLike = "<xml>") -> Annotation:
    """Parse one annotation document; ``source`` names it in errors.

    Checks the structure (every field present and numeric, exactly one object), not the
    geometry: :meth:`Annotation.box_problem` says whether the box lies inside the image.
    """
    source = str(source)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise AnnotationError(source, f"malformed XML ({e})") from None
    if root.tag != "annotation":
        raise AnnotationError(source, f"root element is <{root.tag}>, expected <annotation>")
    filename = (root.findtext("filename") or "").strip()
    size = root.find("size")
    if size is None:
        raise AnnotationError(source, "missing <size>")
    width = _number(size.find("width"), "size/width", source)
    h_node = size.find("height")
    height = _number(h_node if h_node is not None else size.find("length"), "size/height",
                     source)
    objects = root.findall("object")
    if not objects:
        raise AnnotationError(source, "no <object>")
    if len(objects) > 1:
        raise AnnotationError(source, f"{len(objects)} <object> elements; DAC-SDC images "
                              "have exactly one")
    obj = objects[0]
    name = (obj.findtext("name") or "").strip() or DEFAULT_NAME
    bnd = obj.find("bndbox")
    if bnd is None:
        raise AnnotationError(source, "missing <object>/<bndbox>")
    box = tuple(_number(bnd.find(k), f"bndbox/{k}", source) for k in BOX_FIELDS)
    return Annotation(filename=filename, width=width, height=height, box=box, name=name)


def read_xml(path: str | os.PathLike) -> Annotation:
    """Read and parse one annotation file (errors name the file)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise AnnotationError(path, f"cannot read ({e.strerror or e})") from None
    return parse_xml(data, path)


def result_path(out_dir: str | os.PathLike, image_key: str) -> Path:
    """Where the result of image ``image_key`` goes: ``out_dir/<key>.xml``.

    ``image_key`` is the image's path relative to its data set root without the suffix,
    e.g. ``boat1/0001``, so the results folder mirrors the data set's layout (with the
    suffix, ``p.png``, where two images differ only in theirs). ``.xml`` is appended,
    never put in place of a dot in the key.
    """
    key = Path(image_key)
    if key.is_absolute() or ".." in key.parts or not key.name:
        raise ValueError(f"image key must be a relative path inside the folder: {image_key!r}")
    return Path(out_dir) / key.parent / (key.name + ".xml")


def write_result(out_dir: str | os.PathLike, image_key: str, ann: Annotation) -> Path:
    """Write one image's detection result in the contest format."""
    return write_xml(result_path(out_dir, image_key), ann)


def iter_results(out_dir: str | os.PathLike) -> Iterator[tuple[str, Annotation]]:
    """Every ``(image_key, annotation)`` of a results folder, in sorted order.

    A file that cannot be read raises :class:`AnnotationError` naming it: results are
    our own output, so a bad one is a bug or a lost write, not data to skip quietly.
    """
    root = Path(out_dir)
    if not root.is_dir():
        raise AnnotationError(root, "results folder does not exist")
    for p in sorted(root.rglob("*.xml")):
        if p.name.startswith("."):
            continue
        yield p.relative_to(root).with_suffix("").as_posix(), read_xml(p)


def read_results(out_dir: str | os.PathLike) -> dict[str, Annotation]:
    """A results folder as ``{image_key: annotation}``."""
    return dict(iter_results(out_dir))
