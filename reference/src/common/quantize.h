// Values of quantized elements (spec 7.6), shared by the decoder and the encoder so that the
// encoder's reconstruction — the reference of the next link — is exactly what decoders get.
#ifndef CKZ_COMMON_QUANTIZE_H_
#define CKZ_COMMON_QUANTIZE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ckz/archive.h"
#include "ckz/types.h"

namespace ckz {

// out[i] (a `dtype` element) from indices[i] (each <= q.codebook.size(), checked by the
// caller) and, for kResidual, the reference element ref[i] (same dtype).
void ReconstructQuantized(const QuantizationInfo& q, DType dtype, const uint8_t* indices,
                          size_t count, const uint8_t* ref, uint8_t* out);

// IEEE conversions of spec 7.6: round to nearest, ties to even; NaN -> the canonical quiet NaN
// of the target with the sign kept. Widening is exact.
uint16_t F32BitsToF16(uint32_t f32);
uint16_t F32BitsToBF16(uint32_t f32);
uint32_t F16BitsToF32(uint16_t f16);

}  // namespace ckz

#endif  // CKZ_COMMON_QUANTIZE_H_
