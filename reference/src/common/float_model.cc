#include "common/float_model.h"

#include <algorithm>
#include <memory>

#include "common/bytes.h"
#include "common/range_coder.h"

namespace ckz {
namespace {

// Spec 7.8. Size classes 0..24 are "the difference has k bits"; class 25 is the escape.
constexpr uint32_t kMaxNearClass = 24;
constexpr uint32_t kEscape = 25;
constexpr uint32_t kClasses = 26;
constexpr uint32_t kClassBits = 5;  // classes are coded as 5-bit numbers, 26..31 invalid
constexpr uint32_t kExponentClasses = 9;
constexpr uint32_t kTopBits = 2;           // modelled bits below a difference's leading one
constexpr uint32_t kEscapeMantissaTop = 3;  // modelled high bits of an escape's mantissa

inline uint32_t BitLength(uint64_t v) {
  uint32_t n = 0;
  while (v != 0) ++n, v >>= 1;
  return n;
}

// The states of spec 7.8.3, by the spec's names: SIZE, SIGN, TOP, EFLIP, EMOVED, ENEG, ELEN,
// EMANT.
struct Models {
  BitModel size[kClasses * kExponentClasses][1u << kClassBits];
  BitModel sign[kMaxNearClass + 1];
  BitModel top[kMaxNearClass + 1][1u << kTopBits];
  BitModel esc_flip[kExponentClasses];
  BitModel esc_moved[kExponentClasses][2];
  BitModel esc_negative[kExponentClasses][2];
  BitModel esc_length[2][8][2];
  BitModel esc_mantissa[8][1u << kEscapeMantissaTop];
};

struct EncodeSide {
  static constexpr bool kDecodes = false;
  RangeEncoder rc;
  uint32_t Code(BitModel& m, uint32_t bit) {
    rc.Encode(m, int(bit));
    return bit;
  }
  uint32_t Direct(uint32_t value, unsigned count) {
    rc.EncodeDirect(value, count);
    return value;
  }
};

struct DecodeSide {
  static constexpr bool kDecodes = true;
  RangeDecoder rc;
  uint32_t Code(BitModel& m, uint32_t) { return uint32_t(rc.Decode(m)); }
  uint32_t Direct(uint32_t, unsigned count) { return rc.DecodeDirect(count); }
};

// Codes `n` bits of `value` (most significant first) through the binary tree `tree` (node 1
// is the root); returns them.
template <class Side>
uint32_t CodeTree(Side& side, BitModel* tree, uint32_t value, unsigned n) {
  uint32_t node = 1;
  for (unsigned b = n; b-- > 0;) node = (node << 1) | side.Code(tree[node], (value >> b) & 1);
  return node - (1u << n);
}

// The one model both sides run. The encoder reads `values`; the decoder writes `out`. Returns
// the element whose symbol is invalid, or count when none was.
template <class Side>
size_t Run(Side& side, const uint8_t* values, const uint8_t* prediction, uint8_t* out,
           size_t count) {
  auto models = std::make_unique<Models>();
  Models& m = *models;
  uint32_t previous = 0;  // the previous element's size class
  for (size_t i = 0; i < count; ++i) {
    const uint32_t p = prediction ? LoadLE32(prediction + 4 * i) : 0;
    const uint32_t x = Side::kDecodes ? 0 : LoadLE32(values + 4 * i);
    const uint32_t ec = FloatExponentClass(p);
    // The encoder's choice of class: near when the keys differ by less than 2^24.
    uint32_t cls = 0;
    int64_t diff = 0;
    if (!Side::kDecodes) {
      diff = int64_t(OrderedKey(x)) - int64_t(OrderedKey(p));
      cls = BitLength(uint64_t(diff < 0 ? -diff : diff));
      if (cls > kMaxNearClass) cls = kEscape;
    }
    cls = CodeTree(side, m.size[previous * kExponentClasses + ec], cls, kClassBits);
    if (cls >= kClasses) return i;
    uint32_t result = p;
    if (cls != 0 && cls <= kMaxNearClass) {
      const uint32_t magnitude = uint32_t(diff < 0 ? -diff : diff);
      const uint32_t negative = side.Code(m.sign[cls], diff < 0);
      const uint32_t below = cls - 1;  // bits under the leading one
      const uint32_t top = std::min(below, kTopBits);
      uint32_t a = 1;
      a = (a << top) | CodeTree(side, m.top[cls], magnitude >> (below - top), top);
      const uint32_t rest = below - top;
      a = (a << rest) | side.Direct(magnitude & ((1u << rest) - 1), rest);
      const uint32_t key = OrderedKey(p);
      result = FromOrderedKey(negative ? key - a : key + a);  // mod 2^32
    } else if (cls == kEscape) {
      const uint32_t ep = (p >> 23) & 0xFF;
      const uint32_t flip = side.Code(m.esc_flip[ec], (x ^ p) >> 31);
      const int32_t step = int32_t((x >> 23) & 0xFF) - int32_t(ep);
      const uint32_t moved = side.Code(m.esc_moved[ec][flip], step != 0);
      int32_t de = 0;
      uint32_t negative = 0;
      if (moved) {
        negative = side.Code(m.esc_negative[ec][flip], step < 0);
        const uint32_t size = uint32_t(step < 0 ? -step : step);
        const uint32_t length = Side::kDecodes ? 0 : BitLength(size);  // 1..8; encoder only
        uint32_t bl = 1;
        while (bl < 8 && side.Code(m.esc_length[negative][bl][flip], bl < length)) ++bl;
        const uint32_t low = side.Direct(size & ((1u << (bl - 1)) - 1), bl - 1);
        const int32_t a = int32_t((1u << (bl - 1)) | low);
        de = negative ? -a : a;
      }
      const int32_t ex = int32_t(ep) + de;
      if (ex < 0 || ex > 255) return i;
      const uint32_t dc = std::min<uint32_t>(uint32_t(de < 0 ? -de : de), 3) + 4 * negative;
      const uint32_t mantissa_top =
          CodeTree(side, m.esc_mantissa[dc], (x >> (23 - kEscapeMantissaTop)) & 7,
                   kEscapeMantissaTop);
      const uint32_t mantissa_low =
          side.Direct(x & ((1u << (23 - kEscapeMantissaTop)) - 1), 23 - kEscapeMantissaTop);
      result = (((p >> 31) ^ flip) << 31) | (uint32_t(ex) << 23) |
               (mantissa_top << (23 - kEscapeMantissaTop)) | mantissa_low;
    }
    if constexpr (Side::kDecodes) StoreLE32(out + 4 * i, result);
    previous = cls;
  }
  return count;
}

}  // namespace

void EncodeFloatStream(const uint8_t* values, const uint8_t* prediction, size_t count,
                       std::vector<uint8_t>* out) {
  EncodeSide side{RangeEncoder(out)};
  Run(side, values, prediction, nullptr, count);
  side.rc.Finish();
}

FloatDecodeResult DecodeFloatStream(const uint8_t* src, size_t size, const uint8_t* prediction,
                                    uint8_t* out, size_t count, size_t* bad_element) {
  DecodeSide side{RangeDecoder(src, size)};
  const size_t stop = Run(side, nullptr, prediction, out, count);
  if (stop != count) {
    *bad_element = stop;
    return FloatDecodeResult::kBadSymbol;
  }
  return side.rc.Finish() ? FloatDecodeResult::kOk : FloatDecodeResult::kBadStream;
}

}  // namespace ckz
