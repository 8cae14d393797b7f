"""The deployment package: round trip, checksums, sizes, versions."""
import json

import numpy as np
import pytest

from pynq_codesign.package import PackageError, add_files, load_package, write_package
from pynq_codesign.platform.sim.emulator import run_program
from tests.helpers import random_package, random_program, tiny_design


@pytest.fixture
def pkg(tmp_path):
    d = tiny_design()
    prog = random_program(d)
    x = np.random.default_rng(1).integers(-128, 128, size=(16, 24, 3))
    y = run_program(prog, x, d.overlay)
    return write_package(tmp_path / "pkg", d, prog, [(x, y)], {"model.onnx": b"not-onnx"})


def test_random_package_helper(tmp_path):
    p = random_package(tmp_path / "p", n_golden=2)
    assert len(load_package(p.root).golden) == 2


def test_round_trip(pkg):
    p = load_package(pkg.root)
    assert p.design == pkg.design
    assert np.array_equal(p.program.params, pkg.program.params)
    x, y = p.golden[0]
    assert np.array_equal(run_program(p.program, x, p.design.overlay), y)
    assert p.manifest["hardware_id"] == p.design.overlay.hardware_id_hex


def test_corrupt_byte_is_refused_naming_the_file(pkg):
    f = pkg.root / "params.bin"
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0xFF
    f.write_bytes(bytes(b))
    with pytest.raises(PackageError, match="params.bin"):
        load_package(pkg.root)


def test_truncated_file(pkg):
    (pkg.root / "golden" / "out_0.npy").write_bytes(b"\x93NUMPY")
    with pytest.raises(PackageError, match="out_0.npy"):
        load_package(pkg.root)


def test_missing_file(pkg):
    (pkg.root / "model.onnx").unlink()
    with pytest.raises(PackageError, match="model.onnx.*missing"):
        load_package(pkg.root)


def test_edited_manifest_is_refused(pkg):
    m = json.loads((pkg.root / "manifest.json").read_text())
    m["hardware_id"] = "0x00000000"
    (pkg.root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackageError, match="manifest"):
        load_package(pkg.root)


def test_add_files_new_version(pkg, tmp_path):
    bit = tmp_path / "x.bit"
    bit.write_bytes(b"bits")
    p2 = add_files(pkg.root, {"overlay/x.bit": bit}, "overlay built",
                   overlay={"bit": "overlay/x.bit"})
    assert p2.version == 2 and p2.bitstream.read_bytes() == b"bits"
    assert load_package(pkg.root).version == 2


def test_not_a_package(tmp_path):
    with pytest.raises(PackageError, match="manifest.json"):
        load_package(tmp_path)
