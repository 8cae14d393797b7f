"""What the board service keeps on disk: uploaded designs and jobs, across restarts.

Layout under the data folder::

    designs/<id>/            the unpacked, verified package (renamed into place whole)
    designs/<id>.json        its metadata (name, hardware ID, upload time)
    jobs/<id>.json           one job: its request, state and, when done, its QoS record

Every JSON file is written to a temporary name and renamed (:func:`write_json`), so a
service killed at any moment (SIGKILL included) leaves each file old or new, never half.
On start, jobs that were queued or running are queued again in their original order: a
measurement can be repeated, and the host that waits for them carries on.
"""
from __future__ import annotations

import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..package import Package, load_package

JOB_STATES = ("queued", "running", "done", "failed")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, allow_nan=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(6)}"


@dataclass
class DesignEntry:
    id: str
    name: str
    hardware_id: str
    device: str
    uploaded: float
    files: int
    bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Job:
    id: str
    seq: int
    design_id: str
    frames: int
    warmup: int
    images: str | None
    state: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    progress: dict = field(default_factory=lambda: {"frames_done": 0})
    record: dict | None = None
    error: str | None = None
    requeued: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class Store:
    """Designs and jobs of one board service under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.designs_dir = self.root / "designs"
        self.jobs_dir = self.root / "jobs"
        self.designs_dir.mkdir(parents=True, exist_ok=True)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.designs: dict[str, DesignEntry] = {}
        self.jobs: dict[str, Job] = {}
        self._load()

    def _load(self) -> None:
        for p in self.designs_dir.iterdir():
            if p.name.startswith("."):            # a staging folder a crash left behind
                import shutil
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
        for meta in sorted(self.designs_dir.glob("*.json")):
            try:
                d = json.loads(meta.read_text())
                entry = DesignEntry(**d)
            except (OSError, ValueError, TypeError):
                continue
            if (self.designs_dir / entry.id).is_dir():
                self.designs[entry.id] = entry
        for p in self.jobs_dir.glob("*.json"):
            try:
                job = Job.from_dict(json.loads(p.read_text()))
            except (OSError, ValueError, TypeError):
                continue
            self.jobs[job.id] = job

    # --- designs ---------------------------------------------------------------------
    def package_dir(self, design_id: str) -> Path:
        return self.designs_dir / design_id

    def add_design(self, design_id: str, pkg: Package) -> DesignEntry:
        folder = self.package_dir(design_id)
        files = [p for p in folder.rglob("*") if p.is_file()]
        entry = DesignEntry(design_id, pkg.design.name, pkg.design.overlay.hardware_id_hex,
                            pkg.design.overlay.device, time.time(), len(files),
                            sum(p.stat().st_size for p in files))
        write_json(self.designs_dir / f"{design_id}.json", entry.to_dict())
        with self._lock:
            self.designs[design_id] = entry
        return entry

    def load(self, design_id: str) -> Package:
        return load_package(self.package_dir(design_id))

    # --- jobs ------------------------------------------------------------------------
    def next_seq(self) -> int:
        with self._lock:
            return 1 + max((j.seq for j in self.jobs.values()), default=0)

    def save_job(self, job: Job) -> None:
        with self._lock:
            self.jobs[job.id] = job
            data = job.to_dict()
        write_json(self.jobs_dir / f"{job.id}.json", data)

    def unfinished(self) -> list[Job]:
        """Jobs a restart interrupted or never started, oldest first."""
        return sorted((j for j in self.jobs.values() if j.state in ("queued", "running")),
                      key=lambda j: j.seq)
