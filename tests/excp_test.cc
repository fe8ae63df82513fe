// ExCP shrinking: k-means, pruning, joint masks; quantized tensors through the container.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "ckz/archive.h"
#include "ckz/checkpoint.h"
#include "ckz/decoder.h"
#include "common/bytes.h"
#include "compress/excp.h"
#include "file_surgery.h"
#include "format/chunk_layout.h"
#include "test_util.h"

namespace ckz::testing {
namespace {

std::vector<float> AsFloats(const std::vector<uint8_t>& bytes) {
  std::vector<float> f(bytes.size() / 4);
  std::memcpy(f.data(), bytes.data(), bytes.size());
  return f;
}
std::vector<uint8_t> AsBytes(const std::vector<float>& f) {
  std::vector<uint8_t> b(f.size() * 4);
  std::memcpy(b.data(), f.data(), b.size());
  return b;
}

TEST(SortKeys, GivesStdSortsOrderOfTheFloatsWithNegativeZeroFirst) {
  for (size_t n : {size_t{0}, size_t{5}, size_t{4095}, size_t{100000}}) {
    std::mt19937 rng{uint32_t(n)};
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t r = rng();
      // Normal values of both signs and every scale, denormals, zeros of both signs, ties.
      v[i] = r % 11 == 0   ? (r & 1 ? -0.0f : 0.0f)
             : r % 13 == 0 ? std::ldexp(float(int(r % 7) - 3), -140)
             : r % 5 == 0  ? float(int(r % 9) - 4)
                           : std::ldexp(float(int32_t(r) >> 8), int(rng() % 60) - 40);
    }
    std::vector<uint32_t> keys(n);
    for (size_t i = 0; i < n; ++i) keys[i] = KeyOfFloat(v[i]);
    std::sort(v.begin(), v.end());
    SortKeys(&keys);
    for (size_t i = 0; i < n; ++i) {
      const float f = FloatOfKey(keys[i]);
      ASSERT_EQ(f, v[i]) << n << " " << i;  // -0.0 == +0.0: the zeros' run may differ
      if (i > 0) {
        ASSERT_LE(keys[i - 1], keys[i]);
        EXPECT_FALSE(f == 0 && std::signbit(f) && !std::signbit(FloatOfKey(keys[i - 1])) &&
                     FloatOfKey(keys[i - 1]) == 0)
            << "-0.0 after +0.0 at " << i;
      }
    }
  }
}

TEST(KMeans1D, FewDistinctValuesAreKeptExactly) {
  EXPECT_EQ(KMeans1D({3.f, 1.f, 3.f, 2.f}, 15), (std::vector<float>{1.f, 2.f, 3.f}));
  EXPECT_TRUE(KMeans1D({}, 15).empty());
}

TEST(KMeans1D, CentresAreSortedDistinctAndFitTheData) {
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> v(20000);
  for (float& x : v) x = n(rng);
  const std::vector<float> c = KMeans1D(v, 15);
  ASSERT_EQ(c.size(), 15u);
  EXPECT_TRUE(std::is_sorted(c.begin(), c.end()));
  EXPECT_TRUE(std::adjacent_find(c.begin(), c.end()) == c.end());
  // Quantization error far below the spread of the data (Lloyd on a normal: ~0.1 RMS).
  double err = 0;
  for (float x : v) {
    float best = INFINITY;
    for (float y : c) best = std::min(best, std::fabs(x - y));
    err += double(best) * best;
  }
  EXPECT_LT(std::sqrt(err / double(v.size())), 0.15);
  EXPECT_EQ(c, KMeans1D(v, 15));  // deterministic
}

TEST(Shrink, WeightPrunesBelowKTimesTheMedianAndQuantizesTheRest) {
  const auto w0 = RandomTensorBytes(DType::kF32, 4000, 1);
  const auto w1 = PerturbF32(w0, 2, 0.05f);
  std::vector<float> v(4000, 1e-6f);  // mean(v) = 1e-6: k = 5e-5 / 1e-3 = 0.05
  ExcpOptions o;
  ShrinkResult r = ShrinkWeight(DType::kF32, ByteSpan(w1), ByteSpan(w0), DType::kF32,
                                ByteSpan(AsBytes(v)), o);
  ASSERT_TRUE(r.quantized);
  EXPECT_EQ(r.quant.kind, QuantKind::kResidual);
  EXPECT_NEAR(r.quant.prune_k, 0.05f, 1e-6);
  const auto a = AsFloats(w1), b = AsFloats(w0);
  std::vector<float> mag;
  for (size_t i = 0; i < a.size(); ++i) mag.push_back(std::fabs(a[i] - b[i]));
  std::vector<float> sorted = mag;
  std::nth_element(sorted.begin(), sorted.begin() + 2000, sorted.end());
  const float threshold = 0.05f * sorted[2000];
  EXPECT_FLOAT_EQ(r.quant.prune_threshold, threshold);
  for (size_t i = 0; i < mag.size(); ++i) EXPECT_EQ(r.indices[i] == 0, mag[i] <= threshold) << i;
  EXPECT_EQ(r.quant.codebook.size(), 15u);

  // k is capped at 2.5; without a second moment the fallback k is used.
  std::vector<float> tiny(4000, 1e-20f);
  r = ShrinkWeight(DType::kF32, ByteSpan(w1), ByteSpan(w0), DType::kF32, ByteSpan(AsBytes(tiny)), o);
  EXPECT_FLOAT_EQ(r.quant.prune_k, 2.5f);
  r = ShrinkWeight(DType::kF32, ByteSpan(w1), ByteSpan(w0), DType::kF32, ByteSpan(), o);
  EXPECT_FLOAT_EQ(r.quant.prune_k, 1.0f);
  o.k_at_cap = true;
  r = ShrinkWeight(DType::kF32, ByteSpan(w1), ByteSpan(w0), DType::kF32, ByteSpan(AsBytes(v)), o);
  EXPECT_FLOAT_EQ(r.quant.prune_k, 2.5f);
}

TEST(Shrink, NonFiniteValuesStayLossless) {
  auto w0 = RandomTensorBytes(DType::kF32, 100, 1);
  auto w1 = PerturbF32(w0, 2);
  const float inf = INFINITY;
  std::memcpy(w1.data() + 40, &inf, 4);
  ShrinkResult r = ShrinkWeight(DType::kF32, ByteSpan(w1), ByteSpan(w0), DType::kF32, ByteSpan(), {});
  EXPECT_FALSE(r.quantized);
  EXPECT_NE(r.lossless_reason.find("NaN or infinity"), std::string::npos);
}

TEST(Shrink, MomentsKeepOnlyWhereTheWeightAndTheMagnitudeAllow) {
  std::vector<float> m(1000);
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.f, 1.f);
  for (float& x : m) x = n(rng);
  std::vector<uint8_t> weight_keep(1000, 0);
  for (size_t i = 0; i < 1000; i += 2) weight_keep[i] = 1;
  ExcpOptions o;
  const ShrinkResult r = ShrinkMoment(DType::kF32, ByteSpan(AsBytes(m)), weight_keep, true, ByteSpan(), o);
  ASSERT_TRUE(r.quantized);
  EXPECT_EQ(r.quant.kind, QuantKind::kDirect);
  double mean_abs = 0;
  for (float x : m) mean_abs += std::fabs(x);
  mean_abs /= 1000;
  for (size_t i = 0; i < 1000; ++i)
    EXPECT_EQ(r.indices[i] != 0, weight_keep[i] && std::fabs(m[i]) > 2.0 * mean_abs) << i;
  // v follows m's mask exactly (no magnitude test of its own).
  std::vector<float> v(1000, 0.5f);
  const ShrinkResult rv = ShrinkMoment(DType::kF32, ByteSpan(AsBytes(v)), r.indices, false, ByteSpan(), o);
  for (size_t i = 0; i < 1000; ++i) EXPECT_EQ(rv.indices[i] != 0, r.indices[i] != 0);
  EXPECT_EQ(rv.quant.codebook, std::vector<float>{0.5f});
}

// v against its decoded reference: a residual, same mask as m; pruned elements keep the scaled
// reference (the scale keeps their sum) and no reconstruction is negative, even where the best
// centre would make it so.
TEST(Shrink, SecondMomentResidualKeepsReferenceAndStaysNonNegative) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<float> v(4000), ref(4000);
  std::vector<uint8_t> keep(4000, 0);
  for (size_t i = 0; i < v.size(); ++i) {
    ref[i] = u(rng) < 0.5f ? 1e-9f * u(rng) : u(rng);  // tiny and large references
    v[i] = std::max(0.f, ref[i] + (u(rng) - 0.6f));     // large changes both ways
    keep[i] = i % 3 != 0;
  }
  ExcpOptions o;
  o.bits = 2;  // 3 centres: coarse, so nearest centres often overshoot below zero
  const ShrinkResult r = ShrinkMoment(DType::kF32, ByteSpan(AsBytes(v)), keep, false,
                                      ByteSpan(AsBytes(ref)), o);
  ASSERT_TRUE(r.quantized);
  EXPECT_EQ(r.quant.kind, QuantKind::kResidual);
  size_t moved = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!keep[i]) {
      EXPECT_EQ(r.indices[i], 0) << i;
      continue;
    }
    const float base = ref[i] * r.quant.reference_scale;
    const float out = r.indices[i] ? base + r.quant.codebook[r.indices[i] - 1u] : base;
    EXPECT_GE(out, 0.f) << i;
    moved += r.indices[i] != 0;
  }
  EXPECT_GT(moved, v.size() / 3);
  double sum = 0, sum_ref = 0;
  for (size_t i = 0; i < v.size(); ++i)
    if (!keep[i]) {
      sum += v[i];
      sum_ref += ref[i];
    }
  EXPECT_NEAR(r.quant.reference_scale, sum / sum_ref, 1e-6 * sum / sum_ref);
}

// ExCP's k needs Adam's v: a weight without one (SGD, RMSprop, Adagrad, weights only) stays
// lossless with its moments unless fallback_k asks for the old fixed-k pruning.
TEST(Plan, WeightsWithoutAdamsSecondMomentStayLosslessUnlessAsked) {
  const uint64_t n = 2000;
  std::vector<std::vector<uint8_t>> bytes;  // the inputs' buffers, never reallocated below
  bytes.reserve(16);
  InputCheckpoint in;
  DecodedCheckpoint parent;
  auto add = [&](const std::string& name, Role role, int32_t owner, const char* key,
                 uint32_t seed) {
    InputTensor t;
    t.spec = {name, DType::kF32, {n}, role, owner};
    t.state_key = key;
    bytes.push_back(RandomTensorBytes(DType::kF32, n, seed));
    if (role == Role::kMoment2)  // a second moment is positive
      for (size_t i = 3; i < bytes.back().size(); i += 4) bytes.back()[i] &= 0x7F;
    t.data = ByteSpan(bytes.back());
    bytes.push_back(PerturbF32(bytes.back(), seed + 100, 0.05f));  // the parent's
    parent.AddView(t.spec, ByteSpan(bytes.back()));
    in.tensors.push_back(std::move(t));
  };
  add("adam", Role::kWeight, -1, "", 1);
  add("adam.exp_avg", Role::kMoment1, 0, "exp_avg", 2);
  add("adam.exp_avg_sq", Role::kMoment2, 0, "exp_avg_sq", 3);
  add("sgd", Role::kWeight, -1, "", 4);
  add("sgd.momentum_buffer", Role::kMoment1, 3, "momentum_buffer", 5);
  add("rms", Role::kWeight, -1, "", 6);
  add("rms.square_avg", Role::kMoment2, 5, "square_avg", 7);
  add("plain", Role::kWeight, -1, "", 8);

  auto plan = [&](const ExcpOptions& excp, WriteReport* report) {
    auto sink = std::make_unique<MemorySink>();
    MemorySink* mem = sink.get();
    Writer writer(std::move(sink), EncodeOptions{});
    LinkInfo link;
    link.depth = 1;
    writer.SetLink(link);
    WriteOptions options;
    options.excp = excp;
    EXPECT_TRUE(WriteCheckpoint(in, &parent, &writer, options, nullptr, report).ok());
    EXPECT_TRUE(writer.Finish().ok());
    auto a = ParseArchive(ByteSpan(mem->bytes()));
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    std::vector<bool> quantized;
    for (const TensorInfo& t : a->tensors) quantized.push_back(t.quantization.has_value());
    return std::make_pair(quantized, a->FindMetadata("excp.fallback_k") != nullptr);
  };
  WriteReport report;
  auto [quantized, recorded] = plan(ExcpOptions{}, &report);
  EXPECT_EQ(quantized, (std::vector<bool>{true, true, true, false, false, false, false, false}));
  EXPECT_EQ(report.quantized, 3u);
  EXPECT_EQ(report.without_adam_v, 3u);  // sgd, rms, plain
  EXPECT_FALSE(recorded);

  ExcpOptions fixed_k;
  fixed_k.fallback_k = 1.0;
  report = {};
  std::tie(quantized, recorded) = plan(fixed_k, &report);
  EXPECT_EQ(quantized, std::vector<bool>(8, true));
  EXPECT_EQ(report.without_adam_v, 0u);
  EXPECT_TRUE(recorded);
}

// ---- Quantized tensors in files ----

struct Quantized {
  std::vector<uint8_t> file, decoded, reference;
  TestTensor tensor;
};

Quantized WriteQuantized(DType dtype, QuantKind kind, std::optional<StreamCodec> codec,
                         uint64_t chunk_bytes = 1 << 20) {
  Quantized q;
  q.tensor = MakeTensor("w", dtype, {37, 29}, 9);
  q.tensor.spec.role = Role::kWeight;
  q.reference = RandomTensorBytes(dtype, 37 * 29, 10);
  QuantizationInfo info;
  info.kind = kind;
  info.bits = 3;
  info.codebook = {-0.01f, 0.f, 0.002f, 0.5f, 7.f};
  std::vector<uint8_t> indices(37 * 29);
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = uint8_t((i * 7) % 6);
  EncodeOptions o;
  o.index_codec = codec;
  o.chunk_bytes = chunk_bytes;
  auto sink = std::make_unique<MemorySink>();
  MemorySink* mem = sink.get();
  Writer w(std::move(sink), o);
  LinkInfo link;
  link.depth = 1;
  w.SetLink(link);
  q.decoded.resize(q.tensor.bytes.size());
  EXPECT_TRUE(w.AddQuantizedTensor(q.tensor.spec, info, ByteSpan(indices), ByteSpan(q.reference),
                                   MutableByteSpan(q.decoded))
                  .ok());
  EXPECT_TRUE(w.Finish().ok());
  q.file = std::move(mem->bytes());
  return q;
}

TEST(QuantizedFile, DecodesToTheWritersReconstructionWithEveryCodec) {
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64})
    for (QuantKind kind : {QuantKind::kResidual, QuantKind::kDirect})
      for (auto codec : {std::optional<StreamCodec>(), std::optional(StreamCodec::kZstd),
                         std::optional(StreamCodec::kPacked), std::optional(StreamCodec::kStored),
                         std::optional(StreamCodec::kCm)}) {
        const Quantized q = WriteQuantized(dtype, kind, codec, 200);
        auto a = ParseArchive(ByteSpan(q.file));
        ASSERT_TRUE(a.ok()) << a.status().ToString();
        // Bit 2 when the automatic choice (or the forced codec) is cm.
        EXPECT_EQ(a->preamble.required_features & ~(kFeatureContextModel | kFeatureCodedHeader),
                  kFeatureReferenceChain | kFeatureQuantized);
        ASSERT_TRUE(a->tensors[0].quantization);
        TestTensor ref = q.tensor;
        ref.bytes = q.reference;
        const std::vector<TestTensor> parent = {ref};
        MemoryReference source(parent);
        std::vector<uint8_t> out(q.decoded.size());
        Status s = DecodeTensorRange(*a, 0, 0, MutableByteSpan(out), &source);
        ASSERT_TRUE(s.ok()) << s.ToString();
        EXPECT_EQ(out, q.decoded) << DTypeName(dtype) << " " << QuantKindName(kind);
      }
}

TEST(QuantizedFile, DefaultChunksAreEqualAndSmallerForQuantizedTensors) {
  // By default a tensor is split into as few equal chunks as 1 MiB (lossless) or 256 KiB
  // (quantized) allow; the last is shorter by less than an element per chunk.
  const uint64_t lossless_elements = 300001, quantized_elements = 100000;
  auto sink = std::make_unique<MemorySink>();
  MemorySink* mem = sink.get();
  Writer w(std::move(sink), EncodeOptions{});
  LinkInfo link;
  link.depth = 1;
  w.SetLink(link);
  const std::vector<uint8_t> plain = RandomTensorBytes(DType::kF32, lossless_elements, 3);
  ASSERT_TRUE(w.AddTensor({"plain", DType::kF32, {lossless_elements}}, ByteSpan(plain)).ok());
  QuantizationInfo info;
  info.kind = QuantKind::kDirect;
  info.bits = 2;
  info.codebook = {-1.f, 1.f};
  std::vector<uint8_t> indices(quantized_elements), decoded(quantized_elements * 4);
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = uint8_t(i % 3);
  ASSERT_TRUE(w.AddQuantizedTensor({"q", DType::kF32, {quantized_elements}}, info,
                                   ByteSpan(indices), ByteSpan(), MutableByteSpan(decoded))
                  .ok());
  ASSERT_TRUE(w.Finish().ok());
  auto a = ParseArchive(ByteSpan(mem->bytes()));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto lengths = [&](size_t t) {
    std::vector<uint64_t> out;
    for (const ChunkInfo& c : a->tensors[t].chunks) out.push_back(c.raw_length);
    return out;
  };
  EXPECT_EQ(lengths(0), (std::vector<uint64_t>{600004, 600000}));
  EXPECT_EQ(lengths(1), (std::vector<uint64_t>{200000, 200000}));
}

TEST(QuantizedFile, RulesAndDecodingErrors) {
  const Quantized q = WriteQuantized(DType::kF32, QuantKind::kResidual, StreamCodec::kStored);
  const Archive base = ParseArchive(ByteSpan(q.file)).value();
  auto code = [&](const Archive& a) { return ParseArchive(ByteSpan(Rebuild(a, ByteSpan(q.file)))).status().code(); };
  Archive a = base;
  a.tensors[0].quantization->bits = 9;
  EXPECT_EQ(code(a), ErrorCode::kFieldOutOfRange);
  a = base;
  a.tensors[0].quantization->codebook.assign(8, 1.f);  // 3 bits allow 7
  EXPECT_EQ(code(a), ErrorCode::kFieldOutOfRange);
  a = base;
  a.tensors[0].quantization->codebook[0] = NAN;
  EXPECT_EQ(code(a), ErrorCode::kFieldOutOfRange);
  a = base;
  a.tensors[0].quantization->kind = static_cast<QuantKind>(3);
  EXPECT_EQ(code(a), ErrorCode::kFieldOutOfRange);
  a = base;
  a.tensors[0].byte_planes = true;
  EXPECT_EQ(code(a), ErrorCode::kFieldOutOfRange);
  a = base;
  a.preamble.required_features = kFeatureReferenceChain;  // bit 1 cleared
  EXPECT_EQ(code(a), ErrorCode::kFieldOutOfRange);
  a = base;
  a.tensors[0].quantization.reset();  // bit 1 set, nothing quantized
  EXPECT_EQ(code(a), ErrorCode::kFieldOutOfRange);
  a = base;
  a.link.reset();
  a.preamble.required_features = kFeatureQuantized;
  EXPECT_EQ(code(a), ErrorCode::kBadLink);  // a residual needs a link

  // An index beyond the 5 centres: a stored stream, so the byte is easy to reach.
  std::vector<uint8_t> f = q.file;
  f[base.tensors[0].chunks[0].offset + kStreamEntryBytes + 3] = 6;  // element 3
  auto b = ParseArchive(ByteSpan(f));
  ASSERT_TRUE(b.ok());
  std::vector<uint8_t> out(base.tensors[0].chunks[0].raw_length);
  ChunkDecoder d;
  EXPECT_EQ(d.Decode(*b, 0, 0, ByteSpan(q.reference.data(), out.size()), MutableByteSpan(out)).code(),
            ErrorCode::kCodebookIndex);
}

}  // namespace
}  // namespace ckz::testing
