"""The demo (host_search.demo): its service process, its labels, its bad input; the whole
quick path end to end is a slow test (``make test-all``; the G-demo acceptance runs it too)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("flask")
pytest.importorskip("waitress")

from host_search import demo  # noqa: E402
from host_search.processes import BoardService  # noqa: E402
from pynq_codesign.designs import published  # noqa: E402
from pynq_codesign.qos import BundleQoS, QoSRecord  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


def test_service_starts_answers_and_is_stopped_even_on_error(tmp_path):
    from host_search.client import BoardClient
    (tmp_path / "board").mkdir()
    svc = BoardService(tmp_path / "board", tmp_path / "t.token", tmp_path / "s.log", 5)
    with pytest.raises(RuntimeError, match="boom"):
        with svc:
            assert svc.url.startswith("http://127.0.0.1:")
            info = BoardClient(svc.url, token_file=tmp_path / "t.token").info()
            assert info["simulated"] is True and info["source"] == "simulated"
            pid = svc.proc.pid
            raise RuntimeError("boom")
    assert svc.proc.poll() is not None and not _alive(pid)
    assert (tmp_path / "t.token").stat().st_mode & 0o077 == 0
    assert "serving on http://127.0.0.1:" in (tmp_path / "s.log").read_text()


def test_service_that_cannot_start_is_one_clear_error(tmp_path):
    svc = BoardService(tmp_path / "no-such" / "deeper", tmp_path / "no-dir" / "t.token",
                            tmp_path / "s.log", 0)
    with pytest.raises(Exception) as e:     # the token's folder is missing: refused at once
        with svc:
            pass
    assert svc.proc is None or svc.proc.poll() is not None
    assert "t.token" in str(e.value) or "board service" in str(e.value)


def _rec(source, fps, power, lat=10.0):
    return QoSRecord(source=source, fps=fps, latency_ms=lat, latency_ms_p50=lat,
                     latency_ms_p99=lat * 1.5, power_w=power,
                     bundles=[BundleQoS(0, 1.0, "b0"), BundleQoS(1, 2.0, "b1")])


def test_every_figure_of_the_table_is_labelled_and_iou_says_it_is_not_the_contests():
    e = _rec("estimated", 50.0, 2.0)
    e.dsp, e.bram18 = 100, 60
    dep = demo.Deployed(Path("pkg"), _rec("simulated", 20.0, 2.5), _rec("simulated", 40.0, 2.6),
                        e, [10.0, 11.0], [2.5])
    rows = demo.summary_rows(dep, {"mean_iou": 0.61, "images": 8}, 3)
    for fig, val, src in rows:
        assert any(w in src for w in ("simulated", "estimated", "measured")), (fig, src)
    iou_row = [r for r in rows if r[0].startswith("IoU")][0]
    assert iou_row[1] == "0.610" and "not comparable" in iou_row[2]
    text = demo.format_rows(rows)
    assert "FPS" in text and "images per joule" in text and "DSP / BRAM18" in text


def test_reproduction_table_shows_published_figures_but_no_iou_beside_ours():
    rows = [demo.ReferenceRow("dnn-c", _rec("estimated", 28.0, 3.0),
                              _rec("simulated", 20.0, 3.0), published("dnn-c")),
            demo.ReferenceRow("tgiif", None, None, published("tgiif"))]
    text = demo.reproduction_text(rows)
    assert "published" in text and "17.3" in text and "11.96" in text
    assert "0.686" not in text and "0.624" not in text      # contest IoU not shown


def test_bad_out_is_one_line_exit_2(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = subprocess.run([sys.executable, "-m", "pynq_codesign.cli", "demo", "--quick",
                        "--out", str(f)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("codesign: error:") and len(r.stderr.splitlines()) == 1
    assert f.read_text() == "x"


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path):
    out = tmp_path / "d"
    before = set(subprocess.run(["pgrep", "-f", "board serve"], capture_output=True,
                                text=True).stdout.split())
    r = subprocess.run([sys.executable, "-m", "pynq_codesign.cli", "demo", "--quick",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "published" in r.stdout and "simulated" in r.stdout and "estimated" in r.stdout
    assert (out / "report.html").is_file() and (out / "search" / "journal.sqlite").is_file()
    b = json.loads((out / "bench.json").read_text())
    assert b["source"] == "simulated" and "iou" in b and b["resources_source"] == "estimated"
    after = set(subprocess.run(["pgrep", "-f", "board serve"], capture_output=True,
                               text=True).stdout.split())
    assert not (after - before), "a board service was left running"
