// SHA-256 (FIPS 180-4), used for the content id.
#ifndef CKZ_COMMON_SHA256_H_
#define CKZ_COMMON_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>

namespace ckz {

class Sha256 {
 public:
  Sha256();
  void Update(const uint8_t* data, size_t size);
  std::array<uint8_t, 32> Finish();

  static std::array<uint8_t, 32> Hash(const uint8_t* data, size_t size);

 private:
  void Compress(const uint8_t* blocks, size_t count);
  uint32_t state_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_ = 0;
};

}  // namespace ckz

#endif  // CKZ_COMMON_SHA256_H_
