"""``codesign build-overlay PKG --board pynq-z1 [--out DIR]``: the overlay of a package.

Writes a self-contained build project into DIR (by default ``PKG-overlay-build`` beside the
package; never inside it, never into a folder that holds anything but an earlier project
of the same overlay):

* ``hls/``: the engine's C++ (``hls/`` of this project), the header generated from the
  package's overlay (:mod:`host_search.hls_gen`) with the binding the QoS model assumed,
  the test bench, ``run_hls.tcl`` + ``config.tcl``, and ``tb_data/`` (the package's
  parameter buffer, its passes and its golden vectors in the wire layout) for C and C/RTL
  co-simulation;
* ``overlay/``: the board's Vivado script (``overlays/<board>/``) + ``config.tcl``;
* ``run.sh`` (the whole flow), ``README.md``, ``binding.json``, ``project.json``.

When ``vitis_hls`` and ``vivado`` (2024.1) are on PATH it runs the flow, parses the
utilisation and timing reports (failing on negative slack), and adds the bitstream, the
``.hwh`` and the reports to the package as a new version with its manifest re-signed.
Without them it prints the exact commands (shell-quoted) to run on a machine with Vivado
2024.1 and exits with status 3 (:data:`~pynq_codesign.errors.EXIT_TOOLS_MISSING`: the
project is written, the tools are missing; bad input exits 2). No bitstream ships with
pynq-codesign: every overlay is built this way.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pynq_codesign.devices import load_device
from pynq_codesign.errors import EXIT_TOOLS_MISSING, CodesignError
from pynq_codesign.fsutil import public_mode
from pynq_codesign.package import Package, add_files, load_package
from pynq_codesign import wire
from pynq_codesign.wire import pack_feature

from .binding import bind_overlay
from pynq_codesign.platform.sim.emulator import run_program as emulate
from pynq_codesign.randparams import random_inputs, random_program

from .hls_gen import cosim_design, shipped_dir, write_sources

TOOL_VERSION = "2024.1"
OVERLAYS_DIR = shipped_dir("overlays")
BD_NAME = "pcd_overlay"


class OverlayBuildError(CodesignError):
    """The overlay cannot be built (the message says what to do)."""


class ToolsMissing(OverlayBuildError):
    """Vitis HLS / Vivado are missing or the wrong version: the project is written, the
    build must run elsewhere (exit status 3, not the 2 of bad input)."""

    exit_code = EXIT_TOOLS_MISSING


@dataclass(frozen=True)
class BuildReport:
    """What a finished Vivado run reported."""

    wns_ns: float
    whs_ns: float
    clock_mhz: float
    utilisation: dict[str, float]

    def to_dict(self) -> dict:
        return {"wns_ns": self.wns_ns, "whs_ns": self.whs_ns, "clock_mhz": self.clock_mhz,
                "utilisation": self.utilisation}


# ---------------------------------------------------------------------------
# Writing the project.
# ---------------------------------------------------------------------------

def _tcl_str(s: str) -> str:
    return "{" + s + "}"


def write_tb_data(dest: Path, pkg: Package) -> int:
    """The package's parameter buffer, passes and golden vectors for the test bench."""
    dest.mkdir(parents=True, exist_ok=True)
    fb = pkg.design.overlay.feature_bits
    params = pkg.program.params
    pad = (-params.size) % 8
    np.concatenate([params, np.zeros(pad, np.uint8)]).tofile(dest / "params.bin")
    (dest / "passes.txt").write_text("".join(
        f"{p.desc_offset} {p.in_bytes} {p.out_bytes}\n" for p in pkg.program.passes))
    for k, (x, y) in enumerate(pkg.golden):
        pack_feature(x, fb).tofile(dest / f"in_{k}.bin")
        pack_feature(y, fb).tofile(dest / f"out_{k}.bin")
    (dest / "vectors.txt").write_text(f"{len(pkg.golden)}\n")
    return len(pkg.golden)


@dataclass(frozen=True)
class _Vectors:
    """What write_tb_data reads from a package: design, program, golden vectors."""

    design: object
    program: object
    golden: list


def _cosim_vectors(overlay) -> _Vectors:
    """The C/RTL co-simulation's data: a tiny network on the package's overlay
    (hls_gen.cosim_design: every stage once, a 5 x 7 map) with random weights and one
    golden vector from the emulator; C simulation keeps the package's own vectors."""
    d = cosim_design(overlay)
    prog = random_program(d, 0)
    x = random_inputs(d, 1, 1)[0]
    return _Vectors(d, prog, [(x, emulate(prog, x, overlay))])


def _vlnv_tcl() -> str:
    """The engine IP's vendor, library and name for the Tcl flows (pynq_codesign.wire:
    what run_hls.tcl exports, build_overlay.tcl instantiates and the board runtime finds)."""
    return (f"set pcd_ip_vendor {wire.ENGINE_VENDOR}\n"
            f"set pcd_ip_library {wire.ENGINE_LIBRARY}\n"
            f"set pcd_ip_name {wire.ENGINE_IP_NAME}\n")


def write_project(pkg: Package, board: str, out: Path) -> Path:
    """Everything a machine with Vivado needs, in ``out``; returns ``out/run.sh``."""
    if not (OVERLAYS_DIR / board).is_dir():
        have = ", ".join(sorted(p.name for p in OVERLAYS_DIR.iterdir() if p.is_dir()))
        raise OverlayBuildError(f"no overlay flow for board {board!r}; boards with a flow: "
                                f"{have}")
    ov = pkg.design.overlay
    if ov.device != board:
        raise OverlayBuildError(f"the package's overlay is for {ov.device!r}, not {board!r}; "
                                f"export the design for {board} or pass --board {ov.device}")
    if not pkg.golden:
        raise OverlayBuildError(f"{pkg.root}: the package has no golden vectors; co-simulation "
                                "needs at least one (codesign export --golden 1)")
    out.mkdir(parents=True, exist_ok=True)
    hls, ovd = out / "hls", out / "overlay"
    binding = bind_overlay(ov)
    cosim = _cosim_vectors(ov)
    write_sources(hls, ov, binding, cosim_param_bytes=int(cosim.program.params.size))
    n = write_tb_data(hls / "tb_data", pkg)
    write_tb_data(hls / "tb_cosim", cosim)
    part = load_device(board).part
    ip_version = "1." + str(int(ov.hardware_id))[:6]
    (hls / "config.tcl").write_text(
        "# written by `codesign build-overlay`\n"
        f"set pcd_part {part}\n"
        f"set pcd_clock_period_ns {1000.0 / ov.clock_mhz:.4f}\n"
        f"set pcd_ip_version {ip_version}\n"
        f"{_vlnv_tcl()}"
        f"set pcd_required_version {TOOL_VERSION}\n")
    ovd.mkdir(parents=True, exist_ok=True)
    for tcl in sorted((OVERLAYS_DIR / board).glob("*.tcl")):
        shutil.copyfile(tcl, ovd / tcl.name)
    (ovd / "config.tcl").write_text(
        "# written by `codesign build-overlay`\n"
        f"set pcd_part {part}\n"
        f"set pcd_clock_mhz {ov.clock_mhz:g}\n"
        f"set pcd_ip_repo {_tcl_str(str((hls / 'ip').resolve()))}\n"
        f"set pcd_ip_version {ip_version}\n"
        f"{_vlnv_tcl()}"
        f"set pcd_out_dir {_tcl_str(str((out / 'output').resolve()))}\n"
        f"set pcd_name {BD_NAME}\n"
        f"set pcd_required_version {TOOL_VERSION}\n")
    (out / "binding.json").write_text(json.dumps(binding.to_dict(), indent=2) + "\n")
    (out / "project.json").write_text(json.dumps({
        "package": str(pkg.root), "design": pkg.design.name, "board": board, "part": part,
        "hardware_id": ov.hardware_id_hex, "clock_mhz": ov.clock_mhz,
        "tool_version": TOOL_VERSION, "golden_vectors": n,
        "outputs": {"bit": f"output/{BD_NAME}.bit", "hwh": f"output/{BD_NAME}.hwh",
                    "reports": "output/reports"}}, indent=2) + "\n")
    run = out / "run.sh"
    run.write_text(RUN_SH.format(version=TOOL_VERSION))
    run.chmod(public_mode(directory=True))     # rwx as the umask allows
    (out / "README.md").write_text(README.format(
        design=pkg.design.name, board=board, part=part, hw=ov.hardware_id_hex,
        clock=ov.clock_mhz, version=TOOL_VERSION, pkg=pkg.root, out=out.resolve()))
    return run


RUN_SH = """#!/usr/bin/env bash
# pynq-codesign overlay build: Vitis HLS (csim, csynth, cosim, export) then Vivado.
# Needs Vitis HLS and Vivado {version} on PATH (source their settings64.sh first).
set -euo pipefail
cd "$(dirname "$0")"
for tool in vitis_hls vivado; do
  command -v "$tool" >/dev/null || {{ echo "run.sh: $tool not on PATH" >&2; exit 2; }}
done
vivado -version | grep -q "v{version}" || {{ echo "run.sh: Vivado {version} required" >&2; exit 2; }}
(cd hls && vitis_hls -f run_hls.tcl)
(cd overlay && vivado -mode batch -nojournal -log vivado.log -source build_overlay.tcl)
"""

README = """# Overlay build project: {design} on {board}

Generated by `codesign build-overlay` from the package `{pkg}`.
Hardware ID {hw} (compiled into the IP's read-only `hw_id` register), clock {clock} MHz,
part {part}, Vitis HLS and Vivado {version}.

No bitstream ships with pynq-codesign: this folder is how one is made.

On a machine with Vivado {version} (settings64.sh sourced):

    cd {out}
    ./run.sh                                     # about an hour or more
    codesign build-overlay {pkg} --board {board} --out {out}   # adds .bit/.hwh to the package

`run.sh` runs `hls/run_hls.tcl` (C simulation and C/RTL co-simulation on the package's
golden vectors in `hls/tb_data/`, synthesis, IP export into `hls/ip/`), then
`overlay/build_overlay.tcl` (block design, bitstream, reports; fails on negative slack).
Results land in `output/`. Running `codesign build-overlay` again on a machine with the
tools runs the flow and adds `output/` to the package as a new version.

- `hls/pcd_config.h`: the header generated from the overlay (do not edit)
- `binding.json`: the multiplier and buffer binding the QoS model assumed
"""


# ---------------------------------------------------------------------------
# Running the tools and reading their reports.
# ---------------------------------------------------------------------------

def tools_on_path() -> dict[str, str | None]:
    return {t: shutil.which(t) for t in ("vitis_hls", "vivado")}


def tool_version(tool: str) -> str:
    """The ``vYYYY.N`` a Xilinx tool prints for ``-version`` ('' if it prints none)."""
    try:
        p = subprocess.run([tool, "-version"], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    m = re.search(r"v(\d{4}\.\d)", p.stdout + p.stderr)
    return m.group(1) if m else ""


def parse_timing(text: str) -> tuple[float, float]:
    """(WNS, WHS) in ns from ``timing.txt`` (written by build_overlay.tcl)."""
    vals = dict(re.findall(r"^(wns_ns|whs_ns)\s+(\S+)", text, re.M))
    try:
        return float(vals["wns_ns"]), float(vals["whs_ns"])
    except (KeyError, ValueError):
        raise OverlayBuildError("the timing report has no WNS/WHS; the Vivado run did not "
                                "finish, see overlay/vivado.log") from None


def parse_utilisation(text: str) -> dict[str, float]:
    """Used LUTs, FFs, BRAM tiles (36 Kb) and DSPs from ``report_utilization``'s tables."""
    rows = {"lut": r"Slice LUTs\*?", "ff": r"(?:Slice|Register as) Flip Flop|Slice Registers",
            "bram36": r"Block RAM Tile", "dsp": r"DSPs"}
    out: dict[str, float] = {}
    for key, pat in rows.items():
        m = re.search(rf"^\|\s*(?:{pat})\s*\|\s*([\d.]+)\s*\|", text, re.M)
        if m:
            out[key] = float(m.group(1))
    if "lut" not in out or "dsp" not in out:
        raise OverlayBuildError("the utilisation report has no LUT/DSP rows; see "
                                "overlay/vivado.log")
    return out


def read_reports(out: Path, clock_mhz: float) -> BuildReport:
    rdir = out / "output" / "reports"
    try:
        wns, whs = parse_timing((rdir / "timing.txt").read_text())
        util = parse_utilisation((rdir / "utilization.rpt").read_text())
    except OSError as e:
        raise OverlayBuildError(f"{rdir}: report missing ({e.filename}); the Vivado run did "
                                "not finish") from None
    if wns < 0 or whs < 0:
        raise OverlayBuildError(f"timing not met at {clock_mhz} MHz (WNS {wns} ns, WHS {whs} "
                                "ns): lower the overlay clock or its parallelism")
    return BuildReport(wns, whs, clock_mhz, util)


def add_overlay_to_package(pkg: Package, out: Path, report: BuildReport) -> Package:
    o = out / "output"
    bit, hwh = o / f"{BD_NAME}.bit", o / f"{BD_NAME}.hwh"
    for f in (bit, hwh):
        if not f.is_file():
            raise OverlayBuildError(f"{f}: missing after the Vivado run")
    files = {f"overlay/{BD_NAME}.bit": bit, f"overlay/{BD_NAME}.hwh": hwh}
    reports = []
    for r in sorted((o / "reports").glob("*")):
        rel = f"overlay/reports/{r.name}"
        files[rel] = r
        reports.append(rel)
    meta = {"bit": f"overlay/{BD_NAME}.bit", "hwh": f"overlay/{BD_NAME}.hwh",
            "reports": reports, "board": pkg.design.overlay.device,
            "hardware_id": pkg.design.overlay.hardware_id_hex,
            "tool_version": TOOL_VERSION, **report.to_dict()}
    return add_files(pkg.root, files, "overlay built with Vivado " + TOOL_VERSION, meta)


def run_logged(cmd: list[str], log: Path) -> int:
    """Run ``cmd``, echoing its output and keeping it in ``log``; the exit status."""
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            print(line, end="", flush=True)
        return proc.wait()


def commands_for(run: Path, pkg: Package, board: str, out: Path) -> list[str]:
    q = shlex.quote
    return [f"cd {q(str(out.resolve()))}",
            "(cd hls && vitis_hls -f run_hls.tcl)",
            "(cd overlay && vivado -mode batch -nojournal -log vivado.log "
            "-source build_overlay.tcl)",
            f"codesign build-overlay {q(str(pkg.root))} --board {q(board)} "
            f"--out {q(str(out.resolve()))}"]


def default_out(pkg: Package) -> Path:
    """``PKG-overlay-build`` beside the package (a package holds only its own files)."""
    return pkg.root.parent / f"{pkg.root.name}-overlay-build"


def check_out(pkg: Package, out: Path) -> Path:
    """``out`` as a project folder: outside the package, new, empty or an earlier project
    of this very overlay (``project.json`` with the package's hardware ID)."""
    o = out.resolve()
    if o == pkg.root or pkg.root in o.parents:
        raise OverlayBuildError(f"--out {out} lies inside the package {pkg.root}; a package "
                                "holds only its own files: choose a folder outside it "
                                f"(default {default_out(pkg)})")
    if o in pkg.root.parents:
        raise OverlayBuildError(f"--out {out} contains the package; choose a new folder")
    if o.exists() and not o.is_dir():
        raise OverlayBuildError(f"--out {out} exists and is not a folder")
    if o.is_dir() and any(o.iterdir()):
        try:
            prj = json.loads((o / "project.json").read_text())
        except (OSError, ValueError):
            prj = None
        if not isinstance(prj, dict) or \
                prj.get("hardware_id") != pkg.design.overlay.hardware_id_hex:
            raise OverlayBuildError(f"--out {out} is not empty and is not a build project of "
                                    "this overlay; choose a new or empty folder")
    return o


def main(args: argparse.Namespace) -> int:
    pkg = load_package(args.package)
    board = args.board
    out = check_out(pkg, Path(args.out) if args.out else default_out(pkg))
    built = (out / "output" / f"{BD_NAME}.bit").is_file()
    if built:                  # a finished run (here or elsewhere): just add its results
        report = read_reports(out, pkg.design.overlay.clock_mhz)
        new = add_overlay_to_package(pkg, out, report)
        print(f"added the overlay built in {out} to {new.root} (version {new.version}); "
              f"WNS {report.wns_ns} ns at {report.clock_mhz} MHz")
        return 0
    run = write_project(pkg, board, out)
    print(f"wrote the overlay build project for {pkg.design.name} ({board}, hardware ID "
          f"{pkg.design.overlay.hardware_id_hex}) into {out}")
    tools = tools_on_path()
    missing = [t for t, p in tools.items() if p is None]
    if missing:
        print(f"{' and '.join(missing)} not on PATH: no bitstream was built (none ships with "
              f"pynq-codesign). On a machine with Vivado/Vitis HLS {TOOL_VERSION} run:")
        for c in commands_for(run, pkg, board, out):
            print(f"    {c}")
        print(f"or simply {shlex.quote(str(run.resolve()))} followed by the last command.")
        print(f"exit status {EXIT_TOOLS_MISSING}: project written, tools missing",
              file=sys.stderr)
        return EXIT_TOOLS_MISSING
    for t in tools:
        v = tool_version(t)
        if v != TOOL_VERSION:
            raise ToolsMissing(f"{t} on PATH is version {v or 'unknown'}; this flow "
                               f"needs {TOOL_VERSION} (PYNQ v3.1 / Zynq-7000); the project "
                               f"is in {out}")
    print(f"running {run} (Vitis HLS then Vivado; an hour or more) ...", flush=True)
    rc = run_logged(["bash", str(run)], out / "build.log")
    if rc != 0:
        raise OverlayBuildError(f"the tool flow failed (exit {rc}); see {out}/build.log, "
                                f"{out}/hls/pcd_hls and {out}/overlay/vivado.log")
    report = read_reports(out, pkg.design.overlay.clock_mhz)
    new = add_overlay_to_package(pkg, out, report)
    print(f"overlay built: WNS {report.wns_ns} ns at {report.clock_mhz} MHz, "
          f"{report.utilisation}; package {new.root} is now version {new.version}")
    return 0
