// pynq-codesign: the output folds of a PE x SIMD array (pw and conv3 stages).
//
// An output fold `of` computes channels of * PE .. of * PE + PE - 1: its PE accumulators
// start at those channels' biases and, once every input fold is summed, leave as
// requantised codes on the output stream (channels past out_c are padding, never sent).
#ifndef PCD_FOLD_H
#define PCD_FOLD_H

#include "buffers.h"
#include "requant.h"

template <int PE, int BN>
inline void start_fold(acc_t acc[PE], const bias_t bias[BN], int of, int out_c) {
#pragma HLS INLINE
  for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
    acc[p] = of * PE + p < out_c ? acc_t(pcd_rd_part<PE>(bias, of * PE + p)) : acc_t(0);
  }
}

template <int PE>
inline void emit_fold(BeatPacker& packer, beat_stream& out, const acc_t acc[PE], int of,
                      const SlotConfig& cfg) {
#pragma HLS INLINE
  for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
    if (of * PE + p < cfg.out_c) packer.put(out, requantize(wide_t(acc[p]), cfg));
  }
}

#endif  // PCD_FOLD_H
