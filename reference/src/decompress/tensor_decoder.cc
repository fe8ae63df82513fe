// Range decoding over chunks: finds the chunks a byte range touches, fetches their reference
// bytes when predicted, decodes them (in parallel when asked) and copies the wanted slice.
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "ckz/decoder.h"
#include "common/parallel.h"

namespace ckz {

Status DecodeTensorRange(const Archive& archive, size_t tensor, uint64_t offset,
                         MutableByteSpan out, ReferenceSource* reference,
                         const DecodeOptions& options) {
  if (tensor >= archive.tensors.size())
    return Status(ErrorCode::kInvalidArgument, "tensor index out of range");
  const TensorInfo& t = archive.tensors[tensor];
  if (offset > t.byte_length || out.size > t.byte_length - offset)
    return Status(ErrorCode::kInvalidArgument,
                  "range [" + std::to_string(offset) + ", +" + std::to_string(out.size) +
                      ") is outside tensor '" + t.name + "' of " +
                      std::to_string(t.byte_length) + " bytes");
  const bool predicted = t.NeedsReference();
  if (predicted && reference == nullptr)
    return Status(ErrorCode::kReferenceRequired,
                  "tensor '" + t.name + "' is predicted from the parent checkpoint; decode it "
                  "through its chain (the parent file is needed)");
  // Rule R3 holds for a tensor without elements too: it has no chunk to ask for its reference,
  // so ask for none of the reference's bytes, which checks its name, dtype and shape.
  if (predicted && t.byte_length == 0)
    CKZ_RETURN_IF_ERROR(reference->ReadReference(t, 0, MutableByteSpan()));
  if (out.size == 0) return Status::Ok();

  const uint64_t end = offset + out.size;
  auto first = std::upper_bound(t.chunks.begin(), t.chunks.end(), offset,
                                [](uint64_t v, const ChunkInfo& c) { return v < c.raw_offset; });
  const size_t begin_chunk = size_t(first - t.chunks.begin()) - 1;
  size_t end_chunk = begin_chunk;
  while (end_chunk < t.chunks.size() && t.chunks[end_chunk].raw_offset < end) ++end_chunk;

  const int threads = std::max(1, options.threads);
  const size_t workers = size_t(threads);
  std::vector<std::unique_ptr<ChunkDecoder>> decoders(workers);
  std::vector<std::vector<uint8_t>> whole(workers), refs(workers);
  std::vector<Status> results(end_chunk - begin_chunk);

  ParallelFor(end_chunk - begin_chunk, threads, [&](size_t i, int worker) {
    const size_t c = begin_chunk + i;
    const ChunkInfo& chunk = t.chunks[c];
    auto& decoder = decoders[size_t(worker)];
    if (!decoder) {
      decoder = std::make_unique<ChunkDecoder>();
      decoder->set_index_cache(options.index_cache);
    }
    ByteSpan ref;
    if (predicted) {
      auto& buf = refs[size_t(worker)];
      buf.resize(chunk.raw_length);
      Status s = reference->ReadReference(t, chunk.raw_offset, MutableByteSpan(buf));
      if (!s.ok()) {
        results[i] = s;
        return;
      }
      ref = ByteSpan(buf);
    }
    // Decode straight into `out` when the chunk lies wholly inside the range.
    const uint64_t lo = std::max(offset, chunk.raw_offset);
    const uint64_t hi = std::min(end, chunk.raw_offset + chunk.raw_length);
    if (lo == chunk.raw_offset && hi == chunk.raw_offset + chunk.raw_length) {
      results[i] = decoder->Decode(archive, tensor, c, ref,
                                   out.subspan(chunk.raw_offset - offset, chunk.raw_length),
                                   reference);
      return;
    }
    auto& buf = whole[size_t(worker)];
    buf.resize(chunk.raw_length);
    results[i] = decoder->Decode(archive, tensor, c, ref, MutableByteSpan(buf), reference);
    if (results[i].ok())
      std::memcpy(out.data + (lo - offset), buf.data() + (lo - chunk.raw_offset), hi - lo);
  });
  for (Status& s : results)
    if (!s.ok()) return s;
  return Status::Ok();
}

}  // namespace ckz
