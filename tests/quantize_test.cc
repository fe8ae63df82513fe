// Spec 7.6's arithmetic: conversions checked against an independent nearest-value search, and
// the reconstruction rules on the edge cases (subnormals, overflow, NaN references).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "common/quantize.h"

namespace ckz {
namespace {

// Short names for the many bit patterns below.
float F(uint32_t bits) { return F32FromBits(bits); }
uint32_t B(float f) { return F32Bits(f); }

// The nearest representable value among `candidates` (16-bit patterns) to `x`, ties to the one
// with an even last bit: round-to-nearest-even by exhaustive comparison.
uint16_t NearestEven(double x, const std::vector<uint16_t>& finite, uint32_t (*widen)(uint16_t)) {
  uint16_t best = finite[0];
  double best_d = INFINITY;
  for (uint16_t h : finite) {
    const double d = std::fabs(double(F(widen(h))) - x);
    if (d < best_d || (d == best_d && (h & 1) == 0 && (best & 1) == 1)) {
      best = h;
      best_d = d;
    }
  }
  return best;
}

uint32_t WidenBF16(uint16_t h) { return uint32_t(h) << 16; }

TEST(Quantize, F16WideningAndNarrowingRoundTripEveryValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint32_t f = F16BitsToF32(uint16_t(h));
    const bool nan = ((h >> 10) & 0x1F) == 0x1F && (h & 0x3FF);
    const uint16_t back = F32BitsToF16(f);
    if (nan)
      EXPECT_EQ(back, uint16_t((h & 0x8000) | 0x7E00)) << h;  // canonical quiet NaN, sign kept
    else
      EXPECT_EQ(back, h) << h;
  }
}

TEST(Quantize, F32ToF16RoundsToNearestEven) {
  std::vector<uint16_t> positives;  // finite positive f16 values, ascending
  for (uint16_t h = 0; h < 0x7C00; ++h) positives.push_back(h);
  std::mt19937 rng(1);
  // Random values across the f16 range, plus every tie and subnormal boundary we can name.
  std::vector<float> xs;
  for (int i = 0; i < 3000; ++i) xs.push_back(std::ldexp(float(rng() % 100000) / 100000.f, int(rng() % 44) - 26));
  for (uint16_t h : {uint16_t(0), uint16_t(1), uint16_t(2), uint16_t(0x3FF), uint16_t(0x400),
                     uint16_t(0x3C00), uint16_t(0x7BFF)}) {
    const float a = F(F16BitsToF32(h)), b = F(F16BitsToF32(uint16_t(h + 1)));
    xs.push_back(a);
    xs.push_back((a + b) / 2);  // an exact tie
  }
  for (float x : xs) {
    if (double(x) >= 65520.0) {  // beyond the largest f16 + half an ulp: infinity
      EXPECT_EQ(F32BitsToF16(B(x)), 0x7C00) << x;
      continue;
    }
    EXPECT_EQ(F32BitsToF16(B(x)), NearestEven(x, positives, F16BitsToF32)) << x;
    EXPECT_EQ(F32BitsToF16(B(-x)), uint16_t(0x8000 | NearestEven(x, positives, F16BitsToF32))) << x;
  }
  EXPECT_EQ(F32BitsToF16(B(INFINITY)), 0x7C00);
  EXPECT_EQ(F32BitsToF16(0xFFC01234u), 0xFE00);  // negative NaN
}

TEST(Quantize, F32ToBF16RoundsToNearestEven) {
  std::vector<uint16_t> positives;
  for (uint16_t h = 0; h < 0x7F80; ++h) positives.push_back(h);
  std::mt19937 rng(2);
  for (int i = 0; i < 400; ++i) {
    const float x = std::ldexp(float(rng() % 1000000) / 1000000.f, int(rng() % 60) - 30);
    EXPECT_EQ(F32BitsToBF16(B(x)), NearestEven(x, positives, WidenBF16)) << x;
  }
  EXPECT_EQ(F32BitsToBF16(0x3F808000u), 0x3F80);  // tie, even stays
  EXPECT_EQ(F32BitsToBF16(0x3F818000u), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(F32BitsToBF16(0x7F7FFFFFu), 0x7F80);  // overflow to infinity
  EXPECT_EQ(F32BitsToBF16(0x7FA00001u), 0x7FC0);  // NaN: canonical
}

QuantizationInfo Q(QuantKind kind, std::vector<float> codebook, float scale = 1.0f) {
  QuantizationInfo q;
  q.kind = kind;
  q.bits = 4;
  q.codebook = std::move(codebook);
  q.reference_scale = scale;
  return q;
}

TEST(Quantize, ResidualAndDirectReconstruction) {
  const std::vector<float> codebook = {-1.5f, 0.25f, F(0x00000003u) /* subnormal */, 3e38f};
  const QuantizationInfo residual = Q(QuantKind::kResidual, codebook);
  const QuantizationInfo direct = Q(QuantKind::kDirect, codebook);
  const uint8_t idx[] = {0, 1, 2, 3, 4, 4};
  const float ref[] = {F(0x7FA00001u) /* NaN */, 1.0f, 0.25f, F(0x00000005u), 3e38f, -1.0f};
  float out[6];
  ReconstructQuantized(residual, DType::kF32, idx, 6,
                       reinterpret_cast<const uint8_t*>(ref), reinterpret_cast<uint8_t*>(out));
  EXPECT_EQ(B(out[0]), 0x7FA00001u);  // index 0: the reference, bit for bit (even a NaN)
  EXPECT_EQ(out[1], -0.5f);
  EXPECT_EQ(out[2], 0.5f);
  EXPECT_EQ(B(out[3]), 0x00000008u);  // subnormal + subnormal, not flushed
  EXPECT_EQ(B(out[4]), 0x7F800000u);  // 3e38 + 3e38 overflows to +inf
  EXPECT_EQ(out[5], 3e38f - 1.0f);
  const uint8_t nan_idx[] = {2};
  const float nan_ref[] = {F(0xFFA00001u)};
  ReconstructQuantized(residual, DType::kF32, nan_idx, 1,
                       reinterpret_cast<const uint8_t*>(nan_ref), reinterpret_cast<uint8_t*>(out));
  EXPECT_EQ(B(out[0]), 0xFFC00000u);  // a NaN reference: canonical quiet NaN, sign kept

  ReconstructQuantized(direct, DType::kF32, idx, 3, nullptr,
                       reinterpret_cast<uint8_t*>(out));
  EXPECT_EQ(B(out[0]), 0u);  // +0.0
  EXPECT_EQ(out[1], -1.5f);
  EXPECT_EQ(out[2], 0.25f);

  // F16: the binary32 sum is rounded once into f16.
  const uint16_t href[] = {0x3C00 /* 1.0 */};
  const uint8_t one[] = {2};
  uint16_t hout;
  const std::vector<float> tiny = {1e-4f, 0.00048828125f /* 2^-11: half an f16 ulp at 1 */};
  ReconstructQuantized(Q(QuantKind::kResidual, tiny), DType::kF16, one, 1,
                       reinterpret_cast<const uint8_t*>(href), reinterpret_cast<uint8_t*>(&hout));
  EXPECT_EQ(hout, 0x3C00);  // 1 + half an ulp: a tie, rounds to even (1.0)

  // F64: binary64 addition.
  const double dref[] = {1.0};
  double dout;
  ReconstructQuantized(Q(QuantKind::kResidual, tiny), DType::kF64, one, 1,
                       reinterpret_cast<const uint8_t*>(dref), reinterpret_cast<uint8_t*>(&dout));
  EXPECT_EQ(dout, 1.0 + 0.00048828125);
}

// A reference scale: pruned elements become binary32(r * s), kept ones binary32(r * s) + c
// (two roundings, no fused multiply-add); a NaN reference still gives the canonical NaN.
TEST(Quantize, ScaledResidualReconstruction) {
  const float s = 0.1f;
  const QuantizationInfo q = Q(QuantKind::kResidual, {1e-8f, 0.5f}, s);
  const uint8_t idx[] = {0, 1, 2, 0, 0};
  const float ref[] = {3.0f, 3.0f, F(0x00800000u) /* smallest normal */, F(0xFFA00001u), -0.0f};
  float out[5];
  ReconstructQuantized(q, DType::kF32, idx, 5, reinterpret_cast<const uint8_t*>(ref),
                       reinterpret_cast<uint8_t*>(out));
  volatile float product = 3.0f * s;  // rounded to binary32 before the add
  EXPECT_EQ(out[0], float(product));
  EXPECT_EQ(out[1], float(product) + 1e-8f);
  EXPECT_EQ(out[2], F(0x00800000u) * s + 0.5f);
  EXPECT_EQ(B(out[3]), 0xFFC00000u);
  EXPECT_EQ(B(out[4]), 0x80000000u);  // -0 * 0.1 = -0

  // F16: the product is rounded to binary32, the result once into f16; F64 in binary64.
  const uint16_t href[] = {0x3C00};  // 1.0
  const uint8_t zero[] = {0};
  uint16_t hout;
  ReconstructQuantized(q, DType::kF16, zero, 1, reinterpret_cast<const uint8_t*>(href),
                       reinterpret_cast<uint8_t*>(&hout));
  EXPECT_EQ(hout, 0x2E66);  // 0.1f = 0x3DCCCCCD, to f16 (round to nearest even)
  const double dref[] = {3.0};
  double dout;
  ReconstructQuantized(q, DType::kF64, zero, 1, reinterpret_cast<const uint8_t*>(dref),
                       reinterpret_cast<uint8_t*>(&dout));
  EXPECT_EQ(dout, 3.0 * double(s));
}

}  // namespace
}  // namespace ckz
