// Decoding tensor bytes out of a validated Archive.
//
// The chunk decoder is pure: stored bytes + (for predicted tensors) the co-located bytes of the
// reference tensor in, tensor bytes out. Chains, files and threads are layered on top.
#ifndef CKZ_DECODER_H_
#define CKZ_DECODER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "ckz/archive.h"
#include "ckz/status.h"
#include "ckz/types.h"

namespace ckz {

// Supplies the reference (parent) bytes that predicted tensors are decoded against.
class ReferenceSource {
 public:
  virtual ~ReferenceSource() = default;
  // Fills `out` with bytes [offset, offset + out.size) of the parent's tensor that `tensor`
  // is predicted from (the parent tensor of the same name). Fails with kReferenceMismatch when
  // the parent has no such tensor or its dtype or shape differ.
  virtual Status ReadReference(const TensorInfo& tensor, uint64_t offset, MutableByteSpan out) = 0;
};

// One entry of a chunk's stream directory (spec 7.2).
struct StreamInfo {
  StreamCodec codec = StreamCodec::kStored;
  uint64_t offset = 0;         // in the file
  uint64_t stored_length = 0;  // bytes in the file
  uint64_t raw_length = 0;     // decoded bytes
};

// Reads and checks the stream directory of a chunk: known codecs, lengths that add up to the
// chunk's stored length exactly. Errors: kChunkMalformed.
Result<std::vector<StreamInfo>> ReadStreamDirectory(const Archive& archive, size_t tensor,
                                                    size_t chunk);

// Decodes single chunks. Holds reusable scratch (a zstd context, buffers): one per thread.
class ChunkDecoder {
 public:
  ChunkDecoder();
  ~ChunkDecoder();
  ChunkDecoder(const ChunkDecoder&) = delete;
  ChunkDecoder& operator=(const ChunkDecoder&) = delete;

  // Decodes chunk `chunk` of tensor `tensor` into `out` (exactly its raw_length bytes) and
  // checks its CRC-32C. `reference` must hold the co-located reference bytes (raw_length of
  // them) when the tensor has a predictor, and is ignored otherwise.
  Status Decode(const Archive& archive, size_t tensor, size_t chunk, ByteSpan reference,
                MutableByteSpan out);

 private:
  Status DecodeQuantized(const Archive& archive, size_t tensor, size_t chunk,
                         const StreamInfo& stream, ByteSpan reference, MutableByteSpan out);
  struct Scratch;
  std::unique_ptr<Scratch> scratch_;
};

struct DecodeOptions {
  int threads = 1;  // chunks decoded in parallel; the output never depends on it
};

// Decodes bytes [offset, offset + out.size) of a tensor. Only the chunks overlapping the range
// are decoded. `reference` may be null for tensors without a predictor.
Status DecodeTensorRange(const Archive& archive, size_t tensor, uint64_t offset,
                         MutableByteSpan out, ReferenceSource* reference,
                         const DecodeOptions& options = {});

}  // namespace ckz

#endif  // CKZ_DECODER_H_
