"""The driver: golden self-test, hardware-ID refusal, the symptom table, the CLI."""
from dataclasses import replace

import numpy as np
import pytest

from pynq_codesign.cli import main as cli
from pynq_codesign.design import Design, load_design
from pynq_codesign.driver import Driver, diagnose
from pynq_codesign.package import write_package
from pynq_codesign.platform.base import HardwareIdMismatch
from pynq_codesign.platform.sim.board import SimPlatform
from pynq_codesign.wire import probe_descriptor, read_descriptor
from tests.helpers import random_package, random_program, tiny_design


def _design(h, w):
    d = load_design("dnn-a").to_dict()
    d["network"]["input"].update(height=h, width=w)
    return Design.from_dict(d)


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    return random_package(tmp_path_factory.mktemp("drv") / "pkg", n_golden=2, lively=True)


def test_selftest_passes_and_buffers_are_allocated_once(pkg):
    pf = SimPlatform(0)
    with Driver(pf, pkg) as drv:
        bufs = dict(drv._bufs)
        rep = drv.selftest()
        assert rep.ok and len(rep.accel_s) == 2
        drv.run(pkg.golden[0][0])
        assert all(drv._bufs[k] is bufs[k] for k in bufs)
        # the parameter buffer holds the package's params and the probe descriptor
        pb = drv._bufs["params"]
        assert np.array_equal(pb[:pkg.program.params.size], pkg.program.params)
        head, entries = read_descriptor(pb, drv._probe_offset)
        assert head["n_layers"] == 0 and entries == []


def test_probe_descriptor_is_a_header_without_layers():
    words = probe_descriptor().view("<i4")
    assert words[1] == 0 and (int(words[0]) & 0xFFFFFFFF) == 0x50434442


def test_hardware_id_mismatch_is_refused(pkg):
    other = _design(16, 24).overlay
    other = replace(other, band_rows=4)
    assert other.hardware_id != pkg.hardware_id
    with pytest.raises(HardwareIdMismatch, match=f"0x{pkg.hardware_id:08x}"):
        Driver(SimPlatform(0, bitstream=other), pkg).open()


@pytest.mark.parametrize("fault, cause", [
    ("tkeep", "TKEEP"),
    ("hp_width", "every other 32-bit word"),
    ("dma_hang", "TLAST"),
    ("core_hang", "never went idle"),
])
def test_selftest_names_the_likely_cause(pkg, fault, cause):
    with Driver(SimPlatform(0, fault=fault), pkg, timeout=0.2) as drv:
        rep = drv.selftest()
    assert not rep.ok
    assert any(cause in c for c in rep.causes), rep.causes
    if fault in ("tkeep", "hp_width"):
        assert "pass 0 (bundle 0) differs first" in rep.failures[0]


def test_diagnose_symptoms():
    rng = np.random.default_rng(0)
    want = rng.integers(1, 255, 64 * 1024, dtype=np.uint8)
    assert "TKEEP" in diagnose(np.zeros_like(want), want)
    half = want.copy().reshape(-1, 8)
    half[:, 4:] = half[:, :4]
    assert "every other 32-bit word" in diagnose(half.reshape(-1), want)
    arith = want.copy()
    arith[1000] ^= 1
    assert "offset 1000" in diagnose(arith, want)


def test_selftest_reports_a_golden_that_disagrees(tmp_path):
    d = tiny_design()
    prog = random_program(d, 3)
    from pynq_codesign.platform.sim.emulator import run_program
    x = np.random.default_rng(2).integers(-128, 128, size=(16, 24, 3))
    y = run_program(prog, x, d.overlay).copy()
    y[0, 0, 0] += 1
    bad = write_package(tmp_path / "bad", d, prog, [(x, y)])
    with Driver(SimPlatform(0), bad) as drv:
        rep = drv.selftest()
    assert not rep.ok and "export it again" in rep.causes[0]


def test_cli_selftest(pkg, capsys, monkeypatch):
    assert cli(["board", "selftest", str(pkg.root), "--sim"]) == 0
    out = capsys.readouterr().out
    assert "selftest passed" in out and "(simulated)" in out
    monkeypatch.setenv("PYNQ_CODESIGN_SIM_FAULT", "tkeep")
    assert cli(["board", "selftest", str(pkg.root), "--sim"]) == 1
    assert "likely cause" in capsys.readouterr().out


def test_cli_without_board_says_use_sim(pkg, capsys):
    try:
        import pynq  # noqa: F401
        pytest.skip("pynq installed here")
    except ImportError:
        pass
    assert cli(["board", "selftest", str(pkg.root)]) == 2
    assert "--sim" in capsys.readouterr().err
