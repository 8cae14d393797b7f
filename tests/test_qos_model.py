"""The analytical QoS model on cases computed by hand.

Latency terms (one band, one bundle, compute- and memory-bound), resources, fit and
over-budget, vectorised == scalar, and plausibility on the reference designs. Every
expectation below is derived in the comments from the model's stated rules
(docs/qos-model.md) and the PYNQ-Z1 profile (DDR3 16 bit x 1050 MT/s, 64-bit stream).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from host_search import binding as bd
from host_search.qos_model import (DesignBatch, ModelConstants, ModelError, estimate,
                                   estimate_batch, resources)
from pynq_codesign.design import (Bundle, Design, Layer, Network, Stage,
                                  check_fits, load_design, size_overlay)
from pynq_codesign.devices import load_device
from pynq_codesign.fixedpoint import FixedFormat
from pynq_codesign.qos import QoSRecord

F = 100e6                                   # 100 MHz
STREAM = 8 * F                              # 64-bit beats per cycle, bytes/s
DDR = 1050e6 * 2 * 0.70                     # PYNQ-Z1 DDR peak x default efficiency
ZERO = ModelConstants(dma_setup_us=0.0, pass_overhead_us=0.0, frame_overhead_us=0.0,
                      stage_depth_cycles=0, maxi_burst_gap_cycles=0)


def _net(c: int, h: int, w: int, bundles: list[list[Layer]]) -> Network:
    return Network(input_channels=c, input_height=h, input_width=w,
                   bundles=tuple(Bundle(tuple(b)) for b in bundles),
                   input_format=FixedFormat(8, 3), weight_format=FixedFormat(8, 2),
                   feature_format=FixedFormat(8, 4))


def _design(net: Network, stages: tuple[Stage, ...], band_rows: int = 8,
            wb: int = 8, fb: int = 8, per_stage: bool = True, **ov) -> Design:
    o = size_overlay(net, stages=stages, weight_bits=wb, feature_bits=fb,
                     band_rows=band_rows, per_stage=per_stage)
    return Design("t", replace(o, **ov), net)


def test_single_pw_layer_compute_bound():
    # 16x4x4 input, pw -> 10 channels, pe=2 simd=4 (F8: 8 codes a beat).
    d = _design(_net(16, 4, 4, [[Layer("pw", 10, activation="none")]]),
                (Stage("pw", 2, 4),))
    e = estimate_batch(DesignBatch.from_design(d), ZERO)
    desc = 14                                       # ceil((8 + 20) / 2) descriptor beats
    load = 160 + 10                                 # one weight / bias a cycle
    scan = 4 + 16 * 5 * 4                           # a pixel ahead, then 16 x ocf 5 x icf 4
    # converters: unpack 16 x max(2 beats, 4 words), pack 16 x max(5 words, 2 beats);
    # streams 32 beats each way; m_axi 200 bytes (25 cycles) before the load ends
    want = (desc + load + scan) / F * 1e3
    assert e.latency_ms[0] == pytest.approx(want, rel=1e-9)
    assert e.bundle_latency_ms[0, 0] == pytest.approx(want, rel=1e-9)
    assert e.pass_cycles[0, 0] == desc + load + scan
    assert bool(e.pass_compute_bound[0, 0])
    assert e.macs[0] == 16 * 10 * 16 and e.params[0] == 160 + 10


def test_overheads_add_exactly_their_hand_counted_terms():
    d = _design(_net(16, 4, 4, [[Layer("pw", 10, activation="none")]]),
                (Stage("pw", 2, 4),))
    k = ModelConstants()
    base = estimate_batch(DesignBatch.from_design(d), ZERO).latency_ms[0]
    full = estimate_batch(DesignBatch.from_design(d), k).latency_ms[0]
    # one pass, one stage; the descriptor's two bursts each pay the m_axi latency (the
    # weight fetch stays hidden behind the load)
    extra_us = (k.frame_overhead_us + k.pass_overhead_us + k.dma_setup_us
                + (k.stage_depth_cycles + 2 * k.maxi_burst_gap_cycles) / F * 1e6)
    assert full - base == pytest.approx(extra_us * 1e-3, rel=1e-9)


def test_one_bundle_on_a_chain_compute_bound():
    # 4x16x8 input; bundle dw + pw(10) on a dw(pe 2) -> pw(pe 2, simd 2) chain.
    d = _design(_net(4, 16, 8, [[Layer("dw"), Layer("pw", 10, activation="none")]]),
                (Stage("dw", 2), Stage("pw", 2, 2)))
    e = estimate_batch(DesignBatch.from_design(d), ZERO)
    dw = 40 + 17 * 9 * 2                            # load 36 + 4; (16+1) x (8+1) steps x 2 folds
    pw = 50 + 2 + 128 * 5 * 2                       # load 40 + 10; 128 pixels x 5 x 2
    streams = (128, 256)                            # beats in (8 B a pixel), out (16 B)
    assert pw > max(dw, *streams)
    want = (24 + pw) / F                            # descriptor: ceil((8 + 40) / 2) beats
    assert e.latency_ms[0] == pytest.approx(want * 1e3, rel=1e-9)
    assert bool(e.pass_compute_bound[0, 0])
    assert e.bundle_macs[0, 0] == 9 * 4 * 128 + 4 * 10 * 128


def test_memory_bound_pass_runs_at_the_store_stream():
    # 8x32x16 input, pw(10) with pe 16, simd 8: one cycle per pixel, but each pixel
    # stores 16 bytes (10 channels padded) = 2 beats: the output stream sets the pace
    # (the pack converter ties with it).
    d = _design(_net(8, 32, 16, [[Layer("pw", 10, activation="none")]]),
                (Stage("pw", 16, 8),))
    e = estimate_batch(DesignBatch.from_design(d), ZERO)
    px = 32 * 16
    comp = 90 + 1 + px                              # load, scan
    store, ddr = px * 16 / STREAM, px * 24 / DDR
    assert store > max(comp / F, ddr)
    want = 14 / F + store
    assert e.latency_ms[0] == pytest.approx(want * 1e3, rel=1e-9)
    assert not bool(e.pass_compute_bound[0, 0])


def test_ddr_bound_when_the_stream_is_faster_than_ddr():
    # at 200 MHz the two streams give 1.6 GB/s each, DDR 1.47 GB/s shared: load 8 B +
    # store 16 B per pixel through DDR is the slowest term.
    d = _design(_net(8, 32, 16, [[Layer("pw", 10, activation="none")]]),
                (Stage("pw", 16, 8),), clock_mhz=200.0)
    e = estimate_batch(DesignBatch.from_design(d), ZERO)
    px, f = 32 * 16, 200e6
    ddr = px * 24 / DDR
    assert ddr > max((91 + px) / f, px * 16 / (8 * f), 2 * px / f)
    want = 14 / f + ddr
    assert e.latency_ms[0] == pytest.approx(want * 1e3, rel=1e-9)


def test_passes_split_when_the_chain_has_no_slot_left():
    # two pw layers on a one-pw chain: two passes, each with its own overheads
    net = _net(16, 4, 4, [[Layer("pw", 16), Layer("pw", 10, activation="none")]])
    d = _design(net, (Stage("pw", 2, 4),))
    k = ZERO.with_(pass_overhead_us=7.0)
    e0 = estimate_batch(DesignBatch.from_design(d), ZERO)
    e1 = estimate_batch(DesignBatch.from_design(d), k)
    assert e0.pass_latency_ms.shape == (1, 2)
    assert e1.latency_ms[0] - e0.latency_ms[0] == pytest.approx(2 * 7.0e-3, rel=1e-9)


def test_resources_by_hand():
    # pw(pe 2, simd 4), W8 x F8: 8 multipliers on 8 DSP48E1; the stage has no capacities
    # of its own, so the overlay-wide limits size its memories.
    # buffers: s0_pixel: one pixel of 16 channels in words of simd 4 = 4 words of 32 bits,
    #   ping-pong -> LUTRAM;
    # s0_weights: pe 2 banks of words of simd 4 weights; the worst layer within 16
    #   channels and 160 weights is IC 9 (3 simd steps) x OC 16 (8 pe steps) = 24 words
    #   (IC 13 x OC 12 ties) -> 24 x 32 bits a bank -> LUTRAM;
    # s0_bias: 2 banks of min(16/2, 24) = 8 x 32 bits -> LUTRAM.
    d = _design(_net(16, 4, 8, [[Layer("pw", 10, activation="none")]]),
                (Stage("pw", 2, 4),), per_stage=False, max_row_elems=64)
    r = resources(DesignBatch.from_design(d))
    assert r["dsp"][0] == 8
    assert r["bram18"][0] == 0
    b = bd.bind_overlay(d.overlay)
    assert [(x.name, x.depth, x.banks, x.impl, x.bram18) for x in b.buffers] == [
        ("s0_pixel", 4, 1, "lutram", 0), ("s0_weights", 24, 2, "lutram", 0),
        ("s0_bias", 8, 2, "lutram", 0)]
    assert b.mults[0].mult_impl == "dsp" and b.mults[0].dsp_per_mult == 1
    # per stage (size_overlay's default): the stage holds rows of 16 x 8 = 128 elements
    # (channels already whole words of simd 4) and the one layer's ceil(10/2) x
    # ceil(16/4) = 20 weight words.
    d = _design(_net(16, 4, 8, [[Layer("pw", 10, activation="none")]]), (Stage("pw", 2, 4),))
    assert (d.overlay.stages[0].row_elems, d.overlay.stages[0].weight_words) == (128, 20)
    b = bd.bind_overlay(d.overlay)
    assert [(x.name, x.depth, x.impl, x.bram18) for x in b.buffers] == [
        ("s0_pixel", 4, "lutram", 0), ("s0_weights", 20, "lutram", 0),
        ("s0_bias", 8, "lutram", 0)]
    assert resources(DesignBatch.from_design(d))["bram18"][0] == 0


def test_bram18_count_rules():
    assert bd.bram18_count(2048, 9) == 1
    assert bd.bram18_count(2049, 9) == 2
    assert bd.bram18_count(512, 72) == 2
    assert bd.bram18_count(1, 1) == 1               # a bank takes a whole BRAM18
    assert bd.bram18_count(1536, 11) == 2           # 1Kx18 aspect, two deep
    assert list(bd.bram18_count(np.array([1024, 1025]), 18)) == [1, 2]


def test_fabric_and_packing_decisions():
    # 2x4 products go to LUTs: no DSP at all
    d = _design(_net(16, 4, 4, [[Layer("pw", 10, activation="none")]]),
                (Stage("pw", 2, 4),), wb=2, fb=4)
    b = bd.bind_overlay(d.overlay)
    assert b.mults[0].mult_impl == "fabric" and b.dsp == 0
    assert resources(DesignBatch.from_design(d))["dsp"][0] == 0
    # W8 x F8 on DSP48E1 without cascade (simd 1) packs: s = 16, 16 + 8 <= 25
    assert bd.pack_shift_ok(8, 8, 1, 25, 18)
    # with an 8-term cascade the guard bits push A to 19 + 8 = 27 > 25, fine on 27x18
    assert not bd.pack_shift_ok(8, 8, 8, 25, 18)
    assert bd.pack_shift_ok(8, 8, 8, 27, 18)
    # W11 x F8 never packs on the DSP48E1 (19 + 11 > 25)
    assert not bd.pack_shift_ok(11, 8, 1, 25, 18)
    # a dw stage has no shared operand
    assert not bd.pack_legal("dw", 8, 1, 8, 8, 25, 18)


def test_auto_packing_only_over_budget_and_over_budget_message():
    net = _net(16, 4, 4, [[Layer("pw", 10, activation="none")]])
    # 256 W8xF8 products with simd 1: unpacked 256 > 220 DSP -> auto packs to 128
    d = _design(net, (Stage("pw", 256, 1),))
    b = bd.bind_overlay(d.overlay)
    assert b.mults[0].mult_impl == "dsp_packed" and b.dsp == 128
    assert bd.bind_overlay(d.overlay, pack="never").dsp == 256
    assert resources(DesignBatch.from_design(d))["dsp"][0] == 128
    # 128 products fit unpacked: auto leaves them alone
    assert bd.bind_overlay(_design(net, (Stage("pw", 128, 1),)).overlay).mults[0] \
        .mult_impl == "dsp"
    # W11 x F8, 64 x 8 = 512 products: cannot pack, over the PYNQ-Z1's 220
    d11 = _design(net, (Stage("pw", 64, 8),), wb=11)
    rec = estimate(d11)
    assert rec.dsp == 512
    assert rec.extra["fits"] is False
    assert "dsp 512 > 220" in rec.extra["over_budget"]


def test_fits_needs_resources_and_the_network_check():
    net = _net(16, 4, 4, [[Layer("pw", 10, activation="none")]])
    ok = estimate(_design(net, (Stage("pw", 2, 4),)))
    assert ok.extra["fits"] is True and ok.extra["over_budget"] == []
    # the same overlay with too few channels: resources fine, network does not fit
    small = _design(net, (Stage("pw", 2, 4),), max_channels=8)
    rec = estimate(small)
    assert rec.extra["over_budget"] == [] and rec.extra["fits"] is False
    assert any("max_channels" in p for p in rec.extra["fit_problems"])
    e = estimate_batch(DesignBatch.from_design(small))
    assert not e.network_fits[0] and e.resources_fit[0] and not e.fits[0]


def _variants(name: str) -> list[Design]:
    base = load_design(name)
    out = [base]
    for pe_dw, pe, simd, clk, rows in ((2, 8, 8, 125.0, 4), (8, 32, 4, 142.86, 16),
                                       (1, 4, 16, 50.0, 2)):
        # row capacities stay (they do not depend on pe/simd); the weight memories fall
        # back to the overlay-wide worst case (the words a layer needs change with pe)
        st = tuple(replace(s, pe=pe_dw, weight_words=None) if s.kind == "dw" else
                   replace(s, pe=pe, simd=simd, weight_words=None) if s.kind == "pw" else s
                   for s in base.overlay.stages)
        out.append(replace(base, overlay=replace(base.overlay, stages=st, clock_mhz=clk,
                                                 band_rows=rows)))
    return out


@pytest.mark.parametrize("name", ["dnn-a", "dnn-c"])
def test_vectorised_equals_scalar(name):
    designs = _variants(name)
    e = estimate_batch(DesignBatch.from_designs(designs))
    for i, d in enumerate(designs):
        r = estimate(d)
        assert r.latency_ms == pytest.approx(e.latency_ms[i], rel=1e-12)
        assert r.power_w == pytest.approx(e.power_w[i], rel=1e-12)
        assert [r.dsp, r.bram18, r.lut, r.ff] == \
            [e.dsp[i], e.bram18[i], e.lut[i], e.ff[i]]
        assert r.extra["fits"] == bool(e.fits[i])
        # the scalar binding (what the HLS header gets) agrees with the vectorised one
        b = bd.bind_overlay(d.overlay)
        assert (b.dsp, b.bram18) == (e.dsp[i], e.bram18[i])
        assert [x.latency_ms for x in r.bundles] == pytest.approx(
            list(e.bundle_latency_ms[i]), rel=1e-12)


def test_batch_with_knobs_equals_batch_of_designs():
    designs = _variants("dnn-a")
    a = estimate_batch(DesignBatch.from_designs(designs))
    base = DesignBatch.from_design(designs[0], len(designs))
    pe = np.array([[s.pe for s in d.overlay.stages] for d in designs])
    simd = np.array([[s.simd for s in d.overlay.stages] for d in designs])
    words = np.array([[s.weight_words or 0 for s in d.overlay.stages] for d in designs])
    b = estimate_batch(base.with_(pe=pe, simd=simd, weight_words=words,
                                  clock_mhz=[d.overlay.clock_mhz for d in designs],
                                  band_rows=[d.overlay.band_rows for d in designs]))
    assert np.array_equal(a.latency_ms, b.latency_ms)
    assert np.array_equal(a.bram18, b.bram18)
    # stale capacities are caught: the base's weight words with other pe / simd
    c = estimate_batch(base.with_(pe=pe, simd=simd))
    for i, d in enumerate(designs):
        stale = tuple(replace(s, pe=int(p), simd=int(q)) for s, p, q in
                      zip(designs[0].overlay.stages, pe[i], simd[i]))
        ov = replace(designs[0].overlay, stages=stale)
        assert bool(c.network_fits[i]) == (check_fits(d.network, ov) == [])
    assert not c.network_fits.all()


@pytest.mark.parametrize("name", ["dnn-a", "dnn-c"])
def test_sized_to_network_is_size_overlay_per_stage(name):
    """The vectorised sizing gives each stage the capacities design.size_overlay gives
    it, and so the same BRAM18 as the scalar binding."""
    d = load_design(name)
    ov = d.overlay
    pes = [(2, 8, 8), (8, 32, 4), (3, 5, 7)]
    b = DesignBatch.from_design(d, len(pes))
    pe = np.array([[p[0], p[1], 1] for p in pes])
    simd = np.array([[1, p[2], 1] for p in pes])
    sized = b.with_(pe=pe, simd=simd).sized_to_network()
    e = estimate_batch(sized)
    for i, (pdw, ppw, spw) in enumerate(pes):
        chain = (Stage("dw", pdw), Stage("pw", ppw, spw), Stage("pool"))
        o = size_overlay(d.network, ov.device, ov.clock_mhz, stages=chain,
                         weight_bits=ov.weight_bits, feature_bits=ov.feature_bits,
                         band_rows=ov.band_rows)
        assert list(sized.row_elems[i]) == [s.row_capacity(o) for s in o.stages]
        assert list(sized.weight_words[i]) == [s.weight_words or 0 for s in o.stages]
        assert e.network_fits[i]
        assert e.bram18[i] == bd.bind_overlay(o).bram18


def test_batch_shape_errors_are_clear():
    base = DesignBatch.from_design(load_design("dnn-a"), 3)
    with pytest.raises(ModelError, match="pe"):
        base.with_(pe=np.ones((3, 7)))
    with pytest.raises(ModelError, match="topology"):
        DesignBatch.from_designs([load_design("dnn-a"), load_design("dnn-c")])


def test_dnn_a_macs_and_params_by_hand():
    # 3x160x360; per bundle DW3 then PW1 then pool (the last: DW3 PW1(384) PW1(10))
    macs = (9 * 3 * 160 * 360 + 3 * 48 * 160 * 360
            + 9 * 48 * 80 * 180 + 48 * 96 * 80 * 180
            + 9 * 96 * 40 * 90 + 96 * 192 * 40 * 90
            + 9 * 192 * 20 * 45 + 192 * 384 * 20 * 45 + 384 * 10 * 20 * 45)
    params = (9 * 3 + 3 + 3 * 48 + 48 + 9 * 48 + 48 + 48 * 96 + 96 + 9 * 96 + 96
              + 96 * 192 + 192 + 9 * 192 + 192 + 192 * 384 + 384 + 384 * 10 + 10)
    rec = estimate(load_design("dnn-a"))
    assert rec.extra["macs"] == macs == 223257600
    assert rec.extra["params"] == params
    assert sum(b.macs for b in rec.bundles) == macs


@pytest.mark.parametrize("name", ["dnn-a", "dnn-b", "dnn-c"])
def test_reference_designs_are_plausible(name):
    d = load_design(name)
    rec = estimate(d)
    assert isinstance(rec, QoSRecord) and rec.source == "estimated"
    assert rec.power_source == "estimated"
    ov = d.overlay
    # no faster than every multiplier busy every cycle, layer by layer
    lanes = {s.kind: s.multipliers // (9 if s.kind in ("dw", "conv3") else 1)
             for s in ov.stages}
    bound_s = 0.0
    for lay, s in zip(d.network.layers, d.network.shapes()):
        if lay.type == "dw":
            bound_s += 9 * s.in_c * s.out_h * s.out_w / (9 * lanes["dw"]) / (ov.clock_mhz * 1e6)
        elif lay.type == "pw":
            bound_s += s.in_c * s.out_c * s.out_h * s.out_w / lanes["pw"] / (ov.clock_mhz * 1e6)
    assert rec.latency_ms >= bound_s * 1e3
    assert rec.latency_ms <= 5 * bound_s * 1e3          # and not absurdly slower
    assert rec.fps == pytest.approx(1000.0 / rec.latency_ms)
    dev = load_device(ov.device)
    static = dev.static_board_w + dev.ps_active_w + dev.pl_static_w
    assert static < rec.power_w < static + 3.0
    assert rec.energy_mj_per_frame == pytest.approx(rec.power_w * rec.latency_ms)
    assert sum(b.latency_ms for b in rec.bundles) < rec.latency_ms
    assert 0 < rec.dsp <= ov.multipliers
    # per-stage buffer sizes and band_rows 2 keep every reference design on the PYNQ-Z1
    assert rec.extra["fits"] is True and rec.extra["over_budget"] == []
    assert rec.bram18 <= 280 and rec.dsp <= 220
    # the DDR traffic is at least the input frame and the output grid
    assert rec.extra["ddr_bytes_per_frame"] >= 160 * 360 * 8


def test_faster_clock_and_more_parallelism_help():
    d = load_design("dnn-a")
    b = DesignBatch.from_design(d, 3)
    pe = b.pe.copy()
    pe[2, 1] *= 2                                       # twice the pw lanes
    e = estimate_batch(b.with_(clock_mhz=[100.0, 142.86, 100.0], pe=pe))
    assert e.latency_ms[1] < e.latency_ms[0]
    assert e.latency_ms[2] < e.latency_ms[0]
    assert e.dsp[2] > e.dsp[0]


def test_retarget_device_changes_budget_and_dsp_kind():
    r1 = estimate(load_design("dnn-a"), device="zcu104")
    assert r1.extra["device"] == "zcu104"
    assert r1.extra["budget"]["dsp"] == load_device("zcu104").dsp
    big = replace(load_design("dnn-a"))
    big = replace(big, overlay=replace(big.overlay, clock_mhz=250.0, device="zcu104"))
    with pytest.raises(ModelError, match="MHz"):
        estimate(big, device="pynq-z1")


def test_constants_override_and_unknown_names():
    k = ModelConstants().with_(ddr_efficiency=0.5)
    assert ModelConstants.from_dict(k.to_dict()) == k
    with pytest.raises(ModelError, match="unknown model constant"):
        ModelConstants().with_(ddr_eficiency=0.5)


def test_cli_estimate_json_and_table(capsys, tmp_path):
    import json

    from pynq_codesign.cli import main
    assert main(["estimate", "dnn-c", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("fps", "latency_ms", "macs", "params", "dsp", "bram18", "lut", "ff",
                "power_w", "energy_mj_per_frame", "fits", "bundles", "source",
                "over_budget"):
        assert key in d, key
    assert d["source"] == "estimated" and d["power_source"] == "estimated"
    assert len(d["bundles"]) == 4 and all("latency_ms" in b for b in d["bundles"])
    assert main(["estimate", "dnn-a", "--device", "zcu104"]) == 0
    out = capsys.readouterr().out
    assert "zcu104" in out and "estimated" in out and "bram18" in out and "%" in out
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "network": {"bundles": []}}')
    assert main(["estimate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "network.bundles" in err and "Traceback" not in err
