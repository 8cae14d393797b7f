"""Where a power figure comes from: sensors, an external meter, or the model.

* **Rails** (``--power rails``): boards with PMBus regulators (ZCU104, Ultra96) expose them
  through ``pynq.get_rails()``; :class:`RailsRecorder` samples the rails' power on a thread
  while the benchmark runs. Label: ``measured``.
* **External meter** (``--power meter:PATH``): a serial device (``/dev/ttyUSB0``: one
  reading per line, watts, optionally ``timestamp,watts``; pyserial is imported only here)
  or a CSV file another program appends ``unix_time,watts`` lines to (the recorder tails it
  and keeps the samples taken during the run). Label: ``measured``.
* **Model** (``--power model``): the device profile's static power plus activity (CPU
  busy share, MAC rate on the fabric, DDR traffic). Label: ``estimated``.

The PYNQ-Z1 has no sensors: without a meter its power is always ``estimated``. ``auto``
takes rails where the board has them, else the model. On the simulated board, ``rails``
reads the simulated board's own sensors (devices whose profile has them; label
``simulated``) and ``auto`` reads them, or on a board without sensors the simulated
external meter clipped into its supply (:mod:`pynq_codesign.platform.sim.power_meter`:
hidden per-seed static and dynamic power, noise, a sample rate; label ``simulated``).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .devices import Device
from .errors import CodesignError

#: Fabric dynamic power per 10^9 multiply-accumulates per second (W), a typical figure
#: for DSP48E1 datapaths with their BRAM traffic at 8-16 bit operands.
PL_W_PER_GMACS = 0.06
#: DDR3 and HP-port power per GB/s moved (W).
DDR_W_PER_GBPS = 0.45
#: Sampling period of the rail and meter recorders (s).
SAMPLE_PERIOD_S = 0.05
#: Tolerance on a meter log's time stamps (their resolution and clock skew), seconds.
CSV_SLACK_S = 0.25


class PowerError(CodesignError):
    """A power source that cannot be used; the message says what to do instead."""


@dataclass(frozen=True)
class Activity:
    """What the board did during a run, per second: the model's inputs."""

    cpu_busy: float          # share of the CPU cores busy (0..1)
    macs_per_s: float        # multiply-accumulates per second on the fabric
    bytes_per_s: float       # DDR bytes per second moved by the accelerator's ports
    accel_busy: float = 0.0  # share of the time the accelerator was running


@dataclass(frozen=True)
class PowerReading:
    watts: float
    source: str              # measured | estimated | simulated
    detail: str = ""


def estimate_power(device: Device, activity: Activity) -> PowerReading:
    """The model estimate: idle board plus what the activity adds (``estimated``)."""
    cpu = min(max(activity.cpu_busy, 0.0), 1.0)
    w = (device.static_board_w + device.pl_static_w + device.ps_active_w * cpu
         + PL_W_PER_GMACS * activity.macs_per_s / 1e9
         + DDR_W_PER_GBPS * activity.bytes_per_s / 1e9)
    return PowerReading(w, "estimated", f"model: {device.name} static + activity")


class _Sampler:
    """A thread that calls ``sample()`` every period and keeps ``(time, watts)``."""

    def __init__(self, period: float = SAMPLE_PERIOD_S):
        self.period = period
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None

    def sample(self) -> float | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                w = self.sample()
            except Exception as e:  # noqa: BLE001 - reported at stop()
                self._error = e
                return
            if w is not None:
                self.samples.append((time.time(), float(w)))
            self._stop.wait(self.period)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="power-recorder", daemon=True)
        self._thread.start()

    def _join(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.period + 1.0)


class RailsRecorder(_Sampler):
    """Samples ``pynq.get_rails()`` (the sum of the rails' power) on a thread."""

    def __init__(self, period: float = SAMPLE_PERIOD_S):
        super().__init__(period)
        try:
            import pynq  # noqa: PLC0415
            rails = pynq.get_rails()
        except Exception as e:  # noqa: BLE001 - any failure means: no rails here
            raise PowerError(f"no power rails readable here ({e}); use --power model or an "
                             "external meter (--power meter:PATH)") from None
        self._rails = {n: r for n, r in rails.items() if getattr(r, "power", None) is not None}
        if not self._rails:
            raise PowerError("this board has no power sensors (the PYNQ-Z1 has none): use an "
                             "external meter (--power meter:PATH) or --power model")

    def sample(self) -> float:
        return sum(float(r.power.value) for r in self._rails.values())

    def stop(self) -> PowerReading:
        self._join()
        if self._error is not None:
            raise PowerError(f"reading the power rails failed: {self._error}")
        if not self.samples:
            raise PowerError("no power samples were taken (the run was too short)")
        w = sum(s for _, s in self.samples) / len(self.samples)
        return PowerReading(w, "measured", f"{len(self._rails)} PMBus rails, "
                                           f"{len(self.samples)} samples")


def _parse_line(line: str) -> tuple[float | None, float] | None:
    """``watts`` or ``timestamp,watts`` (a header or a bad line gives None)."""
    parts = [p.strip() for p in line.replace(";", ",").split(",") if p.strip()]
    try:
        if len(parts) == 1:
            return None, float(parts[0])
        if len(parts) >= 2:
            return float(parts[0]), float(parts[-1])
    except ValueError:
        return None
    return None


class SerialMeter(_Sampler):
    """An external meter on a serial port that prints one reading per line."""

    def __init__(self, device: str, baud: int = 115200, period: float = SAMPLE_PERIOD_S):
        super().__init__(period)
        try:
            import serial  # noqa: PLC0415  (pyserial, only for meters)
        except ImportError:
            raise PowerError("reading a serial power meter needs pyserial: "
                             "pip install pyserial") from None
        try:
            self._port = serial.Serial(device, baud, timeout=period)
        except Exception as e:  # noqa: BLE001
            raise PowerError(f"cannot open the power meter at {device}: {e}") from None
        self.device = device

    def sample(self) -> float | None:
        line = self._port.readline().decode("ascii", "replace")
        got = _parse_line(line)
        return None if got is None else got[1]

    def stop(self) -> PowerReading:
        self._join()
        self._port.close()
        if self._error is not None:
            raise PowerError(f"reading the meter at {self.device} failed: {self._error}")
        if not self.samples:
            raise PowerError(f"the meter at {self.device} sent no readings during the run")
        w = sum(s for _, s in self.samples) / len(self.samples)
        return PowerReading(w, "measured", f"meter {self.device}, {len(self.samples)} samples")


class CsvMeter:
    """A CSV stream of ``unix_time,watts`` lines that a meter program appends to.

    At :meth:`stop` it keeps the samples stamped inside the run (and, for lines without a
    time stamp, those appended during the run)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise PowerError(f"{self.path}: no such meter log; give a serial device or a CSV "
                             "file of 'unix_time,watts' lines")
        self._t0 = self._t1 = 0.0
        self._offset = 0

    def start(self) -> None:
        self._t0 = time.time()
        self._offset = self.path.stat().st_size

    def stop(self) -> PowerReading:
        self._t1 = time.time()
        stamped: list[float] = []
        appended: list[float] = []
        with open(self.path, "rb") as f:
            data = f.read()
        for pos, raw in _lines_with_offsets(data):
            got = _parse_line(raw)
            if got is None:
                continue
            t, w = got
            if t is not None and self._t0 - CSV_SLACK_S <= t <= self._t1 + CSV_SLACK_S:
                stamped.append(w)
            elif t is None and pos >= self._offset:
                appended.append(w)
        samples = stamped or appended
        if not samples:
            raise PowerError(f"{self.path}: no readings stamped between the start and the end "
                             "of the run; is the meter logging (unix_time,watts per line)?")
        return PowerReading(sum(samples) / len(samples), "measured",
                            f"meter log {self.path.name}, {len(samples)} samples")


def _lines_with_offsets(data: bytes):
    pos = 0
    for raw in data.split(b"\n"):
        yield pos, raw.decode("utf-8", "replace")
        pos += len(raw) + 1


def open_recorder(spec: str, platform, device: Device):
    """The recorder for ``--power SPEC`` (``auto``, ``model``, ``rails``, ``meter:PATH``),
    or None when the figure comes from a model after the run."""
    spec = (spec or "auto").strip()
    simulated = getattr(platform, "source", "measured") == "simulated"
    if spec == "model":
        return None
    if spec.startswith("meter:"):
        if simulated:
            raise PowerError("an external meter measures a real board; the simulated board "
                             "gives --power model or rails")
        path = spec[len("meter:"):]
        if not path:
            raise PowerError("--power meter:PATH needs a serial device or a CSV file")
        p = Path(path)
        if p.is_char_device() if p.exists() else path.startswith("/dev/"):
            return SerialMeter(path)
        return CsvMeter(path)
    if spec in ("rails", "auto"):
        if simulated or not device.has_power_sensors:
            if spec == "rails" and not device.has_power_sensors:
                raise PowerError(f"the {device.board} has no power sensors: use an external "
                                 "meter (--power meter:PATH) or --power model")
            return None
        return RailsRecorder()
    raise PowerError(f"unknown power source {spec!r}: use auto, model, rails or meter:PATH")
