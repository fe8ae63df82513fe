// Layout of a chunk's stored bytes (spec section 7.2): a stream directory of S entries
// (u8 codec, u32le stored length), then the S streams back to back.
#ifndef CKZ_FORMAT_CHUNK_LAYOUT_H_
#define CKZ_FORMAT_CHUNK_LAYOUT_H_

#include <cstddef>
#include <cstdint>

#include "ckz/types.h"

namespace ckz {

inline constexpr size_t kStreamEntryBytes = 5;

// S: one stream per byte plane, or one stream.
inline size_t StreamCount(bool byte_planes, size_t width) { return byte_planes ? width : 1; }

// Bytes of a packed index stream (spec 7.2): `count` indices of `bits` bits.
inline uint64_t PackedBytes(uint64_t count, unsigned bits) { return (count * bits + 7) / 8; }

}  // namespace ckz

#endif  // CKZ_FORMAT_CHUNK_LAYOUT_H_
