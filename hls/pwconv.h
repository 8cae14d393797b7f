// pynq-codesign: PW-Conv1x1 stage (pointwise convolution).
//
// A PE x SIMD multiplier array (PE output channels, SIMD input channels per cycle), the
// matrix-vector unit in finn-hlslib's style, in a dataflow region of three processes
// (unpack to words of SIMD channels, compute, pack words of PE channels to beats).
// compute loads the layer's weights (PE banks, fold.h), then runs ONE pipelined loop,
// flattened with counters over pixels x output folds x input folds: pixel i is computed
// (ceil(OC/PE) x ceil(IC/SIMD) iterations) from one half of the pixel buffer while pixel
// i + 1 arrives into the other half during the first ceil(IC/SIMD) of them.
#ifndef PCD_PWCONV_H
#define PCD_PWCONV_H

#include "buffers.h"
#include "convert.h"
#include "fold.h"
#include "mul.h"
#include "requant.h"
#include "stream_io.h"

// Cycles from a pw iteration's reads to its output word.
static const int PW_DEPTH = 2 + 3 + 4 + 4 + 1;

template <int PE, int SIMD, int CW, int WN, int BN, typename MUL>
void pw_compute(typename fword<SIMD>::stream& in, typename fword<PE>::stream& out,
                beat_stream& wparams, const SlotConfig cfg, typename fword<SIMD>::t pix[2][CW],
                typename wword<SIMD>::t w[PE][WN], bias_t bias[PE][BN]) {
  PCD_SUBPROCESS("compute");
  typedef typename fword<SIMD>::t iword;
  load_weights<PE, SIMD, WN, BN>(wparams, cfg.out_c, cfg.in_c, w, bias);
  const RequantConsts rq = make_requant(cfg);
  const int icf = pixel_words<SIMD>(cfg.in_c), ocf = pixel_words<PE>(cfg.out_c);
  const long pixels = (long)cfg.in_h * cfg.in_w;
  const long total = icf + pixels * ocf * icf;
  acc_t acc[PE];
#pragma HLS ARRAY_PARTITION variable=acc complete
  long px = 0;          // step: load pixel px, compute pixel px - 1
  int f = 0, of = 0;
  PCD_LOOP(PW_MAP, PW_DEPTH);
PW_MAP:
  for (long i = 0; i < total; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_TRIP_MAP_WORDS
    PCD_ITER(PW_MAP);
    if (px < pixels && of == 0) pcd_wr<1>(pix[px & 1], f, in.read());
    if (px >= 1) {
      const iword xw = pcd_rd<1>(pix[(px - 1) & 1], f);
      feat_t x[SIMD];
      wgt_t wv[PE][SIMD];
#pragma HLS ARRAY_PARTITION variable=x complete
#pragma HLS ARRAY_PARTITION variable=wv complete dim=0
      for (int s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
        x[s] = word_get<SIMD>(xw, s);
      }
      for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
        const typename wword<SIMD>::t wp = pcd_rd<1>(w[p], of * icf + f);
        for (int s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
          wv[p][s] = wword_get<SIMD>(wp, s);
        }
        if (f == 0) acc[p] = pcd_rd<1>(bias[p], of);
      }
      dot<PE, SIMD>(acc, x, wv, MUL());
      if (f == icf - 1) {
        typename fword<PE>::t o = 0;
        for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
          word_set<PE>(o, p, requant(acc[p], rq));
        }
        out.write(o);
      }
    }
    if (++f == icf) {
      f = 0;
      if (px == 0 || ++of == ocf) {
        of = 0;
        px++;
      }
    }
  }
}

template <int PE, int SIMD, int CW, int WN, int BN, typename MUL>
void pw_region(beat_stream& in, beat_stream& out, beat_stream& wparams, const SlotConfig cfg,
               typename fword<SIMD>::t pix[2][CW], typename wword<SIMD>::t w[PE][WN],
               bias_t bias[PE][BN]) {
#pragma HLS DATAFLOW
  typename fword<SIMD>::stream win("pw_words_in");
  typename fword<PE>::stream wout("pw_words_out");
#pragma HLS STREAM variable=win depth=PCD_WORD_FIFO_DEPTH
#pragma HLS STREAM variable=wout depth=PCD_WORD_FIFO_DEPTH
  unpack_words<SIMD>(in, win, cfg.in_h * cfg.in_w, cfg.in_c);
  pw_compute<PE, SIMD, CW, WN, BN, MUL>(win, wout, wparams, cfg, pix, w, bias);
  pack_words<PE>(wout, out, cfg.out_h * cfg.out_w, cfg.out_c);
}

template <int PE, int SIMD, int CW, int WN, int BN, typename MUL>
void pw_stage(beat_stream& in, beat_stream& out, beat_stream& wparams, const SlotConfig cfg,
              typename fword<SIMD>::t pix[2][CW], typename wword<SIMD>::t w[PE][WN],
              bias_t bias[PE][BN]) {
  if (!cfg.active) {
    bypass(in, out, cfg.in_beats);
    return;
  }
  pw_region<PE, SIMD, CW, WN, BN, MUL>(in, out, wparams, cfg, pix, w, bias);
}

#endif  // PCD_PWCONV_H
