"""The simulated board: bit-exact through the platform calls, its own timing, hidden
per-board physics, fault modes that end in timeouts and recover."""
from dataclasses import replace

import numpy as np
import pytest

from pynq_codesign.driver import Driver
from pynq_codesign.platform.base import (
    CoreTimeout,
    PlatformError,
    TransferError,
    TransferTimeout,
)
from pynq_codesign.platform.sim.board import SimPlatform
from pynq_codesign.platform.sim.timing import TimingModel, frame_schedule
from pynq_codesign.wire import pack_feature
from tests.helpers import random_package


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    return random_package(tmp_path_factory.mktemp("sim") / "pkg", n_golden=1, lively=True)


def test_outputs_bit_exact_and_time_is_simulated(pkg):
    x, y = pkg.golden[0]
    pf = SimPlatform(board_seed=3)
    with Driver(pf, pkg) as drv:
        t0 = pf.now()
        res = drv.run(x)
        assert np.array_equal(res.codes, y)
        assert pf.source == "simulated"
        # the simulated clock advanced by the accelerator's time, not by the host's
        assert pf.now() - t0 == pytest.approx(res.accel_s, rel=1e-9)
        assert all(p.compute_s > 0 and p.setup_s > 0 for p in res.passes)


def test_boards_with_different_seeds_differ_and_a_board_repeats(pkg):
    x, _ = pkg.golden[0]
    times = {}
    for seed in (1, 2):
        with Driver(SimPlatform(seed), pkg) as drv:
            times[seed] = drv.run(x).accel_s
    assert times[1] != times[2]
    with Driver(SimPlatform(1), pkg) as drv:
        assert drv.run(x).accel_s == pytest.approx(times[1], rel=0.05)


def test_timing_grows_with_work_and_falls_with_parallelism(pkg):
    """More PEs on the pw stage: fewer compute cycles for the same pass."""
    from pynq_codesign.design import Stage
    from pynq_codesign.devices import load_device
    from pynq_codesign.platform.sim.timing import _draw_physics
    from pynq_codesign.wire import read_descriptor
    ov = pkg.design.overlay
    ps = max(pkg.program.passes, key=lambda p: p.in_bytes)
    header, entries = read_descriptor(pkg.program.params, ps.desc_offset)
    phys = _draw_physics(0)
    slow = TimingModel(load_device(ov.device), ov, phys, 0)
    stages = tuple(Stage(s.kind, s.pe * 4, s.simd * 2) if s.kind == "pw" else s
                   for s in ov.stages)
    fast_ov = replace(ov, stages=stages)
    fast = TimingModel(load_device(ov.device), fast_ov, phys, 0)
    a = slow.run_pass(header, entries, 0.0, 0.0, 0.0, 1)
    b = fast.run_pass(header, entries, 0.0, 0.0, 0.0, 1)
    assert b.core_idle < a.core_idle
    assert a.macs == b.macs > 0


def test_frame_schedule_double_buffering():
    # accelerator-bound: the period is the accelerator's time (pre-processing hidden)
    rs, acc, done = frame_schedule([1.0] * 5, [3.0] * 5, [0.5] * 5)
    periods = np.diff(done)
    assert periods == pytest.approx([3.5] * 4)
    # CPU-bound: the reader's time sets the period
    rs, acc, done = frame_schedule([4.0] * 5, [1.0] * 5, [0.5] * 5)
    assert np.diff(done) == pytest.approx([4.0] * 4)
    assert rs[0] == 0.0 and done[0] == pytest.approx(5.5)


@pytest.mark.parametrize("fault, err", [("dma_hang", TransferTimeout),
                                        ("core_hang", CoreTimeout)])
def test_fault_ends_in_timeout_and_the_next_run_succeeds(pkg, fault, err):
    x, y = pkg.golden[0]
    drv = Driver(SimPlatform(0, fault=fault), pkg, timeout=0.5).open()
    with pytest.raises(err, match="downloaded again"):
        drv.run(x)
    assert np.array_equal(drv.run(x).codes, y)
    drv.close()


def test_fault_from_environment(pkg, monkeypatch):
    monkeypatch.setenv("PYNQ_CODESIGN_SIM_FAULT", "core_hang")
    drv = Driver(SimPlatform(0), pkg, timeout=0.1).open()
    with pytest.raises(CoreTimeout):
        drv.run(pkg.golden[0][0])
    monkeypatch.setenv("PYNQ_CODESIGN_SIM_FAULT", "bogus")
    with pytest.raises(PlatformError, match="dma_hang"):
        SimPlatform(0)


def test_short_send_hangs_the_core_long_send_hangs_the_channel(pkg):
    """The board behaves as hardware would when the driver gets the byte counts wrong."""
    pf = SimPlatform(0)
    with Driver(pf, pkg) as drv:
        ps = pkg.program.passes[0]
        src = pf.allocate("in0", ps.in_bytes)
        src[:] = pack_feature(pkg.golden[0][0], pkg.design.overlay.feature_bits)
        dst = pf.allocate("fmap0", drv._bufs["fmap0"].size)
        pf.write_reg("desc_offset", ps.desc_offset)
        pf.dma_recv(dst, ps.out_bytes)
        pf.dma_send(src, ps.in_bytes - 8)
        pf.start_core()
        with pytest.raises(CoreTimeout, match="waits for input"):
            pf.wait_core(pf.now() + 0.01)
        pf.recover()
        with pytest.raises(TransferError, match="does not fit"):
            pf.dma_send(src, ps.in_bytes + 8)


def test_register_access_by_name_and_ap_done_clears_on_read(pkg):
    pf = SimPlatform(0)
    with Driver(pf, pkg) as drv:
        drv.run(pkg.golden[0][0])
        first = pf.read_reg("control")
        assert first & 0x4 and first & 0x2           # idle and done
        assert not pf.read_reg("control") & 0x2      # done cleared by the read
        assert pf.hardware_id() == pkg.hardware_id
        with pytest.raises(PlatformError, match="no register"):
            pf.read_reg("nonsense")


def test_hidden_physics_is_not_public(pkg):
    """No public attribute of the board or its timing model hands out the hidden draw."""
    from pynq_codesign.platform.sim.timing import _Physics
    pf = SimPlatform(5)
    pf.load(pkg)
    for obj in (pf, pf._timing):
        for a in dir(obj):
            if not a.startswith("_"):
                assert not isinstance(getattr(obj, a), _Physics), a


def test_a_bad_descriptor_sets_the_status_and_the_streams_never_finish(pkg):
    pf = SimPlatform(0)
    with Driver(pf, pkg, timeout=0.05) as drv:
        ps = pkg.program.passes[0]
        bad = type(ps)(**{**ps.__dict__, "desc_offset": ps.desc_offset + 8})
        real = pkg.program.passes
        object.__setattr__(pkg.program, "passes", (bad,) + real[1:])
        try:
            with pytest.raises(TransferTimeout, match="engine status 1"):
                drv.run(pkg.golden[0][0])
        finally:
            object.__setattr__(pkg.program, "passes", real)
        assert np.array_equal(drv.run(pkg.golden[0][0]).codes, pkg.golden[0][1])


def test_the_sim_refuses_what_the_engine_refuses(pkg, monkeypatch):
    """A descriptor beyond the overlay's maxima gets the C++ engine's status 3 here too
    (the driver checks descriptors before it arms a DMA; skipped here to reach the board)."""
    from pynq_codesign import driver as driver_mod
    from pynq_codesign.wire import descriptor_status
    monkeypatch.setattr(driver_mod, "check_descriptors", lambda package: None)
    ps = pkg.program.passes[0]
    params = pkg.program.params.copy()
    params[ps.desc_offset:].view("<i4")[2] = 100000          # header in_c
    assert descriptor_status(params, ps.desc_offset, pkg.design.overlay) == 3
    real = pkg.program.params
    object.__setattr__(pkg.program, "params", params)
    try:
        with Driver(SimPlatform(0), pkg, timeout=0.05) as drv:
            with pytest.raises(TransferTimeout, match="engine status 3"):
                drv.run(pkg.golden[0][0])
    finally:
        object.__setattr__(pkg.program, "params", real)
