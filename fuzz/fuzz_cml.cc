// Untrusted surface: the cml level codec (spec 7.9.3): the range decoder and the level context
// model over arbitrary stream bytes, with arbitrary parent/aux level arrays, row width and
// first element. The input (little-endian) is
//
//   0      flags: bit 0 parent levels, bit 1 aux levels
//   1..2   count (mod kMaxCount + 1)    the chunk's elements
//   3..4   row                          0: a 1-D tensor, else the last dimension
//   5..8   first                        the chunk's first element in the tensor
//   9..10  L                            stream bytes (capped at what is left)
//   11..   the stream (L bytes), then "context bytes": parent[i], aux[i] and the levels of the
//          encoder round trip are made from them (cycled; see ContextLevel), each within
//          |level| <= 2^24 - 1, as a decoder has them after decoding the other tensors
//
// fuzz/make_cml_corpus.cc writes seeds in this format from real cml streams. Besides "no
// crash, no hang, no leak, no UB" (the decoder must never read outside the stream: ASan sees
// it), what is checked (__builtin_trap via FUZZ_CHECK):
//  - a result is one of the three, and kTooLarge names an element of the chunk;
//  - decoding is a pure function of its inputs: a second decode into another buffer agrees
//    (result, bad element, the levels decoded before it);
//  - every level decoded (before a kTooLarge too) is within 2^24 - 1;
//  - the decoder reads bytes past the stream's end as zeros: the stream with a 0x00 appended
//    decodes to the same levels and result (except that kOk may become kBadStream);
//  - levels a successful decode gives, re-encoded with the same inputs, decode to them again,
//    from a stream that never ends in 0x00;
//  - levels derived from the context bytes (zeros, small, medium, escapes up to 2^24 - 1)
//    survive an encode/decode round trip exactly.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/level_model.h"
#include "fuzz_check.h"
#include "level_stream_checks.h"

namespace {

using ckz::LevelModelInputs;
using ckz_fuzz::Le16;

// Caps keep each input fast: a level costs at most 62 decisions, a chunk 4096 levels.
constexpr size_t kMaxCount = 4096;
constexpr size_t kHeader = 11;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kHeader) return 0;
  LevelModelInputs in;
  const bool has_parent = data[0] & 1, has_aux = data[0] & 2;
  const size_t count = Le16(data + 1) % (kMaxCount + 1);
  in.row = Le16(data + 3);
  in.first = uint64_t(Le16(data + 5)) | uint64_t(Le16(data + 7)) << 16;
  const size_t rest = size - kHeader;
  const size_t length = Le16(data + 9) < rest ? Le16(data + 9) : rest;
  ckz_fuzz::CheckLevelStream(in, has_parent, has_aux, count, data + kHeader, rest, length);
  return 0;
}
