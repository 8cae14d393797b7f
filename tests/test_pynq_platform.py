"""PynqPlatform's polling logic without a board.

pynq 3.1's ``DMAChannel.wait()`` never times out, so the platform polls ``.error`` and
``.idle`` against a deadline of its own and reads ``.transferred`` afterwards; control
polls ``ap_idle``. Here the pynq objects are replaced by small register stand-ins that
behave as the pynq 3.1 attributes do (what a hardware run would show is named in
docs/board.md); the logic under test is the product's own.
"""
import time

import pytest

from pynq_codesign.platform.base import CoreTimeout, TransferError, TransferTimeout
from pynq_codesign.platform.pynq import PynqPlatform
from pynq_codesign.wire import CONTROL_AP_IDLE


class Channel:
    """A DMA channel's status as pynq exposes it: idle after ``busy_polls`` reads."""

    def __init__(self, busy_polls=0, error=False, transferred=0):
        self.busy_polls, self._error, self.transferred = busy_polls, error, transferred
        self.waited = False

    @property
    def idle(self):
        if self.busy_polls is None:
            return False
        self.busy_polls -= 1
        return self.busy_polls < 0

    @property
    def error(self):
        return self._error

    def wait(self):
        self.waited = True


class Dma:
    def __init__(self, send, recv):
        self.sendchannel, self.recvchannel = send, recv


class Ip:
    def __init__(self, idle_after=None):
        self.idle_after, self.reads, self.writes = idle_after, 0, []

    def read(self, off):
        self.reads += 1
        done = self.idle_after is not None and self.reads > self.idle_after
        return CONTROL_AP_IDLE if done else 0

    def write(self, off, v):
        self.writes.append((off, v))


def platform(dma=None, ip=None):
    pf = PynqPlatform.__new__(PynqPlatform)     # no pynq, no board: only the logic
    pf._dma, pf._ip, pf._offsets = dma, ip, {"control": 0x00}
    return pf


def test_receive_returns_transferred_bytes_once_idle():
    rx = Channel(busy_polls=5, transferred=4096)
    pf = platform(Dma(Channel(), rx))
    assert pf.wait_recv(time.monotonic() + 1.0) == 4096 and rx.waited


def test_receive_that_never_completes_times_out_naming_tlast():
    pf = platform(Dma(Channel(), Channel(busy_polls=None)))
    t0 = time.monotonic()
    with pytest.raises(TransferTimeout, match="TLAST"):
        pf.wait_recv(t0 + 0.05)
    assert time.monotonic() - t0 < 1.0


def test_dma_error_bits_raise_at_once():
    pf = platform(Dma(Channel(busy_polls=None, error=True), Channel()))
    with pytest.raises(TransferError, match="error"):
        pf.wait_send(time.monotonic() + 5.0)


def test_core_polls_ap_idle_and_times_out():
    pf = platform(ip=Ip(idle_after=3))
    pf.wait_core(time.monotonic() + 1.0)
    pf = platform(ip=Ip(idle_after=None))
    with pytest.raises(CoreTimeout, match="hangs"):
        pf.wait_core(time.monotonic() + 0.05)


def test_start_writes_ap_start_to_control():
    ip = Ip()
    platform(ip=ip).start_core()
    assert ip.writes == [(0x00, 1)]
