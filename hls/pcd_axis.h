// pynq-codesign: the AXI4-Stream beat on the engine's two stream ports.
//
// Synthesis and Vitis C/RTL simulation use Vitis HLS's ap_axiu (ap_axi_sdata.h). The g++
// build of the C simulation (host_search/csim.py defines PCD_GXX_SIM) uses this small
// struct with the same member names, since hls4ml's Apache-2.0 ap_types folder has no
// ap_axi_sdata.h. Wire facts (docs/wire-format.md): 64-bit beats, TKEEP/TSTRB all ones,
// exactly one TLAST per transfer, on its last beat.
#ifndef PCD_AXIS_H
#define PCD_AXIS_H

#include <ap_int.h>

#ifdef PCD_GXX_SIM
struct pcd_axis_beat {
  ap_uint<64> data;
  ap_uint<8> keep;
  ap_uint<8> strb;
  ap_uint<1> last;
};
#else
#include <ap_axi_sdata.h>
typedef ap_axiu<64, 0, 0, 0> pcd_axis_beat;
#endif

#include <hls_stream.h>

typedef hls::stream<pcd_axis_beat> axis_stream;

#endif  // PCD_AXIS_H
