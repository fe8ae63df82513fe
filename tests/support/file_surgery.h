// Builds deliberately broken files from valid ones: parse, mutate the Archive structs,
// serialise again over the original payload. Shared by the tests, the fuzz seed generator and
// the conformance vector generator so that every invalid file is made the same way.
#ifndef CKZ_TESTS_SUPPORT_FILE_SURGERY_H_
#define CKZ_TESTS_SUPPORT_FILE_SURGERY_H_

#include <cstdint>
#include <vector>

#include "ckz/archive.h"
#include "format/header_build.h"

namespace ckz::testing {

// A file with `a`'s header (rebuilt from the structs, valid or not) placed at
// a.preamble.header_offset after the original payload bytes [64, header_offset), and a
// preamble from a.preamble with header length and both checksums recomputed. `deviations`
// break the header in ways the structs cannot express.
std::vector<uint8_t> Rebuild(const Archive& a, ByteSpan original,
                             const HeaderDeviations* deviations = nullptr);

// Rewrites the preamble checksum after a hand edit of bytes 0..59.
void FixPreambleCrc(std::vector<uint8_t>& file);
// Rewrites the header checksum (and then the preamble checksum) after a hand edit of the header.
void FixHeaderCrc(std::vector<uint8_t>& file);

}  // namespace ckz::testing

#endif  // CKZ_TESTS_SUPPORT_FILE_SURGERY_H_
