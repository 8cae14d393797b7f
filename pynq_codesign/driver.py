"""The accelerator's driver: the same code on a real PYNQ board and on the simulated board.

:class:`Driver` binds one :class:`~pynq_codesign.platform.base.Platform` to one
deployment package:

* on :meth:`Driver.open` it checks every pass descriptor of the package the way the engine
  will (:func:`pynq_codesign.wire.descriptor_status`): a descriptor the engine would refuse
  moves no stream data, so its DMA transfers would stay armed with nothing to end them,
  and is refused here before any DMA is touched; then it loads the overlay, allocates
  every buffer once (the parameter
  buffer, two input buffers for double-buffering, two feature-map buffers that the passes
  ping-pong between), copies the parameters in once, writes their bus address, runs a
  *probe* (a descriptor with no layers: the core sets its ``hw_id`` register) and refuses a
  bitstream whose hardware ID differs from the package's;
* per frame, per engine pass: it writes ``desc_offset``, starts one receive and one send
  transfer (the whole map each way; no per-band Python loop), sets ap_start, polls ap_idle
  and both DMA channels against a deadline, checks the bytes received, and times the pass
  with the board's clock (simulated time on the simulated board); after a timeout or a
  DMA error (an error bit, or pynq's "DMA channel not started" on a halted channel) it
  downloads the overlay again so that the next run works;
* :meth:`Driver.selftest` runs the package's golden vectors and, where a pass differs,
  says which one and what the symptom usually means.

``codesign board selftest PKG [--sim]`` is :func:`selftest_main`.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import numpy as np

from .errors import CodesignError
from .package import Package, load_package
from .platform.base import (BoardTimeout, HardwareIdMismatch, Platform, PlatformError,
                            TransferError, buffer_sizes, plan_transfers)
from .platform.sim.emulator import run_program
from .wire import (BEAT_BYTES, HEADER_WORDS, STATUS, descriptor_status, feature_bytes,
                   pack_feature, probe_descriptor, unpack_feature)

#: Bytes the probe descriptor takes at the end of the parameter buffer.
PROBE_BYTES = 4 * HEADER_WORDS


class DescriptorRefused(PlatformError):
    """A pass descriptor the engine would refuse (its status register would say why)."""


@dataclass
class PassTime:
    """Board-clock seconds of one pass: driver set-up, compute (start to idle), and the
    transfer tail (from core idle to both channels idle, cache invalidate included)."""

    index: int
    bundle: int
    setup_s: float
    compute_s: float
    tail_s: float

    @property
    def total_s(self) -> float:
        return self.setup_s + self.compute_s + self.tail_s


@dataclass
class FrameResult:
    """One frame through every pass: the output codes ``[H, W, C]`` (int64) and the times."""

    codes: np.ndarray
    passes: list[PassTime]
    pass_outputs: list[np.ndarray] = field(default_factory=list)

    @property
    def accel_s(self) -> float:
        return sum(p.total_s for p in self.passes)

    def bundle_seconds(self, n_bundles: int) -> list[float]:
        out = [0.0] * n_bundles
        for p in self.passes:
            out[p.bundle] += p.total_s
        return out


class Driver:
    """Drives the accelerator of one package on one platform. Use as a context manager."""

    def __init__(self, platform: Platform, package: Package, timeout: float = 10.0):
        if timeout <= 0:
            raise CodesignError(f"--timeout must be positive, got {timeout}")
        self.platform = platform
        self.package = package
        self.timeout = float(timeout)
        self._bufs: dict[str, np.ndarray] = {}
        self._probe_offset = 0
        self._open = False
        self._recovering = False

    # --- set-up ------------------------------------------------------------------------
    def open(self) -> "Driver":
        pkg, pf = self.package, self.platform
        problems = [p for t in plan_transfers(pkg, pf.dma_max_bytes) for p in t.problems]
        if problems:
            raise TransferError("; ".join(problems) + ": rebuild the overlay with the DMA's "
                                "buffer length width at 26 bits")
        check_descriptors(pkg)
        pf.load(pkg)
        params = pkg.program.params
        self._probe_offset = (params.size + BEAT_BYTES - 1) // BEAT_BYTES * BEAT_BYTES
        sizes = buffer_sizes(pkg, self._probe_offset - params.size + PROBE_BYTES)
        first = pkg.program.passes[0]
        self._bufs = {
            "params": pf.allocate("params", sizes["params"]),
            "in0": pf.allocate("in0", first.in_bytes),
            "in1": pf.allocate("in1", first.in_bytes),
            # only the fabric touches the maps between passes: no cache maintenance
            "fmap0": pf.allocate("fmap0", sizes["fmap0"], cacheable=False),
            "fmap1": pf.allocate("fmap1", sizes["fmap1"], cacheable=False),
            "out": pf.allocate("out", sizes["out"]),
        }
        pb = self._bufs["params"]
        pb[:params.size] = params
        pb[self._probe_offset:self._probe_offset + PROBE_BYTES] = probe_descriptor()
        pf.sync_to_device(pb)
        self._open = True
        self._program_fabric()
        return self

    def _program_fabric(self) -> None:
        """Write the parameter buffer's address and check the hardware ID (after a probe)."""
        pf = self.platform
        addr = pf.physical_address(self._bufs["params"])
        pf.write_reg("params", addr & 0xFFFFFFFF)
        pf.write_reg("params_hi", (addr >> 32) & 0xFFFFFFFF)
        pf.write_reg("desc_offset", self._probe_offset)
        pf.start_core()
        self._guard(lambda: pf.wait_core(pf.now() + self.timeout))
        got, want = pf.hardware_id(), self.package.hardware_id
        if got != want:
            raise HardwareIdMismatch(
                f"the loaded bitstream has hardware ID 0x{got:08x}, the package needs "
                f"0x{want:08x} ({self.package.design.name}): load the package's own "
                "overlay (codesign build-overlay) or export the network for this overlay")

    def close(self) -> None:
        if self._open:
            self.platform.release()
            self._open = False

    def __enter__(self) -> "Driver":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- running -----------------------------------------------------------------------
    def load_input(self, codes: np.ndarray, slot: int = 0) -> None:
        """Pack input codes ``[H, W, C]`` into input buffer ``slot`` (0 or 1). Only CPU
        memory is touched: a reader thread may do this while the core runs the other slot."""
        buf = self._bufs[f"in{slot}"]
        data = pack_feature(codes, self.package.design.overlay.feature_bits)
        if data.size != buf.size:
            raise CodesignError(f"input of {data.size} bytes; the network's first pass reads "
                                f"{buf.size} (shape {np.shape(codes)})")
        buf[:] = data

    def execute(self, slot: int = 0, keep_passes: bool = False) -> FrameResult:
        """Run every pass on input buffer ``slot``; the output codes and per-pass times."""
        if not self._open:
            raise CodesignError("the driver is not open")
        pf, fb = self.platform, self.package.design.overlay.feature_bits
        src = self._bufs[f"in{slot}"]
        times: list[PassTime] = []
        outs: list[np.ndarray] = []
        passes = self.package.program.passes
        dst = self._bufs["out"]
        for i, ps in enumerate(passes):
            dst = self._bufs["out"] if i == len(passes) - 1 else self._bufs[f"fmap{i % 2}"]
            t0 = pf.now()
            pf.write_reg("desc_offset", ps.desc_offset)
            self._guard(lambda: (pf.dma_recv(dst, ps.out_bytes), pf.dma_send(src, ps.in_bytes)))
            t1 = pf.now()
            deadline = t1 + self.timeout
            pf.start_core()
            self._guard(lambda: pf.wait_core(deadline))
            t2 = pf.now()
            got = self._guard(lambda: (pf.wait_send(deadline), pf.wait_recv(deadline))[1])
            t3 = pf.now()
            if got != ps.out_bytes:
                raise TransferError(_short_receive(i, got, ps.out_bytes))
            times.append(PassTime(i, ps.bundle, t1 - t0, t2 - t1, t3 - t2))
            if keep_passes:
                c, h, w = ps.out_shape
                outs.append(unpack_feature(dst[:ps.out_bytes], h, w, c, fb))
            src = dst
        c, h, w = self.package.program.passes[-1].out_shape
        codes = unpack_feature(dst[:feature_bytes(h, w, c, fb)], h, w, c, fb)
        return FrameResult(codes, times, outs)

    def run(self, codes: np.ndarray, keep_passes: bool = False) -> FrameResult:
        """One frame: input codes ``[H, W, C]`` to output codes."""
        self.load_input(codes, 0)
        return self.execute(0, keep_passes)

    def _guard(self, fn):
        """Run a DMA call or a wait; on a timeout or a DMA error (an error bit halts the
        channel until the overlay is downloaded again) download the overlay again so the
        next run works."""
        try:
            return fn()
        except (BoardTimeout, TransferError) as e:
            if self._recovering:
                raise
            status = self._engine_status()
            self._recovering = True
            try:
                self.platform.recover()
                self._program_fabric()
                note = "the overlay was downloaded again; the board is ready for the next run"
            except CodesignError as again:
                note = f"recovery failed too ({again})"
            finally:
                self._recovering = False
            raise type(e)(f"{e}{status} [{note}]") from None

    def _engine_status(self) -> str:
        """The engine's status register after a failed pass, as words ('' when ok)."""
        try:
            code = self.platform.read_reg("status")
        except CodesignError:
            return ""
        if not code:
            return ""
        return f"; engine status {code}: {STATUS.get(code, 'unknown code')}"

    # --- self-test ---------------------------------------------------------------------
    def selftest(self) -> "SelfTestReport":
        """Every golden vector through the board, compared with the package's outputs."""
        pkg = self.package
        report = SelfTestReport(pkg.design.name, len(pkg.golden))
        if not pkg.golden:
            report.failures.append("the package has no golden vectors: export it again "
                                   "with --golden 1 or more")
            return report
        for k, (x, y) in enumerate(pkg.golden):
            try:
                res = self.run(x, keep_passes=True)
            except BoardTimeout as e:
                report.failures.append(f"golden {k}: {e}")
                report.causes.append(_timeout_cause(e))
                return report
            except TransferError as e:
                report.failures.append(f"golden {k}: {e}")
                report.causes.append(
                    "a DMA channel reported an error (a bad buffer address or an HP port "
                    "that is not enabled); the overlay was downloaded again"
                    if "error" in str(e) else
                    "the DMA moved a different number of bytes than the pass needs")
                return report
            report.accel_s.append(res.accel_s)
            if np.array_equal(res.codes, y):
                continue
            _, ref = run_program(pkg.program, x, pkg.design.overlay, keep_passes=True)
            first = next((i for i, (a, b) in enumerate(zip(res.pass_outputs, ref))
                          if not np.array_equal(a, b)), None)
            if first is None:
                report.failures.append(
                    f"golden {k}: the board agrees with this version's emulator but not with "
                    "the package's golden output")
                report.causes.append("the package was exported with different arithmetic "
                                     "(another pynq-codesign version?): export it again")
                continue
            ps = pkg.program.passes[first]
            fb = pkg.design.overlay.feature_bits
            got = pack_feature(res.pass_outputs[first], fb)
            want = pack_feature(ref[first], fb)
            n_bad = int(np.count_nonzero(res.pass_outputs[first] != ref[first]))
            report.failures.append(
                f"golden {k}: pass {first} (bundle {ps.bundle}) differs first: {n_bad} of "
                f"{ref[first].size} output values wrong")
            report.causes.append(diagnose(got, want))
        return report


@dataclass
class SelfTestReport:
    design: str
    n_golden: int
    failures: list[str] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)
    accel_s: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def check_descriptors(package: Package) -> None:
    """Refuse a package with a pass descriptor the engine would refuse (the C++ checks of
    hls/descriptor.h, in :func:`pynq_codesign.wire.descriptor_status`): such a pass would
    leave both DMA channels armed with no stream data to finish them."""
    prog, ov = package.program, package.design.overlay
    for i, ps in enumerate(prog.passes):
        code = descriptor_status(prog.params, ps.desc_offset, ov)
        if code:
            raise DescriptorRefused(
                f"pass {i} (bundle {ps.bundle}): the engine would refuse its descriptor at "
                f"offset {ps.desc_offset} (status {code}: {STATUS.get(code, code)}); "
                "nothing was started: export the package again for this overlay")


def _short_receive(i: int, got: int, want: int) -> str:
    # A DMA whose length register is too narrow never shows here: pynq refuses the
    # transfer (ValueError) and the driver checks the lengths when it opens.
    return (f"pass {i}: received {got} bytes, expected {want}: the IP raised TLAST "
            + ("early" if got < want else "late") + " (see the symptom table in docs/board.md)")


def _timeout_cause(e: BoardTimeout) -> str:
    from .platform.base import CoreTimeout
    if isinstance(e, CoreTimeout):
        return ("the core never went idle: check that the IP's clock runs (fabric clock "
                "set), that ap_start reaches it (s_axilite port=return), and that both "
                "streams are connected to the DMA")
    return ("a DMA channel never completed: a receive that hangs means the IP does not "
            "raise TLAST on its output stream (exactly one per pass); a send that hangs "
            "means the core did not read the whole input")


def diagnose(got: np.ndarray, want: np.ndarray) -> str:
    """The likely cause of a wrong output transfer, from the bytes received vs expected."""
    got = np.asarray(got, dtype=np.uint8).reshape(-1)
    want = np.asarray(want, dtype=np.uint8).reshape(-1)
    n = min(got.size, want.size)
    got, want = got[:n], want[:n]
    if n and not got.any() and want.any():
        return ("every byte received is zero: TKEEP is not all ones on the IP's output "
                "stream (or nothing was written): set TKEEP to all ones")
    bad = got != want
    if n >= 16 and n % 8 == 0:
        w = bad.reshape(-1, 8)
        lo, hi = w[:, :4].any(), w[:, 4:].any()
        if lo != hi and (w[:, 4:] if hi else w[:, :4]).any(axis=1).mean() > 0.5:
            return ("every other 32-bit word is wrong: the stream / HP port width does not "
                    "match the 64-bit beat (check the DMA's stream width and that the HP "
                    "port is configured for 64 bits)")
    idx = np.flatnonzero(bad)
    if idx.size:
        first_bad = int(idx[0])
        return (f"the first wrong byte is at offset {first_bad} of {n}: the arithmetic "
                "differs (rounding, saturation, a shift) or the descriptor/weights were "
                "read from the wrong address; compare this pass with `codesign` C "
                "simulation of the HLS code")
    return "the outputs differ in size only"


# ---------------------------------------------------------------------------
# The command line.
# ---------------------------------------------------------------------------

def open_platform(sim: bool, board_seed: int = 0) -> Platform:
    """The simulated board (``sim``) or the real PYNQ board."""
    if sim:
        from .platform.sim.board import SimPlatform
        return SimPlatform(board_seed=board_seed)
    from .platform.pynq import PynqPlatform
    return PynqPlatform()


def open_driver(args: argparse.Namespace) -> Driver:
    """Load the package named on the command line and open its driver (not yet opened)."""
    pkg = load_package(args.package)
    platform = open_platform(args.sim, getattr(args, "board_seed", 0))
    return Driver(platform, pkg, timeout=getattr(args, "timeout", 10.0))


def selftest_main(args: argparse.Namespace) -> int:
    """``codesign board selftest PKG [--sim]``: golden vectors through the board."""
    driver = open_driver(args)
    pf = driver.platform
    try:
        with driver:
            rep = driver.selftest()
    except HardwareIdMismatch as e:
        print(f"selftest FAILED: {e}")
        print("likely cause: the bitstream on the fabric is not this package's overlay")
        return 1
    except PlatformError:
        raise
    label = pf.source
    if rep.ok:
        ms = ", ".join(f"{1e3 * t:.2f}" for t in rep.accel_s)
        print(f"selftest passed: {rep.n_golden} golden vector(s) of {rep.design} match "
              f"bit for bit on the {pf.describe()}")
        print(f"accelerator time per frame: {ms} ms ({label})")
        return 0
    print(f"selftest FAILED on the {pf.describe()}:")
    for f, c in zip(rep.failures, rep.causes + [""] * len(rep.failures)):
        print(f"  {f}")
        if c:
            print(f"    likely cause: {c}")
    return 1


if __name__ == "__main__":  # pragma: no cover
    from .cli import main
    sys.exit(main(["board", "selftest"] + sys.argv[1:]))
