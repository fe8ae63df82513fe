// The libtorch trainer (spec 7.11's encoder side, docs/lstm.md): a model it trains on streams whose
// statistics a count-based context cannot follow must code unseen streams of the same kind
// smaller than cml alone, and must be a model the format accepts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/index_model.h"

#include "common/level_model.h"
#include "train/lstm_trainer.h"

namespace ckz {
namespace {

// Regimes of random length: dense runs whose levels share a sign, and sparse runs. cml sees
// only the left neighbour; the recurrence can remember the run.
std::vector<int32_t> RegimeLevels(uint64_t seed, size_t n) {
  auto next = [&seed] {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(seed >> 33);
  };
  std::vector<int32_t> q(n);
  size_t i = 0;
  while (i < n) {
    const size_t run = 40 + next() % 200;
    const bool dense = next() % 2;
    const int32_t sign = next() % 2 ? 1 : -1;
    for (size_t k = 0; k < run && i < n; ++k, ++i) {
      const uint32_t r = next() % 100;
      if (dense ? r < 75 : r < 4) q[i] = (dense && r < 70 ? sign : -sign) * int32_t(1 + next() % 3);
    }
  }
  return q;
}

TEST(LstmTrainer, LearnsWhatCountsCannotSeeAndQuantizesToAWellFormedModel) {
  std::vector<std::vector<int32_t>> streams;
  for (uint64_t s = 0; s < 12; ++s) streams.push_back(RegimeLevels(s + 1, 20000));
  std::vector<LstmTrainingChunk> train;
  for (size_t s = 0; s < 8; ++s) {
    LstmTrainingChunk c;
    c.levels = streams[s].data();
    c.count = streams[s].size();
    train.push_back(c);
  }
  LstmTrainOptions opt;
  opt.hidden = 8;
  opt.clip = 3;
  opt.max_steps = 150;
  opt.max_seconds = 60;
  LstmTrainReport rep;
  const LstmModel model = TrainLevelLstm(train, opt, &rep);
  ASSERT_TRUE(model.WellFormed());
  EXPECT_EQ(rep.steps, 150u);
  EXPECT_LT(rep.last_loss, rep.cml_loss);
  uint64_t plain = 0, mixed = 0;
  for (size_t s = 8; s < streams.size(); ++s) {  // streams the trainer never saw
    LevelModelInputs in;
    std::vector<uint8_t> a, b;
    EncodeLevelStream(in, streams[s].data(), streams[s].size(), &a);
    in.lstm = &model;
    EncodeLevelStream(in, streams[s].data(), streams[s].size(), &b);
    std::vector<int32_t> back(streams[s].size());
    size_t bad = 0;
    ASSERT_EQ(DecodeLevelStream(in, b.data(), b.size(), back.data(), back.size(), &bad),
              LevelDecodeResult::kOk);
    ASSERT_EQ(back, streams[s]);
    plain += a.size();
    mixed += b.size();
  }
  RecordProperty("cml_bytes", int(plain));
  RecordProperty("lstm_bytes", int(mixed));
  EXPECT_LT(double(mixed), 0.97 * double(plain)) << plain << " -> " << mixed;
}

// (0.11) Index streams (spec 7.11.7): regimes of runs whose non-zero indices sit near a
// run-specific centre. cm's VAL contexts see the left index's bucket of 4; the recurrence can
// remember the run's centre across its zeros.
std::vector<uint8_t> RegimeIndices(uint64_t seed, size_t n, uint32_t k) {
  auto next = [&seed] {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(seed >> 33);
  };
  std::vector<uint8_t> q(n, 0);
  size_t i = 0;
  while (i < n) {
    const size_t run = 40 + next() % 200;
    const uint32_t centre = 1 + next() % k;
    const uint32_t density = next() % 2 ? 60 : 10;
    for (size_t j = 0; j < run && i < n; ++j, ++i)
      if (next() % 100 < density) {
        const int32_t v = int32_t(centre) + int32_t(next() % 3) - 1;
        q[i] = uint8_t(std::clamp<int32_t>(v, 1, int32_t(k)));
      }
  }
  return q;
}

TEST(LstmTrainer, LearnsIndexStreamsWithCmsDecisions) {
  constexpr uint32_t kCentres = 15;
  std::vector<std::vector<uint8_t>> streams;
  for (uint64_t s = 0; s < 12; ++s) streams.push_back(RegimeIndices(s + 1, 20000, kCentres));
  std::vector<LstmTrainingChunk> train;
  for (size_t s = 0; s < 8; ++s) {
    LstmTrainingChunk c;
    c.index_in.centres = kCentres;
    c.indices = streams[s].data();
    c.count = streams[s].size();
    train.push_back(c);
  }
  LstmTrainOptions opt;
  opt.hidden = 8;
  opt.clip = 3;
  opt.max_steps = 150;
  opt.max_seconds = 60;
  LstmTrainReport rep;
  const LstmModel model = TrainLevelLstm(train, opt, &rep);
  ASSERT_TRUE(model.WellFormed());
  EXPECT_LT(rep.last_loss, rep.cml_loss);
  uint64_t plain = 0, mixed = 0;
  for (size_t s = 8; s < streams.size(); ++s) {
    IndexModelInputs in;
    in.centres = kCentres;
    std::vector<uint8_t> a, b;
    EncodeIndexStream(in, streams[s].data(), streams[s].size(), &a);
    in.lstm = &model;
    EncodeIndexStream(in, streams[s].data(), streams[s].size(), &b);
    std::vector<uint8_t> back(streams[s].size());
    size_t bad = 0;
    ASSERT_EQ(DecodeIndexStream(in, b.data(), b.size(), back.data(), back.size(), &bad),
              IndexDecodeResult::kOk);
    ASSERT_EQ(back, streams[s]);
    plain += a.size();
    mixed += b.size();
  }
  RecordProperty("cm_bytes", int(plain));
  RecordProperty("lstm_cm_bytes", int(mixed));
  EXPECT_LT(double(mixed), 0.97 * double(plain)) << plain << " -> " << mixed;
}

}  // namespace
}  // namespace ckz
