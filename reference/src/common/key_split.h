// The KeySplit predictor (spec 7.10, format 0.8): 16-bit floats (F16, BF16) coded against the
// parent's co-located value. Each element's difference of ordered keys becomes one symbol
// byte (its size class, sign and the two bits under its leading one), put in one of nine
// streams by the reference's exponent class; the difference's remaining low bits are packed
// into a tenth stream. The symbol streams then go through zstd like any stream: separating
// them by exponent class gives zstd's order-0 coder the context that matters (how far a value
// moves, in its own units, depends on its magnitude), and the raw low bits stay out of its way.
#ifndef CKZ_COMMON_KEY_SPLIT_H_
#define CKZ_COMMON_KEY_SPLIT_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ckz/types.h"

namespace ckz {

inline constexpr size_t kKeySplitClasses = 9;                     // symbol streams 0..8
inline constexpr size_t kKeySplitStreams = kKeySplitClasses + 1;  // and the bit stream, 9
inline constexpr uint32_t kKeySplitMaxSize = 16;                  // size classes 0..16

// Spec 7.10's key16 / unkey16: 16-bit patterns in the order of the values they encode.
inline uint32_t Key16(uint32_t v) { return v >> 15 ? (~v) & 0xFFFFu : v | 0x8000u; }
inline uint32_t Unkey16(uint32_t u) { return u >> 15 ? u & 0x7FFFu : (~u) & 0xFFFFu; }

// The exponent class (spec 7.8.2's expclass of the binary32 widening, 0..8) of each of the
// 65536 patterns of `dtype` (F16 or BF16).
const uint8_t* KeySplitClassTable(DType dtype);

// Encoder: `count` values and their references (2·count little-endian bytes each) into the
// nine symbol streams and the packed bit stream.
void KeySplitForward(DType dtype, const uint8_t* values, const uint8_t* reference, size_t count,
                     std::vector<uint8_t> symbols[kKeySplitClasses], std::vector<uint8_t>* bits);

// Decoder, step 1: how many elements each symbol stream holds.
void KeySplitCounts(DType dtype, const uint8_t* reference, size_t count,
                    uint64_t counts[kKeySplitClasses]);

// Step 2: checks every symbol and sums the low bits they leave to the bit stream (`symbols[c]`
// holds `counts[c]` bytes, step 1's). False when a symbol is invalid (`*bad` = the first such
// element, in element order).
bool KeySplitRestBits(DType dtype, const uint8_t* reference,
                      const uint64_t counts[kKeySplitClasses],
                      const uint8_t* const symbols[kKeySplitClasses], size_t count,
                      uint64_t* rest_bits, size_t* bad);

// Step 3, after step 2 succeeded and the bit stream decoded to `bits_size` = (rest_bits + 7) / 8
// bytes, followed by 8 more readable bytes (read, never used): writes the values (2·count
// bytes). False when the last byte's unused high bits are not zero.
bool KeySplitInverse(DType dtype, const uint8_t* reference,
                     const uint8_t* const symbols[kKeySplitClasses], const uint8_t* bits,
                     size_t bits_size, size_t count, uint8_t* out);

}  // namespace ckz

#endif  // CKZ_COMMON_KEY_SPLIT_H_
