// pynq-codesign: weight words and the parameter loads of the convolution stages.
//
// A stage keeps a layer's weights in PE banks (bank p: the output channels p, p + PE,
// ...), one word per read: a dw word holds the 9 taps of one channel, a pw word SIMD
// input channels of one output channel, a conv3 word SIMD input channels x 9 taps
// (lane s * 9 + t). The weights arrive in natural order (dw [C][9], pw [OC][IC], conv3
// [OC][IC][9]), so each word fills from consecutive weights: the load assembles it in a
// register and writes it whole, one weight per cycle; then the biases, PE banks.
#ifndef PCD_FOLD_H
#define PCD_FOLD_H

#include "pcd_types.h"
#include "stream_io.h"

template <int N>
struct wword {
  typedef ap_uint<N * PCD_WEIGHT_BITS> t;
};

template <int N>
inline wgt_t wword_get(const typename wword<N>::t& w, int n) {
#pragma HLS INLINE
  ap_int<PCD_WEIGHT_BITS> v = w.range(n * PCD_WEIGHT_BITS + PCD_WEIGHT_BITS - 1,
                                      n * PCD_WEIGHT_BITS);
  return wgt_t(v);
}

// Weights of `rows` output channels (dw: channels), each `per_row` natural-order weights
// (dw 9, pw IC, conv3 9 * IC), into PE banks of words of N weights: word
// (row / PE) * words_per_row + j / N of bank row % PE holds weights j .. j + N - 1.
// Then `rows` biases into bias[row % PE][row / PE].
template <int PE, int N, int WN, int BN>
void load_weights(beat_stream& wparams, int rows, int per_row,
                  typename wword<N>::t w[PE][WN], bias_t bias[PE][BN]) {
  ParamReader rd(wparams);
  const int words_per_row = (per_row + N - 1) / N;
  typename wword<N>::t reg = 0;
  int row = 0, j = 0, lane = 0, word = 0, p = 0, base = 0;
  const long total = (long)rows * per_row;
  PCD_LOOP(LOAD_WEIGHTS, 3);
LOAD_WEIGHTS:
  for (long i = 0; i < total; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_LAYER_WEIGHTS
    PCD_ITER(LOAD_WEIGHTS);
    const wgt_t v = rd.weight();
    reg.range(lane * PCD_WEIGHT_BITS + PCD_WEIGHT_BITS - 1, lane * PCD_WEIGHT_BITS) =
        ap_uint<PCD_WEIGHT_BITS>(v);
    const bool row_end = j == per_row - 1;
    if (lane == N - 1 || row_end) {
      pcd_wr<1>(w[p], base + word, reg);
      reg = 0;
      lane = 0;
      word++;
    } else {
      lane++;
    }
    if (row_end) {
      j = 0;
      word = 0;
      row++;
      if (++p == PE) {
        p = 0;
        base += words_per_row;
      }
    } else {
      j++;
    }
  }
  rd.align();
  int bp = 0, bw = 0;
  PCD_LOOP(LOAD_BIAS, 2);
LOAD_BIAS:
  for (int r = 0; r < rows; r++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
    PCD_ITER(LOAD_BIAS);
    pcd_wr<1>(bias[bp], bw, bias_t(rd.bias()));
    if (++bp == PE) {
      bp = 0;
      bw++;
    }
  }
}

#endif  // PCD_FOLD_H
