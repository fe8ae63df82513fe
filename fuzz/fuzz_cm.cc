// Untrusted surface: the cm index codec (spec 7.7): the range decoder and the index context
// model over arbitrary stream bytes, with arbitrary parent/aux index arrays, codebook sizes,
// row width and first element. The input (little-endian) is
//
//   0      K - 1 (mod 255)              the chunk's centres K, 1..255
//   1      flags: bit 0 parent indices, bit 1 aux indices
//   2, 3   K_P - 1, K_A - 1 (mod 255)
//   4..5   count (mod kMaxCount + 1)    the chunk's elements
//   6..7   row                          0: a 1-D tensor, else the last dimension
//   8..11  first                        the chunk's first element in the tensor
//   12..13 L                            stream bytes (capped at what is left)
//   14..   the stream (L bytes), then "context bytes": parent[i] and aux[i] are taken from them
//          (cycled; reduced to 0..K_P / 0..K_A, as a decoder has them after its own checks)
//
// fuzz/make_cm_corpus.cc writes seeds in this format from real cm streams. Besides "no crash,
// no hang, no leak, no UB" (the decoder must never read outside the stream: ASan sees it),
// what is checked (__builtin_trap via FUZZ_CHECK):
//  - a result is one of the three, and kIndexTooLarge names an element of the chunk;
//  - decoding is a pure function of its inputs (a second decode into another buffer agrees);
//  - every index a successful decode gives is at most K, and re-encoding those indices gives a
//    stream that decodes to them again (so a decoder never accepts what no encoder can write
//    back, and the encoder's output always satisfies the decoder);
//  - the stream trailing bytes rule: the re-encoded stream never ends in a 0x00 byte;
//  - indices derived from the context bytes survive an encode/decode round trip exactly.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/index_model.h"
#include "fuzz_check.h"

namespace {

using ckz::IndexDecodeResult;
using ckz::IndexModelInputs;

// Caps keep each input fast: value trees have at most 64 x 256 states, chunks 4096 elements.
constexpr size_t kMaxCount = 4096;
constexpr size_t kHeader = 14;

uint32_t Le16(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }

void RoundTrip(const IndexModelInputs& in, const std::vector<uint8_t>& indices) {
  std::vector<uint8_t> coded;
  ckz::EncodeIndexStream(in, indices.data(), indices.size(), &coded);
  FUZZ_CHECK(coded.empty() || coded.back() != 0);
  // An exact-size copy, so ASan catches a read past the stream's end.
  std::vector<uint8_t> stream(coded.begin(), coded.end());
  std::vector<uint8_t> back(indices.size(), 0xEE);
  size_t bad = 0;
  FUZZ_CHECK(ckz::DecodeIndexStream(in, stream.data(), stream.size(), back.data(), back.size(),
                                    &bad) == IndexDecodeResult::kOk);
  FUZZ_CHECK(back == indices);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kHeader) return 0;
  IndexModelInputs in;
  in.centres = 1 + data[0] % 255;
  const bool has_parent = data[1] & 1, has_aux = data[1] & 2;
  const uint32_t kp = 1 + data[2] % 255, ka = 1 + data[3] % 255;
  const size_t count = Le16(data + 4) % (kMaxCount + 1);
  in.row = Le16(data + 6);
  in.first = uint64_t(Le16(data + 8)) | uint64_t(Le16(data + 10)) << 16;
  const size_t rest = size - kHeader;
  const size_t length = Le16(data + 12) < rest ? Le16(data + 12) : rest;
  // The stream in its own allocation of exactly `length` bytes (ASan: no read past it).
  std::vector<uint8_t> stream(data + kHeader, data + kHeader + length);
  const uint8_t* ctx = data + kHeader + length;
  const size_t nctx = rest - length;
  auto ctx_at = [&](size_t i) -> uint32_t { return nctx ? ctx[i % nctx] : 0; };

  std::vector<uint8_t> parent, aux;
  if (has_parent) {
    parent.resize(count);
    for (size_t i = 0; i < count; ++i) parent[i] = uint8_t(ctx_at(i) % (kp + 1));
    in.parent = parent.data();
    in.parent_centres = kp;
  }
  if (has_aux) {
    aux.resize(count);
    for (size_t i = 0; i < count; ++i) aux[i] = uint8_t(ctx_at(i + count + 1) % (ka + 1));
    in.aux = aux.data();
    in.aux_centres = ka;
  }

  std::vector<uint8_t> out(count, 0xEE), again(count, 0xDD);
  size_t bad = SIZE_MAX, bad2 = SIZE_MAX;
  const IndexDecodeResult r =
      ckz::DecodeIndexStream(in, stream.data(), stream.size(), out.data(), count, &bad);
  const IndexDecodeResult r2 =
      ckz::DecodeIndexStream(in, stream.data(), stream.size(), again.data(), count, &bad2);
  FUZZ_CHECK(r == r2);
  FUZZ_CHECK(r == IndexDecodeResult::kOk || r == IndexDecodeResult::kIndexTooLarge ||
             r == IndexDecodeResult::kBadStream);
  if (r == IndexDecodeResult::kIndexTooLarge) {
    FUZZ_CHECK(bad < count && bad == bad2);
    // Elements before the bad one were decoded, identically.
    FUZZ_CHECK(std::memcmp(out.data(), again.data(), bad) == 0);
  } else {
    FUZZ_CHECK(out == again);
  }
  if (r == IndexDecodeResult::kOk) {
    for (uint8_t j : out) FUZZ_CHECK(j <= in.centres);
    RoundTrip(in, out);
  }

  // The encoder on indices of the same shape, taken from the context bytes.
  std::vector<uint8_t> indices(count);
  for (size_t i = 0; i < count; ++i) indices[i] = uint8_t(ctx_at(3 * i + 7) % (in.centres + 1));
  RoundTrip(in, indices);
  return 0;
}
