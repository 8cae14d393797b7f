"""The one QoS record: every figure of speed, power and resources, with where it came from.

The analytical model (``estimated``), the simulated board (``simulated``), a real board
(``measured``) and a paper's table (``published``) all write this record; the benchmark,
the board service's stream, the search journal and the calibration all read it. A figure
never travels without its ``source``, and power has its own ``power_source`` because a
board without sensors measures speed but only estimates power.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .errors import CodesignError

SOURCES = ("estimated", "simulated", "measured", "published")


class QoSError(CodesignError, ValueError):
    """A QoS record that does not follow the schema."""


@dataclass
class BundleQoS:
    """One bundle's share of a frame."""

    index: int
    latency_ms: float
    name: str = ""
    macs: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"index": self.index, "name": self.name or f"bundle{self.index}",
             "latency_ms": self.latency_ms}
        if self.macs is not None:
            d["macs"] = self.macs
        d.update(self.extra)
        return d


@dataclass
class QoSRecord:
    """Speed, latency, power, energy and resources of one design, labelled by source.

    ``fps`` is frames per second over the run, ``latency_ms`` the mean time per frame.
    Resources are counts on the device (``bram18`` in 18 Kb halves). Fields that a source
    cannot give stay ``None`` (a benchmark knows no LUT count; a paper may give no
    per-bundle times). ``extra`` carries source-specific figures (MACs, IoU, time split).
    """

    source: str
    fps: float | None = None
    latency_ms: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p99: float | None = None
    power_w: float | None = None
    power_source: str | None = None
    energy_mj_per_frame: float | None = None
    dsp: int | None = None
    bram18: int | None = None
    lut: int | None = None
    ff: int | None = None
    iou: float | None = None
    bundles: list[BundleQoS] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise QoSError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.power_source is None and self.power_w is not None:
            self.power_source = self.source
        if self.power_source is not None and self.power_source not in SOURCES:
            raise QoSError(f"power_source must be one of {', '.join(SOURCES)}, "
                           f"got {self.power_source!r}")
        if self.energy_mj_per_frame is None and self.power_w is not None and self.fps:
            self.energy_mj_per_frame = energy_mj_per_frame(self.power_w, self.fps)

    def to_dict(self) -> dict:
        """A flat JSON-ready dict: the keys of DESIGN.md 3a plus ``extra`` merged in."""
        d: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("bundles", "extra"):
                continue
            d[f.name] = getattr(self, f.name)
        d["bundles"] = [b.to_dict() for b in self.bundles]
        for k, v in self.extra.items():
            if k in d:
                raise QoSError(f"extra key {k!r} shadows a QoS field")
            d[k] = v
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "QoSRecord":
        if not isinstance(d, dict) or "source" not in d:
            raise QoSError("a QoS record is a JSON object with a 'source' key")
        names = {f.name for f in fields(cls)} - {"bundles", "extra"}
        kw = {k: d[k] for k in names if k in d}
        bundles = []
        for i, b in enumerate(d.get("bundles", [])):
            b = dict(b)
            idx = b.pop("index", i)
            lat = b.pop("latency_ms")
            name = b.pop("name", "")
            macs = b.pop("macs", None)
            bundles.append(BundleQoS(idx, lat, name, macs, b))
        extra = {k: v for k, v in d.items() if k not in names and k != "bundles"}
        return cls(bundles=bundles, extra=extra, **kw)

    def summary(self) -> str:
        """One line for a person: every figure with its source."""
        parts = []
        if self.fps is not None:
            parts.append(f"{self.fps:.2f} FPS")
        if self.latency_ms is not None:
            parts.append(f"{self.latency_ms:.2f} ms/frame")
        if self.power_w is not None:
            parts.append(f"{self.power_w:.2f} W ({self.power_source})")
        if self.energy_mj_per_frame is not None:
            parts.append(f"{self.energy_mj_per_frame:.1f} mJ/frame")
        if self.iou is not None:
            parts.append(f"IoU {self.iou:.3f}")
        return f"[{self.source}] " + ", ".join(parts)


def energy_mj_per_frame(power_w: float, fps: float) -> float:
    """Energy per frame in millijoules from mean power and frame rate."""
    return 1000.0 * power_w / fps
