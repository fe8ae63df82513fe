// Coding of source-file prologs (spec 8.4, format 0.5) and of the header (spec 4.1, 0.6).
#ifndef CKZ_COMPRESS_PROLOG_ENCODER_H_
#define CKZ_COMPRESS_PROLOG_ENCODER_H_

#include <optional>

#include "ckz/archive.h"
#include "ckz/status.h"

namespace ckz {

// Chooses how the header stores file->prolog and fills prolog_codec, prolog_coded,
// prolog_length and prolog_crc32c: the smallest of stored, zstd and (when `parent_prolog` is
// not empty: the file is a link and its parent has a prolog of the same path) zstd with the
// parent's prolog as history. `force` picks one (kInvalidArgument if it cannot be used).
Status EncodeProlog(SourceFileInfo* file, ByteSpan parent_prolog,
                    std::optional<PrologCodec> force);

// One zstd frame of bytes that sit beside the tensors (a prolog, spec 8.4; the header itself,
// spec 4.1): content size declared, no checksum (a CRC-32C covers them), no dictionary id,
// `history` (may be empty) as raw-content prefix; level 19, or 9 above 8 MiB.
Status CompressSmallFrame(ByteSpan src, ByteSpan history, std::vector<uint8_t>* out);

}  // namespace ckz

#endif  // CKZ_COMPRESS_PROLOG_ENCODER_H_
