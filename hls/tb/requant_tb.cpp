// pynq-codesign: test entry point into the requantiser (requant.h), every rounding mode.
// Compiled into the C simulation library by tests/test_hls_golden.py; not hardware.
#include "../pcd_config.h"

extern "C" __attribute__((visibility("default"))) int pcd_requant(int mode, long long acc, int shift, int lo, int hi,
                           long long* out) {
  wide_t x = acc, q;
  switch (mode) {
    case ROUND_HALF_EVEN: q = shift_round<ROUND_HALF_EVEN>(x, shift); break;
    case ROUND_FLOOR: q = shift_round<ROUND_FLOOR>(x, shift); break;
    case ROUND_HALF_AWAY: q = shift_round<ROUND_HALF_AWAY>(x, shift); break;
    case ROUND_TOWARD_ZERO: q = shift_round<ROUND_TOWARD_ZERO>(x, shift); break;
    default: return -1;
  }
  *out = saturate(q, lo, hi).to_int64();
  return 0;
}
