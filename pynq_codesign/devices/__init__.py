"""Device profiles: what each supported board's chip, memory and CPU offer.

One JSON file per board in this folder (``pynq-z1.json``, ...). Each names its part,
DSP kind and multiplier width, BRAM18/BRAM36/URAM, LUT, FF, DDR, AXI HP port width,
the fabric clocks the PS can make, the CPU and its word size, rough idle power, and the
source of its numbers. The analytical model and the simulated board both read these;
nothing else about the device is written anywhere else.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import CodesignError

_HERE = Path(__file__).resolve().parent


class UnknownDevice(CodesignError, ValueError):
    """A device name with no profile."""


@dataclass(frozen=True)
class Device:
    name: str
    board: str
    part: str
    family: str
    dsp_kind: str
    dsp_mult_a: int          # wider multiplier port (25 on DSP48E1, 27 on DSP48E2), signed
    dsp_mult_b: int          # narrower port (18), signed
    dsp_acc_bits: int
    dsp: int
    bram18: int
    bram36: int
    uram: int
    lut: int
    ff: int
    ddr_type: str
    ddr_width_bits: int
    ddr_rate_mtps: float
    ddr_size_mb: int
    axi_hp_width_bits: int
    axi_hp_ports: int
    fabric_clocks_mhz: tuple[float, ...]
    max_clock_mhz: float
    cpu_name: str
    cpu_cores: int
    cpu_mhz: float
    cpu_word_bits: int
    cpu_arch: str
    static_board_w: float
    ps_active_w: float
    pl_static_w: float
    has_power_sensors: bool
    sources: dict

    @property
    def ddr_peak_bytes_per_s(self) -> float:
        """Theoretical DDR peak bandwidth (bytes/s)."""
        return self.ddr_rate_mtps * 1e6 * self.ddr_width_bits / 8

    def budget(self) -> dict[str, int]:
        """The resource budget the models check designs against."""
        return {"dsp": self.dsp, "bram18": self.bram18, "lut": self.lut, "ff": self.ff}


def device_names() -> list[str]:
    return sorted(p.stem for p in _HERE.glob("*.json"))


@lru_cache(maxsize=None)
def load_device(name: str) -> Device:
    """The profile of ``name`` (e.g. ``"pynq-z1"``); :class:`UnknownDevice` if there is none."""
    path = _HERE / f"{name}.json"
    if name not in device_names():         # a name, never a path (``../designs/dnn-a``)
        raise UnknownDevice(f"unknown device {name!r}; known: {', '.join(device_names())}")
    d = json.loads(path.read_text())
    return Device(
        name=d["name"], board=d["board"], part=d["part"], family=d["family"],
        dsp_kind=d["dsp_kind"], dsp_mult_a=d["dsp_mult_a"], dsp_mult_b=d["dsp_mult_b"],
        dsp_acc_bits=d["dsp_acc_bits"], dsp=d["dsp"], bram18=d["bram18"], bram36=d["bram36"],
        uram=d["uram"], lut=d["lut"], ff=d["ff"], ddr_type=d["ddr"]["type"],
        ddr_width_bits=d["ddr"]["width_bits"], ddr_rate_mtps=d["ddr"]["rate_mtps"],
        ddr_size_mb=d["ddr"]["size_mb"], axi_hp_width_bits=d["axi_hp_width_bits"],
        axi_hp_ports=d["axi_hp_ports"], fabric_clocks_mhz=tuple(d["fabric_clocks_mhz"]),
        max_clock_mhz=d["max_clock_mhz"], cpu_name=d["cpu"]["name"], cpu_cores=d["cpu"]["cores"],
        cpu_mhz=d["cpu"]["mhz"], cpu_word_bits=d["cpu"]["word_bits"], cpu_arch=d["cpu"]["arch"],
        static_board_w=d["power"]["static_board_w"], ps_active_w=d["power"]["ps_active_w"],
        pl_static_w=d["power"]["pl_static_w"], has_power_sensors=d["has_power_sensors"],
        sources=d["sources"],
    )
