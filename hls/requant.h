// pynq-codesign: bias, activation and requantisation (one concern: accumulator -> code).
//
// The same arithmetic as pynq_codesign.fixedpoint.shift_round / saturate and the
// emulator: ReLU / ReLU6 at the accumulator's scale, a shift with the overlay's rounding
// mode (compile-time, PCD_ROUNDING = fixedpoint.ROUNDING_ID), then saturation to the
// layer's [out_min, out_max] (narrow range is in out_min already).
//
// In the datapath everything is as narrow as the accumulator allows: the per-pass
// constants (RequantConsts: which way the shift goes, its unsigned amount, the
// saturation thresholds of a left shift, the ReLU6 limit clamped to the accumulator) are
// computed once per pass (make_requant), and each requantiser is a one-way right shift
// of PCD_ACC_BITS + 4 bits with an unsigned amount, or a compare against two
// thresholds and a left shift, so no 64-bit bidirectional barrel shifter is built.
#ifndef PCD_REQUANT_H
#define PCD_REQUANT_H

#include "pcd_types.h"

// Rounding ids as pynq_codesign.fixedpoint.ROUNDING_ID numbers them.
enum { ROUND_HALF_EVEN = 0, ROUND_FLOOR = 1, ROUND_HALF_AWAY = 2, ROUND_TOWARD_ZERO = 3 };

// x / 2**shift rounded with MODE; shift <= 0 multiplies exactly (any width T; the test
// bench of the golden table uses 64 bits). |shift| < bits of T.
template <int MODE, typename T>
inline T shift_round(T x, int shift) {
#pragma HLS INLINE
  if (shift <= 0) return x << (-shift);
  T q = x >> shift;                            // floor (arithmetic shift)
  if (MODE == ROUND_FLOOR) return q;
  T r = x - (q << shift);                      // remainder, 0 <= r < 2**shift
  if (MODE == ROUND_TOWARD_ZERO) return (x < 0 && r != 0) ? T(q + 1) : q;
  T half = T(1) << (shift - 1);
  bool up;
  if (MODE == ROUND_HALF_AWAY)
    up = (r > half) || (r == half && x >= 0);
  else                                         // ROUND_HALF_EVEN
    up = (r > half) || (r == half && q[0] == 1);
  return up ? T(q + 1) : q;
}

// Saturate to [lo, hi].
template <typename T>
inline T saturate(T q, int lo, int hi) {
#pragma HLS INLINE
  if (q < lo) return T(lo);
  if (q > hi) return T(hi);
  return q;
}

// The requantiser's datapath: the accumulator plus the bits a rounding step needs.
typedef ap_int<PCD_ACC_BITS + 4> rq_t;
typedef ap_uint<7> shamt_t;                    // an unsigned shift amount

// What one layer's requantisers need, computed once per pass.
struct RequantConsts {
  ap_uint<2> act;
  acc_t relu6;          // ReLU6 limit clamped to the accumulator's range
  bool left;            // shift <= 0: exact left shift with saturation thresholds
  shamt_t shr;          // right shift, clamped to PCD_ACC_BITS + 1 (same result)
  shamt_t shl;          // left shift
  rq_t lo_thr, hi_thr;  // a left-shifted value saturates outside [lo_thr, hi_thr]
  feat_t out_min, out_max;
};

inline RequantConsts make_requant(const SlotConfig& cfg) {
  RequantConsts k;
  const wide_t acc_max = (wide_t(1) << (PCD_ACC_BITS - 1)) - 1;
  k.act = cfg.act;
  k.relu6 = acc_t(cfg.relu6 > acc_max ? acc_max : (cfg.relu6 < 0 ? wide_t(0) : cfg.relu6));
  k.left = cfg.shift <= 0;
  k.shr = k.left ? 0 : (cfg.shift > PCD_ACC_BITS + 1 ? PCD_ACC_BITS + 1 : cfg.shift);
  k.shl = k.left ? -cfg.shift : 0;
  // floor(out_max / 2**shl) and ceil(out_min / 2**shl)
  const long long d = 1LL << (k.left ? -cfg.shift : 0);
  long long hi = cfg.out_max >= 0 ? cfg.out_max / d : -((-(long long)cfg.out_max + d - 1) / d);
  long long lo = cfg.out_min >= 0 ? (cfg.out_min + d - 1) / d : -((-(long long)cfg.out_min) / d);
  k.hi_thr = hi;
  k.lo_thr = lo;
  k.out_min = cfg.out_min;
  k.out_max = cfg.out_max;
  return k;
}

// Accumulator (bias already added) to the layer's output code.
inline feat_t requant(const acc_t& acc, const RequantConsts& k) {
#pragma HLS INLINE
  acc_t a = acc;
  if (k.act != ACT_NONE && a < 0) a = 0;
  if (k.act == ACT_RELU6 && a > k.relu6) a = k.relu6;
  rq_t x = a;
  if (k.left) {
    if (x > k.hi_thr) return k.out_max;
    if (x < k.lo_thr) return k.out_min;
    return feat_t(x << k.shl);
  }
  rq_t q = x >> k.shr;                         // floor
  if (PCD_ROUNDING != ROUND_FLOOR && k.shr != 0) {
    rq_t r = x - (q << k.shr);
    bool up;
    if (PCD_ROUNDING == ROUND_TOWARD_ZERO) {
      up = x < 0 && r != 0;
    } else {
      rq_t half = rq_t(1) << (k.shr - 1);
      up = (r > half) || (r == half && (PCD_ROUNDING == ROUND_HALF_AWAY ? x >= 0 : q[0] == 1));
    }
    if (up) q = q + 1;
  }
  if (q > k.out_max) return k.out_max;
  if (q < k.out_min) return k.out_min;
  return feat_t(q);
}

#endif  // PCD_REQUANT_H
