"""Training throughput on the CPU, and float vs fixed-point IoU of DNN-A, -B, -C.

Run: ``.venv/bin/python benchmarks/bench_training.py [--n 200] [--epochs 16] [--qat-epochs 6]``
(several minutes on a laptop-class CPU). It prints two tables:

1. **Throughput** (*measured on this host*): training images per second of a DNN-A
   prototype (float and quantisation-aware steps, forward + backward + Adam, ``--batch``) at
   the full 3x160x360 input and at the fast-train resolution (3x80x180), timed over a few
   steps after a warm-up, with the thread count shown.
2. **IoU after a fixed budget** (*measured on the built-in synthetic validation set*, not
   the DAC-SDC data: these figures say how training and quantisation behave, not how the
   designs score in the contest): each reference design is trained in fast mode for the same
   number of float then QAT epochs on ``codesign data synth`` images (split by
   sub-category); the float IoU is the float network's after the float phase, the fixed-point
   IoU the integer-exact network's (= emulator arithmetic) after QAT, and their difference in
   IoU points (the target: fixed point within 2 points of float).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import torch

from host_search.data.synth import generate
from host_search.nn import build_model, calibrate_formats, detection_loss
from host_search.train import TrainConfig, _torch_settings, load_data, reduced_design, train
from pynq_codesign.design import Design, load_design


def throughput(design: Design, quantized: bool, steps: int, batch: int, threads: int,
               profile: bool = False) -> float:
    """Training images per second on random inputs (the speed does not depend on them),
    under the trainer's own torch settings (deterministic algorithms, thread count)."""
    with _torch_settings(threads):
        return _throughput(design, quantized, steps, batch, profile)


def training_step(design: Design, quantized: bool, batch: int):
    """One training step (forward + backward + Adam) of ``design`` on a random batch, as a
    function: float, or QAT on a folded, calibrated copy."""
    torch.manual_seed(0)
    net = design.network
    m = build_model(design)
    x = torch.randn(batch, 3, net.input_height, net.input_width).contiguous(
        memory_format=torch.channels_last)
    if quantized:
        m.eval()
        m.fold_batch_norm()
        m.set_design(Design(design.name, design.overlay,
                            calibrate_formats(net, m.observe_ranges([x]))))
        m.quantized = True
    m.to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    boxes = torch.tensor([[0.4, 0.4, 0.45, 0.48]] * batch)

    def step():
        loss, _ = detection_loss(m(x), boxes, net.decode)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def _throughput(design: Design, quantized: bool, steps: int, batch: int,
                profile: bool) -> float:
    step = training_step(design, quantized, batch)
    step()                                    # warm-up
    prof = torch.profiler.profile() if profile else contextlib.nullcontext()
    with prof:
        t = time.perf_counter()
        for _ in range(steps):
            step()
        dt = time.perf_counter() - t
    if profile:
        print(f"\nprofile of {steps} {'QAT' if quantized else 'float'} steps, "
              f"{design.network.input_height}x{design.network.input_width} (measured):")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    return steps * batch / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="synthetic images (train + val)")
    ap.add_argument("--epochs", type=int, default=16, help="float epochs (fast mode)")
    ap.add_argument("--qat-epochs", type=int, default=6)
    ap.add_argument("--designs", default="dnn-a,dnn-b,dnn-c")
    ap.add_argument("--no-throughput", action="store_true", help="skip table 1")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per throughput figure")
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--profile", action="store_true",
                    help="print where the time of the throughput steps goes (torch profiler)")
    ap.add_argument("--only-throughput", action="store_true", help="skip table 2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=TrainConfig().batch_size,
                    help="images per step (default: the trainer's)")
    args = ap.parse_args()

    print(f"host: {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} threads")
    if not args.no_throughput:
        print_throughput(args)
    if not args.only_throughput:
        print_iou(args)


def print_throughput(args) -> None:
    print(f"\n1. Training throughput, DNN-A prototype, batch {args.batch} (measured, this "
          "host's CPU)")
    a = load_design("dnn-a")
    rows = []
    for d in (a, reduced_design(a)):
        n = d.network
        f = throughput(d, False, args.steps, args.batch, args.threads, args.profile)
        q = throughput(d, True, args.steps, args.batch, args.threads, args.profile)
        rows.append((f"3x{n.input_height}x{n.input_width}", f, q, n.macs() / 1e9))
    print(f"{'input':<12} {'float images/s':>15} {'QAT images/s':>14} {'float GMAC/s':>13} "
          f"{'QAT GMAC/s':>11}")
    for name, f, q, gm in rows:
        print(f"{name:<12} {f:>15.1f} {q:>14.1f} {f * gm:>13.2f} {q * gm:>11.2f}")
    print(f"(GMAC/s = images/s x forward multiply-adds per image; load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: a shared machine is slower)")


def print_iou(args) -> None:
    print(f"\n2. Validation IoU after {args.epochs} float + {args.qat_epochs} QAT epochs, fast "
          f"mode (measured on the built-in SYNTHETIC set, {args.n} images, seed {args.seed}; "
          "not DAC-SDC figures)")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        generate(data_dir, args.n, args.seed)
        rows = []
        for name in args.designs.split(","):
            design = reduced_design(load_design(name))
            cfg = TrainConfig(epochs=args.epochs, qat_epochs=args.qat_epochs, seed=args.seed,
                              fast=True, threads=args.threads)
            data = load_data(data_dir, design, seed=args.seed)
            t = time.perf_counter()
            res = train(design, data, Path(tmp) / f"run-{name}", cfg)
            secs = time.perf_counter() - t
            ov = design.overlay
            rows.append((name, f"W{ov.weight_bits}/F{ov.feature_bits}", res.float_iou,
                         res.metrics["results"]["val_iou_fixed_point_before_qat"],
                         res.fixed_iou, secs, data.info))
        info = rows[0][-1]
        print(f"   ({info['train_images']} training / {info['val_images']} validation images, "
              f"{info['split']} split)")
        print(f"{'design':<8} {'bits':<8} {'float IoU':>10} {'fixed, no QAT':>14} "
              f"{'fixed IoU':>10} {'fixed-float (points)':>21} {'train s':>8}")
        for name, bits, fi, pi, qi, secs, _ in rows:
            print(f"{name:<8} {bits:<8} {fi:>10.3f} {pi:>14.3f} {qi:>10.3f} "
                  f"{100 * (qi - fi):>21.1f} {secs:>8.0f}")
    print("\nfloat IoU: float network after the float phase; fixed, no QAT: integer-exact "
          "fixed-point network right after calibration; fixed IoU: the same after QAT "
          "(emulator arithmetic). IoU = DAC-SDC mean IoU.")


if __name__ == "__main__":
    main()
