"""The real board: the platform interface on the pynq 3.1 API (PYNQ-Z1 with the v3.1 image).

``pynq`` is imported only inside methods, so this module imports anywhere; on a machine
without pynq (or where pynq finds no device: ``RuntimeError: No Devices Found`` on x86)
:class:`PynqPlatform` raises :class:`~.base.PlatformUnavailable`, which says to use
``--sim``.

What it does on the board:

* takes the fabric lock (:class:`FabricLock`, an ``fcntl`` lock on a file) so that only one
  program drives the fabric (the board service, a notebook, a benchmark);
* ``pynq.Overlay`` from the package's ``.bit`` (its ``.hwh`` must lie beside it with the
  same base name), then finds the HLS IP and the AXI DMA in ``ip_dict`` by type (VLNV),
  not by instance name (:func:`analyse_ip_dict`): the engine as the HLS build exports it
  (``pynq-codesign.org:hls:pcd_engine:<version>``, :data:`pynq_codesign.wire.ENGINE_VLNV_PREFIX`)
  or any ``xilinx.com:hls:`` IP with our registers; it checks the IP's register map
  against :data:`pynq_codesign.wire.REGISTERS` and the DMA's mode (simple, no
  scatter-gather), stream width and length register against what the transfers need;
* a download that pynq refuses for want of privileges (``OSError`` / ``PermissionError``:
  not root, the firmware folder) is a :class:`~.base.PlatformError` that says to run as
  root;
* sets the fabric clock (``pynq.ps.Clocks.fclk0_mhz``) to the design's clock, never
  above the clock the ``.hwh`` was built for (:func:`fabric_clock`);
* allocates buffers with ``pynq.allocate`` (once, reused), cacheable where the CPU
  touches them (the parameters, the input buffers, the last pass's output: pynq 3.1's
  default, non-cacheable memory, makes every CPU read of an output map go to DDR
  uncached) and non-cacheable where only the fabric does (the feature maps passed
  between passes): a cacheable buffer costs a flush of the whole buffer in the send
  channel's ``transfer()`` and an invalidate in the receive channel's ``wait()`` (pynq
  does both; the simulated board charges the same), a non-cacheable one neither;
* starts transfers with the DMA channels' ``transfer()`` and polls ``.idle`` / ``.error``
  against a deadline of its own (pynq 3.1's ``wait()`` never times out), then lets
  ``wait()`` return at once to invalidate and read ``transferred``; after an error bit the
  channel halts and pynq's next ``transfer()`` raises ``RuntimeError("DMA channel not
  started")``: both are a :class:`~.base.TransferError`, after which the driver downloads
  the overlay again (as after a timeout);
* controls the core by polling ap_idle (ap_done clears on read);
* recovers from a hung core by downloading the overlay again.

The host-side half (:func:`read_hwh`, :func:`analyse_ip_dict`, :func:`check_register_map`,
:func:`fabric_clock`, :func:`dma_problems`) is pure and runs on any machine with pynq's
own metadata parser (``pynqmetadata``).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..package import Package
from ..wire import (BEAT_BITS, CONTROL_AP_IDLE, CONTROL_AP_START, ENGINE_VLNV_PREFIX,
                    REGISTERS)
from .base import (ClockError, CoreTimeout, FabricLocked, Platform, PlatformError,
                   PlatformUnavailable, TransferError, TransferTimeout, dma_max_bytes,
                   plan_transfers)

DMA_VLNV_PREFIX = "xilinx.com:ip:axi_dma:"
#: HLS IP as Vitis HLS exports it by default, and our engine as run_hls.tcl exports it.
HLS_VLNV_PREFIXES = ("xilinx.com:hls:", ENGINE_VLNV_PREFIX)
#: Where the fabric lock lives (override with PYNQ_CODESIGN_LOCK).
DEFAULT_LOCK = "/tmp/pynq-codesign-fabric.lock"
#: Polling period of the wait loops (seconds); the loops also yield the GIL.
POLL_S = 20e-6
#: Register names in an HLS ``.hwh`` for each of ours (Vitis HLS names the block-level
#: registers in capitals and splits a 64-bit argument into ``_1`` / ``_2`` words).
_HWH_ALIASES = {"control": ("CTRL", "control"), "gier": ("GIER",), "ip_ier": ("IP_IER",),
                "ip_isr": ("IP_ISR",)}


@dataclass(frozen=True)
class HwhInfo:
    """What the board runtime needs from a ``.hwh`` (or an Overlay's ``ip_dict``)."""

    hls_name: str
    hls_type: str
    hls_base: int
    dma_name: str
    dma_base: int
    sg_length_width: int
    mm2s_stream_bits: int
    s2mm_stream_bits: int
    fclk0_mhz: float | None
    hls_registers: dict[str, int] = field(default_factory=dict)
    include_sg: int = 0              # c_include_sg: 1 = scatter-gather mode

    @property
    def dma_max_bytes(self) -> int:
        return dma_max_bytes(self.sg_length_width)


def read_hwh(path: str | os.PathLike) -> dict:
    """The ``ip_dict`` of a ``.hwh`` as pynq's own parser builds it (host or board).

    Uses ``pynqmetadata`` (``IpDictView(Metadata(path)).view``), the parser that
    ``pynq.Overlay`` uses on the board."""
    p = Path(path)
    if not p.is_file():
        raise PlatformError(f"{p}: no such .hwh file")
    try:
        from pynqmetadata.frontends import Metadata  # noqa: PLC0415
        from pynqmetadata.views.runtime.ip_dict_view import IpDictView  # noqa: PLC0415
    except ImportError:
        raise PlatformError("reading a .hwh needs pynq's metadata parser: pip install "
                            "pynqmetadata (it comes with pynq on the board)") from None
    try:
        return dict(IpDictView(Metadata(str(p))).view)
    except Exception as e:  # noqa: BLE001 - the parser raises many kinds
        raise PlatformError(f"{p}: not a readable Vivado hardware hand-off ({e})") from None


def _param(params: dict, name: str, default=None):
    for k in (name, name.upper(), name.lower()):
        if k in params:
            return params[k]
    return default


def _ps_fclk0(ip_dict: dict) -> float | None:
    for d in ip_dict.values():
        if "processing_system7" in str(d.get("type", "")) or "zynq_ultra_ps" in str(
                d.get("type", "")):
            p = d.get("parameters", {})
            for key in ("PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ", "PCW_FPGA0_PERIPHERAL_FREQMHZ",
                        "PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ"):
                if key in p:
                    try:
                        return float(p[key])
                    except ValueError:
                        continue
    return None


def analyse_ip_dict(ip_dict: dict, require_engine: bool = True) -> HwhInfo:
    """Find the accelerator (an HLS IP) and its AXI DMA by type, and read what matters.

    With ``require_engine`` the HLS IP must carry our registers (``desc_offset``); several
    HLS IPs or DMAs without a way to choose raise :class:`PlatformError` naming them."""
    dmas = [(n, d) for n, d in ip_dict.items() if str(d.get("type", "")).startswith(
        DMA_VLNV_PREFIX)]
    hls = [(n, d) for n, d in ip_dict.items() if str(d.get("type", "")).startswith(
        HLS_VLNV_PREFIXES)]
    if not dmas:
        raise PlatformError("the overlay has no AXI DMA (xilinx.com:ip:axi_dma); the "
                            "accelerator's streams need one")
    if len(dmas) > 1:
        raise PlatformError(f"the overlay has {len(dmas)} AXI DMAs "
                            f"({', '.join(n for n, _ in dmas)}); expected one")
    engines = [(n, d) for n, d in hls if any(
        k.lower() == "desc_offset" for k in (d.get("registers") or {}))]
    if engines:
        hls = engines
    elif require_engine:
        raise PlatformError("no HLS IP with a desc_offset register in the overlay (HLS IPs: "
                            f"{', '.join(n for n, _ in hls) or 'none'}): is this the "
                            "package's overlay?")
    if not hls:
        raise PlatformError("the overlay has no HLS IP (xilinx.com:hls:* or "
                            f"{ENGINE_VLNV_PREFIX}*)")
    if len(hls) > 1:
        raise PlatformError(f"several HLS IPs could be the accelerator: "
                            f"{', '.join(n for n, _ in hls)}")
    (hn, hd), (dn, dd) = hls[0], dmas[0]
    dp = dd.get("parameters", {})
    regs = {name: int(r["address_offset"]) for name, r in (hd.get("registers") or {}).items()}
    return HwhInfo(
        hls_name=hn, hls_type=str(hd["type"]), hls_base=int(hd["phys_addr"]),
        dma_name=dn, dma_base=int(dd["phys_addr"]),
        sg_length_width=int(_param(dp, "c_sg_length_width", 14)),
        mm2s_stream_bits=int(_param(dp, "c_m_axis_mm2s_tdata_width", 32)),
        s2mm_stream_bits=int(_param(dp, "c_s_axis_s2mm_tdata_width", 32)),
        fclk0_mhz=_ps_fclk0(ip_dict), hls_registers=regs,
        include_sg=int(_param(dp, "c_include_sg", 0)))


def register_offsets(hwh_registers: dict[str, int]) -> dict[str, int]:
    """Our register names (wire.REGISTERS) -> offsets as the ``.hwh`` gives them."""
    by_name = {k.lower(): v for k, v in hwh_registers.items()}
    out: dict[str, int] = {}
    for ours in REGISTERS:
        names = [ours] + list(_HWH_ALIASES.get(ours, ()))
        if ours.endswith("_hi"):
            names.append(ours[:-3] + "_2")
        else:
            names.append(ours + "_1")
        for n in names:
            if n.lower() in by_name:
                out[ours] = by_name[n.lower()]
                break
    return out


def check_register_map(hwh_registers: dict[str, int]) -> list[str]:
    """Every difference between the IP's register map in the ``.hwh`` and wire.REGISTERS."""
    found = register_offsets(hwh_registers)
    problems = []
    for name, off in REGISTERS.items():
        if name not in found:
            problems.append(f"register {name!r} (0x{off:02x}) is not in the IP's register map")
        elif found[name] != off:
            problems.append(f"register {name!r} is at 0x{found[name]:02x} in the .hwh, the "
                            f"driver expects 0x{off:02x}")
    return problems


def dma_problems(info: HwhInfo, package: Package) -> list[str]:
    """What the overlay's DMA cannot do for this package (width, transfer lengths)."""
    out = []
    if info.include_sg:
        out.append("the DMA is in scatter-gather mode (c_include_sg = 1); the driver "
                   "programs it in simple mode: rebuild the overlay with c_include_sg 0")
    for what, bits in (("MM2S", info.mm2s_stream_bits), ("S2MM", info.s2mm_stream_bits)):
        if bits != BEAT_BITS:
            out.append(f"the DMA's {what} stream is {bits} bits wide; the accelerator's beat "
                       f"is {BEAT_BITS} bits (every other word would be wrong)")
    for t in plan_transfers(package, info.dma_max_bytes):
        out.extend(t.problems)
    if info.sg_length_width < 26 and any(
            t.send_bytes > info.dma_max_bytes or t.recv_bytes > info.dma_max_bytes
            for t in plan_transfers(package, info.dma_max_bytes)):
        out.append(f"the DMA's buffer length register is {info.sg_length_width} bits "
                   "(c_sg_length_width); rebuild the overlay with 26")
    return out


def fabric_clock(design_mhz: float, hwh_mhz: float | None) -> float:
    """The fabric clock to set: the design's, refused above what the ``.hwh`` was built
    for (timing was met at that clock, not above)."""
    if hwh_mhz is None:
        raise ClockError("the .hwh does not say the fabric clock it was built for; "
                         "refusing to guess")
    if design_mhz > hwh_mhz + 1e-6:
        raise ClockError(f"the design asks for {design_mhz:g} MHz but the bitstream was "
                         f"built (and met timing) at {hwh_mhz:g} MHz: rebuild the overlay "
                         "at the higher clock or lower the design's clock_mhz")
    return float(design_mhz)


class FabricLock:
    """An exclusive ``fcntl`` lock on a file: one program drives the fabric at a time."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path or os.environ.get("PYNQ_CODESIGN_LOCK", DEFAULT_LOCK))
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl  # noqa: PLC0415  (POSIX only)
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise FabricLocked(f"another program (pid {holder}) drives the fabric (lock "
                               f"{self.path}): stop the board service or the notebook, "
                               "or wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        import fcntl  # noqa: PLC0415
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _import_pynq():
    try:
        import pynq  # noqa: PLC0415
    except ImportError:
        raise PlatformUnavailable("pynq is not installed here: on a PYNQ board use the "
                                  "image's python (pip install '.[board]'); on any other "
                                  "machine run with --sim (the simulated board)") from None
    except RuntimeError as e:
        raise PlatformUnavailable(f"pynq finds no board here ({e}): run with --sim "
                                  "(the simulated board)") from None
    return pynq


def _transfer(ch, buf, nbytes: int, what: str) -> None:
    """``ch.transfer`` with pynq's refusals as :class:`TransferError`: a channel halted by
    an earlier error bit raises ``RuntimeError("DMA channel not started")`` (only
    downloading the overlay again restarts it), a busy one "DMA channel not idle"."""
    try:
        ch.transfer(buf, nbytes=int(nbytes))
    except RuntimeError as e:
        if "not started" in str(e):
            raise TransferError(f"the DMA {what} channel is halted after an earlier error "
                                f"(pynq: {e}); the overlay must be downloaded again") from None
        raise TransferError(f"the DMA {what} channel refused the transfer (pynq: {e})") from None
    except ValueError as e:
        raise TransferError(f"the DMA {what} channel refused {nbytes} bytes (pynq: {e})") from None


class PynqPlatform(Platform):
    """A PYNQ board (pynq 3.1). See the module docstring."""

    source = "measured"

    def __init__(self, lock_path: str | os.PathLike | None = None):
        self._pynq = _import_pynq()
        self._lock = FabricLock(lock_path)
        self._ol = None
        self._ip = None
        self._dma = None
        self._info: HwhInfo | None = None
        self._offsets: dict[str, int] = {}
        self._bufs: dict[str, object] = {}
        self._bit: Path | None = None
        self._clock_mhz = 0.0

    # --- life cycle -------------------------------------------------------------------
    def load(self, package: Package) -> None:
        bit, hwh = package.bitstream, package.hwh
        if bit is None:
            raise PlatformError(f"{package.root}: the package has no overlay; build it "
                                "(codesign build-overlay) or run with --sim")
        if not bit.is_file():
            raise PlatformError(f"{bit}: bitstream missing")
        beside = bit.with_suffix(".hwh")
        if not beside.is_file():
            raise PlatformError(f"{beside}: pynq needs the .hwh with the bitstream's base name "
                                f"beside it" + (f" (the package has {hwh.name})" if hwh else ""))
        self._lock.acquire()
        try:
            self._bit = bit
            self._download()
            problems = check_register_map(self._info.hls_registers)
            problems += dma_problems(self._info, package)
            if problems:
                raise PlatformError("the overlay does not match the driver: "
                                    + "; ".join(problems))
            self._clock_mhz = fabric_clock(package.design.overlay.clock_mhz,
                                           self._info.fclk0_mhz)
            self._set_clock()
        except BaseException:
            self._lock.release()
            raise

    def _download(self) -> None:
        try:
            self._ol = self._pynq.Overlay(str(self._bit))
        except PermissionError as e:
            raise PlatformError(f"pynq may not download the overlay ({e}): downloading a "
                                "bitstream needs root on the board (run with sudo, or as "
                                "the board service's user)") from None
        except OSError as e:
            raise PlatformError(f"pynq could not download the overlay ({e}): check that "
                                "you are root and that the firmware folder "
                                "(/lib/firmware) is writable, then try again") from None
        except RuntimeError as e:
            raise PlatformUnavailable(f"pynq cannot load the overlay ({e}); on a machine "
                                      "without a PYNQ board run with --sim") from None
        self._info = analyse_ip_dict(self._ol.ip_dict)
        self._ip = getattr(self._ol, self._info.hls_name)
        self._dma = getattr(self._ol, self._info.dma_name)
        self._offsets = register_offsets(self._info.hls_registers)

    def _set_clock(self) -> None:
        from pynq.ps import Clocks  # noqa: PLC0415
        Clocks.fclk0_mhz = self._clock_mhz
        got = float(Clocks.fclk0_mhz)
        if got > self._info.fclk0_mhz + 1e-3:
            raise ClockError(f"the PS made {got:.2f} MHz for a {self._clock_mhz:g} MHz "
                             f"request, above the .hwh's {self._info.fclk0_mhz:g} MHz")

    def release(self) -> None:
        for b in self._bufs.values():
            try:
                b.freebuffer()
            except Exception:  # noqa: BLE001 - freeing at exit is best effort
                pass
        self._bufs.clear()
        self._lock.release()

    def recover(self) -> None:
        """A hung HLS core has no soft reset: download the overlay again."""
        self._download()
        self._set_clock()

    # --- memory -----------------------------------------------------------------------
    def allocate(self, name: str, nbytes: int, cacheable: bool = True) -> np.ndarray:
        b = self._bufs.get(name)
        if b is not None and b.nbytes == nbytes:
            return b
        if b is not None:
            b.freebuffer()
        b = self._pynq.allocate(shape=(int(nbytes),), dtype=np.uint8,
                                cacheable=bool(cacheable))
        self._bufs[name] = b
        return b

    def physical_address(self, buf) -> int:
        addr = getattr(buf, "physical_address", None)
        if addr is None:
            raise PlatformError("this buffer was not allocated with pynq.allocate")
        return int(addr)

    def sync_to_device(self, buf) -> None:
        buf.flush()

    def sync_from_device(self, buf) -> None:
        buf.invalidate()

    # --- registers and control --------------------------------------------------------
    def _offset(self, name: str) -> int:
        if name not in self._offsets:
            raise PlatformError(f"the accelerator has no register {name!r}")
        return self._offsets[name]

    def write_reg(self, name: str, value: int) -> None:
        self._ip.write(self._offset(name), int(value) & 0xFFFFFFFF)

    def read_reg(self, name: str) -> int:
        return int(self._ip.read(self._offset(name)))

    def start_core(self) -> None:
        self.write_reg("control", CONTROL_AP_START)

    def wait_core(self, deadline: float) -> None:
        while not self.read_reg("control") & CONTROL_AP_IDLE:
            if time.monotonic() > deadline:
                raise CoreTimeout("the core did not return to idle before the deadline: it "
                                  "hangs (check the fabric clock, the stream connections)")
            time.sleep(POLL_S)

    # --- DMA --------------------------------------------------------------------------
    def dma_send(self, buf, nbytes: int) -> None:
        _transfer(self._dma.sendchannel, buf, nbytes, "send")

    def dma_recv(self, buf, nbytes: int) -> None:
        _transfer(self._dma.recvchannel, buf, nbytes, "receive")

    def _poll(self, ch, deadline: float, what: str) -> None:
        while True:
            if ch.error:
                raise TransferError(f"the DMA {what} channel reports an error (status "
                                    "register error bits set): check buffer addresses and "
                                    "the HP port")
            if ch.idle:
                break
            if time.monotonic() > deadline:
                raise TransferTimeout(f"the DMA {what} did not complete before the deadline"
                                      + (": the IP never raised TLAST on its output stream"
                                         if what == "receive" else ""))
            time.sleep(POLL_S)
        ch.wait()          # idle already: returns at once, invalidates, sets .transferred

    def wait_send(self, deadline: float) -> None:
        self._poll(self._dma.sendchannel, deadline, "send")

    def wait_recv(self, deadline: float) -> int:
        ch = self._dma.recvchannel
        self._poll(ch, deadline, "receive")
        return int(ch.transferred)

    @property
    def dma_max_bytes(self) -> int:
        if self._info is None:
            return dma_max_bytes(26)
        return self._info.dma_max_bytes

    # --- identity and time ------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic()

    def power_rails(self):
        try:
            return self._pynq.get_rails()
        except Exception:  # noqa: BLE001
            return None

    def describe(self) -> str:
        name = re.sub(r"\.bit$", "", self._bit.name) if self._bit else "no overlay"
        return f"PYNQ board ({name}, fabric clock {self._clock_mhz:g} MHz)"
