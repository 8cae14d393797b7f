// pynq-codesign: a small hls::stream for g++ builds of the accelerator (C simulation).
//
// Used only outside synthesis: Vitis HLS brings its own hls_stream.h. This one is ours
// (the copy inside hls4ml's ap_types folder carries a proprietary notice and is never
// included). The dataflow processes run one after the other under g++, so a stream is an
// unbounded FIFO; reading an empty stream is a design error and throws, and the C API of
// the simulation (csim_api.cpp) turns that into an error message for Python.
#ifndef PCD_SIM_HLS_STREAM_H
#define PCD_SIM_HLS_STREAM_H

#ifdef __SYNTHESIS__
#error "hls/sim/hls_stream.h is for g++ builds only; synthesis uses Vitis HLS's own header"
#endif

#include <cstddef>
#include <deque>
#include <stdexcept>
#include <string>

#define PCD_OWN_HLS_STREAM 1

#ifdef PCD_AUDIT
#include "audit_rt.h"
#define PCD_STREAM_AUDIT(W) pcd_audit::stream_access(this, name_, W)
#else
#define PCD_STREAM_AUDIT(W)
#endif

namespace hls {

template <typename T>
class stream {
 public:
  stream() : name_("stream") {}
  explicit stream(const char* name) : name_(name) {}
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;

  void write(const T& v) {
    PCD_STREAM_AUDIT(true);
    fifo_.push_back(v);
  }
  T read() {
    PCD_STREAM_AUDIT(false);
    if (fifo_.empty())
      throw std::runtime_error("read from empty stream '" + name_ + "'");
    T v = fifo_.front();
    fifo_.pop_front();
    return v;
  }
  void read(T& v) { v = read(); }
  bool read_nb(T& v) {
    if (fifo_.empty()) return false;
    v = read();
    return true;
  }
  bool write_nb(const T& v) {
    write(v);
    return true;
  }
  bool empty() const { return fifo_.empty(); }
  bool full() const { return false; }
  std::size_t size() const { return fifo_.size(); }
  void operator<<(const T& v) { write(v); }
  void operator>>(T& v) { v = read(); }

 private:
  std::string name_;
  std::deque<T> fifo_;
};

}  // namespace hls

#endif  // PCD_SIM_HLS_STREAM_H
