#include "common/level_width.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/bytes.h"

namespace ckz {

// A level x fits in b bits (two's complement) iff x ^ (x >> 31), its magnitude with negatives
// one less, is below 2^(b-1): one OR over all levels says which width holds them all.
uint32_t LevelWidth(const int32_t* levels, size_t count) {
  uint32_t any = 0;
  size_t i = 0;
#if defined(__SSE2__)
  __m128i acc = _mm_setzero_si128();
  for (; i + 4 <= count; i += 4) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(levels + i));
    acc = _mm_or_si128(acc, _mm_xor_si128(x, _mm_srai_epi32(x, 31)));
  }
  acc = _mm_or_si128(acc, _mm_srli_si128(acc, 8));
  acc = _mm_or_si128(acc, _mm_srli_si128(acc, 4));
  any = uint32_t(_mm_cvtsi128_si32(acc));
#endif
  for (; i < count; ++i) any |= uint32_t(levels[i] ^ (levels[i] >> 31));
  if (any < 0x80u) return 1;
  if (any < 0x8000u) return 2;
  return 4;
}

// The width is tested once per call, not per level, so that each loop vectorizes.
// (SSE2: the saturating packs keep every level unchanged, since `width` holds them all.)
void NarrowLevels(const int32_t* levels, size_t count, uint32_t width, uint8_t* out) {
  size_t i = 0;
#if defined(__SSE2__)
  auto load = [&](size_t k) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(levels + k));
  };
#endif
  if (width == 1) {
#if defined(__SSE2__)
    for (; i + 16 <= count; i += 16) {
      const __m128i lo = _mm_packs_epi32(load(i), load(i + 4));
      const __m128i hi = _mm_packs_epi32(load(i + 8), load(i + 12));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_packs_epi16(lo, hi));
    }
#endif
    for (; i < count; ++i) out[i] = uint8_t(levels[i]);
  } else if (width == 2) {
#if defined(__SSE2__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= count; i += 8)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i),
                       _mm_packs_epi32(load(i), load(i + 4)));
#endif
    for (; i < count; ++i) StoreLE16(out + 2 * i, uint16_t(levels[i]));
  } else {
    for (; i < count; ++i) StoreLE32(out + 4 * i, uint32_t(levels[i]));
  }
}

// Level i of `width` bytes at `in`.
inline int32_t LevelAt(const uint8_t* in, size_t i, uint32_t width) {
  if (width == 1) return int8_t(in[i]);
  if (width == 2) return int16_t(LoadLE16(in + 2 * i));
  return int32_t(LoadLE32(in + 4 * i));
}

// (SSE2: each byte or half-word is put in the top of its lane and shifted down arithmetically,
// which extends its sign.)
void WidenLevels(const uint8_t* in, size_t count, uint32_t width, int32_t* out) {
  size_t i = 0;
#if defined(__SSE2__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  auto store = [&](size_t k, __m128i v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k), v);
  };
  if (width == 1) {
    for (; i + 16 <= count; i += 16) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
      const __m128i lo = _mm_unpacklo_epi8(b, b), hi = _mm_unpackhi_epi8(b, b);
      store(i, _mm_srai_epi32(_mm_unpacklo_epi16(lo, lo), 24));
      store(i + 4, _mm_srai_epi32(_mm_unpackhi_epi16(lo, lo), 24));
      store(i + 8, _mm_srai_epi32(_mm_unpacklo_epi16(hi, hi), 24));
      store(i + 12, _mm_srai_epi32(_mm_unpackhi_epi16(hi, hi), 24));
    }
  } else if (width == 2) {
    for (; i + 8 <= count; i += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i));
      store(i, _mm_srai_epi32(_mm_unpacklo_epi16(h, h), 16));
      store(i + 4, _mm_srai_epi32(_mm_unpackhi_epi16(h, h), 16));
    }
  }
#endif
  if (width == 1)
    for (; i < count; ++i) out[i] = int8_t(in[i]);
  else if (width == 2)
    for (; i < count; ++i) out[i] = int16_t(LoadLE16(in + 2 * i));
  else
    for (; i < count; ++i) out[i] = int32_t(LoadLE32(in + 4 * i));
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
