"""The torch network of a design point, in float, quantisation-aware and integer-exact form.

:class:`DetectionNet` follows the layer semantics of :mod:`pynq_codesign.design` (the
accelerator and the emulator follow the same): ``dw`` / ``conv3`` are 3x3 convolutions with
padding 1 and stride 1 or 2 (``dw`` with one group per channel), ``pw`` a 1x1 convolution,
``pool`` a 2x2 max-pool with stride 2 that drops an odd edge row/column. Every convolution
but the last (the detection head) has a batch norm while training; :meth:`fold_batch_norm`
folds it into the weights and bias with :func:`pynq_codesign.fixedpoint.fold_batch_norm`.

Three ways to run it:

* float (``quantized = False``): plain training and the float ONNX model;
* quantised (``quantized = True``): the input, every weight, bias and layer output go
  through :func:`host_search.nn.quant.fake_quant` with the per-layer formats of the
  design's network and the overlay's rounding and range (``narrow`` on weights and feature
  maps as the overlay says; the input and the bias are never narrow, as
  :func:`pynq_codesign.prepost.quantize_input` and the bias's int32 container). Batch
  norm must be folded first, so the network that trains is the network that is exported;
* integer-exact: the quantised network in float64 (``model.double()``). Inputs and weights
  are codes times powers of two, so every product and partial sum is exact (the emulator's
  own argument, below 2**53); the bias sits at the accumulator's scale, the activation
  acts on the accumulator (ReLU6 at :func:`pynq_codesign.wire.relu6_limit`), and the
  requantisation rounds and saturates like the overlay. The result equals the emulator's
  output codes bit for bit (tested).

Input and output are NCHW real values, like any torch model; the output is the head's
``[N, anchors*5, GH, GW]`` map (see :mod:`host_search.nn.head`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pynq_codesign.design import Design, Layer, LayerShape, Network
from pynq_codesign.fixedpoint import (FixedFormat, Rounding, acc_frac, bias_format,
                                      fold_batch_norm, int_bits_for, quantize)
from pynq_codesign.wire import LayerParams, relu6_limit, weight_shape


#: Share of a hidden layer's calibration outputs that may saturate (see observe_ranges).
SATURATE_FRACTION = 1e-4
#: Logit units below each image's best confidence logit that the head's format must hold.
HEAD_LOGIT_MARGIN = 2.0
_CANDIDATE_INT_BITS = range(-24, 41)


class ConvUnit(nn.Module):
    """One convolution of the design (conv, optional batch norm, activation)."""

    def __init__(self, layer: Layer, shape: LayerShape, batch_norm: bool):
        super().__init__()
        k = 1 if layer.type == "pw" else 3
        self.kind = layer.type
        self.activation = layer.activation
        self.stride = layer.stride
        self.padding = k // 2
        self.groups = shape.in_c if layer.type == "dw" else 1
        self.conv = nn.Conv2d(shape.in_c, shape.out_c, k, stride=layer.stride,
                              padding=self.padding, groups=self.groups, bias=not batch_norm)
        self.bn = nn.BatchNorm2d(shape.out_c) if batch_norm else None

    def float_forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.bn is not None:
            y = self.bn(y)
        return _activate(y, self.activation, 6.0)


def _activate(y: torch.Tensor, activation: str, limit6: float) -> torch.Tensor:
    if activation == "relu":      # in place: y is a fresh conv / batch-norm output
        return F.relu(y, inplace=True)
    if activation == "relu6":
        return torch.clamp(y, 0.0, limit6)
    return y


@dataclass(frozen=True)
class LayerRanges:
    """Largest magnitudes seen per layer: folded weights and (pre-quantisation) outputs."""

    weight_max: tuple[float | None, ...]
    out_max: tuple[float | None, ...]


class DetectionNet(nn.Module):
    """The network of ``design`` (see the module docstring for its three forms)."""

    def __init__(self, design: Design, batch_norm: bool = True):
        super().__init__()
        self.design = design
        net = design.network
        layers = net.layers
        last = len(layers) - 1
        units = []
        for i, (lay, s) in enumerate(zip(layers, net.shapes())):
            if lay.is_conv:
                units.append(ConvUnit(lay, s, batch_norm and i != last))
            else:
                units.append(nn.MaxPool2d(2, 2))
        self.units = nn.ModuleList(units)
        self.quantized = False

    # --- design ------------------------------------------------------------------
    @property
    def network(self) -> Network:
        return self.design.network

    @property
    def rounding(self) -> Rounding:
        return self.design.overlay.rounding_mode

    @property
    def folded(self) -> bool:
        return all(u.bn is None for u in self.units if isinstance(u, ConvUnit))

    def set_design(self, design: Design) -> None:
        """Use ``design``'s formats from now on (the same structure: e.g. calibrated)."""
        if [(lay.type, s) for lay, s in zip(design.network.layers, design.network.shapes())] \
                != [(lay.type, s) for lay, s in zip(self.network.layers, self.network.shapes())]:
            raise ValueError("set_design needs a design of the same structure")
        self.design = design

    # --- running -----------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]

    def run(self, x: torch.Tensor, keep: bool = False) -> tuple[torch.Tensor, list]:
        """The output and (with ``keep``) every layer's output, in order."""
        outs = []
        if not self.quantized:
            for u in self.units:
                x = u.float_forward(x) if isinstance(u, ConvUnit) else u(x)
                if keep:
                    outs.append(x)
            return x, outs
        if not self.folded:
            raise RuntimeError("fold the batch norms (fold_batch_norm) before running quantised")
        from .quant import fake_quant
        ov = self.design.overlay
        r, narrow = self.rounding, ov.narrow_range
        x = fake_quant(x, self.network.input_format, r, False)
        for u, (fin, wf, fout) in zip(self.units, self.network.formats()):
            if isinstance(u, ConvUnit):
                af = acc_frac(fin, wf)
                w = fake_quant(u.conv.weight, wf, r, narrow)
                b = fake_quant(u.conv.bias, bias_format(fin, wf, ov.bias_bits), r, False)
                y = F.conv2d(x, w, b, u.stride, u.padding, 1, u.groups)
                y = _activate(y, u.activation, relu6_limit(af) * 2.0 ** -af)
                x = fake_quant(y, fout, r, narrow, nonnegative=u.activation in ("relu", "relu6"))
            else:
                x = u(x)
            if keep:
                outs.append(x)
        return x, outs

    # --- batch norm --------------------------------------------------------------
    @torch.no_grad()
    def fold_batch_norm(self) -> None:
        """Fold every batch norm (its running statistics) into its convolution, in place."""
        for u in self.units:
            if not isinstance(u, ConvUnit) or u.bn is None:
                continue
            bn = u.bn
            w = u.conv.weight.detach().double().cpu().numpy()
            b = None if u.conv.bias is None else u.conv.bias.detach().double().cpu().numpy()
            wf, bf = fold_batch_norm(w, b, bn.weight.detach().double().cpu().numpy(),
                                     bn.bias.detach().double().cpu().numpy(),
                                     bn.running_mean.double().cpu().numpy(),
                                     bn.running_var.double().cpu().numpy(), bn.eps)
            dtype, dev = u.conv.weight.dtype, u.conv.weight.device
            conv = nn.Conv2d(u.conv.in_channels, u.conv.out_channels, u.conv.kernel_size,
                             stride=u.conv.stride, padding=u.conv.padding,
                             groups=u.conv.groups, bias=True).to(dev, dtype)
            conv.weight.copy_(torch.from_numpy(wf))
            conv.bias.copy_(torch.from_numpy(bf))
            u.conv = conv
            u.bn = None

    # --- calibration ---------------------------------------------------------------
    @torch.no_grad()
    def observe_ranges(self, batches,
                       saturate_fraction: float = SATURATE_FRACTION) -> LayerRanges:
        """The ranges calibration needs, from a float run over ``batches``.

        * weights: the max-abs of every conv's (folded) weights: weights never saturate;
        * hidden layer outputs: the range of the narrowest power-of-two format (of the
          layer's output bits) that leaves at most ``saturate_fraction`` of the observed
          values saturated. Plain max-abs lets a handful of outliers set the step of an
          8-bit map (a 2x or 4x coarser step for every other value); the rare outliers
          saturate, as the hardware does (0 keeps plain max-abs);
        * the head: :func:`head_range` (box values never saturate).
        """
        if not self.folded:
            raise RuntimeError("fold the batch norms before calibrating")
        fmts = self.network.formats()
        cands = {i: [FixedFormat(fo.bits, ib, True) for ib in _CANDIDATE_INT_BITS]
                 for i, (_, wf, fo) in enumerate(fmts) if wf is not None}
        thresholds = {i: torch.tensor([f.real_max() for f in c], dtype=torch.float64)
                      for i, c in cands.items()}
        exceed = {i: torch.zeros(len(c) + 1, dtype=torch.int64) for i, c in cands.items()}
        total = {i: 0 for i in cands}
        absmax = [0.0] * len(self.units)
        last = len(self.units) - 1
        na = len(self.network.decode.anchors)
        was_q, self.quantized = self.quantized, False
        try:
            for xb in batches:
                _, outs = self.run(xb, keep=True)
                for i, o in enumerate(outs):
                    if i == last:
                        absmax[i] = max(absmax[i], head_range(o, na))
                        continue
                    a = o.detach().abs().flatten().double()
                    absmax[i] = max(absmax[i], float(a.max()))
                    if i in cands:
                        exceed[i] += torch.bincount(torch.bucketize(a, thresholds[i]),
                                                    minlength=len(cands[i]) + 1)
                        total[i] += a.numel()
        finally:
            self.quantized = was_q
        omax: list[float | None] = []
        for i, u in enumerate(self.units):
            if not isinstance(u, ConvUnit):
                omax.append(None)
                continue
            if i == last or saturate_fraction <= 0 or total[i] == 0:
                omax.append(absmax[i])
                continue
            # above[k]: values beyond candidate k's range (bucket index > k)
            above = torch.flip(torch.cumsum(torch.flip(exceed[i], [0]), 0), [0])[1:]
            ok = [k for k in range(len(cands[i]))
                  if int(above[k]) <= saturate_fraction * total[i]]
            omax.append(min(absmax[i], cands[i][ok[0]].real_max()) if ok else absmax[i])
        wmax = [float(u.conv.weight.detach().abs().max()) if isinstance(u, ConvUnit) else None
                for u in self.units]
        return LayerRanges(tuple(wmax), tuple(omax))


def head_range(out: torch.Tensor, n_anchors: int) -> float:
    """The magnitude the head's output format must hold: every box value (tx, ty, tw, th)
    and the positive confidence logits. Negative logits may saturate: decoding takes the
    most confident cell, and a logit below the format's minimum is already a certain "no"
    (sigmoid(-8) < 0.0004). Without this, the many strongly negative logits of empty
    cells would set the scaling and leave the box values a coarse step. Each image's best
    logit (and :data:`HEAD_LOGIT_MARGIN` below it) must fit though, even when negative
    (early in training): were it saturated, every cell would tie and decoding would take
    the first one."""
    n, ch, gh, gw = out.shape
    v = out.reshape(n, n_anchors, 5, gh, gw)
    top = v[:, :, 4].reshape(n, -1).max(dim=1).values       # each image's best logit
    return max(float(v[:, :, :4].abs().max()), float(top.max().clamp(min=0)),
               float((-top).max()) + HEAD_LOGIT_MARGIN)


def build_model(design: Design, batch_norm: bool = True) -> DetectionNet:
    """The torch network of a design point (float, batch norm while training)."""
    return DetectionNet(design, batch_norm=batch_norm)


def calibrate_formats(network: Network, ranges: LayerRanges) -> Network:
    """A copy of ``network`` whose every conv has the power-of-two scaling its observed
    ranges need (:func:`pynq_codesign.fixedpoint.int_bits_for`), bit widths unchanged."""
    wfs: list[FixedFormat | None] = []
    ofs: list[FixedFormat | None] = []
    for (fin, wf, fout), wm, om in zip(network.formats(), ranges.weight_max, ranges.out_max):
        if wf is None:
            wfs.append(None)
            ofs.append(None)
            continue
        wfs.append(FixedFormat(wf.bits, int_bits_for(wm, wf.bits, True), True))
        ofs.append(FixedFormat(fout.bits, int_bits_for(om, fout.bits, True), True))
    return network.with_formats(wfs, ofs)


@torch.no_grad()
def integer_params(model: DetectionNet) -> list[LayerParams | None]:
    """Integer weights (natural order) and biases (accumulator scale) of a folded model,
    quantised with :func:`pynq_codesign.fixedpoint.quantize` (float64): what the
    accelerator reads, and exactly what the quantised network computes with."""
    if not model.folded:
        raise RuntimeError("fold the batch norms before extracting integer parameters")
    ov = model.design.overlay
    r = model.rounding
    out: list[LayerParams | None] = []
    for u, lay, s, (fin, wf, _) in zip(model.units, model.network.layers,
                                       model.network.shapes(), model.network.formats()):
        if not isinstance(u, ConvUnit):
            out.append(None)
            continue
        w = u.conv.weight.detach().cpu().double().numpy()
        b = u.conv.bias.detach().cpu().double().numpy()
        wq = quantize(w, wf, r, ov.narrow_range).reshape(weight_shape(lay.type, s.in_c, s.out_c))
        bq = quantize(b, bias_format(fin, wf, ov.bias_bits), r, False)
        out.append(LayerParams(np.ascontiguousarray(wq), bq))
    return out
