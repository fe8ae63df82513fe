// The cm codec (spec 7.7): range coder, index-stream model, and files that use it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "ckz/checkpoint.h"
#include "ckz/decoder.h"
#include "common/index_model.h"
#include "common/range_coder.h"
#include "test_util.h"

namespace ckz {
namespace {


TEST(RangeCoder, RoundTripsSkewedAndEvenBits) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    std::mt19937 rng(seed);
    const double p1 = (seed % 10) / 10.0 + 0.001;
    std::bernoulli_distribution coin(p1);
    std::vector<int> bits(1 + rng() % 5000);
    for (int& b : bits) b = coin(rng);
    std::vector<uint8_t> out = {0xAB};  // the encoder appends after existing bytes
    std::vector<BitModel> enc_models(3);
    RangeEncoder enc(&out);
    for (size_t i = 0; i < bits.size(); ++i) enc.Encode(enc_models[i % 3], bits[i]);
    enc.Finish();
    ASSERT_EQ(out[0], 0xAB);
    RangeDecoder dec(out.data() + 1, out.size() - 1);
    std::vector<BitModel> dec_models(3);
    for (size_t i = 0; i < bits.size(); ++i)
      ASSERT_EQ(dec.Decode(dec_models[i % 3]), bits[i]) << "seed " << seed << " bit " << i;
    EXPECT_TRUE(dec.Finish());
  }
}

TEST(RangeCoder, ProbabilitiesStayInsideTheOpenInterval) {
  BitModel m;
  for (int i = 0; i < 100000; ++i) m.Update(0);
  EXPECT_LE(m.P0(), 65535u);
  for (int i = 0; i < 100000; ++i) m.Update(1);
  EXPECT_GE(m.P0(), 1u);
}

TEST(RangeCoder, CostIsNearTheEntropy) {
  std::mt19937 rng(1);
  std::bernoulli_distribution coin(0.05);
  std::vector<uint8_t> out;
  RangeEncoder enc(&out);
  BitModel m;
  const int n = 200000;
  for (int i = 0; i < n; ++i) enc.Encode(m, coin(rng));
  enc.Finish();
  const double entropy_bytes = n * 0.2864 / 8;  // H(0.05) = 0.2864 bits
  EXPECT_LT(double(out.size()), entropy_bytes * 1.08);  // adaptation noise of step 1/32
}

struct Case {
  std::vector<uint8_t> idx, parent, aux;
  IndexModelInputs in;
};

// Indices shaped like ExCP streams: mostly zeros, values correlated with parent and aux.
Case MakeCase(uint32_t seed, size_t count, uint32_t k, uint64_t row) {
  std::mt19937 rng(seed);
  Case c;
  c.idx.resize(count);
  c.parent.resize(count);
  c.aux.resize(count);
  for (size_t i = 0; i < count; ++i) {
    c.aux[i] = uint8_t(rng() % 3 == 0 ? 1 + rng() % 15 : 0);
    c.parent[i] = uint8_t(rng() % 2 ? 1 + rng() % 7 : 0);
    c.idx[i] = c.aux[i] == 0 ? 0 : uint8_t(1 + (c.parent[i] + rng() % 3) % k);
  }
  c.in.centres = k;
  c.in.first = seed % 7;
  c.in.row = row;
  c.in.parent = c.parent.data();
  c.in.parent_centres = 7;
  c.in.aux = c.aux.data();
  c.in.aux_centres = 15;
  return c;
}

TEST(IndexModel, RoundTripsWithEveryContextCombination) {
  for (uint32_t k : {1u, 2u, 3u, 15u, 255u})
    for (uint64_t row : {uint64_t{0}, uint64_t{1}, uint64_t{13}})
      for (int ctx = 0; ctx < 4; ++ctx) {
        Case c = MakeCase(k * 31 + uint32_t(row) + ctx, 3000, k, row);
        if (ctx & 1) c.in.parent = nullptr;
        if (ctx & 2) c.in.aux = nullptr;
        std::vector<uint8_t> coded;
        EncodeIndexStream(c.in, c.idx.data(), c.idx.size(), &coded);
        std::vector<uint8_t> back(c.idx.size());
        size_t bad = 0;
        ASSERT_EQ(DecodeIndexStream(c.in, coded.data(), coded.size(), back.data(), back.size(), &bad),
                  IndexDecodeResult::kOk);
        EXPECT_EQ(back, c.idx) << "k " << k << " row " << row << " ctx " << ctx;
      }
}

// Chunks of a 2-D tensor start mid-row: neighbours before the chunk's first element must never
// be looked at (the encoder has them, the decoder does not).
TEST(IndexModel, ChunksStartingMidRowDecodeAlone) {
  std::mt19937 rng(1);
  const size_t n = 1320, len = 250;
  std::vector<uint8_t> idx(n);
  for (auto& x : idx) x = uint8_t(rng() % 3 ? 1 + rng() % 15 : 0);
  for (uint64_t first : {0u, 250u, 500u, 1000u}) {
    IndexModelInputs in;
    in.centres = 15;
    in.first = first;
    in.row = 33;
    std::vector<uint8_t> coded, back(len);
    EncodeIndexStream(in, idx.data() + first, len, &coded);
    size_t bad = 0;
    ASSERT_EQ(DecodeIndexStream(in, coded.data(), coded.size(), back.data(), len, &bad),
              IndexDecodeResult::kOk) << first;
    EXPECT_TRUE(std::equal(back.begin(), back.end(), idx.begin() + long(first))) << first;
  }
}

TEST(IndexModel, ContextsMakeItSmallerThanPacking) {
  Case c = MakeCase(3, 100000, 15, 100);
  std::vector<uint8_t> with, without;
  EncodeIndexStream(c.in, c.idx.data(), c.idx.size(), &with);
  IndexModelInputs bare = c.in;
  bare.parent = bare.aux = nullptr;
  EncodeIndexStream(bare, c.idx.data(), c.idx.size(), &without);
  EXPECT_LT(with.size(), without.size());
  EXPECT_LT(without.size(), c.idx.size() / 2);  // below 4-bit packing
}

TEST(IndexModel, TrailingBytesAreRejected) {
  Case c = MakeCase(5, 2000, 15, 0);
  std::vector<uint8_t> coded;
  EncodeIndexStream(c.in, c.idx.data(), c.idx.size(), &coded);
  for (int extra = 1; extra < 8; ++extra) {
    std::vector<uint8_t> longer = coded;
    longer.resize(coded.size() + size_t(extra) + 4, 0x5A);
    std::vector<uint8_t> back(c.idx.size());
    size_t bad = 0;
    EXPECT_NE(DecodeIndexStream(c.in, longer.data(), longer.size(), back.data(), back.size(), &bad),
              IndexDecodeResult::kOk);
  }
}

// Every truncation and many corruptions decode in bounded time without reading outside the
// exact-size copy (ASan builds check that); the result is an error or other indices.
TEST(IndexModel, TruncatedAndCorruptedStreamsStayInBounds) {
  Case c = MakeCase(9, 4000, 15, 50);
  std::vector<uint8_t> coded;
  EncodeIndexStream(c.in, c.idx.data(), c.idx.size(), &coded);
  std::vector<uint8_t> back(c.idx.size());
  size_t bad = 0;
  for (size_t len = 0; len < coded.size(); ++len) {
    std::vector<uint8_t> cut(coded.begin(), coded.begin() + long(len));
    const auto r = DecodeIndexStream(c.in, cut.data(), cut.size(), back.data(), back.size(), &bad);
    EXPECT_TRUE(r != IndexDecodeResult::kOk || back != c.idx) << "length " << len;
  }
  std::mt19937 rng(4);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<uint8_t> broken = coded;
    broken[rng() % broken.size()] ^= uint8_t(1 + rng() % 255);
    const auto r =
        DecodeIndexStream(c.in, broken.data(), broken.size(), back.data(), back.size(), &bad);
    if (r == IndexDecodeResult::kIndexTooLarge) {
      EXPECT_LT(bad, back.size());
    }
  }
}

TEST(IndexModel, CodebookOverflowIsReportedWithItsElement) {
  // Indices coded for K = 15 read back as K = 9: some decode beyond the codebook.
  Case c = MakeCase(11, 3000, 15, 0);
  std::vector<uint8_t> coded;
  EncodeIndexStream(c.in, c.idx.data(), c.idx.size(), &coded);
  IndexModelInputs narrow = c.in;
  narrow.centres = 9;
  std::vector<uint8_t> back(c.idx.size());
  size_t bad = 0;
  EXPECT_EQ(DecodeIndexStream(narrow, coded.data(), coded.size(), back.data(), back.size(), &bad),
            IndexDecodeResult::kIndexTooLarge);
  EXPECT_LT(bad, back.size());
}

TEST(CmAux, MomentsPointAtTheirWeightAndSibling) {
  std::vector<CmTensorRole> r = {{Role::kWeight, -1, true},
                                 {Role::kMoment1, 0, true},
                                 {Role::kMoment2, 0, true},
                                 {Role::kMoment2, 0, false}};
  EXPECT_EQ(CmAuxTensor(r, 0), -1);
  EXPECT_EQ(CmAuxTensor(r, 1), 0);
  EXPECT_EQ(CmAuxTensor(r, 2), 1);
  EXPECT_EQ(CmAuxTensor(r, 3), -1);  // not quantized
  r[1].quantized = false;
  EXPECT_EQ(CmAuxTensor(r, 2), 0);  // no quantized Moment1: the weight
  r[0].quantized = false;
  EXPECT_EQ(CmAuxTensor(r, 2), -1);
}

// A chain written through WriteCheckpoint with --entropy cm decodes, through the parent's
// indices and the weight's, to exactly what the writer reconstructed.
TEST(CmFile, ChainOfLinksDecodesExactly) {
  const uint64_t rows = 40, cols = 33, n = rows * cols;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> storage;  // the inputs' bytes
  auto make = [&](uint32_t seed, const std::vector<float>& base, float scale) {
    InputCheckpoint in;
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.f, 1.f);
    std::vector<float> w(n), m(n), v(n);
    for (uint64_t i = 0; i < n; ++i) {
      w[i] = base[i] + scale * g(rng);
      m[i] = 0.01f * g(rng);
      v[i] = 1e-4f * (1.f + std::fabs(g(rng)));
    }
    auto add = [&](const std::string& name, Role role, int32_t owner, const std::vector<float>& x) {
      InputTensor t;
      t.spec = {name, DType::kF32, {rows, cols}, role, owner};
      storage.push_back(std::make_unique<std::vector<uint8_t>>(n * 4));
      std::memcpy(storage.back()->data(), x.data(), n * 4);
      t.data = ByteSpan(*storage.back());
      in.tensors.push_back(std::move(t));
    };
    add("w", Role::kWeight, -1, w);
    add("w.exp_avg", Role::kMoment1, 0, m);
    add("w.exp_avg_sq", Role::kMoment2, 0, v);
    return std::make_pair(std::move(in), w);
  };
  std::vector<float> base(n, 0.f);
  auto [key, w0] = make(1, base, 0.1f);
  WriteOptions options;
  options.excp = ExcpOptions{};
  EncodeOptions enc;
  enc.index_codec = StreamCodec::kCm;
  enc.chunk_bytes = 1000;  // several chunks per tensor
  DecodedCheckpoint parent;
  std::vector<std::vector<uint8_t>> files;
  {
    auto sink = std::make_unique<MemorySink>();
    MemorySink* mem = sink.get();
    Writer writer(std::move(sink), enc);
    ASSERT_TRUE(WriteCheckpoint(key, nullptr, &writer, options, &parent).ok());
    ASSERT_TRUE(writer.Finish().ok());
    files.push_back(mem->bytes());
  }
  std::vector<DecodedCheckpoint> decoded;
  std::vector<float> w = w0;
  for (uint32_t step = 0; step < 3; ++step) {
    auto [in, wn] = make(10 + step, w, 0.001f);
    w = wn;
    DecodedCheckpoint next;
    auto sink = std::make_unique<MemorySink>();
    MemorySink* mem = sink.get();
    Writer writer(std::move(sink), enc);
    LinkInfo link;
    link.depth = step + 1;
    writer.SetLink(link);
    WriteReport report;
    ASSERT_TRUE(WriteCheckpoint(in, &parent, &writer, options, &next, &report).ok());
    ASSERT_TRUE(writer.Finish().ok());
    EXPECT_EQ(report.quantized, 3u);
    auto a = ParseArchive(ByteSpan(mem->bytes()));
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_TRUE(a->preamble.required_features & kFeatureContextModel);
    for (size_t t = 0; t < a->tensors.size(); ++t) {
      ASSERT_TRUE(a->tensors[t].quantization);
      std::vector<uint8_t> out(a->tensors[t].byte_length), want(out.size());
      Status s = DecodeTensorRange(*a, t, 0, MutableByteSpan(out), &parent, {2});
      ASSERT_TRUE(s.ok()) << s.ToString();
      ASSERT_TRUE(next.ReadReference(a->tensors[t], 0, MutableByteSpan(want)).ok());
      EXPECT_EQ(out, want) << "link " << step << " tensor " << a->tensors[t].name;
      // Without the parent's indices a cm chunk of a link cannot be decoded.
      EXPECT_EQ(DecodeTensorRange(*a, t, 0, MutableByteSpan(out), nullptr).code(),
                ErrorCode::kReferenceRequired);
    }
    // All tensors at once, tensor 1 only as a slice: the same bytes on 1 and 3 threads, and
    // the moments' chunks decoded after the weight's (waves), so every chunk's indices are
    // decoded once: one cache miss per chunk decoded, whatever the thread count.
    const uint64_t slice_offset = 999, slice_length = 1234;  // chunks 0..2 of tensor 1
    size_t cm_chunks = 0;
    for (const TensorInfo& t : a->tensors) cm_chunks += t.chunks.size();
    for (int threads : {1, 3}) {
      std::vector<std::vector<uint8_t>> outs;
      std::vector<TensorRange> ranges;
      for (const TensorInfo& t : a->tensors) outs.emplace_back(t.byte_length);
      outs[1].resize(slice_length);
      for (size_t t = 0; t < a->tensors.size(); ++t)
        ranges.push_back({t, t == 1 ? slice_offset : 0, MutableByteSpan(outs[t])});
      IndexCache cache;
      DecodeOptions decode;
      decode.threads = threads;
      decode.index_cache = &cache;
      Status s = DecodeTensorRanges(*a, ranges, &parent, decode);
      ASSERT_TRUE(s.ok()) << s.ToString();
      for (size_t t = 0; t < a->tensors.size(); ++t) {
        std::vector<uint8_t> want(a->tensors[t].byte_length);
        ASSERT_TRUE(next.ReadReference(a->tensors[t], 0, MutableByteSpan(want)).ok());
        const uint64_t from = t == 1 ? slice_offset : 0;
        EXPECT_TRUE(std::equal(outs[t].begin(), outs[t].end(), want.begin() + from))
            << threads << " threads, tensor " << a->tensors[t].name;
      }
      // Tensor 2's contexts read all of tensor 1's indices: every chunk is decoded, once.
      EXPECT_EQ(cache.stats().lookups - cache.stats().hits, cm_chunks) << threads << " threads";
    }
    // A corrupted coded chunk gives a decoding or checksum error, never wrong bytes.
    std::vector<uint8_t> broken = mem->bytes();
    const ChunkInfo& c = a->tensors[0].chunks[1];
    broken[c.offset + c.stored_length - 1] ^= 0x40;
    auto b = ParseArchive(ByteSpan(broken));
    ASSERT_TRUE(b.ok());
    std::vector<uint8_t> out(b->tensors[0].byte_length);
    const ErrorCode code = DecodeTensorRange(*b, 0, 0, MutableByteSpan(out), &parent).code();
    EXPECT_TRUE(code == ErrorCode::kChunkChecksum || code == ErrorCode::kChunkDecodeFailed ||
                code == ErrorCode::kCodebookIndex)
        << ErrorCodeName(code);
    // Decoding the whole link reports the same error whatever the thread count.
    std::string first_error;
    for (int threads : {1, 2, 4}) {
      std::vector<std::vector<uint8_t>> outs;
      std::vector<TensorRange> ranges;
      for (const TensorInfo& t : b->tensors) outs.emplace_back(t.byte_length);
      for (size_t t = 0; t < b->tensors.size(); ++t) ranges.push_back({t, 0, MutableByteSpan(outs[t])});
      DecodeOptions decode;
      decode.threads = threads;
      const Status s = DecodeTensorRanges(*b, ranges, &parent, decode);
      EXPECT_FALSE(s.ok());
      if (threads == 1) first_error = s.ToString();
      EXPECT_EQ(s.ToString(), first_error) << threads << " threads";
    }
    parent = std::move(next);
  }
}

}  // namespace
}  // namespace ckz
