// pynq-codesign: Conv3x3 stage (full 3x3 convolution, padding 1, stride 1 or 2).
//
// 9 x PE x SIMD multipliers: every cycle one fold of SIMD input channels, all 9 taps, for
// PE output channels; a dataflow region of unpack (words of SIMD channels), compute and
// pack (words of PE channels). compute loads the weights (PE banks of 9 x SIMD weights
// per word, fold.h), then runs ONE pipelined loop over the raster scan of the input map
// (buffers.h): a step that completes a window takes ceil(OC/PE) x ceil(IC/SIMD)
// iterations (the incoming fold is stored in the first output fold and read back in the
// others; the column history moves on in the last), any other step ceil(IC/SIMD).
#ifndef PCD_CONV3_H
#define PCD_CONV3_H

#include "buffers.h"
#include "convert.h"
#include "fold.h"
#include "mul.h"
#include "requant.h"
#include "stream_io.h"

// Cycles from a conv3 iteration's reads to its output word.
static const int C3_DEPTH = 2 + 3 + 6 + 4 + 1;

template <int PE, int SIMD, int LW, int CW, int WN, int BN, typename MUL>
void conv3_compute(typename fword<SIMD>::stream& in, typename fword<PE>::stream& out,
                   beat_stream& wparams, const SlotConfig cfg,
                   typename fword<SIMD>::t line[3][LW], typename fword<SIMD>::t cols[6][CW],
                   typename wword<9 * SIMD>::t w[PE][WN], bias_t bias[PE][BN]) {
  PCD_SUBPROCESS("compute");
  typedef typename fword<SIMD>::t word;
  load_weights<PE, 9 * SIMD, WN, BN>(wparams, cfg.out_c, 9 * cfg.in_c, w, bias);
  const RequantConsts rq = make_requant(cfg);
  const int h = cfg.in_h, wd = cfg.in_w, st = cfg.stride;
  const int icf = pixel_words<SIMD>(cfg.in_c), ocf = pixel_words<PE>(cfg.out_c);
  const long outs = (long)cfg.out_h * cfg.out_w;
  const long total = outs * ocf * icf + (window_steps(h, wd) - outs) * icf;
  acc_t acc[PE];
#pragma HLS ARRAY_PARTITION variable=acc complete
  int f = 0, of = 0, xi = 0, yi = 0, b0 = 1, b1 = 2, b2 = 0;
  PCD_LOOP(C3_MAP, C3_DEPTH);
C3_MAP:
  for (long i = 0; i < total; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_TRIP_MAP_WORDS
    PCD_ITER(C3_MAP);
    const bool in_ok = yi < h && xi < wd;
    const bool emit = window_emits(yi, xi, st);
    const int a = xi * icf + f;
    word bottom = 0;
    if (in_ok) {
      if (of == 0) {
        bottom = in.read();
        pcd_wr<1>(line[b2], a, bottom);
      } else {
        bottom = pcd_rd<1>(line[b2], a);
      }
    }
    word win[3][3];
#pragma HLS ARRAY_PARTITION variable=win complete dim=0
    window_fold<SIMD, LW, CW>(line, cols, f, icf, yi, xi, h, wd, b0, b1, bottom,
                              !emit || of == ocf - 1, win);
    if (emit) {
      feat_t x[9 * SIMD];
      wgt_t wv[PE][9 * SIMD];
#pragma HLS ARRAY_PARTITION variable=x complete
#pragma HLS ARRAY_PARTITION variable=wv complete dim=0
      for (int s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
        for (int t = 0; t < 9; t++) {
#pragma HLS UNROLL
          x[s * 9 + t] = word_get<SIMD>(win[t / 3][t % 3], s);
        }
      }
      for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
        const typename wword<9 * SIMD>::t wp = pcd_rd<1>(w[p], of * icf + f);
        for (int n = 0; n < 9 * SIMD; n++) {
#pragma HLS UNROLL
          wv[p][n] = wword_get<9 * SIMD>(wp, n);
        }
        if (f == 0) acc[p] = pcd_rd<1>(bias[p], of);
      }
      dot<PE, 9 * SIMD>(acc, x, wv, MUL());
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
      if (!emit || ++of == ocf) {
        of = 0;
        if (++xi == wd + 1) {
          xi = 0;
          yi++;
          const int nb = b0;
          b0 = b1;
          b1 = b2;
          b2 = nb;
        }
      }
    }
  }
}

template <int PE, int SIMD, int LW, int CW, int WN, int BN, typename MUL>
void conv3_region(beat_stream& in, beat_stream& out, beat_stream& wparams,
                  const SlotConfig cfg, typename fword<SIMD>::t line[3][LW],
                  typename fword<SIMD>::t cols[6][CW], typename wword<9 * SIMD>::t w[PE][WN],
                  bias_t bias[PE][BN]) {
#pragma HLS DATAFLOW
  typename fword<SIMD>::stream win("c3_words_in");
  typename fword<PE>::stream wout("c3_words_out");
#pragma HLS STREAM variable=win depth=PCD_WORD_FIFO_DEPTH
#pragma HLS STREAM variable=wout depth=PCD_WORD_FIFO_DEPTH
  unpack_words<SIMD>(in, win, cfg.in_h * cfg.in_w, cfg.in_c);
  conv3_compute<PE, SIMD, LW, CW, WN, BN, MUL>(win, wout, wparams, cfg, line, cols, w, bias);
  pack_words<PE>(wout, out, cfg.out_h * cfg.out_w, cfg.out_c);
}

template <int PE, int SIMD, int LW, int CW, int WN, int BN, typename MUL>
void conv3_stage(beat_stream& in, beat_stream& out, beat_stream& wparams, const SlotConfig cfg,
                 typename fword<SIMD>::t line[3][LW], typename fword<SIMD>::t cols[6][CW],
                 typename wword<9 * SIMD>::t w[PE][WN], bias_t bias[PE][BN]) {
  if (!cfg.active) {
    bypass(in, out, cfg.in_beats);
    return;
  }
  conv3_region<PE, SIMD, LW, CW, WN, BN, MUL>(in, out, wparams, cfg, line, cols, w, bias);
}

#endif  // PCD_CONV3_H
