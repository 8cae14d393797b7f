"""Multiplier and buffer binding of an overlay on a device: THE decision.

The analytical QoS model (:mod:`host_search.qos_model`) counts DSPs, BRAM18s and LUTs
from this binding, and the HLS header generator turns the very same records into
``#pragma HLS BIND_OP`` / ``BIND_STORAGE`` / ``ARRAY_PARTITION`` / ``ARRAY_RESHAPE``
directives, so the estimate and the synthesised accelerator make the same choices.
Entry point: :func:`bind_overlay` ``(overlay, device) -> Binding``. Every counting rule
is also available as a numpy-vectorised function (``dsp_per_mult``, ``bram18_count``,
``pack_shift_ok``, :func:`buffer_geometry`) so the model can evaluate many design points
at once with exactly the rules used here.

Multipliers
-----------
Every multiplier of a stage computes ``weight x feature``, both signed, of the overlay's
``weight_bits`` x ``feature_bits`` (a layer may use fewer bits; the datapath is built for
the overlay's widths). Per stage one of three implementations (``mult_impl``):

* ``"dsp"``: one product on ``dsp_per_mult`` DSP48 slices. A signed product fits one
  slice when the wider operand fits the A port and the narrower one the B port
  (DSP48E1: 25 x 18, DSP48E2: 27 x 18, from the device profile). Wider operands are
  sliced: the wider one into a signed top slice of the A-port width plus unsigned slices
  of ``B-port - 1`` bits below it, the narrower one into a signed B-port slice plus
  unsigned slices of ``B-port - 1`` bits, one slice per pair of slices:
  ``(1 + ceil((A - a)/(b - 1))) * (1 + ceil((B - b)/(b - 1)))``. This is the slicing of
  yosys's ``mul2dsp`` (cross-checked by ``tests/test_yosys_crosscheck.py``); Vivado can
  build some wide products from fewer slices (UG479 builds 35 x 25 from two), so the count
  is conservative. The overlay schema limits operands to 18 x 16 bits, which always take
  one slice; the wide rule serves the cross-check and future wider datapaths.
* ``"fabric"``: LUTs, only for tiny products whose result has at most
  :data:`FABRIC_MAX_PRODUCT_BITS` bits (e.g. 4 x 4); a DSP slice would be wasted there
  (yosys's xc7 mapping also keeps products narrower than 9 bits in LUTs).
* ``"dsp_packed"``: two products that share their feature operand in one slice
  (``A = w_hi * 2**s + w_lo``, ``B = feature``; the low product is recovered from the
  low ``s`` bits, the high one from ``P >> s`` plus the low product's sign). Legal only
  when (see :func:`pack_shift_ok`): the stage has a shared operand (pw and conv3: one
  input feature meets the weights of ``pe`` output channels; a dw stage has none) and
  ``pe >= 2``; ``feature_bits <= b``; a shift ``s = weight_bits + feature_bits +
  ceil(log2(n))`` (product width plus guard bits for the ``n`` products summed in the
  DSP cascade: ``n = simd`` for pw, ``9 * simd`` for conv3) leaves ``s + weight_bits <= a`` (the A port / pre-adder width) and
  ``s + weight_bits + feature_bits + ceil(log2(simd)) <= 48`` (the P register).
  On the DSP48E1 a W11 x F8 product cannot be packed (11 + 8 + 11 > 25); W8 x F8 packs
  only without cascade (simd = 1). Packing is applied by the ``"auto"`` policy only when
  the unpacked design exceeds the device's DSP budget (it costs LUTs for the split and
  the HLS code gets more intricate); ``"never"`` / ``"always"`` (where legal) force it.

Buffers of the bundle engine
----------------------------
The engine (see :mod:`pynq_codesign.design` and :mod:`pynq_codesign.wire`) streams each
pass's input map through the stages of the chain, all at once (a dataflow region). Each
stage's memories are sized for that stage alone: ``E = Stage.row_capacity(overlay)``
(the elements of one input row of the largest layer the stage runs, channels padded to
the stage's words; the overlay's ``max_row_elems`` when the stage names none),
``C = max_channels``, ``fb/wb/bb = feature/weight/bias bits``. A stage stores *words* of
``lanes`` = :func:`memory_lanes` codes (what it reads per cycle: ``pe`` for dw, ``simd``
for pw / conv3, one beat for a pool; every pixel padded to whole words, so that every
access is one aligned word; ``hls/convert.h`` turns the beat stream into words). Per
chain stage ``k`` (``s{k}`` in the names), in chain order, these buffers exist and
nothing else (the generated wrappers declare them from these records, see
:mod:`host_search.hls_gen`; ``hls/buffers.h`` and the stage templates index them):

* ``s{k}_line`` (dw, conv3): three rows of the input map, one per bank (row y in bank
  y % 3, ``banks = 3``): ``depth = ceil(E / lanes)`` words of ``lanes * fb`` bits.
* ``s{k}_cols`` (dw, conv3): the 3x3 window's two older columns for every fold (2
  columns x 3 rows = ``banks = 6``), ``depth = ceil(C / lanes)`` words.
* ``s{k}_pixel`` (pw): the pixel being computed and the one arriving, ping-pong
  (``double_buffered``), ``depth = ceil(C / lanes)`` words.
* ``s{k}_rowbuf`` (pool): one row of horizontal pair maxima, ``depth =
  ceil(ceil(E/2)/lanes)`` words of one beat; ``s{k}_hold`` (pool): the even column's
  pixel, ``depth = ceil(C / lanes)`` words.
* ``s{k}_weights`` (dw, pw, conv3): the weights of one layer, loaded over ``m_axi`` at
  the start of a pass into ``banks = pe`` banks (bank p: output channels p, p + pe, ...),
  one word per read: ``lanes`` = :func:`stage_weight_lanes` / pe (9 for dw, ``simd``
  for pw, ``9*simd`` for conv3) weights of ``wb`` bits. ``depth``
  (:func:`weight_depth`) = ``Stage.weight_words`` (the folded words of the largest layer
  the stage runs, :func:`pynq_codesign.design.weight_words`), or where the stage names
  none the worst case over the overlay-wide limits (:func:`worst_weight_words`).
  Single-buffered: a pass loads its weights before it computes.
* ``s{k}_bias`` (dw, pw, conv3): biases of ``bias_bits``, ``pe`` banks of
  :func:`bias_depth` words: ``min(ceil(C/pe), weight depth)``; single.

The first stage's input memory is filled by the load (the input DMA stream); the last
stage writes the output stream (the store) directly. A bank of at most
:data:`LUTRAM_MAX_BITS` bits is LUTRAM (``impl = "lutram"``), else BRAM with
``bram18_count(depth, width)`` BRAM18 per bank (the best of the 16Kx1 ... 512x36
simple-dual-port aspect ratios, at least one per bank), times two when double-buffered.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pynq_codesign.design import Overlay, stage_multipliers, stage_word_lanes
from pynq_codesign.design import beat_lanes as design_beat_lanes
from pynq_codesign.design import weight_words as design_weight_words
from pynq_codesign.devices import Device, load_device

MULT_IMPLS = ("dsp", "fabric", "dsp_packed")
PACK_POLICIES = ("auto", "never", "always")

#: products of at most this many result bits go to LUTs (BIND_OP impl=fabric)
FABRIC_MAX_PRODUCT_BITS = 8
#: banks of at most this many bits are LUTRAM (BIND_STORAGE impl=lutram)
LUTRAM_MAX_BITS = 2048
#: BRAM18 simple-dual-port aspect ratios (depth, width)
BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
#: the DSP48's P register (both DSP48E1 and DSP48E2)
DSP_P_BITS = 48


# ---------------------------------------------------------------------------
# Counting rules (numpy-vectorised: scalars or arrays in, same shape out).
# ---------------------------------------------------------------------------

def _ceil_div(a: Any, b: Any) -> Any:
    return -(-np.asarray(a, dtype=np.int64) // np.asarray(b, dtype=np.int64))


def is_fabric_product(a_bits: Any, b_bits: Any) -> Any:
    """True where a signed ``a_bits x b_bits`` product goes to LUTs."""
    return np.asarray(a_bits) + np.asarray(b_bits) <= FABRIC_MAX_PRODUCT_BITS


def dsp_per_mult(a_bits: Any, b_bits: Any, port_a: int, port_b: int) -> Any:
    """DSP slices for one signed ``a_bits x b_bits`` product (0 where it goes to LUTs).

    ``port_a`` / ``port_b``: the slice's signed multiplier ports (25/18 on DSP48E1,
    27/18 on DSP48E2). See the module docstring for the slicing.
    """
    a = np.asarray(a_bits, dtype=np.int64)
    b = np.asarray(b_bits, dtype=np.int64)
    wide, narrow = np.maximum(a, b), np.minimum(a, b)
    step = port_b - 1
    na = 1 + _ceil_div(np.maximum(wide - port_a, 0), step)
    nb = 1 + _ceil_div(np.maximum(narrow - port_b, 0), step)
    n = na * nb
    out = np.where(is_fabric_product(a, b), 0, n)
    return out if out.ndim else int(out)


def fabric_mult_luts(a_bits: Any, b_bits: Any) -> Any:
    """LUT6s of a signed product in fabric (partial-product array on carry chains)."""
    a = np.asarray(a_bits, dtype=np.int64)
    b = np.asarray(b_bits, dtype=np.int64)
    out = _ceil_div(a * b, 2) + a + b
    return out if out.ndim else int(out)


def guard_bits(simd: Any) -> Any:
    """``ceil(log2(simd))``: bits a sum of ``simd`` products grows by."""
    s = np.maximum(np.asarray(simd, dtype=np.int64), 1)
    out = np.ceil(np.log2(s) - 1e-12).astype(np.int64)
    return out if out.ndim else int(out)


def pack_shift_ok(weight_bits: Any, feature_bits: Any, simd: Any,
                  port_a: int, port_b: int) -> Any:
    """True where two ``weight x feature`` products sharing the feature fit one DSP.

    Arithmetic legality only (the stage must also have a shared operand, see
    :func:`pack_legal`).
    """
    wb = np.asarray(weight_bits, dtype=np.int64)
    fb = np.asarray(feature_bits, dtype=np.int64)
    g = np.asarray(guard_bits(simd), dtype=np.int64)
    s = wb + fb + g
    ok = (fb <= port_b) & (s + wb <= port_a) & (s + wb + fb + g <= DSP_P_BITS)
    return ok if ok.ndim else bool(ok)


def cascade_len(kind: str, simd: Any) -> Any:
    """Products one output lane sums per cycle in the DSP cascade (simd; 9*simd for
    conv3): the guard bits of a packed DSP grow with it."""
    return 9 * np.asarray(simd) if kind == "conv3" else simd


def pack_legal(kind: str, pe: Any, simd: Any, weight_bits: Any, feature_bits: Any,
               port_a: int, port_b: int) -> Any:
    """True where a stage of ``kind`` may pack two products per DSP."""
    if kind not in ("pw", "conv3"):
        return np.zeros(np.broadcast(pe, weight_bits).shape, dtype=bool) \
            if np.ndim(pe) or np.ndim(weight_bits) else False
    ok = (np.asarray(pe) >= 2) & np.asarray(pack_shift_ok(weight_bits, feature_bits, simd,
                                                          port_a, port_b)) \
        & ~np.asarray(is_fabric_product(weight_bits, feature_bits))
    return ok if ok.ndim else bool(ok)


def pack_luts(pe: Any, simd: Any, weight_bits: Any, feature_bits: Any) -> Any:
    """LUTs that split packed results: per packed pair of output lanes, the sign
    correction of the high product (an adder over the low result's width plus guard
    bits)."""
    pairs = _ceil_div(pe, 2)
    width = np.asarray(weight_bits) + np.asarray(feature_bits) + guard_bits(simd)
    out = pairs * width
    return out if np.ndim(out) else int(out)


def bram18_count(depth: Any, width: Any) -> Any:
    """BRAM18s for one memory of ``depth`` words of ``width`` bits (>= 1; 0 for empty)."""
    d = np.asarray(depth, dtype=np.int64)
    w = np.asarray(width, dtype=np.int64)
    best = None
    for sd, sw in BRAM18_SHAPES:
        n = _ceil_div(d, sd) * _ceil_div(w, sw)
        best = n if best is None else np.minimum(best, n)
    out = np.where((d > 0) & (w > 0), np.maximum(best, 1), 0)
    return out if out.ndim else int(out)


def lutram_cells(depth: Any, width: Any) -> Any:
    """RAM32M (32 x 6) / RAM64M (64 x 3) cells of a simple-dual-port LUTRAM."""
    d = np.asarray(depth, dtype=np.int64)
    w = np.asarray(width, dtype=np.int64)
    out = np.where(d <= 32, _ceil_div(w, 6), _ceil_div(d, 64) * _ceil_div(w, 3))
    out = np.where((d > 0) & (w > 0), out, 0)
    return out if out.ndim else int(out)


def lutram_luts(depth: Any, width: Any) -> Any:
    """LUT6s of a simple-dual-port LUTRAM (4 per RAM32M / RAM64M cell), plus the read
    multiplexer beyond 64 words."""
    d = np.asarray(depth, dtype=np.int64)
    w = np.asarray(width, dtype=np.int64)
    cells = lutram_cells(d, w)
    mux = np.where(d > 64, w * (_ceil_div(d, 64) - 1), 0)
    out = np.where((d > 0) & (w > 0), 4 * cells + mux, 0)
    return out if out.ndim else int(out)


def is_lutram(depth: Any, width: Any) -> Any:
    """True where a bank of ``depth x width`` is LUTRAM rather than BRAM."""
    out = np.asarray(depth, dtype=np.int64) * np.asarray(width, dtype=np.int64) \
        <= LUTRAM_MAX_BITS
    return out if out.ndim else bool(out)


def beat_lanes(feature_bits: Any) -> Any:
    """Feature elements in one 64-bit beat (``wire``'s lanes: 8 of up to 8 bits, else 4).

    The stream between stages carries beats; a pool handles one beat per cycle.
    """
    out = np.asarray(design_beat_lanes(np.asarray(feature_bits, dtype=np.int64)))
    return out if out.ndim else int(out)


def pool_lanes(feature_bits: Any) -> Any:
    """Elements a pool stage handles per cycle: one beat (:func:`beat_lanes`)."""
    return beat_lanes(feature_bits)


def stage_in_lanes(kind: str, pe: Any, simd: Any, feature_bits: Any) -> Any:
    """Channels a stage reads from its input memory per cycle (dw: ``pe``; pw, conv3:
    ``simd``; pool: one beat)."""
    if kind == "pool":
        return beat_lanes(feature_bits)
    return pe if kind == "dw" else simd


def memory_lanes(kind: str, pe: Any, simd: Any, feature_bits: Any) -> Any:
    """Codes per word of a stage's memories (:func:`pynq_codesign.design.stage_word_lanes`:
    what it reads per cycle; pixels are padded to whole words)."""
    out = np.asarray(stage_word_lanes(kind, np.asarray(pe), np.asarray(simd),
                                      np.asarray(feature_bits)))
    return out if np.ndim(out) else int(out)


def stage_weight_lanes(kind: str, pe: Any, simd: Any) -> Any:
    """Weights a stage reads per cycle (= its multipliers): one folded weight word."""
    return stage_multipliers(kind, np.asarray(pe), np.asarray(simd))


def worst_weight_words(kind: str, pe: Any, simd: Any, max_channels: Any,
                       max_layer_weights: Any) -> Any:
    """Folded weight words of the largest layer the overlay-wide limits admit on a stage
    (its depth when the stage has no ``weight_words`` of its own).

    A layer of ``IC x OC`` takes :func:`pynq_codesign.design.weight_words` words, which
    can exceed ``ceil(weights / (pe*simd))`` when channel counts are no multiples of
    ``pe`` / ``simd``; the worst case over ``IC, OC <= max_channels`` with weights
    ``<= max_layer_weights``. Vectorised; for a given ``ceil(IC/simd)`` the smallest such
    ``IC`` allows the most output channels, so only ``IC = j*simd + 1`` is tried, once per
    distinct ``(pe, simd, max_channels, max_layer_weights)``.
    """
    c = np.asarray(max_channels, dtype=np.int64)
    m = np.asarray(max_layer_weights, dtype=np.int64)
    if kind == "dw":
        ch = np.minimum(c, m // 9)
        out = np.asarray(design_weight_words("dw", np.asarray(pe, dtype=np.int64), 1, ch, ch))
        return out if out.ndim else int(out)
    per = 9 if kind == "conv3" else 1
    pe_, simd_, c_, m_ = np.broadcast_arrays(np.asarray(pe, dtype=np.int64),
                                             np.asarray(simd, dtype=np.int64), c, m)
    shape = pe_.shape
    rows = np.stack([pe_.ravel(), simd_.ravel(), c_.ravel(), m_.ravel()], axis=1)
    uniq, inv = np.unique(rows, axis=0, return_inverse=True)
    up, us, uc, um = uniq.T
    best = np.zeros(len(uniq), dtype=np.int64)
    for j in range(int(_ceil_div(uc, us).max()) if len(uniq) else 0):
        ic = j * us + 1
        oc = np.minimum(uc, um // (per * ic))
        ok = (ic <= uc) & (oc >= 1)
        words = design_weight_words(kind, up, us, ic, np.maximum(oc, 1))
        best = np.maximum(best, np.where(ok, words, 0))
    out = best[np.asarray(inv).ravel()].reshape(shape)
    return out if out.ndim else int(out)


def weight_depth(kind: str, pe: Any, simd: Any, capacity: Any, max_channels: Any,
                 max_layer_weights: Any) -> Any:
    """Words of a stage's weight memory: its own capacity (``Stage.weight_words``) where
    given (``> 0``), else :func:`worst_weight_words`. ``capacity``: ``None``, a scalar or
    an array with 0 for "not given"."""
    if capacity is None:
        return worst_weight_words(kind, pe, simd, max_channels, max_layer_weights)
    cap = np.asarray(capacity, dtype=np.int64)
    if np.all(cap > 0):
        return cap if cap.ndim else int(cap)
    worst = worst_weight_words(kind, pe, simd, max_channels, max_layer_weights)
    out = np.where(cap > 0, cap, worst)
    return out if out.ndim else int(out)


def bias_depth(pe: Any, weight_depth_: Any, max_channels: Any) -> Any:
    """Words per bank of a stage's bias memory (``pe`` banks): ``ceil(C/pe)`` for the
    overlay's ``C = max_channels``, but never more than the weight memory's depth, since
    a layer whose weights fit has ``ceil(OC/pe) <= weight words`` (dw: equal; pw, conv3:
    times ``ceil(IC/simd) >= 1``)."""
    out = np.minimum(_ceil_div(max_channels, pe), np.asarray(weight_depth_, dtype=np.int64))
    return out if out.ndim else int(out)


# ---------------------------------------------------------------------------
# Buffer geometry (vectorised): the one place the engine's buffers are listed.
# ---------------------------------------------------------------------------

@dataclass
class BufferGeometry:
    """One buffer, fields scalars or arrays over design points."""

    name: str
    role: str              # "line" | "cols" | "pixel" | "rowbuf" | "hold" | "weights" | "bias"
    stage: int
    depth: Any             # words per bank
    width: Any             # bits per word
    banks: Any
    lanes: Any             # elements packed into one word (ARRAY_RESHAPE factor)
    double_buffered: bool


def buffer_geometry(stage_kinds: tuple[str, ...], pe: list[Any], simd: list[Any],
                    band_rows: Any, row_elems: list[Any], weight_words: list[Any],
                    max_channels: Any, max_layer_weights: Any, weight_bits: Any,
                    feature_bits: Any, bias_bits: Any) -> list[BufferGeometry]:
    """Every buffer of an engine with the stage chain ``stage_kinds``.

    Per stage ``k`` (scalars or arrays over design points): ``pe[k]`` / ``simd[k]``, its
    parallelism; ``row_elems[k]``, the elements of one input row its line / row buffer
    holds (``Stage.row_capacity``, channels padded to the stage's words);
    ``weight_words[k]``, the words of its weight memory (``Stage.weight_words``; ``None``
    or 0: the worst case over the overlay-wide limits, :func:`worst_weight_words`). The
    other arguments are overlay fields (``band_rows`` sizes nothing since the engine
    streams whole maps through its stages; it is kept for the callers' signature).
    """
    out: list[BufferGeometry] = []
    fbits = np.asarray(feature_bits)
    C = np.asarray(max_channels, dtype=np.int64)
    for k, kind in enumerate(stage_kinds):
        p, s = pe[k], simd[k]
        E = np.asarray(row_elems[k], dtype=np.int64)
        lanes = memory_lanes(kind, p, s, feature_bits)
        folds = _ceil_div(C, lanes)
        if kind in ("dw", "conv3"):
            out.append(BufferGeometry(f"s{k}_line", "line", k, _ceil_div(E, lanes),
                                      lanes * fbits, 3, lanes, False))
            out.append(BufferGeometry(f"s{k}_cols", "cols", k, folds, lanes * fbits, 6,
                                      lanes, False))
        elif kind == "pw":
            out.append(BufferGeometry(f"s{k}_pixel", "pixel", k, folds, lanes * fbits, 1,
                                      lanes, True))
        else:   # pool: horizontal pair maxima of one row, and the even column's pixel
            out.append(BufferGeometry(f"s{k}_rowbuf", "rowbuf", k,
                                      _ceil_div(_ceil_div(E, 2), lanes),
                                      lanes * fbits, 1, lanes, False))
            out.append(BufferGeometry(f"s{k}_hold", "hold", k, folds, lanes * fbits, 1,
                                      lanes, False))
        if kind != "pool":
            wl = _ceil_div(stage_weight_lanes(kind, p, s), p)
            words = weight_depth(kind, p, s, weight_words[k], max_channels,
                                 max_layer_weights)
            out.append(BufferGeometry(f"s{k}_weights", "weights", k, words,
                                      wl * np.asarray(weight_bits), p, wl, False))
            out.append(BufferGeometry(f"s{k}_bias", "bias", k, bias_depth(p, words,
                                                                         max_channels),
                                      bias_bits, p, 1, False))
    return out


def buffer_cost(g: BufferGeometry) -> tuple[Any, Any, Any]:
    """(is_lutram, bram18, lutram_luts) of a buffer in total (all banks, both halves)."""
    copies = 2 if g.double_buffered else 1
    lut = is_lutram(g.depth, g.width)
    per_bank_bram = bram18_count(g.depth, g.width)
    banks = np.asarray(g.banks, dtype=np.int64)
    bram = np.where(lut, 0, per_bank_bram * banks * copies)
    luts = np.where(lut, lutram_luts(g.depth, g.width) * banks * copies, 0)
    return lut, bram, luts


# ---------------------------------------------------------------------------
# The scalar API the HLS generator and the model's scalar path use.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MultBinding:
    """How the multipliers of one stage are bound."""

    stage: int
    kind: str
    weight_bits: int
    feature_bits: int
    signed: bool
    multipliers: int          # products per cycle
    mult_impl: str            # "dsp" | "fabric" | "dsp_packed"
    dsp_per_mult: int         # slices per product when unpacked (0 in fabric)
    products_per_dsp: int     # 2 when packed, else 1
    dsp: int                  # slices of the stage
    lut: int                  # fabric multiplier or packing-split LUTs
    pack_legal: bool
    reason: str               # why this implementation, for people

    @property
    def bind_op_impl(self) -> str:
        """The ``impl`` of ``#pragma HLS BIND_OP op=mul``."""
        return "fabric" if self.mult_impl == "fabric" else "dsp"


@dataclass(frozen=True)
class BufferBinding:
    """How one buffer is stored. ``depth`` words of ``width`` bits *per bank*."""

    name: str
    role: str
    stage: int
    depth: int
    width: int
    banks: int
    lanes: int                # elements per word (ARRAY_RESHAPE factor; 1 = none)
    double_buffered: bool
    impl: str                 # "bram" | "lutram"
    bram18: int               # total, all banks, both halves
    lutram_luts: int

    @property
    def bits(self) -> int:
        return self.depth * self.width * self.banks * (2 if self.double_buffered else 1)


@dataclass(frozen=True)
class Binding:
    """All binding decisions of one overlay on one device."""

    device: str
    dsp_kind: str
    pack_policy: str
    mults: tuple[MultBinding, ...]
    buffers: tuple[BufferBinding, ...]

    @property
    def dsp(self) -> int:
        return sum(m.dsp for m in self.mults)

    @property
    def bram18(self) -> int:
        return sum(b.bram18 for b in self.buffers)

    @property
    def lutram_luts(self) -> int:
        return sum(b.lutram_luts for b in self.buffers)

    @property
    def mult_luts(self) -> int:
        return sum(m.lut for m in self.mults)

    def stage(self, k: int) -> MultBinding:
        return next(m for m in self.mults if m.stage == k)

    def buffer(self, name: str) -> BufferBinding:
        return next(b for b in self.buffers if b.name == name)

    def to_dict(self) -> dict:
        from dataclasses import asdict
        return {"device": self.device, "dsp_kind": self.dsp_kind,
                "pack_policy": self.pack_policy, "dsp": self.dsp, "bram18": self.bram18,
                "mults": [asdict(m) for m in self.mults],
                "buffers": [asdict(b) for b in self.buffers]}


def stage_dsp(kind: str, multipliers: Any, packed: Any, dpm: Any) -> Any:
    """DSPs of a stage: ``multipliers * dsp_per_mult``, halved (per pair) when packed."""
    m = np.asarray(multipliers, dtype=np.int64)
    out = np.where(packed, _ceil_div(m, 2), m * np.asarray(dpm, dtype=np.int64))
    return out if out.ndim else int(out)


def choose_packing(policy: str, legal: list[Any], unpacked_dsp: list[Any],
                   budget: int) -> list[Any]:
    """Per stage: packed or not. ``auto`` packs every legal stage only where the
    unpacked total exceeds ``budget`` (vectorised over design points)."""
    if policy not in PACK_POLICIES:
        raise ValueError(f"pack policy must be one of {', '.join(PACK_POLICIES)}, "
                         f"got {policy!r}")
    if policy == "never":
        return [np.zeros_like(np.asarray(lg), dtype=bool) for lg in legal]
    if policy == "always":
        return [np.asarray(lg, dtype=bool) for lg in legal]
    total = sum(np.asarray(d, dtype=np.int64) for d in unpacked_dsp)
    over = total > budget
    return [np.asarray(lg, dtype=bool) & over for lg in legal]


def bind_overlay(overlay: Overlay, device: Device | str | None = None,
                 pack: str = "auto") -> Binding:
    """The binding of ``overlay`` on ``device`` (by default the overlay's own device)."""
    dev = load_device(device) if isinstance(device, str) else \
        (device or load_device(overlay.device))
    wb, fb = overlay.weight_bits, overlay.feature_bits
    pa, pb = dev.dsp_mult_a, dev.dsp_mult_b
    kinds = overlay.stage_kinds
    legal, unpacked, dpms = [], [], []
    for st in overlay.stages:
        dpm = dsp_per_mult(wb, fb, pa, pb) if st.kind != "pool" else 0
        dpms.append(dpm)
        unpacked.append(st.multipliers * dpm)
        legal.append(bool(pack_legal(st.kind, st.pe, cascade_len(st.kind, st.simd), wb, fb,
                                     pa, pb))
                     if st.kind != "pool" else False)
    packed = choose_packing(pack, legal, unpacked, dev.dsp)
    mults = []
    for k, st in enumerate(overlay.stages):
        if st.kind == "pool":
            continue
        pk = bool(packed[k])
        if is_fabric_product(wb, fb):
            impl, dsp, lut = "fabric", 0, st.multipliers * fabric_mult_luts(wb, fb)
            why = (f"{wb}x{fb} gives at most {wb + fb} bits "
                   f"(<= {FABRIC_MAX_PRODUCT_BITS}): LUTs")
        elif pk:
            impl = "dsp_packed"
            dsp = stage_dsp(st.kind, st.multipliers, True, dpms[k])
            lut = pack_luts(st.pe, cascade_len(st.kind, st.simd), wb, fb)
            why = f"two products sharing a feature per {dev.dsp_kind} (over the DSP budget)"
        else:
            impl, dsp, lut = "dsp", stage_dsp(st.kind, st.multipliers, False, dpms[k]), 0
            why = f"{wb}x{fb} signed on {dpms[k]} {dev.dsp_kind} ({pa}x{pb})"
            if not legal[k] and st.kind in ("pw", "conv3") and pack != "never":
                why += "; packing two per DSP is not legal here"
        mults.append(MultBinding(k, st.kind, wb, fb, True, st.multipliers, impl,
                                 int(dpms[k]), 2 if impl == "dsp_packed" else 1, int(dsp),
                                 int(lut), bool(legal[k]), why))
    geo = buffer_geometry(kinds, [s.pe for s in overlay.stages],
                          [s.simd for s in overlay.stages], overlay.band_rows,
                          [s.row_capacity(overlay) for s in overlay.stages],
                          [s.weight_words for s in overlay.stages], overlay.max_channels,
                          overlay.max_layer_weights, wb, fb, overlay.bias_bits)
    bufs = []
    for g in geo:
        lut, bram, luts = buffer_cost(g)
        bufs.append(BufferBinding(g.name, g.role, g.stage, int(g.depth), int(g.width),
                                  int(g.banks), int(g.lanes), g.double_buffered,
                                  "lutram" if bool(lut) else "bram", int(bram), int(luts)))
    return Binding(dev.name, dev.dsp_kind, pack, tuple(mults), tuple(bufs))
