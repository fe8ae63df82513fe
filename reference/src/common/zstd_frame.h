// The zstd frame rules shared by chunk streams (spec 7.2) and coded prologs (spec 8.4): exactly
// one frame, no dictionary id, a declared content size (if any) equal to the expected size, a
// bounded window. One checked decoder so both surfaces reject the same things.
#ifndef CKZ_COMMON_ZSTD_FRAME_H_
#define CKZ_COMMON_ZSTD_FRAME_H_

#include <zstd.h>

#include <cstdint>
#include <optional>
#include <string>

#include "ckz/types.h"

namespace ckz {

// Decodes the single zstd frame `src` into exactly `dst.size` bytes. The frame's window must
// cover all of `dst` (spec 7.2, 8.4): RFC 8878 limits offsets to the window, which libzstd's
// one-shot decoder does not check, so with a smaller window it would accept frames a streaming
// decoder rejects. `history` (may be empty) is a raw-content dictionary: bytes that precede
// the frame's output and that its matches may copy from (RFC 8878, "Dictionary Format", raw
// content); the window rule keeps it reachable to the end. Returns "" on success, else what is
// wrong (for the caller's error message).
std::string DecodeZstdFrame(ZSTD_DCtx* dctx, ByteSpan src, MutableByteSpan dst, ByteSpan history,
                            uint64_t max_window);

// The Frame_Content_Size that `src`'s frame header declares (RFC 8878 3.1.1.1), read before
// anything else of the frame: nullopt unless `src` starts with a complete zstd frame header (the
// magic, a descriptor whose reserved bit is clear, and the fields it announces) that declares
// one. Nothing after the header, nor its window or dictionary id, is looked at (spec 4.1, H8).
std::optional<uint64_t> ZstdDeclaredSize(ByteSpan src);

}  // namespace ckz

#endif  // CKZ_COMMON_ZSTD_FRAME_H_
