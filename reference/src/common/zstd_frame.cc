#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getFrameHeader: the frame's window size
#include "common/zstd_frame.h"

#include "common/bytes.h"

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

std::optional<uint64_t> ZstdDeclaredSize(ByteSpan src) {
  constexpr uint32_t kMagic = 0xFD2FB528;
  if (src.size < 5 || LoadLE32(src.data) != kMagic) return std::nullopt;
  const uint8_t descriptor = src.data[4];
  const unsigned fcs_flag = descriptor >> 6, dict_flag = descriptor & 3;
  const bool single_segment = (descriptor >> 5) & 1;
  if (descriptor & 0x08) return std::nullopt;  // the reserved bit
  if (fcs_flag == 0 && !single_segment) return std::nullopt;  // no Frame_Content_Size field
  const size_t fcs_bytes = fcs_flag == 0 ? 1 : size_t{1} << fcs_flag;
  const size_t at = 5 + (single_segment ? 0 : 1) + (dict_flag == 3 ? 4 : dict_flag);
  if (src.size < at + fcs_bytes) return std::nullopt;
  uint64_t n = 0;
  for (size_t i = 0; i < fcs_bytes; ++i) n |= uint64_t(src.data[at + i]) << (8 * i);
  return fcs_bytes == 2 ? n + 256 : n;  // a 2-byte field is offset by 256
}

}  // namespace ckz
