"""The reference designs shipped with the package, and their published figures.

``dnn-a``, ``dnn-b`` and ``dnn-c`` are the paper's three PYNQ-Z1 networks for the
3x160x360 input (Zhang et al., "A Bi-Directional Co-Design Approach to Enable Deep
Learning on IoT Devices", 2019), each on an overlay sized for it. The JSON files beside
this module are the designs; ``published.json`` holds the paper's figures, every one
labelled ``published`` and kept apart from anything this tool computes.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..qos import QoSRecord

_HERE = Path(__file__).resolve().parent


def reference_names() -> list[str]:
    return sorted(p.stem for p in _HERE.glob("dnn-*.json"))


def reference_path(name: str) -> Path:
    return _HERE / f"{name}.json"


def reference_design(name: str):
    """The reference design ``name`` (``dnn-a``, ``dnn-b``, ``dnn-c``)."""
    from ..design import Design
    return Design.from_dict(json.loads(reference_path(name).read_text()))


@lru_cache(maxsize=None)
def _published() -> dict:
    return json.loads((_HERE / "published.json").read_text())


def published(name: str) -> list[tuple[str, QoSRecord]]:
    """The published figures for a reference design (or ``tgiif`` / ``paper-best``):
    a list of (citation, record), every record with ``source == "published"``."""
    out = []
    for entry in _published().get(name, []):
        rec = QoSRecord.from_dict({"source": "published", **entry["qos"]})
        out.append((entry["citation"], rec))
    return out


def published_names() -> list[str]:
    return sorted(k for k in _published() if not k.startswith("_"))
