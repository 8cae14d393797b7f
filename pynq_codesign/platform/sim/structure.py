"""The engine's loop structure: exact trip counts of every pipelined loop of a pass.

What the simulated board builds its timing on (:mod:`.timing`): for one pass (its
descriptor header and layer entries on an overlay) the entries and iterations of each
pipelined loop of the HLS engine, per dataflow process, derived from how ``hls/`` is
written (one flattened loop per stage over the raster scan, the beat/word converters,
the weight loads, the stream edges). The access audit of the C simulation
(``host_search/audit.py``) counts the same loops while the C++ runs; tests hold the two
equal, loop by loop, so the simulated board's structural cycles are the C++'s own. It
shares nothing with the host's closed-form estimate (``host_search/qos_model.py``).

Board-side code: numpy-free arithmetic on ints.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ...design import Overlay, beat_lanes, stage_word_lanes
from ...fixedpoint import container_bytes
from ...wire import BEAT_BYTES, HEADER_WORDS, LAYER_TYPE_ID, LAYER_WORDS

_KIND = {v: k for k, v in LAYER_TYPE_ID.items()}
TOP = "top"


@dataclass(frozen=True)
class LoopCount:
    """One pipelined loop of one process in one pass."""

    process: str
    label: str
    entries: int
    iters: int


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@lru_cache(maxsize=4096)
def regroup_iters(src: int, dst: int, c: int) -> int:
    """Iterations of a width converter for one pixel of ``c`` codes: it reads words of
    ``src`` codes (at most one a cycle, while it holds fewer than ``dst``) and sends words
    of ``dst`` codes (one a cycle once it holds ``dst``, or the rest after the pixel's last
    read), the pixel padded to whole words on both sides (``hls/convert.h``)."""
    n_in, n_out = _ceil(c, src), _ceil(c, dst)
    have = got = sent = it = 0
    while sent < n_out:
        it += 1
        if have < dst and got < n_in:
            have += min(src, c - got * src)
            got += 1
        if have >= dst or got == n_in:
            have -= min(have, dst)
            sent += 1
    return it


def _stage_loops(k: int, kind: str, e: dict | None, ov: Overlay, in_beats: int
                 ) -> list[LoopCount]:
    proc = f"stage{k}"
    if e is None:                                       # a bypassed slot
        return [LoopCount(proc, "BYPASS", 1, in_beats)]
    st = ov.stages[k]
    L = beat_lanes(ov.feature_bits)
    c, h, w = e["in_c"], e["in_h"], e["in_w"]
    oc, oh, ow = e["out_c"], e["out_h"], e["out_w"]
    if kind == "pool":
        return [LoopCount(proc, "POOL_MAP", 1, h * w * _ceil(c, L))]
    r_in = stage_word_lanes(kind, st.pe, st.simd, ov.feature_bits)
    icf, ocf = _ceil(c, r_in), _ceil(oc, st.pe)
    steps = (h + 1) * (w + 1)
    if kind == "dw":
        load = (c * 9, c)
        main = ("DW_MAP", steps * icf)
    elif kind == "pw":
        load = (oc * c, oc)
        main = ("PW_MAP", icf + h * w * ocf * icf)
    else:
        load = (9 * c * oc, oc)
        outs = oh * ow
        main = ("C3_MAP", outs * ocf * icf + (steps - outs) * icf)
    return [LoopCount(f"{proc}/unpack", "UNPACK", 1, h * w * regroup_iters(L, r_in, c)),
            LoopCount(f"{proc}/compute", "LOAD_WEIGHTS", 1, load[0]),
            LoopCount(f"{proc}/compute", "LOAD_BIAS", 1, load[1]),
            LoopCount(f"{proc}/compute", main[0], 1, main[1]),
            LoopCount(f"{proc}/pack", "PACK", 1, oh * ow * regroup_iters(st.pe, L, oc))]


def pass_loops(header: dict, entries: list[dict], ov: Overlay) -> list[LoopCount]:
    """Every pipelined loop of one pass (descriptor ``header`` and ``entries`` as
    :func:`pynq_codesign.wire.read_descriptor` gives them) on overlay ``ov``."""
    n = len(entries)
    head_beats = _ceil(HEADER_WORDS, 2)
    out = [LoopCount(TOP, "DESC_BURST", 2 if n else 1,
                     _ceil(HEADER_WORDS + n * LAYER_WORDS, 2) if n else head_beats)]
    if not n:
        return out
    L = beat_lanes(ov.feature_bits)
    by_slot = {e["slot"]: e for e in entries}
    wbytes = container_bytes(ov.weight_bits)
    fetch_entries = fetch_iters = 0
    for k, st in enumerate(ov.stages):
        e = by_slot.get(k)
        if e is None or st.kind == "pool":
            continue
        kind = _KIND[e["type"]]
        nw = {"dw": 9 * e["in_c"], "pw": e["in_c"] * e["out_c"],
              "conv3": 9 * e["in_c"] * e["out_c"]}[kind]
        fetch_entries += 2
        fetch_iters += _ceil(nw * wbytes, BEAT_BYTES) + _ceil(4 * e["out_c"], BEAT_BYTES)
    if fetch_entries:
        out.append(LoopCount("fetch_params", "FETCH_BEATS", fetch_entries, fetch_iters))
    c, h, w = header["in_c"], header["in_h"], header["in_w"]
    out.append(LoopCount("read_input", "READ_INPUT", 1, h * w * _ceil(c, L)))
    for k, st in enumerate(ov.stages):
        e = by_slot.get(k)
        out += _stage_loops(k, st.kind, e, ov, h * w * _ceil(c, L))
        if e is not None:
            c, h, w = e["out_c"], e["out_h"], e["out_w"]
    out.append(LoopCount("write_output", "WRITE_OUTPUT", 1,
                         header["out_h"] * header["out_w"] * _ceil(header["out_c"], L)))
    return out
