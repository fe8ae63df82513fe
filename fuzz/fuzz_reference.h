// The parent bytes fuzz_container's reference source hands to predicted tensors: a pure
// function of the tensor's name and the byte offset. Shared with make_container_corpus, so
// that seeds whose coding depends on the reference's values (KeySplit's stream lengths,
// spec 7.10) are made against exactly these bytes and decode all the way in the fuzzer.
#ifndef CKZ_FUZZ_FUZZ_REFERENCE_H_
#define CKZ_FUZZ_FUZZ_REFERENCE_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace ckz_fuzz {

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline uint64_t HashBytes(const void* p, size_t n, uint64_t seed) {
  uint64_t h = seed ^ 0xCBF29CE484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const uint8_t*>(p)[i]) * 0x100000001B3ull;
  return SplitMix64(h);
}

inline void FillReference(const std::string& name, uint64_t offset, uint8_t* out, size_t n) {
  const uint64_t seed = HashBytes(name.data(), name.size(), 0x5EED);
  for (size_t i = 0; i < n;) {
    const uint64_t pos = offset + i;
    const uint64_t word = SplitMix64(seed ^ (pos >> 3));
    for (uint64_t b = pos & 7; b < 8 && i < n; ++b, ++i) out[i] = uint8_t(word >> (8 * b));
  }
}

}  // namespace ckz_fuzz

#endif  // CKZ_FUZZ_FUZZ_REFERENCE_H_
