// The checks fuzz_cm and fuzz_lstm_cm make on one index stream (spec 7.7; 7.11.7 with a model
// in `in.lstm`), from fuzz_cm's 14-byte header onwards (fuzz_cm.cc documents it): decoding is
// a pure function, results and bad-element positions are consistent, decoded indices are at
// most K and round-trip, and indices taken from the context bytes round-trip.
#ifndef CKZ_FUZZ_INDEX_STREAM_CHECKS_H_
#define CKZ_FUZZ_INDEX_STREAM_CHECKS_H_

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/index_model.h"
#include "fuzz_check.h"

namespace ckz_fuzz {

// Caps keep each input fast: value trees have at most 64 x 256 states, chunks 4096 elements
// (with a model, the caller caps lower: an LSTM step per index).
constexpr size_t kIndexHeader = 14;

inline void IndexRoundTrip(const ckz::IndexModelInputs& in, const std::vector<uint8_t>& indices) {
  std::vector<uint8_t> coded;
  ckz::EncodeIndexStream(in, indices.data(), indices.size(), &coded);
  FUZZ_CHECK(coded.empty() || coded.back() != 0);
  // An exact-size copy, so ASan catches a read past the stream's end.
  std::vector<uint8_t> stream(coded.begin(), coded.end());
  std::vector<uint8_t> back(indices.size(), 0xEE);
  size_t bad = 0;
  FUZZ_CHECK(ckz::DecodeIndexStream(in, stream.data(), stream.size(), back.data(), back.size(),
                                    &bad) == ckz::IndexDecodeResult::kOk);
  FUZZ_CHECK(back == indices);
}

// `data` starts at fuzz_cm's header; `in` carries the model and role (or none).
inline void CheckIndexStream(ckz::IndexModelInputs in, const uint8_t* data, size_t size,
                             size_t max_count) {
  using ckz::IndexDecodeResult;
  if (size < kIndexHeader) return;
  in.centres = 1 + data[0] % 255;
  const bool has_parent = data[1] & 1, has_aux = data[1] & 2;
  const uint32_t kp = 1 + data[2] % 255, ka = 1 + data[3] % 255;
  const size_t count = Le16(data + 4) % (max_count + 1);
  in.row = Le16(data + 6);
  in.first = uint64_t(Le16(data + 8)) | uint64_t(Le16(data + 10)) << 16;
  const size_t rest = size - kIndexHeader;
  const size_t length = Le16(data + 12) < rest ? Le16(data + 12) : rest;
  // The stream in its own allocation of exactly `length` bytes (ASan: no read past it).
  std::vector<uint8_t> stream(data + kIndexHeader, data + kIndexHeader + length);
  const uint8_t* ctx = data + kIndexHeader + length;
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
    IndexRoundTrip(in, out);
  }

  // The encoder on indices of the same shape, taken from the context bytes.
  std::vector<uint8_t> indices(count);
  for (size_t i = 0; i < count; ++i) indices[i] = uint8_t(ctx_at(3 * i + 7) % (in.centres + 1));
  IndexRoundTrip(in, indices);
}

}  // namespace ckz_fuzz

#endif  // CKZ_FUZZ_INDEX_STREAM_CHECKS_H_
