// Writes the seed corpus of fuzz_lstm into the folder given on the command line:
//   make_lstm_corpus fuzz/corpus/fuzz_lstm
// Each seed is a real cml+lstm stream (EncodeLevelStream with the LSTM model that fuzz_lstm
// rebuilds from the seed's header, fuzz_lstm_model.h) in fuzz_lstm.cc's input format, with the
// parent/aux levels it was coded against as the context bytes: every hidden size, clips 1..7,
// every role, the shift extremes, 1-D and 2-D chunks (some starting mid-row), with and without
// parent and aux levels, sparse and dense levels, escapes up to 2^24 - 1, models with small,
// trained-like and whole-int16-range (saturating) weights and mixers at their edges; then
// damaged streams (truncated, bit flip) and an escape a decoder must refuse. Each seed is
// decoded before it is written and its result printed; an undamaged one must decode to its
// levels. Deterministic (fixed seeds).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/level_model.h"
#include "level_seed_levels.h"
#include "common/lstm_model.h"
#include "fuzz_lstm_model.h"

namespace {

using ckz::LevelDecodeResult;

using ckz_fuzz::SeedRng;

constexpr int32_t kMaxLevel = (1 << 24) - 1;

struct Seed {
  std::string name;
  // The model: hidden index (0..3: 8, 16, 24, 32), clip (1..7), fuzz_lstm's header bytes 2
  // (shifts) and 3 (weight ranges, mix_init), the role and the model's seed.
  uint32_t hidden_index, clip;
  uint8_t shifts, ranges;
  uint32_t role;
  uint64_t model_seed;
  bool parent = false, aux = false;
  uint32_t count, row = 0, first = 0;
  uint64_t seed = 1;
  unsigned zero_every = 3;  // about one in zero_every levels zero (0: all zero)
  unsigned big_every = 0;   // about one in big_every levels an escape (0: none)
  int damage = 0;           // 1: last byte dropped, 2: bit flip
  int32_t poison = 0;       // written at element count / 2: a level beyond 2^24 - 1
};

bool Write(const std::filesystem::path& dir, const Seed& s) {
  // fuzz_lstm's header, without the stream length (known once the stream is made).
  std::vector<uint8_t> f = {
      uint8_t((s.parent ? 1 : 0) | (s.aux ? 2 : 0) | s.hidden_index << 2 | s.role << 4),
      uint8_t(s.clip - 1), s.shifts, s.ranges, uint8_t(s.count), uint8_t(s.count >> 8),
      uint8_t(s.row), uint8_t(s.row >> 8), uint8_t(s.first), uint8_t(s.first >> 8),
      uint8_t(s.first >> 16), uint8_t(s.first >> 24)};
  for (int b = 0; b < 8; ++b) f.push_back(uint8_t(s.model_seed >> (8 * b)));
  f.resize(22);
  const ckz::LstmModel model = ckz_fuzz::MakeFuzzLstmModel(f.data());
  if (!model.WellFormed() || model.clip != s.clip) {
    std::fprintf(stderr, "make_lstm_corpus: %s: model not well formed\n", s.name.c_str());
    return false;
  }

  SeedRng r{s.seed};
  std::vector<int32_t> parent(s.count), aux(s.count), levels(s.count);
  for (uint32_t i = 0; i < s.count; ++i) {
    parent[i] = s.parent ? ckz_fuzz::SeedLevel(r, s.zero_every, s.big_every, 0) : 0;
    aux[i] = s.aux ? ckz_fuzz::SeedLevel(r, s.zero_every, s.big_every, 0) : 0;
    levels[i] = ckz_fuzz::SeedLevel(r, s.zero_every, s.big_every, parent[i]);
    if (s.aux && aux[i] == 0 && r.Next() % 2) levels[i] = 0;  // moments follow their aux
  }
  if (s.big_every) {  // every unary length's end and escapes of the shortest and longest prefixes
    const int32_t edges[] = {14, 15, -16, 29, 30, 31, 1000, 65536, (1 << 23) + 14, kMaxLevel,
                             -kMaxLevel};
    for (size_t i = 0; i < std::size(edges) && i < s.count; ++i) levels[i] = edges[i];
  }
  if (s.poison && s.count) levels[s.count / 2] = s.poison;
  ckz::LevelModelInputs in;
  in.first = s.first;
  in.row = s.row;
  in.lstm = &model;
  in.role = s.role;
  if (s.parent) in.parent = parent.data();
  if (s.aux) in.aux = aux.data();
  std::vector<uint8_t> coded;
  ckz::EncodeLevelStream(in, levels.data(), levels.size(), &coded);
  if (s.damage == 1 && !coded.empty()) coded.pop_back();
  if (s.damage == 2 && !coded.empty()) coded[coded.size() / 3] ^= 0x10;
  if (coded.size() > 0xFFFF) {
    std::fprintf(stderr, "make_lstm_corpus: %s: stream over 64 KiB\n", s.name.c_str());
    return false;
  }
  std::vector<int32_t> out(s.count);
  size_t bad = 0;
  const LevelDecodeResult res =
      ckz::DecodeLevelStream(in, coded.data(), coded.size(), out.data(), s.count, &bad);
  std::printf("  %-30s H %2u clip %u role %u %4u levels, stream %5zu bytes: %s", s.name.c_str(),
              model.hidden, model.clip, s.role, s.count, coded.size(), ckz_fuzz::ResultName(res));
  if (res == LevelDecodeResult::kTooLarge) std::printf(" at element %zu", bad);
  if (s.damage && res == LevelDecodeResult::kOk)
    std::printf("%s", out == levels ? " (the same levels)" : " (other levels)");
  std::printf("\n");
  const bool clean = s.damage == 0 && s.poison == 0;
  if ((clean && (res != LevelDecodeResult::kOk || out != levels)) ||
      (s.poison && (res != LevelDecodeResult::kTooLarge || bad != s.count / 2))) {
    std::fprintf(stderr, "make_lstm_corpus: %s does not decode as made\n", s.name.c_str());
    return false;
  }
  f[20] = uint8_t(coded.size());
  f[21] = uint8_t(coded.size() >> 8);
  f.insert(f.end(), coded.begin(), coded.end());
  // Context words: parent[i] = word i, aux[i] = word count + 1 + i; the round trip's levels
  // (word 3i + 7) then cycle through the same words.
  auto put = [&](uint32_t w) {
    for (int b = 0; b < 4; ++b) f.push_back(uint8_t(w >> (8 * b)));
  };
  if (s.parent || s.aux) {
    for (int32_t v : parent) put(ckz_fuzz::ContextWord(v));
    put(0);
    for (int32_t v : aux) put(ckz_fuzz::ContextWord(v));
  }
  std::ofstream(dir / s.name, std::ios::binary)
      .write(reinterpret_cast<const char*>(f.data()), std::streamsize(f.size()));
  return true;
}

// Header byte 2: recur_shift (0..15) and out_shift (2..15).
constexpr uint8_t Shifts(unsigned recur, unsigned out) { return uint8_t(recur | (out - 2) << 4); }
// Header byte 3: weight ranges (ckz_fuzz::kWeights*) and mix_init (ckz_fuzz::kMix*).
constexpr uint8_t Ranges(uint32_t weights, uint32_t mix) { return uint8_t(weights | mix << 2); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_lstm_corpus <folder>\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  using namespace ckz_fuzz;
  // name, hidden index, clip, shifts, ranges, role, model seed,
  //   parent, aux, count, row, first, seed, zero_every, big_every, damage, poison
  const std::vector<Seed> seeds = {
      {"h8_clip1_trained_1d", 0, 1, Shifts(10, 8), Ranges(kWeightsTrained, kMixTypical), 0, 101,
       false, false, 300, 0, 0, 1},
      {"h16_clip3_small_parent", 1, 3, Shifts(8, 6), Ranges(kWeightsSmall, kMixTypical), 1, 102,
       true, false, 400, 0, 0, 2},
      {"h24_clip5_mixed_2d_aux", 2, 5, Shifts(12, 10), Ranges(kWeightsMixed, kMixUniform), 2,
       103, false, true, 360, 12, 0, 3},
      {"h32_clip7_midrow_parent_aux", 3, 7, Shifts(11, 9), Ranges(kWeightsTrained, kMixBoth), 3,
       104, true, true, 700, 24, 50, 4},
      {"h32_full_range_saturating", 3, 4, Shifts(0, 2), Ranges(kWeightsFull, kMixEdges), 0, 105,
       true, false, 500, 10, 7, 5, 50},
      {"h8_full_range_shift15", 0, 2, Shifts(15, 15), Ranges(kWeightsFull, kMixUniform), 1, 106,
       false, true, 256, 16, 0, 6},
      {"h16_escapes_parent_aux", 1, 6, Shifts(9, 7), Ranges(kWeightsTrained, kMixTypical), 2, 107,
       true, true, 900, 30, 11, 7, 3, 5},
      {"h24_all_zero", 2, 2, Shifts(10, 8), Ranges(kWeightsSmall, kMixEdges), 3, 108, true, true,
       256, 16, 0, 8, 0},
      {"h32_count1024", 3, 3, Shifts(10, 8), Ranges(kWeightsMixed, kMixBoth), 0, 109, true, true,
       1024, 64, 0, 9, 4, 200},
      {"h8_count1_big_first", 0, 7, Shifts(4, 3), Ranges(kWeightsFull, kMixBoth), 1, 110, false,
       false, 1, 9, 4000000000u, 10, 1000},
      {"h16_truncated", 1, 3, Shifts(10, 8), Ranges(kWeightsTrained, kMixTypical), 0, 111, true,
       false, 400, 20, 0, 11, 3, 0, 1},
      {"h24_bit_flip", 2, 4, Shifts(10, 8), Ranges(kWeightsFull, kMixUniform), 2, 112, true, true,
       500, 25, 0, 12, 3, 20, 2},
      {"h32_prefix_24_ones", 3, 1, Shifts(10, 8), Ranges(kWeightsSmall, kMixTypical), 3, 113,
       false, false, 100, 10, 0, 13, 3, 0, 0, (1 << 24) + 14},
  };
  for (const Seed& s : seeds)
    if (!Write(dir, s)) return 1;
  std::printf("make_lstm_corpus: %zu seeds in %s\n", seeds.size(), dir.string().c_str());
  return 0;
}
