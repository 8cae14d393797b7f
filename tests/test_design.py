"""The design schema: reference designs, exact MACs/params, validation, fits, passes."""
import json
from dataclasses import replace

import pytest

from pynq_codesign.design import (
    Design,
    DesignError,
    Stage,
    check_fits,
    load_design,
    plan_passes,
    size_overlay,
)
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
    (lambda d: d["network"]["decode"].update(centre_range=0.2), "network.decode.centre_range"),
    (lambda d: d["network"]["decode"].update(centre_range="2"), "network.decode.centre_range"),
])
def test_validation_names_field(mutate, field):
    e = _bad(mutate)
    assert e.field == field, str(e)
    assert e.reason


def test_decode_centre_range_round_trips_and_defaults_to_the_cell():
    d = load_design("dnn-a").to_dict()
    assert "centre_range" not in d["network"]["decode"]        # 0.5: files stay as they were
    assert Design.from_dict(d).network.decode.centre_range == 0.5
    d["network"]["decode"]["centre_range"] = 1.5
    back = Design.from_dict(d)
    assert back.network.decode.centre_range == 1.5
    assert back.to_dict()["network"]["decode"]["centre_range"] == 1.5
    dec = back.network.decode
    for off in (-1.0, 0.25, 0.5, 2.0):                  # centre_sigmoid inverts centre_offset
        assert abs(dec.centre_offset(dec.centre_sigmoid(off)) - off) < 1e-12


def test_fits_names_what_does_not_fit():
    d = load_design("dnn-c")
    small = replace(d.overlay, max_channels=256, max_layer_weights=100000)
    problems = check_fits(d.network, small)
    assert any("max_channels" in p and "512" in p for p in problems)
    assert any("max_layer_weights" in p and "196608" in p for p in problems)
    no_pool = replace(d.overlay, stages=(Stage("dw", 4), Stage("pw", 8, 8)))
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
    ov = size_overlay(a.network, stages=a.overlay.stages, weight_bits=16, feature_bits=8,
                      band_rows=a.overlay.band_rows)
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


def test_per_stage_capacities_are_checked():
    d = load_design("dnn-c")
    pw = d.overlay.stages[1]
    assert pw.kind == "pw" and pw.weight_words == 1536 and pw.row_elems == 45 * 512
    tight = replace(d.overlay, stages=(
        d.overlay.stages[0], Stage("pw", 16, 8, row_elems=17280, weight_words=1000),
        d.overlay.stages[2]))
    problems = check_fits(d.network, tight)
    assert any("row_elems 17280" in p and "23040" in p for p in problems)
    assert any("weight_words 1000" in p and "1536" in p for p in problems)


def test_unsigned_format_needs_a_spare_datapath_bit():
    from pynq_codesign.fixedpoint import FixedFormat
    d = load_design("dnn-a")
    n = len(d.network.layers)
    outs = [FixedFormat(8, 4, signed=False) if i == 1 else None for i in range(n)]
    net = d.network.with_formats([None] * n, outs)
    assert any("unsigned 8-bit outputs" in p for p in check_fits(net, d.overlay))
    outs[1] = FixedFormat(7, 3, signed=False)
    assert check_fits(d.network.with_formats([None] * n, outs), d.overlay) == []


def test_reference_designs_map_every_layer_to_a_sized_stage():
    for name in ("dnn-a", "dnn-b", "dnn-c"):
        ov = load_design(name).overlay
        assert ov.band_rows == 2
        assert all(st.row_elems for st in ov.stages)
