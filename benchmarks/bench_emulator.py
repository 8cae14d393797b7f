"""Emulator speed: frames per second of the bit-exact numpy emulator against float32
PyTorch on the CPU and against the C simulation of the HLS C++, DNN-C at 3x160x360.

    .venv/bin/python benchmarks/bench_emulator.py [--frames N] [--csim-frames N]

All three run in the same process on the same machine, the same random integer weights
and inputs; the printed ratios are measured in this run (``simulated`` figures of the
host, not of a board). Targets (issue 3): emulator at least half as fast as PyTorch, and
at least 50x faster than the C simulation.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def _threads_from_argv() -> str:
    """--threads N, read before numpy loads its BLAS (which fixes its pool at import)."""
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = _threads_from_argv()

import numpy as np  # noqa: E402

from pynq_codesign.design import load_design  # noqa: E402
from pynq_codesign.platform.sim.emulator import run_program  # noqa: E402
from pynq_codesign.randparams import random_program  # noqa: E402


def per_frame(fn, frames: int, warmup: int = 1) -> float:
    """Median seconds per frame (the machine is shared: the median resists stray load)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--design", default="dnn-c")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--csim-frames", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads for numpy's BLAS and torch alike (default 1)")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)

    d = load_design(args.design)
    net = d.network
    prog = random_program(d)
    rng = np.random.default_rng(1)
    fin = net.input_format
    x = rng.integers(fin.code_min(), fin.code_max() + 1,
                     size=(net.input_height, net.input_width, net.input_channels))
    shape = f"{net.input_channels}x{net.input_height}x{net.input_width}"
    print(f"{d.name} at {shape}, {net.macs() / 1e6:.0f} M MACs per frame, "
          f"{len(prog.passes)} engine passes, {args.threads} thread(s)")

    t_emu = per_frame(lambda: run_program(prog, x, d.overlay), args.frames)

    from host_search.nn.model import build_model
    model = build_model(d, batch_norm=False).eval().float()
    xt = torch.from_numpy((x * fin.scale).astype(np.float32).transpose(2, 0, 1)[None].copy())
    with torch.inference_mode():
        t_torch = per_frame(lambda: model(xt), args.frames)

    from host_search import csim
    eng = csim.build(d.overlay)
    y_emu = run_program(prog, x, d.overlay)
    t_csim = per_frame(lambda: eng.run_program(prog, x), args.csim_frames, warmup=0)
    y_csim = eng.run_program(prog, x)
    exact = np.array_equal(y_emu, y_csim)

    print("median per frame, host wall clock on this machine (not board figures):")
    print(f"emulator (numpy, bit-exact):  {t_emu * 1e3:8.1f} ms/frame  {1 / t_emu:7.2f} frames/s")
    print(f"PyTorch float32 (CPU):        {t_torch * 1e3:8.1f} ms/frame  {1 / t_torch:7.2f} frames/s")
    print(f"C simulation (g++ -O2):       {t_csim * 1e3:8.1f} ms/frame  {1 / t_csim:7.2f} frames/s")
    print(f"emulator / PyTorch speed:     {t_torch / t_emu:6.2f}x  (target >= 0.5)")
    print(f"emulator / C simulation speed:{t_csim / t_emu:7.1f}x  (target >= 50)")
    print(f"emulator and C simulation outputs identical: {exact}")


if __name__ == "__main__":
    main()
