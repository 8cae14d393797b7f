"""The generated overlay header and the C++ it configures: compiles cleanly, every overlay
parameter comes from the header, bindings become directives, the engine checks its input."""
import re
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from host_search import csim
from host_search.binding import bind_overlay
from host_search.hls_gen import (HLS_DIR, HlsGenError, generate_header, hls_sources,
                                 write_sources)
from pynq_codesign.design import Stage, load_design, stage_row_elems
from pynq_codesign.wire import (HEADER_WORDS, LAYER_FIELDS, descriptor_status, probe_descriptor,
                                feature_bytes, pack_feature)
from tests.helpers import random_program, tiny_design

needs_gxx = pytest.mark.skipif(not csim.shutil.which("g++"), reason="needs g++")

# Macros the hand-written code defines or tests itself (include guards, build switches).
OWN_MACROS = {"PCD_OWN_HLS_STREAM", "PCD_GXX_SIM", "PCD_API", "PCD_CONFIG_H",
              # the access audit's hooks (hls/audit.h), empty outside the audit build
              "PCD_AUDIT", "PCD_ITER", "PCD_LOOP", "PCD_MAXI_READ", "PCD_PROCESS",
              "PCD_STREAM_AUDIT", "PCD_SUBPROCESS"}


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
    assert "pcd_stage_2(CHAIN[2], CHAIN[3], s2);" in h
    assert "#define PCD_SLOT_ARGS(CFG) CFG.slot[0], CFG.slot[1], CFG.slot[2]" in h


def test_binding_is_one_input(tmp_path):
    ov = load_design("dnn-a").overlay
    a = generate_header(ov, bind_overlay(ov, pack="never"))
    b = generate_header(ov, bind_overlay(ov, pack="always"))
    assert "MulDspPacked" not in a
    # W16 x F8 cannot pack on a DSP48E1: "always" only packs where legal.
    assert "MulDspPacked" not in b
    small = replace(ov, weight_bits=6, feature_bits=6)
    c = generate_header(small, bind_overlay(small, pack="always"))
    # the pw stage's pixel buffer: one pixel of max_channels in words of simd 8 codes
    pix = -(-small.max_channels // 8)
    assert f"pw_stage<16, 8, {pix}, " in c and ", MulDspPacked>" in c


def _wrapper(header: str, k: int) -> str:
    start = header.index(f"static void pcd_stage_{k}(")
    return header[start:header.index("\n}", start)]


@pytest.mark.parametrize("name", ["dnn-a", "dnn-b", "dnn-c"])
def test_generated_buffer_sizes_are_the_bindings(name):
    """Every array the generated wrappers declare, and the sizes the stage templates get,
    are the binding's banks x depth (words of its lanes): no size is computed twice."""
    ov = load_design(name).overlay
    b = bind_overlay(ov)
    h = generate_header(ov, b)
    for k, st in enumerate(ov.stages):
        w = _wrapper(h, k)
        if st.kind == "pool":
            rb, hb = b.buffer(f"s{k}_rowbuf"), b.buffer(f"s{k}_hold")
            assert f"static pool_word rowbuf[{rb.depth}];" in w
            assert f"pool_stage<{rb.depth}, {hb.depth}>" in w
            continue
        wt, bias = b.buffer(f"s{k}_weights"), b.buffer(f"s{k}_bias")
        assert f"static wword<{wt.lanes}>::t weights[{wt.banks}][{wt.depth}];" in w
        assert wt.banks == bias.banks == st.pe
        assert f"static bias_t bias[{bias.banks}][{bias.depth}];" in w
        if st.kind == "pw":
            pix = b.buffer(f"s{k}_pixel")
            assert f"static fword<{pix.lanes}>::t pix[2][{pix.depth}];" in w
            assert (f"pw_stage<{st.pe}, {st.simd}, {pix.depth}, {wt.depth}, {bias.depth},"
                    in w)
        else:
            line, cols = b.buffer(f"s{k}_line"), b.buffer(f"s{k}_cols")
            assert f"static fword<{line.lanes}>::t line[3][{line.depth}];" in w
            assert f"static fword<{cols.lanes}>::t cols[6][{cols.depth}];" in w
            assert f"<{st.pe}, {line.depth}, {cols.depth}, {wt.depth}, {bias.depth}," in w
    words = [b.buffer(f"s{k}_weights").depth if st.kind != "pool" else 0
             for k, st in enumerate(ov.stages)]
    assert f"#define PCD_STAGE_WEIGHT_WORDS {{{', '.join(map(str, words))}}}" in h
    rows = [st.row_capacity(ov) for st in ov.stages]
    assert f"#define PCD_STAGE_ROW_ELEMS {{{', '.join(map(str, rows))}}}" in h


def test_per_stage_capacities_size_the_templates():
    """A stage's own row_elems / weight_words, not the overlay-wide maxima, size its
    memories in the header."""
    ov = load_design("dnn-a").overlay
    dw, pw, pool = ov.stages
    assert dw.row_elems < ov.max_row_elems           # the reference sizes per stage
    small = replace(ov, stages=(replace(dw, row_elems=72, weight_words=5),
                                replace(pw, row_elems=100, weight_words=7),
                                replace(pool, row_elems=200)))
    h = generate_header(small)
    c = small.max_channels
    # dw pe 4: three rows of 72 / 4 = 18 words; 4 banks of 5 weight words, bias 5
    assert "static fword<4>::t line[3][18];" in _wrapper(h, 0)
    assert f"dw_stage<4, 18, {-(-c // 4)}, 5, 5, MulDsp>" in _wrapper(h, 0)
    # pw: a pixel of ceil(C / 8) words; 16 banks of 7 weight words; bias 16 x min(., 7)
    assert f"pw_stage<16, 8, {-(-c // 8)}, 7, {min(-(-c // 16), 7)}, MulDsp>" in _wrapper(h, 1)
    assert f"pool_stage<13, {-(-c // 8)}>" in _wrapper(h, 2)   # ceil(200/2) = 100 -> 13 x 8


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
    assert descriptor_status(prog.params, ps.desc_offset + 8, d.overlay) == 1
    assert descriptor_status(prog.params, ps.desc_offset, d.overlay) == 0
    bad = prog.params.copy()
    words = bad[ps.desc_offset:].view("<i4")
    words[HEADER_WORDS + LAYER_FIELDS.index("in_c")] = 5                  # wrong chain shape
    r = eng.run_pass(x, bad, ps.desc_offset, ps.out_bytes)
    assert r.status == 2 and r.out.size == 0
    assert descriptor_status(bad, ps.desc_offset, d.overlay) == 2
    bad = prog.params.copy()
    words = bad[ps.desc_offset:].view("<i4")
    words[2] = 100000                                                      # beyond maxima
    r = eng.run_pass(x, bad, ps.desc_offset, ps.out_bytes)
    assert r.status == 3
    assert descriptor_status(bad, ps.desc_offset, d.overlay) == 3
    probe = probe_descriptor()
    r = eng.run_pass(np.zeros(0, np.uint8), probe, 0, 8)                   # a probe
    assert r.status == 0 and r.hw_id == d.overlay.hardware_id and r.out.size == 0


@needs_gxx
def test_engine_refuses_a_row_beyond_the_stage_capacity():
    """The dw stage's line buffer holds rows of its own row_elems: a layer with a longer
    input row is refused (too big) rather than written past the buffer."""
    d = tiny_design()
    prog = random_program(d)
    ps = prog.passes[0]                      # DW3(3) on 3 x 16 x 24
    x = pack_feature(np.ones((16, 24, 3), np.int64), 8)
    st = d.overlay.stages[0]
    row = stage_row_elems(st.kind, st.pe, st.simd, d.overlay.feature_bits, 24, 3)
    assert row >= 72                         # channels padded to the stage's words
    for cap, status in ((row - 1, 3), (row, 0)):
        dw = replace(d.overlay.stages[0], row_elems=cap)
        ov = replace(d.overlay, stages=(dw,) + d.overlay.stages[1:])
        r = csim.build(ov).run_pass(x, prog.params, ps.desc_offset, ps.out_bytes)
        assert r.status == status, cap
        assert descriptor_status(prog.params, ps.desc_offset, ov) == status, cap


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
