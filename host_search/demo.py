"""The user's first hour: ``codesign demo [--quick] [--out DIR]`` (what ``make demo`` runs).

On one machine, end to end, with every step a ``codesign`` command printed before it runs:

1. make the built-in data set (``codesign data synth``) and a held-out set with another seed
   that neither the search nor training ever sees;
2. start the simulated board service as a real process on 127.0.0.1 (a free port, a token
   file in the out folder; stopped at the end, also on an error or Ctrl-C);
3. run the closed-loop co-search against it (``codesign search --board URL``);
4. deploy the best package through the service and benchmark it there;
5. run detection on the held-out images (annotated images, IoU);
6. the reproduction check: DNN-A/B/C estimated and on the simulated board, next to the
   paper's figures (``published``);
7. end with a table (each figure labelled) and ``DIR/report.html``.

The notebooks (``notebooks/``) use :func:`notebook_package` for a package when none is given.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pynq_codesign.errors import CodesignError

#: the ``codesign`` command of this interpreter (no PATH needed)
CODESIGN = [sys.executable, "-m", "pynq_codesign.cli"]
#: environment variables the notebooks read (documented in notebooks/README.md)
ENV_PACKAGE = "CODESIGN_PACKAGE"
ENV_DEMO_OUT = "CODESIGN_DEMO_OUT"
ENV_NB_WORK = "CODESIGN_NB_WORK"


class DemoError(CodesignError):
    """A demo step that failed; the message names the step and what to do."""


# ---------------------------------------------------------------------------
# Running codesign steps, printed as a person would type them.
# ---------------------------------------------------------------------------

def run_step(title: str, args: list[str], capture: bool = False, quiet: bool = False,
             ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    """Print ``== title`` and ``$ codesign ARGS``, run it, raise :class:`DemoError` on a
    failure (with the command, so a person can repeat it by hand)."""
    print(f"\n== {title}\n$ codesign {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(CODESIGN + args, text=True,
                       stdout=subprocess.PIPE if capture else (subprocess.DEVNULL if quiet
                                                               else None),
                       stderr=subprocess.PIPE if quiet else None)
    if r.returncode not in ok_codes:
        tail = (r.stderr or "").strip().splitlines()[-1:] if quiet else []
        raise DemoError(f"step failed (exit {r.returncode}): codesign {' '.join(args)}"
                        + (f": {tail[0]}" if tail else ""))
    print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    return r


# ---------------------------------------------------------------------------
# A package for the notebooks.
# ---------------------------------------------------------------------------

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
            _remove_tree(p)
        if not (data / "synth.json").is_file():
            run_step("A tiny built-in data set", ["data", "synth", "--out", str(data),
                                                  "--n", str(images), "--seed", str(seed)])
        if not (held / "synth.json").is_file():
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


def _remove_tree(p: Path) -> None:
    import shutil
    if p.exists():
        shutil.rmtree(p)


def main(args) -> int:  # the demo itself: below, once the search and the service stand
    raise DemoError("codesign demo: not written yet")
