// The LSTM level model's integer inference and the cml+lstm coding (spec 7.11): tables by
// formula, round trips, pinned bytes, and that a model which knows nothing costs little.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/crc32c.h"
#include "common/level_model.h"
#include "common/lstm_model.h"

namespace ckz {
namespace {

#include "common/lstm_tables.inc"

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A well-formed model with parameters drawn in [-range, range] (mixer weights near cml's 1.0).
LstmModel RandomModel(uint64_t seed, uint32_t hidden, uint32_t clip, int32_t range) {
  LstmModel m;
  m.hidden = hidden;
  m.clip = clip;
  m.recur_shift = 12;
  m.out_shift = 12;
  auto fill = [&](std::vector<int16_t>& v, size_t n) {
    v.resize(n);
    for (auto& x : v) x = int16_t(int32_t(SplitMix(seed) % uint64_t(2 * range + 1)) - range);
  };
  fill(m.gate_bias, LstmModel::GateBiasSize(hidden));
  fill(m.embed, LstmModel::EmbedSize(hidden, clip));
  fill(m.role, LstmModel::RoleSize(hidden));
  fill(m.recur, LstmModel::RecurSize(hidden));
  fill(m.out, LstmModel::OutSize(hidden));
  fill(m.out_bias, kLstmSlots);
  for (size_t i = 0; i < LstmModel::kMixInitSize; ++i)
    m.mix_init.push_back(i % 3 == 0 ? 65536 : i % 3 == 1 ? 16384 : 0);
  return m;
}

// Levels with structure: mostly small, a few escapes, rows of varying density.
std::vector<int32_t> RandomLevels(uint64_t seed, size_t n) {
  std::vector<int32_t> q(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t r = SplitMix(seed);
    const bool dense = (i / 64) % 3 == 0;
    if (r % 100 < (dense ? 60u : 10u)) {
      int32_t mag = 1 + int32_t((r >> 8) % 4);
      if ((r >> 16) % 200 == 0) mag = 15 + int32_t((r >> 24) % 100000);
      q[i] = (r >> 40) & 1 ? -mag : mag;
    }
  }
  return q;
}

TEST(LstmTables, AreTheSpecsFormulasRounded) {
  for (int n = 0; n < 2048; ++n) {
    const double x = (8.0 * n - 8192 + 4) / 1024;
    EXPECT_EQ(kLstmSigmoid[n], std::lround(1024 / (1 + std::exp(-x)))) << n;
    EXPECT_EQ(kLstmTanh[n], std::lround(1024 * std::tanh(x))) << n;
  }
  for (int i = 0; i < 4096; ++i) {
    const double p = (16.0 * i + 8) / 65536;
    EXPECT_EQ(kLstmStretch[i], std::clamp<long>(std::lround(256 * std::log(p / (1 - p))), -2047, 2047)) << i;
  }
  for (int t = -2047; t <= 2047; ++t)
    EXPECT_EQ(kLstmSquash[t + 2047],
              t == 0 ? 32768 : std::clamp<long>(std::lround(65536 / (1 + std::exp(-t / 256.0))), 32, 65504))
        << t;
}

TEST(LstmModel, WellFormedChecksSizesShiftsAndRanges) {
  LstmModel m = RandomModel(1, 16, 3, 100);
  EXPECT_TRUE(m.WellFormed());
  EXPECT_EQ(m.StoredBytes(), 2 * (64 + 4 * 8 * 64 + 4 * 64 + 64 * 16 + 16 * 16 + 16) + 4 * 192u);
  LstmModel bad = m;
  bad.hidden = 12;
  EXPECT_FALSE(bad.WellFormed());
  bad = m;
  bad.clip = 8;
  EXPECT_FALSE(bad.WellFormed());
  bad = m;
  bad.out_shift = 1;
  EXPECT_FALSE(bad.WellFormed());
  bad = m;
  bad.embed.pop_back();
  EXPECT_FALSE(bad.WellFormed());
  bad = m;
  bad.mix_init[5] = (1 << 20) + 1;
  EXPECT_FALSE(bad.WellFormed());
}

TEST(LstmLevelStream, RoundTripsWithEveryHiddenSizeClipAndContext) {
  for (uint32_t hidden : {8u, 16u, 24u, 32u})
    for (uint32_t clip : {1u, 3u, 7u})
      for (int ctx = 0; ctx < 4; ++ctx)
        for (int32_t range : {300, 32767}) {  // ordinary and saturating activations
          const LstmModel model = RandomModel(hidden * 31 + clip, hidden, clip, range);
          ASSERT_TRUE(model.WellFormed());
          const size_t n = 1500;
          const std::vector<int32_t> q = RandomLevels(ctx + hidden, n);
          const std::vector<int32_t> parent = RandomLevels(ctx + 99, n);
          const std::vector<int32_t> aux = RandomLevels(ctx + 7, n);
          LevelModelInputs in;
          in.first = 5;
          in.row = ctx % 2 ? 37 : 0;
          in.parent = ctx & 2 ? parent.data() : nullptr;
          in.aux = ctx == 3 ? aux.data() : nullptr;
          in.lstm = &model;
          in.role = uint32_t(ctx);
          std::vector<uint8_t> coded;
          EncodeLevelStream(in, q.data(), n, &coded);
          std::vector<int32_t> back(n);
          size_t bad = 0;
          ASSERT_EQ(DecodeLevelStream(in, coded.data(), coded.size(), back.data(), n, &bad),
                    LevelDecodeResult::kOk);
          ASSERT_EQ(back, q) << hidden << " " << clip << " " << ctx;
          // The same stream read as plain cml gives other levels or fails: the model is used.
          in.lstm = nullptr;
          const LevelDecodeResult plain = DecodeLevelStream(in, coded.data(), coded.size(), back.data(), n, &bad);
          EXPECT_TRUE(plain != LevelDecodeResult::kOk || back != q);
        }
}

// Pins the integer inference: any change to the arithmetic, the tables or the mixer changes
// these bytes (and so must come with a format version: spec 7.11). Every build (gcc, clang,
// -O0, -O3) must produce them.
TEST(LstmLevelStream, BytesArePinned) {
  const LstmModel model = RandomModel(2026, 16, 5, 2000);
  const std::vector<int32_t> q = RandomLevels(12, 4000), parent = RandomLevels(13, 4000);
  LevelModelInputs in;
  in.row = 50;
  in.parent = parent.data();
  in.lstm = &model;
  in.role = 1;
  std::vector<uint8_t> coded;
  EncodeLevelStream(in, q.data(), q.size(), &coded);
  EXPECT_EQ(coded.size(), 835u);
  EXPECT_EQ(Crc32c(coded.data(), coded.size()), 0x629B793Du);
}

// A model whose logits are all zero and whose mixer starts at cml's own prediction: only the
// stretch/squash round trip and the online mixer remain, and they must cost under 1 %.
TEST(LstmLevelStream, AModelThatKnowsNothingCostsLittle) {
  LstmModel model = RandomModel(3, 8, 3, 0);
  for (size_t i = 0; i < model.mix_init.size(); ++i) model.mix_init[i] = i % 3 == 0 ? 65536 : 0;
  const std::vector<int32_t> q = RandomLevels(4, 100000), parent = RandomLevels(5, 100000);
  LevelModelInputs in;
  in.parent = parent.data();
  std::vector<uint8_t> plain, mixed;
  EncodeLevelStream(in, q.data(), q.size(), &plain);
  in.lstm = &model;
  EncodeLevelStream(in, q.data(), q.size(), &mixed);
  EXPECT_LT(double(mixed.size()), 1.01 * double(plain.size()));
  EXPECT_GT(double(mixed.size()), 0.90 * double(plain.size()));
}

}  // namespace
}  // namespace ckz
