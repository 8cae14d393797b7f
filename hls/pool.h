// pynq-codesign: 2x2 max-pool stage, stride 2 (odd edge rows/columns are dropped).
//
// One beat (PCD_LANES channels) per cycle. Even input rows leave the horizontal pair
// maxima in the row buffer (element (x / 2) * C + c), odd rows finish and emit them.
#ifndef PCD_POOL_H
#define PCD_POOL_H

#include "buffers.h"
#include "stream_io.h"

template <int ROW_ELEMS>
void pool_stage(beat_stream& in, beat_stream& out, const SlotConfig cfg,
                feat_t rowbuf[ROW_ELEMS]) {
  if (!cfg.active) {
    bypass(in, out, cfg.in_beats);
    return;
  }
  const int c = cfg.in_c;
  const int pb = pixel_beats(c);
  BeatPacker packer;
POOL_ROWS:
  for (int y = 0; y < cfg.in_h; y++) {
#pragma HLS LOOP_TRIPCOUNT min=2 max=PCD_MAX_WIDTH
  POOL_COLS:
    for (int x = 0; x < cfg.in_w; x++) {
#pragma HLS LOOP_TRIPCOUNT min=2 max=PCD_MAX_WIDTH
      PCD_LOOP(POOL_BEATS, 3);
    POOL_BEATS:
      for (int b = 0; b < pb; b++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_PIXEL_BEATS
#pragma HLS PIPELINE II=1
        PCD_ITER(POOL_BEATS);
        beat_t v = in.read();
        if (y >= 2 * cfg.out_h || x >= 2 * cfg.out_w) continue;   // dropped edge
        const bool first = (y % 2 == 0) && (x % 2 == 0);
        const bool last = (y % 2 == 1) && (x % 2 == 1);
        for (int k = 0; k < PCD_LANES; k++) {
#pragma HLS UNROLL
          const int ch = b * PCD_LANES + k;
          if (ch < c) {
            const int i = (x / 2) * c + ch;
            feat_t cur = lane_get(v, k);
            feat_t old = pcd_rd<PCD_LANES>(rowbuf, i);
            feat_t m = (first || cur > old) ? cur : old;
            pcd_wr<PCD_LANES>(rowbuf, i, m);
            if (last) packer.put(out, m);
          }
        }
        if (last && b == pb - 1) packer.end_pixel(out);
      }
    }
  }
}

#endif  // PCD_POOL_H
