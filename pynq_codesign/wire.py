"""Stream and DDR layouts shared by the accelerator, the driver and the emulator.

The accelerator owns this format; ``docs/wire-format.md`` explains it for people and
this module encodes it for programs. In short:

* **Feature maps** travel as AXI4-Stream beats of 64 bits (the PYNQ-Z1 HP port width),
  TKEEP all ones, exactly one TLAST (on the last beat of the transfer). In DDR a map is
  plain HWC: row-major, channels innermost, each pixel's channels padded with zeros to a
  whole number of beats. Channel ``c`` of a pixel sits at byte ``c * E`` of the pixel
  (little-endian, ``E`` = 1 byte for feature_bits <= 8, else 2). One pass's output
  transfer is the next pass's input unchanged.
* **Parameters** (one DDR buffer the IP reads through its ``m_axi`` port): per
  convolution, its weights in natural order (dw ``[C][3][3]``, pw ``[OC][IC]``, conv3
  ``[OC][IC][3][3]``) in containers of 1 or 2 bytes, then its biases as int32 at the
  accumulator's scale; then one *pass descriptor* per engine pass. Every section starts
  on an 8-byte boundary.
* **Pass descriptor**: int32 words, a header then one fixed-size entry per layer
  (:data:`HEADER_FIELDS`, :data:`LAYER_FIELDS`). The engine reads it at the start of an
  invocation from ``params + desc_offset``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .design import (Design, LayerShape, Overlay, layer_output, layer_weights,
                     plan_passes, stage_row_elems, weight_words)
from .errors import CodesignError
from .fixedpoint import acc_frac, container_bytes, container_dtype

BEAT_BITS = 64
BEAT_BYTES = BEAT_BITS // 8
DESC_MAGIC = 0x50434442          # "PCDB"

LAYER_TYPE_ID = {"dw": 0, "pw": 1, "conv3": 2, "pool": 3}
ACTIVATION_ID = {"none": 0, "relu": 1, "relu6": 2}

HEADER_FIELDS = ("magic", "n_layers", "in_c", "in_h", "in_w", "out_c", "out_h", "out_w")
LAYER_FIELDS = ("type", "slot", "in_c", "in_h", "in_w", "out_c", "out_h", "out_w",
                "stride", "activation", "shift", "out_min", "out_max",
                "weight_offset", "bias_offset", "relu6_lo", "relu6_hi",
                "reserved0", "reserved1", "reserved2")
HEADER_WORDS = len(HEADER_FIELDS)
LAYER_WORDS = len(LAYER_FIELDS)

#: The accelerator's AXI4-Lite register map (``s_axi_control``), byte offsets exactly as
#: Vitis HLS lays out the top function
#: ``pcd_engine(in_stream, out_stream, params, desc_offset, hw_id, status)``
#: (``hls/engine_top.cpp``): the block-level control registers, then one slot per scalar
#: argument in argument order. ``params`` is the 64-bit m_axi base address of the parameter
#: buffer (low word here, high word at ``params_hi``); ``desc_offset`` is the byte offset of
#: the pass descriptor inside it (8-byte aligned); ``hw_id`` is read-only and holds the
#: overlay's hardware ID once the core has run at least once (a descriptor with
#: ``n_layers == 0`` is a probe: the core sets ``hw_id`` and returns without stream I/O).
REGISTERS = {
    "control": 0x00,        # bit0 ap_start, bit1 ap_done (clear on read), bit2 ap_idle, bit3 ap_ready
    "gier": 0x04,           # global interrupt enable
    "ip_ier": 0x08,         # ip interrupt enable (bit0 ap_done)
    "ip_isr": 0x0C,         # ip interrupt status
    "params": 0x10,         # parameter buffer address [31:0]
    "params_hi": 0x14,      # parameter buffer address [63:32] (0 on the 32-bit Zynq-7000)
    "desc_offset": 0x1C,    # byte offset of this pass's descriptor in the parameter buffer
    "hw_id": 0x24,          # read-only hardware ID (overlay hash)
    "hw_id_ctrl": 0x28,     # bit0 hw_id_ap_vld (clear on read)
    "status": 0x34,         # read-only: STATUS code of the last invocation
    "status_ctrl": 0x38,    # bit0 status_ap_vld (clear on read)
}
#: Values of the ``status`` register: why the engine refused a descriptor (it then moves
#: no stream data, so the DMA transfers of that pass never complete).
STATUS = {0: "ok", 1: "bad descriptor magic, offset or layer count",
          2: "descriptor does not match the stage chain (slot order, kinds, shapes)",
          3: "a size beyond the overlay's maxima (channels, width, row, weights)"}
#: The VLNV (vendor:library:name:version) the HLS build exports the engine under
#: (``hls/run_hls.tcl``'s ``config_export``, via the ``config.tcl`` the overlay build
#: writes) and the block design instantiates; the ``.hwh`` and pynq's ``ip_dict`` carry it
#: as the IP's ``type`` (the version differs per overlay).
ENGINE_VENDOR = "pynq-codesign.org"
ENGINE_LIBRARY = "hls"
ENGINE_IP_NAME = "pcd_engine"
ENGINE_VLNV_PREFIX = f"{ENGINE_VENDOR}:{ENGINE_LIBRARY}:{ENGINE_IP_NAME}:"
#: Bits of the control register.
CONTROL_AP_START, CONTROL_AP_DONE, CONTROL_AP_IDLE, CONTROL_AP_READY = 0x1, 0x2, 0x4, 0x8


class WireError(CodesignError, ValueError):
    """Data that does not have the layout the accelerator expects."""


def _align(n: int, a: int = BEAT_BYTES) -> int:
    return (n + a - 1) // a * a


# ---------------------------------------------------------------------------
# Feature maps.
# ---------------------------------------------------------------------------

def feature_elem_bytes(feature_bits: int) -> int:
    """Bytes per feature element on the wire (1 or 2)."""
    n = container_bytes(feature_bits)
    if n > 2:
        raise WireError(f"feature maps of {feature_bits} bits do not fit a 16-bit lane")
    return n


def padded_channels(channels: int, feature_bits: int) -> int:
    """Channels per pixel after padding to whole beats."""
    per_beat = BEAT_BYTES // feature_elem_bytes(feature_bits)
    return _align(channels, per_beat)


def feature_bytes(h: int, w: int, c: int, feature_bits: int) -> int:
    """Bytes of an ``h x w x c`` map in DDR (and of its DMA transfer)."""
    return h * w * padded_channels(c, feature_bits) * feature_elem_bytes(feature_bits)


def pack_feature(codes: np.ndarray, feature_bits: int) -> np.ndarray:
    """Integer codes ``[H, W, C]`` to the DDR/stream layout (uint8, little-endian)."""
    codes = np.asarray(codes)
    if codes.ndim != 3:
        raise WireError(f"a feature map is [H, W, C]; got shape {codes.shape}")
    h, w, c = codes.shape
    cp = padded_channels(c, feature_bits)
    dt = container_dtype(feature_bits, signed=True)
    out = np.zeros((h, w, cp), dtype=dt)
    out[:, :, :c] = codes
    return out.reshape(-1).view(np.uint8)


def unpack_feature(buf: np.ndarray, h: int, w: int, c: int, feature_bits: int) -> np.ndarray:
    """The DDR/stream layout back to int64 codes ``[H, W, C]``."""
    buf = np.ascontiguousarray(np.asarray(buf).reshape(-1).view(np.uint8))
    need = feature_bytes(h, w, c, feature_bits)
    if buf.size < need:
        raise WireError(f"feature buffer holds {buf.size} bytes; {h}x{w}x{c} needs {need}")
    cp = padded_channels(c, feature_bits)
    dt = container_dtype(feature_bits, signed=True)
    arr = buf[:need].view(dt).reshape(h, w, cp)
    return arr[:, :, :c].astype(np.int64)


def beats(nbytes: int) -> int:
    """64-bit beats of a transfer of ``nbytes`` (always whole beats here)."""
    if nbytes % BEAT_BYTES:
        raise WireError(f"{nbytes} bytes is not a whole number of {BEAT_BYTES}-byte beats")
    return nbytes // BEAT_BYTES


# ---------------------------------------------------------------------------
# Parameters: weights, biases and pass descriptors in one buffer.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerParams:
    """Integer codes of one convolution: weights in natural order, biases (int64)."""

    weights: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class PassInfo:
    """Where one pass's descriptor lies and what it moves."""

    bundle: int
    layers: tuple[int, ...]
    desc_offset: int
    in_shape: tuple[int, int, int]     # (C, H, W)
    out_shape: tuple[int, int, int]
    in_bytes: int
    out_bytes: int


@dataclass(frozen=True)
class Program:
    """The parameter buffer (``params``) and the passes that run over it."""

    params: np.ndarray                 # uint8
    passes: tuple[PassInfo, ...]
    weight_offsets: tuple[int | None, ...]   # per layer (None for pool)
    bias_offsets: tuple[int | None, ...]


def weight_shape(kind: str, in_c: int, out_c: int) -> tuple[int, ...]:
    """Natural order of a layer's weights."""
    return {"dw": (in_c, 3, 3), "pw": (out_c, in_c), "conv3": (out_c, in_c, 3, 3)}[kind]


def relu6_limit(frac: int) -> int:
    """6.0 as an integer at a scale of ``2**-frac`` (floored when not exact)."""
    return 6 << frac if frac >= 0 else 6 >> -frac


def build_program(design: Design, layer_params: list[LayerParams | None]) -> Program:
    """Pack a design's integer weights and biases and its pass descriptors.

    ``layer_params`` has one entry per layer (``None`` for pools). Codes must already be
    within their formats; this checks and refuses values that would not fit.
    """
    net, ov = design.network, design.overlay
    layers, shapes, fmts = net.layers, net.shapes(), net.formats()
    if len(layer_params) != len(layers):
        raise WireError(f"{len(layer_params)} parameter sets for {len(layers)} layers")
    wdt = container_dtype(ov.weight_bits, signed=True)
    chunks: list[bytes] = []
    pos = 0
    w_offs: list[int | None] = []
    b_offs: list[int | None] = []

    def put(data: bytes) -> int:
        nonlocal pos
        start = pos
        chunks.append(data + b"\0" * (_align(len(data)) - len(data)))
        pos += _align(len(data))
        return start

    for i, (lay, s, (fin, wf, fout), p) in enumerate(zip(layers, shapes, fmts, layer_params)):
        if not lay.is_conv:
            if p is not None:
                raise WireError(f"layer {i} ({lay.type}) has no parameters, got some")
            w_offs.append(None)
            b_offs.append(None)
            continue
        if p is None:
            raise WireError(f"layer {i} ({lay.type}) needs weights and biases")
        shape = weight_shape(lay.type, s.in_c, s.out_c)
        w = np.asarray(p.weights, dtype=np.int64)
        b = np.asarray(p.bias, dtype=np.int64)
        if w.shape != shape:
            raise WireError(f"layer {i} ({lay.type}): weights of shape {w.shape}, want {shape}")
        if b.shape != (s.out_c,):
            raise WireError(f"layer {i} ({lay.type}): bias of shape {b.shape}, want {(s.out_c,)}")
        if w.size and (w.min() < wf.code_min() or w.max() > wf.code_max()):
            raise WireError(f"layer {i}: weight codes outside {wf}")
        bmax = (1 << (ov.bias_bits - 1)) - 1
        if b.size and (b.min() < -bmax - 1 or b.max() > bmax):
            raise WireError(f"layer {i}: bias codes outside {ov.bias_bits} bits")
        w_offs.append(put(w.astype(wdt).tobytes()))
        b_offs.append(put(b.astype("<i4").tobytes()))

    passes: list[PassInfo] = []
    fb = ov.feature_bits
    for ps in plan_passes(net, ov):
        first, last = shapes[ps.layers[0]], shapes[ps.layers[-1]]
        words = [DESC_MAGIC, len(ps.layers), first.in_c, first.in_h, first.in_w,
                 last.out_c, last.out_h, last.out_w]
        for gi, slot in zip(ps.layers, ps.slots):
            lay, s = layers[gi], shapes[gi]
            fin, wf, fout = fmts[gi]
            if lay.is_conv:
                af = acc_frac(fin, wf)
                shift = af - fout.frac
                lim = relu6_limit(af)
            else:
                shift, lim = 0, 0
            words += [LAYER_TYPE_ID[lay.type], slot, s.in_c, s.in_h, s.in_w, s.out_c, s.out_h,
                      s.out_w, lay.stride, ACTIVATION_ID[lay.activation], shift,
                      fout.code_min(ov.narrow_range), fout.code_max(),
                      -1 if w_offs[gi] is None else w_offs[gi],
                      -1 if b_offs[gi] is None else b_offs[gi],
                      lim & 0xFFFFFFFF, (lim >> 32) & 0xFFFFFFFF, 0, 0, 0]
        off = put(_words(words).tobytes())
        passes.append(PassInfo(
            ps.bundle, ps.layers, off, (first.in_c, first.in_h, first.in_w),
            (last.out_c, last.out_h, last.out_w),
            feature_bytes(first.in_h, first.in_w, first.in_c, fb),
            feature_bytes(last.out_h, last.out_w, last.out_c, fb)))
    params = np.frombuffer(b"".join(chunks), dtype=np.uint8).copy()
    return Program(params, tuple(passes), tuple(w_offs), tuple(b_offs))


def _words(values: list[int]) -> np.ndarray:
    """Descriptor words (int32, little-endian) from ints that may be given unsigned."""
    arr = np.array(values, dtype=np.int64)
    return np.where(arr > 0x7FFFFFFF, arr - (1 << 32), arr).astype("<i4")


def probe_descriptor() -> np.ndarray:
    """A pass descriptor with no layers (uint8): the engine sets ``hw_id`` and returns
    without touching its streams (how a driver reads the ID of a loaded bitstream)."""
    return _words([DESC_MAGIC] + [0] * (HEADER_WORDS - 1)).view(np.uint8)


def read_descriptor(params: np.ndarray, offset: int) -> tuple[dict, list[dict]]:
    """Decode one pass descriptor (header, layer entries) from the parameter buffer."""
    buf = np.asarray(params).view(np.uint8)
    head = buf[offset:offset + 4 * HEADER_WORDS].view("<i4")
    if head.size < HEADER_WORDS or (int(head[0]) & 0xFFFFFFFF) != DESC_MAGIC:
        raise WireError(f"no pass descriptor at offset {offset} (bad magic)")
    header = dict(zip(HEADER_FIELDS, (int(x) for x in head)))
    n = header["n_layers"]
    body = buf[offset + 4 * HEADER_WORDS: offset + 4 * (HEADER_WORDS + n * LAYER_WORDS)]
    body = body.view("<i4").reshape(n, LAYER_WORDS)
    entries = [dict(zip(LAYER_FIELDS, (int(x) for x in row))) for row in body]
    for e in entries:
        e["relu6_limit"] = (e["relu6_lo"] & 0xFFFFFFFF) | ((e["relu6_hi"] & 0xFFFFFFFF) << 32)
    return header, entries


def read_layer_params(params: np.ndarray, entry: dict, overlay: Overlay) -> LayerParams:
    """The weights and biases a descriptor entry points at (int64 codes)."""
    buf = np.asarray(params).view(np.uint8)
    kind = {v: k for k, v in LAYER_TYPE_ID.items()}[entry["type"]]
    shape = weight_shape(kind, entry["in_c"], entry["out_c"])
    wdt = container_dtype(overlay.weight_bits, signed=True)
    n = int(np.prod(shape))
    wo, bo = entry["weight_offset"], entry["bias_offset"]
    w = buf[wo: wo + n * wdt.itemsize].view(wdt).reshape(shape).astype(np.int64)
    b = buf[bo: bo + 4 * entry["out_c"]].view("<i4").astype(np.int64)
    return LayerParams(w, b)


def descriptor_status(params: np.ndarray, offset: int, overlay: Overlay) -> int:
    """The :data:`STATUS` code the engine gives the descriptor at ``offset``.

    The same checks as the C++ descriptor reader (hls/descriptor.h), for the simulated
    board and for tools that want to know before they start a pass: 1 bad magic, offset or
    layer count; 2 slots out of chain order, a kind or stride the slot cannot run, shapes
    that do not flow from one slot to the next; 3 a size beyond the overlay's maxima or a
    stage's own memories. 0: the engine runs it.
    """
    buf = np.asarray(params).view(np.uint8)
    if offset < 0 or offset % BEAT_BYTES or offset + 4 * HEADER_WORDS > buf.size:
        return 1
    try:
        header, entries = read_descriptor(buf, offset)
    except (WireError, ValueError):
        return 1
    n = header["n_layers"]
    if n < 0 or n > len(overlay.stages):
        return 1
    if n == 0:
        return 0                                   # a probe

    def fits(c: int, h: int, w: int) -> bool:
        return (1 <= c <= overlay.max_channels and h >= 1 and 1 <= w <= overlay.max_width
                and w * c <= overlay.max_row_elems)

    if not fits(header["in_c"], header["in_h"], header["in_w"]) or \
            not fits(header["out_c"], header["out_h"], header["out_w"]):
        return 3
    kinds = {v: k for k, v in LAYER_TYPE_ID.items()}
    last = -1
    by_slot: dict[int, dict] = {}
    for e in entries:
        k = e["slot"]
        if k <= last or k >= len(overlay.stages):
            return 2
        last = k
        st = overlay.stages[k]
        kind = kinds.get(e["type"])
        if kind != st.kind or not 1 <= e["stride"] <= 2 or \
                (kind not in ("dw", "conv3") and e["stride"] != 1) or \
                not -32 <= e["shift"] <= 62 or e["activation"] not in ACTIVATION_ID.values():
            return 2
        shape = LayerShape(e["in_c"], e["in_h"], e["in_w"], e["out_c"], e["out_h"], e["out_w"])
        if not fits(shape.in_c, shape.in_h, shape.in_w) or \
                not fits(shape.out_c, shape.out_h, shape.out_w) or \
                stage_row_elems(kind, st.pe, st.simd, overlay.feature_bits, shape.in_w,
                                shape.in_c) > st.row_capacity(overlay) or \
                layer_weights(kind, shape) > overlay.max_layer_weights or \
                (st.weight_words is not None and
                 weight_words(kind, st.pe, st.simd, shape.in_c, shape.out_c) > st.weight_words):
            return 3
        if not _output_shape_ok(kind, shape, e["stride"]):
            return 2
        by_slot[k] = e
    c, h, w = header["in_c"], header["in_h"], header["in_w"]
    for k in sorted(by_slot):
        e = by_slot[k]
        if (e["in_c"], e["in_h"], e["in_w"]) != (c, h, w):
            return 2
        c, h, w = e["out_c"], e["out_h"], e["out_w"]
    return 0 if (c, h, w) == (header["out_c"], header["out_h"], header["out_w"]) else 2


def _output_shape_ok(kind: str, s: LayerShape, stride: int) -> bool:
    """Whether an entry's output shape is the one a layer of ``kind`` gives."""
    return (s.out_c, s.out_h, s.out_w) == layer_output(kind, s.in_c, s.in_h, s.in_w, s.out_c,
                                                       stride)
