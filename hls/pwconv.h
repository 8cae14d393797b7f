// pynq-codesign: PW-Conv1x1 stage (pointwise convolution).
//
// A PE x SIMD multiplier array (PE output channels, SIMD input channels per cycle), the
// matrix-vector unit in finn-hlslib's style. The input arrives into the band buffer, R
// rows at a time, ping-pong by band parity. Weights of the whole layer stay on chip for
// the pass, folded: word (oc / PE) * ICF + ic / SIMD holds the PE x SIMD block of
// [oc][ic] at index word * PE * SIMD + (oc % PE) * SIMD + ic % SIMD (ICF = ceil(IC/SIMD)).
#ifndef PCD_PWCONV_H
#define PCD_PWCONV_H

#include "buffers.h"
#include "fold.h"
#include "mul.h"
#include "requant.h"
#include "stream_io.h"

template <int PE, int SIMD, int WN, int BN>
void load_pw_params(beat_stream& wparams, const SlotConfig& cfg, wgt_t w[WN], bias_t bias[BN]) {
  const int icf = (cfg.in_c + SIMD - 1) / SIMD;
  ParamReader rd(wparams);
PW_WEIGHTS:
  for (int oc = 0; oc < cfg.out_c; oc++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
    PCD_LOOP(PW_WEIGHT_IN, 2);
  PW_WEIGHT_IN:
    for (int ic = 0; ic < cfg.in_c; ic++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
#pragma HLS PIPELINE II=1
      PCD_ITER(PW_WEIGHT_IN);
      pcd_wr<PE * SIMD>(w, ((oc / PE) * icf + ic / SIMD) * PE * SIMD + (oc % PE) * SIMD + ic % SIMD,
                        rd.weight());
    }
  }
  rd.align();
  PCD_LOOP(PW_BIAS, 2);
PW_BIAS:
  for (int oc = 0; oc < cfg.out_c; oc++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
#pragma HLS PIPELINE II=1
    PCD_ITER(PW_BIAS);
    pcd_wr_part<PE>(bias, oc, bias_t(rd.bias()));
  }
}

template <int PE, int SIMD, int BAND_ELEMS, int WN, int BN, typename MUL>
void pw_stage(beat_stream& in, beat_stream& out, beat_stream& wparams, const SlotConfig cfg,
              feat_t band[2][BAND_ELEMS], wgt_t w[WN], bias_t bias[BN]) {
  if (!cfg.active) {
    bypass(in, out, cfg.in_beats);
    return;
  }
  load_pw_params<PE, SIMD, WN, BN>(wparams, cfg, w, bias);
  const int c = cfg.in_c, wd = cfg.in_w;
  const int icf = (c + SIMD - 1) / SIMD;
  const int ocf = (cfg.out_c + PE - 1) / PE;
  const int pb = pixel_beats(c);
  const int ML = SIMD > PCD_LANES ? SIMD : PCD_LANES;   // elements per band-buffer word
  BeatPacker packer;
PW_BANDS:
  for (int r0 = 0, half = 0; r0 < cfg.in_h; r0 += PCD_BAND_ROWS, half ^= 1) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_WIDTH
    const int pixels = (cfg.in_h - r0 < PCD_BAND_ROWS ? cfg.in_h - r0 : PCD_BAND_ROWS) * wd;
  PW_LOAD_BAND:
    for (int i = 0; i < pixels; i++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_TRIP_BAND_PIXELS
      PCD_LOOP(PW_LOAD_BEATS, 2);
    PW_LOAD_BEATS:
      for (int b = 0; b < pb; b++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_PIXEL_BEATS
#pragma HLS PIPELINE II=1
        PCD_ITER(PW_LOAD_BEATS);
        store_lanes<BAND_ELEMS, ML>(band[half], i * c, in.read(), b, c);
      }
    }
  PW_PIXELS:
    for (int i = 0; i < pixels; i++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_TRIP_BAND_PIXELS
    PW_OUT_FOLDS:
      for (int of = 0; of < ocf; of++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
        acc_t acc[PE];
#pragma HLS ARRAY_PARTITION variable=acc complete
        start_fold<PE, BN>(acc, bias, of, cfg.out_c);
        PCD_LOOP(PW_IN_FOLDS, 10);
      PW_IN_FOLDS:
        for (int f = 0; f < icf; f++) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=PCD_MAX_CHANNELS
#pragma HLS PIPELINE II=1
          PCD_ITER(PW_IN_FOLDS);
          feat_t x[SIMD];
          wgt_t wv[PE][SIMD];
#pragma HLS ARRAY_PARTITION variable=x complete
#pragma HLS ARRAY_PARTITION variable=wv complete dim=0
          for (int s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
            const int ch = f * SIMD + s;
            x[s] = ch < c ? pcd_rd<ML>(band[half], i * c + ch) : feat_t(0);
            for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
              wv[p][s] = pcd_rd<PE * SIMD>(w, (of * icf + f) * PE * SIMD + p * SIMD + s);
            }
          }
          dot<PE, SIMD>(acc, x, wv, MUL());
        }
        emit_fold<PE>(packer, out, acc, of, cfg);
      }
      packer.end_pixel(out);
    }
  }
}

#endif  // PCD_PWCONV_H
