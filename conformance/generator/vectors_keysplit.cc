// The KeySplit predictor (spec 7.10, format 0.8), full profile.
#include "vectors.h"

#include <functional>
#include <set>

#include "common/bytes.h"
#include "common/key_split.h"
#include "common/transforms.h"
#include "format/chunk_layout.h"

namespace ckz::vectors {
namespace {

// KeySplit's options: forced for the 16-bit tensors of a link, each stream `codec` (or, with
// nullopt, stored or zstd as the encoder picks per stream).
EncodeOptions KeySplitOpt(std::optional<StreamCodec> codec, uint64_t chunk = 1u << 20) {
  EncodeOptions o = Opt(StreamCodec::kStored, false, chunk, Predictor::kKeySplit);
  o.force_codec = codec;
  o.force_byte_planes.reset();
  return o;
}

uint32_t BitLength(uint32_t v) {
  uint32_t n = 0;
  while (v) ++n, v >>= 1;
  return n;
}

// (child, reference) 16-bit pairs that reach every part of 7.10: every size class 0..16 in
// both directions (size 16 only as d = -2^15), references in every exponent class 0..8 (so
// every symbol stream has elements), moves across zero and across powers of two, NaN payloads,
// infinities, signed zeros and subnormals on either side, then training-like small moves.
std::pair<T, T> KeySplitPair(const std::string& name, DType dtype, std::vector<uint64_t> shape,
                             uint64_t seed) {
  const uint64_t n = Elements(shape);
  const bool bf = dtype == DType::kBF16;
  std::vector<uint64_t> xs, rs;
  auto add = [&](uint32_t x, uint32_t r) {
    xs.push_back(x);
    rs.push_back(r);
  };
  // One reference per exponent class. BF16: binary32 exponents 96 + 4c (c = 0..7) and 140.
  // F16 has no class 1 (its smallest value, 2^-24, has exponent 103, class 2): zero and -0
  // (class 0), subnormals with 1, 5 and 9 significant bits (exponents 103, 107, 111) and
  // normal exponent fields 3, 7, 11 and 15.
  uint32_t refs[9];
  for (uint32_t c = 0; c < 9; ++c) refs[c] = (c < 8 ? 96 + 4 * c : 140) << 7 | 0x05;
  const uint32_t h_refs[9] = {0x0000, 0x8000, 0x0001, 0x0010, 0x0100, 0x0C01, 0x1C01, 0x2C01, 0x3C01};
  if (!bf) std::copy(h_refs, h_refs + 9, refs);
  Rng r(seed);
  for (uint32_t size = 0; size <= 16; ++size)
    for (int neg = 0; neg < 2; ++neg) {
      if (size == 16 && !neg) continue;  // +2^15 is written as -2^15
      const uint32_t ref = refs[(size + uint32_t(neg)) % 9];
      const uint32_t a = size == 0 ? 0
                                   : size == 16 ? 0x8000u
                                                : (1u << (size - 1)) | uint32_t(r.Next() & ((1u << (size - 1)) - 1));
      add(Unkey16((neg ? Key16(ref) - a : Key16(ref) + a) & 0xFFFF), ref);
    }
  const std::vector<std::pair<uint32_t, uint32_t>> specials =
      bf ? std::vector<std::pair<uint32_t, uint32_t>>{
               {0x0000, 0x8000}, {0x8000, 0x0000}, {0x0001, 0x8001}, {0x7F80, 0x7F7F},
               {0xFF80, 0x3F80}, {0x7FC1, 0x3F80}, {0xFFFF, 0x0000}, {0x3F80, 0x7FC0},
               {0x0080, 0x007F}, {0x3F80, 0x3F7F}, {0xBF80, 0xBF7F}, {0x7F81, 0x7F81}}
         : std::vector<std::pair<uint32_t, uint32_t>>{
               {0x0000, 0x8000}, {0x8000, 0x0000}, {0x0001, 0x8001}, {0x7C00, 0x7BFF},
               {0xFC00, 0x3C00}, {0x7E01, 0x3C00}, {0xFFFF, 0x0000}, {0x3C00, 0x7E00},
               {0x0400, 0x03FF}, {0x3C00, 0x3BFF}, {0xBC00, 0xBBFF}, {0x7C01, 0x7C01}};
  for (const auto& [x, ref] : specials) add(x, ref);
  while (xs.size() < n) {  // a training step: weights near 0.02 moving by a few units
    const uint32_t e = bf ? 120 + uint32_t(r.Next() % 6) : 8 + uint32_t(r.Next() % 6);
    const uint32_t ref = bf ? (uint32_t(r.Next() & 1) << 15) | (e << 7) | uint32_t(r.Next() & 0x7F)
                            : (uint32_t(r.Next() & 1) << 15) | (e << 10) | uint32_t(r.Next() & 0x3FF);
    const int32_t d = int32_t(r.Next() % 13) - 6;
    add(Unkey16((Key16(ref) + uint32_t(d)) & 0xFFFF), ref);
  }
  Check(xs.size() == n, "KeySplitPair: " + std::to_string(xs.size()) + " pairs for " +
                            std::to_string(n) + " elements");
  return {FromElems(name, dtype, shape, xs), FromElems(name, dtype, shape, rs)};
}

// The size classes of `x` against `ref` as the reference encoder writes them.
std::set<uint32_t> Sizes(const Bytes& x, const Bytes& ref) {
  std::set<uint32_t> out;
  for (size_t i = 0; i + 2 <= x.size(); i += 2) {
    const int32_t d = int16_t(uint16_t(Key16(LoadLE16(x.data() + i)) - Key16(LoadLE16(ref.data() + i))));
    out.insert(BitLength(uint32_t(d < 0 ? -d : d)));
  }
  return out;
}

std::set<uint32_t> Classes(DType dtype, const Bytes& ref) {
  std::set<uint32_t> out;
  for (size_t i = 0; i + 2 <= ref.size(); i += 2) out.insert(KeySplitClassTable(dtype)[LoadLE16(ref.data() + i)]);
  return out;
}

// A KeySplit chunk taken apart: its ten (codec, stream) pairs.
std::vector<std::pair<StreamCodec, Bytes>> Streams(const Bytes& chunk) {
  std::vector<std::pair<StreamCodec, Bytes>> out;
  size_t pos = kKeySplitStreams * kStreamEntryBytes;
  for (size_t s = 0; s < kKeySplitStreams; ++s) {
    const uint8_t* e = chunk.data() + s * kStreamEntryBytes;
    const uint32_t len = LoadLE32(e + 1);
    out.emplace_back(StreamCodec(e[0]), Bytes(chunk.begin() + pos, chunk.begin() + pos + len));
    pos += len;
  }
  Check(pos == chunk.size(), "KeySplit chunk layout");
  return out;
}

// Hand-made streams the reference encoder never writes but every decoder must read.
void KeySplitHandMade(Suite& s) {
  // 'w': BF16 [4]; element 0 coded the long way round (a = 2^16 - 3 upwards instead of 3
  // down), element 1 with d = +2^15 written as a positive size-16 difference, element 2
  // unchanged. Class streams: the reference values are all in one class, so eight of the nine
  // symbol streams are empty: one as a zstd frame of empty content, the others stored empty.
  const std::vector<uint64_t> refs = {0x3C80, 0x3C81, 0x3C82, 0x3C83};
  const uint32_t x0 = Unkey16((Key16(0x3C80) - 3) & 0xFFFF);
  const uint32_t x1 = Unkey16((Key16(0x3C81) + 0x8000) & 0xFFFF);
  Ckpt parent = Single({FromElems("w", DType::kBF16, {4}, refs)});
  Ckpt child = Single({FromElems("w", DType::kBF16, {4}, {x0, x1, 0x3C82, 0x3C84})});
  const Encoded pe = Encode(parent, Opt(StreamCodec::kStored, false));
  const Encoded ce = Encode(child, KeySplitOpt(StreamCodec::kStored),
                            LinkTo(pe, parent, "parent-1.ckz", 1), &parent);
  Model m = FromFile(ce.bytes);
  const uint32_t c = KeySplitClassTable(DType::kBF16)[0x3C80];
  // Element 0: a = 0xFFFD upwards: size 16, t = 2, top = 0b11 -> symbol (16 << 3) | 3; its 13
  // low bits 0x1FFD. Element 1: a = 0x8000 upwards: symbol 16 << 3, 13 zero bits. Element 3:
  // +1: symbol 1 << 3.
  Bytes symbols = {uint8_t((16 << 3) | 3), uint8_t(16 << 3), 0, uint8_t(1 << 3)};
  uint64_t bits = 0x1FFD;  // element 0's 13 bits, then element 1's 13 zero bits: 26 bits
  Bytes bit_stream = {uint8_t(bits), uint8_t(bits >> 8), 0, 0};
  std::vector<std::pair<StreamCodec, Bytes>> streams(kKeySplitStreams, {StreamCodec::kStored, {}});
  streams[c] = {StreamCodec::kStored, symbols};
  streams[c == 0 ? 1 : 0] = {StreamCodec::kZstd, Zstd(Bytes())};
  streams[kKeySplitClasses] = {StreamCodec::kStored, bit_stream};
  m.stored[0][0] = MakeChunk(streams);
  Case k = Valid("full-keysplit-hand-made", "full",
                 "A link whose KeySplit streams were made by hand (spec 7.10). BF16 'w' [4], "
                 "references 0x3C80..0x3C83, all in one exponent class: element 0 is coded as "
                 "a size-16 difference a = 0xFFFD upwards (the reference encoder would write 3 "
                 "downwards; key16 sums wrap mod 2^16), element 1 as a = 0x8000 upwards, "
                 "element 2 unchanged (symbol 0), element 3 as +1. Of the eight empty symbol "
                 "streams one is a zstd frame of empty content, the others stored with length "
                 "0; the bit stream holds 26 bits.",
                 child, Assemble(m), {"keysplit:wrap", "keysplit:empty-streams"});
  k.files.push_back({"parent-1.ckz", pe.bytes});
  s.Add(k);
}

}  // namespace

void KeySplitValid(Suite& s) {
  {
    auto [b, br] = KeySplitPair("b", DType::kBF16, {16, 24}, 7001);
    auto [h, hr] = KeySplitPair("h", DType::kF16, {300}, 7002);
    Check(Sizes(b.bytes, br.bytes).size() == 17 && Sizes(h.bytes, hr.bytes).size() == 17,
          "full-keysplit-link: every size class");
    Check(Classes(DType::kBF16, br.bytes).size() == 9 && Classes(DType::kF16, hr.bytes).size() == 8,
          "full-keysplit-link: every exponent class (F16 has no class 1)");
    Ckpt parent = Single({br, hr, MakeT("f", DType::kF32, {10}, 7003)});
    Ckpt child = Single({b, h, MakeT("f", DType::kF32, {10}, 7004)});
    s.Add(ChainCase("full-keysplit-link",
                    "A lossless link whose BF16 tensor 'b' [16, 24] and F16 tensor 'h' [300] "
                    "have predictor KeySplit (spec 7.10; 200-byte chunks, so chunks start "
                    "mid-row and some chunks have empty symbol streams; each stream stored or "
                    "zstd as the encoder chose). The pairs reach every size class 0..16 in both "
                    "directions (16 only as -2^15), references in every exponent class 0..8 "
                    "(F16: every class but 1, which no F16 value has), "
                    "moves across zero and powers of two, NaN payloads, infinities, signed "
                    "zeros and subnormals. The F32 tensor 'f' has predictor None (KeySplit is "
                    "for 16-bit floats only).",
                    {{parent, Opt(StreamCodec::kStored, false)}, {child, KeySplitOpt(std::nullopt, 200)}},
                    {"keysplit:every-size", "keysplit:every-class", "codec:stored", "codec:zstd"}));
  }
  {
    // Two links deep: the predictions come from the decoded parent, itself KeySplit-coded.
    Ckpt p = Single({MakeT("b", DType::kBF16, {40}, 7010), MakeT("h", DType::kF16, {6, 7}, 7011),
                     MakeT("i", DType::kI32, {5}, 7012)});
    const Ckpt l1 = Next(p, 7013), l2 = Next(l1, 7014);
    s.Add(ChainCase("full-keysplit-chain-depth2",
                    "input.ckz -> parent-1.ckz -> parent-2.ckz (keyframe: zstd, byte planes). "
                    "Both links code their BF16 and F16 tensors with KeySplit (parent-1 every "
                    "stream zstd, input every stream stored): each link's references are the "
                    "decoded values of a KeySplit tensor. The I32 tensor has predictor None. "
                    "64-byte chunks.",
                    {{p, Opt(StreamCodec::kZstd, true, 64)},
                     {l1, KeySplitOpt(StreamCodec::kZstd, 64)},
                     {l2, KeySplitOpt(StreamCodec::kStored, 64)}},
                    {"chain:depth2", "codec:zstd", "codec:stored"}));
  }
  KeySplitHandMade(s);
}

void KeySplitInvalid(Suite& s) {
  auto [b, br] = KeySplitPair("b", DType::kBF16, {16, 24}, 7101);
  Ckpt parent = Single({br, MakeT("f", DType::kF32, {8}, 7102), MakeT("h", DType::kF16, {5}, 7103)});
  Ckpt child = Single({b, MakeT("f", DType::kF32, {8}, 7104), MakeT("h", DType::kF16, {5}, 7105)});
  const Encoded pe = Encode(parent, Opt(StreamCodec::kStored, false));
  const Encoded ce = Encode(child, KeySplitOpt(StreamCodec::kStored),
                            LinkTo(pe, parent, "parent-1.ckz", 1), &parent);
  const Model base = FromFile(ce.bytes);
  Check(base.required & kFeatureKeySplit, "feature bit 7 expected");
  Check(base.h.tensors[0].predictor == Predictor::kKeySplit, "'b' KeySplit expected");
  const std::vector<std::pair<StreamCodec, Bytes>> streams = Streams(base.stored[0][0]);
  auto with = [&](const std::vector<std::pair<StreamCodec, Bytes>>& st) {
    Model m = base;
    m.stored[0][0] = MakeChunk(st);
    return Assemble(m);
  };
  auto make = [&](const std::string& name, const std::string& rule, ErrorCode error,
                  const std::string& description, const Bytes& file) {
    return ChainInvalid(name, rule, error, description, file, pe.bytes, {"predictor:keysplit"});
  };
  auto add = [&](const std::string& name, const std::string& rule, ErrorCode error,
                 const std::string& description, const Bytes& file) {
    s.Add(make(name, rule, error, description, file));
  };
  // The first symbol stream with at least two symbols, and its element 1's position.
  size_t c = 0;
  while (streams[c].second.size() < 2) ++c;
  Check(c + 1 < kKeySplitClasses, "KeySplitInvalid: a symbol stream with two symbols first");
  size_t j = 0;  // a changed element of stream c
  while (streams[c].second[j] == 0) ++j;
  {
    Model m = base;
    m.required &= ~kFeatureKeySplit;
    add("invalid-keysplit-without-feature-bit", "T12", ErrorCode::kFieldOutOfRange,
        "full-keysplit-link's kind of file with required feature bit 7 cleared: a tensor has "
        "predictor KeySplit, so the bit must be set (rule T12).",
        Assemble(m));
  }
  {
    // 'b' and 'h' recoded as SubRef residuals (7.4), stored: the file is valid but for T12.
    Model m = base;
    m.required |= kFeatureKeySplit;
    for (size_t t : {size_t(0), size_t(2)}) {
      m.h.tensors[t].predictor = Predictor::kSubRef;
      const Bytes& x = child.tensors[t].bytes;
      Bytes z(x.size());
      ForwardTransform(Predictor::kSubRef, false, 2, x.data(), parent.tensors[t].bytes.data(),
                       x.size(), z.data());
      m.stored[t][0] = MakeChunk({{StreamCodec::kStored, z}});
    }
    add("invalid-keysplit-feature-bit-without-tensor", "T12", ErrorCode::kFieldOutOfRange,
        "Required feature bit 7 set while no tensor has predictor KeySplit ('b' and 'h' are "
        "SubRef here, their residuals stored), rule T12.",
        Assemble(m));
  }
  {
    Model m = base;
    m.edit = [](Archive& a) { a.tensors[1].predictor = Predictor::kKeySplit; };
    s.Add(make("invalid-keysplit-f32-tensor", "T11", ErrorCode::kFieldOutOfRange,
               "The F32 tensor 'f' given predictor KeySplit, which is for F16 and BF16 only "
               "(rule T11).",
               Assemble(m))
              .WithoutRuleFails(ErrorCode::kChunkMalformed));  // one stream, not ten
  }
  {
    Model m = base;
    m.edit = [](Archive& a) { a.tensors[0].byte_planes = true; };
    add("invalid-keysplit-with-byte-planes", "T11", ErrorCode::kFieldOutOfRange,
        "The KeySplit tensor 'b' marked byte_planes = true (rule T11).", Assemble(m));
  }
  {
    auto st = streams;
    st[c].first = StreamCodec::kCmFloat;
    add("invalid-keysplit-codec", "C1", ErrorCode::kChunkMalformed,
        "Symbol stream " + std::to_string(c) + " of 'b' relabelled as codec 4 (cmf): KeySplit "
        "streams are stored or zstd (7.1, 7.10).",
        with(st));
  }
  {
    Model m = base;
    m.stored[0][0] = MakeChunk({{StreamCodec::kStored, b.bytes}});
    add("invalid-keysplit-one-stream", "C1", ErrorCode::kChunkMalformed,
        "The KeySplit tensor 'b' with a one-entry stream directory (its stored values): a "
        "KeySplit chunk has 10 streams, so what a decoder reads as the other nine entries is "
        "value bytes: an unknown codec, or lengths that do not add up to the chunk (7.1).",
        Assemble(m));
  }
  {
    // One symbol moved from stream c to stream c + 1: the total is right, the counts are not.
    auto st = streams;
    size_t d = c + 1;
    st[d].second.insert(st[d].second.begin(), st[c].second.back());
    st[c].second.pop_back();
    add("invalid-keysplit-stream-length", "C2", ErrorCode::kChunkDecodeFailed,
        "The last symbol of stream " + std::to_string(c) + " moved to the front of stream " +
            std::to_string(d) + ": the streams hold as many bytes as there are elements, but "
            "stream " + std::to_string(c) + " is one short of the count its references give "
            "(step 2 of 7.10).",
        with(st));
  }
  // Invalid symbols that leave the number of packed bits T unchanged, so that a decoder that
  // skips the symbol check still finds a bit stream of the right length (and then fails the
  // CRC or decodes other values): only the check itself rejects these files.
  auto rest_of = [](uint8_t sym) -> uint32_t {  // what a decoder without the check reads
    const uint32_t size = sym >> 3;
    return size == 0 ? 0 : size - 1 - std::min<uint32_t>(size - 1, 2);
  };
  auto find = [&](const std::function<bool(uint8_t)>& want) {
    for (size_t k = 0; k < kKeySplitClasses; ++k)
      for (size_t i = 0; i < streams[k].second.size(); ++i)
        if (want(streams[k].second[i])) return std::make_pair(k, i);
    Die("KeySplitInvalid: no symbol of the kind wanted");
  };
  {
    auto st = streams;
    const auto [k, i] = find([](uint8_t v) { return v == 0; });
    st[k].second[i] = 0x04;
    add("invalid-keysplit-symbol-zero-size", "C2", ErrorCode::kChunkDecodeFailed,
        "Symbol " + std::to_string(i) + " of stream " + std::to_string(k) + " of 'b', an "
        "unchanged value (symbol 0), replaced by 0x04: size 0 with the sign bit set, an invalid "
        "symbol (step 3 of 7.10); it takes no packed bits either way.",
        with(st));
  }
  {
    auto st = streams;
    const auto [k, i] = find([](uint8_t v) { return (v >> 3) == 1; });
    st[k].second[i] = uint8_t(st[k].second[i] | 2);
    add("invalid-keysplit-symbol-top-bits", "C2", ErrorCode::kChunkDecodeFailed,
        "A size-1 symbol of 'b' (stream " + std::to_string(k) + ", symbol " + std::to_string(i) +
            ") with a top bit set: size 1 has no bits under its leading one, so its low 2 "
            "bits must be 0 (step 3 of 7.10); it takes no packed bits either way.",
        with(st));
  }
  {
    auto st = streams;
    const auto [k, i] = find([](uint8_t v) { return (v >> 3) == 2; });
    st[k].second[i] = uint8_t(st[k].second[i] | 1);
    add("invalid-keysplit-symbol-odd-top", "C2", ErrorCode::kChunkDecodeFailed,
        "A size-2 symbol of 'b' (stream " + std::to_string(k) + ", symbol " + std::to_string(i) +
            ") with its unused low top bit set: size 2 keeps one bit under its leading one, in "
            "bit 1, so bit 0 must be 0 (step 3 of 7.10); it takes no packed bits either way.",
        with(st));
  }
  {
    // Size 17 would take 14 packed bits; a size-16 symbol (13) becomes it and a size-4 symbol
    // (1) a size-3 one (0), so T stays the same.
    auto st = streams;
    const auto [k, i] = find([](uint8_t v) { return (v >> 3) == 16; });
    const auto [k2, i2] = find([](uint8_t v) { return (v >> 3) == 4; });
    const uint32_t before = rest_of(st[k].second[i]) + rest_of(st[k2].second[i2]);
    st[k].second[i] = uint8_t(17 << 3);
    st[k2].second[i2] = uint8_t(3 << 3);
    Check(rest_of(st[k].second[i]) + rest_of(st[k2].second[i2]) == before,
          "invalid-keysplit-symbol-size: the packed bits must stay the same");
    add("invalid-keysplit-symbol-size", "C2", ErrorCode::kChunkDecodeFailed,
        "The size-16 symbol of 'b' (stream " + std::to_string(k) + ", symbol " +
            std::to_string(i) + ") replaced by 0x88, size class 17 (sizes end at 16: step 3 "
            "of 7.10), and a size-4 symbol made size 3, so that the packed bits a decoder "
            "without the size check would read add up to the same T.",
        with(st));
  }
  {
    auto st = streams;
    st[kKeySplitClasses].second.push_back(0);
    add("invalid-keysplit-bit-stream-length", "C2", ErrorCode::kChunkDecodeFailed,
        "The bit stream (stream 9) of 'b' with one zero byte appended: it must decode to "
        "exactly ceil(T / 8) bytes (step 4 of 7.10).",
        with(st));
  }
  {
    // A padding bit: the total of the low bits is not a multiple of 8 in this file.
    uint64_t t = 0;
    for (size_t k = 0; k < kKeySplitClasses; ++k)
      for (uint8_t sym : streams[k].second)
        if (sym) t += (sym >> 3) - 1 - std::min<uint32_t>((sym >> 3) - 1, 2);
    Check(t % 8 != 0, "invalid-keysplit-padding: the bit count must leave padding");
    auto st = streams;
    st[kKeySplitClasses].second.back() |= 0x80;
    add("invalid-keysplit-padding", "C2", ErrorCode::kChunkDecodeFailed,
        "The last byte of the bit stream of 'b' with its top bit set: " + std::to_string(t) +
            " bits are used, so that bit is padding and must be 0 (step 4 of 7.10).",
        with(st));
  }
  {
    auto st = streams;
    st[c].second[j] ^= 4;
    add("invalid-keysplit-checksum", "C5", ErrorCode::kChunkChecksum,
        "Symbol " + std::to_string(j) + " of stream " + std::to_string(c) + " of 'b' with its "
        "sign bit flipped: still valid, with the same low bits, so the values decode, "
        "differently, and fail the chunk's CRC-32C (7.5).",
        with(st));
  }
  {
    // A parent whose 'b' has the same shape but the other 16-bit dtype.
    Ckpt other = parent;
    other.tensors[0].dtype = DType::kF16;
    const Encoded oe = Encode(other, Opt(StreamCodec::kStored, false));
    const Encoded le = Encode(child, KeySplitOpt(StreamCodec::kStored),
                              LinkTo(oe, other, "parent-1.ckz", 1), &other);
    s.Add(ChainInvalid("invalid-keysplit-reference-dtype", "R3", ErrorCode::kReferenceMismatch,
                       "The parent's 'b' has the KeySplit tensor's shape but dtype F16, not "
                       "BF16: the reference must have the same dtype and shape (R3, 10.2).",
                       le.bytes, oe.bytes, {"predictor:keysplit"}));
  }
}

}  // namespace ckz::vectors
