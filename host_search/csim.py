"""C simulation of the HLS accelerator from Python (hls4ml's compile bridge, our way).

:func:`build` compiles the very C++ that Vitis HLS synthesises (``hls/``) with the header
generated for an overlay (:mod:`host_search.hls_gen`) into a shared library with g++
(``-isystem`` on hls4ml's Apache-2.0 ``ap_types`` folder, our own ``hls/sim/hls_stream.h``)
and loads it with ctypes. The library's name carries a hash of everything that went into
it, so a changed header or source gives a new library and building twice in one process
loads the new code; an unchanged one is reused from the build folder.

:class:`CsimEngine` runs passes the way the board does: the input transfer's bytes
(:func:`pynq_codesign.wire.pack_feature`) in as AXI4-Stream beats, the parameter buffer of
:func:`pynq_codesign.wire.build_program` behind the m_axi port, the descriptor offset in
its register; it checks what the stream carried (exactly one TLAST, on the last beat,
TKEEP all ones, every input beat consumed) and returns the output transfer's bytes.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pynq_codesign.design import Overlay
from pynq_codesign.errors import CodesignError
from pynq_codesign.wire import STATUS, Program, pack_feature, unpack_feature

from .binding import Binding
from .hls_gen import HEADER_NAME, write_sources

#: -Wall, less the two warnings HLS code gives by design: ``#pragma HLS`` is unknown to
#: g++, and loop labels name loops for the HLS reports without being jumped to. Symbols
#: stay inside each library (hidden visibility, no GNU-unique objects, -Bsymbolic), so
#: several builds loaded in one process never share a function-local static.
CXX_FLAGS = ("-std=c++14", "-O2", "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-label",
             "-fPIC", "-shared", "-fvisibility=hidden", "-fvisibility-inlines-hidden",
             "-fno-gnu-unique", "-Wl,-Bsymbolic", "-DPCD_GXX_SIM")
SOURCES = ("engine_top.cpp", "sim/csim_api.cpp")


class CsimError(CodesignError, RuntimeError):
    """The C simulation could not be built or a pass broke the stream protocol."""


def ap_types_dir() -> Path:
    """hls4ml's ``ap_types`` folder (ap_int.h, ap_fixed.h; Apache-2.0)."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise CsimError("hls4ml is not installed; the C simulation needs its ap_types "
                        "headers: pip install '.[host]'")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "templates" / "vivado" / "ap_types"
        if (p / "ap_int.h").is_file():
            return p
    raise CsimError("hls4ml has no templates/vivado/ap_types/ap_int.h; reinstall hls4ml")


def default_build_root() -> Path:
    env = os.environ.get("PCD_CSIM_CACHE")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"pynq-codesign-csim-{os.getuid()}"


def compiler() -> str:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise CsimError(f"no C++ compiler {cxx!r} on PATH; install g++ (build-essential) "
                        "or set CXX")
    return cxx


def compile_command(src_dir: Path, out: Path, extra_sources: tuple[str, ...] = (),
                    flags: tuple[str, ...] = CXX_FLAGS) -> list[str]:
    """The g++ command line that builds the engine in ``src_dir`` into ``out``."""
    return [compiler(), *flags, "-I", str(src_dir / "sim"), "-I", str(src_dir),
            "-isystem", str(ap_types_dir()),
            *[str(src_dir / s) for s in SOURCES + tuple(extra_sources)], "-o", str(out)]


@dataclass(frozen=True)
class PassResult:
    """What one invocation gave back."""

    out: np.ndarray          # output transfer bytes (uint8)
    status: int
    hw_id: int
    n_last: int              # TLASTs on the output stream
    last_on_final: bool      # the last output beat carried TLAST
    keep_ok: bool            # every TKEEP / TSTRB all ones
    in_left: int             # input beats the engine did not consume


class CsimEngine:
    """One loaded build of the engine for one overlay."""

    def __init__(self, path: Path, overlay: Overlay):
        self.path = path
        self.overlay = overlay
        self._lib = ctypes.CDLL(str(path))
        f = self._lib.pcd_csim_run
        u8p = ctypes.POINTER(ctypes.c_uint8)
        ll, llp = ctypes.c_longlong, ctypes.POINTER(ctypes.c_longlong)
        up, ip = ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_int)
        f.argtypes = [u8p, ll, u8p, ll, llp, u8p, ll, ctypes.c_uint, up, up, ip, ip, ip, llp,
                      ctypes.c_char_p, ctypes.c_int]
        f.restype = ctypes.c_int
        hw, ns, fb, lanes = ctypes.c_uint(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        self._lib.pcd_csim_info(ctypes.byref(hw), ctypes.byref(ns), ctypes.byref(fb),
                                ctypes.byref(lanes))
        self.hw_id = hw.value
        if self.hw_id != overlay.hardware_id:
            raise CsimError(f"{path}: built for hardware ID 0x{self.hw_id:08x}, the overlay "
                            f"is {overlay.hardware_id_hex}")

    def run_pass(self, in_bytes: np.ndarray, params: np.ndarray, desc_offset: int,
                 out_capacity: int) -> PassResult:
        """One invocation: ``in_bytes`` as the input transfer, ``out_capacity`` bytes room."""
        src = np.ascontiguousarray(np.asarray(in_bytes).reshape(-1).view(np.uint8))
        par = np.ascontiguousarray(np.asarray(params).reshape(-1).view(np.uint8))
        if par.size % 8:
            par = np.concatenate([par, np.zeros(8 - par.size % 8, np.uint8)])
        out = np.zeros(max(out_capacity, 8), dtype=np.uint8)
        nout = ctypes.c_longlong()
        hw, st = ctypes.c_uint(), ctypes.c_uint()
        n_last, last_final, keep_ok = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        left = ctypes.c_longlong()
        err = ctypes.create_string_buffer(512)
        u8p = ctypes.POINTER(ctypes.c_uint8)
        rc = self._lib.pcd_csim_run(
            src.ctypes.data_as(u8p), src.size, out.ctypes.data_as(u8p), out.size,
            ctypes.byref(nout), par.ctypes.data_as(u8p), par.size, desc_offset,
            ctypes.byref(hw), ctypes.byref(st), ctypes.byref(n_last), ctypes.byref(last_final),
            ctypes.byref(keep_ok), ctypes.byref(left), err, len(err))
        if rc != 0:
            raise CsimError(f"C simulation of the pass at descriptor {desc_offset}: "
                            f"{err.value.decode(errors='replace')}")
        return PassResult(out[:nout.value].copy(), st.value, hw.value, n_last.value,
                          bool(last_final.value), bool(keep_ok.value), left.value)

    def run_program(self, program: Program, x: np.ndarray, keep_passes: bool = False
                    ) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
        """Every pass in turn on input codes ``x`` [H, W, C], output bytes of one pass
        feeding the next unchanged; the network's output codes (and every pass's)."""
        fb = self.overlay.feature_bits
        buf = pack_feature(np.asarray(x), fb)
        outs = []
        for ps in program.passes:
            if buf.size != ps.in_bytes:
                raise CsimError(f"pass {len(outs)} takes {ps.in_bytes} bytes, got {buf.size}")
            r = self.run_pass(buf, program.params, ps.desc_offset, ps.out_bytes)
            where = f"pass {len(outs)} (bundle {ps.bundle})"
            if r.status != 0:
                raise CsimError(f"{where}: the engine refused the descriptor: "
                                f"{STATUS.get(r.status, r.status)}")
            if r.out.size != ps.out_bytes:
                raise CsimError(f"{where}: {r.out.size} output bytes, the transfer is "
                                f"{ps.out_bytes}")
            if r.n_last != 1 or not r.last_on_final or not r.keep_ok or r.in_left:
                raise CsimError(f"{where}: stream protocol broken (TLASTs {r.n_last}, last "
                                f"beat TLAST {r.last_on_final}, TKEEP ok {r.keep_ok}, input "
                                f"beats left {r.in_left})")
            buf = r.out
            c, h, w = ps.out_shape
            outs.append(unpack_feature(buf, h, w, c, fb))
        return (outs[-1], outs) if keep_passes else outs[-1]


def bundle_outputs(program: Program, pass_outputs: list[np.ndarray]) -> list[np.ndarray]:
    """Each bundle's output: the output of its last pass (``run_program(keep_passes=True)``)."""
    last: dict[int, np.ndarray] = {}
    for ps, y in zip(program.passes, pass_outputs):
        last[ps.bundle] = y
    return [last[b] for b in sorted(last)]


def _digest(src_dir: Path, flags: tuple[str, ...], extra: tuple[str, ...]) -> str:
    h = hashlib.sha256(" ".join(flags + extra).encode())
    for p in sorted(src_dir.rglob("*")):
        if p.is_file() and p.suffix in (".h", ".cpp"):
            h.update(str(p.relative_to(src_dir)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build_library(overlay: Overlay, binding: Binding | None = None,
                  build_root: str | Path | None = None, extra_sources: tuple[Path, ...] = (),
                  flags: tuple[str, ...] = CXX_FLAGS) -> Path:
    """Generate and compile (or reuse) the library for ``overlay``; its path.

    ``extra_sources`` are compiled in as well (test harnesses).
    """
    root = Path(build_root) if build_root else default_build_root()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix="src-") as tmp:
        src = Path(tmp)
        write_sources(src, overlay, binding)
        names = []
        for e in extra_sources:
            shutil.copyfile(e, src / Path(e).name)
            names.append(Path(e).name)
        digest = _digest(src, flags, tuple(names))
        lib = root / f"libpcd_csim_{digest}.so"
        if lib.is_file():
            return lib
        keep = root / f"src-{digest}"
        if keep.exists():
            shutil.rmtree(keep)
        shutil.copytree(src, keep)
    tmp_lib = root / f".libpcd_csim_{digest}.{os.getpid()}.so"
    cmd = compile_command(keep, tmp_lib, tuple(names), flags)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        raise CsimError(f"g++ could not build the engine for this overlay (sources in "
                        f"{keep}):\n{tail}")
    os.replace(tmp_lib, lib)
    return lib


def build(overlay: Overlay, binding: Binding | None = None,
          build_root: str | Path | None = None) -> CsimEngine:
    """The C simulation of ``overlay``'s engine, built (or reused) and loaded."""
    return CsimEngine(build_library(overlay, binding, build_root), overlay)


def header_of(lib: Path) -> Path:
    """The generated header a library was built from (kept beside it)."""
    return lib.parent / f"src-{lib.stem.split('_')[-1]}" / HEADER_NAME
