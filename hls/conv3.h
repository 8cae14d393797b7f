// pynq-codesign: Conv3x3 stage (full 3x3 convolution, padding 1, stride 1 or 2).
//
// 9 x PE x SIMD multipliers: every cycle one fold of SIMD input channels, all 9 taps, for
// PE output channels. Line buffer as in dwconv.h. Weights folded like pwconv.h with the
// 9 taps innermost: word (oc / PE) * ICF + ic / SIMD, index
// word * 9 * PE * SIMD + (oc % PE) * 9 * SIMD + (ic % SIMD) * 9 + tap.
#ifndef PCD_CONV3_H
#define PCD_CONV3_H

#include "buffers.h"
#include "fold.h"
#include "mul.h"
#include "requant.h"
#include "stream_io.h"

template <int PE, int SIMD, int WN, int BN>
void load_conv3_params(beat_stream& wparams, const SlotConfig& cfg, wgt_t w[WN],
                       bias_t bias[BN]) {
  const int icf = (cfg.in_c + SIMD - 1) / SIMD;
  ParamReader rd(wparams);
C3_WEIGHTS:
  for (int oc = 0; oc < cfg.out_c; oc++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
    for (int ic = 0; ic < cfg.in_c; ic++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
      PCD_LOOP(C3_WEIGHT_TAPS, 2);
    C3_WEIGHT_TAPS:
      for (int t = 0; t < 9; t++) {
#pragma HLS PIPELINE II=1
        PCD_ITER(C3_WEIGHT_TAPS);
        pcd_wr<9 * PE * SIMD>(w, ((oc / PE) * icf + ic / SIMD) * 9 * PE * SIMD +
                                     (oc % PE) * 9 * SIMD + (ic % SIMD) * 9 + t, rd.weight());
      }
    }
  }
  rd.align();
  PCD_LOOP(C3_BIAS, 2);
C3_BIAS:
  for (int oc = 0; oc < cfg.out_c; oc++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
#pragma HLS PIPELINE II=1
    PCD_ITER(C3_BIAS);
    pcd_wr_part<PE>(bias, oc, bias_t(rd.bias()));
  }
}

template <int PE, int SIMD, int ROWS, int ROW_ELEMS, int WN, int BN, typename MUL>
void conv3_stage(beat_stream& in, beat_stream& out, beat_stream& wparams, const SlotConfig cfg,
                 feat_t line[3][ROWS / 3 * ROW_ELEMS], wgt_t w[WN], bias_t bias[BN]) {
  if (!cfg.active) {
    bypass(in, out, cfg.in_beats);
    return;
  }
  load_conv3_params<PE, SIMD, WN, BN>(wparams, cfg, w, bias);
  const int c = cfg.in_c, h = cfg.in_h, wd = cfg.in_w, st = cfg.stride;
  const int icf = (c + SIMD - 1) / SIMD;
  const int ocf = (cfg.out_c + PE - 1) / PE;
  const int ML = SIMD > PCD_LANES ? SIMD : PCD_LANES;   // elements per line-buffer word
  BeatPacker packer;
  int loaded = 0;
C3_ROWS:
  for (int oy = 0; oy < cfg.out_h; oy++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_WIDTH
    fill_window_rows<ROWS, ROW_ELEMS, ML>(in, line, loaded, oy, st, h, wd, c);
  C3_COLS:
    for (int ox = 0; ox < cfg.out_w; ox++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_WIDTH
    C3_OUT_FOLDS:
      for (int of = 0; of < ocf; of++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
        acc_t acc[PE];
#pragma HLS ARRAY_PARTITION variable=acc complete
        start_fold<PE, BN>(acc, bias, of, cfg.out_c);
        PCD_LOOP(C3_IN_FOLDS, 18);
      C3_IN_FOLDS:
        for (int f = 0; f < icf; f++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
#pragma HLS PIPELINE II=1
          PCD_ITER(C3_IN_FOLDS);
          feat_t x[9 * SIMD];
          wgt_t wv[PE][9 * SIMD];
#pragma HLS ARRAY_PARTITION variable=x complete
#pragma HLS ARRAY_PARTITION variable=wv complete dim=0
          for (int s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
            for (int t = 0; t < 9; t++) {
#pragma HLS UNROLL
              x[s * 9 + t] = line_tap<ROWS, ROW_ELEMS, ML>(line, st * oy + t / 3 - 1,
                                                       st * ox + t % 3 - 1, f * SIMD + s,
                                                       h, wd, c);
              for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                wv[p][s * 9 + t] = pcd_rd<9 * PE * SIMD>(
                    w, (of * icf + f) * 9 * PE * SIMD + p * 9 * SIMD + s * 9 + t);
              }
            }
          }
          dot<PE, 9 * SIMD>(acc, x, wv, MUL());
        }
        emit_fold<PE>(packer, out, acc, of, cfg);
      }
      packer.end_pixel(out);
    }
  }
}

#endif  // PCD_CONV3_H
