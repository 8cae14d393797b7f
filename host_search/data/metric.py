"""The DAC-SDC accuracy score and results in the contest's XML format.

The contest scores a detector by the mean, over all test images, of the IoU between the
detected box and the ground-truth box; an image without a result counts as IoU 0. The IoU
itself is :func:`pynq_codesign.prepost.iou` (the one implementation) and the XML format is
:mod:`pynq_codesign.results_xml` (which the board's ``codesign detect`` uses too).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pynq_codesign.prepost import iou, to_pixels
from pynq_codesign.results_xml import Annotation, read_results, write_result

from .dacsdc import Dataset, Sample


def mean_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """The DAC-SDC score of boxes ``[N, 4]`` against ground truth ``[N, 4]`` (same units)."""
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 2 or pred.shape[1] != 4:
        raise ValueError(f"expected two [N, 4] box arrays, got {pred.shape} and {truth.shape}")
    if len(pred) == 0:
        raise ValueError("no boxes to score")
    return float(np.mean(iou(pred, truth)))


@dataclass(frozen=True)
class IoUReport:
    """A results folder scored against a data set."""

    keys: tuple[str, ...]           # image keys, as in the data set
    ious: tuple[float, ...]         # per image; 0 where the result is missing
    missing: tuple[str, ...]        # images without a result
    extra: int                      # results for images not in the data set (ignored)

    @property
    def mean_iou(self) -> float:
        return float(np.mean(self.ious)) if self.ious else 0.0

    @property
    def n_images(self) -> int:
        return len(self.ious)

    def summary(self) -> str:
        s = f"mean IoU {self.mean_iou:.3f} over {self.n_images} images"
        if self.missing:
            s += f" ({len(self.missing)} without a result, scored 0)"
        return s


def score_results(results_dir: str | os.PathLike, dataset: Dataset | Sequence[Sample]
                  ) -> IoUReport:
    """Score a folder of result XMLs (one per image, same layout) against the data set.

    Boxes are compared relative to their image size, so a result written for a resized
    frame still scores correctly.
    """
    results = read_results(results_dir)
    keys, ious, missing = [], [], []
    for s in dataset:
        keys.append(s.key)
        r = results.get(s.key)
        if r is None:
            missing.append(s.key)
            ious.append(0.0)
            continue
        ious.append(float(iou(r.relative_box(), s.relative_box)))
    known = set(keys)
    extra = sum(1 for k in results if k not in known)
    return IoUReport(tuple(keys), tuple(ious), tuple(missing), extra)


def annotation_for(sample: Sample, box: np.ndarray, relative: bool = True,
                   name: str | None = None) -> Annotation:
    """A detection of ``sample`` as an annotation in pixels, clipped to the image."""
    box = np.asarray(box, dtype=np.float64)
    px = to_pixels(box, sample.width, sample.height) if relative else np.round(box).astype(
        np.int64)
    hi = np.array([sample.width, sample.height, sample.width, sample.height], dtype=np.int64)
    px = np.clip(px, 0, hi)
    px[2] = max(px[2], px[0])
    px[3] = max(px[3], px[1])
    return Annotation(sample.image.name, sample.width, sample.height,
                      tuple(int(v) for v in px), name or sample.name or sample.category)


def write_results(out_dir: str | os.PathLike, samples: Sequence[Sample], boxes: np.ndarray,
                  relative: bool = True) -> list[Path]:
    """Write one result XML per sample (``out_dir/<sub-category>/<stem>.xml``)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape != (len(samples), 4):
        raise ValueError(f"expected boxes [{len(samples)}, 4], got {boxes.shape}")
    return [write_result(out_dir, s.key, annotation_for(s, b, relative))
            for s, b in zip(samples, boxes)]
