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
// (0.8) A KeySplit tensor's chunks have ten (spec 7.10), whatever its plane flag says.
inline size_t StreamCount(Predictor predictor, bool byte_planes, size_t width) {
  return predictor == Predictor::kKeySplit ? 10 : StreamCount(byte_planes, width);
}

// Bytes of a packed index stream (spec 7.2): `count` indices of `bits` bits.
inline uint64_t PackedBytes(uint64_t count, unsigned bits) { return (count * bits + 7) / 8; }

}  // namespace ckz

#endif  // CKZ_FORMAT_CHUNK_LAYOUT_H_
