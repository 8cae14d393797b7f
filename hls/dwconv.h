// pynq-codesign: DW-Conv3x3 stage (depthwise 3x3, padding 1, stride 1 or 2).
//
// PE channels per cycle with 9 multipliers each (one per tap). The stage is a dataflow
// region of three processes: unpack (beats -> words of PE channels), compute, pack
// (words -> beats). compute loads the layer's weights, then runs ONE pipelined loop over
// the raster scan of the input map, (H + 1) x (W + 1) steps of ceil(C / PE) folds each:
// every iteration stores the incoming word of row y into the line buffer while it reads
// the two rows above and the column history (buffers.h), and every step that completes
// a window emits the output pixel's fold: loading and computing overlap, no loop is
// nested inside the pipeline, each memory bank and each stream sees at most one read and
// one write per iteration.
#ifndef PCD_DWCONV_H
#define PCD_DWCONV_H

#include "buffers.h"
#include "convert.h"
#include "fold.h"
#include "mul.h"
#include "requant.h"
#include "stream_io.h"

// Cycles from a dw iteration's reads to its output word (memory, multiply, adder tree,
// requantiser, stream).
static const int DW_DEPTH = 2 + 3 + 4 + 4 + 1;

template <int PE, int LW, int CW, int WN, int BN, typename MUL>
void dw_compute(typename fword<PE>::stream& in, typename fword<PE>::stream& out,
                beat_stream& wparams, const SlotConfig cfg,
                typename fword<PE>::t line[3][LW], typename fword<PE>::t cols[6][CW],
                typename wword<9>::t w[PE][WN], bias_t bias[PE][BN]) {
  PCD_SUBPROCESS("compute");
  typedef typename fword<PE>::t word;
  load_weights<PE, 9, WN, BN>(wparams, cfg.in_c, 9, w, bias);
  const RequantConsts rq = make_requant(cfg);
  const int h = cfg.in_h, wd = cfg.in_w, st = cfg.stride;
  const int cw = pixel_words<PE>(cfg.in_c);
  const long total = window_steps(h, wd) * cw;
  int f = 0, xi = 0, yi = 0, b0 = 1, b1 = 2, b2 = 0;   // banks of rows yi-2, yi-1, yi
  PCD_LOOP(DW_MAP, DW_DEPTH);
DW_MAP:
  for (long i = 0; i < total; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_TRIP_MAP_WORDS
    PCD_ITER(DW_MAP);
    const bool in_ok = yi < h && xi < wd;
    const word bottom = in_ok ? in.read() : word(0);
    if (in_ok) pcd_wr<1>(line[b2], xi * cw + f, bottom);
    word win[3][3];
#pragma HLS ARRAY_PARTITION variable=win complete dim=0
    window_fold<PE, LW, CW>(line, cols, f, cw, yi, xi, h, wd, b0, b1, bottom, true, win);
    if (window_emits(yi, xi, st)) {
      word o = 0;
      for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
        const typename wword<9>::t wp = pcd_rd<1>(w[p], f);
        acc_t acc = pcd_rd<1>(bias[p], f);
        for (int t = 0; t < 9; t++) {
#pragma HLS UNROLL
          acc += mul(word_get<PE>(win[t / 3][t % 3], p), wword_get<9>(wp, t), MUL());
        }
        word_set<PE>(o, p, requant(acc, rq));
      }
      out.write(o);
    }
    if (++f == cw) {
      f = 0;
      if (++xi == wd + 1) {
        xi = 0;
        yi++;
        const int nb = b0;   // the bank of row yi-2 takes the next incoming row
        b0 = b1;
        b1 = b2;
        b2 = nb;
      }
    }
  }
}

template <int PE, int LW, int CW, int WN, int BN, typename MUL>
void dw_region(beat_stream& in, beat_stream& out, beat_stream& wparams, const SlotConfig cfg,
               typename fword<PE>::t line[3][LW], typename fword<PE>::t cols[6][CW],
               typename wword<9>::t w[PE][WN], bias_t bias[PE][BN]) {
#pragma HLS DATAFLOW
  typename fword<PE>::stream win("dw_words_in"), wout("dw_words_out");
#pragma HLS STREAM variable=win depth=PCD_WORD_FIFO_DEPTH
#pragma HLS STREAM variable=wout depth=PCD_WORD_FIFO_DEPTH
  unpack_words<PE>(in, win, cfg.in_h * cfg.in_w, cfg.in_c);
  dw_compute<PE, LW, CW, WN, BN, MUL>(win, wout, wparams, cfg, line, cols, w, bias);
  pack_words<PE>(wout, out, cfg.out_h * cfg.out_w, cfg.out_c);
}

template <int PE, int LW, int CW, int WN, int BN, typename MUL>
void dw_stage(beat_stream& in, beat_stream& out, beat_stream& wparams, const SlotConfig cfg,
              typename fword<PE>::t line[3][LW], typename fword<PE>::t cols[6][CW],
              typename wword<9>::t w[PE][WN], bias_t bias[PE][BN]) {
  if (!cfg.active) {
    bypass(in, out, cfg.in_beats);
    return;
  }
  dw_region<PE, LW, CW, WN, BN, MUL>(in, out, wparams, cfg, line, cols, w, bias);
}

#endif  // PCD_DWCONV_H
