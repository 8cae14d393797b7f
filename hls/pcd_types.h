// pynq-codesign: datapath types and the per-pass configuration of the bundle engine.
//
// Every width comes from the generated overlay header (pcd_config.h, PCD_* constants);
// nothing here is an overlay parameter of its own.
#ifndef PCD_TYPES_H
#define PCD_TYPES_H

#ifndef PCD_CONFIG_H
#error "include the generated pcd_config.h, not pcd_types.h directly"
#endif

#include <ap_int.h>
#include <hls_stream.h>

#include "audit.h"

// One 64-bit beat: PCD_LANES feature codes (channels innermost), or raw parameter bytes.
typedef ap_uint<64> beat_t;
typedef hls::stream<beat_t> beat_stream;

typedef ap_int<PCD_FEATURE_BITS> feat_t;   // a feature code (the datapath width)
typedef ap_int<PCD_WEIGHT_BITS> wgt_t;     // a weight code
typedef ap_int<PCD_BIAS_BITS> bias_t;      // a bias at the accumulator's scale
typedef ap_int<PCD_ACC_BITS> acc_t;        // the accumulator (a DSP48's P register)
typedef ap_int<64> wide_t;                 // requantiser input: acc, relu6 limit (int64)

static const int ELEM_BITS = 8 * PCD_FEATURE_BYTES;   // bits of a lane on the wire
static const int WCONT_BITS = 8 * PCD_WEIGHT_BYTES;   // bits of a weight's container

// Layer type and activation ids (pynq_codesign.wire.LAYER_TYPE_ID / ACTIVATION_ID).
enum { KIND_DW = PCD_KIND_DW, KIND_PW = PCD_KIND_PW, KIND_CONV3 = PCD_KIND_CONV3,
       KIND_POOL = PCD_KIND_POOL };
enum { ACT_NONE = PCD_ACT_NONE, ACT_RELU = PCD_ACT_RELU, ACT_RELU6 = PCD_ACT_RELU6 };

// What a descriptor says about one stage slot for this pass.
struct SlotConfig {
  bool active;        // false: the slot is bypassed (beats copied through)
  int kind;           // layer type id (equals the slot's kind when active)
  int in_c, in_h, in_w;
  int out_c, out_h, out_w;
  int stride;
  int act;
  int shift;          // requantiser right shift (<= 0: left shift)
  int out_min, out_max;
  int weight_offset;  // byte offsets into the parameter buffer (-1: none)
  int bias_offset;
  wide_t relu6;       // 6.0 at the accumulator's scale
  int in_beats;       // beats entering the slot (also what a bypass copies)
};

// Status codes of the engine's status register (pynq_codesign.wire.STATUS).
enum { STATUS_OK = 0, STATUS_BAD_MAGIC = 1, STATUS_BAD_CHAIN = 2, STATUS_TOO_BIG = 3 };

// What the parameter fetch reads in one pass, per stage (0 beats: nothing).
struct FetchPlan {
  int woff[PCD_N_STAGES], wbeats[PCD_N_STAGES];
  int boff[PCD_N_STAGES], bbeats[PCD_N_STAGES];
};

struct PassConfig {
  int status;
  int n_layers;
  int in_beats;       // beats of the input transfer
  int out_beats;      // beats of the output transfer
  SlotConfig slot[PCD_N_STAGES];
};

// A word of R feature codes side by side (code r in bits r*FB .. r*FB+FB-1): what the
// stage memories store and the streams inside a stage carry (one fold of a pixel).
template <int R>
struct fword {
  typedef ap_uint<R * PCD_FEATURE_BITS> t;
  typedef hls::stream<t> stream;
};

template <int R>
inline feat_t word_get(const typename fword<R>::t& w, int r) {
#pragma HLS INLINE
  ap_int<PCD_FEATURE_BITS> v = w.range(r * PCD_FEATURE_BITS + PCD_FEATURE_BITS - 1,
                                       r * PCD_FEATURE_BITS);
  return feat_t(v);
}

template <int R>
inline void word_set(typename fword<R>::t& w, int r, const feat_t& v) {
#pragma HLS INLINE
  w.range(r * PCD_FEATURE_BITS + PCD_FEATURE_BITS - 1, r * PCD_FEATURE_BITS) =
      ap_uint<PCD_FEATURE_BITS>(v);
}

// Words of one pixel with c channels in words of R codes (channels padded to R).
template <int R>
inline int pixel_words(int c) { return (c + R - 1) / R; }

// Beats of one pixel with c channels (channels padded to whole beats).
inline int pixel_beats(int c) { return (c + PCD_LANES - 1) / PCD_LANES; }

// Lane k of a feature beat as a feature code (the lane is a sign-extended container).
inline feat_t lane_get(const beat_t& b, int k) {
  ap_int<ELEM_BITS> v = b.range(k * ELEM_BITS + ELEM_BITS - 1, k * ELEM_BITS);
  return feat_t(v);
}

// Write a feature code into lane k of a beat (sign-extended to the container).
inline void lane_set(beat_t& b, int k, const feat_t& v) {
  ap_int<ELEM_BITS> e = v;
  b.range(k * ELEM_BITS + ELEM_BITS - 1, k * ELEM_BITS) = ap_uint<ELEM_BITS>(e);
}

#endif  // PCD_TYPES_H
