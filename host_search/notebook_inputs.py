"""What a notebook runs on when it is given no package: the demo's, or a tiny one made here.

The notebooks (``notebooks/``) call :func:`notebook_package`. Environment variables
(used by the tests to keep a checkout's ``demo-out/`` out of the way):
``CODESIGN_PACKAGE`` (a package to use), ``CODESIGN_DEMO_OUT`` (where the demo wrote its
output), ``CODESIGN_NB_WORK`` (where a tiny package is made).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pynq_codesign.score import SYNTH_MARKER

from .processes import run_step

ENV_PACKAGE = "CODESIGN_PACKAGE"
ENV_DEMO_OUT = "CODESIGN_DEMO_OUT"
ENV_NB_WORK = "CODESIGN_NB_WORK"


@dataclass(frozen=True)
class NotebookInputs:
    """What a notebook runs on: a package, a folder of labelled images (or None) and a
    sentence saying where they came from."""

    package: Path
    images: Path | None
    origin: str


def _demo_package(demo_out: Path) -> NotebookInputs | None:
    pkg, held = demo_out / "package", demo_out / "heldout"
    if (pkg / "manifest.json").is_file():
        return NotebookInputs(pkg, held if held.is_dir() else None,
                              f"the package `codesign demo` deployed ({pkg})")
    return None


def tiny_package(work: str | Path, images: int = 32, epochs: int = 2,
                 seed: int = 0) -> NotebookInputs:
    """A small trained package made in seconds (reused when already there): a built-in
    data set of ``images`` images, DNN-A trained in fast mode (half resolution) for
    ``epochs`` float epochs and one QAT epoch, exported. Its boxes are rough: it exists
    to show the flow; ``make demo`` trains a real one."""
    work = Path(work)
    data, held, run, pkg = work / "data", work / "heldout", work / "run", work / "package"
    if not (pkg / "manifest.json").is_file():
        for p in (run, pkg):
            shutil.rmtree(p, ignore_errors=True)
        if not (data / SYNTH_MARKER).is_file():
            run_step("A tiny built-in data set", ["data", "synth", "--out", str(data),
                                                  "--n", str(images), "--seed", str(seed)])
        if not (held / SYNTH_MARKER).is_file():
            run_step("Held-out images (another seed: never trained on)",
                     ["data", "synth", "--out", str(held), "--n", "8",
                      "--seed", str(seed + 1)])
        run_step("Train DNN-A briefly (fast mode: half resolution)",
                 ["train", "dnn-a", "--data", str(data), "--epochs", str(epochs),
                  "--qat-epochs", "1", "--fast", "--out", str(run), "--seed", str(seed)])
        run_step("Export the deployment package", ["export", str(run), "--out", str(pkg)])
    return NotebookInputs(pkg, held, f"a tiny package trained here in seconds ({pkg}); "
                                     "its boxes are rough: run `make demo` for a real one")


def notebook_package(package: str | os.PathLike | None = None,
                     images: str | os.PathLike | None = None) -> NotebookInputs:
    """The package a notebook uses: ``package`` if given, else ``$CODESIGN_PACKAGE``, else
    the demo's (``$CODESIGN_DEMO_OUT``, default ``../demo-out`` then ``demo-out``), else a
    tiny one made under ``$CODESIGN_NB_WORK`` (default ``./work``)."""
    given = package or os.environ.get(ENV_PACKAGE)
    if given:
        return NotebookInputs(Path(given), Path(images) if images else None,
                              f"the package given ({given})")
    env_demo = os.environ.get(ENV_DEMO_OUT)
    for d in ([Path(env_demo)] if env_demo else [Path("..") / "demo-out", Path("demo-out")]):
        found = _demo_package(d)
        if found is not None:
            return found if images is None else NotebookInputs(found.package, Path(images),
                                                               found.origin)
    made = tiny_package(os.environ.get(ENV_NB_WORK) or "work")
    return made if images is None else NotebookInputs(made.package, Path(images), made.origin)
