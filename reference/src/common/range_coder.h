// The normative binary arithmetic coder of the "cm" and "cmf" stream codecs (spec 7.7, 7.8): a 32-bit range
// coder with carry propagation (the LZMA construction) and adaptive 16-bit probabilities.
// Integer-only; encoder and decoder perform the same range arithmetic, so any conforming
// decoder reproduces the encoder's decisions bit for bit.
#ifndef CKZ_COMMON_RANGE_CODER_H_
#define CKZ_COMMON_RANGE_CODER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ckz {

// Probability that the next bit is 0, in units of 2^-16, kept in [1, 65535] by the update.
// The step size is 1/(n+2) after n updates (the running frequency: fast to learn on small
// chunks), then stays at 1/(kLimit+2) so it keeps following drifting statistics.
struct BitModel {
  uint16_t p = 1u << 15;
  uint8_t n = 0;

  uint32_t P0() const { return p; }
  void Update(int bit) {
    const uint32_t r = kStep[n];
    if (bit)
      p = uint16_t(p - ((uint32_t(p) * r) >> 16));
    else
      p = uint16_t(p + (((65536u - p) * r) >> 16));
    if (n < kLimit) ++n;
  }
  static constexpr unsigned kLimit = 30;  // spec 7.7.2; measured in docs/cm-coder.md
  // kStep[n] = floor(65536 / (n + 2)).
  static const uint32_t kStep[128];  // entries past kLimit are unused
};

inline const uint32_t BitModel::kStep[128] = {
#define CKZ_S(i) 65536u / ((i) + 2)
#define CKZ_S8(i) CKZ_S(i), CKZ_S(i + 1), CKZ_S(i + 2), CKZ_S(i + 3), CKZ_S(i + 4), CKZ_S(i + 5), CKZ_S(i + 6), CKZ_S(i + 7)
    CKZ_S8(0), CKZ_S8(8), CKZ_S8(16), CKZ_S8(24), CKZ_S8(32), CKZ_S8(40), CKZ_S8(48), CKZ_S8(56),
    CKZ_S8(64), CKZ_S8(72), CKZ_S8(80), CKZ_S8(88), CKZ_S8(96), CKZ_S8(104), CKZ_S8(112), CKZ_S8(120)};
#undef CKZ_S8
#undef CKZ_S

constexpr uint32_t kRangeTop = 1u << 24;  // renormalise when range drops below this

class RangeEncoder {
 public:
  explicit RangeEncoder(std::vector<uint8_t>* out) : out_(out) {}

  void Encode(BitModel& m, int bit) {
    const uint32_t bound = (range_ >> 16) * m.P0();
    if (bit == 0) {
      range_ = bound;
    } else {
      low_ += bound;
      range_ -= bound;
    }
    m.Update(bit);
    Normalize();
  }

  // A bit at a given probability of 0 (1/65536 units, 1..65535) and no state to update.
  void EncodeP0(uint32_t p0, int bit) {
    const uint32_t bound = (range_ >> 16) * p0;
    if (bit == 0) {
      range_ = bound;
    } else {
      low_ += bound;
      range_ -= bound;
    }
    Normalize();
  }

  // The low `count` bits of `value`, most significant first, each at probability 1/2 (no
  // model): bits that are close to random cost one bit each and no state.
  void EncodeDirect(uint32_t value, unsigned count) {
    while (count-- > 0) {
      range_ >>= 1;
      low_ += range_ & (0u - ((value >> count) & 1));  // branch-free: the bits are near random
      Normalize();  // range_ >= 2^23 here: at most one shift
    }
  }

  // Terminates the stream: picks the value in [low, low + range) with the most trailing zero
  // bits (range >= 2^24, so a multiple of 2^24 is in it), writes it out, then drops trailing
  // zero bytes, which the decoder reads back as zeros anyway.
  void Finish() {
    low_ = (low_ + 0xFFFFFFu) & ~uint64_t{0xFFFFFF};
    for (int i = 0; i < 5; ++i) ShiftLow();
    while (out_->size() > start_ && out_->back() == 0) out_->pop_back();
  }

 private:
  void Normalize() {
    while (range_ < kRangeTop) {
      range_ <<= 8;
      ShiftLow();
    }
  }
  void ShiftLow() {
    if (uint32_t(low_) < 0xFF000000u || (low_ >> 32) != 0) {
      const uint8_t carry = uint8_t(low_ >> 32);
      // The first cached byte is always 0 (the interval never reaches 1.0, so no carry can
      // enter it): it is not part of the stream.
      if (started_) out_->push_back(uint8_t(cache_ + carry));
      started_ = true;
      for (; pending_ != 0; --pending_) out_->push_back(uint8_t(0xFF + carry));
      cache_ = uint8_t(low_ >> 24);
    } else {
      ++pending_;
    }
    low_ = (low_ & 0x00FFFFFFu) << 8;
  }

  std::vector<uint8_t>* out_;
  size_t start_ = out_->size();
  uint64_t low_ = 0;
  uint32_t range_ = 0xFFFFFFFFu;
  uint8_t cache_ = 0;
  bool started_ = false;
  uint64_t pending_ = 0;
};

// Reads past the end of its input as zero bytes and counts them: a truncated or corrupted
// stream decodes to some bit string in bounded time and is caught by Finish() or the caller's
// checks, never by reading outside the buffer.
class RangeDecoder {
 public:
  RangeDecoder(const uint8_t* data, size_t size) : data_(data), size_(size) {
    for (int i = 0; i < 4; ++i) code_ = (code_ << 8) | NextByte();
  }

  int Decode(BitModel& m) {
    const uint32_t bound = (range_ >> 16) * m.P0();
    int bit;
    if (code_ < bound) {
      range_ = bound;
      bit = 0;
    } else {
      code_ -= bound;
      range_ -= bound;
      bit = 1;
    }
    m.Update(bit);
    Normalize();
    return bit;
  }

  // Mirrors RangeEncoder::EncodeP0.
  int DecodeP0(uint32_t p0) {
    const uint32_t bound = (range_ >> 16) * p0;
    int bit = 0;
    if (code_ < bound) {
      range_ = bound;
    } else {
      code_ -= bound;
      range_ -= bound;
      bit = 1;
    }
    Normalize();
    return bit;
  }

  // Mirrors RangeEncoder::EncodeDirect.
  uint32_t DecodeDirect(unsigned count) {
    uint32_t value = 0;
    while (count-- > 0) {
      range_ >>= 1;
      // Branch-free: these bits are close to random, so a branch would mispredict half the time.
      const uint32_t bit = code_ >= range_;
      code_ -= range_ & (0u - bit);
      value = (value << 1) | bit;
      Normalize();
    }
    return value;
  }

  // After the last symbol: a valid stream has code < range and no bytes beyond those the
  // decoder consumed.
  bool Finish() const { return code_ < range_ && size_ <= consumed_; }
  uint64_t consumed() const { return consumed_; }

 private:
  void Normalize() {
    while (range_ < kRangeTop) {
      range_ <<= 8;
      code_ = (code_ << 8) | NextByte();
    }
  }
  uint32_t NextByte() { return consumed_ < size_ ? data_[consumed_++] : (++consumed_, 0u); }

  const uint8_t* data_;
  size_t size_;
  uint64_t consumed_ = 0;
  uint32_t code_ = 0;
  uint32_t range_ = 0xFFFFFFFFu;
};

}  // namespace ckz

#endif  // CKZ_COMMON_RANGE_CODER_H_
