"""The real-board platform's host-side half, against a real Vivado .hwh parsed by pynq's
own metadata parser (pynqmetadata): IP discovery, addresses, register maps, DMA limits,
clocks, the fabric lock, and the clear error where no board is present."""
import os
from pathlib import Path

import pytest

from pynq_codesign.platform import pynq as pp
from pynq_codesign.platform.base import (ClockError, FabricLocked, PlatformError,
                                         PlatformUnavailable)
from pynq_codesign.wire import REGISTERS

HWH = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "pynq-z1-resizer.hwh"
needs_hwh = pytest.mark.skipif(not HWH.is_file(), reason=f"{HWH} absent (shared test data "
                               "is not part of the project)")
pytest.importorskip("pynqmetadata", reason="pynq's metadata parser (pynqmetadata) not installed")


@pytest.fixture(scope="module")
def ip_dict():
    if not HWH.is_file():
        pytest.skip(f"{HWH} absent")
    return pp.read_hwh(HWH)


@needs_hwh
def test_discovers_dma_and_hls_ip_by_type(ip_dict):
    info = pp.analyse_ip_dict(ip_dict, require_engine=False)
    assert info.dma_name == "axi_dma_0" and info.dma_base == 0x40400000
    assert info.hls_name == "resize_accel_0" and info.hls_base == 0x43C00000
    assert info.hls_type.startswith("xilinx.com:hls:")
    assert info.hls_registers["CTRL"] == 0x00 and info.hls_registers["src_rows"] == 0x10
    assert info.fclk0_mhz == pytest.approx(100.0)


@needs_hwh
def test_discovery_does_not_depend_on_instance_names(ip_dict):
    renamed = {("dma_x" if k == "axi_dma_0" else "acc_y" if k == "resize_accel_0" else k): v
               for k, v in ip_dict.items()}
    info = pp.analyse_ip_dict(renamed, require_engine=False)
    assert (info.dma_name, info.hls_name) == ("dma_x", "acc_y")


@needs_hwh
def test_engine_required_names_the_ips_found(ip_dict):
    with pytest.raises(PlatformError, match="resize_accel_0"):
        pp.analyse_ip_dict(ip_dict)


@needs_hwh
def test_dma_length_width_23_is_detected(ip_dict, tmp_path):
    from tests.helpers import random_package
    from pynq_codesign.design import Design, load_design
    info = pp.analyse_ip_dict(ip_dict, require_engine=False)
    assert info.sg_length_width == 23 and info.dma_max_bytes == 2 ** 23 - 1
    # a network whose first map is larger than 8 MB cannot be sent in one transfer
    d = load_design("dnn-a").to_dict()
    d["network"]["input"].update(height=48, width=64)
    small = random_package(tmp_path / "s", Design.from_dict(d))
    problems = pp.dma_problems(info, small)
    # this DMA also streams 32-bit words, not the accelerator's 64-bit beats
    assert any("32 bits wide" in p for p in problems)
    assert not any("exceeds" in p for p in problems)
    big = pp.HwhInfo(**{**info.__dict__, "sg_length_width": 14, "mm2s_stream_bits": 64,
                        "s2mm_stream_bits": 64})
    ps = small.program.passes[0]
    assert ps.in_bytes > 2 ** 14 - 1
    problems = pp.dma_problems(big, small)
    assert any("exceeds the DMA's largest transfer of 16383" in p for p in problems)
    assert any("c_sg_length_width" in p for p in problems)


@needs_hwh
def test_register_map_checked_against_wire(ip_dict):
    info = pp.analyse_ip_dict(ip_dict, require_engine=False)
    problems = pp.check_register_map(info.hls_registers)
    assert any("desc_offset" in p for p in problems)       # the resizer is not our engine
    assert not any("'control'" in p for p in problems)    # CTRL at 0x00 maps to control
    # an engine laid out as Vitis HLS names it (64-bit pointer split in _1/_2) passes
    vitis = {"control": "CTRL", "gier": "GIER", "ip_ier": "IP_IER", "ip_isr": "IP_ISR",
             "params": "params_1", "params_hi": "params_2"}
    hls = {vitis.get(k, k): v for k, v in REGISTERS.items()}
    assert pp.check_register_map(hls) == []
    assert pp.register_offsets(hls) == REGISTERS
    moved = dict(hls, desc_offset=0x20)
    assert any("0x20" in p for p in pp.check_register_map(moved))


@needs_hwh
def test_clock_never_above_the_hwh(ip_dict):
    info = pp.analyse_ip_dict(ip_dict, require_engine=False)
    assert pp.fabric_clock(100.0, info.fclk0_mhz) == 100.0
    assert pp.fabric_clock(50.0, info.fclk0_mhz) == 50.0
    with pytest.raises(ClockError, match="142.86 MHz.*100 MHz"):
        pp.fabric_clock(142.86, info.fclk0_mhz)
    with pytest.raises(ClockError):
        pp.fabric_clock(100.0, None)


def test_not_a_hwh(tmp_path):
    f = tmp_path / "x.hwh"
    f.write_text("not xml")
    with pytest.raises(PlatformError, match="x.hwh"):
        pp.read_hwh(f)
    with pytest.raises(PlatformError, match="no such"):
        pp.read_hwh(tmp_path / "missing.hwh")


def test_fabric_lock_is_exclusive(tmp_path):
    lock = tmp_path / "fabric.lock"
    a, b = pp.FabricLock(lock), pp.FabricLock(lock)
    a.acquire()
    with pytest.raises(FabricLocked, match=str(os.getpid())):
        b.acquire()
    a.release()
    b.acquire()
    assert b.held
    b.release()


def test_no_board_here_says_use_sim():
    try:
        import pynq  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pynq is installed here")
    with pytest.raises(PlatformUnavailable, match="--sim"):
        pp.PynqPlatform()
