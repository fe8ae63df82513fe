#include "file_surgery.h"

#include <cstring>

#include "common/bytes.h"
#include "common/crc32c.h"
#include "format/header_build.h"
#include "format/preamble.h"

namespace ckz::testing {

std::vector<uint8_t> Rebuild(const Archive& a, ByteSpan original,
                             const HeaderDeviations* deviations) {
  const std::vector<uint8_t> header = BuildHeader(a, deviations);
  const uint64_t payload_end = std::min<uint64_t>(a.preamble.header_offset, original.size);
  std::vector<uint8_t> file(original.data, original.data + payload_end);
  file.resize(a.preamble.header_offset, 0);
  file.insert(file.end(), header.begin(), header.end());
  Preamble p = a.preamble;
  p.required_features &= ~kFeatureCodedHeader;  // the rebuilt header is a plain FlatBuffer
  p.header_length = header.size();
  p.header_crc32c = Crc32c(header.data(), header.size());
  EncodePreamble(p, file.data());
  return file;
}

void FixPreambleCrc(std::vector<uint8_t>& file) {
  StoreLE32(file.data() + preamble_offset::kPreambleCrc,
            Crc32c(file.data(), preamble_offset::kPreambleCrc));
}

void FixHeaderCrc(std::vector<uint8_t>& file) {
  const uint64_t offset = LoadLE64(file.data() + preamble_offset::kHeaderOffset);
  const uint64_t length = LoadLE64(file.data() + preamble_offset::kHeaderLength);
  StoreLE32(file.data() + preamble_offset::kHeaderCrc, Crc32c(file.data() + offset, length));
  FixPreambleCrc(file);
}

}  // namespace ckz::testing
