// pynq-codesign: hooks of the access audit (compiled in only with -DPCD_AUDIT).
//
// The audit is an instrumented C simulation (host_search/audit.py builds it): it counts,
// per iteration of every pipelined loop, the words each memory bank reads and writes and
// the reads and writes of each stream, and flags an iteration that needs more than the
// hardware gives it in one cycle (a simple dual-port BRAM / LUTRAM bank, ram_s2p: one
// word read and one word written per cycle; a FIFO: one read and one write per cycle).
// It also counts each pipelined loop's entries and iterations: at II=1 a loop entered n
// times for i iterations in all costs i + n * DEPTH cycles, so the engine's cycles per
// pass follow from the C++ itself (hls/sim/audit_rt.h).
//
// In synthesis and in the plain g++ build every hook is empty:
//
//   PCD_PROCESS("name")            first statement of a dataflow process
//   PCD_SUBPROCESS("name")         the same inside a stage's own dataflow region
//                                  ("stage0/unpack")
//   PCD_LOOP(LABEL, DEPTH);        just before a pipelined loop (one entry: fill + drain)
//   PCD_ITER(LABEL);               first statement of the pipelined loop's body
//   pcd_rd<LANES>(bank, i)         read element i of a memory bank of LANES-element words
//   pcd_wr<LANES>(bank, i, v)      write it (a word not wholly written in one iteration
//                                  is a read-modify-write: one read and one write)
//   pcd_rd_part<BANKS>(a, i)       the same on an array partitioned into BANKS banks
//   pcd_wr_part<BANKS>(a, i, v)
//   PCD_MAXI_READ(n)               n single reads on the m_axi port outside a burst loop
#ifndef PCD_AUDIT_H
#define PCD_AUDIT_H

#ifdef PCD_AUDIT
#include "sim/audit_rt.h"
#define PCD_PROCESS(NAME) pcd_audit::Process pcd_audit_process_(NAME)
#define PCD_SUBPROCESS(NAME) pcd_audit::Process pcd_audit_process_(NAME, true)
#define PCD_LOOP(LABEL, DEPTH) pcd_audit::Loop LABEL##_audit_(#LABEL, (DEPTH))
#define PCD_ITER(LABEL) pcd_audit::Iter LABEL##_iter_(LABEL##_audit_)
#define PCD_MAXI_READ(N) pcd_audit::maxi_reads(N)

template <int LANES, typename T>
inline T pcd_rd(const T* bank, long i) {
  pcd_audit::mem_access(bank, i / LANES, i % LANES, LANES, false);
  return bank[i];
}
template <int LANES, typename T>
inline void pcd_wr(T* bank, long i, const T& v) {
  pcd_audit::mem_access(bank, i / LANES, i % LANES, LANES, true);
  bank[i] = v;
}
// An array partitioned cyclically into BANKS banks of one element per word.
template <int BANKS, typename T>
inline T pcd_rd_part(const T* arr, long i) {
  pcd_audit::mem_access(arr + i % BANKS, i / BANKS, 0, 1, false);
  return arr[i];
}
template <int BANKS, typename T>
inline void pcd_wr_part(T* arr, long i, const T& v) {
  pcd_audit::mem_access(arr + i % BANKS, i / BANKS, 0, 1, true);
  arr[i] = v;
}
#else
#define PCD_PROCESS(NAME)
#define PCD_SUBPROCESS(NAME)
#define PCD_LOOP(LABEL, DEPTH)
#define PCD_ITER(LABEL)
#define PCD_MAXI_READ(N)

template <int LANES, typename T>
inline T pcd_rd(const T* bank, long i) {
#pragma HLS INLINE
  return bank[i];
}
template <int LANES, typename T>
inline void pcd_wr(T* bank, long i, const T& v) {
#pragma HLS INLINE
  bank[i] = v;
}
template <int BANKS, typename T>
inline T pcd_rd_part(const T* arr, long i) {
#pragma HLS INLINE
  return arr[i];
}
template <int BANKS, typename T>
inline void pcd_wr_part(T* arr, long i, const T& v) {
#pragma HLS INLINE
  arr[i] = v;
}
#endif

#endif  // PCD_AUDIT_H
