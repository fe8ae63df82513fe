// ExCP shrinking (encoder side, not normative): which elements of a link to keep and how to
// quantize them, after ExCP's public code (Li et al., 2024):
//  - weights: residual dW = W - W_ref against the decoded reference; prune |dW| <= k * median|dW|
//    with k = min(2.5, alpha / sqrt(mean(v))), v the weight's Adam second moment;
//  - moments m, v: kept where |m| > beta * mean|m| and the weight's residual was kept; v uses
//    m's mask; stored directly, not as residuals (ExCP), except that by default v is a
//    residual against its decoded reference, so a pruned v keeps its reference's value
//    instead of becoming 0 (ExcpOptions::v_residual; see spec Appendix A);
//  - kept values of each stream quantized by 1-D k-means to 2^bits - 1 centres (index 0 =
//    pruned); streams with at most 2^bits - 1 distinct kept values keep them exactly.
#ifndef CKZ_COMPRESS_EXCP_H_
#define CKZ_COMPRESS_EXCP_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ckz/archive.h"
#include "ckz/checkpoint.h"

namespace ckz {

// The decision for one tensor: quantized (indices + codebook), or kept lossless and why.
struct ShrinkResult {
  bool quantized = false;
  std::string lossless_reason;
  QuantizationInfo quant;
  std::vector<uint8_t> indices;  // codebook kinds: one per element
  std::vector<int32_t> levels;   // (0.7) level kinds: one per element
};

// A weight against its decoded reference. `v` is its Adam second moment in this checkpoint
// (same element count, any floating dtype), or empty: then k = options.fallback_k (1 unset).
ShrinkResult ShrinkWeight(DType dtype, ByteSpan w, ByteSpan reference, DType v_dtype, ByteSpan v,
                          const ExcpOptions& options);

// A moment, kept where `keep[i]` is non-zero (the weight's, or for v the first moment's,
// indices) and, when `threshold_by_magnitude` (and no reference), where |m| > beta * mean|m|.
// With `reference` (its decoded bytes in the parent) it is quantized as a residual and no
// reconstructed element is negative; without, directly (pruned elements become +0).
ShrinkResult ShrinkMoment(DType dtype, ByteSpan m, const std::vector<uint8_t>& keep,
                          bool threshold_by_magnitude, ByteSpan reference,
                          const ExcpOptions& options);

// A float's order-preserving key: a < b (as floats, -0.0 below +0.0) iff KeyOfFloat(a) <
// KeyOfFloat(b) (no NaN).
inline uint32_t KeyOfFloat(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b >> 31 ? ~b : b | 0x80000000u;
}
inline float FloatOfKey(uint32_t key) {
  const uint32_t b = key >> 31 ? key & 0x7FFFFFFFu : ~key;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
// Sorts keys ascending (an LSD radix sort with one buffer of their size).
void SortKeys(std::vector<uint32_t>* keys);

// 1-D k-means: at most `k` sorted, distinct centres for `values` (deterministic).
std::vector<float> KMeans1D(const std::vector<float>& values, size_t k);
// The same for values given as their sorted keys.
std::vector<float> KMeans1DOfSortedKeys(const std::vector<uint32_t>& sorted_keys, size_t k);

}  // namespace ckz

#endif  // CKZ_COMPRESS_EXCP_H_
