"""The bit-exact emulator of the bundle engine (numpy only).

It executes what the hardware executes: the pass descriptors and parameters packed by
:func:`pynq_codesign.wire.build_program`, on integer feature codes in HWC order, with
the arithmetic of DESIGN.md 3a:

* accumulate ``in_code * w_code`` exactly; add the bias (accumulator scale);
* activation at the accumulator's scale (ReLU: ``max(acc, 0)``; ReLU6: also
  ``min(acc, relu6_limit)``);
* requantise: shift right by ``shift`` with the overlay's rounding, then saturate to
  ``[out_min, out_max]``;
* 2x2 max-pool on codes, odd edge rows/columns dropped.

Sums are formed exactly: convolutions use float64 matrix products, which are exact
because every partial sum is an integer below 2**53 (:func:`check_exact` refuses a
layer where that could fail), and everything after is int64. That keeps a frame fast
on the host and correct on the board's 32-bit ARM, where numpy's default int is int32.
"""
from __future__ import annotations

import numpy as np

from ...design import Overlay
from ...errors import CodesignError
from ...fixedpoint import Rounding, shift_round
from ...wire import (LAYER_TYPE_ID, LayerParams, Program, WireError, read_descriptor,
                     read_layer_params)

_KIND = {v: k for k, v in LAYER_TYPE_ID.items()}
_EXACT_LIMIT = 2 ** 53


class EmulatorError(CodesignError, RuntimeError):
    """The emulator cannot run this input exactly (shape or range out of bounds)."""


def check_exact(k: int, in_max: int, w_max: int) -> None:
    """Refuse a dot product of length ``k`` whose sum could leave float64's exact range."""
    if k * in_max * w_max >= _EXACT_LIMIT:
        raise EmulatorError(f"a sum of {k} products of |{in_max}| x |{w_max}| may exceed 2**53")


def _conv_acc(x: np.ndarray, kind: str, p: LayerParams, stride: int) -> np.ndarray:
    """Exact accumulators (int64, [OH, OW, OC]) of a convolution on codes ``x`` [H, W, C]."""
    h, w, c = x.shape
    xf = x.astype(np.float64)
    wmax = int(np.abs(p.weights).max()) if p.weights.size else 0
    xmax = int(np.abs(x).max()) if x.size else 0
    if kind == "pw":
        check_exact(c, xmax, wmax)
        acc = xf.reshape(-1, c) @ p.weights.astype(np.float64).T
        return acc.reshape(h, w, -1).astype(np.int64)
    oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1
    xp = np.zeros((h + 2, w + 2, c), dtype=np.float64)
    xp[1:-1, 1:-1] = xf
    taps = [(ky, kx) for ky in range(3) for kx in range(3)]
    win = [xp[ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride]
           for ky, kx in taps]
    if kind == "dw":
        check_exact(9, xmax, wmax)
        wf = p.weights.astype(np.float64).reshape(c, 9)
        acc = np.zeros((oh, ow, c), dtype=np.float64)
        for t, sl in enumerate(win):
            acc += sl * wf[:, t]
        return acc.astype(np.int64)
    # conv3: im2col over the 9 taps, channels innermost
    check_exact(9 * c, xmax, wmax)
    cols = np.concatenate(win, axis=2).reshape(oh * ow, 9 * c)   # [tap][c]
    oc = p.weights.shape[0]
    wmat = p.weights.astype(np.float64).transpose(0, 2, 3, 1).reshape(oc, 9 * c)
    return (cols @ wmat.T).reshape(oh, ow, oc).astype(np.int64)


def run_layer(x: np.ndarray, entry: dict, params: np.ndarray, overlay: Overlay) -> np.ndarray:
    """One layer of a pass descriptor on codes ``x`` [H, W, C] -> codes [OH, OW, OC]."""
    kind = _KIND.get(entry["type"])
    if kind is None:
        raise WireError(f"unknown layer type id {entry['type']}")
    if x.shape != (entry["in_h"], entry["in_w"], entry["in_c"]):
        raise EmulatorError(f"{kind} layer expects input {entry['in_h']}x{entry['in_w']}x"
                            f"{entry['in_c']}, got {'x'.join(map(str, x.shape))}")
    if kind == "pool":
        oh, ow = entry["out_h"], entry["out_w"]
        v = x[:2 * oh, :2 * ow].reshape(oh, 2, ow, 2, -1)
        return v.max(axis=(1, 3))
    p = read_layer_params(params, entry, overlay)
    acc = _conv_acc(x, kind, p, entry["stride"]) + p.bias
    if entry["activation"] >= 1:
        acc = np.maximum(acc, 0)
    if entry["activation"] == 2:
        acc = np.minimum(acc, np.int64(entry["relu6_limit"]))
    q = shift_round(acc, entry["shift"], Rounding(overlay.rounding))
    return np.clip(q, entry["out_min"], entry["out_max"])


def run_pass(x: np.ndarray, params: np.ndarray, desc_offset: int, overlay: Overlay,
             keep_layers: bool = False) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """One engine invocation: the descriptor at ``desc_offset`` on codes ``x`` [H, W, C]."""
    header, entries = read_descriptor(params, desc_offset)
    if x.shape != (header["in_h"], header["in_w"], header["in_c"]):
        raise EmulatorError(f"pass expects input {header['in_h']}x{header['in_w']}x"
                            f"{header['in_c']}, got {'x'.join(map(str, x.shape))}")
    outs = []
    for e in entries:
        x = run_layer(np.asarray(x, dtype=np.int64), e, params, overlay)
        outs.append(x)
    return (x, outs) if keep_layers else x


def run_program(program: Program, x: np.ndarray, overlay: Overlay,
                keep_passes: bool = False) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Every pass in turn on the input codes [H, W, C]; the network output codes."""
    outs = []
    for ps in program.passes:
        x = run_pass(x, program.params, ps.desc_offset, overlay)
        outs.append(x)
    return (x, outs) if keep_passes else x
