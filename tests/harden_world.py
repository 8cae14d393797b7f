"""A small hostile world for the hardening tests: packages, labelled images, manifests
re-signed after an edit, designs that do not fit, and a snapshot of a folder tree to
prove that a refused command changed nothing."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from pynq_codesign.package import MANIFEST, _manifest_digest
from pynq_codesign.results_xml import Annotation, write_xml
from tests.helpers import tiny_design


def resign(pkg_root: Path, mutate) -> None:
    """Apply ``mutate(manifest_dict)`` and sign the manifest again (a forged package)."""
    mp = Path(pkg_root) / MANIFEST
    m = json.loads(mp.read_text())
    mutate(m)
    m["manifest_sha256"] = _manifest_digest(m)
    mp.write_text(json.dumps(m, indent=2))


def make_images(root: Path, n: int = 3, labels: bool = True, size=(360, 640),
                seed: int = 0) -> list[Path]:
    """``n`` JPEGs in ``root/cat1`` (blurred noise), with DAC-SDC XMLs when ``labels``."""
    import cv2
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cat1"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    h, w = size
    for i in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (9, 9), 3)
        p = folder / f"{i:04d}.jpg"
        cv2.imwrite(str(p), img)
        if labels:
            write_xml(p.with_suffix(".xml"),
                      Annotation(p.name, w, h, (w // 4, h // 4, w // 2, h // 2)))
        out.append(p)
    return out


def nofit_design_dict() -> dict:
    """The tiny design with an overlay too narrow for its own network."""
    d = tiny_design().to_dict()
    d["name"] = "nofit"
    d["overlay"]["max_channels"] = 4
    return d


def tree_state(root: Path, exclude: Path | None = None) -> dict[str, tuple]:
    """Every file and folder below ``root`` (but ``exclude``) with its content hash and
    mode: equal states mean nothing was changed, added or removed."""
    root = Path(root)
    ex = Path(exclude).resolve() if exclude is not None else None
    state = {}
    for p in sorted(root.rglob("*")):
        rp = p.resolve() if not p.is_symlink() else p
        if ex is not None and (rp == ex or ex in rp.parents):
            continue
        st = p.lstat()
        digest = (hashlib.sha256(p.read_bytes()).hexdigest()
                  if p.is_file() and not p.is_symlink() else "")
        state[p.relative_to(root).as_posix()] = (digest, st.st_mode)
    return state
