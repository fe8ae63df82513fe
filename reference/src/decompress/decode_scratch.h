// Chunk decoders and buffers reused from chunk to chunk and from call to call on each thread,
// so that decoding allocates (and zero-fills) nothing per chunk. Decoding a chain nests (a
// link's chunk reads its parent's), and each level takes a scratch of its own.
#ifndef CKZ_DECOMPRESS_DECODE_SCRATCH_H_
#define CKZ_DECOMPRESS_DECODE_SCRATCH_H_

#include <memory>
#include <vector>

#include "ckz/decoder.h"

namespace ckz {

struct DecodeScratch {
  ChunkDecoder decoder;
  std::vector<uint8_t> whole, ref, buffer;
};

// Takes a scratch from this thread's pool (or makes one) and gives it back when destroyed.
class PooledScratch {
 public:
  PooledScratch();
  ~PooledScratch();
  PooledScratch(const PooledScratch&) = delete;
  PooledScratch& operator=(const PooledScratch&) = delete;
  DecodeScratch* operator->() { return scratch_.get(); }
  DecodeScratch& operator*() { return *scratch_; }

 private:
  std::unique_ptr<DecodeScratch> scratch_;
};

}  // namespace ckz

#endif  // CKZ_DECOMPRESS_DECODE_SCRATCH_H_
