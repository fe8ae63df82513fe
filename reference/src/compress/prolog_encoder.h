// Coding of source-file prologs (spec 8.4, format 0.5).
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

}  // namespace ckz

#endif  // CKZ_COMPRESS_PROLOG_ENCODER_H_
