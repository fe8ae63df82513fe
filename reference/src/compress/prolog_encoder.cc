#include "compress/prolog_encoder.h"

#include <zstd.h>

#include <memory>
#include <string>
#include <vector>

#include "common/crc32c.h"

namespace ckz {
namespace {

// Prologs are small next to the tensors (a .pt's zip records and pickle, a safetensors JSON
// header): the strongest level costs milliseconds. Huge ones get a cheaper level.
constexpr int kSmallPrologLevel = 19;
constexpr size_t kSmallPrologBytes = size_t{8} << 20;
constexpr int kLargePrologLevel = 9;

}  // namespace

Status CompressSmallFrame(ByteSpan src, ByteSpan history, std::vector<uint8_t>* out) {
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  if (!cctx) return Status(ErrorCode::kIoError, "out of memory for a zstd context");
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel,
                         src.size <= kSmallPrologBytes ? kSmallPrologLevel : kLargePrologLevel);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_contentSizeFlag, 1);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 0);  // the header has a CRC-32C
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_dictIDFlag, 0);
  if (history.size > 0) ZSTD_CCtx_refPrefix(cctx.get(), history.data, history.size);
  out->resize(ZSTD_compressBound(src.size));
  const size_t n = ZSTD_compress2(cctx.get(), out->data(), out->size(), src.data, src.size);
  if (ZSTD_isError(n))
    return Status(ErrorCode::kIoError, std::string("zstd: ") + ZSTD_getErrorName(n));
  out->resize(n);
  return Status::Ok();
}

Status EncodeProlog(SourceFileInfo* file, ByteSpan parent_prolog,
                    std::optional<PrologCodec> force) {
  file->prolog_codec = PrologCodec::kStored;
  file->prolog_coded.clear();
  file->prolog_length = 0;
  file->prolog_crc32c = 0;
  file->prolog_parent_file = 0;
  const std::vector<uint8_t>& prolog = file->prolog;
  const bool codable = !prolog.empty() && prolog.size() <= kMaxPrologBytes;
  if (force && *force != PrologCodec::kStored &&
      (!codable || (*force == PrologCodec::kZstdParent && parent_prolog.empty())))
    return Status(ErrorCode::kInvalidArgument,
                  "source file '" + file->path + "': cannot code its prolog as " +
                      PrologCodecName(*force));
  if (!codable || force == PrologCodec::kStored) return Status::Ok();

  std::vector<uint8_t> best;
  PrologCodec best_codec = PrologCodec::kStored;
  for (PrologCodec codec : {PrologCodec::kZstd, PrologCodec::kZstdParent}) {
    if (force && *force != codec) continue;
    if (codec == PrologCodec::kZstdParent && parent_prolog.empty()) continue;
    std::vector<uint8_t> frame;
    CKZ_RETURN_IF_ERROR(CompressSmallFrame(
        ByteSpan(prolog), codec == PrologCodec::kZstdParent ? parent_prolog : ByteSpan{}, &frame));
    if (best_codec == PrologCodec::kStored || frame.size() < best.size()) {
      best = std::move(frame);
      best_codec = codec;
    }
  }
  if (!force && best.size() >= prolog.size()) return Status::Ok();  // stored is no larger
  file->prolog_codec = best_codec;
  file->prolog_coded = std::move(best);
  file->prolog_length = prolog.size();
  file->prolog_crc32c = Crc32c(prolog.data(), prolog.size());
  return Status::Ok();
}

}  // namespace ckz
