// Writes the seed corpus of fuzz_keysplit into the folder given on the command line:
//   make_keysplit_corpus fuzz/corpus/fuzz_keysplit
// Each seed is a real KeySplit chunk (spec 7.10) in fuzz_keysplit's input format: BF16 and F16
// references moved by a training-like step, by any pattern, or not at all; a few with a
// damaged symbol or a set padding bit. Deterministic (fixed seeds).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/key_split.h"
#include "common/quantize.h"

namespace {

using namespace ckz;  // NOLINT: a small tool

std::vector<uint8_t> Seed(DType dtype, size_t n, uint32_t seed, int kind, int damage) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 0.02f);
  std::vector<uint8_t> ref(2 * n), x(2 * n);
  for (size_t i = 0; i < n; ++i) {
    const float w = g(rng);
    const uint32_t b = F32Bits(w), b2 = F32Bits(w + (kind == 0 ? 0.02f * g(rng) : 0.f));
    const uint16_t r = dtype == DType::kBF16 ? F32BitsToBF16(b) : F32BitsToF16(b);
    uint16_t v = dtype == DType::kBF16 ? F32BitsToBF16(b2) : F32BitsToF16(b2);
    if (kind == 1) v = uint16_t(rng());
    StoreLE16(ref.data() + 2 * i, r);
    StoreLE16(x.data() + 2 * i, v);
  }
  std::vector<uint8_t> classes[kKeySplitClasses], bits;
  KeySplitForward(dtype, x.data(), ref.data(), n, classes, &bits);
  // Back to element order.
  std::vector<uint8_t> ordered(n);
  size_t next[kKeySplitClasses] = {};
  const uint8_t* cls = KeySplitClassTable(dtype);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t c = cls[LoadLE16(ref.data() + 2 * i)];
    ordered[i] = classes[c][next[c]++];
  }
  if (damage == 1 && n) ordered[n / 2] = 0x88;                   // size 17
  if (damage == 2 && !bits.empty()) bits.back() |= 0x80;        // a padding bit (maybe)
  std::vector<uint8_t> out = {uint8_t(dtype == DType::kBF16), uint8_t(n), uint8_t(n >> 8)};
  out.insert(out.end(), ref.begin(), ref.end());
  out.insert(out.end(), ordered.begin(), ordered.end());
  out.insert(out.end(), bits.begin(), bits.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_keysplit_corpus OUT_DIR\n");
    return 2;
  }
  int count = 0;
  for (DType dtype : {DType::kBF16, DType::kF16})
    for (int kind = 0; kind < 3; ++kind)
      for (int damage = 0; damage < 3; ++damage) {
        if (kind == 2 && damage) continue;
        const size_t n = kind == 2 ? 40 : 300 + 100 * size_t(damage);
        const std::vector<uint8_t> seed = Seed(dtype, n, 11 + uint32_t(kind * 7 + damage), kind, damage);
        const std::string name = std::string(argv[1]) + "/" + DTypeName(dtype) +
                                 (kind == 0 ? "_step" : kind == 1 ? "_any" : "_same") +
                                 (damage == 1 ? "_bad_symbol" : damage == 2 ? "_padding" : "");
        std::ofstream(name, std::ios::binary).write(reinterpret_cast<const char*>(seed.data()),
                                                    std::streamsize(seed.size()));
        ++count;
      }
  std::printf("%d seeds\n", count);
  return 0;
}
