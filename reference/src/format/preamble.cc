#include "format/preamble.h"

#include <cstring>
#include <string>

#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/rule_switch.h"

namespace ckz {
namespace {

std::string Hex(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

void EncodePreamble(const Preamble& p, uint8_t out[kPreambleSize]) {
  namespace o = preamble_offset;
  std::memset(out, 0, kPreambleSize);
  std::memcpy(out + o::kMagic, kMagic, sizeof kMagic);
  StoreLE16(out + o::kMajor, p.major);
  StoreLE16(out + o::kMinor, p.minor);
  StoreLE64(out + o::kRequiredFeatures, p.required_features);
  StoreLE64(out + o::kOptionalFeatures, p.optional_features);
  StoreLE64(out + o::kHeaderOffset, p.header_offset);
  StoreLE64(out + o::kHeaderLength, p.header_length);
  StoreLE32(out + o::kHeaderCrc, p.header_crc32c);
  StoreLE32(out + o::kPreambleCrc, Crc32c(out, o::kPreambleCrc));
}

Result<Preamble> ParsePreamble(ByteSpan bytes, uint64_t file_size) {
  namespace o = preamble_offset;
  const size_t have = std::min<size_t>(bytes.size, sizeof kMagic);
  if (have > 0 && std::memcmp(bytes.data, kMagic, have) != 0) {
    if (bytes.size >= 4 && std::memcmp(bytes.data + 1, "CKZ", 3) == 0)
      return Status(ErrorCode::kTextModeCorruption,
                    "magic at offset 0 is damaged the way a text-mode or 7-bit transfer damages "
                    "files (newline or high-bit conversion); transfer the file in binary mode");
    return Status(ErrorCode::kBadMagic, "not a CKZ file: bad magic at offset 0");
  }
  if (bytes.size < kPreambleSize || file_size < kPreambleSize)
    return Status(ErrorCode::kTruncated, "file is " + std::to_string(file_size) +
                                             " bytes, shorter than the 64-byte preamble");
  Preamble p;
  p.major = LoadLE16(bytes.data + o::kMajor);
  p.minor = LoadLE16(bytes.data + o::kMinor);
  if (p.major != kFormatMajor)
    return Status(ErrorCode::kUnsupportedVersion,
                  "preamble.major at offset 8 is " + std::to_string(p.major) + "." +
                      std::to_string(p.minor) + "; this reader supports major version " +
                      std::to_string(kFormatMajor));
  const uint32_t stored_crc = LoadLE32(bytes.data + o::kPreambleCrc);
  const uint32_t crc = Crc32c(bytes.data, o::kPreambleCrc);
  if (crc != stored_crc)
    return Status(ErrorCode::kPreambleChecksum, "preamble CRC-32C at offset 60 is " +
                                                    Hex(stored_crc) + ", bytes 0..59 give " +
                                                    Hex(crc));
  p.required_features = LoadLE64(bytes.data + o::kRequiredFeatures);
  p.optional_features = LoadLE64(bytes.data + o::kOptionalFeatures);
  p.header_offset = LoadLE64(bytes.data + o::kHeaderOffset);
  p.header_length = LoadLE64(bytes.data + o::kHeaderLength);
  p.header_crc32c = LoadLE32(bytes.data + o::kHeaderCrc);

  if (uint64_t unknown = p.required_features & ~kKnownRequiredFeatures)
    return Status(ErrorCode::kUnknownRequiredFeature,
                  "preamble.required_features at offset 16 has bits " + Hex(unknown) +
                      " that this reader does not implement (file written for format " +
                      std::to_string(p.major) + "." + std::to_string(p.minor) + ")");
  if (CKZ_RULE_ON(P6) && p.header_length > kMaxHeaderBytes)
    return Status(ErrorCode::kHeaderTooLarge, "preamble.header_length at offset 40 is " +
                                                  std::to_string(p.header_length) +
                                                  " bytes; the format allows at most " +
                                                  std::to_string(kMaxHeaderBytes));
  if (p.header_offset < kPreambleSize || p.header_offset > file_size ||
      p.header_length > file_size - p.header_offset)
    return Status(ErrorCode::kHeaderOutOfBounds,
                  "header range [" + std::to_string(p.header_offset) + ", +" +
                      std::to_string(p.header_length) + ") from the preamble (offsets 32, 40) is "
                      "not inside the file of " + std::to_string(file_size) + " bytes after the "
                      "preamble");
  if (CKZ_RULE_ON(P8) && p.header_offset % kAlignment != 0)
    return Status(ErrorCode::kMisaligned, "preamble.header_offset " +
                                              std::to_string(p.header_offset) +
                                              " is not a multiple of 64");
  return p;
}

}  // namespace ckz
