// Decoding tensor bytes out of a validated Archive.
//
// The chunk decoder is pure: stored bytes + (for predicted tensors) the co-located bytes of the
// reference tensor in, tensor bytes out. Chains, files and threads are layered on top.
#ifndef CKZ_DECODER_H_
#define CKZ_DECODER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
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

  // (0.4, the cm codec's temporal context, spec 7.7.2) Fills `out` with the quantization
  // indices of elements [first, first + out.size) of the parent's tensor of the same name and
  // sets *centres to its codebook size; sets *centres = 0 (and leaves `out`) when the parent
  // has no quantized tensor of that name, dtype and shape. (0.7, spec 7.9.3) For a tensor with
  // a level kind: the parent's levels (4 bytes each, little-endian i32) when its tensor has a
  // level kind too, *centres = 1; a tensor of the other family gives nothing (*centres = 0).
  // The default cannot tell, and fails with kReferenceRequired.
  virtual Status ReadReferenceIndices(const TensorInfo& tensor, uint64_t first,
                                      MutableByteSpan out, uint32_t* centres);

  // (0.5, spec 8.4) The parent's source files with their decoded prologs, or null (the
  // default) when they are unknown.
  virtual const std::vector<SourceFileInfo>* ReferenceFiles();

  // The parent's whole decoded tensor of the same name, dtype and shape when it is already in
  // memory (valid while this source lives), so a caller can read it without a copy; nullopt
  // (the default) when it is not, or the parent has no such tensor: use ReadReference.
  virtual std::optional<ByteSpan> ReferenceView(const TensorInfo& tensor);

  // A hint that the reads so far are done with: a source that maps files unmaps their pages
  // from the process (they stay in the page cache), so memory stays bounded however much is
  // read. Never changes what is read; views given out before stay valid. Default: nothing.
  virtual void ReleaseMemory() {}

  // A writer's promise that it reads no more of `tensor`'s quantization indices or levels
  // (ReadReferenceIndices): a source holding them in memory may free them, so that a link's
  // new indices replace its parent's instead of adding to them. A later read of them fails
  // with kInvalidArgument. Default: nothing.
  virtual void ReleaseIndices(const TensorInfo& tensor) { (void)tensor; }
};

// One entry of a chunk's stream directory (spec 7.2).
struct StreamInfo {
  StreamCodec codec = StreamCodec::kStored;
  uint64_t offset = 0;         // in the file
  uint64_t stored_length = 0;  // bytes in the file
  uint64_t raw_length = 0;     // decoded bytes (0 in a KeySplit tensor: they follow from the
                               // reference and the symbols, spec 7.10)
};

// Reads and checks the stream directory of a chunk: known codecs, lengths that add up to the
// chunk's stored length exactly. Errors: kChunkMalformed.
Result<std::vector<StreamInfo>> ReadStreamDirectory(const Archive& archive, size_t tensor,
                                                    size_t chunk);

// A bounded, thread-safe cache of decoded quantization indices, one entry per chunk. The cm
// codec's contexts (spec 7.7.2) make a chunk's indices depend on the parent's indices of the
// same tensor and on the aux tensor's indices: without a cache, restoring a link of depth d
// decodes the deepest indices O(d^2) times and more (the reference reader's restore of a
// depth-9 link went from 11.8 s to well under a second with one). Entries name an archive by
// the address of its file bytes and its header checksum: a cache must not outlive the
// archives it has seen. Least recently inserted entries go first when over budget.
class IndexCache {
 public:
  explicit IndexCache(uint64_t budget_bytes = uint64_t{256} << 20);
  ~IndexCache();
  IndexCache(const IndexCache&) = delete;
  IndexCache& operator=(const IndexCache&) = delete;

  // Copies the cached indices of the chunk into `out` (its exact size); false if not cached.
  bool Lookup(const Archive& archive, size_t tensor, size_t chunk, MutableByteSpan out);
  // Copies bytes [offset, offset + out.size) of the chunk's entry; false if not cached.
  bool LookupPart(const Archive& archive, size_t tensor, size_t chunk, uint64_t offset,
                  MutableByteSpan out);
  void Insert(const Archive& archive, size_t tensor, size_t chunk, ByteSpan indices);
  // (0.7) A chunk's levels (i32): held in 1 or 2 bytes each where they fit, so the budget holds
  // up to 4x more of them and inserting one touches a quarter of the memory; read back as i32.
  bool LookupLevels(const Archive& archive, size_t tensor, size_t chunk, int32_t* out,
                    size_t count);
  void InsertLevels(const Archive& archive, size_t tensor, size_t chunk, const int32_t* levels,
                    size_t count);

  // Lookups so far and how many found their entry: a decode that asks for each chunk's
  // indices once (before decoding them) misses once per chunk.
  struct Stats {
    uint64_t lookups = 0;
    uint64_t hits = 0;
  };
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Decodes single chunks. Holds reusable scratch (a zstd context, buffers): one per thread.
class ChunkDecoder {
 public:
  ChunkDecoder();
  ~ChunkDecoder();
  ChunkDecoder(const ChunkDecoder&) = delete;
  ChunkDecoder& operator=(const ChunkDecoder&) = delete;

  // Decodes chunk `chunk` of tensor `tensor` into `out` (exactly its raw_length bytes) and
  // checks its CRC-32C. `reference` must hold the co-located reference bytes (raw_length of
  // them) when the tensor has a predictor, and is ignored otherwise. `source` supplies the
  // parent's indices to a cm-coded chunk of a link (spec 7.7); may be null otherwise.
  Status Decode(const Archive& archive, size_t tensor, size_t chunk, ByteSpan reference,
                MutableByteSpan out, ReferenceSource* source = nullptr);

  // The quantization indices of a quantized tensor's chunk (its E elements), checked to be
  // within the codebook; no reconstruction and no checksum (that needs the values).
  Status DecodeIndices(const Archive& archive, size_t tensor, size_t chunk,
                       ReferenceSource* source, MutableByteSpan indices);

  // Decoded cm indices (this archive's, and the aux tensors' it reads) go through `cache`
  // (may be null: none). Never changes what is decoded.
  void set_index_cache(IndexCache* cache) { index_cache_ = cache; }

 private:
  Status DecodeQuantized(const Archive& archive, size_t tensor, size_t chunk,
                         const StreamInfo& stream, ByteSpan reference, MutableByteSpan out,
                         ReferenceSource* source);
  Status StreamIndices(const Archive& archive, size_t tensor, size_t chunk,
                       const StreamInfo& stream, ReferenceSource* source, MutableByteSpan indices);
  Status StreamLevels(const Archive& archive, size_t tensor, size_t chunk,
                      const StreamInfo& stream, ReferenceSource* source, int32_t* out);
  Status DecodeFloats(const Archive& archive, size_t tensor, size_t chunk,
                      const StreamInfo& stream, ByteSpan reference, MutableByteSpan out);
  Status DecodeKeySplit(const Archive& archive, size_t tensor, size_t chunk,
                        const std::vector<StreamInfo>& streams, ByteSpan reference,
                        MutableByteSpan out);
  struct Scratch;
  std::unique_ptr<Scratch> scratch_;
  IndexCache* index_cache_ = nullptr;
};

// The quantization indices of elements [first, first + out.size) of quantized tensor `tensor`
// (the cm codec's contexts, spec 7.7.2). `reference` as for DecodeTensorRange.
Status DecodeIndexRange(const Archive& archive, size_t tensor, uint64_t first,
                        MutableByteSpan out, ReferenceSource* reference,
                        IndexCache* cache = nullptr);

// (0.5, spec 8.4) Decodes a coded prolog (file->prolog_coded) into file->prolog and checks its
// length and CRC-32C (kPrologDecodeFailed). `parent_prolog` is the history of a ZstdParent
// prolog: the decoded prolog of the parent's files[file->prolog_parent_file]. A stored prolog
// is left as it is.
Status DecodeProlog(SourceFileInfo* file, ByteSpan parent_prolog);

struct DecodeOptions {
  int threads = 1;  // chunks decoded in parallel; the output never depends on it
  IndexCache* index_cache = nullptr;  // see IndexCache; the output never depends on it
  // Whole decoded chunks of which a read wanted only part (an IndexCache of bytes): a link's
  // 256 KiB chunks read their parent's 1 MiB chunks four times each without it. Never
  // changes what is decoded.
  IndexCache* chunk_cache = nullptr;
};

// Decodes bytes [offset, offset + out.size) of a tensor. Only the chunks overlapping the range
// are decoded. `reference` may be null for tensors without a predictor.
Status DecodeTensorRange(const Archive& archive, size_t tensor, uint64_t offset,
                         MutableByteSpan out, ReferenceSource* reference,
                         const DecodeOptions& options = {});

// Bytes [offset, offset + out.size) of tensor `tensor`, to be written into `out`.
struct TensorRange {
  size_t tensor = 0;
  uint64_t offset = 0;
  MutableByteSpan out;
};

// Decodes several ranges at once: the chunks of all of them share the `options.threads`
// workers, so a checkpoint of many one-chunk tensors decodes on every core too. Tensors whose
// cm contexts read another tensor's indices (spec 7.7.2: a moment reads its weight's) are
// decoded after it, in waves, through the index cache (a temporary one if none is given), so
// no indices are decoded twice. Errors are those of DecodeTensorRange; when several chunks
// fail, the one reported does not depend on the thread count.
Status DecodeTensorRanges(const Archive& archive, const std::vector<TensorRange>& ranges,
                          ReferenceSource* reference, const DecodeOptions& options = {});

}  // namespace ckz

#endif  // CKZ_DECODER_H_
