// Serialises the header FlatBuffer from the same structs the parser produces. Used by the
// writer, and by tests and vector generators that rebuild deliberately broken files.
#ifndef CKZ_FORMAT_HEADER_BUILD_H_
#define CKZ_FORMAT_HEADER_BUILD_H_

#include <cstdint>
#include <vector>

#include "ckz/archive.h"

namespace ckz {

// Builds the header of `a` (content_id, step, link, tensors, files, metadata, writer; the
// `file`, `preamble` and derived fields are ignored). Values are written as given, valid or
// not: validation is the parser's job.
std::vector<uint8_t> BuildHeader(const Archive& a);

}  // namespace ckz

#endif  // CKZ_FORMAT_HEADER_BUILD_H_
