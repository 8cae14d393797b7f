"""The simulated board: the platform interface served by the bit-exact emulator.

It behaves like a PYNQ board with the package's overlay loaded, as far as the driver can
tell: buffers have bus addresses, the core reads its pass descriptor from the parameter
buffer at the address written to the ``params`` registers plus ``desc_offset``, the input
bytes come from the buffer the send channel was given and the output lands in the buffer
the receive channel was given, ap_done clears on read, a descriptor with no layers is a
probe that sets the ``hw_id`` register. The numbers are the emulator's
(:func:`pynq_codesign.platform.sim.emulator.run_pass`); the time is the board's own timing
model (:mod:`.timing`), so :meth:`SimPlatform.now` is *simulated* time.

Faults for tests (``fault=`` or the environment variable ``PYNQ_CODESIGN_SIM_FAULT``):

* ``dma_hang``: the receive channel never completes (as when the IP never raises TLAST);
* ``core_hang``: the core never returns to idle;
* ``dma_error``: the receive channel of the first pass sets an error bit (a decode error,
  as for a bad buffer address); the channel then halts and every later ``transfer()``
  fails as pynq's does ("DMA channel not started") until the overlay is downloaded again;
* ``tkeep``, ``hp_width``: a bitstream built wrong (TKEEP not all ones: zeros arrive; a
  32-bit port on the 64-bit stream: every other word is wrong).

A hang or a DMA error strikes the first pass after loading; it leaves the board hung (or
the channel halted) until :meth:`SimPlatform.recover` (what the driver does after a
timeout or a DMA error: download the overlay again), after which the board works.

Buffers are cacheable or not as the driver allocates them (as on the real board): the
send channel's ``transfer()`` flushes a whole cacheable buffer and the receive channel's
``wait()`` invalidates it (what pynq 3.1 does), both at the board's cache throughput;
a non-cacheable buffer costs neither. Wiring faults stay (recovery does not rebuild a
bitstream); the self-test names their cause.

The board's CPU is modelled too (:mod:`.cpu`): the pipeline hands it each frame's work as
operation counts and :meth:`SimPlatform.cpu_seconds` answers with this board's Cortex-A9
time for them, never this host's. A run repeats exactly for the same ``board_seed`` and
``run_seed`` (the seed of its per-frame jitter, stalls and poll phases).
"""
from __future__ import annotations

import math
import os

import numpy as np

from ...cpu_work import CpuWork
from ...design import Overlay
from ...devices import load_device
from ...package import Package
from ...wire import (CONTROL_AP_DONE, CONTROL_AP_IDLE, CONTROL_AP_READY, CONTROL_AP_START,
                     REGISTERS, STATUS, descriptor_status, feature_bytes, feature_elem_bytes,
                     pack_feature, read_descriptor, unpack_feature)
from ..base import (CoreTimeout, Platform, PlatformError, TransferError, TransferTimeout,
                    dma_max_bytes)
from .cpu import CpuModel
from .emulator import run_pass
from .power_meter import SimPowerMeter
from .timing import TimingModel, _draw_physics

FAULTS = ("dma_hang", "core_hang", "dma_error", "tkeep", "hp_width")
#: Wiring faults persist across recovery (a bitstream built wrong stays wrong).
_WIRING_FAULTS = ("tkeep", "hp_width")
FAULT_ENV = "PYNQ_CODESIGN_SIM_FAULT"
#: Bus address where the simulated CMA region starts (as on a PYNQ-Z1's DDR).
_CMA_BASE = 0x1800_0000
#: The simulated overlays are built with the DMA's full 26-bit length register.
SIM_SG_LENGTH_WIDTH = 26
#: Simulated seconds to download a bitstream (about 4 MB over PCAP plus pynq's bookkeeping).
_DOWNLOAD_S = 0.45
_NEVER = math.inf
_READ_ONLY = ("hw_id", "hw_id_ctrl", "status", "status_ctrl")


class SimPlatform(Platform):
    """A simulated PYNQ board. ``board_seed`` draws its hidden physical parameters;
    ``run_seed`` its run-to-run variation (CPU jitter, stalls); ``bitstream`` is the
    overlay on its fabric (default: the package's own, as if its bitstream had been built);
    ``fault`` injects a hang for tests."""

    source = "simulated"

    def __init__(self, board_seed: int = 0, fault: str | None = None,
                 bitstream: Overlay | None = None, run_seed: int = 0):
        fault = fault if fault is not None else (os.environ.get(FAULT_ENV) or None)
        if fault is not None and fault not in FAULTS:
            raise PlatformError(f"unknown simulated fault {fault!r}; use one of "
                                f"{', '.join(FAULTS)}")
        self._seed = int(board_seed)
        self._run_seed = int(run_seed)
        self._physics = _draw_physics(self._seed)
        self._cpu = CpuModel(self._seed, self._run_seed)
        self._fault = fault
        self._bitstream = bitstream
        self._ov: Overlay | None = None
        self._timing: TimingModel | None = None
        self._buffers: dict[str, tuple[np.ndarray, int]] = {}
        self._uncached: set[int] = set()              # ids of non-cacheable buffers
        self._next_addr = _CMA_BASE
        self._clock = 0.0
        self._reset_fabric()

    # --- life cycle -------------------------------------------------------------------
    def _reset_fabric(self) -> None:
        self._regs = {name: 0 for name in REGISTERS}
        self._hw_id_valid = False
        self._send: tuple[np.ndarray, int, float] | None = None
        self._recv: tuple[np.ndarray, int, float] | None = None
        self._core_idle = 0.0
        self._send_idle = 0.0
        self._recv_idle = 0.0
        self._recv_bytes = 0
        self._done_pending = False
        self._core_hang_reason = ""
        self._dma_hang_reason = ""
        self._halted = False              # a DMA error bit halts the channels
        self._recv_buf_bytes = 0
        self.last_pass = None

    def load(self, package: Package) -> None:
        ov = self._bitstream or package.design.overlay
        self._ov = ov
        self._timing = TimingModel(load_device(ov.device), ov, self._physics, self._seed,
                                   self._run_seed)
        self.power_meter = SimPowerMeter(self._seed, load_device(ov.device))
        self._reset_fabric()
        self._clock += _DOWNLOAD_S

    def release(self) -> None:
        self._buffers.clear()
        self._uncached.clear()
        self._next_addr = _CMA_BASE

    def recover(self) -> None:
        """Download the overlay again: every register and channel back to reset."""
        self._reset_fabric()
        if self._fault not in _WIRING_FAULTS:
            self._fault = None
        self._clock += _DOWNLOAD_S

    def _need_loaded(self) -> TimingModel:
        if self._timing is None:
            raise PlatformError("the simulated board has no overlay loaded; load a package "
                                "first")
        return self._timing

    # --- memory -----------------------------------------------------------------------
    def allocate(self, name: str, nbytes: int, cacheable: bool = True) -> np.ndarray:
        nbytes = int(nbytes)
        if name in self._buffers and self._buffers[name][0].size == nbytes:
            return self._buffers[name][0]
        buf = np.zeros(nbytes, dtype=np.uint8)
        addr = self._next_addr
        self._next_addr += (nbytes + 4095) // 4096 * 4096
        self._buffers[name] = (buf, addr)
        if not cacheable:
            self._uncached.add(id(buf))
        return buf

    def _cache_bytes(self, buf: np.ndarray) -> int:
        """Bytes a flush or invalidate of ``buf`` walks (the whole buffer; 0 uncached)."""
        return 0 if id(buf) in self._uncached else buf.size

    def physical_address(self, buf: np.ndarray) -> int:
        for b, addr in self._buffers.values():
            if b is buf:
                return addr
        raise PlatformError("this buffer was not allocated on the board (use allocate())")

    def _buffer_at(self, addr: int) -> np.ndarray | None:
        for b, a in self._buffers.values():
            if a <= addr < a + max(b.size, 1):
                return b[addr - a:]
        return None

    def sync_to_device(self, buf: np.ndarray) -> None:
        self._clock += self._need_loaded().cache_op(buf.size)

    def sync_from_device(self, buf: np.ndarray) -> None:
        self._clock += self._need_loaded().cache_op(buf.size)

    # --- registers and control --------------------------------------------------------
    def _check_name(self, name: str) -> None:
        if name not in REGISTERS:
            raise PlatformError(f"the accelerator has no register {name!r} "
                                f"(registers: {', '.join(REGISTERS)})")

    def write_reg(self, name: str, value: int) -> None:
        tm = self._need_loaded()
        self._check_name(name)
        self._clock += tm.reg_write()
        if name in _READ_ONLY:
            return                                   # read-only: writes are ignored
        if name == "control":
            if value & CONTROL_AP_START:
                self._start()
            return
        self._regs[name] = int(value) & 0xFFFFFFFF

    def read_reg(self, name: str) -> int:
        tm = self._need_loaded()
        self._check_name(name)
        self._clock += tm.reg_read()
        if name == "control":
            idle = self._clock >= self._core_idle
            v = CONTROL_AP_IDLE | CONTROL_AP_READY if idle else 0
            if idle and self._done_pending:
                v |= CONTROL_AP_DONE
                self._done_pending = False          # ap_done clears on read
            return v
        if name == "hw_id":
            return self._regs["hw_id"] if self._hw_id_valid else 0
        if name == "hw_id_ctrl":
            return 1 if self._hw_id_valid else 0
        if name == "status_ctrl":
            return 1 if self._hw_id_valid else 0
        return self._regs[name]

    def start_core(self) -> None:
        self.write_reg("control", CONTROL_AP_START)

    def _start(self) -> None:
        tm = self._need_loaded()
        now = self._clock
        if now < self._core_idle:
            return                                   # ap_start while busy: ignored
        addr = self._regs["params"] | (self._regs["params_hi"] << 32)
        params = self._buffer_at(addr)
        if params is None:
            raise PlatformError(f"the core's params register points at 0x{addr:x}, which is "
                                "no allocated buffer: write the parameter buffer's address "
                                "first (on hardware this reads garbage or faults the bus)")
        off = self._regs["desc_offset"]
        self._done_pending = True
        self._hw_id_valid = True
        self._regs["hw_id"] = self._ov.hardware_id
        status = descriptor_status(params, off, self._ov)
        if status:
            # the engine refuses it (the same checks as the C++): no stream data moves, so
            # the DMAs never finish
            self._regs["status"] = status
            self._core_idle = tm.probe(now)
            self._send_idle = self._recv_idle = _NEVER
            self._send = self._recv = None
            self._dma_hang_reason = (f"the engine refused the descriptor at desc_offset "
                                     f"{off}: {STATUS[status]}")
            return
        header, entries = read_descriptor(params, off)
        self._regs["status"] = 0
        if header["n_layers"] == 0:                  # probe: sets hw_id, no stream I/O
            self._core_idle = tm.probe(now)
            return
        self._run(tm, params, off, header, entries, now)

    def _run(self, tm: TimingModel, params: np.ndarray, off: int, header: dict,
             entries: list[dict], now: float) -> None:
        if self._send is None or self._recv is None:
            raise PlatformError("start the receive and the send transfer before ap_start "
                                "(the core blocks on its streams otherwise)")
        (sbuf, sbytes, t_send), (rbuf, rbytes, t_recv) = self._send, self._recv
        self._send = self._recv = None
        fb = self._ov.feature_bits
        eb = feature_elem_bytes(fb)
        need_in = feature_bytes(header["in_h"], header["in_w"], header["in_c"], fb)
        out_n = feature_bytes(header["out_h"], header["out_w"], header["out_c"], fb)
        tl = tm.run_pass(header, entries, t_send, t_recv, now, eb)
        self.last_pass = tl
        self._core_idle, self._send_idle, self._recv_idle = tl.core_idle, tl.send_idle, \
            tl.recv_idle
        self._recv_bytes = min(out_n, rbytes)
        if sbytes < need_in:
            self._core_idle = self._recv_idle = _NEVER
            self._core_hang_reason = (f"the core waits for input: {sbytes} bytes were sent, "
                                      f"the pass reads {need_in}")
            self._dma_hang_reason = self._core_hang_reason
            return
        if sbytes > need_in:
            self._send_idle = _NEVER
            self._dma_hang_reason = (f"the send channel holds {sbytes - need_in} bytes the "
                                     f"core never reads ({sbytes} sent, the pass reads "
                                     f"{need_in})")
        if rbytes < out_n:
            self._core_idle = _NEVER
            self._core_hang_reason = (f"the receive buffer takes {rbytes} bytes, the core "
                                      f"writes {out_n}: its output stream stalls")
        if self._fault == "core_hang":
            self._core_idle = self._send_idle = self._recv_idle = _NEVER
            self._core_hang_reason = "simulated fault: the core hangs"
            self._dma_hang_reason = self._core_hang_reason
            return
        if self._fault == "dma_hang":
            self._recv_idle = _NEVER
            self._dma_hang_reason = "simulated fault: the receive never sees TLAST"
        x = unpack_feature(sbuf[:need_in], header["in_h"], header["in_w"], header["in_c"], fb)
        y = run_pass(x, params, off, self._ov)
        out = pack_feature(y, fb)
        if self._fault == "tkeep":
            out[:] = 0                                # bytes with TKEEP low are dropped
        elif self._fault == "hp_width" and out.size >= 8:
            beats = out[: out.size // 8 * 8].reshape(-1, 8)
            beats[:, 4:] = beats[:, :4]               # the upper 32 bits of a beat are lost
        n = min(out.size, self._recv_bytes)
        rbuf[:n] = out[:n]

    def wait_core(self, deadline: float) -> None:
        tm = self._need_loaded()
        if self._core_idle > deadline:
            self._clock = max(self._clock, deadline)
            raise CoreTimeout(f"the core did not return to idle within the deadline "
                              f"({self._core_hang_reason or 'it is still busy'}); the "
                              "overlay must be downloaded again")
        self._clock = max(self._clock, self._core_idle) + tm.poll_quantum()

    # --- DMA --------------------------------------------------------------------------
    def _check_dma_len(self, buf: np.ndarray, nbytes: int) -> None:
        if nbytes <= 0 or nbytes > buf.size:
            raise TransferError(f"a transfer of {nbytes} bytes does not fit its buffer of "
                                f"{buf.size} bytes")
        if nbytes > self.dma_max_bytes:
            raise TransferError(f"a transfer of {nbytes} bytes exceeds the DMA's largest "
                                f"({self.dma_max_bytes} bytes)")

    def _check_running(self) -> None:
        if self._halted:
            raise TransferError("the DMA channel is halted after an error (pynq: DMA channel "
                                "not started); the overlay must be downloaded again")

    def dma_send(self, buf: np.ndarray, nbytes: int) -> None:
        tm = self._need_loaded()
        self.physical_address(buf)
        self._check_running()
        self._check_dma_len(buf, nbytes)
        if self._clock < self._send_idle:
            raise TransferError("the send channel is not idle")
        self._clock += tm.dma_call(self._cache_bytes(buf))   # transfer() flushes it
        self._send = (buf, int(nbytes), self._clock)
        self._send_idle = _NEVER                      # until a core consumes it

    def dma_recv(self, buf: np.ndarray, nbytes: int) -> None:
        tm = self._need_loaded()
        self.physical_address(buf)
        self._check_dma_len(buf, nbytes)
        self._check_running()
        if self._clock < self._recv_idle:
            raise TransferError("the receive channel is not idle")
        self._clock += tm.dma_call(0)
        self._recv = (buf, int(nbytes), self._clock)
        self._recv_buf_bytes = self._cache_bytes(buf)
        self._recv_idle = _NEVER

    def _wait_channel(self, idle_at: float, deadline: float, what: str) -> None:
        tm = self._need_loaded()
        if idle_at > deadline:
            self._clock = max(self._clock, deadline)
            raise TransferTimeout(f"the DMA {what} did not complete within the deadline "
                                  f"({self._dma_hang_reason or 'no core consumed the stream'})")
        self._clock = max(self._clock, idle_at) + tm.poll_quantum()

    def wait_send(self, deadline: float) -> None:
        self._wait_channel(self._send_idle, deadline, "send (MM2S)")

    def wait_recv(self, deadline: float) -> int:
        if self._fault == "dma_error" and self._recv_idle < _NEVER:
            self._clock = max(self._clock, self._recv_idle)
            self._halted = True
            self._recv_idle = self._send_idle = _NEVER
            raise TransferError("the DMA receive channel reports an error (status register "
                                "error bits set): check buffer addresses and the HP port "
                                "(simulated fault)")
        self._wait_channel(self._recv_idle, deadline, "receive (S2MM)")
        # wait() invalidates the whole buffer it was given (cacheable buffers); the
        # driver's own Python for the pass ends with it
        tm = self._need_loaded()
        self._clock += tm.cache_op(self._recv_buf_bytes) + tm.driver_pass()
        return self._recv_bytes

    @property
    def dma_max_bytes(self) -> int:
        return dma_max_bytes(SIM_SG_LENGTH_WIDTH)

    # --- time and the board CPU -------------------------------------------------------
    def now(self) -> float:
        return self._clock

    def advance(self, seconds: float) -> None:
        """Let simulated time pass (board CPU work done outside the platform calls)."""
        self._clock += max(0.0, float(seconds))

    def cpu_seconds(self, work: CpuWork, measured_s: float) -> float:
        """This board's CPU time for ``work`` (:mod:`.cpu`: its own Cortex-A9 costs and
        this run's jitter); ``measured_s``, this host's time for it, plays no part. Call it
        once per phase of each frame, in frame order (the jitter is a sequence)."""
        return self._cpu.seconds(work)

    def sensor_power_w(self, activity, seconds: float | None = None) -> float | None:
        """What the simulated board's own power sensors read for ``activity`` (a
        :class:`pynq_codesign.power.Activity`); a device without sensors (the PYNQ-Z1)
        reads its simulated external meter (:mod:`.power_meter`) over ``seconds``."""
        tm = self._need_loaded()
        if not load_device(self._ov.device).has_power_sensors:
            return self.power_meter.read(activity, seconds if seconds else 1.0)[0]
        return tm.power_w(activity.accel_busy, activity.macs_per_s, activity.bytes_per_s,
                          activity.cpu_busy)

    def sensor_detail(self) -> str:
        """Which simulated instrument :meth:`sensor_power_w` reads."""
        self._need_loaded()
        if load_device(self._ov.device).has_power_sensors:
            return "the simulated board's power rails"
        return f"the simulated board's external power meter ({self.power_meter.rate_hz:.0f} Hz)"

    def describe(self) -> str:
        ov = self._ov
        return (f"simulated board (seed {self._seed}"
                + (f", {ov.device}, overlay {ov.hardware_id_hex}" if ov else "") + ")")
