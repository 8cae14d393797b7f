"""Where QAT's extra time goes: a feature map's ReLU + fake quantisation, forward and back.

Run: ``.venv/bin/python benchmarks/bench_fake_quant.py [--shape 16,32,80,180] [--threads 1]
[--compile] [--steps 8]`` (about two minutes; ``--compile`` adds up to 20 s of compilation).

Table 1: each row is *measured on this host*: the milliseconds (min and median of ``--reps`` runs,
all variants interleaved in one process, under the trainer's own torch settings) of
``x -> ReLU -> fake quantisation (8-bit) -> sum -> backward`` on one channels-last float32
map, next to the same with the ReLU alone (the float step's work). Variants:

* ``relu + fake_quant``: what the trainer runs (:func:`host_search.nn.quant.fake_quant`
  after an in-place ReLU: vectorised scale / round / clip / rescale, a saved range mask);
* ``relu + torch fused``: torch's fused ``fake_quantize_per_tensor_affine`` instead (the
  trainer's path until it measured slower here);
* ``torch fused, ReLU as range``: no ReLU; the fused kernel clips to codes ``[0, max]``;
* ``compiled`` (``--compile``): ReLU, scale, clip and straight-through rounding through
  ``torch.compile`` (inductor, dynamic shapes).

Table 2 (*measured*): whole training steps of DNN-A (batch 16, at 3x160x360 and at the fast
mode's 3x80x180), the float step and the QAT step with each fake quantisation, interleaved
step by step in one process so that the machine's drift falls on all three alike: images/s
and forward multiply-adds per second (median step).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import host_search.nn.quant as quant
from bench_training import training_step
from host_search.nn.quant import fake_quant
from host_search.train import _torch_settings, reduced_design
from pynq_codesign.design import load_design
from pynq_codesign.fixedpoint import FixedFormat, Rounding

FMT = FixedFormat(8, 4, True)           # an 8-bit feature map, step 1/16
LO, HI = FMT.code_min(False), FMT.code_max()


def relu_only(x):
    return F.relu(x, inplace=True)


def relu_fake_quant(x):
    return fake_quant(F.relu(x, inplace=True), FMT, Rounding.HALF_EVEN, nonnegative=True)


def relu_torch_fused(x):
    return torch.fake_quantize_per_tensor_affine(F.relu(x, inplace=True), FMT.scale, 0, LO, HI)


def torch_fused_relu_range(x):
    return torch.fake_quantize_per_tensor_affine(x, FMT.scale, 0, 0, HI)


def _ste_fq(x):
    c = torch.clamp(x * (1.0 / FMT.scale), 0.0, float(HI))     # ReLU as the range's low end
    return (c + (torch.round(c) - c).detach()) * FMT.scale      # straight-through rounding


def time_variant(fn, x0: torch.Tensor) -> float:
    x = x0.clone().requires_grad_(True)
    t = time.perf_counter()
    fn(x * 1.0).sum().backward()        # x * 1.0: a fresh, non-leaf map as in a network
    return (time.perf_counter() - t) * 1000.0


def _torch_fused_fake_quant(x, fmt, rounding, narrow=False, nonnegative=False):
    if x.dtype != torch.float32 or Rounding(rounding) is not Rounding.HALF_EVEN:
        return fake_quant(x, fmt, rounding, narrow, nonnegative)
    return torch.fake_quantize_per_tensor_affine(x, fmt.scale, 0, fmt.code_min(narrow),
                                                 fmt.code_max())


def step_table(steps: int, batch: int = 16) -> None:
    a = load_design("dnn-a")
    print(f"\nDNN-A training steps, batch {batch} (measured, interleaved, median of {steps})")
    print(f"{'input':12s} {'step':24s} {'images/s':>9s} {'GMAC/s':>7s}")
    for d in (a, reduced_design(a)):
        float_step, qat_step = training_step(d, False, batch), training_step(d, True, batch)
        runs = {"float": (float_step, fake_quant), "QAT, fake_quant": (qat_step, fake_quant),
                "QAT, torch fused kernel": (qat_step, _torch_fused_fake_quant)}
        times = {k: [] for k in runs}
        try:
            for _ in range(steps + 1):
                for k, (step, fq) in runs.items():
                    quant.fake_quant = fq          # the model looks it up at each call
                    t = time.perf_counter()
                    step()
                    times[k].append(time.perf_counter() - t)
        finally:
            quant.fake_quant = fake_quant
        n = d.network
        for k, ts in times.items():
            ips = batch / statistics.median(ts[1:])
            print(f"{f'3x{n.input_height}x{n.input_width}':12s} {k:24s} {ips:9.1f} "
                  f"{ips * n.macs() / 1e9:7.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="16,32,80,180", help="N,C,H,W of the map")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--steps", type=int, default=8, help="timed training steps (0: skip)")
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    variants = {"relu alone (float step)": relu_only,
                "relu + fake_quant (the trainer)": relu_fake_quant,
                "relu + torch fused": relu_torch_fused,
                "torch fused, ReLU as range": torch_fused_relu_range}
    with _torch_settings(args.threads):
        gen = torch.Generator().manual_seed(0)
        x0 = torch.randn(shape, generator=gen).contiguous(memory_format=torch.channels_last)
        if args.compile:
            t = time.perf_counter()
            variants["compiled"] = torch.compile(_ste_fq, dynamic=True)
            time_variant(variants["compiled"], x0)
            print(f"torch.compile: {time.perf_counter() - t:.1f} s to compile")
        times = {k: [] for k in variants}
        for _ in range(args.reps + 1):               # the first round warms up
            for k, fn in variants.items():
                times[k].append(time_variant(fn, x0))
        n = x0.numel()
        print(f"map {shape} ({n / 1e6:.1f} M values), {args.threads} thread(s); measured, "
              "forward + backward")
        print(f"{'variant':30s} {'min ms':>8s} {'median ms':>10s} {'ns/value':>9s}")
        for k, ts in times.items():
            ts = ts[1:]
            print(f"{k:30s} {min(ts):8.1f} {statistics.median(ts):10.1f} "
                  f"{min(ts) * 1e6 / n:9.2f}")
        if args.steps:
            step_table(args.steps)


if __name__ == "__main__":
    main()
