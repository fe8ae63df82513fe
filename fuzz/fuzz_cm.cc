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
#include <cstddef>
#include <cstdint>

#include "index_stream_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ckz_fuzz::CheckIndexStream(ckz::IndexModelInputs{}, data, size, /*max_count=*/4096);
  return 0;
}
