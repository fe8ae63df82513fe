// Levels (i32, |level| < 2^24) held in the narrowest of 1, 2 or 4 bytes that holds them all:
// most are small, so kept levels (a chain's parent levels, the decoder's level cache) cost a
// quarter of the i32 array. Storage only: nothing here reaches a file.
#ifndef CKZ_COMMON_LEVEL_WIDTH_H_
#define CKZ_COMMON_LEVEL_WIDTH_H_

#include <cstddef>
#include <cstdint>

namespace ckz {

// 1, 2 or 4: the bytes per level that hold every one of `levels[0 .. count)`.
uint32_t LevelWidth(const int32_t* levels, size_t count);
// Writes `count` levels as `width`-byte little-endian two's complement integers to `out`.
void NarrowLevels(const int32_t* levels, size_t count, uint32_t width, uint8_t* out);
// The inverse: `count` levels of `width` bytes at `in` to i32 at `out` (no overlap).
void WidenLevels(const uint8_t* in, size_t count, uint32_t width, int32_t* out);
// Widens `count` levels of `width` bytes that lie at the end of the 4 * count bytes at `out`
// to i32 in place.
void WidenLevelsInPlace(uint8_t* out, size_t count, uint32_t width);

}  // namespace ckz

#endif  // CKZ_COMMON_LEVEL_WIDTH_H_
