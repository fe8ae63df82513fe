// The checks fuzz_cml and fuzz_lstm make on one level stream (spec 7.9.3; 7.11 with a model
// in `in.lstm`), after each has read its own header: decoding is a pure function, results and
// bad-element positions are consistent, levels stay within 2^24 - 1, bytes past the end read
// as zeros, and decoded levels (and levels taken from the context bytes) round-trip.
#ifndef CKZ_FUZZ_LEVEL_STREAM_CHECKS_H_
#define CKZ_FUZZ_LEVEL_STREAM_CHECKS_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/level_model.h"
#include "fuzz_check.h"

namespace ckz_fuzz {

// A level from four context bytes: zero, small (|q| <= 16: the unary range), medium (an
// int16) or up to 2^24 - 1 (the escape's whole range), by the low two bits.
inline int32_t ContextLevel(uint32_t u) {
  switch (u & 3) {
    case 0: return 0;
    case 1: return int32_t(int8_t(u >> 8)) / 8;
    case 2: return int32_t(int16_t(u >> 8));
    default: {
      const int32_t m = int32_t((u >> 8) & 0xFFFFFF);  // 0 .. 2^24 - 1
      return (u & 4) ? -m : m;
    }
  }
}

inline bool Within(const std::vector<int32_t>& levels, size_t n) {
  constexpr int32_t kMaxLevel = (1 << 24) - 1;
  for (size_t i = 0; i < n; ++i)
    if (levels[i] > kMaxLevel || levels[i] < -kMaxLevel) return false;
  return true;
}

inline void RoundTrip(const ckz::LevelModelInputs& in, const std::vector<int32_t>& levels) {
  std::vector<uint8_t> coded;
  ckz::EncodeLevelStream(in, levels.data(), levels.size(), &coded);
  FUZZ_CHECK(coded.empty() || coded.back() != 0);
  // An exact-size copy, so ASan catches a read past the stream's end.
  std::vector<uint8_t> stream(coded.begin(), coded.end());
  std::vector<int32_t> back(levels.size(), 0x5EEEEEE);
  size_t bad = 0;
  FUZZ_CHECK(ckz::DecodeLevelStream(in, stream.data(), stream.size(), back.data(), back.size(),
                                    &bad) == ckz::LevelDecodeResult::kOk);
  FUZZ_CHECK(back == levels);
}

// `body` (`rest` bytes, after the harness's header) holds the stream's first `length` bytes,
// then the context bytes the parent, aux and round-trip levels are made from (cycled).
inline void CheckLevelStream(ckz::LevelModelInputs in, bool has_parent, bool has_aux,
                             size_t count, const uint8_t* body, size_t rest, size_t length) {
  using ckz::LevelDecodeResult;
  // The stream in its own allocation of exactly `length` bytes (ASan: no read past it).
  std::vector<uint8_t> stream(body, body + length);
  const uint8_t* ctx = body + length;
  const size_t nctx = rest - length;
  // Context word k: four context bytes from byte 4k on (cycled; zero when there are none).
  auto word = [&](size_t k) -> uint32_t {
    uint32_t u = 0;
    for (size_t b = 0; b < 4; ++b) u |= uint32_t(nctx ? ctx[(4 * k + b) % nctx] : 0) << (8 * b);
    return u;
  };

  std::vector<int32_t> parent, aux;
  if (has_parent) {
    parent.resize(count);
    for (size_t i = 0; i < count; ++i) parent[i] = ContextLevel(word(i));
    in.parent = parent.data();
  }
  if (has_aux) {
    aux.resize(count);
    for (size_t i = 0; i < count; ++i) aux[i] = ContextLevel(word(i + count + 1));
    in.aux = aux.data();
  }

  std::vector<int32_t> out(count, 0x5EEEEEE), again(count, 0x5DDDDDD);
  size_t bad = SIZE_MAX, bad2 = SIZE_MAX;
  const LevelDecodeResult r =
      ckz::DecodeLevelStream(in, stream.data(), stream.size(), out.data(), count, &bad);
  const LevelDecodeResult r2 =
      ckz::DecodeLevelStream(in, stream.data(), stream.size(), again.data(), count, &bad2);
  FUZZ_CHECK(r == r2);
  FUZZ_CHECK(r == LevelDecodeResult::kOk || r == LevelDecodeResult::kTooLarge ||
             r == LevelDecodeResult::kBadStream);
  const size_t decoded = r == LevelDecodeResult::kTooLarge ? bad : count;
  if (r == LevelDecodeResult::kTooLarge) {
    FUZZ_CHECK(bad < count && bad == bad2);
    // Elements before the bad one were decoded, identically.
    FUZZ_CHECK(std::equal(out.begin(), out.begin() + ptrdiff_t(bad), again.begin()));
  } else {
    FUZZ_CHECK(out == again);
  }
  FUZZ_CHECK(Within(out, decoded));

  // Bytes past the end read as zeros: one more 0x00 changes nothing but finish's length test.
  {
    std::vector<uint8_t> longer(stream);
    longer.push_back(0);
    std::vector<int32_t> third(count, 0x5CCCCCC);
    size_t bad3 = SIZE_MAX;
    const LevelDecodeResult r3 =
        ckz::DecodeLevelStream(in, longer.data(), longer.size(), third.data(), count, &bad3);
    FUZZ_CHECK(r3 == r || (r == LevelDecodeResult::kOk && r3 == LevelDecodeResult::kBadStream));
    if (r == LevelDecodeResult::kTooLarge) FUZZ_CHECK(bad3 == bad);
    FUZZ_CHECK(std::equal(out.begin(), out.begin() + ptrdiff_t(decoded), third.begin()));
  }
  if (r == LevelDecodeResult::kOk) RoundTrip(in, out);

  // The encoder on levels of the same shape, taken from the context bytes.
  std::vector<int32_t> levels(count);
  for (size_t i = 0; i < count; ++i) levels[i] = ContextLevel(word(3 * i + 7));
  RoundTrip(in, levels);
}

}  // namespace ckz_fuzz

#endif  // CKZ_FUZZ_LEVEL_STREAM_CHECKS_H_
