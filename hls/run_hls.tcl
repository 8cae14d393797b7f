# pynq-codesign: Vitis HLS flow of the bundle engine.
#
#   vitis_hls -f run_hls.tcl          (in the build project's hls/ folder)
#
# Checks the tool version (2024.1), then: C simulation of tb/engine_tb.cpp on the
# package's golden vectors (tb_data/: the real network, every pass), synthesis for the
# overlay's part and clock, C/RTL co-simulation of the same test bench on a tiny network
# on the same overlay (tb_cosim/: one layer on every stage, a 5 x 7 map; the RTL of a
# 160 x 360 network would simulate for hours), and export of the IP for Vivado (ip/). config.tcl, written by
# `codesign build-overlay`, sets pcd_part, pcd_clock_period_ns, pcd_ip_vendor,
# pcd_ip_library, pcd_ip_name, pcd_ip_version and pcd_required_version (the VLNV comes
# from pynq_codesign.wire: the board runtime looks the engine up by it in the .hwh). Any failure stops the flow with an error.

set here [file dirname [file normalize [info script]]]
source [file join $here config.tcl]

# --- tool version: Vitis HLS's settings script puts the version in XILINX_HLS
if {![info exists ::env(XILINX_HLS)] ||
    [string first $pcd_required_version $::env(XILINX_HLS)] < 0} {
  set found [expr {[info exists ::env(XILINX_HLS)] ? $::env(XILINX_HLS) : "(XILINX_HLS unset)"}]
  error "pynq-codesign: Vitis HLS $pcd_required_version is required, found $found"
}

foreach f {engine_top.cpp engine.h pcd_config.h tb/engine_tb.cpp tb_data/params.bin \
           tb_data/passes.txt tb_data/vectors.txt tb_cosim/params.bin tb_cosim/passes.txt \
           tb_cosim/vectors.txt} {
  if {![file exists [file join $here $f]]} {
    error "pynq-codesign: missing $f in $here; run `codesign build-overlay` again"
  }
}

set cflags "-std=c++14 -I$here"
open_project -reset pcd_hls
set_top pcd_engine
add_files [file join $here engine_top.cpp] -cflags $cflags
add_files -tb [file join $here tb engine_tb.cpp] -cflags $cflags
add_files -tb [file join $here tb_data]
add_files -tb [file join $here tb_cosim]
open_solution -reset sol1 -flow_target vivado
set_part $pcd_part
create_clock -period $pcd_clock_period_ns -name default
config_interface -m_axi_addr64=true
config_export -format ip_catalog -rtl verilog -vendor $pcd_ip_vendor -library $pcd_ip_library \
  -ipname $pcd_ip_name -version $pcd_ip_version -display_name "pynq-codesign bundle engine" \
  -output [file join $here ip $pcd_ip_name.zip]

csim_design -argv tb_data
csynth_design
cosim_design -argv tb_cosim -rtl verilog -trace_level none
export_design
exit
