// Untrusted surface: the cmf float codec (spec 7.8): the range decoder and the float context
// model over arbitrary stream bytes, with an arbitrary prediction (or none) and element count.
// The input (little-endian) is
//
//   0      flags: bit 0 a prediction is present (the other bits are ignored)
//   1..2   count (mod kMaxCount + 1)    the chunk's binary32 elements
//   3..4   L                            stream bytes (capped at what is left)
//   5..    the stream (L bytes), then "prediction bytes": with bit 0 set, the prediction is
//          4 * count bytes taken from them (cycled; all zero when there are none), else the
//          prediction is null (every element predicted as +0.0)
//
// The prediction bytes also drive an encoder round trip: element i's value is its prediction
// perturbed in one of eight ways chosen by the byte at 4 * count + i (cycled): unchanged, a key
// difference of 0..26 bits (near classes, the escape boundary, wrapping past +-NaN), XOR-ed
// with the word at 4 * i + 1, a special value (+-0, +-inf, NaNs with payloads, subnormals, max
// finite), that word itself, a difference of 2^24 - 2 .. 2^24 + 1, a new mantissa, or an
// exponent step of -128..127.
//
// fuzz/make_cmf_corpus.cc writes seeds in this format from real cmf streams. Besides "no
// crash, no hang, no leak, no UB" (the decoder must never read outside the stream: ASan sees
// it), what is checked (__builtin_trap via FUZZ_CHECK):
//  - a result is one of the three, and kBadSymbol names an element of the chunk;
//  - decoding is a pure function of its inputs: a second decode into another buffer agrees
//    (result, bad element, the values decoded before it); without a prediction the second
//    decode gets an explicit all-zero prediction, which must mean the same as null;
//  - the decoder reads bytes past the stream's end as zeros: the stream with a 0x00 appended
//    decodes to the same values and result (except that kOk may become kBadStream);
//  - values a successful decode gives, re-encoded against the same prediction, decode to
//    exactly the same bytes (NaN payloads included), in a stream that never ends in 0x00;
//  - values derived from the prediction bytes survive an encode/decode round trip bit for bit;
//  - the encoder appends: bytes already in its output vector (ending in 0x00) stay.
// Streams are compared by what they decode to, never byte for byte: a value has more than one
// valid coding (an escape may code a value the encoder would code as near), and the final
// bytes have slack.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/bytes.h"
#include "common/float_model.h"
#include "fuzz_check.h"

namespace {

using ckz::FloatDecodeResult;

// Caps keep each input fast: at most 4096 elements, each decoded three times and re-encoded.
constexpr size_t kMaxCount = 4096;
constexpr size_t kHeader = 5;

using ckz::FromOrderedKey;
using ckz::LoadLE16;
using ckz::LoadLE32;
using ckz::OrderedKey;

uint32_t Special(uint32_t which, uint32_t w) {
  static constexpr uint32_t kTable[] = {
      0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001,
      0xFF800001, 0x7FFFFFFF, 0xFFFFFFFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x00000001, 0x80000001,
      0x007FFFFF, 0x807FFFFF, 0x00800000, 0x80800000, 0x3F800000, 0xBF800000, 0x34000000};
  constexpr uint32_t n = sizeof(kTable) / sizeof(kTable[0]);
  which %= n + 4;
  if (which < n) return kTable[which];
  const uint32_t sign = w & 0x80000000u, payload = w & 0x7FFFFFu;
  switch (which - n) {
    case 0: return sign | 0x7FC00000u | payload;              // quiet NaN, any payload
    case 1: return sign | 0x7F800000u | (payload ? payload : 1);  // signalling NaN
    case 2: return sign | payload;                            // subnormal (or zero)
    default: return sign | 0x7F000000u | payload;             // near max finite
  }
}

// The value of element i of the round trip: prediction p perturbed by mode byte `sel` and
// word `w`.
uint32_t Perturb(uint32_t p, uint8_t sel, uint32_t w) {
  const uint32_t param = sel >> 3, flip = (sel & 8u) << 28;  // flip: bit 31 from sel bit 3
  switch (sel & 7) {
    case 0: return p;
    case 1: {  // a key difference of exactly `bits` bits, either sign, wrapping mod 2^32
      const uint32_t bits = param % 27;
      const uint32_t d = bits ? (w >> (32 - bits)) | 1u << (bits - 1) : 0;
      return FromOrderedKey(w & 1 ? OrderedKey(p) - d : OrderedKey(p) + d);
    }
    case 2: return p ^ w;
    case 3: return Special(param, w);
    case 4: return w;
    case 5: {  // around the largest near difference (2^24 - 1) and the first escape
      const uint32_t d = (1u << 24) - 2 + (w & 3);
      return FromOrderedKey(sel & 8 ? OrderedKey(p) - d : OrderedKey(p) + d);
    }
    case 6: return ((p & 0xFF800000u) | (w & 0x7FFFFFu)) ^ flip;
    default: {  // an exponent step of -128..127, clamped to 0..255
      const int32_t e = int32_t((p >> 23) & 0xFF) + int32_t(int8_t(w >> 24));
      const uint32_t ex = uint32_t(e < 0 ? 0 : e > 255 ? 255 : e);
      return ((p & 0x80000000u) ^ flip) | ex << 23 | (w & 0x7FFFFFu);
    }
  }
}

// Encodes `values` (appended to a prefix ending in 0x00) and decodes them back: bit for bit.
void RoundTrip(const std::vector<uint8_t>& values, const uint8_t* prediction) {
  const size_t count = values.size() / 4;
  static constexpr uint8_t kPrefix[] = {0xA5, 0x00};
  std::vector<uint8_t> coded(kPrefix, kPrefix + sizeof(kPrefix));
  ckz::EncodeFloatStream(values.data(), prediction, count, &coded);
  FUZZ_CHECK(coded.size() >= sizeof(kPrefix) &&
             std::memcmp(coded.data(), kPrefix, sizeof(kPrefix)) == 0);
  // The stream in an allocation of exactly its size, so ASan catches a read past its end.
  std::vector<uint8_t> stream(coded.begin() + sizeof(kPrefix), coded.end());
  FUZZ_CHECK(stream.empty() || stream.back() != 0);
  std::vector<uint8_t> back(values.size(), 0xEE);
  size_t bad = SIZE_MAX;
  FUZZ_CHECK(ckz::DecodeFloatStream(stream.data(), stream.size(), prediction, back.data(), count,
                                    &bad) == FloatDecodeResult::kOk);
  FUZZ_CHECK(back == values);
}

bool Known(FloatDecodeResult r) {
  return r == FloatDecodeResult::kOk || r == FloatDecodeResult::kBadSymbol ||
         r == FloatDecodeResult::kBadStream;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kHeader) return 0;
  const bool has_prediction = data[0] & 1;
  const size_t count = LoadLE16(data + 1) % (kMaxCount + 1);
  const size_t rest = size - kHeader;
  const size_t length = LoadLE16(data + 3) < rest ? LoadLE16(data + 3) : rest;
  // The stream in its own allocation of exactly `length` bytes (ASan: no read past it).
  std::vector<uint8_t> stream(data + kHeader, data + kHeader + length);
  const uint8_t* ctx = data + kHeader + length;
  const size_t nctx = rest - length;
  auto ctx_at = [&](size_t i) -> uint8_t { return nctx ? ctx[i % nctx] : 0; };

  std::vector<uint8_t> pred_bytes(4 * count);
  for (size_t j = 0; j < pred_bytes.size(); ++j) pred_bytes[j] = ctx_at(j);
  // Without a prediction the decoder gets null first, then explicit zeros (the same thing).
  const std::vector<uint8_t> zeros(has_prediction ? 0 : 4 * count, 0);
  const uint8_t* prediction = has_prediction ? pred_bytes.data() : nullptr;
  const uint8_t* prediction2 = has_prediction ? pred_bytes.data() : zeros.data();

  std::vector<uint8_t> out(4 * count, 0xEE), again(4 * count, 0xDD);
  size_t bad = SIZE_MAX, bad2 = SIZE_MAX;
  const FloatDecodeResult r =
      ckz::DecodeFloatStream(stream.data(), stream.size(), prediction, out.data(), count, &bad);
  const FloatDecodeResult r2 = ckz::DecodeFloatStream(stream.data(), stream.size(), prediction2,
                                                      again.data(), count, &bad2);
  FUZZ_CHECK(Known(r));
  FUZZ_CHECK(r == r2);
  // Bytes of the values decoded before a failure (all of them unless a symbol was bad).
  size_t decoded = out.size();
  if (r == FloatDecodeResult::kBadSymbol) {
    FUZZ_CHECK(bad < count && bad == bad2);
    decoded = 4 * bad;
  }
  FUZZ_CHECK(std::equal(out.begin(), out.begin() + decoded, again.begin()));

  // The same stream followed by one 0x00: the decoder reads exactly what it read before, so
  // only the final "length <= consumed" test may change its verdict.
  {
    std::vector<uint8_t> padded(stream.size() + 1, 0);  // exact size, as `stream`
    std::copy(stream.begin(), stream.end(), padded.begin());
    std::vector<uint8_t> third(4 * count, 0xCC);
    size_t bad3 = SIZE_MAX;
    const FloatDecodeResult r3 = ckz::DecodeFloatStream(padded.data(), padded.size(), prediction,
                                                        third.data(), count, &bad3);
    if (r == FloatDecodeResult::kOk) {
      FUZZ_CHECK(r3 == FloatDecodeResult::kOk || r3 == FloatDecodeResult::kBadStream);
    } else {
      FUZZ_CHECK(r3 == r);
    }
    if (r == FloatDecodeResult::kBadSymbol) FUZZ_CHECK(bad3 == bad);
    FUZZ_CHECK(std::equal(out.begin(), out.begin() + decoded, third.begin()));
  }

  if (r == FloatDecodeResult::kOk) RoundTrip(out, prediction);

  // The encoder on values of the same shape, derived from the prediction bytes.
  std::vector<uint8_t> values(4 * count);
  for (size_t i = 0; i < count; ++i) {
    const uint32_t p = prediction ? LoadLE32(prediction + 4 * i) : 0;
    const uint32_t w = uint32_t(ctx_at(4 * i + 1)) | uint32_t(ctx_at(4 * i + 2)) << 8 |
                       uint32_t(ctx_at(4 * i + 3)) << 16 | uint32_t(ctx_at(4 * i + 4)) << 24;
    ckz::StoreLE32(values.data() + 4 * i, Perturb(p, ctx_at(4 * count + i), w));
  }
  RoundTrip(values, prediction);
  return 0;
}
