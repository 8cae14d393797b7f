// pynq-codesign: bias, activation and requantisation (one concern: accumulator -> code).
//
// The same arithmetic as pynq_codesign.fixedpoint.shift_round / saturate and the
// emulator: ReLU / ReLU6 at the accumulator's scale, a run-time shift with the overlay's
// rounding mode (compile-time, PCD_ROUNDING = fixedpoint.ROUNDING_ID), then saturation
// to the layer's [out_min, out_max] (narrow range is in out_min already).
#ifndef PCD_REQUANT_H
#define PCD_REQUANT_H

#include "pcd_types.h"

// Rounding ids as pynq_codesign.fixedpoint.ROUNDING_ID numbers them.
enum { ROUND_HALF_EVEN = 0, ROUND_FLOOR = 1, ROUND_HALF_AWAY = 2, ROUND_TOWARD_ZERO = 3 };

// x / 2**shift rounded with MODE; shift <= 0 multiplies exactly. |shift| <= 62.
template <int MODE>
inline wide_t shift_round(wide_t x, int shift) {
#pragma HLS INLINE
  if (shift <= 0) return x << (-shift);
  wide_t q = x >> shift;                       // floor (arithmetic shift)
  if (MODE == ROUND_FLOOR) return q;
  wide_t r = x - (q << shift);                 // remainder, 0 <= r < 2**shift
  if (MODE == ROUND_TOWARD_ZERO) return (x < 0 && r != 0) ? wide_t(q + 1) : q;
  wide_t half = wide_t(1) << (shift - 1);
  bool up;
  if (MODE == ROUND_HALF_AWAY)
    up = (r > half) || (r == half && x >= 0);
  else                                         // ROUND_HALF_EVEN
    up = (r > half) || (r == half && q[0] == 1);
  return up ? wide_t(q + 1) : q;
}

// Saturate to [lo, hi].
inline wide_t saturate(wide_t q, int lo, int hi) {
#pragma HLS INLINE
  if (q < lo) return wide_t(lo);
  if (q > hi) return wide_t(hi);
  return q;
}

// ReLU / ReLU6 at the accumulator's scale.
inline wide_t activate(wide_t acc, int act, const wide_t& relu6_limit) {
#pragma HLS INLINE
  if (act != ACT_NONE && acc < 0) acc = 0;
  if (act == ACT_RELU6 && acc > relu6_limit) acc = relu6_limit;
  return acc;
}

// Accumulator (bias already added) to the layer's output code. A left shift (shift < 0)
// that would leave 64 bits saturates instead of wrapping: any |a| >= 2**(62 + shift) is
// far outside every output format.
inline feat_t requantize(wide_t acc, const SlotConfig& cfg) {
#pragma HLS INLINE
  wide_t a = activate(acc, cfg.act, cfg.relu6);
  wide_t q;
  if (cfg.shift < 0 && (a >= (wide_t(1) << (62 + cfg.shift)) ||
                        a <= -(wide_t(1) << (62 + cfg.shift))))
    q = a < 0 ? wide_t(cfg.out_min) : wide_t(cfg.out_max);
  else
    q = shift_round<PCD_ROUNDING>(a, cfg.shift);
  return feat_t(saturate(q, cfg.out_min, cfg.out_max));
}

#endif  // PCD_REQUANT_H
