#include "common/level_width.h"

#include <cstring>

#include "common/bytes.h"

namespace ckz {

uint32_t LevelWidth(const int32_t* levels, size_t count) {
  int32_t lo = 0, hi = 0;  // a min/max pass: it vectorizes
  for (size_t i = 0; i < count; ++i) {
    lo = levels[i] < lo ? levels[i] : lo;
    hi = levels[i] > hi ? levels[i] : hi;
  }
  if (lo >= -128 && hi <= 127) return 1;
  if (lo >= -32768 && hi <= 32767) return 2;
  return 4;
}

void NarrowLevels(const int32_t* levels, size_t count, uint32_t width, uint8_t* out) {
  for (size_t i = 0; i < count; ++i) {
    if (width == 1)
      out[i] = uint8_t(levels[i]);
    else if (width == 2)
      StoreLE16(out + 2 * i, uint16_t(levels[i]));
    else
      StoreLE32(out + 4 * i, uint32_t(levels[i]));
  }
}

// Level i of `width` bytes at `in`.
inline int32_t LevelAt(const uint8_t* in, size_t i, uint32_t width) {
  if (width == 1) return int8_t(in[i]);
  if (width == 2) return int16_t(LoadLE16(in + 2 * i));
  return int32_t(LoadLE32(in + 4 * i));
}

void WidenLevels(const uint8_t* in, size_t count, uint32_t width, int32_t* out) {
  for (size_t i = 0; i < count; ++i) out[i] = LevelAt(in, i, width);
}

void WidenLevelsInPlace(uint8_t* out, size_t count, uint32_t width) {
  if (width == 4) return;
  // Forward: element i's four bytes end before narrow element i + 1 begins.
  const uint8_t* narrow = out + count * (4 - width);
  for (size_t i = 0; i < count; ++i) {
    const int32_t q = LevelAt(narrow, i, width);
    std::memcpy(out + 4 * i, &q, 4);
  }
}

}  // namespace ckz
