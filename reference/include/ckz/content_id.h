// The content id of a decoded checkpoint (spec/ckz.md, section 6): SHA-256 over the sorted
// tensor names, dtypes, shapes and per-tensor digests of the decoded bytes. Independent of how
// the file was coded, so a link can name its parent by it.
#ifndef CKZ_CONTENT_ID_H_
#define CKZ_CONTENT_ID_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ckz/types.h"

namespace ckz {

inline constexpr uint64_t kDigestBlockBytes = uint64_t{1} << 20;
using Digest = std::array<uint8_t, 32>;

// SHA-256 over the SHA-256 of each 1 MiB block of `bytes` (the last block may be shorter).
// Blocks are hashed on up to `threads` threads; the result does not depend on it.
Digest TensorDigest(ByteSpan bytes, int threads = 1);

// Incremental form of TensorDigest for bytes that arrive in pieces of any size.
class TensorDigester {
 public:
  TensorDigester();
  ~TensorDigester();
  TensorDigester(TensorDigester&&) noexcept;
  TensorDigester& operator=(TensorDigester&&) noexcept;
  void Update(ByteSpan bytes);
  Digest Finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Collects (name, dtype, shape, digest) per tensor in any order; Finish() sorts by name.
class ContentIdBuilder {
 public:
  void AddTensor(std::string name, DType dtype, std::vector<uint64_t> shape, const Digest& digest);
  ContentId Finish() const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<uint64_t> shape;
    Digest digest;
  };
  std::vector<Entry> entries_;
};

}  // namespace ckz

#endif  // CKZ_CONTENT_ID_H_
