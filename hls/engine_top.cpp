// pynq-codesign: the bundle engine's top function.
//
// One invocation runs one pass (pynq_codesign.design.plan_passes): up to one layer per
// stage slot of the overlay's chain, in chain order, unused slots bypassed. The
// descriptor is read first (two m_axi bursts: header, then the layer entries) and
// turned into one SlotConfig per stage and a fetch plan (each dataflow process gets its
// own scalars); then a DATAFLOW region runs the parameter
// fetch (the only m_axi reader there), the input stream, every stage of the chain and
// the output stream concurrently, connected by FIFOs: the stages work on consecutive
// row bands at once. The chain itself (which stage templates, their PE/SIMD, buffers and
// bindings) is generated from the design point into pcd_config.h.
#include "engine.h"

static void run_pass(axis_stream& in, axis_stream& out, const beat_t* params,
                     const FetchPlan plan, int in_beats, int out_beats, PCD_SLOT_PARAMS) {
#pragma HLS DATAFLOW
  beat_stream chain[PCD_N_STAGES + 1];
#pragma HLS STREAM variable=chain depth=PCD_FIFO_DEPTH
  beat_stream wparams[PCD_N_PARAM_STREAMS];
#pragma HLS STREAM variable=wparams depth=PCD_PARAM_FIFO_DEPTH
  fetch_params(params, plan, wparams);
  read_input(in, chain[0], in_beats);
  PCD_STAGE_CHAIN(chain, wparams)
  write_output(chain[PCD_N_STAGES], out, out_beats);
}

void pcd_engine(axis_stream& in_stream, axis_stream& out_stream, const beat_t* params,
                unsigned desc_offset, unsigned& hw_id, unsigned& status) {
#pragma HLS INTERFACE mode=axis port=in_stream register_mode=both
#pragma HLS INTERFACE mode=axis port=out_stream register_mode=both
#pragma HLS INTERFACE mode=m_axi port=params offset=slave bundle=gmem depth=PCD_COSIM_PARAM_BEATS max_read_burst_length=256 num_read_outstanding=4 max_widen_bitwidth=64
#pragma HLS INTERFACE mode=s_axilite port=params bundle=control
#pragma HLS INTERFACE mode=s_axilite port=desc_offset bundle=control
#pragma HLS INTERFACE mode=s_axilite port=hw_id bundle=control
#pragma HLS INTERFACE mode=s_axilite port=status bundle=control
#pragma HLS INTERFACE mode=s_axilite port=return bundle=control
  hw_id = PCD_HW_ID;
  PassConfig cfg;
  load_descriptor(params, (int)desc_offset, cfg);
  status = (unsigned)cfg.status;
  if (cfg.status != STATUS_OK || cfg.n_layers == 0) return;
  run_pass(in_stream, out_stream, params, make_plan(cfg), cfg.in_beats, cfg.out_beats,
           PCD_SLOT_ARGS(cfg));
}
