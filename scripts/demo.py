"""The main job, end to end on one machine: `make demo`.

Estimate the reference designs, make the built-in data set, train DNN-A (float, then
quantisation-aware), export its deployment package, and run it on the simulated board:
self-test, benchmark and detection. Finally generate the overlay project (building the
bitstream needs Vivado 2024.1; without it the step prints the commands to run).

Every step is a `codesign` command, printed before it runs, so a person can repeat any
of them by hand. Every figure says where it came from (estimated / simulated).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

CODESIGN = [sys.executable, "-m", "pynq_codesign.cli"]


def step(title: str, args: list[str], ok_codes: tuple[int, ...] = (0,),
         capture: bool = False) -> subprocess.CompletedProcess:
    print(f"\n== {title}\n$ codesign {' '.join(args)}", flush=True)
    t0 = time.time()
    r = subprocess.run(CODESIGN + args, text=True,
                       stdout=subprocess.PIPE if capture else None)
    if capture and r.stdout and "--json" not in args:
        print(r.stdout, end="")
    if r.returncode not in ok_codes:
        print(f"demo: step failed (exit {r.returncode}): codesign {' '.join(args)}",
              file=sys.stderr)
        sys.exit(r.returncode or 1)
    print(f"   ({time.time() - t0:.1f} s)", flush=True)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="demo-out", help="folder for everything the demo writes")
    ap.add_argument("--design", default="dnn-a")
    ap.add_argument("--images", type=int, default=240, help="size of the built-in data set")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--frames", type=int, default=40)
    a = ap.parse_args()
    out = Path(a.out)
    for sub in ("data", "run", "pkg", "val", "detect", "overlay"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    step("Reference designs and their published figures", ["designs"])
    for name in ("dnn-a", "dnn-c"):
        step(f"Analytical estimate of {name} on the PYNQ-Z1", ["estimate", name])
    step("Built-in UAV-like data set (DAC-SDC layout)",
         ["data", "synth", "--out", str(out / "data"), "--n", str(a.images), "--seed", "1"])
    step(f"Train {a.design}: float, then quantisation-aware",
         ["train", a.design, "--data", str(out / "data"), "--epochs", str(a.epochs),
          "--out", str(out / "run"), "--seed", "1"])
    step("Export the deployment package",
         ["export", str(out / "run"), "--out", str(out / "pkg")])
    val = _validation_set(out / "run", out / "data", out / "val")
    step("Self-test on the simulated board (golden vectors)",
         ["board", "selftest", str(out / "pkg"), "--sim"])
    bench = step("Benchmark on the simulated board",
                 ["bench", str(out / "pkg"), "--sim", "--frames", str(a.frames),
                  "--images", str(val), "--json"], capture=True)
    (out / "bench.json").write_text(bench.stdout)
    step("Detection on the simulated board (annotated images + results XML)",
         ["detect", str(out / "pkg"), "--images", str(_first_category(val)),
          "--out", str(out / "detect"), "--sim"])
    step("Overlay project (needs Vivado 2024.1 to build the bitstream)",
         ["build-overlay", str(out / "pkg"), "--board", "pynq-z1",
          "--out", str(out / "overlay")], ok_codes=(0, 2))

    r = json.loads(bench.stdout)
    print("\n== Summary")
    print(f"simulated board: {r['fps']:.1f} FPS, latency p50 {r['latency_ms_p50']:.1f} ms, "
          f"p99 {r['latency_ms_p99']:.1f} ms, {r['power_w']:.2f} W ({r['power_source']}), "
          f"{r['energy_mj_per_frame']:.0f} mJ/frame, IoU "
          f"{'n/a' if r.get('iou') is None else format(r['iou'], '.3f')} "
          f"[source: {r['source']}]")
    print(f"everything is in {out}/")
    return 0


def _validation_set(run: Path, data: Path, dest: Path) -> Path:
    """Copy the sub-categories training held out into ``dest``: the benchmark's IoU and the
    detections are on images the network never trained on."""
    split = json.loads((run / "metrics.json").read_text())["data"]
    for cat in split["val_subcategories"]:
        shutil.copytree(data / cat, dest / cat)
    print(f"\nvalidation sub-categories (held out by training): "
          f"{', '.join(split['val_subcategories'])} -> {dest}")
    return dest


def _first_category(data: Path) -> Path:
    cats = sorted(p for p in data.iterdir() if p.is_dir())
    return cats[0] if cats else data


if __name__ == "__main__":
    sys.exit(main())
