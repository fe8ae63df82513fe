// Untrusted surface: the cml+lstm level codec (spec 7.11): the range
// decoder, the cml level context model and the integer LSTM + logistic mixer over arbitrary
// stream bytes, with arbitrary well-formed models (every int16 weight is allowed), roles,
// parent/aux level arrays, row width and first element. The input (little-endian) is
//
//   0      flags: bit 0 parent levels, bit 1 aux levels, bits 2-3 hidden = {8,16,24,32}[b],
//          bits 4-5 role (0 weight, 1 first moment, 2 second moment, 3 other)
//   1      clip = 1 + b % 7
//   2      recur_shift = b & 15 (0..15), out_shift = 2 + (b >> 4) % 14 (2..15)
//   3      bits 0-1 weight ranges: 0 the whole int16 range (-32768 / 32767 one time in eight:
//          saturated gates, cells and logits), 1 small (+-2^(b-1), b = 1..12 per vector),
//          2 per vector one or the other (b = 1..15), 3 a trained model's ranges;
//          bits 2-3 mix_init: 0 uniform over -2^20..2^20, 1 edge values only (+-2^20, 0, +-1,
//          +-65536), 2 near an untrained mixer's start, 3 uniform with edges mixed in
//   4..5   count (mod kMaxCount + 1)    the chunk's elements
//   6..7   row                          0: a 1-D tensor, else the last dimension
//   8..11  first                        the chunk's first element in the tensor
//   12..19 seed                         every parameter of the model (fuzz_lstm_model.h:
//                                       splitmix64 from the seed, in the ranges of byte 3)
//   20..21 L                            stream bytes (capped at what is left)
//   22..   the stream (L bytes), then "context bytes": parent[i], aux[i] and the levels of the
//          encoder round trip are made from them (cycled; see ContextLevel), each within
//          |level| <= 2^24 - 1, as a decoder has them after decoding the other tensors
//
// fuzz/make_lstm_corpus.cc writes seeds in this format from real cml+lstm streams. Besides "no
// crash, no hang, no leak, no UB" (the decoder must never read outside the stream or the
// model's vectors, which are allocated at exactly their sizes: ASan sees it), what is checked
// (__builtin_trap via FUZZ_CHECK):
//  - the model built from the header is WellFormed() (the only models a decoder runs);
//  - a result is one of the three, and kTooLarge names an element of the chunk;
//  - decoding is a pure function of its inputs (the LSTM and mixer start fresh every chunk): a
//    second decode into another buffer agrees (result, bad element, the levels decoded before);
//  - every level decoded (before a kTooLarge too) is within 2^24 - 1;
//  - the decoder reads bytes past the stream's end as zeros: the stream with a 0x00 appended
//    decodes to the same levels and result (except that kOk may become kBadStream);
//  - levels a successful decode gives, re-encoded with the same inputs and model, decode to
//    them again, from a stream that never ends in 0x00;
//  - levels derived from the context bytes (zeros, small, medium, escapes up to 2^24 - 1)
//    survive an encode/decode round trip exactly.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/level_model.h"
#include "common/lstm_model.h"
#include "fuzz_check.h"
#include "level_stream_checks.h"
#include "fuzz_lstm_model.h"

namespace {

using ckz::LevelModelInputs;
using ckz_fuzz::Le16;

// Caps keep each input fast: a level costs at most 62 decisions, a chunk 1024 levels. Each
// level is also one LSTM step of up to 4 * 32 * 32 multiply-adds, whose loops the coverage
// instrumentation slows ~100x: 4096 levels (fuzz_cml's cap) took ~0.55 s an input under
// ASan + UBSan (7 coding passes), 16 exec/s. Chunk length adds nothing the LSTM could get
// wrong beyond a few hundred steps (its state saturates or settles far sooner).
constexpr size_t kMaxCount = 1024;
constexpr size_t kHeader = 22;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kHeader) return 0;
  const ckz::LstmModel model = ckz_fuzz::MakeFuzzLstmModel(data);
  FUZZ_CHECK(model.WellFormed());
  LevelModelInputs in;
  in.lstm = &model;
  in.role = (data[0] >> 4) & 3;
  const bool has_parent = data[0] & 1, has_aux = data[0] & 2;
  const size_t count = Le16(data + 4) % (kMaxCount + 1);
  in.row = Le16(data + 6);
  in.first = uint64_t(Le16(data + 8)) | uint64_t(Le16(data + 10)) << 16;
  const size_t rest = size - kHeader;
  const size_t length = Le16(data + 20) < rest ? Le16(data + 20) : rest;
  ckz_fuzz::CheckLevelStream(in, has_parent, has_aux, count, data + kHeader, rest, length);
  return 0;
}
