// The fixed 64-byte preamble (spec section 2): layout shared by the parser and the writer.
#ifndef CKZ_FORMAT_PREAMBLE_H_
#define CKZ_FORMAT_PREAMBLE_H_

#include <cstdint>

#include "ckz/archive.h"

namespace ckz {

// 0x89 'C' 'K' 'Z' CR LF 0x1A LF: the high byte catches 7-bit channels, CR LF and LF catch
// newline conversion, 0x1A stops `type` on DOS (the PNG recipe).
inline constexpr uint8_t kMagic[8] = {0x89, 'C', 'K', 'Z', 0x0D, 0x0A, 0x1A, 0x0A};

namespace preamble_offset {
inline constexpr size_t kMagic = 0;
inline constexpr size_t kMajor = 8;
inline constexpr size_t kMinor = 10;
inline constexpr size_t kReserved0 = 12;
inline constexpr size_t kRequiredFeatures = 16;
inline constexpr size_t kOptionalFeatures = 24;
inline constexpr size_t kHeaderOffset = 32;
inline constexpr size_t kHeaderLength = 40;
inline constexpr size_t kHeaderCrc = 48;
inline constexpr size_t kReserved1 = 52;
inline constexpr size_t kPreambleCrc = 60;
}  // namespace preamble_offset

// Serialises `p` (reserved fields zero) with its checksum.
void EncodePreamble(const Preamble& p, uint8_t out[kPreambleSize]);

}  // namespace ckz

#endif  // CKZ_FORMAT_PREAMBLE_H_
