"""The board side imports with torch and onnx unavailable and numpy only."""
import subprocess
import sys

CODE = """
import sys
for m in ('torch', 'onnx', 'onnxruntime', 'qonnx', 'hls4ml', 'pynq', 'serial', 'flask'):
    sys.modules[m] = None
import importlib, pkgutil, pynq_codesign
bad = []
for m in pkgutil.walk_packages(pynq_codesign.__path__, 'pynq_codesign.'):
    try:
        importlib.import_module(m.name)
    except Exception as e:
        bad.append(f'{m.name}: {type(e).__name__}: {e}')
heavy = [m for m in ('torch', 'onnx', 'host_search') if sys.modules.get(m) is not None]
print('BAD', bad, 'HEAVY', heavy)
sys.exit(1 if bad or heavy else 0)
"""

BOARD_MODULES = ["pynq_codesign.platform.base", "pynq_codesign.platform.pynq",
                 "pynq_codesign.platform.sim.board", "pynq_codesign.platform.sim.timing",
                 "pynq_codesign.driver", "pynq_codesign.pipeline", "pynq_codesign.bench",
                 "pynq_codesign.power"]


def test_every_board_module_imports_without_torch_onnx_pynq():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_board_modules_import_without_opencv():
    code = ("import sys; sys.modules['cv2'] = None; sys.modules['torch'] = None\n"
            + "".join(f"import {m}\n" for m in BOARD_MODULES))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
