"""The golden table of fixedpoint.py through the C++ requantiser and through ap_fixed
conversions with the AP_ modes that fixedpoint.AP_QUANT names (proving the mapping)."""
import ctypes
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from host_search import csim
from host_search.hls_gen import HLS_DIR, generate_header
from pynq_codesign.fixedpoint import AP_QUANT, GOLDEN, ROUNDING_ID, ap_overflow
from tests.helpers import tiny_design

pytestmark = pytest.mark.skipif(not csim.shutil.which("g++"), reason="needs g++")


@pytest.fixture(scope="module")
def requant_lib():
    lib = csim.build_library(tiny_design().overlay,
                             extra_sources=(HLS_DIR / "tb" / "requant_tb.cpp",))
    so = ctypes.CDLL(str(lib))
    so.pcd_requant.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.POINTER(ctypes.c_longlong)]
    return so


def test_golden_table_through_the_cpp_requantiser(requant_lib):
    bad = []
    for case in GOLDEN:
        out = ctypes.c_longlong()
        shift = case.num_frac - case.fmt.frac
        rc = requant_lib.pcd_requant(ROUNDING_ID[case.rounding], case.num, shift,
                                     case.fmt.code_min(case.narrow), case.fmt.code_max(),
                                     ctypes.byref(out))
        assert rc == 0
        if out.value != case.expect:
            bad.append((case, out.value))
    assert not bad, bad[:5]
    assert len(GOLDEN) > 100


def test_golden_table_through_ap_fixed_with_the_named_modes(tmp_path):
    """Each case converts num * 2**-num_frac, held exactly in a wide ap_fixed, into
    ap_(u)fixed<bits, int_bits, AP_QUANT[mode], AP_SAT or AP_SAT_SYM>."""
    body = []
    for i, c in enumerate(GOLDEN):
        kind = "ap_fixed" if c.fmt.signed else "ap_ufixed"
        dst = (f"{kind}<{c.fmt.bits}, {c.fmt.int_bits}, {AP_QUANT[c.rounding]}, "
               f"{ap_overflow(c.narrow)}>")
        body.append(f"  {{ ap_fixed<64, {64 - c.num_frac}> src; src.range(63, 0) = "
                    f"ap_int<64>({c.num}LL); {dst} d = src; "
                    f"std::printf(\"%d %lld\\n\", {i}, (long long)d.range({c.fmt.bits - 1}, 0)"
                    f"{'.to_int64()' if not c.fmt.signed else ''} "
                    f"- {'0' if not c.fmt.signed else f'(d[{c.fmt.bits - 1}] ? (1LL << {c.fmt.bits}) : 0LL)'}); }}")
    src = tmp_path / "golden_ap.cpp"
    src.write_text("#include <cstdio>\n#include <ap_fixed.h>\nint main() {\n"
                   + "\n".join(body) + "\n  return 0;\n}\n")
    exe = tmp_path / "golden_ap"
    subprocess.run([csim.compiler(), "-std=c++14", "-O0", "-isystem", str(csim.ap_types_dir()),
                    str(src), "-o", str(exe)], check=True, capture_output=True)
    lines = subprocess.run([str(exe)], check=True, capture_output=True,
                           text=True).stdout.split("\n")
    got = {int(a): int(b) for a, b in (ln.split() for ln in lines if ln.strip())}
    bad = [(c, got[i]) for i, c in enumerate(GOLDEN) if got[i] != c.expect]
    assert not bad, bad[:5]


def test_header_names_the_overlay_rounding_as_ap_mode():
    d = tiny_design()
    for mode, ap in AP_QUANT.items():
        ov = replace(d.overlay, rounding=mode.value, narrow_range=True)
        h = generate_header(ov)
        assert f"#define PCD_AP_QUANT {ap}" in h
        assert f"#define PCD_ROUNDING {ROUNDING_ID[mode]}" in h
        assert "#define PCD_AP_OVERFLOW AP_SAT_SYM" in h
    assert np.all([ap.startswith("AP_") for ap in AP_QUANT.values()])
