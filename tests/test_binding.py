"""Buffer binding per stage: sizes derived by hand from the rules in binding.py's docstring
(and what hls/buffers.h, pool.h and the stage templates index), the reference designs'
weight memories against design.weight_words, the worst-case fallback, vectorised ==
scalar."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from host_search import binding as bd
from pynq_codesign.design import (Overlay, Stage, load_design, plan_passes, stage_row_elems,
                                  weight_words)

SMALL = Overlay(weight_bits=8, feature_bits=8, band_rows=2, max_channels=16, max_width=16,
                max_row_elems=256, max_layer_weights=9 * 256,
                stages=(Stage("conv3", 2, 3, row_elems=40, weight_words=10),
                        Stage("dw", 3, row_elems=50, weight_words=6),
                        Stage("pw", 4, 2, row_elems=3000, weight_words=12),
                        Stage("pool", row_elems=60)))


def _geo(b: bd.Binding) -> dict[str, tuple]:
    return {x.name: (x.depth, x.width, x.banks, x.lanes, x.double_buffered, x.impl,
                     x.bram18) for x in b.buffers}


def test_per_stage_sizes_by_hand():
    # Every memory stores whole words of what its stage reads per cycle (pixels padded
    # to words): conv3 / pw simd codes, dw pe codes, a pool one beat (F8: 8 codes).
    g = _geo(bd.bind_overlay(SMALL))
    assert g == {
        # conv3 simd 3: three rows of ceil(40/3) = 14 words of 24 bits (one row a bank)
        "s0_line": (14, 24, 3, 3, False, "lutram", 0),
        # the window's two older columns x 3 rows: 6 banks of ceil(16/3) = 6 words
        "s0_cols": (6, 24, 6, 3, False, "lutram", 0),
        # weights: pe 2 banks of 9 x simd 3 = 27 weights a word (216 bits), 10 words
        # (2160 bits > 2 Kbit: BRAM; 512x36 x 6 wide = 6 a bank)
        "s0_weights": (10, 216, 2, 27, False, "bram", 12),
        # bias: pe 2 banks of min(ceil(16/2), 10) = 8
        "s0_bias": (8, 32, 2, 1, False, "lutram", 0),
        # dw pe 3: ceil(50/3) = 17 words a row
        "s1_line": (17, 24, 3, 3, False, "lutram", 0),
        "s1_cols": (6, 24, 6, 3, False, "lutram", 0),
        # 3 banks of the 9 taps of one channel, 6 words each; bias min(6, 6) x 3
        "s1_weights": (6, 72, 3, 9, False, "lutram", 0),
        "s1_bias": (6, 32, 3, 1, False, "lutram", 0),
        # pw simd 2: a pixel of ceil(16/2) = 8 words, ping-pong
        "s2_pixel": (8, 16, 1, 2, True, "lutram", 0),
        "s2_weights": (12, 16, 4, 2, False, "lutram", 0),
        "s2_bias": (4, 32, 4, 1, False, "lutram", 0),
        # pool: one beat a cycle; ceil(60/2) = 30 elements -> 4 words of 8; the even
        # column's pixel: ceil(16/8) = 2 words
        "s3_rowbuf": (4, 64, 1, 8, False, "lutram", 0),
        "s3_hold": (2, 64, 1, 8, False, "lutram", 0),
    }
    assert bd.bind_overlay(SMALL).bram18 == 12


def test_lanes_are_what_the_stage_reads():
    """F16: a pw stores words of simd codes, a dw of pe, a pool one beat (4 codes),
    whatever stage comes before."""
    pw = Stage("pw", 4, 8, row_elems=64)
    for before in ((), (Stage("pool"),), (Stage("dw", 16),)):
        ov = replace(SMALL, feature_bits=16, stages=before + (pw,))
        pix = bd.bind_overlay(ov).buffer(f"s{len(before)}_pixel")
        assert (pix.lanes, pix.width, pix.depth) == (8, 128, 2)
    ov = replace(SMALL, feature_bits=16, stages=(Stage("dw", 2, row_elems=64), Stage("pool"),
                                                 Stage("dw", 16, row_elems=64)))
    b = bd.bind_overlay(ov)
    assert b.buffer("s0_line").lanes == 2
    assert b.buffer("s1_rowbuf").lanes == 4           # the pool reads one beat
    assert b.buffer("s2_line").lanes == 16
    assert b.buffer("s2_line").depth == 64 // 16


def test_without_own_capacities_the_overlay_limits_apply():
    stages = tuple(replace(s, row_elems=None, weight_words=None) for s in SMALL.stages)
    b = bd.bind_overlay(replace(SMALL, stages=stages))
    assert b.buffer("s1_line").depth == -(-256 // 3)
    assert b.buffer("s3_rowbuf").depth == 128 // 8
    # worst pw layer within 16 channels and 2304 weights: 16 x 16 -> 4 x 8 = 32 words
    assert b.buffer("s2_weights").depth == 32
    assert b.buffer("s1_weights").depth == 6          # dw: ceil(16 / 3)
    assert b.buffer("s0_weights").depth == bd.worst_weight_words("conv3", 2, 3, 16, 2304)


@pytest.mark.parametrize("kind,pe,simd,c,mlw", [("pw", 16, 8, 40, 900),
                                                ("conv3", 4, 3, 30, 5000),
                                                ("dw", 4, 1, 100, 900),
                                                ("pw", 3, 5, 17, 10_000)])
def test_worst_weight_words_is_the_largest_admitted_layer(kind, pe, simd, c, mlw):
    per = {"dw": 0, "pw": 1, "conv3": 9}[kind]
    best = 0
    for ic in range(1, c + 1):
        for oc in range(1, c + 1):
            n = 9 * ic if kind == "dw" else per * ic * oc
            if n <= mlw and (kind != "dw" or oc == ic):
                best = max(best, weight_words(kind, pe, simd, ic, oc))
    assert bd.worst_weight_words(kind, pe, simd, c, mlw) == best
    many = bd.worst_weight_words(kind, np.array([pe, pe]), np.array([simd, simd]),
                                 np.array([c, c]), np.array([mlw, mlw]))
    assert list(many) == [best, best]


@pytest.mark.parametrize("name", ["dnn-a", "dnn-b", "dnn-c"])
def test_reference_weight_memories_hold_exactly_their_largest_layer(name):
    d = load_design(name)
    ov, net = d.overlay, d.network
    shapes = net.shapes()
    need = [0] * len(ov.stages)
    rows = [0] * len(ov.stages)
    for ps in plan_passes(net, ov):
        for gi, slot in zip(ps.layers, ps.slots):
            st, s = ov.stages[slot], shapes[gi]
            need[slot] = max(need[slot], weight_words(st.kind, st.pe, st.simd, s.in_c, s.out_c))
            rows[slot] = max(rows[slot], stage_row_elems(st.kind, st.pe, st.simd,
                                                         ov.feature_bits, s.in_w, s.in_c))
    b = bd.bind_overlay(ov)
    for k, st in enumerate(ov.stages):
        lanes = bd.memory_lanes(st.kind, st.pe, st.simd, ov.feature_bits)
        if st.kind == "pool":
            rb = b.buffer(f"s{k}_rowbuf")
            assert rb.depth == -(-(-(-rows[k] // 2)) // lanes)
            continue
        assert b.buffer(f"s{k}_weights").depth == need[k] == st.weight_words
        if st.kind == "pw":
            assert b.buffer(f"s{k}_pixel").depth == -(-ov.max_channels // lanes)
        else:
            assert b.buffer(f"s{k}_line").depth == -(-rows[k] // lanes)


def test_vectorised_geometry_equals_the_scalar_binding():
    """Points with and without their own weight words (0 = none) in one call."""
    kinds = SMALL.stage_kinds
    variants = [SMALL, replace(SMALL, stages=tuple(replace(s, weight_words=None)
                                                   for s in SMALL.stages)),
                replace(SMALL, band_rows=5, feature_bits=12)]
    col = lambda f: [np.array([f(v, k) for v in variants]) for k in range(len(kinds))]
    geo = bd.buffer_geometry(
        kinds, col(lambda v, k: v.stages[k].pe), col(lambda v, k: v.stages[k].simd),
        np.array([v.band_rows for v in variants]),
        col(lambda v, k: v.stages[k].row_capacity(v)),
        col(lambda v, k: v.stages[k].weight_words or 0), SMALL.max_channels,
        SMALL.max_layer_weights, SMALL.weight_bits,
        np.array([v.feature_bits for v in variants]), SMALL.bias_bits)
    for i, v in enumerate(variants):
        scalar = bd.bind_overlay(v)
        for g in geo:
            x = scalar.buffer(g.name)
            _, bram, _ = bd.buffer_cost(g)
            got = [np.broadcast_to(a, (len(variants),))[i]
                   for a in (g.depth, g.width, g.lanes, bram)]
            assert got == [x.depth, x.width, x.lanes, x.bram18], g.name
