"""Cross-check of the binding's DSP and BRAM counts against a real synthesis tool (yosys).

Generates small Verilog designs, a signed ``A x B`` multiplier with a registered output
per operand pair and a simple-dual-port memory (one write port, one synchronous read
port) per ``depth x width``, synthesises them in one ``yosys`` run per device family
(``synth_xilinx -family xc7`` for the DSP48E1 devices, ``-family xcup`` for DSP48E2;
BRAM and LUTRAM inference are on by default there) and reads the cell counts of every
module from ``stat -json``. :func:`compare_multipliers` and :func:`compare_memories`
put them beside :func:`host_search.binding.dsp_per_mult` and the binding's BRAM18 count
(``RAMB18E1 + 2 x RAMB36E1``, and the E2 cells likewise).

Run ``python -m host_search.yosys_check`` for a table; ``tests/test_yosys_crosscheck.py``
asserts agreement. Nothing is cached between runs.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pynq_codesign.devices import Device, load_device
from pynq_codesign.errors import CodesignError

from . import binding as bd

FAMILY_OF_DSP = {"DSP48E1": "xc7", "DSP48E2": "xcup"}


class YosysError(CodesignError, RuntimeError):
    """yosys is missing or failed."""


@dataclass(frozen=True)
class CellStats:
    """Cells of one synthesised module, by type."""

    cells: dict[str, int] = field(default_factory=dict)

    @property
    def dsp(self) -> int:
        return sum(n for c, n in self.cells.items() if c.startswith("DSP48"))

    @property
    def bram18(self) -> int:
        """Block RAM in BRAM18 units (a RAMB36 is two)."""
        return sum(n * (2 if c.startswith("RAMB36") else 1)
                   for c, n in self.cells.items() if c.startswith("RAMB"))

    @property
    def lutram_cells(self) -> int:
        return sum(n for c, n in self.cells.items()
                   if c.startswith(("RAM32", "RAM64", "RAM128", "RAM256")))


def yosys_path() -> str | None:
    return shutil.which("yosys")


def multiplier_verilog(name: str, a_bits: int, b_bits: int) -> str:
    """A signed ``a_bits x b_bits`` product with a registered full-width result."""
    return (f"module {name}(input clk, input signed [{a_bits - 1}:0] a, "
            f"input signed [{b_bits - 1}:0] b, "
            f"output reg signed [{a_bits + b_bits - 1}:0] y);\n"
            f"  always @(posedge clk) y <= a * b;\nendmodule\n")


def memory_verilog(name: str, depth: int, width: int) -> str:
    """A simple-dual-port memory: one write port, one synchronous read port."""
    aw = max(1, math.ceil(math.log2(depth)))
    return (f"module {name}(input clk, input we, input [{aw - 1}:0] wa, "
            f"input [{aw - 1}:0] ra, input [{width - 1}:0] d, "
            f"output reg [{width - 1}:0] q);\n"
            f"  reg [{width - 1}:0] mem [0:{depth - 1}];\n"
            f"  always @(posedge clk) begin\n"
            f"    if (we) mem[wa] <= d;\n    q <= mem[ra];\n  end\nendmodule\n")


def _wrapper(modules: dict[str, str]) -> str:
    """A top module that instantiates every module with its ports on top-level pins, so
    that one yosys run synthesises them all (the hierarchy is kept, so ``stat`` counts
    each module apart)."""
    ports, insts = ["input clk"], []
    for i, (name, text) in enumerate(modules.items()):
        header = text.split(")", 1)[0].split("(", 1)[1]
        conns = []
        for decl in header.split(","):
            decl = decl.strip()
            pname = decl.split()[-1]
            if pname == "clk":
                conns.append(".clk(clk)")
                continue
            rng = decl[decl.index("["):decl.index("]") + 1] if "[" in decl else ""
            direction = "output" if decl.startswith("output") else "input"
            ports.append(f"{direction} {rng} {pname}_{i}".replace("  ", " "))
            conns.append(f".{pname}({pname}_{i})")
        insts.append(f"  {name} u{i}({', '.join(conns)});")
    return "module top(" + ", ".join(ports) + ");\n" + "\n".join(insts) + "\nendmodule\n"


def synth_modules(modules: dict[str, str], family: str = "xc7",
                  timeout_s: float = 600.0) -> dict[str, CellStats]:
    """Synthesise the Verilog ``modules`` (name -> text) with ``synth_xilinx`` in one run;
    the cells of each module by name."""
    exe = yosys_path()
    if exe is None:
        raise YosysError("yosys is not on PATH; install it (Debian/Ubuntu: apt-get install "
                         "yosys, or scripts/install-system-deps)")
    with tempfile.TemporaryDirectory(prefix="yosys-check-") as tmp:
        src = Path(tmp) / "check.v"
        src.write_text("".join(modules.values()) + _wrapper(modules))
        out = Path(tmp) / "stat.json"
        script = (f"read_verilog {src}; synth_xilinx -family {family} -noiopad -top top; "
                  f"tee -q -o {out} stat -json")
        try:
            r = subprocess.run([exe, "-q", "-p", script], capture_output=True, text=True,
                               timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise YosysError(f"yosys took longer than {timeout_s:.0f} s")
        if r.returncode != 0 or not out.is_file():
            raise YosysError(f"yosys failed (exit {r.returncode}): "
                             f"{(r.stderr or r.stdout).strip()[-500:]}")
        stat = json.loads(out.read_text())
    res = {}
    for name in modules:
        m = stat["modules"].get("\\" + name) or stat["modules"].get(name)
        if m is None:
            raise YosysError(f"yosys reported no module {name}")
        res[name] = CellStats(dict(m.get("num_cells_by_type", {})))
    return res


@dataclass(frozen=True)
class MultCheck:
    a_bits: int
    b_bits: int
    model_dsp: int
    yosys_dsp: int

    @property
    def agree(self) -> bool:
        return self.model_dsp == self.yosys_dsp


@dataclass(frozen=True)
class MemCheck:
    depth: int
    width: int
    model_impl: str
    model_bram18: int
    model_lutram_cells: int
    yosys_bram18: int
    yosys_lutram_cells: int

    @property
    def agree(self) -> bool:
        """Same implementation and the same BRAM18 (or LUTRAM cell) count."""
        if self.model_impl == "lutram":
            return self.yosys_bram18 == 0 and \
                self.model_lutram_cells == self.yosys_lutram_cells
        return self.model_bram18 == self.yosys_bram18


def _family(device: Device) -> str:
    try:
        return FAMILY_OF_DSP[device.dsp_kind]
    except KeyError:
        raise YosysError(f"no yosys family for {device.dsp_kind}")


def compare_multipliers(pairs: list[tuple[int, int]],
                        device: str | Device = "pynq-z1") -> list[MultCheck]:
    """DSP slices per signed product: the binding's rule vs yosys."""
    dev = load_device(device) if isinstance(device, str) else device
    mods = {f"mul_{a}x{b}": multiplier_verilog(f"mul_{a}x{b}", a, b) for a, b in pairs}
    stats = synth_modules(mods, _family(dev))
    return [MultCheck(a, b, int(bd.dsp_per_mult(a, b, dev.dsp_mult_a, dev.dsp_mult_b)),
                      stats[f"mul_{a}x{b}"].dsp) for a, b in pairs]


def compare_memories(shapes: list[tuple[int, int]],
                     device: str | Device = "pynq-z1") -> list[MemCheck]:
    """BRAM18 per simple-dual-port memory: the binding's rule vs yosys."""
    dev = load_device(device) if isinstance(device, str) else device
    mods = {f"mem_{d}x{w}": memory_verilog(f"mem_{d}x{w}", d, w) for d, w in shapes}
    stats = synth_modules(mods, _family(dev))
    out = []
    for d, w in shapes:
        lut = bool(bd.is_lutram(d, w))
        s = stats[f"mem_{d}x{w}"]
        out.append(MemCheck(d, w, "lutram" if lut else "bram",
                            0 if lut else int(bd.bram18_count(d, w)),
                            int(bd.lutram_cells(d, w)) if lut else 0, s.bram18,
                            s.lutram_cells))
    return out


DEFAULT_MULTS = [(4, 4), (3, 5), (2, 8), (8, 8), (11, 8), (16, 8), (16, 16), (18, 18),
                 (25, 18), (26, 18), (19, 19), (30, 20), (35, 25), (43, 18)]
DEFAULT_MEMS = [(64, 8), (128, 16), (256, 4), (256, 16), (512, 36), (1024, 18), (2048, 8),
                (1536, 11), (3000, 12), (4096, 8), (512, 64), (8192, 16), (23040, 8)]


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table for the default sizes on pynq-z1 (DSP48E1)."""
    dev = (argv or sys.argv[1:] or ["pynq-z1"])[0]
    bad = 0
    print(f"signed multipliers on {dev}: DSP slices, binding model vs yosys synth_xilinx")
    for c in compare_multipliers(DEFAULT_MULTS, dev):
        bad += not c.agree
        print(f"  {c.a_bits:>2} x {c.b_bits:<2}  model {c.model_dsp}  yosys {c.yosys_dsp}"
              f"  {'ok' if c.agree else 'DIFFERS'}")
    print("simple-dual-port memories: BRAM18, binding model vs yosys")
    for m in compare_memories(DEFAULT_MEMS, dev):
        bad += not m.agree
        print(f"  {m.depth:>6} x {m.width:<3} model {m.model_impl:<6} {m.model_bram18:>3}  "
              f"({m.model_lutram_cells} LUTRAM cells)  yosys {m.yosys_bram18:>3} BRAM18 "
              f"({m.yosys_lutram_cells} LUTRAM cells)"
              f"  {'ok' if m.agree else 'DIFFERS'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
