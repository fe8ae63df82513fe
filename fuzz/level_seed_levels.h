// What make_cml_corpus and make_lstm_corpus share: the generator of seed levels and the
// context word that level_stream_checks.h's ContextLevel reads back.
#ifndef CKZ_FUZZ_LEVEL_SEED_LEVELS_H_
#define CKZ_FUZZ_LEVEL_SEED_LEVELS_H_

#include <cstdint>

#include "common/level_model.h"

namespace ckz_fuzz {

struct SeedRng {
  uint64_t s;
  uint32_t Next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(s >> 33);
  }
};

// A level like the rate-distortion planner's: mostly small, near the parent's; about one in
// `zero_every` zero (0: all zero), one in `big_every` an escape (0: none).
inline int32_t SeedLevel(SeedRng& r, unsigned zero_every, unsigned big_every, int32_t parent) {
  constexpr int32_t kMaxLevel = (1 << 24) - 1;
  if (zero_every == 0 || r.Next() % zero_every == 0) return 0;
  int32_t m;
  if (big_every && r.Next() % big_every == 0) {
    m = int32_t(15 + (r.Next() >> (8 + r.Next() % 24)) % (kMaxLevel - 14));  // every prefix length
  } else {
    m = int32_t(1 + r.Next() % (1 + r.Next() % 18));  // 1..18: the unary range and just past it
  }
  if (parent != 0 && r.Next() % 2) m = (parent < 0 ? -parent : parent) + int32_t(r.Next() % 3);
  if (m > kMaxLevel) m = kMaxLevel;
  return r.Next() % 2 ? -m : m;
}

// The context word ContextLevel (level_stream_checks.h) reads back as `v` (|v| <= 2^24 - 1).
inline uint32_t ContextWord(int32_t v) {
  const uint32_t m = uint32_t(v < 0 ? -v : v);
  if (v == 0) return 0;
  return 3u | (v < 0 ? 4u : 0u) | m << 8;
}

inline const char* ResultName(ckz::LevelDecodeResult r) {
  return r == ckz::LevelDecodeResult::kOk         ? "ok"
         : r == ckz::LevelDecodeResult::kTooLarge ? "too large"
                                                  : "bad stream";
}

}  // namespace ckz_fuzz

#endif  // CKZ_FUZZ_LEVEL_SEED_LEVELS_H_
