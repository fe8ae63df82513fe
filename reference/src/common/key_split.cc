#include "common/key_split.h"

#include <algorithm>

#include "common/bytes.h"
#include "common/float_model.h"
#include "common/quantize.h"

namespace ckz {
namespace {

// A difference of `size` bits (size >= 1) keeps min(size - 1, 2) bits under its leading one in
// the symbol; the rest go to the bit stream.
inline uint32_t TopBits(uint32_t size) { return std::min<uint32_t>(size - 1, 2); }

struct ClassTables {
  uint8_t f16[65536], bf16[65536];
  ClassTables() {
    for (uint32_t v = 0; v < 65536; ++v) {
      f16[v] = uint8_t(FloatExponentClass(F16BitsToF32(uint16_t(v))));
      bf16[v] = uint8_t(FloatExponentClass(v << 16));  // BF16 widens by appending 16 zero bits
    }
  }
};

// What a symbol says, looked up once per symbol value: the magnitude's leading bits already
// shifted into place (`base`), how many low bits follow in the bit stream (`rest`), its sign,
// and whether the symbol is valid (spec 7.10 step 3). Symbol 0 is "no change": base 0, rest 0.
struct SymbolTable {
  uint16_t base[256];
  uint8_t rest[256], negative[256], valid[256];
  SymbolTable() {
    for (uint32_t s = 0; s < 256; ++s) {
      const uint32_t size = s >> 3;
      base[s] = 0, rest[s] = 0, negative[s] = 0, valid[s] = s == 0;
      if (size == 0 || size > kKeySplitMaxSize) continue;
      const uint32_t t = TopBits(size);
      if ((s & ((1u << (2 - t)) - 1)) != 0) continue;
      rest[s] = uint8_t(size - 1 - t);
      base[s] = uint16_t(((1u << t) | ((s & 3) >> (2 - t))) << rest[s]);
      negative[s] = uint8_t((s >> 2) & 1);
      valid[s] = 1;
    }
  }
};

const SymbolTable& Symbols() {
  static const SymbolTable table;
  return table;
}

}  // namespace

const uint8_t* KeySplitClassTable(DType dtype) {
  static const ClassTables tables;
  return dtype == DType::kBF16 ? tables.bf16 : tables.f16;
}

void KeySplitForward(DType dtype, const uint8_t* values, const uint8_t* reference, size_t count,
                     std::vector<uint8_t> symbols[kKeySplitClasses], std::vector<uint8_t>* bits) {
  const uint8_t* cls = KeySplitClassTable(dtype);
  // Each stream's length is known from the reference: write symbols by position, and the
  // packed bits (at most 13 per element) 32 at a time into a buffer large enough for all.
  uint64_t counts[kKeySplitClasses];
  KeySplitCounts(dtype, reference, count, counts);
  uint8_t* next[kKeySplitClasses];
  for (size_t c = 0; c < kKeySplitClasses; ++c) {
    symbols[c].resize(counts[c]);
    next[c] = symbols[c].data();
  }
  bits->resize(2 * count + 8);
  uint8_t* out = bits->data();
  uint64_t acc = 0, written = 0;
  uint32_t have = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint32_t r = LoadLE16(reference + 2 * i), x = LoadLE16(values + 2 * i);
    // The difference as the representative of its class mod 2^16 in [-2^15, 2^15).
    const int32_t d = int32_t(int16_t(uint16_t(Key16(x) - Key16(r))));
    const uint32_t a = uint32_t(d < 0 ? -d : d);
    uint8_t symbol = 0;
    if (a != 0) {
      const uint32_t size = 32 - uint32_t(__builtin_clz(a));  // encoder only: gcc and clang
      const uint32_t t = TopBits(size), rest = size - 1 - t;
      const uint32_t top = (a >> rest) & ((1u << t) - 1);  // without the leading one
      symbol = uint8_t((size << 3) | (uint32_t(d < 0) << 2) | (top << (2 - t)));
      acc |= uint64_t(a & ((1u << rest) - 1)) << have;
      have += rest;
      if (have >= 32) {
        StoreLE32(out + written, uint32_t(acc));
        written += 4;
        acc >>= 32;
        have -= 32;
      }
    }
    *next[cls[r]]++ = symbol;
  }
  for (; have > 0; have = have > 8 ? have - 8 : 0, acc >>= 8) out[written++] = uint8_t(acc);
  bits->resize(written);
}

void KeySplitCounts(DType dtype, const uint8_t* reference, size_t count,
                    uint64_t counts[kKeySplitClasses]) {
  const uint8_t* cls = KeySplitClassTable(dtype);
  // Four interleaved counters: neighbours mostly share a class, and one counter would make
  // every increment wait for the last.
  uint64_t n[4][kKeySplitClasses] = {};
  size_t i = 0;
  for (; i + 4 <= count; i += 4) {
    ++n[0][cls[LoadLE16(reference + 2 * i)]];
    ++n[1][cls[LoadLE16(reference + 2 * i + 2)]];
    ++n[2][cls[LoadLE16(reference + 2 * i + 4)]];
    ++n[3][cls[LoadLE16(reference + 2 * i + 6)]];
  }
  for (; i < count; ++i) ++n[0][cls[LoadLE16(reference + 2 * i)]];
  for (size_t c = 0; c < kKeySplitClasses; ++c) counts[c] = n[0][c] + n[1][c] + n[2][c] + n[3][c];
}

bool KeySplitRestBits(DType dtype, const uint8_t* reference,
                      const uint64_t counts[kKeySplitClasses],
                      const uint8_t* const symbols[kKeySplitClasses], size_t count,
                      uint64_t* rest_bits, size_t* bad) {
  // The streams hold every element's symbol once, so a histogram of their bytes gives the
  // bit count; the element order matters only to name the first invalid symbol.
  const SymbolTable& table = Symbols();
  uint64_t histogram[4][256] = {};
  for (size_t c = 0; c < kKeySplitClasses; ++c) {
    const uint8_t* p = symbols[c];
    size_t i = 0;
    for (; i + 4 <= counts[c]; i += 4) {
      ++histogram[0][p[i]];
      ++histogram[1][p[i + 1]];
      ++histogram[2][p[i + 2]];
      ++histogram[3][p[i + 3]];
    }
    for (; i < counts[c]; ++i) ++histogram[0][p[i]];
  }
  uint64_t total = 0;
  bool valid = true;
  for (uint32_t s = 0; s < 256; ++s) {
    const uint64_t n = histogram[0][s] + histogram[1][s] + histogram[2][s] + histogram[3][s];
    total += n * table.rest[s];
    if (n && !table.valid[s]) valid = false;
  }
  if (!valid) {
    const uint8_t* cls = KeySplitClassTable(dtype);
    const uint8_t* next[kKeySplitClasses];
    std::copy(symbols, symbols + kKeySplitClasses, next);
    for (size_t i = 0; i < count; ++i)
      if (!table.valid[*next[cls[LoadLE16(reference + 2 * i)]]++]) {
        *bad = i;
        return false;
      }
  }
  *rest_bits = total;
  return true;
}

bool KeySplitInverse(DType dtype, const uint8_t* reference,
                     const uint8_t* const symbols[kKeySplitClasses], const uint8_t* bits,
                     size_t bits_size, size_t count, uint8_t* out) {
  const SymbolTable& table = Symbols();
  const uint8_t* cls = KeySplitClassTable(dtype);
  const uint8_t* next[kKeySplitClasses];
  std::copy(symbols, symbols + kKeySplitClasses, next);
  // The bit stream through an unaligned 64-bit load at the next unread bit: it reads at most
  // 7 bytes past the byte holding that bit, so 8 readable bytes after the stream suffice (a
  // refilled window that runs ahead would need 15). A rest is at most 13 bits.
  uint64_t consumed = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint64_t window = LoadLE64(bits + (consumed >> 3)) >> (consumed & 7);
    const uint32_t r = LoadLE16(reference + 2 * i);
    const uint32_t s = *next[cls[r]]++;
    const uint32_t rest = table.rest[s];
    const uint32_t a = table.base[s] | uint32_t(window & ((1u << rest) - 1));
    consumed += rest;
    const uint32_t flip = 0u - table.negative[s];  // all ones: subtract
    const uint32_t key = (Key16(r) + ((a ^ flip) - flip)) & 0xFFFFu;
    StoreLE16(out + 2 * i, uint16_t(Unkey16(key)));
  }
  // The last byte's bits after the last one read (spec 7.10 step 4).
  const uint32_t used = uint32_t(consumed % 8);
  return bits_size == 0 || used == 0 || (bits[bits_size - 1] >> used) == 0;
}

}  // namespace ckz
