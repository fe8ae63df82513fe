// The decoder's element kernels (vectorized where the host allows) against their definitions:
// the byte-plane transforms of spec 7.3/7.4 written out element by element, the narrow level
// storage of common/level_width.h, and CRC-32C (spec 7.5) bit by bit. Lengths that are not multiples of the vector widths reach
// the scalar tails too.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "common/crc32c.h"
#include "common/level_width.h"
#include "common/transforms.h"

namespace ckz::testing {
namespace {

// Spec 7.3 then 7.4, one element at a time: Z[i·w + p] = D[p·E + i], then the predictor.
std::vector<uint8_t> InverseBySpec(Predictor predictor, bool planes, size_t w,
                                   const std::vector<uint8_t>& d, const std::vector<uint8_t>& ref) {
  const size_t e = d.size() / w;
  std::vector<uint8_t> out(d.size());
  for (size_t i = 0; i < e; ++i) {
    uint64_t z = 0, r = 0;
    for (size_t p = 0; p < w; ++p) {
      z |= uint64_t(planes ? d[p * e + i] : d[i * w + p]) << (8 * p);
      if (predictor != Predictor::kNone) r |= uint64_t(ref[i * w + p]) << (8 * p);
    }
    const uint64_t mask = w == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * w)) - 1;
    uint64_t x = z;
    if (predictor == Predictor::kXorRef) x = z ^ r;
    if (predictor == Predictor::kSubRef) x = (r + ((z >> 1) ^ (uint64_t{0} - (z & 1)))) & mask;
    for (size_t p = 0; p < w; ++p) out[i * w + p] = uint8_t(x >> (8 * p));
  }
  return out;
}

TEST(Kernels, InverseTransformMatchesTheSpecForEveryWidthPredictorAndLength) {
  std::mt19937 rng(7);
  for (size_t w : {1, 2, 4, 8})
    for (Predictor predictor : {Predictor::kNone, Predictor::kXorRef, Predictor::kSubRef})
      for (bool planes : {false, true})
        for (size_t elements : {1, 15, 16, 17, 33, 64, 1000}) {
          std::vector<uint8_t> d(elements * w), ref(elements * w);
          for (auto& b : d) b = uint8_t(rng());
          for (auto& b : ref) b = uint8_t(rng());
          const auto want = InverseBySpec(predictor, planes, w, d, ref);
          std::vector<uint8_t> got(d.size() + 1, 0xA5);  // one guard byte
          InverseTransform(predictor, planes, w, d.data(), ref.data(), d.size(), got.data());
          EXPECT_EQ(got[d.size()], 0xA5);
          got.pop_back();
          EXPECT_EQ(got, want) << "w " << w << " predictor " << int(predictor) << " planes "
                               << planes << " elements " << elements;
          if (!planes) continue;
          // The same planes lying apart (as stored streams lie in a file).
          std::vector<std::vector<uint8_t>> apart(w);
          const uint8_t* pointers[8] = {};
          for (size_t p = 0; p < w; ++p) {
            apart[p].assign(d.begin() + p * elements, d.begin() + (p + 1) * elements);
            pointers[p] = apart[p].data();
          }
          std::vector<uint8_t> from_planes(d.size());
          InverseTransformPlanes(predictor, w, pointers, ref.data(), d.size(),
                                 from_planes.data());
          EXPECT_EQ(from_planes, want) << "planes apart, w " << w << " elements " << elements;
          // And the forward transform undoes it.
          std::vector<uint8_t> back(d.size());
          ForwardTransform(predictor, planes, w, want.data(), ref.data(), want.size(), back.data());
          EXPECT_EQ(back, d);
        }
}

TEST(Kernels, LevelWidthIsTheNarrowestThatHoldsEveryLevel) {
  struct Case {
    int32_t level;
    uint32_t width;
  };
  for (const Case c : {Case{0, 1}, Case{127, 1}, Case{-128, 1}, Case{128, 2}, Case{-129, 2},
                       Case{32767, 2}, Case{-32768, 2}, Case{32768, 4}, Case{-32769, 4},
                       Case{(1 << 24) - 1, 4}, Case{-(1 << 24), 4}})
    for (size_t count : {1, 3, 4, 5, 16, 37})
      for (size_t at : {size_t{0}, count / 2, count - 1}) {
        std::vector<int32_t> levels(count, 1);
        levels[at] = c.level;
        EXPECT_EQ(LevelWidth(levels.data(), count), c.width)
            << "level " << c.level << " at " << at << " of " << count;
      }
  EXPECT_EQ(LevelWidth(nullptr, 0), 1u);
}

TEST(Kernels, NarrowedLevelsWidenToThemselves) {
  std::mt19937 rng(11);
  for (uint32_t width : {1u, 2u, 4u})
    for (size_t count : {0, 1, 7, 8, 15, 16, 17, 100, 1001}) {
      const int32_t bound = width == 1 ? 128 : width == 2 ? 32768 : 1 << 24;
      std::vector<int32_t> levels(count);
      for (auto& l : levels) l = int32_t(rng() % uint32_t(2 * bound)) - bound;
      if (count > 0) levels[0] = -bound, levels[count - 1] = bound - 1;
      std::vector<uint8_t> narrow(count * width);
      NarrowLevels(levels.data(), count, width, narrow.data());
      for (size_t i = 0; i < count; ++i) {  // little-endian two's complement, width bytes
        uint32_t v = 0;
        for (uint32_t b = 0; b < width; ++b) v |= uint32_t(narrow[i * width + b]) << (8 * b);
        const uint32_t mask = width == 4 ? ~0u : (1u << (8 * width)) - 1;
        ASSERT_EQ(v, uint32_t(levels[i]) & mask) << "width " << width << " level " << i;
      }
      std::vector<int32_t> wide(count, 99);
      WidenLevels(narrow.data(), count, width, wide.data());
      EXPECT_EQ(wide, levels) << "width " << width << " count " << count;
      std::vector<uint8_t> in_place(count * 4);
      if (count > 0) std::memcpy(in_place.data() + count * (4 - width), narrow.data(), narrow.size());
      WidenLevelsInPlace(in_place.data(), count, width);
      std::vector<int32_t> widened(count);
      if (count > 0) std::memcpy(widened.data(), in_place.data(), count * 4);
      EXPECT_EQ(widened, levels);
    }
}

// CRC-32C as spec 7.5 defines it, one bit at a time (reflected polynomial 0x82F63B78).
uint32_t Crc32cBySpec(const uint8_t* p, size_t n, uint32_t crc) {
  uint32_t c = ~crc;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int b = 0; b < 8; ++b) c = (c >> 1) ^ (c & 1 ? 0x82F63B78u : 0);
  }
  return ~c;
}

TEST(Kernels, Crc32cMatchesTheBitwiseDefinitionAtEveryLengthAndOffset) {
  const uint8_t check[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  EXPECT_EQ(Crc32c(check, 9), 0xE3069283u);  // the catalogue's check value
  std::mt19937 rng{7};
  std::vector<uint8_t> data(3 * 3 * 4096 + 100);
  for (uint8_t& x : data) x = uint8_t(rng());
  // Around the three-lane blocks (3 x 4096 bytes) and their multiples, short lengths, offsets.
  std::vector<size_t> lengths;
  for (size_t n = 0; n < 40; ++n) lengths.push_back(n);
  for (size_t m : {12288, 24576, 36864})
    for (size_t d : {0, 1, 7, 8, 9}) lengths.push_back(m - d), lengths.push_back(m + d);
  for (size_t n : lengths)
    for (size_t offset : {0, 1, 5})
      for (uint32_t start : {0u, 0x12345678u}) {
        if (offset + n > data.size()) continue;
        EXPECT_EQ(Crc32c(data.data() + offset, n, start), Crc32cBySpec(data.data() + offset, n, start))
            << n << " " << offset;
      }
  // Continuing a CRC is the CRC of the concatenation.
  const uint32_t a = Crc32c(data.data(), 20000);
  EXPECT_EQ(Crc32c(data.data() + 20000, 9000, a), Crc32c(data.data(), 29000));
}

}  // namespace
}  // namespace ckz::testing
