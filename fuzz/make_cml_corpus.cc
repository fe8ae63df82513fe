// Writes the seed corpus of fuzz_cml into the folder given on the command line:
//   make_cml_corpus fuzz/corpus/fuzz_cml
// Each seed is a real cml stream (EncodeLevelStream) in fuzz_cml.cc's input format, with the
// parent/aux levels it was coded against as the context bytes: 1-D and 2-D chunks (some
// starting mid-row, rows of one element), with and without parent and aux levels, sparse and
// dense levels, every unary length and escapes up to 2^24 - 1, an all-zero chunk (empty
// stream); then damaged streams (truncated, trailing bytes, bit flips) and the two escapes a
// decoder must refuse (a prefix of 24 ones; 23 ones and low bits above 2^24 - 1), which the
// encoder writes when handed such a level. Each seed is decoded before it is written and its
// result printed; an undamaged one must decode to its levels. Deterministic (fixed seeds).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/level_model.h"
#include "level_seed_levels.h"

namespace {

using ckz::LevelDecodeResult;

using ckz_fuzz::SeedRng;

constexpr int32_t kMaxLevel = (1 << 24) - 1;

struct Seed {
  std::string name;
  bool parent = false, aux = false;
  uint32_t count, row = 0, first = 0;
  uint64_t seed;
  unsigned zero_every = 3;  // about one in zero_every levels zero (0: all zero)
  unsigned big_every = 0;   // about one in big_every levels an escape (0: none)
  int damage = 0;  // 1: last byte dropped, 2: half dropped, 3: 0x00 0x5A appended, 4: bit flip
  int32_t poison = 0;  // written at element count / 2: a level beyond 2^24 - 1
};

bool Write(const std::filesystem::path& dir, const Seed& s) {
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
  if (s.parent) in.parent = parent.data();
  if (s.aux) in.aux = aux.data();
  std::vector<uint8_t> coded;
  ckz::EncodeLevelStream(in, levels.data(), levels.size(), &coded);
  if (s.damage == 1 && !coded.empty()) coded.pop_back();
  if (s.damage == 2) coded.resize(coded.size() / 2);
  if (s.damage == 3) coded.insert(coded.end(), {0x00, 0x5A});
  if (s.damage == 4 && !coded.empty()) coded[coded.size() / 3] ^= 0x10;
  std::vector<int32_t> out(s.count);
  size_t bad = 0;
  const LevelDecodeResult res =
      ckz::DecodeLevelStream(in, coded.data(), coded.size(), out.data(), s.count, &bad);
  std::printf("  %-28s %4u levels, stream %5zu bytes: %s", s.name.c_str(), s.count,
              coded.size(), ckz_fuzz::ResultName(res));
  if (res == LevelDecodeResult::kTooLarge) std::printf(" at element %zu", bad);
  if (s.damage && res == LevelDecodeResult::kOk)
    std::printf("%s", out == levels ? " (the same levels)" : " (other levels)");
  std::printf("\n");
  const bool clean = s.damage == 0 && s.poison == 0;
  if ((clean && (res != LevelDecodeResult::kOk || out != levels)) ||
      (s.poison && (res != LevelDecodeResult::kTooLarge || bad != s.count / 2))) {
    std::fprintf(stderr, "make_cml_corpus: %s does not decode as made\n", s.name.c_str());
    return false;
  }
  std::vector<uint8_t> f = {uint8_t((s.parent ? 1 : 0) | (s.aux ? 2 : 0)), uint8_t(s.count),
                            uint8_t(s.count >> 8), uint8_t(s.row), uint8_t(s.row >> 8),
                            uint8_t(s.first), uint8_t(s.first >> 8), uint8_t(s.first >> 16),
                            uint8_t(s.first >> 24), uint8_t(coded.size()),
                            uint8_t(coded.size() >> 8)};
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

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_cml_corpus <folder>\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  // name, parent, aux, count, row, first, seed, zero_every, big_every, damage, poison
  const std::vector<Seed> seeds = {
      {"1d_sparse", false, false, 300, 0, 0, 1},
      {"1d_parent", true, false, 400, 0, 0, 2},
      {"2d_aux", false, true, 360, 12, 0, 3},
      {"2d_midrow_parent_aux", true, true, 700, 24, 50, 4},
      {"2d_parent_dense", true, false, 500, 10, 7, 5, 50},
      {"row1", false, false, 200, 1, 0, 6},
      {"all_zero_empty_stream", true, true, 256, 16, 0, 7, 0},
      {"escapes", false, false, 600, 20, 0, 8, 4, 3},
      {"escapes_parent_aux", true, true, 900, 30, 11, 9, 3, 5},
      {"largest_level", false, false, 11, 0, 0, 10, 1000, 1},
      {"count1", false, false, 1, 0, 0, 11, 1000},
      {"count4096", true, true, 4096, 64, 0, 12, 4, 200},
      {"big_first", false, false, 300, 9, 4000000000u, 13},
      {"truncated", true, false, 400, 20, 0, 14, 3, 0, 1},
      {"half", false, true, 400, 20, 0, 15, 3, 0, 2},
      {"trailing_bytes", false, false, 400, 20, 0, 16, 3, 0, 3},
      {"bit_flip", true, true, 500, 25, 0, 17, 3, 20, 4},
      {"prefix_24_ones", false, false, 100, 10, 0, 18, 3, 0, 0, (1 << 24) + 14},
      {"magnitude_2p24", true, false, 100, 10, 0, 19, 3, 0, 0, -((1 << 24) + 13)},
  };
  for (const Seed& s : seeds)
    if (!Write(dir, s)) return 1;
  std::printf("make_cml_corpus: %zu seeds in %s\n", seeds.size(), dir.string().c_str());
  return 0;
}
