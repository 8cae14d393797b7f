"""The benchmark: the QoS record on the simulated board, seeds, IoU from labels."""
import json

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from pynq_codesign.bench import run_bench, to_record  # noqa: E402
from pynq_codesign.cli import main as cli  # noqa: E402
from pynq_codesign.driver import Driver  # noqa: E402
from pynq_codesign.platform.sim.board import SimPlatform  # noqa: E402
from pynq_codesign.results_xml import Annotation, write_xml  # noqa: E402
from tests.helpers import random_package  # noqa: E402

KEYS = ["fps", "latency_ms", "latency_ms_p50", "latency_ms_p99", "power_w",
        "energy_mj_per_frame", "iou", "bundles", "source", "power_source"]


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    return random_package(tmp_path_factory.mktemp("bench") / "pkg", lively=True)


def _bench_json(pkg, capsys, *extra):
    assert cli(["bench", str(pkg.root), "--sim", "--frames", "6", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_is_the_qos_record(pkg, capsys):
    d = _bench_json(pkg, capsys)
    assert all(k in d for k in KEYS)
    # the simulated PYNQ-Z1 has no sensors but a simulated external meter on its supply
    assert d["source"] == "simulated" and d["power_source"] == "simulated"
    assert "meter" in d["power_detail"]
    assert d["iou"] is None and "iou_note" in d
    assert d["fps"] > 0 and d["latency_ms_p99"] >= d["latency_ms_p50"] > 0
    assert d["energy_mj_per_frame"] == pytest.approx(1000 * d["power_w"] / d["fps"])
    assert len(d["bundles"]) == len(pkg.design.network.bundles)
    assert set(d["time_split_ms"]) == {"preprocess", "transfers", "compute", "decode"}
    # the accelerator's share is the simulated board's: per-bundle times add up to it
    acc = d["time_split_ms"]["transfers"] + d["time_split_ms"]["compute"]
    assert sum(b["latency_ms"] for b in d["bundles"]) == pytest.approx(acc, rel=1e-6)


def test_two_boards_differ(pkg, capsys):
    a = _bench_json(pkg, capsys, "--board-seed", "1")
    b = _bench_json(pkg, capsys, "--board-seed", "2")
    assert a["fps"] != b["fps"]
    ta = sum(x["latency_ms"] for x in a["bundles"])
    tb = sum(x["latency_ms"] for x in b["bundles"])
    assert ta != pytest.approx(tb, rel=1e-3)    # the accelerator itself differs


def test_iou_from_labels(pkg, tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        img = cv2.GaussianBlur(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), (9, 9), 3)
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), img)
        write_xml(tmp_path / f"{i}.xml", Annotation(f"{i}.jpg", 640, 360, (100, 100, 200, 160)))
    with Driver(SimPlatform(0), pkg) as drv:
        run = run_bench(drv, frames=3, warmup=1, images=str(tmp_path))
        rec = to_record(drv, run)
    assert rec.iou is not None and 0.0 <= rec.iou <= 1.0
    assert rec.extra["iou_frames"] == 3


def test_power_rails_on_a_z1_is_refused(pkg, capsys):
    assert cli(["bench", str(pkg.root), "--sim", "--frames", "2", "--power", "rails"]) == 2
    assert "no power sensors" in capsys.readouterr().err


def test_bad_frames(pkg, capsys):
    assert cli(["bench", str(pkg.root), "--sim", "--frames", "0"]) == 2
    assert "--frames" in capsys.readouterr().err
