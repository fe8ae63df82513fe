// FUZZ_CHECK(cond): an invariant of a fuzz target. A failure prints the condition and traps, so
// libFuzzer records the input as a crash (plain assert() would vanish under NDEBUG).
#ifndef CKZ_FUZZ_FUZZ_CHECK_H_
#define CKZ_FUZZ_FUZZ_CHECK_H_

#include <cstdio>

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::fflush(stderr);                                                              \
      __builtin_trap();                                                                 \
    }                                                                                   \
  } while (0)

#endif  // CKZ_FUZZ_FUZZ_CHECK_H_
