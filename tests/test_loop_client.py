"""The host side against real services: SIGKILL mid-job and restart, a farm with a dead
board, a board that disappears, the dashboard drawing live samples in headless Chromium,
and the calibration's corrections."""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from pynq_codesign.design import Design, load_design
from tests.helpers import random_package
from tests.loop_helpers import Service, env_ok, free_port

needs_service = pytest.mark.skipif(not env_ok(), reason="flask/waitress not installed")


def _medium_design() -> Design:
    d = load_design("dnn-a").to_dict()
    d["network"]["input"].update(height=48, width=96)
    d["name"] = "medium"
    return Design.from_dict(d)


@needs_service
@pytest.mark.slow
def test_sigkill_mid_job_then_restart_client_carries_on(tmp_path):
    from host_search.client import BoardClient
    port = free_port()
    s = Service(tmp_path / "data", tmp_path / "tok", port=port).start()
    pkg = random_package(tmp_path / "pkg", _medium_design()).root
    c = BoardClient(s.url, token_file=s.token_file, timeout=60)
    did = c.upload(pkg)
    done_job = c.bench(did, frames=2, warmup=0)
    first = c.wait(done_job, timeout=60)
    job = c.bench(did, frames=150, warmup=0)
    result: dict = {}
    waiter = threading.Thread(target=lambda: result.update(rec=c.wait(job, timeout=240)),
                              daemon=True)
    waiter.start()
    end = time.monotonic() + 60
    while c.job(job)["state"] != "running" and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(0.3)
    assert c.job(job)["state"] == "running"
    s.kill("KILL")                                  # mid-job, no clean-up at all
    time.sleep(1.0)
    s2 = Service(tmp_path / "data", tmp_path / "tok", port=port).start()
    try:
        waiter.join(240)
        assert "rec" in result, "the client did not carry on after the restart"
        assert result["rec"].source == "simulated" and result["rec"].extra["frames"] == 150
        j = c.job(job)
        assert j["state"] == "done" and j["requeued"] == 1
        again = c.job(done_job)                     # finished results survive the restart
        assert again["state"] == "done" and again["record"]["fps"] == first.fps
        assert did in [d["id"] for d in c._request("GET", "/api/v1/designs")["designs"]]
    finally:
        s2.kill("TERM")


@needs_service
def test_farm_source_with_a_dead_board_and_a_vanishing_board(tmp_path):
    from host_search.client import BoardClient, BoardFarmSource, BoardUnavailable
    s = Service(tmp_path / "data", tmp_path / "tok").start()
    try:
        dead = f"http://127.0.0.1:{free_port()}"
        farm = BoardFarmSource([s.url, dead], token_file=s.token_file, frames=3, warmup=0,
                               timeout=3)
        assert farm.name == "farm:2 boards"
        a = load_design("dnn-a").to_dict()
        a["network"]["input"].update(height=16, width=24)
        designs = [Design.from_dict({**a, "name": f"t{i}"}) for i in range(2)]
        designs[1] = Design.from_dict({**a, "name": "t1", "overlay": {
            **a["overlay"], "clock_mhz": 125.0}})
        assert farm.can_measure(designs[0])
        recs = farm.measure(designs)
        assert all(r is not None and r.source == "simulated" for r in recs)
        assert {r.extra["board"] for r in recs} == {s.url}
    finally:
        s.kill("KILL")
    c = BoardClient(s.url, token_file=s.token_file, timeout=2)
    t0 = time.monotonic()
    with pytest.raises(BoardUnavailable, match="did not answer"):
        c.info()
    assert time.monotonic() - t0 < 10


@needs_service
def test_stream_client_reconnects_across_a_restart_without_double_counting(tmp_path):
    from host_search.client import BoardClient
    port = free_port()
    s = Service(tmp_path / "data", tmp_path / "tok", port=port).start()
    pkg = random_package(tmp_path / "pkg").root
    c = BoardClient(s.url, token_file=s.token_file, timeout=30)
    did = c.upload(pkg)
    stop = threading.Event()
    events: list = []

    def follow():
        for ev in c.stream(kinds=("frame",), stop=stop):
            events.append(ev)
    th = threading.Thread(target=follow, daemon=True)
    th.start()
    time.sleep(0.5)
    j1 = c.bench(did, frames=5, warmup=0)
    c.wait(j1, timeout=60)
    time.sleep(1.0)
    s.kill("KILL")
    s2 = Service(tmp_path / "data", tmp_path / "tok", port=port).start()
    try:
        j2 = c.bench(did, frames=5, warmup=0)
        c.wait(j2, timeout=60)
        end = time.monotonic() + 20
        while sum(e.data["job"] == j2 for e in events) < 5 and time.monotonic() < end:
            time.sleep(0.1)
        stop.set()
        ids = [e.id for e in events]
        assert len(ids) == len(set(ids))
        for j in (j1, j2):
            assert [e.data["frame"] for e in events if e.data["job"] == j] == list(range(5))
        assert len({e.boot for e in events}) == 2
    finally:
        s2.kill("TERM")


def _chromium() -> tuple[str, str] | None:
    b = shutil.which("chromium") or shutil.which("chromium-browser")
    d = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None
    return (b, d) if b and d else None


@needs_service
@pytest.mark.skipif(_chromium() is None, reason="chromium, chromedriver or selenium missing "
                    "(scripts/install-system-deps; pip install '.[dev]')")
def test_dashboard_draws_live_samples_in_headless_chromium(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService

    from host_search.client import BoardClient
    browser, driver_bin = _chromium()
    s = Service(tmp_path / "data", tmp_path / "tok").start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
              f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=ChromeService(driver_bin), options=opts)
    try:
        drv.set_page_load_timeout(30)
        drv.get(s.url + "/")
        end = time.monotonic() + 15
        while drv.execute_script("return document.getElementById('stream-state')"
                                 ".textContent") != "live" and time.monotonic() < end:
            time.sleep(0.2)
        c = BoardClient(s.url, token_file=s.token_file)
        job = c.bench(c.upload(random_package(tmp_path / "pkg").root), frames=10, warmup=0)
        c.wait(job, timeout=60)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            st = drv.execute_script(
                "const d = window.dashboard; return d && [d.frames, d.power, "
                "d.charts.latency.drawn, d.charts.fps.drawn, d.charts.power.drawn];")
            if st and st[0] >= 10 and st[2] >= 10 and st[4] >= 1:
                break
            time.sleep(0.2)
        assert st[0] == 10 and st[2] == 10 and st[3] == 10 and st[1] >= 1 and st[4] >= 1
        # the canvas holds drawn pixels of the series colour, not only axes
        coloured = drv.execute_script("""
            const c = document.getElementById('chart-latency');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
              if (d[i + 3] > 0 && d[i + 2] > 150 && d[i] < 100) n++;
            }
            return n;""")
        assert coloured > 20
        assert drv.find_element("id", "source").text == "simulated"
        assert job in drv.find_element("id", "jobs").text
        logs = [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
        assert not logs, logs
    finally:
        drv.quit()
        s.kill("TERM")


def test_calibration_corrects_and_journals_and_chooses(tmp_path):
    """Calibrated estimates of simulated measurements beat the raw model on designs not
    measured, with an uncertainty, and every refit says its error before and after."""
    import numpy as np

    from host_search.calibrate import CalibratedEstimator, features_of
    from host_search.measure import SimBoardSource
    src = SimBoardSource(1, frames=4)
    base = load_design("dnn-a").to_dict()
    designs = []
    for i, (h, w, ch, clk) in enumerate([(32, 64, 48, 100.0), (48, 96, 32, 125.0),
                                          (40, 80, 64, 100.0), (56, 112, 48, 142.86),
                                          (64, 128, 32, 100.0), (48, 64, 64, 125.0)]):
        d = {**base, "name": f"c{i}"}
        d["network"] = {**base["network"], "input": {"channels": 3, "height": h, "width": w}}
        d["overlay"] = {**base["overlay"], "clock_mhz": clk}
        bundles = [dict(b) for b in base["network"]["bundles"]]
        bundles[0] = {"layers": [dict(x) for x in bundles[0]["layers"]]}
        bundles[0]["layers"][1]["out_channels"] = ch
        d["network"]["bundles"] = bundles
        designs.append(Design.from_dict(d))
    recs = src.measure(designs)
    est = CalibratedEstimator(frames=4)
    for d, r in zip(designs[:4], recs[:4]):
        est.observe(d, None, r)
    entry = est.journal_entry()
    assert {"fps_error_before", "fps_error_after", "corrections", "fps_error_raw"} <= set(entry)
    # a joint fit need not improve every single design, but all measured ones together
    assert entry["fps_mape_calibrated_all"] < 0.5 * entry["fps_mape_raw_all"]
    assert abs(entry["fps_error_after"]) < 0.1
    held = designs[4:]
    meas = np.array([r.fps for r in recs[4:]])
    raw = np.array([features_of([d]).raw.fps[0] for d in held])
    pred = np.array([est.predict(d).fps[0] for d in held])
    sig = np.array([est.predict(d).sigma_fps[0] for d in held])
    assert np.mean(np.abs(pred - meas) / meas) < 0.5 * np.mean(np.abs(raw - meas) / meas)
    assert np.all(sig > 0)
    scr = est.screen(held[:1])
    assert scr.label == "estimated" and scr.sigma_fps[0] > 0
    # choose(): the point nearest the target (in sigmas) first
    from types import SimpleNamespace
    fake = SimpleNamespace(fps=np.array([10.0, 20.0, 30.0]), sigma_fps=np.array([1.0] * 3),
                           power_w=np.array([2.0] * 3), sigma_power=np.array([0.1] * 3))
    assert est.choose(fake, 2, target_fps=29.0) == [2, 1]
    i, chance = est.most_uncertain(held, target_fps=float(pred[1]))
    assert i == 1 and chance == pytest.approx(0.5)
    i, chance = est.most_uncertain(held, target_fps=1e6)
    assert chance < 1e-6                                  # nothing worth measuring


@needs_service
@pytest.mark.slow
def test_search_with_a_board_service_end_to_end(tmp_path):
    """`codesign board serve --sim` + `codesign search --board URL`: candidates measured
    on the service, labelled simulated in the journal, calibrations journalled and shown;
    the service SIGKILLed mid-job and restarted, the search carries on, journal intact."""
    import json
    import sqlite3
    import subprocess
    import sys
    import urllib.request
    port = free_port()
    s = Service(tmp_path / "sdata", tmp_path / "tok", port=port).start()
    s2 = None
    try:
        cli = [sys.executable, "-m", "pynq_codesign.cli"]
        r = subprocess.run(cli + ["data", "synth", "--out", str(tmp_path / "d"), "--n", "12",
                                  "--seed", "5"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        run = tmp_path / "run"
        search = subprocess.Popen(cli + [
            "search", "--data", str(tmp_path / "d"), "--out", str(run), "--bundle-layers", "1",
            "--input", "32x72", "--cand-epochs", "1", "--cand-qat-epochs", "1",
            "--final-epochs", "1", "--final-qat-epochs", "1", "--target-fps", "30",
            "--budget", "80", "--workers", "2", "--board", s.url, "--token-file",
            str(s.token_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def jobs() -> list:
            try:
                with urllib.request.urlopen(s.url + "/api/v1/jobs", timeout=5) as r:
                    return json.loads(r.read())["jobs"]
            except OSError:
                return []
        end = time.monotonic() + 600
        while True:
            flight = [j["id"] for j in jobs() if j["state"] in ("queued", "running")]
            if flight:
                break
            assert search.poll() is None and time.monotonic() < end, "no job reached the board"
            time.sleep(0.05)
        s.kill("KILL")                                   # mid-job
        time.sleep(2.0)
        s2 = Service(tmp_path / "sdata", tmp_path / "tok", port=port).start()
        out, err = search.communicate(timeout=900)
        assert search.returncode == 0, err[-2000:]
        con = sqlite3.connect(run / "journal.sqlite")
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        meas = [json.loads(x[0]) for x in con.execute("SELECT record FROM measurements")]
        assert meas and all(m["source"] == "simulated" and m["power_source"] == "simulated"
                            for m in meas)
        cals = [json.loads(x[0]) for x in con.execute("SELECT data FROM calibrations")]
        assert cals and all("fps_error_after" in c and "corrections" in c for c in cals)
        assert "before and after calibration" in (run / "report" / "report.html").read_text()
        assert {j["id"]: j["state"] for j in jobs()}[flight[0]] == "done"   # ran again
    finally:
        s.kill("KILL")
        if s2 is not None:
            s2.kill("TERM")
