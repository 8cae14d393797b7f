"""The golden table against the numpy reference, and the rounding kernels' properties."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from pynq_codesign.fixedpoint import (GOLDEN, FixedFormat, Rounding, bias_format,
                                      fold_batch_norm, int_bits_for, quantize, requantize,
                                      shift_round)


@pytest.mark.parametrize("case", GOLDEN, ids=lambda c: f"{c.num}/2^{c.num_frac}->{c.fmt}:"
                         f"{c.rounding.value}{':narrow' if c.narrow else ''}")
def test_golden_table(case):
    assert int(requantize(case.num, case.num_frac, case.fmt, case.rounding, case.narrow)) \
        == case.expect
    assert int(quantize(case.value, case.fmt, case.rounding, case.narrow)) == case.expect


def test_golden_table_covers_every_mode_and_edge():
    modes = {c.rounding for c in GOLDEN}
    assert modes == set(Rounding)
    assert any(c.narrow for c in GOLDEN) and any(not c.fmt.signed for c in GOLDEN)
    assert any(c.expect == c.fmt.code_max() for c in GOLDEN)
    assert any(c.expect == c.fmt.code_min() for c in GOLDEN)


@given(st.integers(-2**40, 2**40), st.integers(1, 20), st.sampled_from(list(Rounding)))
def test_shift_round_matches_exact_fraction_rounding(x, s, mode):
    from fractions import Fraction
    import math
    v = Fraction(x, 2**s)
    fl = math.floor(v)
    r = v - fl
    if mode is Rounding.FLOOR:
        want = fl
    elif mode is Rounding.TOWARD_ZERO:
        want = math.trunc(v)
    elif r != Fraction(1, 2):
        want = fl + (1 if r > Fraction(1, 2) else 0)
    elif mode is Rounding.HALF_EVEN:
        want = fl + (fl % 2)
    else:
        want = fl + 1 if v > 0 else fl
    assert int(shift_round(x, s, mode)) == want


def test_ap_type_names_modes():
    f = FixedFormat(8, 4)
    assert f.ap_type("half_even") == "ap_fixed<8,4,AP_RND_CONV,AP_SAT>"
    assert FixedFormat(8, 2, False).ap_type("toward_zero", True) == \
        "ap_ufixed<8,2,AP_TRN_ZERO,AP_SAT_SYM>"


def test_bias_format_is_accumulator_scale():
    b = bias_format(FixedFormat(8, 3), FixedFormat(16, 2), 32)
    assert b.frac == 5 + 14 and b.bits == 32


def test_fold_batch_norm_matches_float_bn():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3))
    x = rng.normal(size=(10, 3))
    g, be, m, v = rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2, 4)
    wf, bf = fold_batch_norm(w, None, g, be, m, v)
    ref = (x @ w.T - m) / np.sqrt(v + 1e-5) * g + be
    assert np.allclose(x @ wf.T + bf, ref)


def test_int_bits_for_holds_value():
    for m in (0.3, 1.0, 1.99, 2.0, 7.9, 100.0):
        ib = int_bits_for(m, 8)
        assert FixedFormat(8, ib).real_max() >= m
        assert FixedFormat(8, ib - 1).real_max() < m
