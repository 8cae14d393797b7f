"""C simulation vs emulator, bit for bit, over random layer configurations.

A few overlays (stage chains, datapath widths, all four rounding modes, narrow range,
DSP / fabric / packed-DSP multipliers) are compiled once each; many random networks of one
to three layers (dw / pw / conv3 / pool, random shapes, strides, per-layer formats,
activations, data and weights, passes with bypassed slots) run through both.
"""
from __future__ import annotations

import concurrent.futures as cf
from dataclasses import replace

import numpy as np
import pytest

from host_search import csim
from host_search.binding import bind_overlay
from pynq_codesign.design import Bundle, Design, Layer, Network, Overlay, Stage, load_design
from pynq_codesign.fixedpoint import FixedFormat
from pynq_codesign.platform.sim.emulator import run_program
from pynq_codesign.randparams import random_inputs, random_program
from pynq_codesign.wire import LayerParams, build_program, weight_shape

pytestmark = pytest.mark.skipif(not csim.shutil.which("g++"), reason="needs g++")

MAXC, MAXW = 24, 20
BASE = dict(max_channels=MAXC, max_width=MAXW, max_row_elems=MAXC * MAXW,
            max_layer_weights=9 * MAXC * MAXC)

#: name -> (overlay, multiplier packing policy)
OVERLAYS = {
    "dw-pw-pool/w8f8/half_even": (Overlay(
        weight_bits=8, feature_bits=8, rounding="half_even", band_rows=2,
        stages=(Stage("dw", 3), Stage("pw", 4, 3), Stage("pool")), **BASE), "never"),
    "c3-dw-pw-pool/w12f11/floor/narrow": (Overlay(
        weight_bits=12, feature_bits=11, rounding="floor", narrow_range=True, band_rows=3,
        stages=(Stage("conv3", 2, 2), Stage("dw", 2), Stage("pw", 3, 2), Stage("pool")),
        **BASE), "never"),
    "pw-c3-dw-pool/w6f6/half_away/packed": (Overlay(
        weight_bits=6, feature_bits=6, rounding="half_away", band_rows=2,
        stages=(Stage("pw", 4, 2), Stage("conv3", 3, 1), Stage("dw", 5), Stage("pool")),
        **BASE), "always"),
    "dw-pw-c3-pool/w4f4/toward_zero/fabric": (Overlay(
        weight_bits=4, feature_bits=4, rounding="toward_zero", band_rows=4,
        stages=(Stage("dw", 1), Stage("pw", 2, 4), Stage("conv3", 1, 3), Stage("pool")),
        **BASE), "never"),
}
CONFIGS_PER_OVERLAY = 55


@pytest.fixture(scope="module")
def engines():
    def one(item):
        name, (ov, pack) = item
        return name, csim.build(ov, bind_overlay(ov, pack=pack))
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        return dict(ex.map(one, OVERLAYS.items()))


def _fmt(rng, max_bits: int, allow_unsigned: bool = True) -> FixedFormat:
    bits = int(rng.integers(2, max_bits + 1))
    # The wire carries signed containers of feature_bits: an unsigned code needs a spare bit.
    signed = not (allow_unsigned and bits < max_bits and rng.random() < 0.25)
    return FixedFormat(bits, int(rng.integers(-2, bits + 3)), signed)


def random_design(ov: Overlay, rng) -> Design:
    """One bundle of 1..3 layers whose kinds follow the chain (so several share a pass,
    with bypassed slots between), or out of chain order (several passes)."""
    kinds = list(ov.stage_kinds)
    n = int(rng.integers(1, 4))
    if rng.random() < 0.7:
        start = int(rng.integers(0, len(kinds)))
        picks = sorted(rng.choice(np.arange(start, len(kinds)), size=min(n, len(kinds) - start),
                              replace=False))
        seq = [kinds[i] for i in picks]
    else:
        seq = [kinds[int(i)] for i in rng.integers(0, len(kinds), size=n)]
    c = int(rng.integers(1, 13))
    h, w = int(rng.integers(1, 10)), int(rng.integers(1, 13))
    layers = []
    hh, ww = h, w
    for kind in seq:
        if kind == "pool" and (hh < 2 or ww < 2):
            continue
        stride = int(rng.integers(1, 3)) if kind in ("dw", "conv3") else 1
        oc = int(rng.integers(1, 17)) if kind in ("pw", "conv3") else None
        act = str(rng.choice(["none", "relu", "relu6"]))
        wf = _fmt(rng, ov.weight_bits, allow_unsigned=False) if kind != "pool" else None
        of = _fmt(rng, ov.feature_bits) if kind != "pool" else None
        layers.append(Layer(kind, oc, stride, act, wf, of))
        if kind == "pool":
            hh, ww = hh // 2, ww // 2
        elif kind in ("dw", "conv3"):
            hh, ww = (hh - 1) // stride + 1, (ww - 1) // stride + 1
    if not layers:
        layers.append(Layer("pw", int(rng.integers(1, 17)), 1, "relu",
                            _fmt(rng, ov.weight_bits, False), _fmt(rng, ov.feature_bits)))
    net = Network(input_channels=c, input_height=h, input_width=w,
                  bundles=(Bundle(tuple(layers)),),
                  input_format=_fmt(rng, ov.feature_bits),
                  weight_format=FixedFormat(ov.weight_bits, 1),
                  feature_format=FixedFormat(ov.feature_bits, 3))
    return Design("random", ov, net)


def random_params(design: Design, rng) -> list[LayerParams | None]:
    out = []
    for lay, s, (fin, wf, fout) in zip(design.network.layers, design.network.shapes(),
                                       design.network.formats()):
        if not lay.is_conv:
            out.append(None)
            continue
        w = rng.integers(wf.code_min(), wf.code_max() + 1,
                         size=weight_shape(lay.type, s.in_c, s.out_c))
        span = 1 << int(rng.integers(0, 24))
        out.append(LayerParams(w, rng.integers(-span, span, size=s.out_c)))
    return out


def check_config(engine, ov: Overlay, seed: int) -> str | None:
    rng = np.random.default_rng(seed)
    d = random_design(ov, rng)
    prog = build_program(d, random_params(d, rng))
    fin = d.network.input_format
    x = rng.integers(fin.code_min(), fin.code_max() + 1,
                     size=(d.network.input_height, d.network.input_width,
                           d.network.input_channels))
    _, want = run_program(prog, x, ov, keep_passes=True)
    _, got = engine.run_program(prog, x, keep_passes=True)
    for i, (a, b) in enumerate(zip(got, want)):
        if a.shape != b.shape or not np.array_equal(a, b):
            return (f"seed {seed}, pass {i}: {d.network.to_dict()['bundles']} input "
                    f"{x.shape} differs at {np.argwhere(a != b)[:3].tolist()}")
    return None


@pytest.mark.parametrize("name", list(OVERLAYS))
def test_csim_equals_emulator_on_random_layers(engines, name):
    ov = OVERLAYS[name][0]
    fails = [f for f in (check_config(engines[name], ov, 1000 * i + len(name))
                         for i in range(CONFIGS_PER_OVERLAY)) if f]
    assert not fails, f"{len(fails)} of {CONFIGS_PER_OVERLAY} differ; first: {fails[0]}"


def test_enough_random_configurations():
    assert CONFIGS_PER_OVERLAY * len(OVERLAYS) >= 200


def test_packed_and_fabric_bindings_are_the_ones_compiled(engines):
    b = bind_overlay(OVERLAYS["pw-c3-dw-pool/w6f6/half_away/packed"][0], pack="always")
    assert {m.mult_impl for m in b.mults if m.kind in ("pw", "conv3")} == {"dsp_packed"}
    header = csim.header_of(engines["pw-c3-dw-pool/w6f6/half_away/packed"].path).read_text()
    assert "MulDspPacked" in header
    header = csim.header_of(engines["dw-pw-c3-pool/w4f4/toward_zero/fabric"].path).read_text()
    assert "MulFabric" in header


def test_whole_reference_network_dnn_a_reduced(tmp_path):
    """DNN-A at 3x32x72 with random integer weights, every pass through both."""
    d = load_design("dnn-a")
    d = replace(d, network=replace(d.network, input_height=32, input_width=72))
    prog = random_program(d, seed=5, style="lively")
    x = random_inputs(d, 1, seed=6)[0]
    eng = csim.build(d.overlay)
    y, got = eng.run_program(prog, x, keep_passes=True)
    ye, want = run_program(prog, x, d.overlay, keep_passes=True)
    assert len(got) == len(prog.passes) == 5
    bundles = csim.bundle_outputs(prog, got)
    assert [b.shape for b in bundles] == [(16, 36, 48), (8, 18, 96), (4, 9, 192), (4, 9, 10)]
    for a, b in zip(got, want):
        assert np.array_equal(a, b)
    assert y.shape == (4, 9, 10)          # three pools: 32x72 -> 4x9
    for a in got:                       # not degenerate (all zero or all saturated)
        assert len(np.unique(a)) > 3
