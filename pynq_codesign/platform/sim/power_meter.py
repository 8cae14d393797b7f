"""The simulated board's power meter: what an external meter on its supply would read.

A real PYNQ-Z1 has no power sensors; a person clips a USB or bench meter into its 5 V
supply, and the meter reports the whole board's power at its own sample rate, with its
own noise. The simulated board carries such a meter so that power calibration has
something to learn: each board seed draws hidden parameters (:class:`_MeterPhysics`) that
the host cannot read: the board's idle (static) power, the fabric's dynamic power per
multiply-accumulate rate, the DDR's per byte moved, the ARM cores' power when busy, the
meter's noise and its sample rate. Every reading is labelled ``simulated``.

The draw is independent of the host's power model (:mod:`pynq_codesign.power`,
``host_search.qos_model``): nothing but the device profile is shared, so calibrating the
model against this meter is not calibrating it against itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...devices import Device

SOURCE = "simulated"


@dataclass(frozen=True)
class _MeterPhysics:
    """A board's hidden power parameters and its meter (private to the simulated board)."""

    static_w: float            # board at idle, fabric configured (PS + regulators + PL static)
    pl_w_per_gmacs: float      # fabric dynamic power per 10^9 MAC/s
    ddr_w_per_gbps: float      # DDR + HP ports per GB/s moved
    cpu_w_per_core: float      # one busy Cortex-A9 core
    accel_busy_w: float        # clock tree and control of the running accelerator
    noise_frac: float          # meter noise, relative standard deviation of one sample
    rate_hz: float             # meter samples per second


def _draw(seed: int, device: Device) -> _MeterPhysics:
    r = np.random.default_rng([0x90E7, int(seed) & 0xFFFFFFFF])
    u = lambda lo, hi: float(r.uniform(lo, hi))  # noqa: E731
    static = (device.static_board_w + device.pl_static_w) * u(0.8, 1.25)
    return _MeterPhysics(
        static_w=static, pl_w_per_gmacs=u(0.03, 0.10), ddr_w_per_gbps=u(0.3, 0.7),
        cpu_w_per_core=device.ps_active_w / 2 * u(0.7, 1.4), accel_busy_w=u(0.02, 0.12),
        noise_frac=u(0.004, 0.02), rate_hz=u(20.0, 100.0))


class SimPowerMeter:
    """The meter of one simulated board (``seed`` draws its hidden parameters)."""

    source = SOURCE

    def __init__(self, seed: int, device: Device):
        self._ph = _draw(seed, device)
        self._cores = device.cpu_cores
        self._rng = np.random.default_rng([0x3E7E, int(seed) & 0xFFFFFFFF])

    @property
    def rate_hz(self) -> float:
        """Samples per second (a meter's data sheet says it; not a hidden figure)."""
        return self._ph.rate_hz

    def true_power_w(self, activity) -> float:
        """The board's power for ``activity`` (a :class:`pynq_codesign.power.Activity`)."""
        ph = self._ph
        cpu = min(max(activity.cpu_busy, 0.0), 1.0)
        busy = min(max(activity.accel_busy, 0.0), 1.0)
        return (ph.static_w + ph.cpu_w_per_core * self._cores * cpu
                + ph.pl_w_per_gmacs * activity.macs_per_s / 1e9
                + ph.ddr_w_per_gbps * activity.bytes_per_s / 1e9 + ph.accel_busy_w * busy)

    def samples(self, activity, t0: float, t1: float) -> list[tuple[float, float]]:
        """The meter's ``(time, watts)`` readings between simulated times ``t0`` and ``t1``
        (at least one: a meter shows its last reading)."""
        dt = 1.0 / self._ph.rate_hz
        n = max(1, int(math.floor(max(t1 - t0, 0.0) * self._ph.rate_hz)))
        w = self.true_power_w(activity)
        noise = self._rng.normal(0.0, self._ph.noise_frac, size=n)
        return [(t0 + (k + 1) * dt, float(w * (1.0 + noise[k]))) for k in range(n)]

    def read(self, activity, seconds: float) -> tuple[float, int]:
        """Mean watts over a run of ``seconds`` and the number of samples it averages."""
        s = self.samples(activity, 0.0, seconds)
        return sum(w for _, w in s) / len(s), len(s)
