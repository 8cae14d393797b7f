"""The bit-exact emulator of the bundle engine (numpy only).

It executes what the hardware executes: the pass descriptors and parameters packed by
:func:`pynq_codesign.wire.build_program`, on integer feature codes in HWC order, with
the arithmetic of DESIGN.md 3a:

* accumulate ``in_code * w_code`` exactly; add the bias (accumulator scale);
* activation at the accumulator's scale (ReLU: ``max(acc, 0)``; ReLU6: also
  ``min(acc, relu6_limit)``);
* requantise: shift right by ``shift`` with the overlay's rounding, then saturate to
  ``[out_min, out_max]`` (a left shift that leaves the range saturates too);
* 2x2 max-pool on codes, odd edge rows/columns dropped.

How it stays exact and fast. Every value is an integer held in float64: codes, weights,
products, sums and biases stay below 2**52 in magnitude (:func:`check_exact` refuses a
layer where they could not, from the overlay's widths, before touching data), and float64
represents every such integer exactly, whatever order BLAS sums in. Scaling by ``2**-shift``
is exact in binary floating point, and ``rint`` / ``floor`` / ``trunc`` round the exact
quotient the way :func:`pynq_codesign.fixedpoint.shift_round` does (half away from zero
adds 0.5 to the magnitude, exact below 2**52). So a whole pass runs in float64 with BLAS
for the pointwise and full convolutions and in-place elementwise steps, and its output
is converted to int64 codes once. No integer sum is ever formed in numpy's default int,
which is 32-bit on the board's ARM.

One more saving keeps results identical: bias, activation, rounding and saturation are
each monotone non-decreasing, so a 2x2 max-pool that follows a convolution in the same
pass commutes with them; the emulator pools the accumulators and requantises four times
fewer values (unless every layer's output is asked for).
"""
from __future__ import annotations

import numpy as np

from ...design import Overlay
from ...errors import CodesignError
from ...fixedpoint import Rounding
from ...wire import (LAYER_TYPE_ID, LayerParams, Program, WireError, read_descriptor,
                     read_layer_params)

_KIND = {v: k for k, v in LAYER_TYPE_ID.items()}
_EXACT_LIMIT = 2 ** 52


class EmulatorError(CodesignError, RuntimeError):
    """The emulator cannot run this input exactly (shape or range out of bounds)."""


def check_exact(k: int, in_max: int, w_max: int, bias_max: int = 0) -> None:
    """Refuse a dot product of length ``k`` (plus a bias) that could leave 2**52."""
    if k * in_max * w_max + bias_max >= _EXACT_LIMIT:
        raise EmulatorError(f"a sum of {k} products of |{in_max}| x |{w_max}| plus a bias "
                            f"of |{bias_max}| may exceed 2**52")


def _check_layer(kind: str, in_c: int, x: np.ndarray, p: LayerParams, ov: Overlay) -> None:
    """Exactness from the overlay's widths (no pass over the data), else from the data."""
    k = {"dw": 9, "pw": in_c, "conv3": 9 * in_c}[kind]
    bias_max = 1 << (ov.bias_bits - 1)
    try:
        check_exact(k, 1 << ov.feature_bits, 1 << ov.weight_bits, bias_max)
    except EmulatorError:
        xmax = int(np.abs(x).max()) if x.size else 0
        wmax = int(np.abs(p.weights).max()) if p.weights.size else 0
        bmax = int(np.abs(p.bias).max()) if p.bias.size else 0
        check_exact(k, xmax, wmax, bmax)


def _windows(x: np.ndarray, stride: int) -> tuple[list[np.ndarray], int, int]:
    """The 9 shifted views of the zero-padded map for a 3x3 window (tap order ky, kx)."""
    h, w, c = x.shape
    oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1
    xp = np.zeros((h + 2, w + 2, c), dtype=np.float64)
    xp[1:-1, 1:-1] = x
    win = [xp[ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride]
           for ky in range(3) for kx in range(3)]
    return win, oh, ow


def _dw_stride1(x: np.ndarray, wf: np.ndarray) -> np.ndarray:
    """Depthwise 3x3, stride 1, on rows flattened to W*C (long contiguous inner loops even
    when C is small): tap (ky, kx) is the padded map shifted by ky rows and kx*C columns,
    times the tap's weights tiled along the row."""
    h, w, c = x.shape
    xp = np.zeros((h + 2, (w + 2) * c), dtype=np.float64)
    xp[1:-1, c:-c] = x.reshape(h, w * c)
    wt = np.tile(wf.T, (1, w))                       # [tap, W*C]
    acc = xp[0:h, 0:w * c] * wt[0]
    tmp = np.empty_like(acc)
    for t in range(1, 9):
        ky, kx = divmod(t, 3)
        np.multiply(xp[ky:ky + h, kx * c:kx * c + w * c], wt[t], out=tmp)
        acc += tmp
    return acc.reshape(h, w, c)


def _conv_acc(x: np.ndarray, kind: str, p: LayerParams, stride: int) -> np.ndarray:
    """Exact accumulators ([OH, OW, OC]) of a convolution on float64 codes ``x``, with
    float64 weights ``p.weights`` (integer codes, or codes times a power of two)."""
    h, w, c = x.shape
    if kind == "pw":
        return (x.reshape(-1, c) @ p.weights.T).reshape(h, w, -1)
    if kind == "dw" and stride == 1:
        return _dw_stride1(x, p.weights.reshape(c, 9))
    win, oh, ow = _windows(x, stride)
    if kind == "dw":
        wf = p.weights.reshape(c, 9)
        acc = win[0] * wf[:, 0]
        tmp = np.empty_like(acc)
        for t in range(1, 9):
            np.multiply(win[t], wf[:, t], out=tmp)
            acc += tmp
        return acc
    # conv3: im2col over the 9 taps, channels innermost
    cols = np.concatenate(win, axis=2).reshape(oh * ow, 9 * c)   # [tap][c]
    oc = p.weights.shape[0]
    wmat = p.weights.transpose(0, 2, 3, 1).reshape(oc, 9 * c)
    return (cols @ wmat.T).reshape(oh, ow, oc)


def _pool(x: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """2x2 max, stride 2, odd edge dropped (any dtype)."""
    v = x[:2 * oh, :2 * ow]
    return np.maximum(np.maximum(v[0::2, 0::2], v[0::2, 1::2]),
                      np.maximum(v[1::2, 0::2], v[1::2, 1::2]))


def _round(v: np.ndarray, rounding: Rounding) -> np.ndarray:
    """Round exact float64 quotients in place with the overlay's mode."""
    if rounding is Rounding.HALF_EVEN:
        return np.rint(v, out=v)
    if rounding is Rounding.FLOOR:
        return np.floor(v, out=v)
    if rounding is Rounding.TOWARD_ZERO:
        return np.trunc(v, out=v)
    sign = np.sign(v)                         # half away from zero
    np.abs(v, out=v)
    v += 0.5
    np.floor(v, out=v)
    v *= sign
    return v


def _requantize(v: np.ndarray, entry: dict, rounding: Rounding) -> np.ndarray:
    """Scaled accumulators ``(acc + bias) * 2**-shift`` (float64, modified in place) to
    output codes (float64).

    ReLU, ReLU6, rounding and saturation are monotone and round(0) = 0, so the activation
    becomes bounds of the final clip: round(max(v, 0)) = max(round(v), 0) and
    round(min(v, L)) = min(round(v), round(L)).
    """
    if int(entry["shift"]) > 0:
        _round(v, rounding)
    lo, hi = float(entry["out_min"]), float(entry["out_max"])
    if entry["activation"] >= 1:
        lo = max(lo, 0.0)
    if entry["activation"] == 2:             # round(L) >= 0 >= out_min: one clip suffices
        lim = np.array(float(entry["relu6_limit"]) * 2.0 ** -int(entry["shift"]))
        hi = min(hi, float(_round(lim, rounding)) if int(entry["shift"]) > 0 else float(lim))
    np.clip(v, lo, hi, out=v)
    return v


def _run_layer_f(x: np.ndarray, entry: dict, params: np.ndarray, overlay: Overlay,
                 pool_after: dict | None = None) -> np.ndarray:
    """One layer on float64 codes; with ``pool_after`` also the 2x2 pool that follows."""
    kind = _KIND.get(entry["type"])
    if kind is None:
        raise WireError(f"unknown layer type id {entry['type']}")
    if x.shape != (entry["in_h"], entry["in_w"], entry["in_c"]):
        raise EmulatorError(f"{kind} layer expects input {entry['in_h']}x{entry['in_w']}x"
                            f"{entry['in_c']}, got {'x'.join(map(str, x.shape))}")
    if kind == "pool":
        return _pool(x, entry["out_h"], entry["out_w"])
    p = read_layer_params(params, entry, overlay)
    _check_layer(kind, entry["in_c"], x, p, overlay)
    # The requantiser's 2**-shift folded into weights and bias: every product and partial
    # sum is the exact integer one times a power of two, so still exact.
    scale = 2.0 ** -int(entry["shift"])
    ps = LayerParams(p.weights.astype(np.float64) * scale, p.bias.astype(np.float64) * scale)
    acc = _conv_acc(x, kind, ps, entry["stride"])
    if pool_after is not None:               # monotone requantisation commutes with max
        acc = _pool(acc, pool_after["out_h"], pool_after["out_w"])
    acc += ps.bias
    return _requantize(acc, entry, Rounding(overlay.rounding))


def run_layer(x: np.ndarray, entry: dict, params: np.ndarray, overlay: Overlay) -> np.ndarray:
    """One layer of a pass descriptor on codes ``x`` [H, W, C] -> codes [OH, OW, OC]."""
    y = _run_layer_f(np.asarray(x, dtype=np.float64), entry, params, overlay)
    return y.astype(np.int64)


def run_pass(x: np.ndarray, params: np.ndarray, desc_offset: int, overlay: Overlay,
             keep_layers: bool = False) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """One engine invocation: the descriptor at ``desc_offset`` on codes ``x`` [H, W, C]."""
    header, entries = read_descriptor(params, desc_offset)
    x = np.asarray(x)
    if x.shape != (header["in_h"], header["in_w"], header["in_c"]):
        raise EmulatorError(f"pass expects input {header['in_h']}x{header['in_w']}x"
                            f"{header['in_c']}, got {'x'.join(map(str, x.shape))}")
    xf = x.astype(np.float64)
    outs: list[np.ndarray] = []
    i = 0
    while i < len(entries):
        e = entries[i]
        nxt = entries[i + 1] if i + 1 < len(entries) else None
        fuse = (not keep_layers and e["type"] != LAYER_TYPE_ID["pool"] and nxt is not None
                and nxt["type"] == LAYER_TYPE_ID["pool"])
        xf = _run_layer_f(xf, e, params, overlay, nxt if fuse else None)
        i += 2 if fuse else 1
        if keep_layers:
            outs.append(xf.astype(np.int64))
    y = xf.astype(np.int64)
    return (y, outs) if keep_layers else y


def run_program(program: Program, x: np.ndarray, overlay: Overlay,
                keep_passes: bool = False) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Every pass in turn on the input codes [H, W, C]; the network output codes."""
    outs = []
    for ps in program.passes:
        x = run_pass(x, program.params, ps.desc_offset, overlay)
        outs.append(x)
    return (x, outs) if keep_passes else x
