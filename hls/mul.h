// pynq-codesign: multipliers bound the way the QoS model assumed (host_search/binding.py).
//
// A stage template takes one of these tags; every product it forms goes through dot() of
// that tag, whose BIND_OP pragma tells Vitis HLS where the multiply lives (finn-hlslib
// style resource tags). The generated header picks a tag per stage from the binding.
//
// * MulDsp:       one DSP48 per product;
// * MulFabric:    products in LUTs (tiny operands only);
// * MulDspPacked: two output lanes p, p+1 that share every feature operand x_n are
//   computed in one DSP48 and its cascade: P = sum_n x_n * (w1_n * 2**S + w0_n) with
//   S = weight bits + feature bits + ceil(log2 N). Since |sum x*w0| < 2**(S-2), the low S
//   bits of P, sign-extended, are exactly sum x*w0, and (P - low) >> S is sum x*w1.
//   binding.pack_legal decides where this fits the DSP's ports.
#ifndef PCD_MUL_H
#define PCD_MUL_H

#include "pcd_types.h"

struct MulDsp {};
struct MulFabric {};
struct MulDspPacked {};

typedef ap_int<PCD_FEATURE_BITS + PCD_WEIGHT_BITS> prod_t;   // one exact product

inline prod_t mul(const feat_t& a, const wgt_t& w, MulDsp) {
#pragma HLS INLINE
  prod_t p = a * w;
#pragma HLS BIND_OP variable=p op=mul impl=dsp
  return p;
}

inline prod_t mul(const feat_t& a, const wgt_t& w, MulFabric) {
#pragma HLS INLINE
  prod_t p = a * w;
#pragma HLS BIND_OP variable=p op=mul impl=fabric
  return p;
}

// A product with nothing to share (a dw tap): one DSP.
inline prod_t mul(const feat_t& a, const wgt_t& w, MulDspPacked) { return mul(a, w, MulDsp()); }

// ceil(log2(n)) at compile time: the guard bits of a sum of n products.
constexpr int clog2(int n) {
  int b = 0;
  while ((1 << b) < n) b++;
  return b;
}

// acc[p] += sum_n x[n] * w[p][n], one multiplier per product.
template <int PE, int N, typename MUL>
inline void dot(acc_t acc[PE], const feat_t x[N], const wgt_t w[PE][N], MUL tag) {
#pragma HLS INLINE
  for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
    acc_t s = 0;
    for (int n = 0; n < N; n++) {
#pragma HLS UNROLL
      s += mul(x[n], w[p][n], tag);
    }
    acc[p] += s;
  }
}

// The same with two output lanes per DSP (an odd last lane takes DSPs of its own).
template <int PE, int N>
inline void dot(acc_t acc[PE], const feat_t x[N], const wgt_t w[PE][N], MulDspPacked) {
#pragma HLS INLINE
  const int S = PCD_WEIGHT_BITS + PCD_FEATURE_BITS + clog2(N);
  typedef ap_int<S + PCD_WEIGHT_BITS + 1> packed_t;
  typedef ap_int<S + PCD_WEIGHT_BITS + PCD_FEATURE_BITS + 2 + clog2(N)> cascade_t;
  for (int p = 0; p + 1 < PE; p += 2) {
#pragma HLS UNROLL
    cascade_t sum = 0;
    for (int n = 0; n < N; n++) {
#pragma HLS UNROLL
      packed_t packed = (packed_t(w[p + 1][n]) << S) + packed_t(w[p][n]);
      cascade_t prod = packed * x[n];
#pragma HLS BIND_OP variable=prod op=mul impl=dsp
      sum += prod;
    }
    ap_int<S> lo = sum.range(S - 1, 0);
    acc[p] += acc_t(lo);
    acc[p + 1] += acc_t((sum - cascade_t(lo)) >> S);
  }
  if (PE % 2) {
    acc_t s = 0;
    for (int n = 0; n < N; n++) {
#pragma HLS UNROLL
      s += mul(x[n], w[PE - 1][n], MulDsp());
    }
    acc[PE - 1] += s;
  }
}

#endif  // PCD_MUL_H
