"""The binding's DSP count per unpacked multiplier and BRAM18 count per memory agree
with what yosys ``synth_xilinx`` makes of the same operators.

One yosys run synthesises every multiplier (or memory) of a parameter set; the fast
set runs by default, the wide and large ones (and the DSP48E2 family) are ``slow``.
"""
from __future__ import annotations

import pytest

from host_search import binding as bd
from host_search.yosys_check import (compare_memories, compare_multipliers, yosys_path)

pytestmark = pytest.mark.skipif(yosys_path() is None,
                                reason="yosys is not installed (apt-get install yosys); "
                                       "CI installs it")

FAST_MULTS = [(4, 4), (8, 8), (11, 8), (16, 16), (18, 18), (25, 18), (26, 18), (30, 20)]
SLOW_MULTS = [(3, 5), (2, 8), (16, 8), (19, 19), (35, 25), (43, 18), (42, 35)]
FAST_MEMS = [(64, 8), (256, 16), (1536, 11), (3000, 12), (4096, 8)]
SLOW_MEMS = [(128, 16), (256, 4), (512, 36), (1024, 18), (2048, 8), (512, 64), (8192, 16),
             (23040, 8), (1024, 72)]


def _report(rows) -> str:
    return "; ".join(str(r) for r in rows if not r.agree)


def test_multipliers_fast_set():
    rows = compare_multipliers(FAST_MULTS, "pynq-z1")
    assert all(r.agree for r in rows), _report(rows)
    # the set spans one slice, several slices and LUTs, so agreement is not vacuous
    assert {r.yosys_dsp for r in rows} >= {0, 1, 2, 4}


def test_memories_fast_set():
    rows = compare_memories(FAST_MEMS, "pynq-z1")
    assert all(r.agree for r in rows), _report(rows)
    assert {r.model_impl for r in rows} == {"bram", "lutram"}


@pytest.mark.slow
def test_multipliers_wide_set():
    rows = compare_multipliers(SLOW_MULTS, "pynq-z1")
    assert all(r.agree for r in rows), _report(rows)


@pytest.mark.slow
def test_memories_large_set():
    rows = compare_memories(SLOW_MEMS, "pynq-z1")
    assert all(r.agree for r in rows), _report(rows)


@pytest.mark.slow
def test_dsp48e2_multipliers():
    rows = compare_multipliers([(27, 18), (28, 18), (19, 19), (45, 18), (30, 20)], "zcu104")
    assert all(r.agree for r in rows), _report(rows)


def test_overlay_products_take_one_slice_on_both_dsp_kinds():
    # the schema's widest datapath (18-bit weights x 16-bit features) is one slice
    assert bd.dsp_per_mult(18, 16, 25, 18) == 1
    assert bd.dsp_per_mult(18, 16, 27, 18) == 1
