// pynq-codesign: reading a pass descriptor (pynq_codesign.wire) into a PassConfig.
//
// The descriptor is int32 words at params + desc_offset: a header (PCD_HEADER_WORDS) then
// one entry of PCD_LAYER_WORDS per layer; field positions are generated from
// wire.HEADER_FIELDS / wire.LAYER_FIELDS (PCD_H_* / PCD_L_*). Each entry names its stage
// slot; slots no entry names are bypassed. Anything the overlay cannot run leaves a
// status other than STATUS_OK and the engine then touches no stream.
#ifndef PCD_DESCRIPTOR_H
#define PCD_DESCRIPTOR_H

#include "pcd_types.h"

// Word `i` (int32) of a descriptor copied on chip (beats of two words, little-endian).
inline int desc_word(const beat_t desc[PCD_DESC_BEATS], int i) {
#pragma HLS INLINE
  beat_t b = desc[i / 2];
  ap_int<32> w = (i % 2) ? b.range(63, 32) : b.range(31, 0);
  return w.to_int();
}

// Beats [first, first + n) of the descriptor at byte `off` onto the chip: one m_axi burst.
inline void read_desc_beats(const beat_t* params, int off, beat_t desc[PCD_DESC_BEATS],
                            int first, int n) {
  const beat_t* src = params + off / 8;
  PCD_LOOP(DESC_BURST, 2);
DESC_BURST:
  for (int i = first; i < first + n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_DESC_BEATS
    PCD_ITER(DESC_BURST);
    desc[i] = src[i];
  }
}

inline int stage_kind(int k) {
  static const int kinds[PCD_N_STAGES] = PCD_STAGE_KINDS;
  return kinds[k];
}

inline int stage_max_weights(int k) {
  static const int maxw[PCD_N_STAGES] = PCD_STAGE_MAX_WEIGHTS;
  return maxw[k];
}

// Words of the folded weight memory a layer takes (see pwconv.h / conv3.h / dwconv.h).
inline long long weight_words(const SlotConfig& s, int k) {
  static const int pe[PCD_N_STAGES] = PCD_STAGE_PE;
  static const int simd[PCD_N_STAGES] = PCD_STAGE_SIMD;
  long long ocf = (s.out_c + pe[k] - 1) / pe[k];
  if (s.kind == KIND_DW) return ocf;
  if (s.kind == KIND_POOL) return 0;
  return ocf * ((s.in_c + simd[k] - 1) / simd[k]);
}

// Elements of one input row the stage's line / band / row buffer holds.
inline long long stage_row_elems(int k) {
  static const int rows[PCD_N_STAGES] = PCD_STAGE_ROW_ELEMS;
  return rows[k];
}

// Codes per word of the stage's memories (pixels padded to whole words).
inline int stage_word_lanes(int k) {
  static const int lanes[PCD_N_STAGES] = PCD_STAGE_WORD_LANES;
  return lanes[k];
}

inline int stage_weight_words(int k) {
  static const int words[PCD_N_STAGES] = PCD_STAGE_WEIGHT_WORDS;
  return words[k];
}

// Weights of the layer a slot runs (natural order, pynq_codesign.design.layer_weights).
inline long long layer_weights(const SlotConfig& s) {
  if (s.kind == KIND_DW) return 9LL * s.in_c;
  if (s.kind == KIND_PW) return (long long)s.in_c * s.out_c;
  if (s.kind == KIND_CONV3) return 9LL * s.in_c * s.out_c;
  return 0;
}

// The output shape a layer of this kind gives (design.Network.shapes).
inline bool output_shape_ok(const SlotConfig& s) {
  if (s.kind == KIND_POOL)
    return s.out_c == s.in_c && s.out_h == s.in_h / 2 && s.out_w == s.in_w / 2;
  if (s.kind == KIND_PW) return s.out_h == s.in_h && s.out_w == s.in_w;
  bool hw = s.out_h == (s.in_h - 1) / s.stride + 1 && s.out_w == (s.in_w - 1) / s.stride + 1;
  return s.kind == KIND_DW ? (hw && s.out_c == s.in_c) : hw;
}

inline bool shape_fits(int c, int h, int w) {
  return c >= 1 && h >= 1 && w >= 1 && c <= PCD_MAX_CHANNELS && w <= PCD_MAX_WIDTH &&
         (long long)w * c <= PCD_MAX_ROW_ELEMS;
}

inline void load_descriptor(const beat_t* params, int off, PassConfig& cfg) {
  cfg.status = STATUS_OK;
  for (int k = 0; k < PCD_N_STAGES; k++) {
#pragma HLS UNROLL
    cfg.slot[k].active = false;
  }
  beat_t desc[PCD_DESC_BEATS];
  const int head_beats = (PCD_HEADER_WORDS + 1) / 2;
  if (off % 8 != 0) {
    cfg.status = STATUS_BAD_MAGIC;
    cfg.n_layers = 0;
    return;
  }
  read_desc_beats(params, off, desc, 0, head_beats);
  unsigned magic = (unsigned)desc_word(desc, PCD_H_MAGIC);
  cfg.n_layers = desc_word(desc, PCD_H_N_LAYERS);
  if (magic != PCD_DESC_MAGIC || off % 8 != 0 || cfg.n_layers < 0 ||
      cfg.n_layers > PCD_N_STAGES) {
    cfg.status = STATUS_BAD_MAGIC;
    cfg.n_layers = 0;
    return;
  }
  int c = desc_word(desc, PCD_H_IN_C), h = desc_word(desc, PCD_H_IN_H),
      w = desc_word(desc, PCD_H_IN_W);
  int oc = desc_word(desc, PCD_H_OUT_C), oh = desc_word(desc, PCD_H_OUT_H),
      ow = desc_word(desc, PCD_H_OUT_W);
  if (cfg.n_layers == 0) return;   // a probe: sets hw_id, moves nothing
  read_desc_beats(params, off, desc, head_beats,
                  (PCD_HEADER_WORDS + cfg.n_layers * PCD_LAYER_WORDS + 1) / 2 - head_beats);
  if (!shape_fits(c, h, w) || !shape_fits(oc, oh, ow)) {
    cfg.status = STATUS_TOO_BIG;
    return;
  }
  cfg.in_beats = h * w * pixel_beats(c);
  cfg.out_beats = oh * ow * pixel_beats(oc);

  int last_slot = -1;
LOAD_ENTRIES:
  for (int i = 0; i < cfg.n_layers; i++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_N_STAGES
    int e = PCD_HEADER_WORDS + i * PCD_LAYER_WORDS;
    int k = desc_word(desc, e + PCD_L_SLOT);
    if (k <= last_slot || k >= PCD_N_STAGES) {   // slots in chain order, each once
      cfg.status = STATUS_BAD_CHAIN;
      return;
    }
    last_slot = k;
    SlotConfig& s = cfg.slot[k];
    s.active = true;
    s.kind = desc_word(desc, e + PCD_L_TYPE);
    s.in_c = desc_word(desc, e + PCD_L_IN_C);
    s.in_h = desc_word(desc, e + PCD_L_IN_H);
    s.in_w = desc_word(desc, e + PCD_L_IN_W);
    s.out_c = desc_word(desc, e + PCD_L_OUT_C);
    s.out_h = desc_word(desc, e + PCD_L_OUT_H);
    s.out_w = desc_word(desc, e + PCD_L_OUT_W);
    s.stride = desc_word(desc, e + PCD_L_STRIDE);
    s.act = desc_word(desc, e + PCD_L_ACTIVATION);
    s.shift = desc_word(desc, e + PCD_L_SHIFT);
    s.out_min = desc_word(desc, e + PCD_L_OUT_MIN);
    s.out_max = desc_word(desc, e + PCD_L_OUT_MAX);
    s.weight_offset = desc_word(desc, e + PCD_L_WEIGHT_OFFSET);
    s.bias_offset = desc_word(desc, e + PCD_L_BIAS_OFFSET);
    ap_uint<32> lo = desc_word(desc, e + PCD_L_RELU6_LO);
    ap_uint<32> hi = desc_word(desc, e + PCD_L_RELU6_HI);
    s.relu6 = (wide_t(ap_int<32>(hi)) << 32) | wide_t(lo);
    if (s.kind != stage_kind(k) || s.stride < 1 || s.stride > 2 ||
        (s.kind != KIND_DW && s.kind != KIND_CONV3 && s.stride != 1) ||
        s.shift < -32 || s.shift > 62 || s.act < ACT_NONE || s.act > ACT_RELU6) {
      cfg.status = STATUS_BAD_CHAIN;
      return;
    }
    if (!shape_fits(s.in_c, s.in_h, s.in_w) || !shape_fits(s.out_c, s.out_h, s.out_w) ||
        (long long)s.in_w * ((s.in_c + stage_word_lanes(k) - 1) / stage_word_lanes(k)) *
                stage_word_lanes(k) > stage_row_elems(k) ||
        layer_weights(s) > stage_max_weights(k) || weight_words(s, k) > stage_weight_words(k)) {
      cfg.status = STATUS_TOO_BIG;
      return;
    }
    if (!output_shape_ok(s)) {
      cfg.status = STATUS_BAD_CHAIN;
      return;
    }
  }
  // The shape flowing into each slot; an entry must take what its predecessor gives.
  int cc = c, ch = h, cw = w;
  for (int k = 0; k < PCD_N_STAGES; k++) {
    SlotConfig& s = cfg.slot[k];
    if (!s.active) {
      s.kind = stage_kind(k);
      s.in_c = s.out_c = cc;
      s.in_h = s.out_h = ch;
      s.in_w = s.out_w = cw;
    } else if (s.in_c != cc || s.in_h != ch || s.in_w != cw) {
      cfg.status = STATUS_BAD_CHAIN;
      return;
    }
    s.in_beats = ch * cw * pixel_beats(cc);
    cc = s.out_c;
    ch = s.out_h;
    cw = s.out_w;
  }
  if (cc != oc || ch != oh || cw != ow) cfg.status = STATUS_BAD_CHAIN;
}

// What the parameter fetch reads in this pass: each active convolution's weights and
// biases (offsets and beats), computed once before the dataflow region.
inline FetchPlan make_plan(const PassConfig& cfg) {
  FetchPlan p;
  for (int k = 0; k < PCD_N_STAGES; k++) {
#pragma HLS UNROLL
    const SlotConfig& s = cfg.slot[k];
    const bool conv = s.active && s.kind != KIND_POOL;
    p.woff[k] = conv ? s.weight_offset : 0;
    p.boff[k] = conv ? s.bias_offset : 0;
    p.wbeats[k] = conv ? (int)((layer_weights(s) * PCD_WEIGHT_BYTES + 7) / 8) : 0;
    p.bbeats[k] = conv ? (s.out_c * 4 + 7) / 8 : 0;
  }
  return p;
}

#endif  // PCD_DESCRIPTOR_H
