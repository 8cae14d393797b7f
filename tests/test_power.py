"""Power sources: the model estimate, a CSV meter log, refusals with what to do."""
import time

import pytest

from pynq_codesign.devices import load_device
from pynq_codesign.power import (Activity, CsvMeter, PowerError, estimate_power,
                                 open_recorder)
from pynq_codesign.platform.sim.board import SimPlatform


def test_estimate_grows_with_activity_and_is_labelled():
    dev = load_device("pynq-z1")
    idle = estimate_power(dev, Activity(0.0, 0.0, 0.0))
    busy = estimate_power(dev, Activity(1.0, 2e9, 5e8))
    assert idle.source == busy.source == "estimated"
    assert idle.watts == pytest.approx(dev.static_board_w + dev.pl_static_w)
    assert busy.watts > idle.watts


def test_csv_meter_keeps_the_samples_of_the_run(tmp_path):
    log = tmp_path / "meter.csv"
    t = time.time()
    log.write_text(f"time,watts\n{t - 100:.3f},9.0\n")
    m = CsvMeter(log)
    m.start()
    with open(log, "a") as f:
        f.write(f"{time.time():.3f},2.0\n{time.time():.3f},4.0\n")
    r = m.stop()
    assert r.watts == pytest.approx(3.0) and r.source == "measured"


def test_csv_meter_without_samples_in_the_run(tmp_path):
    log = tmp_path / "meter.csv"
    log.write_text("0,5.0\n")
    m = CsvMeter(log)
    m.start()
    with pytest.raises(PowerError, match="no readings"):
        m.stop()


def test_sources_refused_with_a_reason(tmp_path):
    z1 = load_device("pynq-z1")
    sim = SimPlatform(0)
    assert open_recorder("auto", sim, z1) is None        # -> model estimate
    assert open_recorder("model", sim, z1) is None
    with pytest.raises(PowerError, match="no power sensors"):
        open_recorder("rails", sim, z1)
    with pytest.raises(PowerError, match="simulated board"):
        open_recorder(f"meter:{tmp_path}/x.csv", sim, z1)
    with pytest.raises(PowerError, match="unknown power source"):
        open_recorder("bogus", sim, z1)


def test_simulated_sensors_on_a_board_that_has_them():
    """A simulated ZCU104 reads its own (hidden) power; a simulated Z1 has no sensors but
    an external meter (hidden static/dynamic power per seed, noise, a sample rate)."""
    from pynq_codesign.design import Design, load_design
    from tests.helpers import random_package
    import tempfile
    d = load_design("dnn-a").to_dict()
    d["network"]["input"].update(height=16, width=24)
    d["overlay"]["device"] = "zcu104"
    pkg = random_package(tempfile.mkdtemp() + "/p", Design.from_dict(d))
    a, b = SimPlatform(1), SimPlatform(2)
    act = Activity(0.5, 1e9, 1e8, 0.5)
    for pf in (a, b):
        pf.load(pkg)
    assert a.sensor_power_w(act) != b.sensor_power_w(act)
    z1, z2 = SimPlatform(1), SimPlatform(2)
    q = random_package(tempfile.mkdtemp() + "/q")
    z1.load(q)
    z2.load(q)
    w1, w2 = z1.sensor_power_w(act, 2.0), z2.sensor_power_w(act, 2.0)
    assert w1 != w2 and 1.0 < w1 < 6.0 and 1.0 < w2 < 6.0
    assert "meter" in z1.sensor_detail()
    true = z1.power_meter.true_power_w(act)
    assert abs(w1 - true) / true < 0.02              # the mean of many noisy samples
    one = z1.power_meter.samples(act, 0.0, 0.0)
    assert len(one) == 1                              # a meter always shows a reading
