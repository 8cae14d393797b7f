"""``codesign score PRED GT``: the DAC-SDC mean IoU of a results folder.

``PRED`` is a contest-style results folder: one DAC-SDC XML per image, named after the
image (what ``codesign detect --out`` writes, or a contest entry). ``GT`` is the data set:
one XML beside each image (``boat1/0001.jpg`` + ``boat1/0001.xml``). Results are matched
to ground truth by their path relative to each folder (``boat1/0001``); both boxes are
taken relative to their own image size (``<size>``), so a result written for a resized
frame still scores. The contest scores every image of the set: an image without a result
counts IoU 0, and says so; a result without a ground truth is reported and left out.

The figure is labelled with the data set's name; on the built-in synthetic set (a folder
with :data:`SYNTH_MARKER`) it says that this is not the contest's IoU.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import CodesignError
from .prepost import iou
from .results_xml import AnnotationError, read_xml

#: The file ``codesign data synth`` writes at the root of a synthetic data set.
SYNTH_MARKER = "synth.json"


class ScoreError(CodesignError):
    """Folders that cannot be scored."""


@dataclass
class Score:
    """What ``score`` found: mean IoU over the ground-truth images (missing = 0)."""

    label: str
    mean_iou: float
    images: int                        # ground-truth images scored
    matched: int                       # of them, with a result
    mean_iou_matched: float | None     # over the matched images only
    missing: list[str] = field(default_factory=list)       # GT keys without a result
    unmatched: list[str] = field(default_factory=list)     # results without a GT
    bad: list[str] = field(default_factory=list)           # unreadable files, with reasons

    def to_dict(self) -> dict:
        return asdict(self)


def _xml_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).with_suffix("").as_posix(): p
            for p in sorted(root.rglob("*.xml")) if not p.name.startswith(".")
            and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def _boxes(files: dict[str, Path], bad: list[str], check: bool) -> dict[str, np.ndarray]:
    out = {}
    for key, p in files.items():
        try:
            ann = read_xml(p)
        except AnnotationError as e:
            bad.append(f"{p}: {e.reason}")
            continue
        problem = ann.box_problem() if check else None
        if problem:
            bad.append(f"{p}: {problem}")
            continue
        out[key] = ann.relative_box()
    return out


def score_folders(pred: str | Path, gt: str | Path) -> Score:
    """Score the results in ``pred`` against the ground truth in ``gt``."""
    from .pipeline import dataset_label
    pred, gt = Path(pred), Path(gt)
    for what, p in (("results", pred), ("ground-truth", gt)):
        if not p.is_dir():
            raise ScoreError(f"{p}: no such {what} folder")
    if pred.resolve() == gt.resolve():
        raise ScoreError(f"{pred}: the results folder and the ground truth are the same "
                         "folder; give the detect --out folder and the data set")
    bad: list[str] = []
    truth = _boxes(_xml_files(gt), bad, check=True)
    if not truth:
        raise ScoreError(f"{gt}: no usable ground-truth XML found")
    results = _boxes(_xml_files(pred), bad, check=False)
    if not results:
        raise ScoreError(f"{pred}: no result XML found")
    ious = [float(iou(results[k], truth[k])) if k in results else 0.0 for k in truth]
    matched = [float(iou(results[k], truth[k])) for k in truth if k in results]
    return Score(label=dataset_label(gt), mean_iou=float(np.mean(ious)), images=len(truth),
                 matched=len(matched),
                 mean_iou_matched=float(np.mean(matched)) if matched else None,
                 missing=sorted(set(truth) - set(results)),
                 unmatched=sorted(set(results) - set(truth)), bad=bad)


def main(args: argparse.Namespace) -> int:
    """``codesign score PRED GT [--json]``."""
    s = score_folders(args.pred, args.gt)
    if args.json:
        print(json.dumps(s.to_dict(), indent=2))
        return 0
    print(f"mean IoU {s.mean_iou:.4f} on {s.label}: {s.images} ground-truth images, "
          f"{s.matched} with a result (an image without one counts 0)")
    if s.missing:
        print(f"  {len(s.missing)} image(s) without a result, e.g. {s.missing[0]}; mean IoU "
              f"over the {s.matched} with one: "
              + (f"{s.mean_iou_matched:.4f}" if s.mean_iou_matched is not None else "n/a"))
    if s.unmatched:
        print(f"  {len(s.unmatched)} result(s) without a ground truth (left out), e.g. "
              f"{s.unmatched[0]}")
    if s.bad:
        print(f"  {len(s.bad)} unreadable XML file(s) left out, e.g. {s.bad[0]}")
    return 0
