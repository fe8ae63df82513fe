// The cmf codec (spec 7.8): the float model over the range coder, and lossless links using it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "ckz/decoder.h"
#include "ckz/writer.h"
#include "common/bytes.h"
#include "common/float_model.h"
#include "test_util.h"

namespace ckz {
namespace {

using testing::PerturbF32;
using testing::RandomTensorBytes;
using testing::TestTensor;
using testing::WriteToMemory;

const LinkInfo kLink = testing::LinkOfDepth(1);

std::vector<uint8_t> Bytes(const std::vector<uint32_t>& bits) {
  std::vector<uint8_t> out(bits.size() * 4);
  for (size_t i = 0; i < bits.size(); ++i) StoreLE32(out.data() + 4 * i, bits[i]);
  return out;
}

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// Values near their predictions, far from them, and every special binary32 class.
void MakeValues(uint32_t seed, size_t n, std::vector<uint32_t>* x, std::vector<uint32_t>* p) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  const uint32_t specials[] = {0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000,
                               0xFFC00001, 0x7F800001, 0x00000001, 0x807FFFFF, 0x7F7FFFFF,
                               0xFF7FFFFF, 0x00800000};
  x->resize(n);
  p->resize(n);
  for (size_t i = 0; i < n; ++i) {
    const float base = 0.05f * g(rng);
    (*p)[i] = Bits(base);
    switch (rng() % 8) {
      case 0: (*x)[i] = (*p)[i]; break;                                     // unchanged
      case 1: (*x)[i] = specials[rng() % 12]; break;                        // special
      case 2: (*p)[i] = specials[rng() % 12]; (*x)[i] = Bits(base); break;  // special prediction
      case 3: (*x)[i] = uint32_t(rng()); break;                             // any pattern
      case 4: (*x)[i] = Bits(-base); break;                                 // sign flip
      default: (*x)[i] = Bits(base + 1e-4f * g(rng)); break;                // a training step
    }
  }
}

TEST(FloatModel, RoundTripsEveryBitPattern) {
  for (uint32_t seed = 0; seed < 30; ++seed) {
    std::vector<uint32_t> x, p;
    MakeValues(seed, 1 + seed * 97, &x, &p);
    const std::vector<uint8_t> xb = Bytes(x), pb = Bytes(p);
    for (bool predicted : {true, false}) {
      std::vector<uint8_t> coded = {0x5A};  // the encoder appends
      EncodeFloatStream(xb.data(), predicted ? pb.data() : nullptr, x.size(), &coded);
      ASSERT_EQ(coded[0], 0x5A);
      if (coded.size() > 1) {
        EXPECT_NE(coded.back(), 0);  // trailing zeros are dropped
      }
      const std::vector<uint8_t> stream(coded.begin() + 1, coded.end());
      std::vector<uint8_t> out(xb.size(), 0xEE);
      size_t bad = 0;
      ASSERT_EQ(DecodeFloatStream(stream.data(), stream.size(), predicted ? pb.data() : nullptr,
                                  out.data(), x.size(), &bad),
                FloatDecodeResult::kOk)
          << "seed " << seed;
      EXPECT_EQ(out, xb) << "seed " << seed << " predicted " << predicted;
    }
  }
}

TEST(FloatModel, ValuesEqualToTheirPredictionCodeToNothing) {
  std::vector<uint32_t> x, p;
  MakeValues(7, 500, &x, &p);
  const std::vector<uint8_t> pb = Bytes(p);
  std::vector<uint8_t> coded;
  EncodeFloatStream(pb.data(), pb.data(), p.size(), &coded);
  EXPECT_TRUE(coded.empty());
  std::vector<uint8_t> out(pb.size());
  size_t bad = 0;
  ASSERT_EQ(DecodeFloatStream(nullptr, 0, pb.data(), out.data(), p.size(), &bad),
            FloatDecodeResult::kOk);
  EXPECT_EQ(out, pb);
}

TEST(FloatModel, SmallStepsCostFewBits) {
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<uint32_t> x(20000), p(20000);
  for (size_t i = 0; i < x.size(); ++i) {
    const float w = 0.05f * g(rng);
    p[i] = Bits(w);
    x[i] = Bits(w + 1e-5f * g(rng));  // ~2^-17 steps on ~2^-5 values: ~12-bit differences
  }
  const std::vector<uint8_t> xb = Bytes(x), pb = Bytes(p);
  std::vector<uint8_t> coded;
  EncodeFloatStream(xb.data(), pb.data(), x.size(), &coded);
  EXPECT_LT(coded.size() * 8, x.size() * 16);  // well under the 32 bits of a stored value
}

TEST(FloatModel, InvalidSizeClassIsReportedWithItsElement) {
  // All 0xFF: code >= range, every decision is 1, the first class is 31.
  const std::vector<uint8_t> stream(8, 0xFF);
  std::vector<uint8_t> out(40);
  size_t bad = 99;
  EXPECT_EQ(DecodeFloatStream(stream.data(), stream.size(), nullptr, out.data(), 10, &bad),
            FloatDecodeResult::kBadSymbol);
  EXPECT_EQ(bad, 0u);
}

TEST(FloatModel, EscapeExponentOutsideTheRangeIsRejected) {
  // The first element's decisions do not depend on the prediction (fresh states): a stream
  // that decodes with prediction 2.0 but fails with +0.0 fails on the exponent step below 0.
  std::mt19937 rng(11);
  const std::vector<uint8_t> two = Bytes({0x40000000}), zero = Bytes({0});
  int found = 0;
  for (int tries = 0; tries < 20000 && found < 3; ++tries) {
    std::vector<uint8_t> stream(6);
    for (uint8_t& b : stream) b = uint8_t(rng());
    std::vector<uint8_t> out(4);
    size_t bad = 9;
    const auto near = DecodeFloatStream(stream.data(), stream.size(), two.data(), out.data(), 1,
                                        &bad);
    if (near == FloatDecodeResult::kBadSymbol) continue;
    const uint32_t e = (LoadLE32(out.data()) >> 23) & 0xFF;
    if (e > 125) continue;  // near classes reach down to exponent 126 only: this is an escape
    ++found;
    EXPECT_EQ(DecodeFloatStream(stream.data(), stream.size(), zero.data(), out.data(), 1, &bad),
              FloatDecodeResult::kBadSymbol);
    EXPECT_EQ(bad, 0u);
  }
  EXPECT_GT(found, 0);
}

TEST(FloatModel, TruncatedAndCorruptedStreamsStayInBounds) {
  std::vector<uint32_t> x, p;
  MakeValues(5, 3000, &x, &p);
  const std::vector<uint8_t> xb = Bytes(x), pb = Bytes(p);
  std::vector<uint8_t> coded;
  EncodeFloatStream(xb.data(), pb.data(), x.size(), &coded);
  std::mt19937 rng(5);
  for (int k = 0; k < 200; ++k) {
    std::vector<uint8_t> s = coded;
    if (k % 2) s.resize(rng() % s.size());
    else s[rng() % s.size()] ^= uint8_t(1 + rng() % 255);
    std::vector<uint8_t> exact(s.begin(), s.end()), out(xb.size());
    size_t bad = 0;
    const auto r = DecodeFloatStream(exact.data(), exact.size(), pb.data(), out.data(), x.size(),
                                     &bad);
    // Damage is caught here or changes the values (then the chunk's CRC-32C catches it).
    EXPECT_TRUE(r != FloatDecodeResult::kOk || out != xb) << "case " << k;
    if (r == FloatDecodeResult::kBadSymbol) {
      EXPECT_LT(bad, x.size());
    }
  }
}

// Lossless links: cmf forced, and chosen automatically where it wins, decode exactly; the
// file says so in its feature bits; a cmf chunk needs its reference.
TEST(FloatModelFile, LosslessLinksDecodeExactly) {
  const std::vector<uint8_t> parent = RandomTensorBytes(DType::kF32, 64 * 50, 1);
  const std::vector<uint8_t> child = PerturbF32(parent, 2, 1e-4f);
  for (bool forced : {true, false}) {
    EncodeOptions o;
    o.chunk_bytes = 4000;
    if (forced) o.float_codec = StreamCodec::kCmFloat;
    else o.float_codec.reset();  // cmf where it codes a sample smaller: here, everywhere
    const std::vector<uint8_t> ints(28, 3);
    const std::vector<TestTensor> tensors = {
        {{"w", DType::kF32, {64, 50}, Role::kWeight, -1}, child},
        {{"i", DType::kI32, {7}, Role::kOther, -1}, ints}};  // not F32: never cmf
    const std::vector<std::vector<uint8_t>> refs = {parent, ints};
    const std::vector<uint8_t> file = WriteToMemory(tensors, o, &kLink, &refs);
    auto a = ParseArchive(ByteSpan(file));
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_TRUE(a->preamble.required_features & kFeatureFloatModel);
    EXPECT_FALSE(a->tensors[0].byte_planes);
    for (size_t c = 0; c < a->tensors[0].chunks.size(); ++c) {
      auto dir = ReadStreamDirectory(*a, 0, c);
      ASSERT_TRUE(dir.ok());
      EXPECT_EQ((*dir)[0].codec, StreamCodec::kCmFloat);
    }
    auto dir = ReadStreamDirectory(*a, 1, 0);
    ASSERT_TRUE(dir.ok());
    EXPECT_NE((*dir)[0].codec, StreamCodec::kCmFloat);
    std::vector<uint8_t> out(child.size());
    ChunkDecoder decoder;
    for (size_t c = 0; c < a->tensors[0].chunks.size(); ++c) {
      const ChunkInfo& ch = a->tensors[0].chunks[c];
      MutableByteSpan dst(out.data() + ch.raw_offset, ch.raw_length);
      ASSERT_TRUE(decoder.Decode(*a, 0, c, ByteSpan(parent).subspan(ch.raw_offset, ch.raw_length),
                                 dst, nullptr).ok());
      EXPECT_EQ(decoder.Decode(*a, 0, c, ByteSpan(), dst, nullptr).code(),
                ErrorCode::kReferenceRequired);
    }
    EXPECT_EQ(out, child);
  }
}

TEST(FloatModelFile, ZstdChoiceKeepsTheFeatureBitClear) {
  const std::vector<uint8_t> parent = RandomTensorBytes(DType::kF32, 1000, 1);
  const std::vector<uint8_t> child = PerturbF32(parent, 2, 1e-4f);
  const std::vector<TestTensor> tensors = {{{"w", DType::kF32, {1000}, Role::kWeight, -1}, child}};
  const std::vector<std::vector<uint8_t>> refs = {parent};
  const std::vector<uint8_t> file = WriteToMemory(tensors, {}, &kLink, &refs);  // the default
  auto a = ParseArchive(ByteSpan(file));
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->preamble.required_features & kFeatureFloatModel);
}

}  // namespace
}  // namespace ckz
