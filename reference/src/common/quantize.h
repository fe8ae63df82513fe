// Values of quantized elements (spec 7.6), shared by the decoder and the encoder so that the
// encoder's reconstruction — the reference of the next link — is exactly what decoders get.
#ifndef CKZ_COMMON_QUANTIZE_H_
#define CKZ_COMMON_QUANTIZE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ckz/archive.h"
#include "ckz/types.h"

namespace ckz {

// out[i] (a `dtype` element) from indices[i] (each <= q.codebook.size(), checked by the
// caller) and, for kResidual, the reference element ref[i] (same dtype).
void ReconstructQuantized(const QuantizationInfo& q, DType dtype, const uint8_t* indices,
                          size_t count, const uint8_t* ref, uint8_t* out);

// (0.7, spec 7.9.1) The step shift of each element: shifts[i] from element i of `source` (the
// parent's decoded step-source tensor, `source_dtype`), or all 0 without a step source.
void StepShifts(const QuantizationInfo& q, DType source_dtype, const uint8_t* source,
                size_t count, int8_t* shifts);

// (0.7, spec 7.9.2) out[i] (a `dtype` element) from levels[i] (|level| <= kMaxLevel), the step
// shift shifts[i] and, for the residual kinds, the reference element ref[i].
void ReconstructLevels(const QuantizationInfo& q, DType dtype, const int32_t* levels,
                       const int8_t* shifts, size_t count, const uint8_t* ref, uint8_t* out);

// (0.7, spec 7.9.2) 2^(j/16) rounded to binary32, j = 0..15: the LevelLog fractions.
extern const uint32_t kLevelLogFractions[16];

// (0.7, rule Q9) Whether step * 2^s is a normal, finite binary32 for every |s| <= limit.
bool StepRangeIsNormal(float step, unsigned limit);

// IEEE conversions of spec 7.6: round to nearest, ties to even; NaN -> the canonical quiet NaN
// of the target with the sign kept. Widening is exact.
uint16_t F32BitsToF16(uint32_t f32);
uint16_t F32BitsToBF16(uint32_t f32);
uint32_t F16BitsToF32(uint16_t f16);

// IEEE bit patterns and back (memcpy: no aliasing, no conversion).
inline uint32_t F32Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
inline float F32FromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline uint64_t F64Bits(double d) {
  uint64_t b;
  std::memcpy(&b, &d, 8);
  return b;
}
inline double F64FromBits(uint64_t b) {
  double d;
  std::memcpy(&d, &b, 8);
  return d;
}

// FloatElement (element i of a floating tensor as a double) is public: ckz/types.h. FloatAt is
// the same value, inline for the encoder's per-element loops: F32 (nearly every tensor) without
// a call or a dtype-table lookup per element, other dtypes through FloatElement.
inline double FloatAt(DType dtype, const uint8_t* p, size_t i) {
  if (dtype == DType::kF32) {
    uint32_t b;
    std::memcpy(&b, p + 4 * i, 4);
    return double(F32FromBits(b));
  }
  return FloatElement(dtype, p, i);
}

}  // namespace ckz

#endif  // CKZ_COMMON_QUANTIZE_H_
