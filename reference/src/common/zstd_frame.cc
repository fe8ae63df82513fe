#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getFrameHeader: the frame's window size
#include "common/zstd_frame.h"

namespace ckz {

std::string DecodeZstdFrame(ZSTD_DCtx* dctx, ByteSpan src, MutableByteSpan dst, ByteSpan history,
                            uint64_t max_window) {
  const size_t frame = ZSTD_findFrameCompressedSize(src.data, src.size);
  if (ZSTD_isError(frame) || frame != src.size)
    return std::string("not exactly one zstd frame") +
           (ZSTD_isError(frame) ? std::string(" (") + ZSTD_getErrorName(frame) + ")" : "");
  ZSTD_frameHeader header;
  if (ZSTD_getFrameHeader(&header, src.data, src.size) != 0 || header.frameType != ZSTD_frame)
    return "no zstd frame header";
  if (header.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN && header.frameContentSize != dst.size)
    return "zstd frame declares " + std::to_string(header.frameContentSize) + " bytes, " +
           std::to_string(dst.size) + " expected";
  if (header.windowSize > max_window)
    return "zstd window of " + std::to_string(header.windowSize) + " bytes exceeds the format's " +
           std::to_string(max_window);
  if (header.dictID != 0) return "zstd frame names a dictionary";
  if (header.windowSize < dst.size)
    return "zstd window of " + std::to_string(header.windowSize) + " bytes is smaller than the " +
           std::to_string(dst.size) + " bytes it decodes to" +
           (history.size > 0 ? ", so its history would not stay reachable"
                             : " (RFC 8878 would limit its offsets to the window)");
  ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
  if (history.size > 0) {
    const size_t r = ZSTD_DCtx_refPrefix(dctx, history.data, history.size);
    if (ZSTD_isError(r)) return std::string("zstd: ") + ZSTD_getErrorName(r);
  }
  // The history must stay addressable: never let the context's own window limit hide it.
  ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, ZSTD_WINDOWLOG_MAX);
  const size_t got = ZSTD_decompressDCtx(dctx, dst.data, dst.size, src.data, src.size);
  if (ZSTD_isError(got)) return std::string("zstd: ") + ZSTD_getErrorName(got);
  if (got != dst.size)
    return "zstd frame decodes to " + std::to_string(got) + " bytes, " + std::to_string(dst.size) +
           " expected";
  return "";
}

}  // namespace ckz
