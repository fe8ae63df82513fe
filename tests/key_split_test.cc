// The KeySplit predictor (spec 7.10): the transform on its own, and lossless links using it.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ckz/decoder.h"
#include "ckz/writer.h"
#include "common/bytes.h"
#include "common/key_split.h"
#include "common/quantize.h"
#include "test_util.h"

namespace ckz {
namespace {

using testing::TestTensor;
using testing::WriteToMemory;

const LinkInfo kLink = testing::LinkOfDepth(1);

uint16_t To16(DType dtype, float f) {
  return dtype == DType::kBF16 ? F32BitsToBF16(F32Bits(f)) : F32BitsToF16(F32Bits(f));
}

// A reference and values: small moves (a few units in the last place), the same value, any
// pattern, sign flips, the largest difference, and special patterns on either side.
void MakePair(DType dtype, uint32_t seed, size_t n, std::vector<uint8_t>* x,
              std::vector<uint8_t>* r) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  const uint16_t specials[] = {0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x7C00, 0xFC00,
                               0x7E00, 0x0001, 0x8001, 0x03FF, 0x7FFF, 0xFFFF};
  x->resize(2 * n);
  r->resize(2 * n);
  for (size_t i = 0; i < n; ++i) {
    const uint16_t ref = To16(dtype, 0.05f * g(rng));
    uint16_t v = ref;
    switch (rng() % 8) {
      case 0: break;
      case 1: v = uint16_t(Unkey16((Key16(ref) + rng() % 9 - 4) & 0xFFFF)); break;
      case 2: v = uint16_t(Unkey16((Key16(ref) + rng() % 200 - 100) & 0xFFFF)); break;
      case 3: v = uint16_t(rng()); break;
      case 4: v = ref ^ 0x8000; break;
      case 5: v = uint16_t(Unkey16((Key16(ref) + 0x8000) & 0xFFFF)); break;  // d = -2^15
      case 6: v = specials[rng() % 13]; break;
      default: StoreLE16(r->data() + 2 * i, specials[rng() % 13]); v = uint16_t(rng()); break;
    }
    if (rng() % 8 != 7 || i == 0) StoreLE16(r->data() + 2 * i, ref);
    StoreLE16(x->data() + 2 * i, v);
  }
}

// Decodes with the three steps of spec 7.10, as the chunk decoder does.
bool Decode(DType dtype, const std::vector<uint8_t>& r, std::vector<uint8_t> symbols[9],
            std::vector<uint8_t> bits, std::vector<uint8_t>* out, size_t* bad = nullptr) {
  const size_t n = r.size() / 2;
  uint64_t counts[kKeySplitClasses];
  KeySplitCounts(dtype, r.data(), n, counts);
  const uint8_t* starts[kKeySplitClasses];
  for (size_t c = 0; c < kKeySplitClasses; ++c) {
    EXPECT_EQ(symbols[c].size(), counts[c]) << "class " << c;
    starts[c] = symbols[c].data();
  }
  uint64_t rest = 0;
  size_t where = 0;
  if (!KeySplitRestBits(dtype, r.data(), counts, starts, n, &rest, &where)) {
    if (bad) *bad = where;
    return false;
  }
  EXPECT_EQ(bits.size(), (rest + 7) / 8);
  const size_t size = bits.size();
  bits.resize(size + 8, 0xA5);  // the read-ahead bytes are never used
  out->assign(2 * n, 0);
  return KeySplitInverse(dtype, r.data(), starts, bits.data(), size, n, out->data());
}

TEST(KeySplit, KeysOrderTheValues) {
  EXPECT_EQ(Key16(0x0000), 0x8000u);  // +0
  EXPECT_EQ(Key16(0x8000), 0x7FFFu);  // -0, just below
  EXPECT_EQ(Key16(0xFFFF), 0x0000u);
  EXPECT_EQ(Key16(0x7FFF), 0xFFFFu);
  for (uint32_t v = 0; v < 65536; ++v) ASSERT_EQ(Unkey16(Key16(v)), v);
  // BF16 1.0 and the next value up are one key apart; so are -1.0 and the next value down.
  EXPECT_EQ(Key16(0x3F81) - Key16(0x3F80), 1u);
  EXPECT_EQ(Key16(0xBF80) - Key16(0xBF81), 1u);
}

TEST(KeySplit, ClassesFollowTheWidenedExponent) {
  const uint8_t* bf = KeySplitClassTable(DType::kBF16);
  const uint8_t* h = KeySplitClassTable(DType::kF16);
  EXPECT_EQ(bf[0x3F80], (127 - 95) >> 2);  // 1.0: exponent 127
  EXPECT_EQ(bf[0xBF80], (127 - 95) >> 2);  // the sign is ignored
  EXPECT_EQ(bf[0x0000], 0);                // zero and tiny values: class 0
  EXPECT_EQ(bf[0x7F80], 8);                // infinity: clamped to 130
  EXPECT_EQ(h[0x3C00], (127 - 95) >> 2);   // F16 1.0
  EXPECT_EQ(h[0x0001], (103 - 95) >> 2);   // smallest F16 subnormal: 2^-24, exponent 103
  EXPECT_EQ(h[0x0200], (112 - 95) >> 2);   // largest-exponent subnormal: 2^-15
  EXPECT_EQ(h[0x7C00], 8);
}

TEST(KeySplit, RoundTripsEveryKindOfChange) {
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(5000)}) {
      std::vector<uint8_t> x, r, out, bits;
      MakePair(dtype, uint32_t(n) + 1, n, &x, &r);
      std::vector<uint8_t> symbols[kKeySplitClasses];
      KeySplitForward(dtype, x.data(), r.data(), n, symbols, &bits);
      ASSERT_TRUE(Decode(dtype, r, symbols, bits, &out)) << DTypeName(dtype) << " n " << n;
      EXPECT_EQ(out, x) << DTypeName(dtype) << " n " << n;
    }
  }
}

TEST(KeySplit, UnchangedValuesCostOneZeroSymbolEach) {
  std::vector<uint8_t> x, r, bits;
  MakePair(DType::kBF16, 3, 1000, &x, &r);
  std::vector<uint8_t> symbols[kKeySplitClasses];
  KeySplitForward(DType::kBF16, r.data(), r.data(), 1000, symbols, &bits);
  EXPECT_TRUE(bits.empty());
  size_t total = 0;
  for (const auto& s : symbols) {
    total += s.size();
    for (uint8_t b : s) EXPECT_EQ(b, 0);
  }
  EXPECT_EQ(total, 1000u);
}

TEST(KeySplit, InvalidSymbolsAndPaddingAreCaught) {
  std::vector<uint8_t> x, r, out, bits;
  MakePair(DType::kBF16, 9, 300, &x, &r);
  std::vector<uint8_t> symbols[kKeySplitClasses];
  KeySplitForward(DType::kBF16, x.data(), r.data(), 300, symbols, &bits);
  size_t c = 0;
  while (symbols[c].size() < 2) ++c;
  // Each invalid symbol: size 17, size 0 with other bits, size 1 with top bits, size 2 odd.
  for (uint8_t s : {uint8_t(17 << 3), uint8_t(0x01), uint8_t((1 << 3) | 2), uint8_t((2 << 3) | 1)}) {
    std::vector<uint8_t> bad_symbols[kKeySplitClasses];
    for (size_t k = 0; k < kKeySplitClasses; ++k) bad_symbols[k] = symbols[k];
    bad_symbols[c][1] = s;
    size_t bad = SIZE_MAX;
    EXPECT_FALSE(Decode(DType::kBF16, r, bad_symbols, bits, &out, &bad)) << int(s);
    // The element: the second one of class c.
    const uint8_t* cls = KeySplitClassTable(DType::kBF16);
    size_t seen = 0, want = 0;
    for (size_t i = 0; i < 300; ++i)
      if (cls[LoadLE16(r.data() + 2 * i)] == c && seen++ == 1) want = i;
    EXPECT_EQ(bad, want) << int(s);
  }
  // A set padding bit in the bit stream's last byte.
  uint64_t used = 0;
  for (size_t k = 0; k < kKeySplitClasses; ++k)
    for (uint8_t s : symbols[k])
      if (s) used += (s >> 3) - 1 - std::min((s >> 3) - 1, 2);
  if (used % 8) {
    std::vector<uint8_t> padded = bits;
    padded.back() |= 0x80;
    EXPECT_FALSE(Decode(DType::kBF16, r, symbols, padded, &out));
  }
}

// Links: F16 and BF16 tensors close to their parent take KeySplit, decode exactly, set bit 7;
// a chunk needs its reference; other dtypes never take it.
TEST(KeySplitFile, LinksOfSixteenBitFloatsDecodeExactly) {
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    std::vector<uint8_t> child, parent;
    std::mt19937 rng(4);
    std::normal_distribution<float> g(0.f, 0.02f);  // weights; moves of 0.02 × 0.02
    const size_t n = 64 * 300;
    child.resize(2 * n);
    parent.resize(2 * n);
    for (size_t i = 0; i < n; ++i) {
      const float w = g(rng);
      StoreLE16(parent.data() + 2 * i, To16(dtype, w));
      // An Adam-like move: about the same absolute size for every weight, so small weights
      // move by more units in their last place than large ones.
      StoreLE16(child.data() + 2 * i, To16(dtype, w + 0.02f * g(rng)));
    }
    EncodeOptions o;
    o.chunk_bytes = 8000;
    const std::vector<uint8_t> f32 = testing::RandomTensorBytes(DType::kF32, 100, 2);
    const std::vector<TestTensor> tensors = {
        {{"w", dtype, {64, 300}, Role::kWeight, -1}, child},
        {{"f", DType::kF32, {100}, Role::kWeight, -1}, f32}};
    const std::vector<std::vector<uint8_t>> refs = {parent, f32};
    const std::vector<uint8_t> file = WriteToMemory(tensors, o, &kLink, &refs);
    auto a = ParseArchive(ByteSpan(file));
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_TRUE(a->preamble.required_features & kFeatureKeySplit);
    EXPECT_EQ(a->tensors[0].predictor, Predictor::kKeySplit);
    EXPECT_NE(a->tensors[1].predictor, Predictor::kKeySplit);
    std::vector<uint8_t> out(child.size());
    ChunkDecoder decoder;
    ASSERT_GT(a->tensors[0].chunks.size(), 1u);
    for (size_t c = 0; c < a->tensors[0].chunks.size(); ++c) {
      const ChunkInfo& ch = a->tensors[0].chunks[c];
      auto dir = ReadStreamDirectory(*a, 0, c);
      ASSERT_TRUE(dir.ok());
      EXPECT_EQ(dir->size(), kKeySplitStreams);
      MutableByteSpan dst(out.data() + ch.raw_offset, ch.raw_length);
      ASSERT_TRUE(decoder.Decode(*a, 0, c, ByteSpan(parent).subspan(ch.raw_offset, ch.raw_length),
                                 dst, nullptr).ok());
      EXPECT_EQ(decoder.Decode(*a, 0, c, ByteSpan(), dst, nullptr).code(),
                ErrorCode::kReferenceRequired);
    }
    EXPECT_EQ(out, child) << DTypeName(dtype);
  }
}

TEST(KeySplitFile, NotChosenWhereThePlanesAreSmaller) {
  // An unchanged tensor: one zstd plane stream beats ten streams.
  const std::vector<uint8_t> same = testing::RandomTensorBytes(DType::kBF16, 5000, 3);
  const std::vector<TestTensor> tensors = {{{"w", DType::kBF16, {5000}, Role::kWeight, -1}, same}};
  const std::vector<std::vector<uint8_t>> refs = {same};
  const std::vector<uint8_t> file = WriteToMemory(tensors, {}, &kLink, &refs);
  auto a = ParseArchive(ByteSpan(file));
  ASSERT_TRUE(a.ok());
  EXPECT_NE(a->tensors[0].predictor, Predictor::kKeySplit);
  EXPECT_FALSE(a->preamble.required_features & kFeatureKeySplit);
}

}  // namespace
}  // namespace ckz
