#include "common/level_width.h"

#include <cstring>

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
  if (width == 1) {
    for (size_t i = 0; i < count; ++i) out[i] = uint8_t(levels[i]);
  } else if (width == 2) {
    for (size_t i = 0; i < count; ++i) {
      const uint16_t h = uint16_t(levels[i]);
      out[2 * i] = uint8_t(h);
      out[2 * i + 1] = uint8_t(h >> 8);
    }
  } else {
    for (size_t i = 0; i < count; ++i) {
      const uint32_t q = uint32_t(levels[i]);
      for (int b = 0; b < 4; ++b) out[4 * i + size_t(b)] = uint8_t(q >> (8 * b));
    }
  }
}

void WidenLevels(const uint8_t* in, size_t count, uint32_t width, int32_t* out) {
  if (width == 1) {
    for (size_t i = 0; i < count; ++i) out[i] = int8_t(in[i]);
  } else if (width == 2) {
    for (size_t i = 0; i < count; ++i) out[i] = int16_t(uint16_t(in[2 * i] | in[2 * i + 1] << 8));
  } else {
    for (size_t i = 0; i < count; ++i)
      out[i] = int32_t(uint32_t(in[4 * i]) | uint32_t(in[4 * i + 1]) << 8 |
                       uint32_t(in[4 * i + 2]) << 16 | uint32_t(in[4 * i + 3]) << 24);
  }
}

void WidenLevelsInPlace(uint8_t* out, size_t count, uint32_t width) {
  if (width == 4) return;
  // Forward: element i's four bytes end before narrow element i + 1 begins.
  const size_t from = count * (4 - width);
  for (size_t i = 0; i < count; ++i) {
    int32_t q;
    if (width == 1) {
      q = int8_t(out[from + i]);
    } else {
      q = int16_t(uint16_t(out[from + 2 * i] | out[from + 2 * i + 1] << 8));
    }
    std::memcpy(out + 4 * i, &q, 4);
  }
}

}  // namespace ckz
