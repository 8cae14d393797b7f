// pynq-codesign: the access audit's bookkeeping (g++ builds with -DPCD_AUDIT only).
//
// See hls/audit.h for the hooks. Per iteration of a pipelined loop this records the
// distinct words each memory bank reads and writes, and each stream's reads and writes;
// when the iteration ends it works out the initiation interval the iteration needs:
//
//   * a bank (ram_s2p: one read port, one write port) reading r distinct words needs r
//     cycles, writing w distinct words needs w cycles;
//   * a word written only in part is a read-modify-write: its read counts on the read
//     port, and the iteration needs at least 2 cycles (the write depends on the read);
//   * a stream read (or written) k times needs k cycles;
//   * a pipelined loop entered inside a pipelined iteration cannot be flattened by HLS
//     (a variable trip count): flagged, and its iterations are added to the outer one's.
//
// A loop meets II=1 when every iteration needs 1 cycle. The loop's cycles are the sum of
// what its iterations need plus DEPTH per entry; accesses outside any pipelined loop
// (sequential code) cost one cycle each; the m_axi single reads are counted apart.
// Dataflow processes run concurrently, so the cycles of a pass are the cycles spent
// before the dataflow region (the process "top": descriptor) plus the slowest process.
#ifndef PCD_AUDIT_RT_H
#define PCD_AUDIT_RT_H

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace pcd_audit {

struct LoopStat {
  std::string process, label;
  int depth = 0;
  long long entries = 0, iters = 0, cycles = 0, bad_iters = 0, max_ii = 1;
  std::string problem;   // the first iteration that needed more than one cycle, in words
};

struct BankUse {
  std::set<long> rd, wr;
  std::map<long, std::set<long> > lanes_written;
  int lanes = 1;
};

struct State {
  std::vector<LoopStat> loops;
  std::map<std::string, int> index;
  std::string process = "top";
  int cur = -1;                                  // loop of the open iteration
  int nested = 0;                                // pipelined iterations inside it
  std::map<const void*, BankUse> banks;
  std::map<const void*, std::pair<long, long> > streams;   // reads, writes
  std::map<const void*, std::string> stream_names;
  std::map<std::string, long long> seq_ops;      // per process, outside pipelined loops
  std::map<std::string, long long> maxi_single;  // per process
};

inline State& state() {
  static State s;
  return s;
}

inline void reset() { state() = State(); }

class Process {
 public:
  explicit Process(const char* name, bool sub = false) : prev_(state().process) {
    state().process = sub ? prev_ + "/" + name : std::string(name);
  }
  ~Process() { state().process = prev_; }
 private:
  std::string prev_;
};

class Loop {
 public:
  Loop(const char* label, int depth) {
    State& s = state();
    std::string key = s.process + "/" + label;
    auto it = s.index.find(key);
    if (it == s.index.end()) {
      LoopStat st;
      st.process = s.process;
      st.label = label;
      st.depth = depth;
      s.loops.push_back(st);
      idx_ = (int)s.loops.size() - 1;
      s.index[key] = idx_;
    } else {
      idx_ = it->second;
    }
    if (s.cur >= 0) return;                      // inside a pipelined iteration: no fill
    s.loops[idx_].entries++;
  }
  int idx() const { return idx_; }
 private:
  int idx_;
};

inline std::string fmt_long(long long v) {
  char b[32];
  std::snprintf(b, sizeof b, "%lld", v);
  return b;
}

class Iter {
 public:
  explicit Iter(const Loop& loop) : idx_(loop.idx()), inner_(false) {
    State& s = state();
    if (s.cur >= 0) {                            // a pipelined loop inside an iteration
      inner_ = true;
      s.nested++;
      return;
    }
    s.cur = idx_;
    s.nested = 0;
    s.banks.clear();
    s.streams.clear();
  }
  ~Iter() {
    if (inner_) return;
    State& s = state();
    LoopStat& st = s.loops[idx_];
    long long ii = 1;
    std::string why;
    auto need = [&](long long n, const std::string& what) {
      if (n > ii) {
        ii = n;
        why = what;
      }
    };
    for (auto& kv : s.banks) {
      BankUse& b = kv.second;
      std::set<long> rd = b.rd;
      bool partial = false;
      for (auto& w : b.lanes_written)
        if ((long)w.second.size() < b.lanes) {
          partial = true;
          rd.insert(w.first);
        }
      need((long long)rd.size(), fmt_long(rd.size()) + " words read from one bank of " +
                                     fmt_long(b.lanes) + "-element words");
      need((long long)b.wr.size(), fmt_long(b.wr.size()) + " words written to one bank of " +
                                       fmt_long(b.lanes) + "-element words");
      if (partial) need(2, "a word written in part (read-modify-write) in a bank of " +
                               fmt_long(b.lanes) + "-element words");
    }
    for (auto& kv : s.streams) {
      const std::string& n = s.stream_names[kv.first];
      need(kv.second.first, fmt_long(kv.second.first) + " reads of stream '" + n + "'");
      need(kv.second.second, fmt_long(kv.second.second) + " writes to stream '" + n + "'");
    }
    if (s.nested) need(1 + s.nested, fmt_long(s.nested) +
                                         " iterations of a pipelined loop nested inside");
    st.iters++;
    st.cycles += ii;
    if (ii > 1) {
      st.bad_iters++;
      if (ii > st.max_ii) st.max_ii = ii;
      if (st.problem.empty()) st.problem = why;
    }
    s.cur = -1;
  }
 private:
  int idx_;
  bool inner_;
};

inline void mem_access(const void* bank, long word, long lane, int lanes, bool write) {
  State& s = state();
  if (s.cur < 0) return;                         // sequential code: no port limit here
  BankUse& b = s.banks[bank];
  b.lanes = lanes;
  if (write) {
    b.wr.insert(word);
    b.lanes_written[word].insert(lane);
  } else {
    b.rd.insert(word);
  }
}

inline void stream_access(const void* stream, const std::string& name, bool write) {
  State& s = state();
  if (s.cur < 0) {
    s.seq_ops[s.process]++;
    return;
  }
  s.stream_names[stream] = name;
  auto& c = s.streams[stream];
  if (write)
    c.second++;
  else
    c.first++;
}

inline void maxi_reads(long n) { state().maxi_single[state().process] += n; }

// The report as JSON: every loop, the sequential operations and the m_axi single reads
// per process.
inline std::string report_json() {
  State& s = state();
  std::string o = "{\"loops\": [";
  for (size_t i = 0; i < s.loops.size(); i++) {
    const LoopStat& l = s.loops[i];
    std::string prob;
    for (char c : l.problem) prob += (c == '"' || c == '\\') ? '\'' : c;
    o += std::string(i ? ", " : "") + "{\"process\": \"" + l.process + "\", \"label\": \"" +
         l.label + "\", \"depth\": " + fmt_long(l.depth) + ", \"entries\": " +
         fmt_long(l.entries) + ", \"iters\": " + fmt_long(l.iters) + ", \"cycles\": " +
         fmt_long(l.cycles) + ", \"bad_iters\": " + fmt_long(l.bad_iters) +
         ", \"max_ii\": " + fmt_long(l.max_ii) + ", \"problem\": \"" + prob + "\"}";
  }
  o += "], \"seq_ops\": {";
  bool first = true;
  for (auto& kv : s.seq_ops) {
    o += std::string(first ? "" : ", ") + "\"" + kv.first + "\": " + fmt_long(kv.second);
    first = false;
  }
  o += "}, \"maxi_single\": {";
  first = true;
  for (auto& kv : s.maxi_single) {
    o += std::string(first ? "" : ", ") + "\"" + kv.first + "\": " + fmt_long(kv.second);
    first = false;
  }
  return o + "}}";
}

}  // namespace pcd_audit

#endif  // PCD_AUDIT_RT_H
