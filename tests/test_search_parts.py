"""Co-search parts without training: bundles, accelerator fitting, QoR grouping, journal,
executor fault handling, bad input of `codesign search`."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from host_search.bundles import enumerate_bundles, estimate_bundles
from host_search.journal import Journal, JournalError
from host_search.measure import RatioEstimator, RawEstimator
from host_search.qor import keep_top, select_prototypes
from host_search.space import NetKnobs, Targets, realise
from pynq_codesign.design import check_fits
from pynq_codesign.devices import load_device

ROOT = Path(__file__).resolve().parents[1]
CODESIGN = [sys.executable, "-m", "pynq_codesign.cli"]


def test_enumeration_is_deduplicated_and_explains_drops():
    bs = enumerate_bundles(2)
    live = [b for b in bs if not b.dropped]
    keys = [b.key for b in live]
    assert len(keys) == len(set(keys))
    assert "DW3-PW1+pool" in keys and "C3/s2" in keys
    reasons = {b.key: b.dropped for b in bs if b.dropped}
    assert "channel-changing" in reasons["DW3+pool"]
    assert "stride" in reasons["PW1/s2"]
    # an expansion on a bundle with one channel-changing layer is not a new bundle
    assert not any("x" in k.split("-")[0] and k.startswith("DW3x") for k in keys)


def test_bundle_estimates_fit_the_device():
    bs = [b for b in enumerate_bundles(2) if b.key in ("DW3-PW1+pool", "C3-C3+pool")]
    estimate_bundles(bs, Targets(30.0), RawEstimator())
    dev = load_device("pynq-z1").budget()
    for b in bs:
        if b.dropped:
            continue
        e = b.estimate
        assert e["dsp"] <= dev["dsp"] and e["bram18"] <= dev["bram18"]
        assert e["max_fps"] >= e["fps"] > 0 and e["source"] == "estimated"


def test_accelerator_follows_the_network():
    t = {b.key: b.template for b in enumerate_bundles(2)}
    small = NetKnobs("DW3-PW1+pool", 4, 16, 2.0, (0, 1, 2), 8, 8, 0.5)
    big = NetKnobs("DW3-PW1+pool", 4, 32, 2.0, (0, 1, 2), 11, 8, 1.0)
    targets = Targets(30.0)
    cs = realise(t, small, targets, RawEstimator())
    cb = realise(t, big, targets, RawEstimator())
    for c in (cs, cb):
        assert check_fits(c.design.network, c.design.overlay) == []
        assert c.accel.screened > 100 and c.accel.fitting > 0
    # the bigger network needs more of the device to get close to the target
    assert cb.accel.dsp >= cs.accel.dsp
    assert cs.accel.meets and cs.accel.fps >= 30.0


def test_ratio_estimator_scales_by_observations():
    from host_search.qos_model import DesignBatch, estimate
    from pynq_codesign.design import load_design
    from pynq_codesign.qos import QoSRecord
    d = load_design("dnn-a")
    est = RatioEstimator()
    raw = est.screen(DesignBatch.from_designs([d])).fps[0]
    e = estimate(d)
    est.observe(d, e, QoSRecord("simulated", fps=e.fps * 0.5, power_w=e.power_w))
    assert est.screen([d]).fps[0] == pytest.approx(raw * 0.5)


def test_qor_groups_and_drop_reasons():
    bs = [b for b in enumerate_bundles(2) if not b.dropped][:10]
    estimate_bundles(bs, Targets(30.0), RawEstimator())
    live = [b for b in bs if not b.dropped]
    sel = select_prototypes(live, 3, 30.0, None)
    assert len(sel.chosen) == min(3, len(sel.groups))
    dropped = [b for b in live if b.dropped]
    assert all(b.dropped for b in dropped)
    ious = {b.key: 0.1 * i for i, b in enumerate(sel.chosen)}
    kept = keep_top(sel.chosen, sel.groups, ious, 1, {})
    assert kept and all(not b.dropped for b in kept)


def test_journal_refuses_other_searches_and_damage(tmp_path):
    j = Journal.create(tmp_path, {"a": 1})
    j.add_step("scd", 0, {"x": 1})
    j.add_step("scd", 0, {"x": 2})          # a replay does not write a step twice
    assert len(j.steps()) == 1
    j.close()
    with pytest.raises(JournalError, match="another search"):
        Journal.create(tmp_path, {"a": 2})
    assert Journal.open(tmp_path).config() == {"a": 1}
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "journal.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(JournalError):
        Journal.open(bad)
    other = tmp_path / "other"
    other.mkdir()
    sqlite3.connect(other / "journal.sqlite").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(JournalError, match="not a pynq-codesign"):
        Journal.open(other)


def test_a_dying_worker_is_retried_then_recorded_failed(tmp_path, monkeypatch):
    from host_search.executors import LocalExecutor, TrainTask
    monkeypatch.setenv("PYNQ_CODESIGN_SEARCH_FAULT", "die:cand:9")
    ex = LocalExecutor(1, retries=1)
    seen = []
    try:
        t = TrainTask("k", "cand", {}, str(tmp_path), str(tmp_path / "o"), str(tmp_path), 0,
                      1, 0, True)
        res = ex.run([t], lambda task, r: seen.append(r))
    finally:
        ex.close()
    assert res[0]["status"] == "failed" and "died" in res[0]["error"]
    assert res[0]["attempts"] == 2 and seen == res


def _cli(*args, cwd=None):
    return subprocess.run(CODESIGN + list(args), capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data") / "d"
    r = _cli("data", "synth", "--out", str(d), "--n", "12", "--seed", "5")
    assert r.returncode == 0, r.stderr
    return d


def _one_line_error(r):
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("codesign: error:"), r.stderr
    assert "Traceback" not in r.stderr


def test_bad_input_one_line_exit_2(tiny_data, tmp_path):
    base = ["search", "--data", str(tiny_data), "--bundle-layers", "1", "--input", "40x90"]
    _one_line_error(_cli(*base, "--target-fps", "30", "--budget", "0",
                         "--out", str(tmp_path / "z")))
    r = _cli(*base, "--target-fps", "100000", "--budget", "500", "--out", str(tmp_path / "u"))
    _one_line_error(r)
    assert "lower --target-fps" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(_cli("search", "--data", str(empty), "--target-fps", "30", "--budget",
                         "500", "--out", str(tmp_path / "e")))
    # a journal of another search: refused, kept byte for byte
    run = tmp_path / "u"
    before = (run / "journal.sqlite").read_bytes()
    r = _cli(*base, "--target-fps", "20", "--budget", "500", "--out", str(run))
    _one_line_error(r)
    assert "another search" in r.stderr
    assert (run / "journal.sqlite").read_bytes() == before
    # a damaged journal: refused, kept
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "journal.sqlite").write_bytes(b"garbage" * 1000)
    _one_line_error(_cli("search", "--resume", str(bad)))
    assert (bad / "journal.sqlite").read_bytes() == b"garbage" * 1000
    _one_line_error(_cli("search", "report", str(bad)))


def test_fast_trainings_take_smaller_batches():
    from host_search.executors import FAST_BATCH, batch_size_for
    assert batch_size_for(180) == 8 and batch_size_for(180, fast=True) == FAST_BATCH < 8
    assert batch_size_for(40) == 5 and batch_size_for(10) == 4       # >= 8 steps, down to 4
    assert batch_size_for(10, fast=True) == min(4, FAST_BATCH)
