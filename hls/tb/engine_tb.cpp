// pynq-codesign: C test bench of the engine for Vitis HLS csim and C/RTL co-simulation.
//
// Runs every pass of the package's network on its golden vectors, exactly as the board
// does (one invocation per pass, the output transfer feeding the next pass), and checks
// the final output bytes, the stream protocol (one TLAST, on the last beat; TKEEP all
// ones) and the hardware ID. Data: argv[1] (default "tb_data") holds, written by
// `codesign build-overlay`:
//   params.bin           the parameter buffer (weights, biases, descriptors)
//   passes.txt           one line per pass: desc_offset in_bytes out_bytes
//   vectors.txt          the number of golden vectors
//   in_K.bin / out_K.bin golden input / expected output transfers (wire layout)
// Returns 0 when every vector matches (Vitis treats non-zero as a failed simulation).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../engine.h"

static bool read_file(const std::string& path, std::vector<unsigned char>& out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  std::fseek(f, 0, SEEK_END);
  long n = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  out.resize(n > 0 ? n : 0);
  size_t got = n > 0 ? std::fread(out.data(), 1, n, f) : 0;
  std::fclose(f);
  return (long)got == n;
}

static beat_t beat_at(const std::vector<unsigned char>& b, size_t i) {
  beat_t v = 0;
  for (int k = 0; k < 8; k++) v.range(8 * k + 7, 8 * k) = b[8 * i + k];
  return v;
}

struct PassLine {
  unsigned desc;
  long in_bytes, out_bytes;
};

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "tb_data";
  std::vector<unsigned char> pbytes;
  if (!read_file(dir + "/params.bin", pbytes) || pbytes.size() % 8) {
    std::printf("FAIL: cannot read %s/params.bin (whole beats)\n", dir.c_str());
    return 1;
  }
  std::vector<beat_t> params(pbytes.size() / 8);
  for (size_t i = 0; i < params.size(); i++) params[i] = beat_at(pbytes, i);

  std::vector<PassLine> passes;
  FILE* pf = std::fopen((dir + "/passes.txt").c_str(), "r");
  if (!pf) {
    std::printf("FAIL: cannot read %s/passes.txt\n", dir.c_str());
    return 1;
  }
  PassLine pl;
  while (std::fscanf(pf, "%u %ld %ld", &pl.desc, &pl.in_bytes, &pl.out_bytes) == 3)
    passes.push_back(pl);
  std::fclose(pf);
  int n_vectors = 0;
  FILE* vf = std::fopen((dir + "/vectors.txt").c_str(), "r");
  if (!vf || std::fscanf(vf, "%d", &n_vectors) != 1 || passes.empty()) {
    std::printf("FAIL: %s/vectors.txt or passes.txt is empty\n", dir.c_str());
    return 1;
  }
  std::fclose(vf);

  int errors = 0;
  for (int v = 0; v < n_vectors; v++) {
    std::vector<unsigned char> buf, expect;
    if (!read_file(dir + "/in_" + std::to_string(v) + ".bin", buf) ||
        !read_file(dir + "/out_" + std::to_string(v) + ".bin", expect)) {
      std::printf("FAIL: golden vector %d missing\n", v);
      return 1;
    }
    for (size_t p = 0; p < passes.size(); p++) {
      if ((long)buf.size() != passes[p].in_bytes) {
        std::printf("FAIL: vector %d pass %zu: %zu input bytes, want %ld\n", v, p,
                    buf.size(), passes[p].in_bytes);
        return 1;
      }
      axis_stream s_in, s_out;
      const size_t nb = buf.size() / 8;
      for (size_t i = 0; i < nb; i++) {
        pcd_axis_beat b;
        b.data = beat_at(buf, i);
        b.keep = -1;
        b.strb = -1;
        b.last = (i == nb - 1);
        s_in.write(b);
      }
      unsigned hw_id = 0, status = 99;
      pcd_engine(s_in, s_out, params.data(), passes[p].desc, hw_id, status);
      if (status != 0 || hw_id != PCD_HW_ID) {
        std::printf("FAIL: vector %d pass %zu: status %u, hw_id 0x%08x\n", v, p, status, hw_id);
        return 1;
      }
      std::vector<unsigned char> out;
      int lasts = 0;
      bool last_on_final = false, keep_ok = true;
      while (!s_out.empty()) {
        pcd_axis_beat b = s_out.read();
        for (int k = 0; k < 8; k++) out.push_back((unsigned char)b.data.range(8 * k + 7, 8 * k));
        lasts += b.last ? 1 : 0;
        last_on_final = b.last;
        keep_ok = keep_ok && b.keep == 0xFF;
      }
      if ((long)out.size() != passes[p].out_bytes || lasts != 1 || !last_on_final ||
          !keep_ok || !s_in.empty()) {
        std::printf("FAIL: vector %d pass %zu: %zu output bytes (want %ld), %d TLAST, "
                    "TKEEP %s, input %s\n", v, p, out.size(), passes[p].out_bytes, lasts,
                    keep_ok ? "ok" : "bad", s_in.empty() ? "consumed" : "left over");
        return 1;
      }
      buf.swap(out);
    }
    if (buf != expect) {
      size_t i = 0;
      while (i < buf.size() && i < expect.size() && buf[i] == expect[i]) i++;
      std::printf("FAIL: vector %d: output differs from the golden vector at byte %zu\n", v, i);
      errors++;
    } else {
      std::printf("vector %d: %zu passes, output matches the golden vector\n", v,
                  passes.size());
    }
  }
  std::printf(errors ? "FAIL: %d vector(s) differ\n" : "PASS: all %d vector(s) match\n",
              errors ? errors : n_vectors);
  return errors ? 1 : 0;
}
