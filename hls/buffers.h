// pynq-codesign: the stage memories and the pixel packer.
//
// The buffers are the ones host_search/binding.py lists and the QoS model counts
// (docs/accelerator.md): the generated stage wrappers declare them with their
// BIND_STORAGE / ARRAY_PARTITION / ARRAY_RESHAPE directives; the kernels here only index
// them. Elements of a row are stored unpadded, channels innermost (x * C + c).
//
// * line buffer (dw, conv3): a ring of ROWS input rows (ROWS = 3 * ceil((2R + 2) / 3):
//   the R + 2 rows a band's 3x3 windows read plus the R rows of the next band), banked by
//   row mod 3 so that a window reads its three rows at once. Row y is in bank y % 3, row
//   slot (y / 3) % (ROWS / 3). Taps outside the map read as 0 (padding is never stored).
// * band buffer (pw): R rows, double-buffered (ping-pong halves by band parity).
// * row buffer (pool): one row of horizontal pair maxima.
#ifndef PCD_BUFFERS_H
#define PCD_BUFFERS_H

#include "pcd_types.h"

// Packs a pixel's output codes, channel by channel, into pixel-padded beats.
class BeatPacker {
 public:
  BeatPacker() : cur_(0), lane_(0) {}
  void put(beat_stream& out, const feat_t& v) {
#pragma HLS INLINE
    lane_set(cur_, lane_, v);
    if (++lane_ == PCD_LANES) {
      out.write(cur_);
      cur_ = 0;
      lane_ = 0;
    }
  }
  // End of a pixel: the partly filled beat goes out with zero padding lanes.
  void end_pixel(beat_stream& out) {
#pragma HLS INLINE
    if (lane_ != 0) {
      out.write(cur_);
      cur_ = 0;
      lane_ = 0;
    }
  }
 private:
  beat_t cur_;
  int lane_;
};

// Stores the lanes of beat `b` of a pixel (channels < c) at elements base + ch.
template <int N, int ML>
inline void store_lanes(feat_t mem[N], int base, const beat_t& beat, int b, int c) {
#pragma HLS INLINE
  for (int k = 0; k < PCD_LANES; k++) {
#pragma HLS UNROLL
    int ch = b * PCD_LANES + k;
    if (ch < c) pcd_wr<ML>(mem, base + ch, lane_get(beat, k));
  }
}

// Element offset of row y's slot inside its bank of a ring of ROWS rows.
template <int ROWS, int ROW_ELEMS>
inline int ring_slot(int y) {
#pragma HLS INLINE
  return ((y / 3) % (ROWS / 3)) * ROW_ELEMS;
}

// One input row (w pixels of c channels) from the stream into the line buffer.
template <int ROWS, int ROW_ELEMS, int ML>
void load_line_row(beat_stream& in, feat_t line[3][ROWS / 3 * ROW_ELEMS], int y, int w,
                   int c) {
  const int pb = pixel_beats(c);
  const int base = ring_slot<ROWS, ROW_ELEMS>(y);
LOAD_ROW:
  for (int x = 0; x < w; x++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_WIDTH
    PCD_LOOP(LOAD_ROW_BEATS, 2);
  LOAD_ROW_BEATS:
    for (int b = 0; b < pb; b++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_PIXEL_BEATS
#pragma HLS PIPELINE II=1
      PCD_ITER(LOAD_ROW_BEATS);
      beat_t beat = in.read();
      store_lanes<ROWS / 3 * ROW_ELEMS, ML>(line[y % 3], base + x * c, beat, b, c);
    }
  }
}

// Loads input rows into the line buffer until every row the 3x3 windows of output row
// `oy` read (stride `s`, map height `h`) is there; `loaded` counts the rows so far.
template <int ROWS, int ROW_ELEMS, int ML>
void fill_window_rows(beat_stream& in, feat_t line[3][ROWS / 3 * ROW_ELEMS], int& loaded,
                      int oy, int s, int h, int w, int c) {
  const int need = s * oy + 1 < h - 1 ? s * oy + 1 : h - 1;   // the window's last row
FILL_ROWS:
  while (loaded <= need) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=2
    load_line_row<ROWS, ROW_ELEMS, ML>(in, line, loaded, w, c);
    loaded++;
  }
}

// Tap (y, x) channel ch of the 3x3 window: the stored code, or 0 outside the map.
template <int ROWS, int ROW_ELEMS, int ML>
inline feat_t line_tap(const feat_t line[3][ROWS / 3 * ROW_ELEMS], int y, int x, int ch,
                       int h, int w, int c) {
#pragma HLS INLINE
  if (y < 0 || y >= h || x < 0 || x >= w || ch >= c) return feat_t(0);
  return pcd_rd<ML>(line[y % 3], ring_slot<ROWS, ROW_ELEMS>(y) + x * c + ch);
}

#endif  // PCD_BUFFERS_H
