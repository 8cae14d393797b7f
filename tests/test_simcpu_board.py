"""The simulated board's CPU is the board's, not the host's: a run repeats exactly for the
same (board seed, run seed), in one process or another, with the host idle or loaded;
other seeds differ; the CPU's share of a frame stays plausible for DNN-A and DNN-C."""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pynq_codesign import cpu_work, randparams
from pynq_codesign.bench import run_bench
from pynq_codesign.cpu_work import CpuWork
from pynq_codesign.design import load_design
from pynq_codesign.driver import Driver
from pynq_codesign.package import load_package
from pynq_codesign.pipeline import Detector, Frame
from pynq_codesign.platform.sim.board import SimPlatform
from pynq_codesign.platform.sim.cpu import CpuModel, _draw_cpu
from tests.helpers import random_package

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 5

# one run's timeline as exact numbers (repr round-trips floats), for another process too
_RUN = """
import json, sys
from pynq_codesign.bench import run_bench
from pynq_codesign.driver import Driver
from pynq_codesign.package import load_package
from pynq_codesign.platform.sim.board import SimPlatform
pkg = load_package(sys.argv[1])
with Driver(SimPlatform(int(sys.argv[2]), run_seed=int(sys.argv[3])), pkg) as drv:
    tl = run_bench(drv, int(sys.argv[4]), warmup=1).timeline
print(json.dumps([[repr(v) for v in x] for x in (tl.read_start, tl.done, tl.pre_s,
                                                  tl.post_s, tl.accel_s)]))
"""


def _timeline(pkg, seed: int, run_seed: int = 0) -> list:
    with Driver(SimPlatform(seed, run_seed=run_seed), pkg) as drv:
        tl = run_bench(drv, FRAMES, warmup=1).timeline
    return [[repr(v) for v in x] for x in (tl.read_start, tl.done, tl.pre_s, tl.post_s,
                                           tl.accel_s)]


@pytest.fixture(scope="module")
def pkg_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("simcpu") / "pkg"
    random_package(d, n_golden=2)
    return d


def test_same_seed_same_timeline_in_one_process(pkg_dir):
    pkg = load_package(pkg_dir)
    assert _timeline(pkg, 4) == _timeline(pkg, 4)
    assert _timeline(pkg, 4, run_seed=7) == _timeline(pkg, 4, run_seed=7)


def test_same_seed_same_timeline_across_processes_under_load(pkg_dir):
    here = _timeline(load_package(pkg_dir), 5, run_seed=1)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        out = subprocess.run([sys.executable, "-c", _RUN, str(pkg_dir), "5", "1",
                              str(FRAMES)], cwd=ROOT, capture_output=True, text=True,
                             timeout=120, check=True).stdout
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert json.loads(out) == here


def test_host_time_plays_no_part(pkg_dir, monkeypatch):
    """A host that takes far longer to pre-process and decode changes nothing."""
    pkg = load_package(pkg_dir)
    quiet = _timeline(pkg, 2)
    prepare, decode = Detector.prepare, Detector.decode

    def burn(seconds: float) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    monkeypatch.setattr(Detector, "prepare", lambda self, fr: (burn(0.01),
                                                               prepare(self, fr))[1])
    monkeypatch.setattr(Detector, "decode", lambda self, c: (burn(0.01), decode(self, c))[1])
    assert _timeline(pkg, 2) == quiet


def test_different_seeds_differ(pkg_dir):
    pkg = load_package(pkg_dir)
    a, b, c = _timeline(pkg, 0), _timeline(pkg, 1), _timeline(pkg, 0, run_seed=1)
    assert a[2] != b[2] and a[4] != b[4]         # CPU and accelerator: other boards
    assert a[2] != c[2]                          # same board, another run: other jitter
    pre_a, pre_c = np.array(a[2], float), np.array(c[2], float)
    assert np.abs(pre_c / pre_a - 1).max() < 0.15   # ... but only the jitter


def test_cpu_costs_are_per_seed_and_jitter_is_small():
    work = CpuWork(calls=40, jpeg_px=640 * 360, area_px=640 * 360, norm_elems=160 * 360 * 3,
                   layout_elems=160 * 360 * 8, copy_bytes=160 * 360 * 8)
    nominal = [CpuModel(s).nominal_s(work) for s in range(8)]
    assert len(set(nominal)) == 8
    assert CpuModel(3, run_seed=9).nominal_s(work) == nominal[3]
    m = CpuModel(3)
    draws = np.array([m.seconds(work) for _ in range(400)]) / nominal[3]
    assert 0.003 < draws.std() < 0.03 and abs(draws.mean() - 1) < 0.01
    ph = _draw_cpu(0)
    assert 3e-6 <= ph.call_s <= 8e-6 and 30e-9 <= ph.jpeg_s_per_px <= 80e-9


@pytest.mark.parametrize("name", ["dnn-a", "dnn-c"])
def test_cpu_share_of_a_frame_is_plausible(name, tmp_path):
    """With the package's input codes the CPU only packs them (a small share); from a
    640x360 JPEG (the DAC-SDC size) it decodes, resizes and quantises in float64 numpy on
    a 650 MHz Cortex-A9: tens of ms, the larger part of a frame."""
    pkg = randparams.random_package(tmp_path / name, load_design(name))
    net = pkg.design.network
    photo = Frame("p", image=np.zeros((360, 640, 3), np.uint8))
    for seed in range(4):
        pf = SimPlatform(seed)
        with Driver(pf, pkg) as drv:
            det = Detector(drv)
            accel = drv.run(pkg.golden[0][0]).accel_s
            post = pf.cpu_seconds(det.decode_work(np.zeros(
                (net.shapes()[-1].out_h, net.shapes()[-1].out_w, net.shapes()[-1].out_c),
                np.int64)), 0.0)
            golden = pf.cpu_seconds(det.prepare_work(Frame("g", codes=pkg.golden[0][0])), 0.0)
            image = pf.cpu_seconds(det.prepare_work(photo), 0.0)
        assert 0.0003 < post < 0.003
        assert 0.02 < (golden + post) / (golden + post + accel) < 0.4
        assert 0.015 < image < 0.12
        assert 0.3 < (image + post) / (image + post + accel) < 0.9


def test_work_counts_follow_the_frame(pkg_dir):
    pkg = load_package(pkg_dir)
    with Driver(SimPlatform(0), pkg) as drv:
        det = Detector(drv)
        g = det.prepare_work(Frame("g", codes=pkg.golden[0][0]))
        big = det.prepare_work(Frame("p", image=np.zeros((360, 640, 3), np.uint8),
                                     path=Path("p.png")))
    assert g.calls == cpu_work.CALLS_PREPARE_CODES and g.norm_elems == 0 and g.layout_elems
    assert big.png_px == 640 * 360 and big.jpeg_px == 0 and big.norm_elems > 0
    assert big.files == 1 and big.file_bytes == 0           # no such file: size unknown
    assert (g + big).layout_elems == 2 * g.layout_elems
