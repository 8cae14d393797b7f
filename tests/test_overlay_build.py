"""The overlay build: project writing, the Tcl flows run through tclsh with the Vivado and
Vitis HLS commands defined as recorders (so syntax errors, missing files and wrong order
fail here), the test bench on the package's golden vectors, and `codesign build-overlay`
with and without (fake) tools."""
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from host_search import csim, overlay_build
from pynq_codesign.cli import main as cli_main
from pynq_codesign.package import load_package
from tests.helpers import random_package

needs_tclsh = pytest.mark.skipif(not shutil.which("tclsh"), reason="needs tclsh")

# Vivado / Vitis HLS commands as recorders. Each call is appended to ::calls; the ones
# whose arguments name files or cells check them; a few return what the real tool would.
RECORDER = r"""
rename exit ::pcd_real_exit
set ::calls {}
set ::cells {}
proc rec {args} { lappend ::calls $args }
proc stub {name} { proc $name args "rec $name {*}\$args; return {}" }
foreach c {set_top open_solution create_clock config_interface csim_design csynth_design
           cosim_design update_ip_catalog apply_bd_automation assign_bd_address
           validate_bd_design save_bd_design generate_target update_compile_order
           wait_on_run open_run current_project current_fileset} { stub $c }
# The IP catalog: export_design writes the exported VLNV into the (fake) zip; the catalog
# knows an IP only once `update_ip_catalog -add_ip ZIP -repo_path DIR` put it into a
# repository the project points at (ip_repo_paths), as Vivado's catalog reads only unpacked IP.
set ::repo_paths {}
set ::ipdefs {}
proc update_ip_catalog {args} {
  rec update_ip_catalog {*}$args
  set i [lsearch $args -add_ip]
  if {$i < 0} return
  set zip [lindex $args [expr {$i + 1}]]
  set j [lsearch $args -repo_path]
  if {$j < 0} { error "update_ip_catalog -add_ip without -repo_path" }
  set repo [lindex $args [expr {$j + 1}]]
  if {$repo ni $::repo_paths} { error "update_ip_catalog: $repo is not in ip_repo_paths" }
  if {![file isfile $zip]} { error "update_ip_catalog: no such IP zip $zip" }
  set f [open $zip]; set vlnv [string trim [read $f]]; close $f
  lappend ::ipdefs $vlnv
}
proc get_ipdefs {args} { set v [lindex $args end]; if {$v in $::ipdefs} { return $v }; return {} }
proc exit {args} { rec exit; error PCD_EXIT }
proc version {args} { rec version {*}$args; return $::fake_version }
proc open_project {args} { rec open_project {*}$args; if {[llength $args] < 1} { error "open_project: no name" } }
proc set_part {part} { rec set_part $part; if {$part ne "xc7z020clg400-1"} { error "set_part: $part" } }
proc add_files {args} {
  rec add_files {*}$args
  set skip 0
  foreach a $args {
    if {$skip} { set skip 0; continue }
    if {$a in {-cflags -fileset -of_objects}} { set skip 1; continue }
    if {[string match -* $a]} continue
    if {![file exists $a]} { error "add_files: no such file $a" }
  }
}
proc config_export {args} {
  rec config_export {*}$args
  set i [lsearch $args -output]
  if {$i < 0} { error "config_export: no -output" }
  set ::ip_out [lindex $args [expr {$i + 1}]]
  set v {}
  foreach k {-vendor -library -ipname -version} { lappend v [lindex $args [expr {[lsearch $args $k] + 1}]] }
  set ::ip_vlnv [join $v :]
}
proc export_design {args} {
  rec export_design {*}$args
  if {![info exists ::ip_out]} { error "export_design before config_export" }
  file mkdir [file dirname $::ip_out]
  set f [open $::ip_out w]; puts $f $::ip_vlnv; close $f
}
proc create_project {args} {
  rec create_project {*}$args
  set i [lsearch $args -part]
  if {$i < 0 || [lindex $args [expr {$i + 1}]] ne "xc7z020clg400-1"} { error "create_project: part" }
  set ::proj_dir [lindex $args end-2]
  file mkdir $::proj_dir
}
proc create_bd_design {name} { rec create_bd_design $name; set ::bd $name }
proc create_bd_cell {args} {
  rec create_bd_cell {*}$args
  if {![info exists ::bd]} { error "create_bd_cell before create_bd_design" }
  if {[lsearch $args -vlnv] < 0} { error "create_bd_cell: no -vlnv" }
  lappend ::cells [lindex $args end]
  return [lindex $args end]
}
proc check_pin {p} {
  set cell [lindex [split [string trimleft $p /] /] 0]
  if {$cell ni $::cells} { error "no cell $cell for pin $p" }
  return $p
}
proc get_bd_intf_pins {p} { check_pin $p }
proc get_bd_cells {c} { if {$c ni $::cells} { error "no cell $c" }; return $c }
proc connect_bd_intf_net {a b} { rec connect_bd_intf_net $a $b }
proc set_property {args} {
  rec set_property {*}$args
  if {[lindex $args 0] eq "ip_repo_paths"} { set ::repo_paths [lindex $args 1] }
  set target [lindex $args end]
  if {$target ne "" && [string first / $target] < 0 && $target ni $::cells &&
      $target ni {pcd_overlay {} sources_1} && ![string match */* $target]} {
    if {[lindex $args 0] ne "-dict" && [lindex $args 0] ni {ip_repo_paths top}} {
      error "set_property on unknown object $target"
    }
  }
}
proc get_files {f} { rec get_files $f; return $f }
proc make_wrapper {args} {
  rec make_wrapper {*}$args
  set w [file join $::proj_dir ${::bd}_wrapper.v]
  set f [open $w w]; puts $f "module w;"; close $f
  return $w
}
proc launch_runs {args} {
  rec launch_runs {*}$args
  set run [file join $::proj_dir pcd_overlay.runs impl_1]
  file mkdir $run
  set f [open [file join $run ${::bd}_wrapper.bit] w]; puts $f bit; close $f
  set h [file join $::proj_dir pcd_overlay.gen sources_1 bd $::bd hw_handoff]
  file mkdir $h
  set f [open [file join $h $::bd.hwh] w]; puts $f "<hwh/>"; close $f
}
proc get_runs {r} { return $r }
proc get_timing_paths {args} { rec get_timing_paths {*}$args; return [expr {[lsearch $args -hold] >= 0 ? "hold" : "setup"}] }
proc get_property {name obj} {
  switch -- $name {
    PROGRESS { return 100% }
    STATUS { return "write_bitstream Complete!" }
    DIRECTORY { return [file join $::proj_dir pcd_overlay.runs impl_1] }
    SLACK { return [expr {$obj eq "hold" ? 0.05 : $::fake_slack}] }
  }
  error "get_property $name"
}
proc report_utilization {args} {
  rec report_utilization {*}$args
  set f [open [lindex $args [expr {[lsearch $args -file] + 1}]] w]
  puts $f "| Slice LUTs              | 21000 |     0 |          0 |     53200 | 39.47 |"
  puts $f "| Slice Registers         | 30000 |     0 |          0 |    106400 | 28.20 |"
  puts $f "| Block RAM Tile          |  90.5 |     0 |          0 |       140 | 64.64 |"
  puts $f "| DSPs                    |   164 |     0 |          0 |       220 | 74.55 |"
  close $f
}
proc report_timing_summary {args} {
  rec report_timing_summary {*}$args
  set f [open [lindex $args [expr {[lsearch $args -file] + 1}]] w]; puts $f timing; close $f
}
"""

RUNNER = r"""
set script [lindex $argv 0]
set ::fake_version [lindex $argv 1]
set ::fake_slack [lindex $argv 2]
set log [lindex $argv 3]
source [lindex $argv 4]
cd [file dirname $script]
set rc 0
if {[catch {source $script} msg] && $msg ne "PCD_EXIT"} { puts stderr "ERROR: $msg"; set rc 1 }
set f [open $log w]
foreach c $::calls { puts $f [concat {*}$c] }
close $f
::pcd_real_exit $rc
"""


@pytest.fixture
def project(tmp_path):
    pkg = random_package(tmp_path / "pkg")
    out = tmp_path / "ov"
    run = overlay_build.write_project(pkg, "pynq-z1", out)
    (tmp_path / "recorder.tcl").write_text(RECORDER)
    (tmp_path / "runner.tcl").write_text(RUNNER)
    return pkg, out, run, tmp_path


def run_tcl(tmp, script: Path, version="2024.1", slack="0.42", env_hls="/opt/Xilinx/Vitis_HLS/2024.1"):
    log = tmp / f"{script.stem}.calls"
    env = dict(os.environ, XILINX_HLS=env_hls)
    p = subprocess.run(["tclsh", str(tmp / "runner.tcl"), str(script), version, slack, str(log),
                        str(tmp / "recorder.tcl")], capture_output=True, text=True, env=env)
    calls = [ln.split() for ln in log.read_text().splitlines()] if log.exists() else []
    return p, calls


def order(calls, *names):
    idx = [next(i for i, c in enumerate(calls) if c[0] == n) for n in names]
    return idx == sorted(idx)


@needs_tclsh
def test_hls_tcl_runs_the_flow_in_order(project):
    pkg, out, run, tmp = project
    p, calls = run_tcl(tmp, out / "hls" / "run_hls.tcl")
    assert p.returncode == 0, p.stderr
    assert order(calls, "open_project", "set_top", "add_files", "open_solution", "set_part",
                 "create_clock", "csim_design", "csynth_design", "cosim_design",
                 "export_design", "exit")
    assert ["set_top", "pcd_engine"] in calls
    clock = next(c for c in calls if c[0] == "create_clock")
    assert clock[clock.index("-period") + 1] == "10.0000"
    cosim = next(c for c in calls if c[0] == "cosim_design")
    assert "tb_cosim" in cosim                  # the tiny network, not the package's
    assert "tb_data" in next(c for c in calls if c[0] == "csim_design")
    assert (out / "hls" / "ip" / "pcd_engine.zip").is_file()


@needs_tclsh
def test_hls_tcl_refuses_another_tool_version(project):
    _, out, _, tmp = project
    p, calls = run_tcl(tmp, out / "hls" / "run_hls.tcl", env_hls="/opt/Xilinx/Vitis_HLS/2023.2")
    assert p.returncode == 1 and "2024.1 is required" in p.stderr
    assert not any(c[0] == "csynth_design" for c in calls)


@needs_tclsh
def test_hls_tcl_fails_on_a_missing_file(project):
    _, out, _, tmp = project
    (out / "hls" / "tb_data" / "passes.txt").unlink()
    p, _ = run_tcl(tmp, out / "hls" / "run_hls.tcl")
    assert p.returncode == 1 and "missing tb_data/passes.txt" in p.stderr


def _vivado(project, slack="0.42", version="2024.1"):
    pkg, out, _, tmp = project
    p, _ = run_tcl(tmp, out / "hls" / "run_hls.tcl")      # exports hls/ip/pcd_engine.zip
    assert p.returncode == 0, p.stderr
    return run_tcl(tmp, out / "overlay" / "build_overlay.tcl", version=version, slack=slack)


@needs_tclsh
def test_vivado_tcl_builds_the_block_design_and_copies_bit_and_hwh(project):
    pkg, out, _, tmp = project
    p, calls = _vivado(project)
    assert p.returncode == 0, p.stderr
    assert order(calls, "version", "create_project", "create_bd_design", "create_bd_cell",
                 "apply_bd_automation", "connect_bd_intf_net", "assign_bd_address",
                 "validate_bd_design", "make_wrapper", "launch_runs", "wait_on_run",
                 "open_run", "report_utilization", "report_timing_summary")
    text = " ".join(" ".join(c) for c in calls)
    assert "xilinx.com:ip:processing_system7" in text and "xilinx.com:ip:axi_dma" in text
    assert "pynq-codesign.org:hls:pcd_engine:" in text
    dma = next(c for c in calls if c[0] == "set_property" and "CONFIG.c_sg_length_width" in c)
    assert dma[dma.index("CONFIG.c_sg_length_width") + 1] == "26"
    assert dma[dma.index("CONFIG.c_include_sg") + 1] == "0"
    ps = next(c for c in calls if c[0] == "set_property" and "CONFIG.PCW_USE_S_AXI_HP0" in c)
    assert ps[ps.index("CONFIG.PCW_S_AXI_HP0_DATA_WIDTH") + 1] == "64"
    assert ps[ps.index("CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ") + 1] == "100"
    o = out / "output"
    assert (o / "pcd_overlay.bit").is_file() and (o / "pcd_overlay.hwh").is_file()
    rep = overlay_build.read_reports(out, 100.0)
    assert rep.wns_ns == 0.42 and rep.utilisation["dsp"] == 164


@needs_tclsh
def test_vivado_tcl_fails_on_negative_slack(project):
    _, out, _, _ = project
    p, calls = _vivado(project, slack="-0.2")
    assert p.returncode == 1 and "timing not met" in p.stderr
    assert not (out / "output" / "pcd_overlay.bit").exists()
    with pytest.raises(overlay_build.OverlayBuildError, match="timing not met"):
        overlay_build.read_reports(out, 100.0)


@needs_tclsh
def test_vivado_tcl_refuses_another_version(project):
    p, calls = _vivado(project, version="2023.2")
    assert p.returncode == 1 and "Vivado 2024.1 is required" in p.stderr
    assert [c[0] for c in calls] == ["version", "version"]


@pytest.mark.skipif(not shutil.which("g++"), reason="needs g++")
def test_test_bench_passes_on_the_golden_vectors(project):
    """The cosim test bench, built with g++ and our stream header, on tb_data."""
    _, out, _, tmp = project
    hls = out / "hls"
    exe = tmp / "engine_tb"
    flags = tuple(f for f in csim.CXX_FLAGS if f not in ("-shared", "-fPIC"))
    cmd = [csim.compiler(), *flags, "-I", str(hls / "sim"), "-I", str(hls), "-isystem",
           str(csim.ap_types_dir()), str(hls / "engine_top.cpp"), str(hls / "tb" / "engine_tb.cpp"),
           "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True)
    p = subprocess.run([str(exe), str(hls / "tb_data")], capture_output=True, text=True)
    assert p.returncode == 0 and "PASS" in p.stdout, p.stdout
    gold = hls / "tb_data" / "out_0.bin"
    b = bytearray(gold.read_bytes())
    b[0] ^= 0x55
    gold.write_bytes(bytes(b))
    p = subprocess.run([str(exe), str(hls / "tb_data")], capture_output=True, text=True)
    assert p.returncode == 1 and "differs" in p.stdout


def test_build_overlay_without_tools_prints_commands_and_exits_3(tmp_path, capsys, monkeypatch):
    pkg = random_package(tmp_path / "pkg")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    rc = cli_main(["build-overlay", str(pkg.root), "--board", "pynq-z1",
                   "--out", str(tmp_path / "ov")])
    out = capsys.readouterr().out
    assert rc == 3                  # EXIT_TOOLS_MISSING: not the 2 of bad input
    assert "vivado -mode batch" in out and "vitis_hls -f run_hls.tcl" in out
    header = (tmp_path / "ov" / "hls" / "pcd_config.h").read_text()
    assert "ap_fixed" in header and pkg.design.overlay.hardware_id_hex[2:] in header
    proj = json.loads((tmp_path / "ov" / "project.json").read_text())
    assert proj["hardware_id"] == pkg.design.overlay.hardware_id_hex
    assert load_package(pkg.root).version == 1          # nothing added


def test_build_overlay_refuses_unknown_board(tmp_path, capsys):
    pkg = random_package(tmp_path / "pkg")
    rc = cli_main(["build-overlay", str(pkg.root), "--board", "zcu104"])
    assert rc == 2 and "no overlay flow for board 'zcu104'" in capsys.readouterr().err


@needs_tclsh
def test_build_overlay_with_fake_tools_adds_bit_hwh_and_reports(tmp_path, capsys, monkeypatch):
    """vitis_hls and vivado replaced by tclsh + recorders: the whole command end to end."""
    pkg = random_package(tmp_path / "pkg")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (tmp_path / "recorder.tcl").write_text(RECORDER)
    (tmp_path / "runner.tcl").write_text(RUNNER)
    for tool, flag in (("vitis_hls", "-f"), ("vivado", "-source")):
        script = bindir / tool
        script.write_text(
            "#!/bin/sh\n"
            f'if [ "$1" = "-version" ]; then echo "{tool} v2024.1 (64-bit)"; exit 0; fi\n'
            f'while [ $# -gt 0 ]; do if [ "$1" = "{flag}" ]; then s="$2"; fi; shift; done\n'
            f'exec tclsh {tmp_path}/runner.tcl "$PWD/$s" 2024.1 0.31 {tmp_path}/{tool}.calls '
            f"{tmp_path}/recorder.tcl\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setenv("XILINX_HLS", "/opt/Xilinx/Vitis_HLS/2024.1")
    rc = cli_main(["build-overlay", str(pkg.root), "--out", str(tmp_path / "ov")])
    assert rc == 0, capsys.readouterr()
    new = load_package(pkg.root)
    assert new.version == 2
    assert new.bitstream.name == "pcd_overlay.bit" and new.hwh.name == "pcd_overlay.hwh"
    assert new.bitstream.is_file() and new.hwh.is_file()
    assert new.manifest["overlay"]["wns_ns"] == 0.31
    assert "overlay/reports/utilization.rpt" in new.manifest["files"]
