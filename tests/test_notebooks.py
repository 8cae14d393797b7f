"""The notebooks execute end to end (nbclient), on the simulated board, with no error.

With no package given they make a tiny one (a small built-in data set, a short training
run) under a temporary folder; ``CODESIGN_DEMO_OUT`` points at an empty folder so that a
``demo-out/`` in the checkout is not picked up. Notebook 01 makes the package, 02 reuses it
(same work folder), 03 starts its own simulated board service and runs a tiny search.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


@pytest.fixture(scope="module")
def nb_env(tmp_path_factory):
    work = tmp_path_factory.mktemp("nbwork")
    saved = {k: os.environ.get(k) for k in ("CODESIGN_NB_WORK", "CODESIGN_DEMO_OUT",
                                            "CODESIGN_PACKAGE", "PYTHONPATH")}
    os.environ["CODESIGN_NB_WORK"] = str(work / "work")
    os.environ["CODESIGN_DEMO_OUT"] = str(work / "no-demo-here")
    os.environ.pop("CODESIGN_PACKAGE", None)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([saved["PYTHONPATH"]] if saved["PYTHONPATH"] else []))
    yield work
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_three_notebooks_saved_without_outputs():
    assert len(ALL) >= 3, ALL
    for name in ALL:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        for c in nb.cells:
            if c.cell_type == "code":
                assert not c.outputs and c.execution_count is None, \
                    f"{name}: saved with outputs (clear them before committing)"


def _execute(name: str, cwd: Path) -> list[str]:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    texts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            if o.get("output_type") == "stream":
                texts.append(o.get("text", ""))
            elif "data" in o and "text/plain" in o["data"]:
                texts.append(o["data"]["text/plain"])
    return texts


@pytest.mark.parametrize("name", ["01_detection_demo.ipynb", "02_on_device_benchmark.ipynb"])
def test_board_notebooks_run_on_the_simulated_board(nb_env, name):
    out = "\n".join(_execute(name, NOTEBOOKS))
    assert "SIMULATED board" in out, out[-2000:]
    assert "simulated" in out


def test_closed_loop_notebook_runs(nb_env):
    if not (NOTEBOOKS / "03_closed_loop_cosearch.ipynb").is_file():
        pytest.skip("notebook 03 not written yet")
    out = "\n".join(_execute("03_closed_loop_cosearch.ipynb", NOTEBOOKS))
    assert "simulated" in out and "estimated" in out, out[-2000:]
