"""The QoS record: labels, round trip, derived energy."""
import json

import pytest

from pynq_codesign.qos import BundleQoS, QoSError, QoSRecord


def test_round_trip_and_energy():
    r = QoSRecord("simulated", fps=20.0, latency_ms=50.0, power_w=2.5, power_source="estimated",
                  bundles=[BundleQoS(0, 10.0, macs=5)], extra={"iou_note": "x"})
    assert r.energy_mj_per_frame == pytest.approx(125.0)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["source"] == "simulated" and d["power_source"] == "estimated"
    assert d["bundles"][0]["latency_ms"] == 10.0
    r2 = QoSRecord.from_dict(d)
    assert r2.to_dict() == d


@pytest.mark.parametrize("kw", [{"source": "guessed"},
                                {"source": "measured", "power_source": "vibes"}])
def test_bad_labels_refused(kw):
    with pytest.raises(QoSError):
        QoSRecord(**kw)


def test_power_source_defaults_to_source():
    assert QoSRecord("measured", power_w=3.0).power_source == "measured"


def test_extra_cannot_shadow_fields():
    with pytest.raises(QoSError, match="shadows"):
        QoSRecord("estimated", fps=1.0, extra={"fps": 2.0}).to_dict()
