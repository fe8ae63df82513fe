// Level quantization (spec 7.9): step shifts, reconstruction, the cml stream, the header rules,
// and the rate-distortion planner through WriteCheckpoint and a chain on disk.
#include <algorithm>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "ckz/archive.h"
#include "ckz/checkpoint.h"
#include "ckz/decoder.h"
#include "ckz/io.h"
#include "common/level_model.h"
#include "common/quantize.h"
#include "compress/rd_plan.h"
#include "file_surgery.h"
#include "test_util.h"

namespace ckz::testing {
namespace {

std::vector<uint8_t> F32Bytes(const std::vector<float>& f) {
  std::vector<uint8_t> b(f.size() * 4);
  std::memcpy(b.data(), f.data(), b.size());
  return b;
}
std::vector<float> Floats(const std::vector<uint8_t>& b) {
  std::vector<float> f(b.size() / 4);
  std::memcpy(f.data(), b.data(), b.size());
  return f;
}

TEST(LevelLog, FractionTableIsTwoToTheJOver16RoundedToBinary32) {
  // Independently: the binary32 nearest to 2^(j/16), from a long-double root checked both ways.
  for (int j = 0; j < 16; ++j) {
    const float f = F32FromBits(kLevelLogFractions[j]);
    const long double exact = std::exp2l((long double)j / 16);
    const float below = std::nextafter(f, 0.0f), above = std::nextafter(f, 2.0f);
    EXPECT_LE(std::fabs((long double)f - exact), std::fabs((long double)below - exact)) << j;
    EXPECT_LE(std::fabs((long double)f - exact), std::fabs((long double)above - exact)) << j;
  }
}

TEST(StepShifts, FollowTheSourceExponentHalvedFlooredAndClamped) {
  QuantizationInfo q;
  q.kind = QuantKind::kLevelDirect;
  q.step = 1.0f;
  q.step_source = 3;
  q.step_slope = 1;
  q.step_center = -10;
  q.step_limit = 4;
  // Exponents -10 (d 0), -9 (d 1), -11 (d -1: floor(-1/2) = -1), -30 (clamped), 0 (d 10 ->
  // 5, clamped to 4), zero (-1000), infinity (+1000).
  const std::vector<float> src = {std::ldexp(1.5f, -10), std::ldexp(1.0f, -9), std::ldexp(1.0f, -11),
                                  std::ldexp(1.0f, -30), 1.0f, 0.0f, INFINITY};
  const auto bytes = F32Bytes(src);
  std::vector<int8_t> s(src.size());
  StepShifts(q, DType::kF32, bytes.data(), src.size(), s.data());
  EXPECT_EQ(s, (std::vector<int8_t>{0, 0, -1, -4, 4, -4, 4}));
  q.step_slope = -1;  // floor(-d / 2)
  StepShifts(q, DType::kF32, bytes.data(), src.size(), s.data());
  EXPECT_EQ(s, (std::vector<int8_t>{0, -1, 0, 4, -4, 4, -4}));
  // BF16 and F64 sources read their own exponents.
  const uint16_t bf = 0x3A80;  // 2^-10 in bfloat16
  StepShifts(q, DType::kBF16, reinterpret_cast<const uint8_t*>(&bf), 1, s.data());
  EXPECT_EQ(s[0], 0);
  const double d = std::ldexp(1.0, -14);  // d = -4: floor(4 / 2) = 2 with slope -1
  StepShifts(q, DType::kF64, reinterpret_cast<const uint8_t*>(&d), 1, s.data());
  EXPECT_EQ(s[0], 2);
}

// Spec 7.9.2's shifts element by element (exact arithmetic in double), against StepShifts at
// every length and offset around its 16-element SIMD blocks, for every exponent class.
TEST(StepShifts, MatchTheSpecElementByElementAtEveryLengthAndCentre) {
  std::mt19937 rng(7);
  std::vector<uint32_t> bits(300);
  for (size_t i = 0; i < bits.size(); ++i) {
    const uint32_t sign = (rng() & 1u) << 31, mantissa = rng() & 0x7FFFFFu;
    const uint32_t r = rng() % 8;  // zeros, subnormals, infinities and NaNs, extreme and usual
    const uint32_t exponent = r == 0 ? 0 : r == 1 ? 255 : r == 2 ? 1 + rng() % 3 : r == 3 ? 254 : 100 + rng() % 50;
    bits[i] = sign | (exponent << 23) | (r == 1 && (rng() & 1) ? 0 : mantissa);
  }
  std::vector<uint8_t> bytes(bits.size() * 4);
  std::memcpy(bytes.data(), bits.data(), bytes.size());
  QuantizationInfo q;
  q.kind = QuantKind::kLevelDirect;
  q.step = 1.0f;
  q.step_source = 0;
  for (int slope : {1, -1})
    for (int center : {-1100, -20, 0, 7, 1100})
      for (uint32_t limit : {0u, 3u, 24u, 32u}) {
        q.step_slope = slope;
        q.step_center = center;
        q.step_limit = limit;
        for (size_t offset : {0, 1, 5}) {
          for (size_t n : {0, 1, 15, 16, 17, 31, 32, 33, 100, 295}) {
            std::vector<int8_t> got(n, 99);
            StepShifts(q, DType::kF32, bytes.data() + 4 * offset, n, got.data());
            for (size_t i = 0; i < n; ++i) {
              const uint32_t e = (bits[offset + i] >> 23) & 0xFF;
              const double x = e == 0 ? -1000 : e == 255 ? 1000 : double(e) - 127;
              const double d = slope * (x - center);
              const double want = std::clamp(std::floor(d / 2), -double(limit), double(limit));
              ASSERT_EQ(got[i], int8_t(want)) << slope << " " << center << " " << limit << " "
                                               << offset << " " << n << " " << i;
            }
          }
        }
      }
}

// F32 LevelDirect and unscaled LevelResidual (SIMD four elements at a time) against spec
// 7.9.2 element by element, at every length around the blocks: every shift up to the limit,
// levels 0, small and beyond 2^24, references that are zeros of both signs, subnormals,
// infinities and NaNs with payloads (which keep the payload under level 0, else become the
// quiet NaN of their sign).
TEST(ReconstructLevels, F32DirectAndResidualMatchTheSpecAtEveryLength) {
  std::mt19937 rng(11);
  const size_t n = 203;
  std::vector<int32_t> levels(n);
  std::vector<int8_t> shifts(n);
  std::vector<uint32_t> ref_bits(n);
  QuantizationInfo q;
  q.step = 0.01f;
  q.step_limit = 24;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t r = rng() % 6;
    levels[i] = r == 0 ? 0 : r == 1 ? int32_t(rng() % 5) - 2 : r == 2 ? (1 << 24) - 1 - int32_t(rng() % 3)
                                                           : int32_t(rng() % 2001) - 1000;
    shifts[i] = int8_t(int(rng() % 49) - 24);
    const uint32_t k = rng() % 8, sign = (rng() & 1u) << 31;
    ref_bits[i] = k == 0 ? sign : k == 1 ? sign | (rng() & 0x7FFFFFu)                 // zero, subnormal
                : k == 2 ? sign | 0x7F800000u : k == 3 ? sign | 0x7F800000u | (1 + rng() % 0x7FFFFF)
                         : sign | ((100 + rng() % 40) << 23) | (rng() & 0x7FFFFFu);  // inf, NaN, usual
  }
  std::vector<uint8_t> ref(4 * n);
  std::memcpy(ref.data(), ref_bits.data(), ref.size());
  for (QuantKind kind : {QuantKind::kLevelDirect, QuantKind::kLevelResidual}) {
    q.kind = kind;
    for (size_t offset : {0, 1, 3})
      for (size_t count : {0, 1, 3, 4, 5, 7, 8, 9, 64, 199}) {
        std::vector<uint8_t> out(4 * count, 0xAB);
        ReconstructLevels(q, DType::kF32, levels.data() + offset, shifts.data() + offset, count,
                          ref.data() + 4 * offset, out.data());
        for (size_t i = 0; i < count; ++i) {
          const size_t e = offset + i;
          const float step = std::ldexp(q.step, shifts[e]), d = float(levels[e]) * step;
          const uint32_t r = ref_bits[e];
          const bool nan = (r & 0x7F800000u) == 0x7F800000u && (r & 0x7FFFFFu);
          uint32_t want;
          if (kind == QuantKind::kLevelDirect)
            want = levels[e] == 0 ? 0u : F32Bits(d);
          else if (levels[e] == 0)
            want = r;
          else
            want = nan ? (r & 0x80000000u) | 0x7FC00000u : F32Bits(F32FromBits(r) + d);
          uint32_t got;
          std::memcpy(&got, out.data() + 4 * i, 4);
          ASSERT_EQ(got, want) << int(kind) << " " << offset << " " << count << " " << i;
        }
      }
  }
}

TEST(ReconstructLevels, MatchesTheSpecsArithmeticForEveryKindAndDtype) {
  const std::vector<int32_t> levels = {0, 1, -1, 7, -300, 16, -17, 1 << 20};
  const std::vector<int8_t> shifts = {0, 1, -1, 2, 0, -2, 3, 0};
  const std::vector<float> ref = {0.5f, -0.25f, 0.0f, 3.0f, 1e-3f, 2.0f, -0.0f, 1e-20f};
  QuantizationInfo q;
  q.step = 0.01f;
  auto step = [&](size_t i) { return std::ldexp(q.step, shifts[i]); };
  std::vector<uint8_t> out(levels.size() * 4);
  // LevelDirect: q * step.
  q.kind = QuantKind::kLevelDirect;
  ReconstructLevels(q, DType::kF32, levels.data(), shifts.data(), levels.size(), nullptr, out.data());
  auto got = Floats(out);
  for (size_t i = 0; i < levels.size(); ++i)
    EXPECT_EQ(F32Bits(got[i]), F32Bits(levels[i] == 0 ? 0.0f : float(levels[i]) * step(i))) << i;
  // LevelResidual with a scale: round32(round32(r * g) + round32(q * step)).
  q.kind = QuantKind::kLevelResidual;
  q.reference_scale = 1.25f;
  const auto rb = F32Bytes(ref);
  ReconstructLevels(q, DType::kF32, levels.data(), shifts.data(), levels.size(), rb.data(), out.data());
  got = Floats(out);
  for (size_t i = 0; i < levels.size(); ++i) {
    const float b = ref[i] * 1.25f;
    EXPECT_EQ(F32Bits(got[i]), F32Bits(levels[i] == 0 ? b : b + float(levels[i]) * step(i))) << i;
  }
  // Scale 1 and level 0: the reference bit for bit (even -0.0).
  q.reference_scale = 1.0f;
  ReconstructLevels(q, DType::kF32, levels.data(), shifts.data(), levels.size(), rb.data(), out.data());
  EXPECT_EQ(std::memcmp(out.data(), rb.data(), 4), 0);
  // LevelLog, unit 1/4: b * F[j] * 2^n computed in binary64 and rounded once; zero references
  // take q * step.
  q.kind = QuantKind::kLevelLog;
  q.log_unit = 2;
  q.reference_scale = 1.25f;
  ReconstructLevels(q, DType::kF32, levels.data(), shifts.data(), levels.size(), rb.data(), out.data());
  got = Floats(out);
  for (size_t i = 0; i < levels.size(); ++i) {
    const float b = ref[i] * 1.25f;
    float want = b;
    if (levels[i] != 0 && b == 0) {
      want = float(levels[i]) * step(i);
    } else if (levels[i] != 0) {
      const int n = int(std::floor(levels[i] / 4.0)), j = (levels[i] - 4 * n) * 4;
      const float t = b * F32FromBits(kLevelLogFractions[j]);
      want = float(std::ldexp(double(t), n));
    }
    EXPECT_EQ(F32Bits(got[i]), F32Bits(want)) << i;
  }
  // Negative units multiply: unit 2^2 = 4 doublings per level.
  q.log_unit = -2;
  const int32_t two = 2;
  const int8_t zero = 0;
  ReconstructLevels(q, DType::kF32, &two, &zero, 1, rb.data(), out.data());
  EXPECT_EQ(Floats(out)[0], 0.5f * 1.25f * 256.0f);
  // F16 rounds the binary32 result a second time; BF16 likewise; F64 works in binary64.
  q.kind = QuantKind::kLevelDirect;
  q.reference_scale = 1.0f;
  q.log_unit = 0;
  const int32_t l = 3;
  uint16_t h = 0;
  ReconstructLevels(q, DType::kF16, &l, &zero, 1, nullptr, reinterpret_cast<uint8_t*>(&h));
  EXPECT_EQ(h, F32BitsToF16(F32Bits(3 * 0.01f)));
  ReconstructLevels(q, DType::kBF16, &l, &zero, 1, nullptr, reinterpret_cast<uint8_t*>(&h));
  EXPECT_EQ(h, F32BitsToBF16(F32Bits(3 * 0.01f)));
  double dv = 0;
  ReconstructLevels(q, DType::kF64, &l, &zero, 1, nullptr, reinterpret_cast<uint8_t*>(&dv));
  EXPECT_EQ(dv, 3.0 * double(0.01f));
}

TEST(LevelStream, RoundTripsEveryMagnitudeWithAndWithoutContexts) {
  std::mt19937 rng(5);
  std::geometric_distribution<int> geo(0.4);
  const size_t n = 5000;
  std::vector<int32_t> levels(n), parent(n), aux(n);
  for (size_t i = 0; i < n; ++i) {
    const int m = geo(rng);
    levels[i] = (rng() & 1) ? m : -m;
    parent[i] = levels[i] + int32_t(rng() % 3) - 1;
    aux[i] = (rng() & 1) ? -levels[i] : 0;
  }
  // Escapes of every prefix length, up to the largest level.
  const int32_t big[] = {14, 15, 16, 17, 30, 31, 1000, 65536, (1 << 23) + 14, (1 << 24) - 1,
                         -((1 << 24) - 1)};
  for (size_t k = 0; k < std::size(big); ++k) levels[100 + 7 * k] = big[k];
  for (int variant = 0; variant < 4; ++variant) {
    LevelModelInputs in;
    in.first = 123;
    in.row = variant & 1 ? 37 : 0;
    if (variant & 2) {
      in.parent = parent.data();
      in.aux = aux.data();
    }
    std::vector<uint8_t> stream;
    EncodeLevelStream(in, levels.data(), n, &stream);
    std::vector<int32_t> back(n);
    size_t bad = 0;
    ASSERT_EQ(DecodeLevelStream(in, stream.data(), stream.size(), back.data(), n, &bad),
              LevelDecodeResult::kOk) << variant;
    EXPECT_EQ(back, levels) << variant;
    // Bytes beyond what the coder reads fail finish (7.7.1: length <= consumed).
    stream.insert(stream.end(), 16, 0x55);
    EXPECT_NE(DecodeLevelStream(in, stream.data(), stream.size(), back.data(), n, &bad),
              LevelDecodeResult::kOk);
  }
  // All zeros code to an empty stream.
  std::vector<int32_t> zeros(300, 0), out(300, 7);
  std::vector<uint8_t> stream;
  EncodeLevelStream({}, zeros.data(), zeros.size(), &stream);
  EXPECT_TRUE(stream.empty());
  size_t bad = 0;
  EXPECT_EQ(DecodeLevelStream({}, stream.data(), 0, out.data(), out.size(), &bad),
            LevelDecodeResult::kOk);
  EXPECT_EQ(out, zeros);
  // All 0xFF bytes: every bit decodes as 1, so the first level escapes past 23 prefix bits.
  std::vector<uint8_t> ones(64, 0xFF);
  EXPECT_EQ(DecodeLevelStream({}, ones.data(), ones.size(), out.data(), 1, &bad),
            LevelDecodeResult::kTooLarge);
  EXPECT_EQ(bad, 0u);
}

TEST(ChooseLevels, RoundsWithoutLambdaAndMovesTowardZeroWithIt) {
  std::vector<double> t = {0.4, 0.6, -0.6, 2.5, -3.49, 1e9};
  std::vector<int32_t> q(t.size());
  ChooseLevels(t.data(), t.size(), {}, 0.0, q.data());
  EXPECT_EQ(q, (std::vector<int32_t>{0, 1, -1, 2, -3, kMaxLevel}));  // ties to even, clamped
  ChooseLevels(t.data(), t.size(), {}, 10.0, q.data());
  for (size_t i = 0; i + 1 < t.size(); ++i) {  // rounding, one toward zero, or zero
    const int32_t r = int32_t(std::nearbyint(t[i]));
    EXPECT_TRUE(q[i] == r || q[i] == r - (r > 0) + (r < 0) || q[i] == 0) << i;
  }
  EXPECT_EQ(q[3], 0);  // at this lambda the bits of a 2 outweigh its error
}

// A little Adam model: weights, m and v of a few shapes, moving like training does.
struct Step {
  InputCheckpoint in;
  std::vector<std::vector<uint8_t>> storage;
};

void MakeStep(uint32_t seed, const std::vector<std::vector<float>>& base, Step* out,
              std::vector<std::vector<float>>* next) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  const std::vector<std::vector<uint64_t>> shapes = {{24, 40}, {40}, {16, 8, 3}};
  out->storage.clear();
  out->storage.reserve(16);
  next->clear();
  for (size_t p = 0; p < shapes.size(); ++p) {
    uint64_t n = 1;
    for (uint64_t d : shapes[p]) n *= d;
    std::vector<float> w(n), m(n), v(n);
    for (uint64_t i = 0; i < n; ++i) {
      m[i] = 1e-3f * g(rng);
      v[i] = 1e-6f * (1.f + std::fabs(g(rng))) * (i % 97 == 0 ? 0.f : 1.f);  // some zeros
      w[i] = (base.empty() ? g(rng) : base[p][i]) - 1e-2f * m[i] / (std::sqrt(v[i]) + 1e-8f);
    }
    next->push_back(w);
    const uint32_t wi = uint32_t(out->in.tensors.size());
    auto add = [&](const std::string& name, Role role, int32_t owner, const std::vector<float>& x) {
      InputTensor t;
      t.spec = {name, DType::kF32, shapes[p], role, owner};
      out->storage.push_back(F32Bytes(x));
      t.data = ByteSpan(out->storage.back());
      out->in.tensors.push_back(std::move(t));
    };
    const std::string name = "p" + std::to_string(p);
    add(name, Role::kWeight, -1, w);
    add(name + ".exp_avg", Role::kMoment1, int32_t(wi), m);
    add(name + ".exp_avg_sq", Role::kMoment2, int32_t(wi), v);
  }
}

TEST(RdChain, LinksDecodeToTheWritersReconstructionThroughAChainOnDisk) {
  const std::string dir = FreshDir("rd_chain");
  std::vector<std::vector<float>> w;
  DecodedCheckpoint parent;
  std::vector<Step> steps(4);
  std::vector<DecodedCheckpoint> decoded(4);
  WriteOptions options;
  options.rd = RdOptions{};
  EncodeOptions encode;
  encode.chunk_bytes = 400;  // several chunks per tensor: fresh models at each
  for (size_t s = 0; s < steps.size(); ++s) {
    std::vector<std::vector<float>> next;
    MakeStep(uint32_t(10 + s), w, &steps[s], &next);
    w = next;
    const std::string path = dir + "/s" + std::to_string(s) + ".ckz";
    auto sink = AtomicFileSink::Create(path, true);
    ASSERT_TRUE(sink.ok());
    Writer writer(std::move(sink).value(), encode);
    std::unique_ptr<ChainReader> chain;
    if (s > 0) {
      auto r = ChainReader::Open(dir + "/s" + std::to_string(s - 1) + ".ckz");
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      chain = std::move(r).value();
      writer.SetLink(LinkTo(*chain));
    }
    WriteReport report;
    ASSERT_TRUE(WriteCheckpoint(steps[s].in, s ? &decoded[s - 1] : nullptr, &writer, options,
                                &decoded[s], &report)
                    .ok());
    ASSERT_TRUE(writer.Finish().ok());
    if (s > 0) {
      EXPECT_EQ(report.quantized, 9u);
    }
    // Every tensor decodes, through the chain on disk, to what the writer reconstructed.
    auto reader = ChainReader::Open(path);
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    const Archive& a = (*reader)->archive();
    EXPECT_EQ(s > 0, (a.preamble.required_features & kFeatureLevels) != 0);
    for (size_t t = 0; t < a.tensors.size(); ++t) {
      std::vector<uint8_t> out(a.tensors[t].byte_length), want(out.size());
      ASSERT_TRUE((*reader)->ReadTensor(t, 0, MutableByteSpan(out), 2).ok());
      ASSERT_TRUE(decoded[s].ReadReference(a.tensors[t], 0, MutableByteSpan(want)).ok());
      EXPECT_EQ(out, want) << a.tensors[t].name << " step " << s;
      if (s > 0) {
        ASSERT_TRUE(a.tensors[t].quantization);
        const QuantKind kinds[] = {QuantKind::kLevelResidual, QuantKind::kLevelDirect,
                                   QuantKind::kLevelLog};
        EXPECT_EQ(a.tensors[t].quantization->kind, kinds[t % 3]);
        // m's steps follow the parent's v: the tensor after it.
        EXPECT_EQ(a.tensors[t].quantization->step_source, t % 3 == 1 ? int32_t(t + 1) : -1);
      }
    }
    auto verified = VerifyChain(**reader, 2);
    EXPECT_TRUE(verified.ok()) << verified.status().ToString();
  }
  // The link's weights stay within about a step of the input (closed loop: no drift), and
  // v keeps its sign.
  std::vector<uint8_t> got(steps[3].in.tensors[0].data.size);
  TensorInfo info;
  info.name = "p0";
  info.dtype = DType::kF32;
  info.shape = steps[3].in.tensors[0].spec.shape;
  ASSERT_TRUE(decoded[3].ReadReference(info, 0, MutableByteSpan(got)).ok());
  const auto x = Floats(got);
  const float* orig = reinterpret_cast<const float*>(steps[3].in.tensors[0].data.data);
  double err = 0, moved = 0;
  for (size_t i = 0; i < x.size(); ++i) err = std::max(err, double(std::fabs(x[i] - orig[i])));
  const float* before = reinterpret_cast<const float*>(steps[2].in.tensors[0].data.data);
  for (size_t i = 0; i < x.size(); ++i) moved += double(orig[i] - before[i]) * (orig[i] - before[i]);
  EXPECT_LT(err, 3 * std::sqrt(moved / double(x.size())));
}

// (0.10, spec 7.9.3) A link's level weights read their Moment1's levels in the parent: with
// the moments before the weights in the file (the parent's m must outlive the link's m until
// the weight is written, though the writer releases the parent's indices as it goes), and
// without (0.9's contexts, no bit 9), the chain decodes to the writer's reconstruction.
TEST(RdChain, WeightsReadTheirMomentInTheParentWhateverTheTensorOrder) {
  for (const bool moment_context : {true, false}) {
    const std::string dir = FreshDir(moment_context ? "rd_moment_on" : "rd_moment_off");
    std::vector<std::vector<float>> w;
    std::vector<Step> steps(3);
    std::vector<DecodedCheckpoint> decoded(3);
    WriteOptions options;
    options.rd = RdOptions{};
    options.release_reference_indices = true;
    options.batch_bytes = 1;  // one tensor per batch: released as each is written
    options.moment_context = moment_context;
    EncodeOptions encode;
    encode.chunk_bytes = 400;
    for (size_t s = 0; s < steps.size(); ++s) {
      std::vector<std::vector<float>> next;
      MakeStep(uint32_t(20 + s), w, &steps[s], &next);
      w = next;
      // Reverse the tensor order: moments first, their owners' indices remapped.
      std::vector<InputTensor>& t = steps[s].in.tensors;
      std::reverse(t.begin(), t.end());
      for (InputTensor& x : t)
        if (x.spec.owner >= 0) x.spec.owner = int32_t(t.size()) - 1 - x.spec.owner;
      const std::string path = dir + "/s" + std::to_string(s) + ".ckz";
      auto sink = AtomicFileSink::Create(path, true);
      ASSERT_TRUE(sink.ok());
      Writer writer(std::move(sink).value(), encode);
      if (s > 0) {
        auto r = ChainReader::Open(dir + "/s" + std::to_string(s - 1) + ".ckz");
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        writer.SetLink(LinkTo(**r));
      }
      const Status st = WriteCheckpoint(steps[s].in, s ? &decoded[s - 1] : nullptr, &writer,
                                        options, &decoded[s]);
      ASSERT_TRUE(st.ok()) << st.ToString();
      ASSERT_TRUE(writer.Finish().ok());
      auto reader = ChainReader::Open(path);
      ASSERT_TRUE(reader.ok()) << reader.status().ToString();
      const Archive& a = (*reader)->archive();
      // Bit 9 only where a weight reads its moment in the parent: not in the first link (its
      // parent, the keyframe, has no levels).
      EXPECT_EQ(s > 1 && moment_context,
                (a.preamble.required_features & kFeatureMomentContext) != 0);
      for (size_t k = 0; k < a.tensors.size(); ++k) {
        std::vector<uint8_t> out(a.tensors[k].byte_length), want(out.size());
        ASSERT_TRUE((*reader)->ReadTensor(k, 0, MutableByteSpan(out), 2).ok());
        ASSERT_TRUE(decoded[s].ReadReference(a.tensors[k], 0, MutableByteSpan(want)).ok());
        EXPECT_EQ(out, want) << a.tensors[k].name << " step " << s;
      }
    }
    // The same weights, levels and reconstruction either way; only their coding differs.
    static std::vector<uint8_t> first_weights;
    TensorInfo info;
    info.name = "p0";
    info.dtype = DType::kF32;
    info.shape = {24, 40};
    std::vector<uint8_t> got(24 * 40 * 4);
    ASSERT_TRUE(decoded[2].ReadReference(info, 0, MutableByteSpan(got)).ok());
    if (moment_context) first_weights = got;
    else EXPECT_EQ(got, first_weights);
  }
}

TEST(RdPlan, WeightsOnlyModeKeepsEveryErrorWithinHalfAStep) {
  std::vector<std::vector<float>> w;
  Step a, b;
  std::vector<std::vector<float>> next;
  MakeStep(1, w, &a, &next);
  MakeStep(2, next, &b, &w);
  // Keep the weights only.
  for (Step* s : {&a, &b}) {
    std::vector<InputTensor> kept;
    for (InputTensor& t : s->in.tensors)
      if (t.spec.role == Role::kWeight) kept.push_back(t);
    s->in.tensors = kept;
  }
  DecodedCheckpoint parent, link;
  for (const InputTensor& t : a.in.tensors) parent.AddView(t.spec, t.data);
  WriteOptions options;
  options.rd = RdOptions{};
  auto write = [&](WriteReport* report) {
    Writer writer(std::make_unique<MemorySink>(), EncodeOptions{});
    LinkInfo l;
    l.depth = 1;
    writer.SetLink(l);
    EXPECT_TRUE(WriteCheckpoint(b.in, &parent, &writer, options, &link, report).ok());
    EXPECT_TRUE(writer.Finish().ok());
  };
  WriteReport report;
  write(&report);  // no Adam v, no weights_only_step: lossless
  EXPECT_EQ(report.quantized, 0u);
  EXPECT_EQ(report.without_adam_v, 3u);
  options.rd->weights_only_step = 0.01;
  report = {};
  write(&report);
  EXPECT_EQ(report.quantized, 3u);
  for (const InputTensor& t : b.in.tensors) {
    const float* x = reinterpret_cast<const float*>(t.data.data);
    const size_t n = t.data.size / 4;
    double rms = 0;
    for (size_t i = 0; i < n; ++i) rms += double(x[i]) * x[i];
    rms = std::sqrt(rms / double(n));
    const float step = float(0.01 * rms);
    TensorInfo info;
    info.name = t.spec.name;
    info.dtype = t.spec.dtype;
    info.shape = t.spec.shape;
    std::vector<uint8_t> got(t.data.size);
    ASSERT_TRUE(link.ReadReference(info, 0, MutableByteSpan(got)).ok());
    const auto y = Floats(got);
    for (size_t i = 0; i < n; ++i)
      ASSERT_LE(std::fabs(y[i] - x[i]), step / 2 * 1.0001f + 1e-7f) << t.spec.name << " " << i;
  }
}

TEST(LevelRules, TheParserRejectsWhatADecoderCannotApply) {
  // A valid link with one LevelDirect tensor, then broken one field at a time.
  std::vector<int32_t> levels(12, 3);
  std::vector<uint8_t> decoded(48);
  QuantizationInfo q;
  q.kind = QuantKind::kLevelDirect;
  q.step = 0.5f;
  auto sink = std::make_unique<MemorySink>();
  MemorySink* mem = sink.get();
  Writer writer(std::move(sink), EncodeOptions{});
  LinkInfo l;
  l.depth = 1;
  writer.SetLink(l);
  ASSERT_TRUE(writer.AddLevelTensor({"m", DType::kF32, {3, 4}}, q, levels.data(), {}, {},
                                    DType::kF32, MutableByteSpan(decoded))
                  .ok());
  ASSERT_TRUE(writer.Finish().ok());
  const std::vector<uint8_t> good = mem->bytes();
  auto a = ParseArchive(ByteSpan(good));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(Floats(decoded)[0], 1.5f);
  std::vector<uint8_t> out(48);
  ASSERT_TRUE(DecodeTensorRange(*a, 0, 0, MutableByteSpan(out), nullptr).ok() == false);
  // (A link needs its parent even for LevelDirect: the cml contexts read its levels.)

  // Header surgery: each broken field is the parser's FieldOutOfRange (or BadLink).
  auto parse_with = [&](const std::function<void(Archive*)>& edit) {
    Archive broken = *a;
    edit(&broken);
    const std::vector<uint8_t> bytes = Rebuild(broken, ByteSpan(good));
    return ParseArchive(ByteSpan(bytes)).status().code();
  };
  auto quant = [](Archive* x) -> QuantizationInfo& { return *x->tensors[0].quantization; };
  EXPECT_EQ(parse_with([](Archive*) {}), ErrorCode::kOk);
  EXPECT_EQ(parse_with([&](Archive* x) { quant(x).bits = 4; }), ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([&](Archive* x) { quant(x).codebook = {1.f}; }), ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([&](Archive* x) { quant(x).step = -1.f; }), ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([&](Archive* x) { quant(x).log_unit = 2; }), ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([&](Archive* x) { quant(x).step_limit = 1; }), ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([&](Archive* x) {
              quant(x).step_source = 0;  // itself (Q10)
              quant(x).step_slope = 1;
            }),
            ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([&](Archive* x) {
              quant(x).step_source = 5;  // beyond the tensors
              quant(x).step_slope = 1;
            }),
            ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([&](Archive* x) {
              quant(x).step_source = 0;
              quant(x).step_slope = 2;
            }),
            ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([&](Archive* x) { x->preamble.required_features &= ~kFeatureLevels; }),
            ErrorCode::kFieldOutOfRange);  // Q11
  EXPECT_EQ(parse_with([&](Archive* x) {
              quant(x).kind = QuantKind::kResidual;  // a codebook kind with level fields (Q4)
              quant(x).bits = 2;
              quant(x).codebook = {1.f};
            }),
            ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([&](Archive* x) {
              x->link.reset();  // a residual level kind needs a link (Q7)
              x->preamble.required_features &= ~kFeatureReferenceChain;
              quant(x).kind = QuantKind::kLevelResidual;
            }),
            ErrorCode::kBadLink);

  // The writer refuses what the parser would refuse.
  auto refuse = [&](QuantizationInfo bad) {
    Writer w(std::make_unique<MemorySink>(), EncodeOptions{});
    w.SetLink(l);
    return w.AddLevelTensor({"m", DType::kF32, {3, 4}}, bad, levels.data(), {}, {},
                            DType::kF32, MutableByteSpan(decoded));
  };
  QuantizationInfo bad = q;
  bad.step = std::numeric_limits<float>::denorm_min();
  EXPECT_EQ(refuse(bad).code(), ErrorCode::kFieldOutOfRange);
  bad = q;
  bad.log_unit = 1;  // only for LevelLog
  EXPECT_EQ(refuse(bad).code(), ErrorCode::kFieldOutOfRange);
  bad = q;
  bad.reference_scale = 2.0f;  // LevelDirect keeps scale 1
  EXPECT_EQ(refuse(bad).code(), ErrorCode::kFieldOutOfRange);
  bad = q;
  bad.step_limit = 3;  // without a step source
  EXPECT_EQ(refuse(bad).code(), ErrorCode::kFieldOutOfRange);
  bad = q;
  bad.step = 1e38f;
  bad.step_source = 0;
  bad.step_slope = 1;
  bad.step_limit = 8;  // 1e38 * 2^8 overflows
  EXPECT_EQ(refuse(bad).code(), ErrorCode::kFieldOutOfRange);
  std::vector<int32_t> huge(12, kMaxLevel + 1);
  Writer w(std::make_unique<MemorySink>(), EncodeOptions{});
  w.SetLink(l);
  EXPECT_EQ(w.AddLevelTensor({"m", DType::kF32, {3, 4}}, q, huge.data(), {}, {}, DType::kF32,
                             MutableByteSpan(decoded))
                .code(),
            ErrorCode::kFieldOutOfRange);
}

}  // namespace
}  // namespace ckz::testing
