# pynq-codesign: the PYNQ-Z1 overlay around the bundle engine (Vivado 2024.1).
#
#   vivado -mode batch -source build_overlay.tcl     (in the build project's overlay/ folder)
#
# Block design: Zynq-7000 PS7 (xc7z020clg400-1) with FCLK0 at the overlay's clock, M_AXI_GP0
# for the control registers, two 64-bit high-performance ports into DDR (HP0: the AXI DMA,
# HP1: the engine's m_axi parameter reads); an AXI DMA in simple mode (no scatter-gather)
# with 26-bit length registers (the default 14 bits cap a transfer at 16 KB) and 64-bit
# streams; the engine IP exported by run_hls.tcl. Then synthesis, implementation and the
# bitstream; utilisation and timing reports; the flow fails on negative slack. The .bit and
# the .hwh are copied, with the same base name, from wherever Vivado wrote them into
# $pcd_out_dir. config.tcl (written by `codesign build-overlay`) sets pcd_part,
# pcd_clock_mhz, pcd_ip_repo (the folder run_hls.tcl exported the IP zip into), the engine's
# VLNV (pcd_ip_vendor, pcd_ip_library, pcd_ip_name, pcd_ip_version), pcd_out_dir, pcd_name
# and pcd_required_version.

set here [file dirname [file normalize [info script]]]
source [file join $here config.tcl]

# --- tool version
if {[version -short] ne $pcd_required_version} {
  error "pynq-codesign: Vivado $pcd_required_version is required, this is [version -short]"
}
set ip_zip [file join $pcd_ip_repo $pcd_ip_name.zip]
if {![file isfile $ip_zip]} {
  error "pynq-codesign: no exported HLS IP $ip_zip; run the Vitis HLS step (run_hls.tcl) first"
}

set proj_dir [file join $here vivado]
create_project -force pcd_overlay $proj_dir -part $pcd_part
# The catalog reads unpacked IP (component.xml): point the project at a repository of its
# own and let Vivado unpack the exported zip into it.
set ip_catalog [file join $proj_dir ip_repo]
file mkdir $ip_catalog
set_property ip_repo_paths [list $ip_catalog] [current_project]
update_ip_catalog -rebuild
update_ip_catalog -add_ip $ip_zip -repo_path $ip_catalog
update_ip_catalog -rebuild
set engine_vlnv $pcd_ip_vendor:$pcd_ip_library:$pcd_ip_name:$pcd_ip_version
create_bd_design $pcd_name

# --- Zynq PS7: PYNQ-Z1 DDR3 (16-bit), 50 MHz PS clock, GP0 master, HP0/HP1 64-bit slaves
set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7:5.5 ps7]
set_property -dict [list \
  CONFIG.PCW_CRYSTAL_PERIPHERAL_FREQMHZ {50} \
  CONFIG.PCW_UIPARAM_DDR_PARTNO {MT41K256M16 RE-125} \
  CONFIG.PCW_UIPARAM_DDR_BUS_WIDTH {16 Bit} \
  CONFIG.PCW_USE_M_AXI_GP0 {1} \
  CONFIG.PCW_USE_S_AXI_HP0 {1} CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {64} \
  CONFIG.PCW_USE_S_AXI_HP1 {1} CONFIG.PCW_S_AXI_HP1_DATA_WIDTH {64} \
  CONFIG.PCW_EN_CLK0_PORT {1} \
  CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $pcd_clock_mhz \
  CONFIG.PCW_USE_FABRIC_INTERRUPT {0} \
] $ps
apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
  -config {make_external "FIXED_IO, DDR" apply_board_preset "0" Master "Disable" Slave "Disable"} $ps

# --- AXI DMA: simple mode, 26-bit lengths, 64-bit memory maps and streams
set dma [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma:7.1 axi_dma]
set_property -dict [list \
  CONFIG.c_include_sg {0} \
  CONFIG.c_sg_length_width {26} \
  CONFIG.c_m_axi_mm2s_data_width {64} CONFIG.c_m_axis_mm2s_tdata_width {64} \
  CONFIG.c_m_axi_s2mm_data_width {64} CONFIG.c_s_axis_s2mm_tdata_width {64} \
  CONFIG.c_mm2s_burst_size {64} CONFIG.c_s2mm_burst_size {64} \
] $dma

# --- the bundle engine (exported by run_hls.tcl)
if {[llength [get_ipdefs $engine_vlnv]] == 0} {
  error "pynq-codesign: $engine_vlnv is not in the IP catalog after adding $ip_zip"
}
set engine [create_bd_cell -type ip -vlnv $engine_vlnv pcd_engine]

# --- streams: DMA MM2S -> engine -> DMA S2MM
connect_bd_intf_net [get_bd_intf_pins axi_dma/M_AXIS_MM2S] [get_bd_intf_pins pcd_engine/in_stream]
connect_bd_intf_net [get_bd_intf_pins pcd_engine/out_stream] [get_bd_intf_pins axi_dma/S_AXIS_S2MM]

# --- memory maps and interconnects (clocked by FCLK0)
set clk /ps7/FCLK_CLK0
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
  -config [list Master /ps7/M_AXI_GP0 Clk_master $clk Clk_slave $clk Clk_xbar $clk] \
  [get_bd_intf_pins axi_dma/S_AXI_LITE]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
  -config [list Master /ps7/M_AXI_GP0 Clk_master $clk Clk_slave $clk Clk_xbar $clk] \
  [get_bd_intf_pins pcd_engine/s_axi_control]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
  -config [list Slave /ps7/S_AXI_HP0 Clk_master $clk Clk_slave $clk Clk_xbar $clk] \
  [get_bd_intf_pins axi_dma/M_AXI_MM2S]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
  -config [list Slave /ps7/S_AXI_HP0 Clk_master $clk Clk_slave $clk Clk_xbar $clk] \
  [get_bd_intf_pins axi_dma/M_AXI_S2MM]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
  -config [list Slave /ps7/S_AXI_HP1 Clk_master $clk Clk_slave $clk Clk_xbar $clk] \
  [get_bd_intf_pins pcd_engine/m_axi_gmem]
assign_bd_address
validate_bd_design
save_bd_design

# --- synthesis, implementation, bitstream
set bd_file [get_files $pcd_name.bd]
generate_target all $bd_file
set wrapper [make_wrapper -files $bd_file -top]
add_files -norecurse $wrapper
set_property top ${pcd_name}_wrapper [current_fileset]
update_compile_order -fileset sources_1
launch_runs impl_1 -to_step write_bitstream -jobs 4
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} {
  error "pynq-codesign: implementation did not finish: [get_property STATUS [get_runs impl_1]]"
}

# --- reports; negative slack fails the build
open_run impl_1
set rpt_dir [file join $pcd_out_dir reports]
file mkdir $rpt_dir
report_utilization -file [file join $rpt_dir utilization.rpt]
report_utilization -hierarchical -file [file join $rpt_dir utilization_hier.rpt]
report_timing_summary -max_paths 10 -file [file join $rpt_dir timing_summary.rpt]
set wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
set whs [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -hold]]
set fh [open [file join $rpt_dir timing.txt] w]
puts $fh "wns_ns $wns"
puts $fh "whs_ns $whs"
puts $fh "clock_mhz $pcd_clock_mhz"
close $fh
if {$wns eq "" || $wns < 0 || $whs eq "" || $whs < 0} {
  error "pynq-codesign: timing not met at $pcd_clock_mhz MHz (WNS $wns ns, WHS $whs ns); lower the overlay clock or the parallelism"
}

# --- copy the bitstream and the hardware hand-off, same base name, from where Vivado put them
proc pcd_find {dir pattern} {
  set hits [glob -nocomplain -directory $dir -types f $pattern]
  foreach sub [glob -nocomplain -directory $dir -types d *] {
    set hits [concat $hits [pcd_find $sub $pattern]]
  }
  return $hits
}
proc pcd_newest {files what} {
  if {[llength $files] == 0} { error "pynq-codesign: Vivado wrote no $what" }
  set best [lindex $files 0]
  foreach f $files { if {[file mtime $f] > [file mtime $best]} { set best $f } }
  return $best
}
set bit [pcd_newest [pcd_find [get_property DIRECTORY [get_runs impl_1]] *.bit] "bitstream (.bit)"]
set hwh [pcd_newest [pcd_find $proj_dir $pcd_name.hwh] "hardware hand-off ($pcd_name.hwh)"]
file mkdir $pcd_out_dir
file copy -force $bit [file join $pcd_out_dir $pcd_name.bit]
file copy -force $hwh [file join $pcd_out_dir $pcd_name.hwh]
puts "pynq-codesign: wrote [file join $pcd_out_dir $pcd_name.bit] and $pcd_name.hwh (WNS $wns ns)"
