// Writes the seed corpus of fuzz_cm (or, with --lstm, of fuzz_lstm_cm) into the folder given
// on the command line:
//   make_cm_corpus fuzz/corpus/fuzz_cm
//   make_cm_corpus --lstm fuzz/corpus/fuzz_lstm_cm
// With --lstm each seed starts with fuzz_lstm_cm's 20-byte model block (hidden, clip, shifts,
// ranges and seed varied from seed to seed) and its stream is coded with that model (spec
// 7.11.7), so that the fuzzer's decode of it goes all the way.
// Each seed is a real cm stream (EncodeIndexStream) in fuzz_cm.cc's input format, with the
// parent/aux arrays it was coded against as the context bytes: codebooks of 1, 2, 3, 15, 16 and
// 255 centres, 1-D and 2-D chunks (some starting mid-row), with and without parent and aux
// indices, ExCP-like structure (aux zero where the index is zero), an all-zero chunk (empty
// stream), and a truncated and a padded stream. Deterministic (fixed seeds), every file small.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/index_model.h"
#include "fuzz_lstm_model.h"

namespace {

struct Rng {
  uint64_t s;
  uint32_t Next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(s >> 33);
  }
};

struct Seed {
  std::string name;
  uint32_t k, kp = 0, ka = 0;  // kp/ka 0: none
  uint32_t count, row = 0, first = 0;
  uint64_t seed;
  unsigned zero_every = 3;  // about one in zero_every indices pruned (0: all pruned)
  int damage = 0;           // 1: last stream byte dropped, 2: two bytes appended
};

// fuzz_lstm_cm's model block for seed number n (fuzz_lstm_model.h's header bytes).
std::vector<uint8_t> ModelBlock(uint32_t n) {
  std::vector<uint8_t> b(20, 0);
  b[0] = uint8_t(((n % 4) << 2) | (((n / 4) % 4) << 4));  // hidden, role
  b[1] = uint8_t(n * 3);                                   // clip 1 + b % 7
  b[2] = uint8_t(((n * 5) & 15) | (((n * 7) % 14) << 4));  // recur_shift, out_shift - 2
  b[3] = uint8_t(n % 16);                                  // weight and mix_init ranges
  for (int k = 0; k < 8; ++k) b[12 + k] = uint8_t((0x9E3779B97F4A7C15ull * (n + 1)) >> (8 * k));
  return b;
}

void Write(const std::filesystem::path& dir, const Seed& s, bool lstm, uint32_t n) {
  Rng r{s.seed};
  std::vector<uint8_t> parent(s.count), aux(s.count), idx(s.count);
  for (uint32_t i = 0; i < s.count; ++i) {
    aux[i] = s.ka && r.Next() % 4 ? uint8_t(1 + r.Next() % s.ka) : 0;
    parent[i] = s.kp && r.Next() % 3 ? uint8_t(1 + r.Next() % s.kp) : 0;
    const bool pruned = s.zero_every == 0 || r.Next() % s.zero_every == 0 || (s.ka && !aux[i]);
    idx[i] = pruned ? 0 : uint8_t(1 + (parent[i] + r.Next() % 3) % s.k);
  }
  ckz::IndexModelInputs in;
  in.centres = s.k;
  in.first = s.first;
  in.row = s.row;
  if (s.kp) in.parent = parent.data(), in.parent_centres = s.kp;
  if (s.ka) in.aux = aux.data(), in.aux_centres = s.ka;
  const std::vector<uint8_t> block = ModelBlock(n);
  const ckz::LstmModel model = ckz_fuzz::MakeFuzzLstmModel(block.data());
  if (lstm) {
    in.lstm = &model;
    in.role = (block[0] >> 4) & 3;
  }
  std::vector<uint8_t> coded;
  ckz::EncodeIndexStream(in, idx.data(), idx.size(), &coded);
  if (s.damage == 1 && !coded.empty()) coded.pop_back();
  if (s.damage == 2) coded.insert(coded.end(), {0x00, 0x5A});
  std::vector<uint8_t> f = {uint8_t(s.k - 1), uint8_t((s.kp ? 1 : 0) | (s.ka ? 2 : 0)),
                            uint8_t(s.kp ? s.kp - 1 : 0), uint8_t(s.ka ? s.ka - 1 : 0),
                            uint8_t(s.count), uint8_t(s.count >> 8), uint8_t(s.row),
                            uint8_t(s.row >> 8), uint8_t(s.first), uint8_t(s.first >> 8),
                            uint8_t(s.first >> 16), uint8_t(s.first >> 24),
                            uint8_t(coded.size()), uint8_t(coded.size() >> 8)};
  if (lstm) f.insert(f.begin(), block.begin(), block.end());
  f.insert(f.end(), coded.begin(), coded.end());
  // Context bytes: parent[i] = ctx[i], aux[i] = ctx[count + 1 + i] (fuzz_cm.cc's layout).
  if (s.kp || s.ka) {
    f.insert(f.end(), parent.begin(), parent.end());
    f.push_back(0);
    f.insert(f.end(), aux.begin(), aux.end());
  }
  std::ofstream(dir / s.name, std::ios::binary)
      .write(reinterpret_cast<const char*>(f.data()), std::streamsize(f.size()));
}

}  // namespace

int main(int argc, char** argv) {
  const bool lstm = argc == 3 && std::string(argv[1]) == "--lstm";
  if (argc != 2 && !lstm) {
    std::fprintf(stderr, "usage: make_cm_corpus [--lstm] <folder>\n");
    return 2;
  }
  const std::filesystem::path dir = argv[argc - 1];
  std::filesystem::create_directories(dir);
  const std::vector<Seed> seeds = {
      {"k1_1d", 1, 0, 0, 300, 0, 0, 1},
      {"k2_1d_parent", 2, 3, 0, 400, 0, 0, 2},
      {"k3_2d_aux", 3, 0, 15, 360, 12, 0, 3},
      {"k15_2d_midrow_parent_aux", 15, 15, 15, 700, 24, 50, 4},
      {"k16_2d_parent", 16, 31, 0, 500, 10, 7, 5},
      {"k255_2d_aux", 255, 0, 7, 1500, 30, 0, 6, 5},
      {"k255_parent_aux", 255, 255, 255, 1200, 40, 13, 7},
      {"k7_row1", 7, 0, 0, 200, 1, 0, 8},
      {"k15_all_zero_empty_stream", 15, 15, 15, 256, 16, 0, 9, 0},
      {"k15_dense", 15, 0, 0, 800, 20, 5, 10, 50},
      {"k15_truncated", 15, 0, 0, 400, 20, 0, 11, 3, 1},
      {"k15_trailing_bytes", 15, 3, 0, 400, 20, 0, 12, 3, 2},
      {"k4_big_first", 4, 0, 0, 300, 9, 4000000000u, 13},
  };
  uint32_t n = 0;
  for (const Seed& s : seeds) {
    // fuzz_lstm_cm caps a chunk at 1024 indices: longer seeds would be cut there.
    if (lstm && s.count > 1024) continue;
    Write(dir, s, lstm, n++);
  }
  std::printf("make_cm_corpus: %u seeds in %s\n", n, dir.string().c_str());
  return 0;
}
