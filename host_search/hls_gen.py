"""The overlay header of the HLS accelerator, generated from the design point.

Every overlay parameter the C++ in ``hls/`` uses comes from the header this module writes
(``pcd_config.h``): the datapath widths, the rounding mode (as ``fixedpoint.ROUNDING_ID``
and as the ``ap_fixed`` mode names of ``fixedpoint.AP_QUANT``), the maximum sizes, the
band rows, the clock, the hardware ID, the wire-format constants of
:mod:`pynq_codesign.wire`, and the stage chain: one wrapper function per stage that
declares the stage's buffers with the ``BIND_STORAGE`` / ``ARRAY_PARTITION`` /
``ARRAY_RESHAPE`` directives and instantiates the stage template with the multiplier
binding (``BIND_OP`` through a resource tag) that :func:`host_search.binding.bind_overlay`
decided, so the synthesised engine uses what the QoS model counted.

Entry points: :func:`generate_header` (text), :func:`write_sources` (header plus a copy
of ``hls/`` into a build folder). Both raise :class:`HlsGenError` for an overlay the
engine cannot be built for, naming the field.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from pynq_codesign.design import (Bundle, Design, Layer, LayerShape, Network, Overlay,
                                  check_fits, layer_weights)
from pynq_codesign.fixedpoint import FixedFormat
from pynq_codesign.errors import CodesignError
from pynq_codesign.fixedpoint import AP_QUANT, ROUNDING_ID, ap_overflow, container_bytes
from pynq_codesign import wire

from .binding import (Binding, BufferBinding, bind_overlay, memory_lanes,
                      stage_weight_lanes)



def shipped_dir(name: str) -> Path:
    """A folder of non-Python sources that ships with the code (``hls``, ``overlays``):
    the checkout's top-level folder (a repository or an editable install), else the copy
    a regular install puts inside ``host_search/`` (``setup.py`` maps it there)."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / name, here / name):
        if cand.is_dir():
            return cand
    return here.parent / name


#: The hand-written C++ of the engine (copied next to the generated header).
HLS_DIR = shipped_dir("hls")
HEADER_NAME = "pcd_config.h"

_MUL_TAG = {"dsp": "MulDsp", "fabric": "MulFabric", "dsp_packed": "MulDspPacked"}


class HlsGenError(CodesignError, ValueError):
    """An overlay the HLS engine cannot be generated for (the message says why)."""


@dataclass(frozen=True)
class StageCode:
    """What the header says about one stage: constants and its wrapper function."""

    index: int
    kind: str
    pe: int
    simd: int
    row_elems: int        # elements of an input row its memory holds (Stage.row_capacity)
    max_weights: int      # weights of the largest layer the stage takes
    weight_words: int     # folded weight words the stage's memory holds (binding depth)
    param_stream: int     # index of its parameter stream (-1: none, pool)
    wrapper: str          # C++ of pcd_stage_<index>


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _check_overlay(ov: Overlay) -> None:
    if "pool" == ov.stage_kinds[-1] and all(k == "pool" for k in ov.stage_kinds):
        raise HlsGenError("overlay.stages: the chain needs at least one convolution stage")
    wire.feature_elem_bytes(ov.feature_bits)      # 1 or 2 bytes per lane, else WireError
    if ov.band_rows < 1:
        raise HlsGenError("overlay.band_rows: must be at least 1")
    # The accumulator must hold the largest exact sum plus bias (the emulator is exact).
    worst = 0
    for st in ov.stages:
        n = {"dw": 9, "pw": ov.max_channels, "conv3": 9 * ov.max_channels}.get(st.kind, 0)
        worst = max(worst, n * (1 << (ov.feature_bits - 1)) * (1 << (ov.weight_bits - 1)))
    worst += 1 << (ov.bias_bits - 1)
    if worst >= 1 << (ov.acc_bits - 1):
        need = worst.bit_length() + 1
        raise HlsGenError(f"overlay.acc_bits: {ov.acc_bits} bits cannot hold the largest sum "
                          f"of this overlay (needs {need}); raise acc_bits to {need}")
    if ov.bias_bits > ov.acc_bits:
        raise HlsGenError(f"overlay.bias_bits: {ov.bias_bits} exceeds acc_bits {ov.acc_bits}")


def _buffer(binding: Binding, name: str) -> BufferBinding:
    try:
        return binding.buffer(name)
    except StopIteration:
        raise HlsGenError(f"the binding lists no buffer {name!r}; it was made for another "
                          "overlay") from None


def _storage(var: str, b: BufferBinding) -> str:
    return (f"#pragma HLS BIND_STORAGE variable={var} type=ram_s2p impl={b.impl}"
            f"  // {b.name}: {b.depth} x {b.width} bits x {b.banks} bank(s)"
            f"{', double-buffered' if b.double_buffered else ''}")


def _banked(var: str, b: BufferBinding) -> list[str]:
    """Directives of a memory of whole words: its banks (first dimension) apart, its
    storage bound as the binding says."""
    out = []
    if b.banks > 1 or b.double_buffered:
        out.append(f"#pragma HLS ARRAY_PARTITION variable={var} dim=1 complete")
    return out + [_storage(var, b)]


def _stage_code(k: int, ov: Overlay, binding: Binding, stream_index: int) -> StageCode:
    """The wrapper of stage ``k``: every buffer size is the binding's (depth x lanes x
    banks), checked against what the stage template indexes."""
    st = ov.stages[k]
    kind, pe, simd = st.kind, st.pe, st.simd
    E = st.row_capacity(ov)
    lanes = int(memory_lanes(kind, pe, simd, ov.feature_bits))
    name = f"pcd_stage_{k}"
    head = (f"// stage {k}: {kind}" + (f", PE {pe}" if kind != "pool" else "")
            + (f", SIMD {simd}" if kind in ("pw", "conv3") else "")
            + f", rows of up to {E} elements, words of {lanes} codes")
    sig = (f"static void {name}(beat_stream& in, beat_stream& out, "
           + ("beat_stream& wparams, " if kind != "pool" else "")
           + "const SlotConfig cfg) {")
    lines = [head, sig, f'  PCD_PROCESS("stage{k}");']
    folds = -(-ov.max_channels // lanes)
    if kind == "pool":
        rb, hb = _buffer(binding, f"s{k}_rowbuf"), _buffer(binding, f"s{k}_hold")
        if rb.lanes != lanes or 2 * rb.depth * lanes < E - lanes or hb.depth < folds:
            raise HlsGenError(f"binding: s{k}_rowbuf holds {rb.depth} words of {rb.lanes}, "
                              f"a pool row needs {E // 2} elements")
        lines += [f"  static pool_word rowbuf[{rb.depth}];", *_banked("rowbuf", rb),
                  f"  static pool_word hold[{hb.depth}];", *_banked("hold", hb),
                  f"  pool_stage<{rb.depth}, {hb.depth}>(in, out, cfg, rowbuf, hold);", "}"]
        return StageCode(k, kind, pe, simd, E, 0, 0, -1, "\n".join(lines))

    mb = binding.stage(k)
    tag = _MUL_TAG[mb.mult_impl]
    wb, bb = _buffer(binding, f"s{k}_weights"), _buffer(binding, f"s{k}_bias")
    per_word = int(stage_weight_lanes(kind, pe, simd)) // pe
    if wb.lanes != per_word or wb.banks != pe:
        raise HlsGenError(f"binding: s{k}_weights packs {wb.lanes} weights a word in "
                          f"{wb.banks} bank(s), the {kind} stage reads {per_word} a cycle "
                          f"from each of {pe}")
    words = wb.depth
    maxw = layer_weights(kind, LayerShape(ov.max_channels, 1, 1, ov.max_channels, 1, 1))
    maxw = min(maxw, ov.max_layer_weights, words * per_word * pe)
    bn = bb.depth
    if bb.banks != pe or bn * pe < min(ov.max_channels, pe * words):
        raise HlsGenError(f"binding: s{k}_bias holds {bn * bb.banks} biases in {bb.banks} "
                          f"banks; the stage needs {min(ov.max_channels, pe * words)} in {pe}")
    decl = [f"  static wword<{per_word}>::t weights[{pe}][{words}];"
            f"   // {pe} banks of {words} words of {per_word}",
            *_banked("weights", wb),
            f"  static bias_t bias[{pe}][{bn}];", *_banked("bias", bb)]
    if kind in ("dw", "conv3"):
        lb, cb = _buffer(binding, f"s{k}_line"), _buffer(binding, f"s{k}_cols")
        if lb.banks != 3 or lb.lanes != lanes or lb.depth * lanes < E or \
                cb.banks != 6 or cb.depth < folds:
            raise HlsGenError(f"binding: s{k}_line ({lb.depth} words x {lb.lanes} lanes x "
                              f"{lb.banks} banks) does not hold three rows of {E} elements "
                              f"in words of {lanes}")
        decl = [f"  static fword<{lanes}>::t line[3][{lb.depth}];   // rows y % 3",
                *_banked("line", lb),
                f"  static fword<{lanes}>::t cols[6][{cb.depth}];   // window columns",
                *_banked("cols", cb)] + decl
        if kind == "dw":
            call = (f"  dw_stage<{pe}, {lb.depth}, {cb.depth}, {words}, {bn}, {tag}>"
                    "(in, out, wparams, cfg, line, cols, weights, bias);")
        else:
            call = (f"  conv3_stage<{pe}, {simd}, {lb.depth}, {cb.depth}, {words}, {bn}, "
                    f"{tag}>(in, out, wparams, cfg, line, cols, weights, bias);")
    else:   # pw
        pb = _buffer(binding, f"s{k}_pixel")
        if pb.depth < folds or pb.lanes != lanes or not pb.double_buffered:
            raise HlsGenError(f"binding: s{k}_pixel holds {pb.depth} words of {pb.lanes}, a "
                              f"pixel needs {folds} of {lanes} in each of two halves")
        decl = [f"  static fword<{lanes}>::t pix[2][{pb.depth}];   // ping-pong",
                *_banked("pix", pb)] + decl
        call = (f"  pw_stage<{pe}, {simd}, {pb.depth}, {words}, {bn}, {tag}>"
                "(in, out, wparams, cfg, pix, weights, bias);")
    lines += [f"  // multipliers: {mb.mult_impl} ({mb.reason})"] + decl + [call, "}"]
    return StageCode(k, kind, pe, simd, E, maxw, words, stream_index, "\n".join(lines))


def _define(name: str, value: object, comment: str = "") -> str:
    c = f"  // {comment}" if comment else ""
    return f"#define {name} {value}{c}"


def _c_array(values: list[int]) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def generate_header(overlay: Overlay, binding: Binding | None = None,
                    cosim_param_bytes: int | None = None) -> str:
    """The text of ``pcd_config.h`` for ``overlay`` (binding: ``bind_overlay`` by default).

    ``cosim_param_bytes``: size of the parameter buffer the C/RTL co-simulation feeds the
    m_axi port (the package's ``params.bin``); by default a bound from the overlay.
    """
    ov = overlay
    _check_overlay(ov)
    binding = binding or bind_overlay(ov)
    fb, wbits = ov.feature_bits, ov.weight_bits
    eb = wire.feature_elem_bytes(fb)
    lanes = wire.BEAT_BYTES // eb
    wbytes = container_bytes(wbits)
    max_pixel_beats = _ceil(ov.max_channels, lanes)
    max_row_beats = _ceil(ov.max_row_elems, lanes) + ov.max_width
    rmode = ov.rounding_mode
    stages: list[StageCode] = []
    n_streams = 0
    for k, st in enumerate(ov.stages):
        idx = -1 if st.kind == "pool" else n_streams
        n_streams += 0 if st.kind == "pool" else 1
        stages.append(_stage_code(k, ov, binding, idx))
    max_weight_beats = _ceil(ov.max_layer_weights * wbytes, 8) + 1
    if cosim_param_bytes is None:
        cosim_param_bytes = sum(_ceil(s.max_weights * wbytes, 8) * 8 + 4 * ov.max_channels + 8
                                for s in stages if s.kind != "pool") + 4096
    out = [
        "// GENERATED by host_search/hls_gen.py from the overlay half of a design point.",
        "// Do not edit: regenerate (codesign build-overlay) when the overlay changes.",
        f"// overlay: {json.dumps(ov.to_dict(), sort_keys=True)}",
        "#ifndef PCD_CONFIG_H",
        "#define PCD_CONFIG_H",
        "",
        "// --- identity and clock",
        _define("PCD_HW_ID", f"0x{ov.hardware_id:08x}u", "hardware ID: hash of the overlay"),
        _define("PCD_DEVICE", json.dumps(ov.device)),
        _define("PCD_CLOCK_MHZ", f"{ov.clock_mhz:g}"),
        _define("PCD_CLOCK_PERIOD_NS", f"{1000.0 / ov.clock_mhz:.4f}"),
        "",
        "// --- datapath",
        _define("PCD_FEATURE_BITS", fb), _define("PCD_FEATURE_BYTES", eb, "wire lane"),
        _define("PCD_LANES", lanes, "feature codes per 64-bit beat"),
        _define("PCD_WEIGHT_BITS", wbits), _define("PCD_WEIGHT_BYTES", wbytes, "container"),
        _define("PCD_BIAS_BITS", ov.bias_bits), _define("PCD_ACC_BITS", ov.acc_bits),
        _define("PCD_ROUNDING", ROUNDING_ID[rmode], f"{rmode.value} (fixedpoint.ROUNDING_ID)"),
        _define("PCD_AP_QUANT", AP_QUANT[rmode], "the same rounding as an ap_fixed mode"),
        _define("PCD_AP_OVERFLOW", ap_overflow(ov.narrow_range)),
        _define("PCD_NARROW_RANGE", int(ov.narrow_range)),
        "",
        "// --- largest sizes (buffers) and loop trip-count hints",
        _define("PCD_MAX_CHANNELS", ov.max_channels), _define("PCD_MAX_WIDTH", ov.max_width),
        _define("PCD_MAX_ROW_ELEMS", ov.max_row_elems),
        _define("PCD_MAX_LAYER_WEIGHTS", ov.max_layer_weights),
        _define("PCD_BAND_ROWS", ov.band_rows, "rows per band (the row-band tile)"),
        _define("PCD_MAX_PIXEL_BEATS", max_pixel_beats),
        _define("PCD_TRIP_MAP_BEATS", max_row_beats * ov.max_width),
        _define("PCD_TRIP_BAND_PIXELS", ov.band_rows * ov.max_width),
        _define("PCD_TRIP_WEIGHT_BEATS", max_weight_beats),
        _define("PCD_FIFO_DEPTH", max(16, 2 * max_pixel_beats), "beats between stages"),
        _define("PCD_WORD_FIFO_DEPTH", max(4, 2 * max_pixel_beats), "words inside a stage"),
        _define("PCD_TRIP_MAP_WORDS", (ov.max_width + 1) ** 2 * ov.max_channels),
        _define("PCD_DESC_BEATS", _ceil(wire.HEADER_WORDS + len(stages) * wire.LAYER_WORDS, 2),
                "descriptor of a pass with a layer on every stage"),
        _define("PCD_PARAM_FIFO_DEPTH", 16),
        _define("PCD_COSIM_PARAM_BEATS", _ceil(cosim_param_bytes, 8)),
        "",
        "// --- wire format (pynq_codesign.wire)",
        _define("PCD_DESC_MAGIC", f"0x{wire.DESC_MAGIC:08x}u"),
        _define("PCD_HEADER_WORDS", wire.HEADER_WORDS),
        _define("PCD_LAYER_WORDS", wire.LAYER_WORDS),
    ]
    out += [_define(f"PCD_H_{f.upper()}", i) for i, f in enumerate(wire.HEADER_FIELDS)]
    out += [_define(f"PCD_L_{f.upper()}", i) for i, f in enumerate(wire.LAYER_FIELDS)]
    out += [_define(f"PCD_KIND_{k.upper()}", v) for k, v in wire.LAYER_TYPE_ID.items()]
    out += [_define(f"PCD_ACT_{k.upper()}", v) for k, v in wire.ACTIVATION_ID.items()]
    out += [
        "",
        "// --- the stage chain",
        _define("PCD_N_STAGES", len(stages)),
        _define("PCD_STAGE_KINDS", _c_array([wire.LAYER_TYPE_ID[s.kind] for s in stages])),
        _define("PCD_STAGE_PE", _c_array([s.pe for s in stages])),
        _define("PCD_STAGE_SIMD", _c_array([s.simd for s in stages])),
        _define("PCD_STAGE_ROW_ELEMS", _c_array([s.row_elems for s in stages])),
        _define("PCD_STAGE_WORD_LANES", _c_array(
            [int(memory_lanes(s.kind, s.pe, s.simd, fb)) for s in stages])),
        _define("PCD_STAGE_MAX_WEIGHTS", _c_array([s.max_weights for s in stages])),
        _define("PCD_STAGE_WEIGHT_WORDS", _c_array([s.weight_words for s in stages])),
        _define("PCD_N_PARAM_STREAMS", n_streams),
        _define("PCD_STAGE_PARAM_STREAM", _c_array([s.param_stream for s in stages])),
        "",
        "#include <ap_fixed.h>",
        "// A fixed-point format of this overlay's datapath: rounding and saturation as ap_fixed",
        "// names them (the integer requantiser in requant.h computes the same).",
        "template <int W, int I>",
        "using pcd_fixed = ap_fixed<W, I, PCD_AP_QUANT, PCD_AP_OVERFLOW>;",
        "",
        '#include "pcd_kernels.h"',
        "",
    ]
    for s in stages:
        out += [s.wrapper, ""]
    calls = []
    for s in stages:
        wp = f"WP[{s.param_stream}], " if s.param_stream >= 0 else ""
        calls.append(f"  {'pcd_stage_%d' % s.index}(CHAIN[{s.index}], CHAIN[{s.index + 1}], "
                     f"{wp}s{s.index});")
    n = len(stages)
    out += ["// Each stage process gets its own descriptor scalars (one SlotConfig each).",
            "#define PCD_SLOT_PARAMS " + ", ".join(f"const SlotConfig s{k}" for k in range(n)),
            "#define PCD_SLOT_ARGS(CFG) " + ", ".join(f"CFG.slot[{k}]" for k in range(n)),
            "// The dataflow processes of the chain, in order (used by engine_top.cpp).",
            "#define PCD_STAGE_CHAIN(CHAIN, WP) \\"]
    out += [c + " \\" for c in calls[:-1]] + [calls[-1]]
    out += ["", "#endif  // PCD_CONFIG_H", ""]
    return "\n".join(out)


def hls_sources() -> list[Path]:
    """The hand-written C++ of the engine (relative layout kept when copied)."""
    files = sorted(p for p in HLS_DIR.rglob("*") if p.is_file()
                   and p.suffix in (".h", ".cpp", ".tcl") and "__pycache__" not in p.parts)
    if not files:
        raise HlsGenError(f"{HLS_DIR}: the HLS sources are missing from this installation")
    return files


def write_sources(dest: str | Path, overlay: Overlay, binding: Binding | None = None,
                  cosim_param_bytes: int | None = None) -> Path:
    """Copy ``hls/`` into ``dest`` and write the generated header beside it; returns the
    header's path."""
    dest = Path(dest)
    header = generate_header(overlay, binding, cosim_param_bytes)
    for src in hls_sources():
        rel = src.relative_to(HLS_DIR)
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / rel)
    path = dest / HEADER_NAME
    path.write_text(header)
    return path


def cosim_design(overlay: Overlay, height: int = 5, width: int = 7) -> Design:
    """A tiny network on ``overlay`` for C/RTL co-simulation: one layer per stage of the
    chain, in chain order (one pass through every stage), on a ``height x width`` map
    with enough channels for several folds of each stage where the overlay allows, odd
    sizes so the window's edges and the pool's dropped edge are exercised. The overlay
    (and so the hardware ID and the RTL) is the package's; only the network is small, so
    the RTL simulation of every stage takes minutes, not the hours a 160x360 map would."""
    ov = overlay
    widest = max(max(st.pe, st.simd) for st in ov.stages)
    fmt = FixedFormat(ov.feature_bits, max(ov.feature_bits // 2, 1))
    wfmt = FixedFormat(ov.weight_bits, 1)
    for c in range(min(ov.max_channels, 2 * widest + 1), 0, -1):
        layers = []
        for st in ov.stages:
            if st.kind == "pool":
                layers.append(Layer("pool"))
            else:
                oc = c if st.kind != "dw" else None
                layers.append(Layer(st.kind, oc, 1, "relu", wfmt, fmt))
        net = Network(input_channels=c, input_height=height, input_width=width,
                      bundles=(Bundle(tuple(layers)),), input_format=fmt,
                      weight_format=wfmt, feature_format=fmt)
        if not check_fits(net, ov):
            return Design("cosim", ov, net)
    raise HlsGenError("no co-simulation network fits this overlay (even one channel)")
