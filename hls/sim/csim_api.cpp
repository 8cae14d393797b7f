// pynq-codesign: C entry points of the g++ build of the engine, for ctypes
// (host_search/csim.py). Not part of the hardware.
//
// pcd_csim_run feeds one DMA transfer's bytes as AXI4-Stream beats (TKEEP all ones,
// TLAST on the last), runs one invocation of pcd_engine on the parameter buffer, and
// returns the output transfer's bytes with what the stream carried: how many TLASTs,
// whether the last beat had one, whether every TKEEP/TSTRB was all ones.
#include <cstring>
#include <exception>
#include <vector>

#include "../engine.h"

#ifndef PCD_OWN_HLS_STREAM
#error "the g++ build must use hls/sim/hls_stream.h (put hls/sim first on the include path)"
#endif

namespace {
void set_err(char* err, int errlen, const char* msg) {
  if (err && errlen > 0) {
    std::strncpy(err, msg, errlen - 1);
    err[errlen - 1] = 0;
  }
}
}  // namespace

#define PCD_API __attribute__((visibility("default")))

#ifdef PCD_AUDIT
#include <string>
static std::string pcd_last_audit;
#endif

extern "C" {

// Compile-time facts of this build: hardware ID, stages, feature bits, lanes.
PCD_API void pcd_csim_info(unsigned* hw_id, int* n_stages, int* feature_bits, int* lanes) {
  *hw_id = PCD_HW_ID;
  *n_stages = PCD_N_STAGES;
  *feature_bits = PCD_FEATURE_BITS;
  *lanes = PCD_LANES;
}

// Returns 0 on success, -1 (message in err) when the stream protocol broke.
PCD_API int pcd_csim_run(const unsigned char* in, long long in_bytes, unsigned char* out,
                 long long out_cap, long long* out_bytes, const unsigned char* params,
                 long long params_bytes, unsigned desc_offset, unsigned* hw_id,
                 unsigned* status, int* n_last, int* last_on_final, int* keep_ok,
                 long long* in_left, char* err, int errlen) {
  try {
    if (in_bytes % 8 || params_bytes % 8) {
      set_err(err, errlen, "transfers and the parameter buffer are whole 64-bit beats");
      return -1;
    }
    std::vector<beat_t> pbuf(params_bytes / 8 + 1);
    for (long long i = 0; i < params_bytes / 8; i++) {
      beat_t b = 0;
      for (int k = 0; k < 8; k++) b.range(8 * k + 7, 8 * k) = params[8 * i + k];
      pbuf[i] = b;
    }
    axis_stream s_in("in"), s_out("out");
    const long long nb = in_bytes / 8;
    for (long long i = 0; i < nb; i++) {
      pcd_axis_beat b;
      b.data = 0;
      for (int k = 0; k < 8; k++) b.data.range(8 * k + 7, 8 * k) = in[8 * i + k];
      b.keep = 0xFF;
      b.strb = 0xFF;
      b.last = (i == nb - 1) ? 1 : 0;
      s_in.write(b);
    }
#ifdef PCD_AUDIT
    pcd_audit::reset();   // the harness's own stream I/O is not the engine's
#endif
    pcd_engine(s_in, s_out, pbuf.data(), desc_offset, *hw_id, *status);
#ifdef PCD_AUDIT
    pcd_last_audit = pcd_audit::report_json();
#endif
    *in_left = (long long)s_in.size();
    long long n = 0;
    *n_last = 0;
    *last_on_final = 0;
    *keep_ok = 1;
    while (!s_out.empty()) {
      pcd_axis_beat b = s_out.read();
      if (8 * (n + 1) > out_cap) {
        set_err(err, errlen, "the engine wrote more beats than the pass's output transfer");
        return -1;
      }
      for (int k = 0; k < 8; k++) out[8 * n + k] = (unsigned char)b.data.range(8 * k + 7, 8 * k);
      if (b.last) (*n_last)++;
      if (b.keep != 0xFF || b.strb != 0xFF) *keep_ok = 0;
      *last_on_final = b.last ? 1 : 0;
      n++;
    }
    *out_bytes = 8 * n;
    return 0;
  } catch (const std::exception& e) {
    set_err(err, errlen, e.what());
    return -1;
  }
}

#ifdef PCD_AUDIT
// The access audit of the last pcd_csim_run as JSON (hls/sim/audit_rt.h); returns its
// length (copied when it fits into buf).
PCD_API int pcd_audit_report(char* buf, int len) {
  int n = (int)pcd_last_audit.size();
  if (buf && len > n) {
    std::memcpy(buf, pcd_last_audit.data(), n);
    buf[n] = 0;
  }
  return n;
}
#endif

}  // extern "C"
