// The context model of the "cmf" stream codec (spec 7.8): binary32 values coded against a
// prediction (the parent's co-located value, or 0). A value close to its prediction is coded
// as the size class of the difference of their ordered bit patterns plus that difference's
// bits; any other value (an "escape") as sign, exponent step and mantissa. Encoder and decoder
// run the same function, so their contexts cannot drift.
#ifndef CKZ_COMMON_FLOAT_MODEL_H_
#define CKZ_COMMON_FLOAT_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ckz {

// Spec 7.8.2's key and unkey: binary32 bit patterns in the order of the values they encode
// (-NaN .. -0, +0 .. +NaN), so a small change of a value is a small change of its key.
inline uint32_t OrderedKey(uint32_t bits) { return bits >> 31 ? ~bits : bits | 0x80000000u; }
inline uint32_t FromOrderedKey(uint32_t key) { return key >> 31 ? key & 0x7FFFFFFFu : ~key; }

// Spec 7.8.2's expclass: a binary32 pattern's biased exponent (sign ignored), clamped to
// 95..130, in steps of 4 (0..8). Also the KeySplit predictor's stream selector (7.10).
inline uint32_t FloatExponentClass(uint32_t bits) {
  const uint32_t e = (bits >> 23) & 0xFF;
  return ((e < 95 ? 95 : e > 130 ? 130 : e) - 95) >> 2;
}

// Appends the coded stream of `count` binary32 values (`values`: 4·count little-endian bytes)
// to `out`. `prediction` (same layout) may be null: every prediction is then +0.0.
void EncodeFloatStream(const uint8_t* values, const uint8_t* prediction, size_t count,
                       std::vector<uint8_t>* out);

enum class FloatDecodeResult {
  kOk,
  kBadSymbol,  // a size class above 25, or an escape's exponent outside 0..255 (*bad_element)
  kBadStream,  // the coder's final check failed: bytes left over or an impossible state
};

// Decodes `count` values from `src` into `out` (4·count bytes, little-endian).
FloatDecodeResult DecodeFloatStream(const uint8_t* src, size_t size, const uint8_t* prediction,
                                    uint8_t* out, size_t count, size_t* bad_element);

}  // namespace ckz

#endif  // CKZ_COMMON_FLOAT_MODEL_H_
