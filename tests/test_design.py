"""The design schema: reference designs, exact MACs/params, validation, fits, passes."""
import json

import pytest

from pynq_codesign.design import (Design, DesignError, Overlay, Stage, check_fits,
                                  load_design, plan_passes, size_overlay)
from pynq_codesign.designs import published, reference_names


def test_reference_designs_load_and_fit():
    assert reference_names() == ["dnn-a", "dnn-b", "dnn-c"]
    for n in reference_names():
        d = load_design(n)
        assert check_fits(d.network, d.overlay) == []
        assert Design.from_dict(json.loads(d.to_json())) == d


def test_dnn_a_macs_and_params_by_hand():
    # DNN-A at 3x160x360: DW3 then PW1 per bundle, 2x2 pools after bundles 0-2.
    hw = [(160, 360), (80, 180), (40, 90), (20, 45)]
    chans = [(3, 48), (48, 96), (96, 192), (192, 384)]
    macs = params = 0
    for (h, w), (ci, co) in zip(hw, chans):
        macs += 9 * ci * h * w + ci * co * h * w
        params += 9 * ci + ci + ci * co + co
    macs += 384 * 10 * 20 * 45
    params += 384 * 10 + 10
    d = load_design("dnn-a")
    assert d.network.macs() == macs == 223257600
    assert d.network.params() == params


def test_dnn_c_macs():
    assert load_design("dnn-c").network.macs() == 404467200
    assert load_design("dnn-c").network.params() == 305147 + 1965


def test_formats_per_design():
    a, b, c = (load_design(n) for n in ("dnn-a", "dnn-b", "dnn-c"))
    assert (a.overlay.weight_bits, a.overlay.feature_bits) == (16, 8)
    assert (b.overlay.weight_bits, b.overlay.feature_bits) == (16, 16)
    assert (c.overlay.weight_bits, c.overlay.feature_bits) == (11, 8)


def _bad(mutate):
    d = load_design("dnn-a").to_dict()
    mutate(d)
    with pytest.raises(DesignError) as e:
        Design.from_dict(d)
    return e.value


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d["network"]["bundles"][0]["layers"][1].update(out_channels=-4),
     "network.bundles[0].layers[1].out_channels"),
    (lambda d: d["network"]["bundles"][0]["layers"][0].update(type="conv7"),
     "network.bundles[0].layers[0].type"),
    (lambda d: d["overlay"].update(device="pynq-z9"), "overlay.device"),
    (lambda d: d["overlay"].update(weight_bits=40), "overlay.weight_bits"),
    (lambda d: d["network"]["weight_format"].update(bits=1), "network.weight_format.bits"),
    (lambda d: d["network"]["feature_format"].update(bits=12), "network.feature_format.bits"),
    (lambda d: d["network"]["input"].update(height=3), "network.bundles[1].layers[2]"),
    (lambda d: d.pop("overlay"), "overlay"),
    (lambda d: d.update(schema_version=7), "schema_version"),
    (lambda d: d["overlay"].update(clock_mhz=400), "overlay.clock_mhz"),
])
def test_validation_names_field(mutate, field):
    e = _bad(mutate)
    assert e.field == field, str(e)
    assert e.reason


def test_fits_names_what_does_not_fit():
    d = load_design("dnn-c")
    small = Overlay(**{**d.overlay.__dict__, "max_channels": 256, "max_layer_weights": 100000})
    problems = check_fits(d.network, small)
    assert any("max_channels" in p and "512" in p for p in problems)
    assert any("max_layer_weights" in p and "196608" in p for p in problems)
    no_pool = Overlay(**{**d.overlay.__dict__, "stages": (Stage("dw", 4), Stage("pw", 8, 8))})
    assert any("no pool stage" in p for p in check_fits(d.network, no_pool))


def test_passes_cover_layers_in_order():
    d = load_design("dnn-c")
    passes = plan_passes(d.network, d.overlay)
    flat = [i for p in passes for i in p.layers]
    assert flat == list(range(len(d.network.layers)))
    # the last bundle DW PW DW PW PW on a dw-pw-pool engine takes three passes
    assert [p.bundle for p in passes] == [0, 1, 2, 3, 3, 3]
    for p in passes:
        assert list(p.slots) == sorted(p.slots)


def test_hardware_id_depends_on_overlay_only():
    a, b = load_design("dnn-a"), load_design("dnn-b")
    assert a.overlay.hardware_id != b.overlay.hardware_id
    ov = size_overlay(a.network, stages=a.overlay.stages, weight_bits=16, feature_bits=8)
    assert ov.hardware_id == a.overlay.hardware_id


def test_load_design_errors(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(DesignError, match="not valid JSON"):
        load_design(p)
    with pytest.raises(DesignError, match="no such file"):
        load_design(tmp_path / "missing.json")


def test_published_figures_are_labelled():
    recs = published("dnn-c")
    assert recs and all(r.source == "published" for _, r in recs)
