#include "common/crc32c.h"

#include "ckz/torch.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define CKZ_HAVE_X86_CRC 1
#endif

namespace ckz {
namespace {

constexpr uint32_t kCastagnoli = 0x82F63B78u;  // CRC-32C
constexpr uint32_t kIsoHdlc = 0xEDB88320u;     // zip's CRC-32

using Tables = std::array<std::array<uint32_t, 256>, 8>;

// Slicing-by-8 tables of a reflected CRC: table[k][b] is the CRC of byte b followed by k zero
// bytes.
constexpr Tables MakeTables(uint32_t poly) {
  Tables t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int i = 0; i < 8; ++i) c = (c >> 1) ^ ((c & 1) ? poly : 0);
    t[0][b] = c;
  }
  for (int k = 1; k < 8; ++k)
    for (uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
  return t;
}
constexpr Tables kCastagnoliTables = MakeTables(kCastagnoli);
constexpr Tables kIsoHdlcTables = MakeTables(kIsoHdlc);

uint32_t CrcPortable(const Tables& t, const uint8_t* p, size_t n, uint32_t c) {
  while (n >= 8) {
    uint32_t lo = c ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                       uint32_t(p[3]) << 24);
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
        t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  return c;
}

#ifdef CKZ_HAVE_X86_CRC
// One lane: the crc32 instruction, 8 bytes at a time.
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42Lane(const uint8_t* p, size_t n,
                                                             uint32_t c) {
  uint64_t c64 = c;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);  // the crc32 instruction consumes little-endian bytes
    c64 = _mm_crc32_u64(c64, v);
    p += 8;
    n -= 8;
  }
  c = uint32_t(c64);
  while (n--) c = _mm_crc32_u8(c, *p++);
  return c;
}

// The crc32 instruction has a latency of 3 cycles and a throughput of 1: three independent
// lanes over consecutive blocks of kLane bytes run about three times as fast, and the lanes'
// registers combine exactly, the CRC being linear: crc(c, A || B) = Z(crc(c, A)) ^ crc(0, B),
// Z being the register after kLane zero bytes, itself linear in the register (four tables).
constexpr size_t kLane = 4096;
struct LaneShift {
  uint32_t t[4][256];
};
__attribute__((target("sse4.2"))) LaneShift MakeLaneShift() {
  static const uint8_t zeros[kLane] = {};
  uint32_t basis[32];
  for (int b = 0; b < 32; ++b) basis[b] = Crc32cSse42Lane(zeros, kLane, uint32_t{1} << b);
  LaneShift s{};
  for (int k = 0; k < 4; ++k)
    for (uint32_t v = 0; v < 256; ++v)
      for (int b = 0; b < 8; ++b)
        if (v >> b & 1) s.t[k][v] ^= basis[8 * k + b];
  return s;
}
inline uint32_t ZeroShift(const LaneShift& s, uint32_t c) {
  return s.t[0][c & 0xFF] ^ s.t[1][(c >> 8) & 0xFF] ^ s.t[2][(c >> 16) & 0xFF] ^ s.t[3][c >> 24];
}

__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(const uint8_t* p, size_t n, uint32_t c) {
  if (n >= 3 * kLane) {
    static const LaneShift shift = MakeLaneShift();
    while (n >= 3 * kLane) {
      uint64_t a = c, b = 0, d = 0;
      for (size_t i = 0; i < kLane; i += 8) {
        uint64_t x, y, z;
        std::memcpy(&x, p + i, 8);
        std::memcpy(&y, p + kLane + i, 8);
        std::memcpy(&z, p + 2 * kLane + i, 8);
        a = _mm_crc32_u64(a, x);
        b = _mm_crc32_u64(b, y);
        d = _mm_crc32_u64(d, z);
      }
      c = ZeroShift(shift, ZeroShift(shift, uint32_t(a)) ^ uint32_t(b)) ^ uint32_t(d);
      p += 3 * kLane;
      n -= 3 * kLane;
    }
  }
  return Crc32cSse42Lane(p, n, c);
}

bool HaveSse42() {
  static const bool have = __builtin_cpu_supports("sse4.2");
  return have;
}
#endif

}  // namespace

uint32_t Crc32c(const uint8_t* data, size_t size, uint32_t crc) {
  uint32_t c = ~crc;
#ifdef CKZ_HAVE_X86_CRC
  if (HaveSse42()) return ~Crc32cSse42(data, size, c);
#endif
  return ~CrcPortable(kCastagnoliTables, data, size, c);
}

uint32_t ZipCrc32(ByteSpan bytes, uint32_t crc) {
  return ~CrcPortable(kIsoHdlcTables, bytes.data, bytes.size, ~crc);
}

}  // namespace ckz
