"""Tiny co-searches end to end: SIGKILL midway then --resume, the three strategies under
one budget, the Ray executor. Tiny images (32x72 input), few bundles, one epoch."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

CODESIGN = [sys.executable, "-m", "pynq_codesign.cli"]
TINY = ["--bundle-layers", "1", "--input", "32x72", "--cand-epochs", "1",
        "--cand-qat-epochs", "1", "--final-epochs", "1", "--final-qat-epochs", "1",
        "--target-fps", "30", "--budget", "80", "--workers", "2"]


def _cli(*args, timeout=600, env=None):
    return subprocess.run(CODESIGN + list(args), capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("sdata") / "d"
    r = _cli("data", "synth", "--out", str(d), "--n", "12", "--seed", "5")
    assert r.returncode == 0, r.stderr
    return d


@pytest.fixture(scope="module")
def unbroken(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("unbroken") / "run"
    r = _cli("search", "--data", str(data), "--out", str(run), *TINY)
    assert r.returncode == 0, r.stdout + r.stderr
    return run


def _evals(run: Path) -> dict:
    c = sqlite3.connect(run / "journal.sqlite")
    rows = c.execute("SELECT key, status, result, image_epochs, executions, finished "
                     "FROM evals").fetchall()
    c.close()
    return {k: {"status": s, "result": json.loads(r) if r else None, "ie": ie, "ex": ex,
                "finished": f} for k, s, r, ie, ex, f in rows}


def _result(run: Path) -> dict:
    return json.loads((run / "result.json").read_text())


def test_search_writes_journal_report_and_a_package_that_selftests(unbroken):
    res = _result(unbroken)
    best = res["best"]
    assert best["qos"][best["qos_source"]]["fps"] >= 30 and best["meets_target"]
    assert best["needs_build"] is True
    assert res["charged_image_epochs"] <= res["budget_image_epochs"] == 80
    # the winner's full training runs alone, with FINAL_THREADS; every other with one
    from host_search.executors import FINAL_THREADS
    threads = {d.name.split("-")[0]: json.loads((d / "metrics.json").read_text())["threads"]
               for d in (unbroken / "evals").iterdir()}
    assert threads.pop("final") == FINAL_THREADS > 1 and set(threads.values()) == {1}
    for png in ("pareto", "qos", "trajectory", "bundles"):
        assert (unbroken / "report" / f"{png}.png").stat().st_size > 1000
    page = (unbroken / "report" / "report.html").read_text()
    assert "data:image/png;base64," in page and "<script src" not in page
    pkg = Path(best["package"])
    assert (pkg / "manifest.json").is_file() and (pkg / "overlay-build" / "run.sh").is_file()
    r = _cli("board", "selftest", str(pkg), "--sim")
    assert r.returncode == 0, r.stdout + r.stderr
    # the report is redrawn from the journal alone
    shutil.rmtree(unbroken / "report")
    r = _cli("search", "report", str(unbroken))
    assert r.returncode == 0 and (unbroken / "report" / "report.html").is_file()


def test_sigkill_midway_then_resume_loses_and_repeats_nothing(data, unbroken, tmp_path):
    run = tmp_path / "k"
    p = subprocess.Popen(CODESIGN + ["search", "--data", str(data), "--out", str(run), *TINY],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.time() + 300
    killed_at = None
    try:
        while time.time() < deadline and p.poll() is None:
            time.sleep(0.5)
            db = run / "journal.sqlite"
            if not db.is_file():
                continue
            try:
                c = sqlite3.connect(db, timeout=5)
                n = c.execute("SELECT count(*) FROM evals WHERE kind='cand' AND "
                              "status='done'").fetchone()[0]
                c.close()
            except sqlite3.OperationalError:
                continue
            if n >= 1:
                killed_at = time.time()
                os.killpg(p.pid, signal.SIGKILL)
                break
    finally:
        if p.poll() is None and killed_at is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert killed_at is not None, "the search ended before it could be killed midway"
    assert not (run / "result.json").exists()
    before = {k: v for k, v in _evals(run).items() if v["status"] == "done"}
    r = _cli("search", "--resume", str(run))
    assert r.returncode == 0, r.stdout + r.stderr
    after, ref = _evals(run), _evals(unbroken)
    # nothing finished before the kill ran again
    for k in before:
        assert after[k]["ex"] == 1, k
    # the same evaluations with the same results as the unbroken run
    assert set(after) == set(ref)
    for k in ref:
        assert after[k]["status"] == ref[k]["status"] == "done"
        assert after[k]["result"]["fixed_iou"] == ref[k]["result"]["fixed_iou"], k
        assert after[k]["ie"] == ref[k]["ie"]
    a, b = _result(run), _result(unbroken)
    assert a["best"]["design_key"] == b["best"]["design_key"]
    assert a["best"]["iou_fixed_point"] == b["best"]["iou_fixed_point"]
    assert a["charged_image_epochs"] == b["charged_image_epochs"]
    assert (run / "report" / "report.html").is_file()


@pytest.mark.slow
def test_three_strategies_share_one_budget_unit(data, unbroken, tmp_path):
    charged = {"scd": _result(unbroken)["charged_image_epochs"]}
    for st in ("random", "topdown"):
        run = tmp_path / st
        r = _cli("search", "--data", str(data), "--out", str(run), "--strategy", st, *TINY)
        assert r.returncode == 0, r.stdout + r.stderr
        res = _result(run)
        ev = _evals(run)
        spent = sum(v["ie"] for k, v in ev.items() if not k.startswith("final-"))
        assert res["charged_image_epochs"] == spent <= 80
        assert res["strategy"] == st and res["best"]["meets_target"]
        charged[st] = spent
    ev = _evals(unbroken)
    # every training is charged images x epochs actually trained
    for k, v in ev.items():
        assert v["ie"] == v["result"]["images"] * v["result"]["epochs"]
    assert all(0 < c <= 80 for c in charged.values())


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.slow
def test_ray_executor_gives_the_same_result(data, unbroken, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install '.[ray]')")
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", "--port", str(port),
                             "--num-cpus", "2", "--include-dashboard=false",
                             "--disable-usage-stats"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    try:
        run = tmp_path / "ray"
        addr = f"127.0.0.1:{port}"
        deadline = time.time() + 60
        r = None
        while time.time() < deadline:
            r = _cli("search", "--data", str(data), "--out", str(run), *TINY,
                     "--executor", "ray", "--address", addr)
            if r.returncode == 0 or "cannot reach the Ray cluster" not in r.stderr:
                break
            time.sleep(2)
        assert r is not None and r.returncode == 0, r.stdout + r.stderr
        a, b = _result(run), _result(unbroken)
        assert a["best"]["design_key"] == b["best"]["design_key"]
        assert a["best"]["iou_fixed_point"] == b["best"]["iou_fixed_point"]
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
