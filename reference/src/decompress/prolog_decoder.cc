// Coded prologs (spec 8.4): one zstd frame, optionally with the parent link's prolog of the
// same file as history. Pure: bytes in, bytes out; the chain reader supplies the history.
#include <zstd.h>

#include <memory>
#include <string>

#include "ckz/decoder.h"
#include "common/crc32c.h"
#include "common/zstd_frame.h"

namespace ckz {

const std::vector<SourceFileInfo>* ReferenceSource::ReferenceFiles() { return nullptr; }

std::optional<ByteSpan> ReferenceSource::ReferenceView(const TensorInfo&) { return std::nullopt; }

Status DecodeProlog(SourceFileInfo* file, ByteSpan parent_prolog) {
  if (file->prolog_codec == PrologCodec::kStored) return Status::Ok();
  const std::string where = "source file '" + file->path + "' " +
                            PrologCodecName(file->prolog_codec) + " prolog";
  if (file->prolog_length == 0 || file->prolog_length > kMaxPrologBytes)
    return Status(ErrorCode::kInvalidArgument, where + ": prolog_length out of range");
  std::vector<uint8_t> out(size_t(file->prolog_length));
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!dctx) return Status(ErrorCode::kIoError, where + ": out of memory for a zstd context");
  const ByteSpan history = file->prolog_codec == PrologCodec::kZstdParent ? parent_prolog
                                                                          : ByteSpan{};
  // The frame's window may cover the whole prolog (spec 8.4: at most 2^30 bytes).
  const std::string error = DecodeZstdFrame(dctx.get(), ByteSpan(file->prolog_coded),
                                            MutableByteSpan(out.data(), out.size()), history,
                                            kMaxPrologBytes);
  if (!error.empty()) return Status(ErrorCode::kPrologDecodeFailed, where + ": " + error);
  const uint32_t crc = Crc32c(out.data(), out.size());
  if (crc != file->prolog_crc32c)
    return Status(ErrorCode::kPrologDecodeFailed,
                  where + ": the decoded prolog has CRC-32C " + std::to_string(crc) +
                      ", the header says " + std::to_string(file->prolog_crc32c));
  file->prolog = std::move(out);
  return Status::Ok();
}

}  // namespace ckz
