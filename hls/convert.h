// pynq-codesign: width converters between the beat stream and a stage's words.
//
// Between stages the map travels as 64-bit beats of PCD_LANES codes, each pixel padded
// to whole beats (the wire format). A convolution stage reads R channels of a pixel per
// cycle (R = PE for dw, SIMD for pw / conv3), so it stores and streams *words* of R
// codes, each pixel padded to whole words: then every memory access is one whole,
// aligned word (finn-hlslib's StreamingDataWidthConverter plays this part there).
// unpack_words turns beats into words, pack_words turns a stage's output words (R = PE
// codes) back into beats. Each runs as its own process of the stage's dataflow region,
// one pipelined loop, at most one read and one write per iteration: per pixel about
// max(beats, words) iterations.
#ifndef PCD_CONVERT_H
#define PCD_CONVERT_H

#include "pcd_types.h"

// Beats (pixels of c channels padded to PCD_LANES) -> words of R codes (padded to R).
template <int R>
void unpack_words(beat_stream& in, typename fword<R>::stream& out, int pixels, int c) {
  PCD_SUBPROCESS("unpack");
  const int pb = pixel_beats(c), cw = pixel_words<R>(c);
  feat_t buf[R + PCD_LANES];   // codes read but not yet sent (registers)
#pragma HLS ARRAY_PARTITION variable=buf complete
  int have = 0, beats_in = 0, words_out = 0, px = 0;
  PCD_LOOP(UNPACK, 2);
UNPACK:
  while (px < pixels) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_TRIP_MAP_BEATS
    PCD_ITER(UNPACK);
    if (have < R && beats_in < pb) {
      const beat_t b = in.read();
      const int valid = c - beats_in * PCD_LANES < PCD_LANES ? c - beats_in * PCD_LANES
                                                              : PCD_LANES;
      for (int k = 0; k < PCD_LANES; k++) {
#pragma HLS UNROLL
        if (k < valid) buf[have + k] = lane_get(b, k);
      }
      have += valid;
      beats_in++;
    }
    if (have >= R || beats_in == pb) {
      typename fword<R>::t w = 0;
      for (int r = 0; r < R; r++) {
#pragma HLS UNROLL
        if (r < have) word_set<R>(w, r, buf[r]);
      }
      out.write(w);
      const int sent = have < R ? have : R;
      for (int i = 0; i < PCD_LANES; i++) {
#pragma HLS UNROLL
        buf[i] = buf[i + R];
      }
      have -= sent;
      if (++words_out == cw) {
        px++;
        words_out = beats_in = have = 0;
      }
    }
  }
}

// Words of R codes (pixels of c channels padded to R) -> beats (padded to PCD_LANES).
template <int R>
void pack_words(typename fword<R>::stream& in, beat_stream& out, int pixels, int c) {
  PCD_SUBPROCESS("pack");
  const int pb = pixel_beats(c), cw = pixel_words<R>(c);
  feat_t buf[R + PCD_LANES];
#pragma HLS ARRAY_PARTITION variable=buf complete
  int have = 0, words_in = 0, beats_out = 0, px = 0;
  PCD_LOOP(PACK, 2);
PACK:
  while (px < pixels) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_TRIP_MAP_BEATS
    PCD_ITER(PACK);
    if (have < PCD_LANES && words_in < cw) {
      const typename fword<R>::t w = in.read();
      const int valid = c - words_in * R < R ? c - words_in * R : R;
      for (int r = 0; r < R; r++) {
#pragma HLS UNROLL
        if (r < valid) buf[have + r] = word_get<R>(w, r);
      }
      have += valid;
      words_in++;
    }
    if (have >= PCD_LANES || words_in == cw) {
      beat_t b = 0;
      for (int k = 0; k < PCD_LANES; k++) {
#pragma HLS UNROLL
        if (k < have) lane_set(b, k, buf[k]);
      }
      out.write(b);
      const int sent = have < PCD_LANES ? have : PCD_LANES;
      for (int i = 0; i < R; i++) {
#pragma HLS UNROLL
        buf[i] = buf[i + PCD_LANES];
      }
      have -= sent;
      if (++beats_out == pb) {
        px++;
        beats_out = words_in = have = 0;
      }
    }
  }
}

#endif  // PCD_CONVERT_H
