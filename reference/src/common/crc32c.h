// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF), the
// checksum of chunks, header and preamble (spec 3.1). Check value: "123456789" -> 0xE3069283.
// The zip CRC-32 (ckz/torch.h, ZipCrc32) shares the implementation.
#ifndef CKZ_COMMON_CRC32C_H_
#define CKZ_COMMON_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace ckz {

// Continues a CRC: Crc32c(b, Crc32c(a)) == Crc32c(a || b). Start with crc = 0.
uint32_t Crc32c(const uint8_t* data, size_t size, uint32_t crc = 0);

}  // namespace ckz

#endif  // CKZ_COMMON_CRC32C_H_
