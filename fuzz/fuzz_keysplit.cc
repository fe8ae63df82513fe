// Untrusted surface: the KeySplit predictor's decoding (spec 7.10) over arbitrary symbol and
// bit streams and an arbitrary reference. The input (little-endian) is
//
//   0      flags: bit 0 BF16 (else F16) (the other bits are ignored)
//   1..2   count (mod kMaxCount + 1)    the chunk's 16-bit elements
//   3..    the reference (2 * count bytes, cycled from what is there; zeros when empty), then
//          the symbol bytes (count bytes, as many as are left, the rest 0), then the bit stream
//          (what is left after those)
//
// The symbol bytes are dealt to the nine class streams as the reference's classes say (the
// stream lengths come from the reference, as in a chunk). Besides "no crash, no hang, no UB"
// (the decoder reads at most 8 bytes past the bit stream, which this harness provides as in
// the chunk decoder), what is checked (__builtin_trap via FUZZ_CHECK):
//  - the counts add up to the element count, and kBad names an element whose symbol is
//    invalid, with every earlier element's symbol valid;
//  - a bit stream of any other length than (T + 7) / 8 is not what a decoder reads (it is the
//    chunk decoder's job to refuse it), so the harness hands over exactly T bits' bytes: a
//    decode succeeds unless a padding bit is set, and then fails exactly when one is;
//  - decoded values, re-encoded against the same reference, decode to the same bytes;
//  - decoding is a pure function: a second decode agrees.
// seeds: build/fuzz/make_keysplit_corpus fuzz/corpus/fuzz_keysplit (real streams).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/bytes.h"
#include "common/key_split.h"
#include "fuzz_check.h"

namespace {

constexpr size_t kMaxCount = 4096;

using ckz::kKeySplitClasses;

// Runs steps 2 and 3 of 7.10 on `symbols` (element order) and `bits`; returns false with
// `*bad` set, or true with `*out` decoded and `*padding_ok`.
bool Decode(ckz::DType dtype, const std::vector<uint8_t>& ref, const std::vector<uint8_t>& symbols,
            const std::vector<uint8_t>& bit_bytes, std::vector<uint8_t>* out, size_t* bad,
            bool* padding_ok, uint64_t* rest_out) {
  const size_t n = ref.size() / 2;
  uint64_t counts[kKeySplitClasses];
  ckz::KeySplitCounts(dtype, ref.data(), n, counts);
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  FUZZ_CHECK(total == n);
  const uint8_t* starts[kKeySplitClasses];
  uint64_t at = 0;
  for (size_t c = 0; c < kKeySplitClasses; ++c) {
    starts[c] = symbols.data() + at;
    at += counts[c];
  }
  uint64_t rest = 0;
  if (!ckz::KeySplitRestBits(dtype, ref.data(), counts, starts, n, &rest, bad)) return false;
  *rest_out = rest;
  std::vector<uint8_t> bits(size_t((rest + 7) / 8) + 8, 0);
  std::copy(bit_bytes.begin(), bit_bytes.begin() + std::min(bit_bytes.size(), bits.size() - 8),
            bits.begin());
  out->assign(2 * n, 0);
  *padding_ok = ckz::KeySplitInverse(dtype, ref.data(), starts, bits.data(), bits.size() - 8, n,
                                     out->data());
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const ckz::DType dtype = data[0] & 1 ? ckz::DType::kBF16 : ckz::DType::kF16;
  const size_t n = ckz::LoadLE16(data + 1) % (kMaxCount + 1);
  const uint8_t* p = data + 3;
  size_t left = size - 3;
  std::vector<uint8_t> ref(2 * n, 0);
  const size_t ref_have = std::min(left, 2 * n);
  for (size_t i = 0; i < ref.size() && ref_have; ++i) ref[i] = p[i % ref_have];
  p += ref_have, left -= ref_have;
  // Element-order symbols, dealt into class streams (the layout the decoder reads).
  std::vector<uint8_t> ordered(n, 0);
  const size_t sym_have = std::min(left, n);
  std::copy(p, p + sym_have, ordered.begin());
  p += sym_have, left -= sym_have;
  const std::vector<uint8_t> bit_bytes(p, p + left);
  const uint8_t* cls = ckz::KeySplitClassTable(dtype);
  std::vector<uint8_t> by_class[kKeySplitClasses];
  for (size_t i = 0; i < n; ++i) by_class[cls[ckz::LoadLE16(ref.data() + 2 * i)]].push_back(ordered[i]);
  std::vector<uint8_t> symbols;
  for (const auto& s : by_class) symbols.insert(symbols.end(), s.begin(), s.end());

  std::vector<uint8_t> out, again;
  size_t bad = SIZE_MAX, bad2 = SIZE_MAX;
  bool padding_ok = false, padding_ok2 = false;
  uint64_t rest = 0, rest2 = 0;
  const bool ok = Decode(dtype, ref, symbols, bit_bytes, &out, &bad, &padding_ok, &rest);
  const bool ok2 = Decode(dtype, ref, symbols, bit_bytes, &again, &bad2, &padding_ok2, &rest2);
  FUZZ_CHECK(ok == ok2);
  if (!ok) {
    FUZZ_CHECK(bad == bad2 && bad < n);
    // The named element's symbol is invalid; every earlier one is valid (a symbol is valid
    // when its size is 0..16 with the unused top bits clear, or it is 0).
    auto valid = [](uint32_t s) {
      const uint32_t size = s >> 3;
      if (size == 0) return s == 0;
      const uint32_t t = std::min<uint32_t>(size - 1, 2);
      return size <= 16 && (s & ((1u << (2 - t)) - 1)) == 0;
    };
    FUZZ_CHECK(!valid(ordered[bad]));
    for (size_t i = 0; i < bad; ++i) FUZZ_CHECK(valid(ordered[i]));
    return 0;
  }
  FUZZ_CHECK(padding_ok == padding_ok2 && rest == rest2 && out == again);
  // The padding check: the bits after the T-th of the last byte handed over.
  const size_t bytes = size_t((rest + 7) / 8);
  const uint8_t last = bytes && bytes <= bit_bytes.size() ? bit_bytes[bytes - 1] : 0;
  FUZZ_CHECK(padding_ok == (rest % 8 == 0 || (last >> (rest % 8)) == 0));
  if (!padding_ok) return 0;
  // Re-encoding the decoded values gives streams that decode to them.
  std::vector<uint8_t> enc_classes[kKeySplitClasses], enc_bits;
  ckz::KeySplitForward(dtype, out.data(), ref.data(), n, enc_classes, &enc_bits);
  std::vector<uint8_t> enc_symbols;
  for (const auto& s : enc_classes) enc_symbols.insert(enc_symbols.end(), s.begin(), s.end());
  FUZZ_CHECK(enc_symbols.size() == n);
  std::vector<uint8_t> round;
  bool padding = false;
  FUZZ_CHECK(Decode(dtype, ref, enc_symbols, enc_bits, &round, &bad, &padding, &rest));
  FUZZ_CHECK(padding && enc_bits.size() == (rest + 7) / 8);
  FUZZ_CHECK(round == out);
  return 0;
}
