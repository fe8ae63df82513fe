// The invertible element transforms of spec section 7.3: a predictor against the reference
// bytes (XOR, or zigzag of the wrapping integer difference) and the split into byte planes.
// Shared by the encoder (Forward) and the decoder (Inverse) so both sides use one definition.
#ifndef CKZ_COMMON_TRANSFORMS_H_
#define CKZ_COMMON_TRANSFORMS_H_

#include <cstddef>
#include <cstdint>

#include "ckz/types.h"

namespace ckz {

// `n` bytes = n / width elements. `ref` may be null when predictor is kNone.
// Forward: out = planes?(predict(data, ref)). Inverse: out = unpredict(unplanes?(in), ref).
void ForwardTransform(Predictor predictor, bool byte_planes, size_t width, const uint8_t* data,
                      const uint8_t* ref, size_t n, uint8_t* out);
void InverseTransform(Predictor predictor, bool byte_planes, size_t width, const uint8_t* in,
                      const uint8_t* ref, size_t n, uint8_t* out);
// InverseTransform with byte planes whose planes need not lie back to back: plane p (n / width
// bytes) at planes[p], `width` pointers. Lets a decoder read stored planes where they lie.
void InverseTransformPlanes(Predictor predictor, size_t width, const uint8_t* const* planes,
                            const uint8_t* ref, size_t n, uint8_t* out);

}  // namespace ckz

#endif  // CKZ_COMMON_TRANSFORMS_H_
