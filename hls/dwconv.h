// pynq-codesign: DW-Conv3x3 stage (depthwise 3x3, padding 1, stride 1 or 2).
//
// PE channels per cycle with 9 multipliers each (one per tap). Input rows stream into the
// line buffer (buffers.h); an output row is computed as soon as the three input rows of
// its windows are there, so this stage works on one row band while the stages around it
// work on theirs. Weights: word f of the weight memory holds channels f*PE .. f*PE+PE-1,
// 9 taps each (index f*9*PE + p*9 + tap); biases are banked by channel % PE.
#ifndef PCD_DWCONV_H
#define PCD_DWCONV_H

#include "buffers.h"
#include "mul.h"
#include "requant.h"
#include "stream_io.h"

template <int PE, int WN, int BN>
void load_dw_params(beat_stream& wparams, const SlotConfig& cfg, wgt_t w[WN], bias_t bias[BN]) {
  ParamReader rd(wparams);
DW_WEIGHTS:
  for (int c = 0; c < cfg.in_c; c++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
    PCD_LOOP(DW_WEIGHT_TAPS, 2);
  DW_WEIGHT_TAPS:
    for (int t = 0; t < 9; t++) {
#pragma HLS PIPELINE II=1
      PCD_ITER(DW_WEIGHT_TAPS);
      pcd_wr<9 * PE>(w, (c / PE) * 9 * PE + (c % PE) * 9 + t, rd.weight());
    }
  }
  rd.align();
  PCD_LOOP(DW_BIAS, 2);
DW_BIAS:
  for (int c = 0; c < cfg.in_c; c++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
#pragma HLS PIPELINE II=1
    PCD_ITER(DW_BIAS);
    pcd_wr_part<PE>(bias, c, bias_t(rd.bias()));
  }
}

template <int PE, int ROWS, int ROW_ELEMS, int WN, int BN, typename MUL>
void dw_stage(beat_stream& in, beat_stream& out, beat_stream& wparams, const SlotConfig cfg,
              feat_t line[3][ROWS / 3 * ROW_ELEMS], wgt_t w[WN], bias_t bias[BN]) {
  if (!cfg.active) {
    bypass(in, out, cfg.in_beats);
    return;
  }
  load_dw_params<PE, WN, BN>(wparams, cfg, w, bias);
  const int c = cfg.in_c, h = cfg.in_h, wd = cfg.in_w, s = cfg.stride;
  const int folds = (c + PE - 1) / PE;
  const int ML = PE > PCD_LANES ? PE : PCD_LANES;   // elements per line-buffer word
  BeatPacker packer;
  int loaded = 0;   // input rows in the line buffer so far
DW_ROWS:
  for (int oy = 0; oy < cfg.out_h; oy++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_WIDTH
    fill_window_rows<ROWS, ROW_ELEMS, ML>(in, line, loaded, oy, s, h, wd, c);
  DW_COLS:
    for (int ox = 0; ox < cfg.out_w; ox++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_WIDTH
      PCD_LOOP(DW_FOLDS, 14);
    DW_FOLDS:
      for (int f = 0; f < folds; f++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
#pragma HLS PIPELINE II=1
        PCD_ITER(DW_FOLDS);
        for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
          const int ch = f * PE + p;
          acc_t acc = ch < c ? acc_t(pcd_rd_part<PE>(bias, ch)) : acc_t(0);
          for (int t = 0; t < 9; t++) {
#pragma HLS UNROLL
            feat_t v = line_tap<ROWS, ROW_ELEMS, ML>(line, s * oy + t / 3 - 1, s * ox + t % 3 - 1,
                                                 ch, h, wd, c);
            acc += mul(v, pcd_rd<9 * PE>(w, f * 9 * PE + p * 9 + t), MUL());
          }
          if (ch < c) packer.put(out, requantize(wide_t(acc), cfg));
        }
      }
      packer.end_pixel(out);
    }
  }
}

#endif  // PCD_DWCONV_H
