// Spec 7.7.1, 7.7.2 and 7.8.1 written from the text, for the generators that check the writer's
// cml and lstm streams apart from the library: the range decoder, its adaptive states and the
// direct bit.
#ifndef CKZ_CONFORMANCE_GENERATOR_SPEC_RANGE_DECODER_H_
#define CKZ_CONFORMANCE_GENERATOR_SPEC_RANGE_DECODER_H_

#include <cstddef>
#include <cstdint>

namespace ckz::vectors {

struct State {
  uint32_t p = 32768, n = 0;
};

inline void Adapt(State& s, int bit) {
  const uint32_t r = 65536 / (s.n + 2);
  if (bit == 0) s.p += ((65536 - s.p) * r) >> 16;
  else s.p -= (s.p * r) >> 16;
  if (s.n < 30) ++s.n;
}

class SpecRangeDecoder {
 public:
  SpecRangeDecoder(const uint8_t* b, size_t length) : b_(b), length_(length) {
    for (int k = 0; k < 4; ++k) code_ = code_ << 8 | NextByte();
  }
  // decode_bit at probability `p0` of a 0, updating no state.
  int BitAt(uint32_t p0) {
    const uint32_t bound = (range_ >> 16) * p0;
    int bit = 0;
    if (code_ < bound) {
      range_ = bound;
    } else {
      code_ -= bound;
      range_ -= bound;
      bit = 1;
    }
    while (range_ < (1u << 24)) {
      range_ <<= 8;
      code_ = code_ << 8 | NextByte();
    }
    return bit;
  }
  int Bit(State& s) {
    const int bit = BitAt(s.p);
    Adapt(s, bit);
    return bit;
  }
  int Direct() {
    range_ >>= 1;
    int bit = 0;
    if (code_ >= range_) {
      code_ -= range_;
      bit = 1;
    }
    if (range_ < (1u << 24)) {
      range_ <<= 8;
      code_ = code_ << 8 | NextByte();
    }
    return bit;
  }
  // `code_check` false: a misreading that drops 7.7.1's `code < range`.
  bool Finish(bool code_check = true) const {
    return (code_ < range_ || !code_check) && length_ <= consumed_;
  }
  uint32_t code() const { return code_; }
  uint32_t range() const { return range_; }
  uint64_t consumed() const { return consumed_; }

 private:
  uint32_t NextByte() { return consumed_ < length_ ? b_[consumed_++] : (++consumed_, 0u); }
  const uint8_t* b_;
  uint64_t length_, consumed_ = 0;
  uint32_t code_ = 0, range_ = 0xFFFFFFFFu;
};

}  // namespace ckz::vectors

#endif  // CKZ_CONFORMANCE_GENERATOR_SPEC_RANGE_DECODER_H_
