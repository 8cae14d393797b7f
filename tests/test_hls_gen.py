"""The generated overlay header and the C++ it configures: compiles cleanly, every overlay
parameter comes from the header, bindings become directives, the engine checks its input."""
import re
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from host_search import csim
from host_search.binding import bind_overlay
from host_search.hls_gen import (HLS_DIR, HlsGenError, folded_weight_words, generate_header,
                                 hls_sources, write_sources)
from pynq_codesign.design import Stage, load_design
from pynq_codesign.wire import (DESC_MAGIC, HEADER_WORDS, LAYER_FIELDS, feature_bytes,
                                pack_feature)
from tests.helpers import random_program, tiny_design

needs_gxx = pytest.mark.skipif(not csim.shutil.which("g++"), reason="needs g++")

# Macros the hand-written code defines or tests itself (include guards, build switches).
OWN_MACROS = {"PCD_OWN_HLS_STREAM", "PCD_GXX_SIM", "PCD_API", "PCD_CONFIG_H"}


@needs_gxx
@pytest.mark.parametrize("name", ["dnn-a", "dnn-b", "dnn-c"])
def test_reference_overlays_compile_with_wall_werror(tmp_path, name):
    ov = load_design(name).overlay
    write_sources(tmp_path, ov)
    flags = tuple(f for f in csim.CXX_FLAGS if f not in ("-shared", "-O2")) + (
        "-O0", "-Werror", "-fsyntax-only")
    cmd = csim.compile_command(tmp_path, tmp_path / "unused.so", flags=flags)
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "warning" not in p.stderr


def test_every_overlay_parameter_comes_from_the_generated_header():
    header = generate_header(load_design("dnn-c").overlay)
    defined = set(re.findall(r"#define (PCD_[A-Z0-9_]+)", header))
    used = set()
    for src in hls_sources():
        text = src.read_text()
        used |= set(re.findall(r"\bPCD_[A-Z0-9_]*[A-Z0-9]\b", text))
        guards = set(re.findall(r"#ifndef (PCD_[A-Z0-9_]+_H)\b", text))
        used -= guards
    missing = used - defined - OWN_MACROS
    assert not missing, f"used in hls/ but not generated: {sorted(missing)}"
    for name in ("PCD_HW_ID", "PCD_CLOCK_MHZ", "PCD_BAND_ROWS", "PCD_MAX_CHANNELS",
                 "PCD_AP_QUANT", "PCD_STAGE_KINDS"):
        assert name in defined


def test_hand_written_code_has_no_overlay_numbers():
    """Stage templates take PE/SIMD/sizes as template parameters; no literal sizes."""
    for src in HLS_DIR.glob("*.h"):
        text = src.read_text()
        assert not re.search(r"\[(?:[2-9]\d|\d{3,})\]", text), f"{src.name}: literal array size"


def test_header_carries_identity_and_binding():
    d = load_design("dnn-a")
    ov = d.overlay
    h = generate_header(ov)
    assert f"#define PCD_HW_ID 0x{ov.hardware_id:08x}u" in h
    assert "#define PCD_CLOCK_MHZ 100" in h
    b = bind_overlay(ov)
    for buf in b.buffers:
        assert f"impl={buf.impl}  // {buf.name}:" in h
    assert h.count("BIND_STORAGE") == len(b.buffers)
    assert "#pragma HLS DATAFLOW" not in h       # the region lives in hls/engine_top.cpp
    assert "pcd_stage_2(CHAIN[2], CHAIN[3], CFG.slot[2]);" in h


def test_binding_is_one_input(tmp_path):
    ov = load_design("dnn-a").overlay
    a = generate_header(ov, bind_overlay(ov, pack="never"))
    b = generate_header(ov, bind_overlay(ov, pack="always"))
    assert "MulDspPacked" not in a
    # W16 x F8 cannot pack on a DSP48E1: "always" only packs where legal.
    assert "MulDspPacked" not in b
    small = replace(ov, weight_bits=6, feature_bits=6)
    c = generate_header(small, bind_overlay(small, pack="always"))
    assert "pw_stage<16, 8, 138240" in c and ", MulDspPacked>" in c


def test_folded_weight_words_cover_every_layer_within_the_limits():
    for kind, pe, simd, c, mlw in [("pw", 16, 8, 384, 73728), ("conv3", 4, 3, 40, 5000),
                                   ("dw", 4, 1, 100, 900)]:
        words = folded_weight_words(kind, pe, simd, c, mlw)
        per = 9 if kind == "conv3" else 1
        for ic in range(1, c + 1):
            for oc in (1, c // 3, c):
                n = 9 * ic if kind == "dw" else per * ic * oc
                if n > mlw:
                    continue
                need = -(-ic // pe) if kind == "dw" else -(-oc // pe) * -(-ic // simd)
                assert need <= words


def test_bad_overlays_are_refused_with_the_field():
    ov = load_design("dnn-a").overlay
    with pytest.raises(HlsGenError, match="acc_bits"):
        generate_header(replace(ov, acc_bits=30))
    with pytest.raises(HlsGenError, match="convolution stage"):
        generate_header(replace(ov, stages=(Stage("pool"),)))


@needs_gxx
def test_rebuilding_in_one_process_loads_the_new_code():
    d = tiny_design()
    e1 = csim.build(d.overlay)
    ov2 = replace(d.overlay, clock_mhz=125.0)          # another overlay: another hardware ID
    e2 = csim.build(ov2)
    assert e1.path != e2.path
    assert (e1.hw_id, e2.hw_id) == (d.overlay.hardware_id, ov2.hardware_id)
    x = np.zeros((16, 24, 3), np.int64)
    prog = random_program(d)
    r1 = e1.run_pass(pack_feature(x, 8), prog.params, prog.passes[0].desc_offset,
                     prog.passes[0].out_bytes)
    r2 = e2.run_pass(pack_feature(x, 8), prog.params, prog.passes[0].desc_offset,
                     prog.passes[0].out_bytes)
    assert (r1.hw_id, r2.hw_id) == (e1.hw_id, e2.hw_id)
    assert csim.build(d.overlay).path == e1.path        # unchanged: reused


@needs_gxx
def test_engine_refuses_bad_descriptors_and_moves_nothing():
    d = tiny_design()
    eng = csim.build(d.overlay)
    prog = random_program(d)
    ps = prog.passes[0]
    x = pack_feature(np.ones((16, 24, 3), np.int64), 8)
    r = eng.run_pass(x, prog.params, ps.desc_offset + 8, ps.out_bytes)    # not a descriptor
    assert r.status == 1 and r.out.size == 0 and r.in_left == x.size // 8
    bad = prog.params.copy()
    words = bad[ps.desc_offset:].view("<i4")
    words[HEADER_WORDS + LAYER_FIELDS.index("in_c")] = 5                  # wrong chain shape
    r = eng.run_pass(x, bad, ps.desc_offset, ps.out_bytes)
    assert r.status == 2 and r.out.size == 0
    bad = prog.params.copy()
    words = bad[ps.desc_offset:].view("<i4")
    words[2] = 100000                                                      # beyond maxima
    r = eng.run_pass(x, bad, ps.desc_offset, ps.out_bytes)
    assert r.status == 3
    probe = np.array([DESC_MAGIC, 0, 0, 0, 0, 0, 0, 0], "<u4").view(np.uint8)
    r = eng.run_pass(np.zeros(0, np.uint8), probe, 0, 8)                   # a probe
    assert r.status == 0 and r.hw_id == d.overlay.hardware_id and r.out.size == 0


@needs_gxx
def test_output_stream_has_one_tlast_and_full_keep():
    d = tiny_design()
    eng = csim.build(d.overlay)
    prog = random_program(d)
    ps = prog.passes[0]
    x = np.random.default_rng(0).integers(-128, 128, size=(16, 24, 3))
    r = eng.run_pass(pack_feature(x, 8), prog.params, ps.desc_offset, ps.out_bytes)
    assert r.status == 0 and r.n_last == 1 and r.last_on_final and r.keep_ok
    assert r.out.size == ps.out_bytes == feature_bytes(8, 12, 48, 8)


def test_our_stream_header_is_the_one_compiled():
    text = (HLS_DIR / "sim" / "csim_api.cpp").read_text()
    assert "#error" in text and "PCD_OWN_HLS_STREAM" in text
    assert "Xilinx" not in (HLS_DIR / "sim" / "hls_stream.h").read_text()
    cmd = csim.compile_command(HLS_DIR, HLS_DIR / "x.so")
    assert cmd.index(str(HLS_DIR / "sim")) < cmd.index("-isystem")
