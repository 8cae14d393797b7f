"""The board behind one interface: what the driver needs from a real or a simulated board.

A :class:`Platform` loads a deployment package onto the fabric (the overlay), hands out
physically contiguous buffers (allocated once, reused for every frame), reads and writes
the accelerator's registers by name (:data:`pynq_codesign.wire.REGISTERS`), starts the
core and polls it, moves one buffer each way through the AXI DMA with a deadline of its
own, and recovers from a hung core. Two implementations:

* :class:`pynq_codesign.platform.pynq.PynqPlatform`: the pynq 3.1 API on a PYNQ board;
* :class:`pynq_codesign.platform.sim.board.SimPlatform`: the bit-exact emulator behind
  the same calls, with a timing model of its own and hidden physical parameters.

Time: :meth:`Platform.now` is the board's clock in seconds. On a real board it is the
CPU's monotonic clock; on the simulated board it is *simulated* time, advanced by the
timing model for every call the driver makes. The driver times passes with it, so every
time it reports is what the board would show, labelled by :attr:`Platform.source`
(``measured`` or ``simulated``).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from ..cpu_work import CpuWork
from ..errors import CodesignError
from ..package import Package


class PlatformError(CodesignError, RuntimeError):
    """The board cannot do what was asked; the message says what to check."""


class PlatformUnavailable(PlatformError):
    """No board here (no pynq, no device): use ``--sim`` for the simulated board."""


class BoardTimeout(PlatformError):
    """Something on the fabric did not finish before its deadline."""


class TransferTimeout(BoardTimeout):
    """A DMA transfer did not complete in time (receive hangs: usually a missing TLAST)."""


class CoreTimeout(BoardTimeout):
    """The accelerator core did not return to idle in time (a hung core)."""


class TransferError(PlatformError):
    """The DMA reported an error or moved a different number of bytes than asked."""


class HardwareIdMismatch(PlatformError):
    """The loaded bitstream's hardware ID is not the package's."""


class FabricLocked(PlatformError):
    """Another program holds the fabric (the board service, a notebook)."""


class ClockError(PlatformError):
    """The fabric clock cannot be set as the design asks."""


@dataclass(frozen=True)
class TransferPlan:
    """What the DMA must do for one pass, checked against what the DMA can do."""

    pass_index: int
    send_bytes: int
    recv_bytes: int
    max_bytes: int                     # the DMA's largest transfer (2**c_sg_length_width - 1)

    @property
    def problems(self) -> list[str]:
        out = []
        for what, n in (("send", self.send_bytes), ("receive", self.recv_bytes)):
            if n > self.max_bytes:
                out.append(f"pass {self.pass_index}: {what} of {n} bytes exceeds the DMA's "
                           f"largest transfer of {self.max_bytes} bytes")
        return out


def dma_max_bytes(sg_length_width: int) -> int:
    """The largest AXI DMA transfer for a buffer-length register of ``sg_length_width`` bits."""
    return (1 << int(sg_length_width)) - 1


def plan_transfers(package: Package, max_bytes: int) -> list[TransferPlan]:
    """One send and one receive per pass; :attr:`TransferPlan.problems` names any that the
    DMA cannot do in one transfer (the driver never splits a pass's stream: the IP raises
    TLAST once per pass)."""
    return [TransferPlan(i, ps.in_bytes, ps.out_bytes, max_bytes)
            for i, ps in enumerate(package.program.passes)]


def buffer_sizes(package: Package, probe_bytes: int = 0) -> dict[str, int]:
    """Bytes of the buffers the driver allocates once: the parameter buffer (plus the probe
    descriptor), two feature-map buffers large enough for any pass's input or output
    (ping-pong: one pass's output buffer is the next pass's input buffer) and the last
    pass's output buffer."""
    passes = package.program.passes
    largest = max(max(p.in_bytes, p.out_bytes) for p in passes)
    return {"params": int(package.program.params.size) + probe_bytes,
            "fmap0": largest, "fmap1": largest, "out": passes[-1].out_bytes}


class Platform(abc.ABC):
    """One board. Use as a context manager; :meth:`release` frees buffers and the lock."""

    #: ``measured`` on a real board, ``simulated`` on the simulated one.
    source: str = "measured"

    # --- life cycle -------------------------------------------------------------------
    @abc.abstractmethod
    def load(self, package: Package) -> None:
        """Program the fabric with the package's overlay (take the fabric lock first)."""

    @abc.abstractmethod
    def release(self) -> None:
        """Free the buffers and the fabric lock; the platform can be loaded again."""

    @abc.abstractmethod
    def recover(self) -> None:
        """Bring a hung core / DMA back: on hardware, download the overlay again.
        Buffers stay valid (their contents are the caller's to restore)."""

    def __enter__(self) -> "Platform":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # --- memory -----------------------------------------------------------------------
    @abc.abstractmethod
    def allocate(self, name: str, nbytes: int, cacheable: bool = True) -> np.ndarray:
        """A physically contiguous uint8 buffer, allocated once under ``name`` and returned
        again (the same object) on later calls with the same size. A ``cacheable`` buffer
        costs a cache flush of the whole buffer when a DMA sends it and an invalidate when
        one receives into it (fast CPU access); a non-cacheable one costs neither (slow
        CPU access: for buffers only the fabric reads and writes)."""

    @abc.abstractmethod
    def physical_address(self, buf: np.ndarray) -> int:
        """The bus address of a buffer from :meth:`allocate` (for the IP's m_axi port)."""

    def sync_to_device(self, buf: np.ndarray) -> None:
        """Flush CPU caches so the fabric sees what the CPU wrote (no-op where coherent)."""

    def sync_from_device(self, buf: np.ndarray) -> None:
        """Invalidate CPU caches so the CPU sees what the fabric wrote."""

    # --- registers and control --------------------------------------------------------
    @abc.abstractmethod
    def write_reg(self, name: str, value: int) -> None:
        """Write a 32-bit register of the accelerator by its name in wire.REGISTERS."""

    @abc.abstractmethod
    def read_reg(self, name: str) -> int:
        """Read a 32-bit register of the accelerator by name."""

    @abc.abstractmethod
    def start_core(self) -> None:
        """Set ap_start."""

    @abc.abstractmethod
    def wait_core(self, deadline: float) -> None:
        """Poll ap_idle until the core is idle; :class:`CoreTimeout` after ``deadline``
        (a :meth:`now` value). ap_done clears on read, so idle is what is polled."""

    # --- DMA --------------------------------------------------------------------------
    @abc.abstractmethod
    def dma_send(self, buf: np.ndarray, nbytes: int) -> None:
        """Start the memory-to-stream transfer of the first ``nbytes`` of ``buf``."""

    @abc.abstractmethod
    def dma_recv(self, buf: np.ndarray, nbytes: int) -> None:
        """Start the stream-to-memory transfer into the first ``nbytes`` of ``buf``."""

    @abc.abstractmethod
    def wait_send(self, deadline: float) -> None:
        """Poll the send channel until idle; :class:`TransferTimeout` / :class:`TransferError`."""

    @abc.abstractmethod
    def wait_recv(self, deadline: float) -> int:
        """Poll the receive channel until idle; returns the bytes it wrote."""

    @property
    @abc.abstractmethod
    def dma_max_bytes(self) -> int:
        """The largest single DMA transfer this board's DMA can do."""

    # --- identity and time ------------------------------------------------------------
    def hardware_id(self) -> int:
        """The loaded bitstream's hardware-ID register (valid after a probe pass)."""
        return self.read_reg("hw_id") & 0xFFFFFFFF

    @abc.abstractmethod
    def now(self) -> float:
        """The board's clock in seconds (simulated time on the simulated board)."""

    def cpu_seconds(self, work: CpuWork, measured_s: float) -> float:
        """Board CPU seconds of one phase of a frame: ``work`` is what the CPU did
        (:class:`pynq_codesign.cpu_work.CpuWork`), ``measured_s`` how long it took on this
        machine's clock. A real board *is* the CPU: the measured time. The simulated board
        models ``work`` on its own CPU instead."""
        return measured_s

    def power_rails(self):
        """The board's power sensors (pynq.get_rails()-like dict) or None without any."""
        return None

    def describe(self) -> str:
        """One line: what this board is."""
        return type(self).__name__
