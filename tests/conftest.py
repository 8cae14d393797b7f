"""Which tests are the board side's.

The modules in :data:`BOARD_TESTS` test only ``pynq_codesign`` (the board side). `make
test-board` runs them alone (``PCD_BOARD_ONLY=1``) in an environment like the PYNQ
image's: Python 3.10, numpy 1.x, no torch or onnx; there every other test module is left
uncollected, since it needs the host side.
"""
import os
from pathlib import Path

BOARD_TESTS = {
    "test_board_imports", "test_bench", "test_design", "test_driver", "test_emulator",
    "test_fixedpoint", "test_package", "test_pipeline", "test_platform_sim", "test_power",
    "test_pynq_platform",
    "test_qos_record", "test_wire", "test_loop_board_service",
}


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    if os.environ.get("PCD_BOARD_ONLY") != "1" or collection_path.is_dir():
        return None
    if collection_path.suffix == ".py" and collection_path.stem.startswith("test_"):
        return collection_path.stem not in BOARD_TESTS
    return None
