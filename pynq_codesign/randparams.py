"""Integer programs with random weights: for tests, benchmarks and bring-up.

A design's accelerator can be exercised before any network is trained: these functions
draw integer weight and bias codes within the design's formats, pack them
(:func:`pynq_codesign.wire.build_program`) and, for a package, compute golden outputs
with the bit-exact emulator. Nothing here is a trained network; packages made this way
carry ``"random_weights": true`` in their manifest's ``info``.

Styles:

* ``"lively"`` (default): weights scaled per layer so that every layer's outputs stay
  busy (codes of about ``target`` in magnitude, neither all zero nor all saturated), so a
  wrong byte anywhere shows in the final output;
* ``"uniform"``: small uniform codes (a 64th of each format's range) and small biases.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .design import Design
from .wire import LayerParams, Program, build_program, weight_shape

STYLES = ("lively", "uniform")


def random_params(design: Design, seed: int = 0, style: str = "lively",
                  target: float = 20.0) -> list[LayerParams | None]:
    """One :class:`LayerParams` per convolution (``None`` for pools), int64 codes."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    rng = np.random.default_rng(seed)
    net = design.network
    out: list[LayerParams | None] = []
    for lay, s, (fin, wf, fout) in zip(net.layers, net.shapes(), net.formats()):
        if not lay.is_conv:
            out.append(None)
            continue
        shape = weight_shape(lay.type, s.in_c, s.out_c)
        if style == "uniform":
            w = rng.integers(wf.code_min() // 64, wf.code_max() // 64, size=shape)
            out.append(LayerParams(w, rng.integers(-500, 500, size=s.out_c)))
            continue
        fan_in = {"dw": 9, "pw": s.in_c, "conv3": 9 * s.in_c}[lay.type]
        shift = fin.frac + wf.frac - fout.frac
        std = target * 2.0 ** shift / (30.0 * np.sqrt(fan_in))
        w = np.clip(np.round(rng.normal(0, std, size=shape)),
                    wf.code_min(), wf.code_max()).astype(np.int64)
        out.append(LayerParams(w, rng.integers(0, 2 ** max(shift, 1), size=s.out_c)))
    return out


def random_program(design: Design, seed: int = 0, style: str = "lively") -> Program:
    """The packed parameter buffer and passes of :func:`random_params`."""
    return build_program(design, random_params(design, seed, style))


def random_inputs(design: Design, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` input maps ``[H, W, C]`` of codes drawn uniformly over the input format."""
    rng = np.random.default_rng(seed)
    net, fmt = design.network, design.network.input_format
    return [rng.integers(fmt.code_min(), fmt.code_max() + 1,
                         size=(net.input_height, net.input_width, net.input_channels))
            for _ in range(n)]


def random_package(out: str | Path, design: Design, seed: int = 0, n_golden: int = 1,
                   style: str = "lively"):
    """A complete deployment package with random weights and emulator golden vectors."""
    from .package import write_package
    from .platform.sim.emulator import run_program
    prog = random_program(design, seed, style)
    golden = [(x, run_program(prog, x, design.overlay))
              for x in random_inputs(design, n_golden, seed + 1)]
    return write_package(out, design, prog, golden,
                         info={"random_weights": True, "style": style, "seed": seed})
