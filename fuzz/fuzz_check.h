// FUZZ_CHECK(cond): an invariant of a fuzz target. A failure prints the condition and traps, so
// libFuzzer records the input as a crash (plain assert() would vanish under NDEBUG). Le16: the
// targets' header fields.
#ifndef CKZ_FUZZ_FUZZ_CHECK_H_
#define CKZ_FUZZ_FUZZ_CHECK_H_

#include <cstdint>
#include <cstdio>

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::fflush(stderr);                                                              \
      __builtin_trap();                                                                 \
    }                                                                                   \
  } while (0)

namespace ckz_fuzz {

// A little-endian u16 of a fuzz input's header.
inline uint32_t Le16(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }

}  // namespace ckz_fuzz

#endif  // CKZ_FUZZ_FUZZ_CHECK_H_
