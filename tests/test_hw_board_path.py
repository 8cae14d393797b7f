"""The board path as the hardware will run it (issue 8, items 1-5): the runtime finds the
engine under the VLNV the HLS build exports, the Vivado flow puts the exported IP zip into
its catalog, descriptors are checked before any DMA is armed, pynq's errors become clear
ones with recovery, buffers are cacheable (and the simulated board charges their cache
maintenance), and the DMA must be in simple mode."""
import re
import shutil
import subprocess
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pynq_codesign import wire
from pynq_codesign.driver import DescriptorRefused, Driver
from pynq_codesign.package import load_package, write_package
from pynq_codesign.platform import pynq as pp
from pynq_codesign.platform.base import PlatformError, TransferError
from pynq_codesign.platform.sim.board import SimPlatform
from tests.helpers import random_package
from tests.test_overlay_build import RECORDER, RUNNER, needs_tclsh, run_tcl
from host_search import overlay_build

HWH = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "pynq-z1-resizer.hwh"
needs_hwh = pytest.mark.skipif(not HWH.is_file(), reason=f"{HWH} absent (shared test data "
                               "is not part of the project)")


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    return random_package(tmp_path_factory.mktemp("bp") / "pkg", n_golden=1)


@pytest.fixture
def project(tmp_path, pkg):
    out = tmp_path / "ov"
    overlay_build.write_project(pkg, "pynq-z1", out)
    (tmp_path / "recorder.tcl").write_text(RECORDER)
    (tmp_path / "runner.tcl").write_text(RUNNER)
    return out, tmp_path


# --- 1. the VLNV the build exports is the one the runtime accepts -----------------------
@needs_hwh
def test_runtime_accepts_the_vlnv_the_build_exports(tmp_path):
    pytest.importorskip("pynqmetadata")
    vlnv = wire.ENGINE_VLNV_PREFIX + "1.0"
    text = HWH.read_text()
    assert "xilinx.com:hls:resize_accel:1.0" in text
    ours = tmp_path / "engine.hwh"
    ours.write_text(text.replace("xilinx.com:hls:resize_accel:1.0", vlnv)
                    .replace('VENDOR="xilinx.com"', f'VENDOR="{wire.ENGINE_VENDOR}"'))
    info = pp.analyse_ip_dict(pp.read_hwh(ours), require_engine=False)
    assert info.hls_type == vlnv and info.hls_name == "resize_accel_0"
    assert info.hls_base == 0x43C00000
    # an IP of another vendor is not taken for the engine
    other = tmp_path / "other.hwh"
    other.write_text(text.replace("xilinx.com:hls:resize_accel:1.0", "acme.com:hls:x:1.0"))
    with pytest.raises(PlatformError, match="no HLS IP"):
        pp.analyse_ip_dict(pp.read_hwh(other), require_engine=False)


@needs_tclsh
def test_hls_flow_exports_the_vlnv_the_runtime_and_block_design_use(project):
    out, tmp = project
    p, calls = run_tcl(tmp, out / "hls" / "run_hls.tcl")
    assert p.returncode == 0, p.stderr
    exp = next(c for c in calls if c[0] == "config_export")
    got = ":".join(exp[exp.index(k) + 1] for k in ("-vendor", "-library", "-ipname"))
    assert got + ":" == wire.ENGINE_VLNV_PREFIX
    assert str(exp[exp.index("-version") + 1]) in (out / "hls" / "ip" / "pcd_engine.zip").read_text()


# --- 2. the exported zip reaches Vivado's catalog ---------------------------------------
@needs_tclsh
def test_vivado_flow_adds_the_exported_zip_to_the_catalog(project):
    out, tmp = project
    p, _ = run_tcl(tmp, out / "hls" / "run_hls.tcl")
    assert p.returncode == 0, p.stderr
    p, calls = run_tcl(tmp, out / "overlay" / "build_overlay.tcl")
    assert p.returncode == 0, p.stderr
    add = [c for c in calls if c[0] == "update_ip_catalog" and "-add_ip" in c]
    assert len(add) == 1
    assert add[0][add[0].index("-add_ip") + 1].endswith("pcd_engine.zip")
    cell = next(c for c in calls if c[0] == "create_bd_cell" and "pcd_engine" in c)
    assert cell[cell.index("-vlnv") + 1].startswith(wire.ENGINE_VLNV_PREFIX)
    i_add = calls.index(add[0])
    assert i_add < calls.index(cell)


@needs_tclsh
def test_vivado_flow_refuses_without_the_exported_zip(project):
    out, tmp = project
    (out / "hls" / "ip").mkdir(exist_ok=True)            # a folder, but no zip in it
    p, calls = run_tcl(tmp, out / "overlay" / "build_overlay.tcl")
    assert p.returncode == 1 and "pcd_engine.zip" in p.stderr
    assert not any(c[0] == "create_bd_cell" for c in calls)


# --- 3. descriptors checked before any DMA is armed -------------------------------------
class SpyBoard(SimPlatform):
    def __init__(self):
        super().__init__(0)
        self.dma_calls = 0

    def dma_send(self, buf, nbytes):
        self.dma_calls += 1
        super().dma_send(buf, nbytes)

    def dma_recv(self, buf, nbytes):
        self.dma_calls += 1
        super().dma_recv(buf, nbytes)


def test_descriptor_the_engine_refuses_arms_no_dma(pkg, tmp_path):
    prog = pkg.program
    ps = prog.passes[0]
    params = prog.params.copy()
    words = params.view("<i4")
    e = ps.desc_offset // 4 + wire.HEADER_WORDS
    words[e + wire.LAYER_FIELDS.index("in_c")] = pkg.design.overlay.max_channels + 1
    assert wire.descriptor_status(params, ps.desc_offset, pkg.design.overlay) == 3
    bad = write_package(tmp_path / "bad", pkg.design, replace(prog, params=params), pkg.golden)
    board = SpyBoard()
    with pytest.raises(DescriptorRefused, match=r"pass 0 .*status 3"):
        Driver(board, load_package(bad.root)).open()
    assert board.dma_calls == 0
    good = SpyBoard()
    with Driver(good, pkg) as drv:
        drv.run(pkg.golden[0][0])
    assert good.dma_calls == 2 * len(prog.passes)


# --- 4. pynq's errors as clear ones, recovery after a DMA error -------------------------
def test_dma_error_recovers_like_a_timeout(pkg):
    board = SimPlatform(0, fault="dma_error")
    x, y = pkg.golden[0]
    with Driver(board, pkg, timeout=0.5) as drv:
        with pytest.raises(TransferError, match="downloaded again"):
            drv.run(x)
        assert np.array_equal(drv.run(x).codes, y)      # the next run works


def test_halted_channel_refuses_until_recovered(pkg):
    board = SimPlatform(0, fault="dma_error")
    board.load(pkg)
    board._halted = True
    buf = board.allocate("b", 64)
    with pytest.raises(TransferError, match="not started"):
        board.dma_send(buf, 64)
    board.recover()
    board.dma_send(buf, 64)


class _Ch:
    def __init__(self, exc):
        self.exc = exc

    def transfer(self, buf, nbytes=0):
        raise self.exc


def test_pynq_channel_not_started_is_a_transfer_error():
    pf = pp.PynqPlatform.__new__(pp.PynqPlatform)
    pf._dma = types.SimpleNamespace(sendchannel=_Ch(RuntimeError("DMA channel not started")),
                                    recvchannel=_Ch(ValueError("Transfer size is too big")))
    with pytest.raises(TransferError, match="halted after an earlier error"):
        pf.dma_send(np.zeros(8, np.uint8), 8)
    with pytest.raises(TransferError, match="refused 8 bytes"):
        pf.dma_recv(np.zeros(8, np.uint8), 8)


@pytest.mark.parametrize("exc, words", [(PermissionError(13, "Permission denied"), "root"),
                                        (OSError(30, "Read-only file system"), "firmware")])
def test_pynq_download_without_privileges_says_what_to_do(exc, words):
    def overlay(path):
        raise exc
    pf = pp.PynqPlatform.__new__(pp.PynqPlatform)
    pf._pynq = types.SimpleNamespace(Overlay=overlay)
    pf._bit = Path("x.bit")
    with pytest.raises(PlatformError, match=words):
        pf._download()


# --- 5. cacheable buffers, their cost, simple-mode DMA ----------------------------------
def test_pynq_buffers_are_cacheable():
    seen = {}

    def allocate(shape, dtype, **kw):
        seen.update(kw)
        return np.zeros(shape, dtype)
    pf = pp.PynqPlatform.__new__(pp.PynqPlatform)
    pf._pynq, pf._bufs = types.SimpleNamespace(allocate=allocate), {}
    pf.allocate("x", 64)
    assert seen == {"cacheable": True}


def test_sim_board_charges_cache_maintenance_of_cacheable_buffers_only(pkg):
    """The CPU touches the input and the last output (cacheable: flushed whole before the
    first send, invalidated whole after the last receive); the maps between passes only
    the fabric (non-cacheable: no cache maintenance)."""
    board = SimPlatform(0)
    charged = []
    passes = pkg.program.passes
    with Driver(board, pkg) as drv:
        tm = board._timing
        orig_op, orig_call = tm.cache_op, tm.dma_call
        tm.cache_op = lambda n: (charged.append(("inv", n)), orig_op(n))[1]
        tm.dma_call = lambda n: (charged.append(("call", n)), orig_call(n))[1]
        drv.run(pkg.golden[0][0])
        size = {k: b.size for k, b in drv._bufs.items()}
    flushes = [n for what, n in charged if what == "call" and n]
    invalidates = [n for what, n in charged if what == "inv" and n]
    assert flushes == [size["in0"]]                     # the first send only
    assert invalidates == [size["out"]]                 # the last receive only
    assert size["out"] == passes[-1].out_bytes
    assert len([1 for what, _ in charged if what == "call"]) == 2 * len(passes)


def test_pynq_platform_passes_cacheable_through():
    seen = []

    def allocate(shape, dtype, **kw):
        seen.append(kw["cacheable"])
        return np.zeros(shape, dtype)
    pf = pp.PynqPlatform.__new__(pp.PynqPlatform)
    pf._pynq, pf._bufs = types.SimpleNamespace(allocate=allocate), {}
    pf.allocate("a", 64)
    pf.allocate("b", 64, cacheable=False)
    assert seen == [True, False]


@needs_hwh
def test_scatter_gather_dma_is_refused(pkg):
    pytest.importorskip("pynqmetadata")
    info = pp.analyse_ip_dict(pp.read_hwh(HWH), require_engine=False)
    assert info.include_sg == 0
    ok = replace(info, mm2s_stream_bits=64, s2mm_stream_bits=64, sg_length_width=26)
    assert pp.dma_problems(ok, pkg) == []
    sg = replace(ok, include_sg=1)
    assert any("scatter-gather" in p for p in pp.dma_problems(sg, pkg))


# --- 6. co-simulation of a tiny design ---------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("g++"), reason="needs g++")
def test_cosim_runs_a_tiny_network_on_the_same_overlay(project):
    """run_hls.tcl co-simulates tb_cosim/: one layer on every stage of the package's own
    overlay on a 5 x 7 map (minutes of RTL simulation, not hours); the test bench passes
    on it (here under g++)."""
    from host_search import csim
    out, tmp = project
    hls = out / "hls"
    passes = (hls / "tb_cosim" / "passes.txt").read_text().splitlines()
    assert len(passes) == 1
    exe = tmp / "engine_tb"
    flags = tuple(f for f in csim.CXX_FLAGS if f not in ("-shared", "-fPIC"))
    subprocess.run([csim.compiler(), *flags, "-I", str(hls / "sim"), "-I", str(hls),
                    "-isystem", str(csim.ap_types_dir()), str(hls / "engine_top.cpp"),
                    str(hls / "tb" / "engine_tb.cpp"), "-o", str(exe)], check=True,
                   capture_output=True)
    p = subprocess.run([str(exe), str(hls / "tb_cosim")], capture_output=True, text=True)
    assert p.returncode == 0 and "PASS" in p.stdout, p.stdout
    header = (hls / "pcd_config.h").read_text()
    beats = int(re.search(r"#define PCD_COSIM_PARAM_BEATS (\d+)", header).group(1))
    assert beats * 8 >= (hls / "tb_cosim" / "params.bin").stat().st_size


def test_cosim_design_uses_every_stage_with_several_folds():
    from host_search.hls_gen import cosim_design
    from pynq_codesign.design import load_design, plan_passes
    ov = load_design("dnn-a").overlay
    d = cosim_design(ov)
    assert [lay.type for lay in d.network.layers] == list(ov.stage_kinds)
    assert len(plan_passes(d.network, ov)) == 1
    assert d.network.input_channels > max(max(s.pe, s.simd) for s in ov.stages)
