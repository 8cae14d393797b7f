// pynq-codesign: the stage memories and the sliding 3x3 window.
//
// The memories are the ones host_search/binding.py lists and the QoS model counts
// (docs/accelerator.md); the generated stage wrappers declare them with their
// BIND_STORAGE / ARRAY_PARTITION directives, the kernels here only index them, always
// one whole word (R codes of one pixel, fword<R>) per access, at most one read and one
// write per bank per cycle (ram_s2p):
//
// * line buffer (dw, conv3): 3 banks of one input row each (row y in bank y % 3), W x
//   ceil(C/R) words: the two rows above the incoming one are read while the incoming row
//   is written into the third bank.
// * column history (dw, conv3): 6 banks (2 columns x 3 rows) of ceil(C/R) words: the
//   window's two older columns for every fold, shifted one column per step (the
//   sliding-window register of finn-hlslib's ConvolutionInputGenerator, kept per fold
//   in memory because the fold count is a run-time value).
// * pixel buffer (pw): 2 banks (ping-pong by pixel parity) of ceil(C/SIMD) words.
// * row buffer (pool): one row of horizontal pair maxima, beats as words.
#ifndef PCD_BUFFERS_H
#define PCD_BUFFERS_H

#include "pcd_types.h"

// The 3x3 window of fold f at step (yi, xi) of the raster scan over an h x w map, with
// padding 1: rows yi-2, yi-1 come from the line buffer (banks b0, b1), row yi is
// `bottom` (the incoming word, or re-read by the caller); columns xi-2, xi-1 from the
// column history, column xi is the new one. Taps outside the map read as zero.
// win[ky][kx]: ky 0..2 = rows yi-2..yi, kx 0..2 = columns xi-2..xi. With `shift`, the
// history moves one column on (the last use of this step's column).
template <int R, int LW, int CW>
inline void window_fold(typename fword<R>::t line[3][LW], typename fword<R>::t cols[6][CW],
                        int f, int cw, int yi, int xi, int h, int w, int b0, int b1,
                        const typename fword<R>::t& bottom, bool shift,
                        typename fword<R>::t win[3][3]) {
#pragma HLS INLINE
  typedef typename fword<R>::t word;
  const bool col_ok = xi < w;
  const int a = xi * cw + f;
  word nw[3];
#pragma HLS ARRAY_PARTITION variable=nw complete
  nw[0] = (yi >= 2 && col_ok) ? pcd_rd<1>(line[b0], a) : word(0);
  nw[1] = (yi >= 1 && col_ok) ? pcd_rd<1>(line[b1], a) : word(0);
  nw[2] = (yi < h && col_ok) ? bottom : word(0);
  for (int r = 0; r < 3; r++) {
#pragma HLS UNROLL
    const word o = xi >= 1 ? pcd_rd<1>(cols[r], f) : word(0);
    const word q = xi >= 2 ? pcd_rd<1>(cols[3 + r], f) : word(0);
    win[r][0] = q;
    win[r][1] = o;
    win[r][2] = nw[r];
    if (shift) {
      pcd_wr<1>(cols[3 + r], f, o);
      pcd_wr<1>(cols[r], f, nw[r]);
    }
  }
}

// Whether step (yi, xi) ends an output pixel's window (stride 1 or 2, padding 1).
inline bool window_emits(int yi, int xi, int stride) {
#pragma HLS INLINE
  return stride == 1 ? (yi >= 1 && xi >= 1) : ((yi & 1) && (xi & 1));
}

// Steps of the raster scan over an h x w map (one extra row and column drain the
// window at the bottom and right edges).
inline long window_steps(int h, int w) { return (long)(h + 1) * (w + 1); }

#endif  // PCD_BUFFERS_H
