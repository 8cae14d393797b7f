// pynq-codesign: the engine's edges: AXI4-Stream in/out, bypass, parameter fetch.
#ifndef PCD_STREAM_IO_H
#define PCD_STREAM_IO_H

#include "pcd_axis.h"
#include "descriptor.h"
#include "pcd_types.h"

// Input transfer -> beat chain. Reads exactly n beats (the DMA's TLAST is not needed).
inline void read_input(axis_stream& in, beat_stream& out, int n) {
  PCD_PROCESS("read_input");
  PCD_LOOP(READ_INPUT, 2);
READ_INPUT:
  for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_TRIP_MAP_BEATS
    PCD_ITER(READ_INPUT);
    pcd_axis_beat b = in.read();
    out.write(b.data);
  }
}

// Beat chain -> output transfer: TKEEP/TSTRB all ones, TLAST on the last beat only.
inline void write_output(beat_stream& in, axis_stream& out, int n) {
  PCD_PROCESS("write_output");
  PCD_LOOP(WRITE_OUTPUT, 2);
WRITE_OUTPUT:
  for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_TRIP_MAP_BEATS
    PCD_ITER(WRITE_OUTPUT);
    pcd_axis_beat b;
    b.data = in.read();
    b.keep = -1;
    b.strb = -1;
    b.last = (i == n - 1) ? 1 : 0;
    out.write(b);
  }
}

// A bypassed stage slot: beats straight through.
inline void bypass(beat_stream& in, beat_stream& out, int n) {
  PCD_LOOP(BYPASS, 2);
BYPASS:
  for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_TRIP_MAP_BEATS
    PCD_ITER(BYPASS);
    out.write(in.read());
  }
}

// Burst-read `n` beats from byte offset `off` of the parameter buffer into a stream.
inline void fetch_beats(const beat_t* params, int off, int n, beat_stream& out) {
  const beat_t* src = params + off / 8;
  PCD_LOOP(FETCH_BEATS, 2);
FETCH_BEATS:
  for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_TRIP_WEIGHT_BEATS
    PCD_ITER(FETCH_BEATS);
    out.write(src[i]);
  }
}

// The one reader of the m_axi port inside the dataflow region: each active convolution
// slot gets its weights, then its biases, in the buffer's own order (natural order), on
// its own parameter stream (PCD_STAGE_PARAM_STREAM maps a slot to its stream). The plan
// (offsets and beat counts, computed before the region: descriptor.h) is this process's
// own; no other process reads it.
inline void fetch_params(const beat_t* params, const FetchPlan plan,
                         beat_stream wparams[PCD_N_PARAM_STREAMS]) {
  PCD_PROCESS("fetch_params");
  static const int stream_of[PCD_N_STAGES] = PCD_STAGE_PARAM_STREAM;
FETCH_SLOTS:
  for (int k = 0; k < PCD_N_STAGES; k++) {
#pragma HLS UNROLL
    if (stream_of[k] < 0 || plan.wbeats[k] == 0) continue;
    fetch_beats(params, plan.woff[k], plan.wbeats[k], wparams[stream_of[k]]);
    fetch_beats(params, plan.boff[k], plan.bbeats[k], wparams[stream_of[k]]);
  }
}

// Unpacks a stream of parameter beats into weight codes (natural order) and biases.
class ParamReader {
 public:
  explicit ParamReader(beat_stream& s) : s_(s), lane_(0) {}
  wgt_t weight() {
#pragma HLS INLINE
    if (lane_ == 0) cur_ = s_.read();
    ap_int<WCONT_BITS> v = cur_.range(lane_ * WCONT_BITS + WCONT_BITS - 1, lane_ * WCONT_BITS);
    lane_ = (lane_ + 1 == 64 / WCONT_BITS) ? 0 : lane_ + 1;
    return wgt_t(v);
  }
  ap_int<32> bias() {
#pragma HLS INLINE
    if (lane_ == 0) cur_ = s_.read();
    ap_int<32> v = cur_.range(lane_ * 32 + 31, lane_ * 32);
    lane_ = (lane_ == 1) ? 0 : 1;
    return v;
  }
  void align() { lane_ = 0; }   // the next section starts on a new beat
 private:
  beat_stream& s_;
  beat_t cur_;
  int lane_;
};

#endif  // PCD_STREAM_IO_H
