#include "common/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define CKZ_HAVE_MXCSR 1
#elif defined(__aarch64__)
#include <cfenv>
#define CKZ_HAVE_FPCR 1
#endif
// The SSE2 paths read little-endian lanes straight from the tensors' bytes.
#if defined(__SSE2__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#include <emmintrin.h>
#define CKZ_SSE2_LE 1
#endif

namespace ckz {
namespace {

constexpr uint32_t kF32QuietNaN = 0x7FC00000u;
constexpr uint16_t kF16QuietNaN = 0x7E00u;
constexpr uint16_t kBF16QuietNaN = 0x7FC0u;
constexpr uint64_t kF64QuietNaN = 0x7FF8000000000000ull;

bool IsNaN32(uint32_t b) { return (b & 0x7F800000u) == 0x7F800000u && (b & 0x7FFFFFu); }
bool IsNaN64(uint64_t b) {
  return (b & 0x7FF0000000000000ull) == 0x7FF0000000000000ull && (b & 0xFFFFFFFFFFFFFull);
}

// The floating-point environment spec 7.6 assumes: round to nearest even, subnormals kept. A
// host program may have set flush-to-zero (some ML runtimes do); restore it for our adds.
class DefaultFloatEnvironment {
 public:
  DefaultFloatEnvironment() {
#if defined(CKZ_HAVE_MXCSR)
    saved_ = _mm_getcsr();
    _mm_setcsr(0x1F80);  // all exceptions masked, round to nearest, no FTZ, no DAZ
#elif defined(CKZ_HAVE_FPCR)
    // glibc's default AArch64 environment is FPCR = 0: round to nearest, no FZ or FZ16, IEEE
    // NaN propagation (no DN), traps off.
    std::fegetenv(&saved_);
    std::fesetenv(FE_DFL_ENV);
#endif
  }
  ~DefaultFloatEnvironment() {
#if defined(CKZ_HAVE_MXCSR)
    _mm_setcsr(saved_);
#elif defined(CKZ_HAVE_FPCR)
    std::fesetenv(&saved_);
#endif
  }

 private:
#if defined(CKZ_HAVE_FPCR)
  std::fenv_t saved_{};
#else
  unsigned saved_ = 0;
#endif
};

// A binary32 value (bits) stored as `dtype`.
void StoreF32As(DType dtype, uint32_t v, uint8_t* out) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(out, &v, 4);
      return;
    case DType::kF16: {
      const uint16_t h = F32BitsToF16(v);
      std::memcpy(out, &h, 2);
      return;
    }
    case DType::kBF16: {
      const uint16_t h = F32BitsToBF16(v);
      std::memcpy(out, &h, 2);
      return;
    }
    case DType::kF64: {
      const uint64_t d = IsNaN32(v) ? (uint64_t(v >> 31) << 63) | kF64QuietNaN
                                    : F64Bits(double(F32FromBits(v)));
      std::memcpy(out, &d, 8);
      return;
    }
    default:
      return;
  }
}

// A `dtype` element widened to binary32 bits (exact for F32, F16, BF16).
uint32_t LoadAsF32(DType dtype, const uint8_t* p) {
  switch (dtype) {
    case DType::kF16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return F16BitsToF32(h);
    }
    case DType::kBF16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return uint32_t(h) << 16;
    }
    default: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
  }
}

// The reference element of a reconstruction, scaled by `scale` when `scaled` (spec 7.6, 7.9.2):
// false when it is a NaN, whose output (the quiet NaN of its sign) is then written to `o`.
// Centres, steps and the scale are finite and the scale > 0, so a NaN comes only from here.
bool ScaledReferenceF64(const uint8_t* r, bool scaled, float scale, uint8_t* o, double* b) {
  uint64_t rb;
  std::memcpy(&rb, r, 8);
  if (IsNaN64(rb)) {
    const uint64_t nan = (rb & (uint64_t{1} << 63)) | kF64QuietNaN;
    std::memcpy(o, &nan, 8);
    return false;
  }
  *b = F64FromBits(rb);
  if (scaled) *b = *b * double(scale);
  return true;
}

bool ScaledReferenceF32(DType dtype, const uint8_t* r, bool scaled, float scale, uint8_t* o,
                        float* b) {
  const uint32_t rb = LoadAsF32(dtype, r);
  if (IsNaN32(rb)) {
    StoreF32As(dtype, (rb & 0x80000000u) | kF32QuietNaN, o);
    return false;
  }
  *b = F32FromBits(rb);
  if (scaled) *b = *b * scale;
  return true;
}

}  // namespace

uint16_t F32BitsToF16(uint32_t x) {
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  const uint32_t e = (x >> 23) & 0xFFu;
  uint32_t m = x & 0x7FFFFFu;
  if (e == 0xFF) return m ? uint16_t(sign | kF16QuietNaN) : uint16_t(sign | 0x7C00u);
  const int32_t exp = int32_t(e) - 127 + 15;
  if (exp >= 0x1F) return uint16_t(sign | 0x7C00u);  // overflow: infinity
  if (exp <= 0) {                                      // an f16 subnormal, or zero
    if (exp < -10) return sign;
    m |= 0x800000u;
    const uint32_t shift = uint32_t(14 - exp);
    const uint32_t half = 1u << (shift - 1), rem = m & ((1u << shift) - 1);
    uint32_t q = m >> shift;
    if (rem > half || (rem == half && (q & 1))) ++q;  // may become the smallest normal
    return uint16_t(sign | q);
  }
  uint32_t q = (uint32_t(exp) << 10) | (m >> 13);
  const uint32_t rem = m & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1))) ++q;  // a carry may reach infinity
  return uint16_t(sign | q);
}

uint16_t F32BitsToBF16(uint32_t x) {
  if (IsNaN32(x)) return uint16_t(((x >> 16) & 0x8000u) | kBF16QuietNaN);
  return uint16_t((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

uint32_t F16BitsToF32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  if (e == 0x1F) return sign | 0x7F800000u | (m << 13);
  if (e == 0) {
    if (m == 0) return sign;
    e = 127 - 15 + 1;  // normalise the subnormal
    while (!(m & 0x400u)) {
      m <<= 1;
      --e;
    }
    return sign | (e << 23) | ((m & 0x3FFu) << 13);
  }
  return sign | ((e + 127 - 15) << 23) | (m << 13);
}

double FloatElement(DType dtype, const uint8_t* p, size_t i) {
  switch (dtype) {
    case DType::kF64: {
      uint64_t b;
      std::memcpy(&b, p + 8 * i, 8);
      return F64FromBits(b);
    }
    case DType::kF32:  // the element's width from its case, not a DTypeSize lookup each time
      return F32FromBits(LoadAsF32(DType::kF32, p + 4 * i));
    case DType::kF16:
    case DType::kBF16:
      return F32FromBits(LoadAsF32(dtype, p + 2 * i));
    default:
      return 0;
  }
}

void ReconstructQuantized(const QuantizationInfo& q, DType dtype, const uint8_t* indices,
                          size_t count, const uint8_t* ref, uint8_t* out) {
  const std::vector<float>& codebook = q.codebook;
  const size_t w = DTypeSize(dtype);
  // Scale 1 (bit pattern 0x3F800000) skips the multiplication: a pruned element is then its
  // reference bit for bit, NaN payloads included.
  const bool scaled = F32Bits(q.reference_scale) != 0x3F800000u;
  const float scale = q.reference_scale;
  DefaultFloatEnvironment env;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t j = indices[i];
    uint8_t* o = out + i * w;
    if (q.kind == QuantKind::kDirect) {
      if (j == 0)
        std::memset(o, 0, w);  // +0.0
      else
        StoreF32As(dtype, F32Bits(codebook[j - 1]), o);
      continue;
    }
    const uint8_t* r = ref + i * w;
    if (j == 0 && !scaled) {  // pruned: the reference element, bit for bit
      std::memcpy(o, r, w);
      continue;
    }
    if (dtype == DType::kF64) {
      double b;
      if (!ScaledReferenceF64(r, scaled, scale, o, &b)) continue;
      const uint64_t s = F64Bits(j == 0 ? b : b + double(codebook[j - 1]));
      std::memcpy(o, &s, 8);
      continue;
    }
    // An infinite reference stays infinite (adding a finite centre keeps it).
    float b;
    if (!ScaledReferenceF32(dtype, r, scaled, scale, o, &b)) continue;
    StoreF32As(dtype, F32Bits(j == 0 ? b : b + codebook[j - 1]), o);
  }
}

// ---- (0.7) Level kinds, spec 7.9 ----

const uint32_t kLevelLogFractions[16] = {
    0x3F800000u, 0x3F85AAC3u, 0x3F8B95C2u, 0x3F91C3D3u, 0x3F9837F0u, 0x3F9EF532u,
    0x3FA5FED7u, 0x3FAD583Fu, 0x3FB504F3u, 0x3FBD08A4u, 0x3FC5672Au, 0x3FCE248Cu,
    0x3FD744FDu, 0x3FE0CCDFu, 0x3FEAC0C7u, 0x3FF5257Du};

bool StepRangeIsNormal(float step, unsigned limit) {
  if (!std::isfinite(step) || !(step > 0)) return false;
  const int e = std::ilogb(step);  // exact: the unbiased exponent of a normal step
  return std::isnormal(step) && e - int(limit) >= -126 && e + int(limit) <= 127;
}

namespace {

// The unbiased exponent of a floating element; zeros and subnormals count as -1000, infinities
// and NaNs as +1000 (spec 7.9.1).
int32_t ElementExponent(DType dtype, const uint8_t* p) {
  if (dtype == DType::kF64) {
    uint64_t b;
    std::memcpy(&b, p, 8);
    const int32_t e = int32_t((b >> 52) & 0x7FF);
    return e == 0 ? -1000 : e == 0x7FF ? 1000 : e - 1023;
  }
  const uint32_t b = LoadAsF32(dtype, p);
  const int32_t e = int32_t((b >> 23) & 0xFF);
  return e == 0 ? -1000 : e == 0xFF ? 1000 : e - 127;
}

int32_t FloorHalf(int32_t d) { return d >= 0 ? d / 2 : -((1 - d) / 2); }

}  // namespace

namespace {

#if defined(CKZ_SSE2_LE)
// The loop below for 16 F32 sources at a time, in the same integer arithmetic: the exponent
// field, -1000 / +1000 for zeros, subnormals, infinities and NaNs, minus the centre, negated
// for slope -1, halved by an arithmetic shift (the floor), clamped. |d| <= 2100 (rule Q9's
// centre) fits the int16 lanes it is clamped in. Returns how many elements it did.
size_t StepShiftsF32Sse2(const QuantizationInfo& q, const uint8_t* source, size_t count,
                         int8_t* shifts) {
  if (q.step_center < -1100 || q.step_center > 1100 || q.step_limit > 127) return 0;
  const __m128i field = _mm_set1_epi32(0xFF), zero = _mm_setzero_si128();
  const __m128i normal_offset = _mm_set1_epi32(127 + q.step_center);
  const __m128i tiny = _mm_set1_epi32(-1000 - q.step_center);
  const __m128i huge = _mm_set1_epi32(1000 - q.step_center);
  const __m128i limit = _mm_set1_epi16(int16_t(q.step_limit));
  const __m128i neg_limit = _mm_set1_epi16(int16_t(-int(q.step_limit)));
  auto halved = [&](const uint8_t* p) {
    const __m128i e = _mm_and_si128(
        _mm_srli_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), 23), field);
    const __m128i is_zero = _mm_cmpeq_epi32(e, zero), is_max = _mm_cmpeq_epi32(e, field);
    __m128i d = _mm_sub_epi32(e, normal_offset);
    d = _mm_or_si128(_mm_andnot_si128(is_zero, d), _mm_and_si128(is_zero, tiny));
    d = _mm_or_si128(_mm_andnot_si128(is_max, d), _mm_and_si128(is_max, huge));
    if (q.step_slope < 0) d = _mm_sub_epi32(zero, d);
    return _mm_srai_epi32(d, 1);
  };
  auto clamped = [&](__m128i a, __m128i b) {
    return _mm_max_epi16(_mm_min_epi16(_mm_packs_epi32(a, b), limit), neg_limit);
  };
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const uint8_t* p = source + 4 * i;
    const __m128i lo = clamped(halved(p), halved(p + 16));
    const __m128i hi = clamped(halved(p + 32), halved(p + 48));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(shifts + i), _mm_packs_epi16(lo, hi));
  }
  return i;
}
#endif

template <DType kSource>
void StepShiftsFrom(const QuantizationInfo& q, const uint8_t* source, size_t count, int8_t* shifts) {
  constexpr size_t w = kSource == DType::kF64 ? 8 : kSource == DType::kF32 ? 4 : 2;
  const int32_t limit = q.step_limit;
  size_t i = 0;
#if defined(CKZ_SSE2_LE)
  if constexpr (kSource == DType::kF32) i = StepShiftsF32Sse2(q, source, count, shifts);
#endif
  for (; i < count; ++i) {
    const int32_t d = ElementExponent(kSource, source + i * w) - q.step_center;
    const int32_t s = FloorHalf(q.step_slope > 0 ? d : -d);
    shifts[i] = int8_t(std::clamp(s, -limit, limit));
  }
}

}  // namespace

void StepShifts(const QuantizationInfo& q, DType source_dtype, const uint8_t* source,
                size_t count, int8_t* shifts) {
  if (q.step_source < 0 || source == nullptr) {
    std::memset(shifts, 0, count);
    return;
  }
  // The source's dtype fixed per call, not tested per element.
  switch (source_dtype) {
    case DType::kF64: return StepShiftsFrom<DType::kF64>(q, source, count, shifts);
    case DType::kF16: return StepShiftsFrom<DType::kF16>(q, source, count, shifts);
    case DType::kBF16: return StepShiftsFrom<DType::kBF16>(q, source, count, shifts);
    case DType::kF32: return StepShiftsFrom<DType::kF32>(q, source, count, shifts);
    default:  // not floating: rule Q10 refuses it
      std::memset(shifts, 0, count);
      return;
  }
}

namespace {

#if defined(CKZ_SSE2_LE)
// The loop below for F32 LevelResidual with reference scale 1 (weights) and F32 LevelDirect
// (Adam's m), 4 elements at a time, the same IEEE single operations in the same order under
// the same environment (the caller's DefaultFloatEnvironment): `step × 2^shift` is a multiply
// by a power of two, exact where rule Q9 makes every such step normal (as the scalar table's
// ldexp); `float(level)` is cvtdq2ps, rounded to nearest as the scalar conversion. A level 0
// keeps its reference bit for bit (LevelResidual) or is +0.0 (LevelDirect); a NaN reference
// becomes the quiet NaN of its sign. Returns how many elements it did.
template <QuantKind kKind>
size_t ReconstructLevelsF32Sse2(const QuantizationInfo& q, const int32_t* levels,
                                const int8_t* shifts, size_t count, const uint8_t* ref,
                                uint8_t* out) {
  const __m128 step = _mm_set1_ps(q.step);
  const __m128i bias = _mm_set1_epi32(127), zero = _mm_setzero_si128();
  const __m128i exponent = _mm_set1_epi32(0x7F800000), mantissa = _mm_set1_epi32(0x7FFFFF);
  const __m128i sign = _mm_set1_epi32(int32_t(0x80000000u)), quiet = _mm_set1_epi32(0x7FC00000);
  auto select = [](__m128i mask, __m128i a, __m128i b) {  // mask ? a : b
    return _mm_or_si128(_mm_and_si128(mask, a), _mm_andnot_si128(mask, b));
  };
  size_t i = 0;
  for (; i + 4 <= count; i += 4) {
    int32_t packed_shifts;
    std::memcpy(&packed_shifts, shifts + i, 4);
    const __m128i bytes = _mm_cvtsi32_si128(packed_shifts);
    const __m128i s = _mm_srai_epi32(_mm_unpacklo_epi16(_mm_unpacklo_epi8(bytes, bytes),
                                                        _mm_unpacklo_epi8(bytes, bytes)), 24);
    const __m128 pow2 = _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(s, bias), 23));
    const __m128i level = _mm_loadu_si128(reinterpret_cast<const __m128i*>(levels + i));
    const __m128i is_zero = _mm_cmpeq_epi32(level, zero);
    const __m128 product = _mm_mul_ps(_mm_cvtepi32_ps(level), _mm_mul_ps(step, pow2));
    __m128i result;
    if constexpr (kKind == QuantKind::kLevelDirect) {
      result = _mm_andnot_si128(is_zero, _mm_castps_si128(product));
    } else {
      const __m128i r = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ref + 4 * i));
      const __m128i is_nan =
          _mm_andnot_si128(_mm_cmpeq_epi32(_mm_and_si128(r, mantissa), zero),
                           _mm_cmpeq_epi32(_mm_and_si128(r, exponent), exponent));
      const __m128i sum = _mm_castps_si128(_mm_add_ps(_mm_castsi128_ps(r), product));
      result = select(is_zero, r, select(is_nan, _mm_or_si128(_mm_and_si128(r, sign), quiet), sum));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 4 * i), result);
  }
  return i;
}
#endif

// ReconstructLevels for one kind and dtype, so that neither is tested per element.
template <QuantKind kKind, DType kDtype>
void ReconstructLevelsOf(const QuantizationInfo& q, const int32_t* levels, const int8_t* shifts,
                         size_t count, const uint8_t* ref, uint8_t* out) {
  constexpr DType dtype = kDtype;
  constexpr size_t w = kDtype == DType::kF64 ? 8 : kDtype == DType::kF32 ? 4 : 2;
  const bool scaled = F32Bits(q.reference_scale) != 0x3F800000u;
  const float scale = q.reference_scale;
  const int k = q.log_unit;
  // step * 2^shift for every shift: exact for |shift| <= step_limit, where every such step is
  // a normal binary32 (rule Q9); shifts never go beyond it (StepShifts clamps them).
  float steps[2 * kMaxStepLimit + 1];
  for (int s = -int(kMaxStepLimit); s <= int(kMaxStepLimit); ++s)
    steps[s + kMaxStepLimit] = std::ldexp(q.step, s);
  DefaultFloatEnvironment env;
  size_t i = 0;
#if defined(CKZ_SSE2_LE)
  // LevelDirect is never scaled (rule Q8).
  if constexpr (dtype == DType::kF32 && kKind != QuantKind::kLevelLog)
    if (!scaled) i = ReconstructLevelsF32Sse2<kKind>(q, levels, shifts, count, ref, out);
#endif
  for (; i < count; ++i) {
    const int32_t level = levels[i];
    uint8_t* o = out + i * w;
    const float step = steps[shifts[i] + kMaxStepLimit];
    if constexpr (kKind == QuantKind::kLevelDirect) {
      if (level == 0) {
        std::memset(o, 0, w);  // +0.0
      } else if constexpr (dtype == DType::kF64) {
        const uint64_t s = F64Bits(double(level) * double(step));
        std::memcpy(o, &s, 8);
      } else {
        StoreF32As(dtype, F32Bits(float(level) * step), o);
      }
      continue;
    }
    const uint8_t* r = ref + i * w;
    if (level == 0 && !scaled) {  // the reference element, bit for bit
      std::memcpy(o, r, w);
      continue;
    }
    // The LevelLog exponent: level / 2^k = n + j / 16.
    int64_t n = 0;
    int j = 0;
    if (kKind == QuantKind::kLevelLog) {
      if (k > 0) {
        const int32_t unit = 1 << k;
        n = level >= 0 ? level / unit : -((unit - 1 - int64_t(level)) / unit);  // the floor
        j = int(level - n * unit) << (4 - k);
      } else {
        n = int64_t(level) * (int64_t{1} << -k);
      }
    }
    if constexpr (dtype == DType::kF64) {
      double b;
      if (!ScaledReferenceF64(r, scaled, scale, o, &b)) continue;
      double s = b;
      if (level != 0) {
        if (kKind == QuantKind::kLevelResidual) {
          s = b + double(level) * double(step);
        } else if (b == 0) {
          s = double(level) * double(step);
        } else {
          const double t = b * double(F32FromBits(kLevelLogFractions[j]));
          s = std::scalbn(t, int(std::clamp<int64_t>(n, -2200, 2200)));
        }
      }
      const uint64_t bits = F64Bits(s);
      std::memcpy(o, &bits, 8);
      continue;
    }
    float b;
    if (!ScaledReferenceF32(dtype, r, scaled, scale, o, &b)) continue;
    float s = b;
    if (level != 0) {
      if (kKind == QuantKind::kLevelResidual) {
        s = b + float(level) * step;
      } else if (b == 0) {
        s = float(level) * step;
      } else {
        // t * 2^n is exact in binary64 (|n| <= 400 keeps it in range), then rounded once.
        const float t = b * F32FromBits(kLevelLogFractions[j]);
        s = float(double(t) * std::ldexp(1.0, int(std::clamp<int64_t>(n, -400, 400))));
      }
    }
    StoreF32As(dtype, F32Bits(s), o);
  }
}

}  // namespace

void ReconstructLevels(const QuantizationInfo& q, DType dtype, const int32_t* levels,
                       const int8_t* shifts, size_t count, const uint8_t* ref, uint8_t* out) {
  auto of_kind = [&](auto kind) {
    constexpr QuantKind K = decltype(kind)::value;
    switch (dtype) {
      case DType::kF64: return ReconstructLevelsOf<K, DType::kF64>(q, levels, shifts, count, ref, out);
      case DType::kF16: return ReconstructLevelsOf<K, DType::kF16>(q, levels, shifts, count, ref, out);
      case DType::kBF16: return ReconstructLevelsOf<K, DType::kBF16>(q, levels, shifts, count, ref, out);
      case DType::kF32: return ReconstructLevelsOf<K, DType::kF32>(q, levels, shifts, count, ref, out);
      default:  // not floating: rule Q5 refuses it; the bytes stay defined (and fail the CRC)
        std::memset(out, 0, count * DTypeSize(dtype));
        return;
    }
  };
  switch (q.kind) {
    case QuantKind::kLevelDirect:
      return of_kind(std::integral_constant<QuantKind, QuantKind::kLevelDirect>());
    case QuantKind::kLevelLog:
      return of_kind(std::integral_constant<QuantKind, QuantKind::kLevelLog>());
    default:
      return of_kind(std::integral_constant<QuantKind, QuantKind::kLevelResidual>());
  }
}

}  // namespace ckz
