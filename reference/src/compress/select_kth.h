// The k-th smallest of a stream of values without holding them: a radix selection on the
// values' order-preserving 64-bit keys, 16 bits per pass. Used where the encoder needs a median
// (or another order statistic) of a tensor-sized set: memory does not grow with the tensor.
#ifndef CKZ_COMPRESS_SELECT_KTH_H_
#define CKZ_COMPRESS_SELECT_KTH_H_

#include <cstdint>
#include <cstring>
#include <vector>

namespace ckz {

// The k-th smallest (from 0) of the values that `each(fn)` hands to fn, the same ones in the
// same order on every call: the value std::nth_element over all of them would find (equal
// values are one value), in four passes over them and a 512 KiB histogram. k must be below the
// number of values; no value is a NaN.
template <typename Each>
double SelectKth(uint64_t k, Each each) {
  auto key = [](double v) {
    uint64_t b;
    std::memcpy(&b, &v, 8);
    return b >> 63 ? ~b : b | (uint64_t{1} << 63);
  };
  std::vector<uint64_t> histogram(size_t{1} << 16);
  uint64_t prefix = 0;  // the key bits above `shift` that the k-th value has
  for (int shift = 48; shift >= 0; shift -= 16) {
    std::fill(histogram.begin(), histogram.end(), 0);
    each([&](double v) {
      const uint64_t kv = key(v);
      if (shift == 48 || kv >> (shift + 16) == prefix) ++histogram[size_t((kv >> shift) & 0xFFFF)];
    });
    size_t bin = 0;
    while (k >= histogram[bin]) k -= histogram[bin++];
    prefix = prefix << 16 | bin;
  }
  // `prefix` is the whole key of the k-th value: invert the key.
  const uint64_t b = prefix >> 63 ? prefix & ~(uint64_t{1} << 63) : ~prefix;
  double v;
  std::memcpy(&v, &b, 8);
  return v;
}

}  // namespace ckz

#endif  // CKZ_COMPRESS_SELECT_KTH_H_
