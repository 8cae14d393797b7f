// pynq-codesign: 2x2 max-pool stage, stride 2 (odd edge rows/columns are dropped).
//
// One beat (PCD_LANES channels, the pixel padded as on the wire) per cycle, ONE
// pipelined loop over rows x columns x beats of a pixel. An even column's beat waits in
// the pixel buffer; the odd column takes the pair's maximum, which an even row leaves in
// the row buffer (one word per beat of a pixel pair) and an odd row combines with it and
// emits: one read of the input stream, at most one write of the output stream and one
// access per buffer each iteration. Padding lanes are zero in and zero out.
#ifndef PCD_POOL_H
#define PCD_POOL_H

#include "buffers.h"
#include "stream_io.h"

typedef fword<PCD_LANES>::t pool_word;

inline pool_word pool_max(const pool_word& a, const beat_t& b) {
#pragma HLS INLINE
  pool_word m = 0;
  for (int k = 0; k < PCD_LANES; k++) {
#pragma HLS UNROLL
    const feat_t x = word_get<PCD_LANES>(a, k), y = lane_get(b, k);
    word_set<PCD_LANES>(m, k, x > y ? x : y);
  }
  return m;
}

inline pool_word pool_word_of(const beat_t& b) {
#pragma HLS INLINE
  pool_word w = 0;
  for (int k = 0; k < PCD_LANES; k++) {
#pragma HLS UNROLL
    word_set<PCD_LANES>(w, k, lane_get(b, k));
  }
  return w;
}

template <int ROW_WORDS, int HOLD_WORDS>
void pool_stage(beat_stream& in, beat_stream& out, const SlotConfig cfg,
                pool_word rowbuf[ROW_WORDS], pool_word hold[HOLD_WORDS]) {
  if (!cfg.active) {
    bypass(in, out, cfg.in_beats);
    return;
  }
  const int pb = pixel_beats(cfg.in_c);
  const int ys = 2 * cfg.out_h, xs = 2 * cfg.out_w;
  const long total = (long)cfg.in_h * cfg.in_w * pb;
  int b = 0, x = 0, y = 0, a = 0;   // a: row-buffer word of the pixel pair's beat b
  PCD_LOOP(POOL_MAP, 3);
POOL_MAP:
  for (long i = 0; i < total; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_TRIP_MAP_BEATS
    PCD_ITER(POOL_MAP);
    const beat_t v = in.read();
    if (y < ys && x < xs) {
      if (!(x & 1)) {
        pcd_wr<1>(hold, b, pool_word_of(v));
      } else {
        const pool_word m = pool_max(pcd_rd<1>(hold, b), v);
        if (!(y & 1)) {
          pcd_wr<1>(rowbuf, a + b, m);
        } else {
          const pool_word o = pcd_rd<1>(rowbuf, a + b);
          beat_t r = 0;
          for (int k = 0; k < PCD_LANES; k++) {
#pragma HLS UNROLL
            const feat_t p = word_get<PCD_LANES>(o, k), q = word_get<PCD_LANES>(m, k);
            lane_set(r, k, p > q ? p : q);
          }
          out.write(r);
        }
      }
    }
    if (++b == pb) {
      b = 0;
      if (x & 1) a += pb;
      if (++x == cfg.in_w) {
        x = 0;
        a = 0;
        y++;
      }
    }
  }
}

#endif  // PCD_POOL_H
