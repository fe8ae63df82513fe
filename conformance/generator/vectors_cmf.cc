// cmf-coded float values (spec 7.8), full profile.
#include "vectors.h"

#include <cstdio>
#include <functional>
#include <optional>
#include <set>

#include "common/bytes.h"
#include "common/float_model.h"
#include "common/range_coder.h"
#include "common/transforms.h"
#include "format/chunk_layout.h"

namespace ckz::vectors {
namespace {

// (child, prediction) binary32 pairs that reach every part of the cmf model: every near class
// 0..24 (both signs of the difference, across zero and power-of-two boundaries), escapes with
// every exponent step length and sign flips, NaN payloads, infinities, subnormals, and keys at
// both ends of the key range (escapes: the reference encoder never wraps a near class).
std::pair<T, T> CmfPair(const std::string& name, std::vector<uint64_t> shape, uint64_t seed) {
  const uint64_t n = Elements(shape);
  std::vector<uint64_t> xs, ps;
  const uint32_t base[] = {0x3D4CCCCD, 0xBD4CCCCD, 0x3F800000, 0x00000000, 0x80000000,
                           0x00000003, 0x7F7FFFFF, 0xC2F6E979};
  for (uint32_t k = 0; k <= 24; ++k)  // near class k, both directions
    for (int neg = 0; neg < 2; ++neg) {
      const uint32_t p = base[(k + uint32_t(neg)) % 8];
      const uint32_t a = k == 0 ? 0 : (1u << (k - 1)) | (uint32_t(k * 2654435761u) & ((1u << (k - 1)) - 1));
      ps.push_back(p);
      xs.push_back(FromOrderedKey(neg ? OrderedKey(p) - a : OrderedKey(p) + a));
    }
  const std::vector<std::pair<uint32_t, uint32_t>> specials = {
      {0x7FC00000, 0x3F800000}, {0xFFC12345, 0xBF800000}, {0x7F800001, 0x00000000},
      {0x7F800000, 0x7F7FFFFF}, {0xFF800000, 0x3F000000}, {0x00000001, 0x80000000},
      {0x807FFFFF, 0x00800000}, {0x3F800000, 0xBF800000}, {0x00800000, 0x7F000000},
      {0x7F000000, 0x00800000}, {0xFFFFFFFF, 0x00000000}, {0x00000000, 0xFFFFFFFF},
      {0x7FFFFFFF, 0xFFFFFFFF}, {0xFFFFFFFF, 0x7FFFFFFF}, {0x3F800001, 0x3F800001}};
  for (const auto& [x, p] : specials) {
    xs.push_back(x);
    ps.push_back(p);
  }
  Rng r(seed);
  for (int len = 1; len <= 8; ++len)  // escapes: exponent steps of every bit length, both ways
    for (int down = 0; down < 2; ++down) {
      const uint32_t step = (1u << (len - 1)) | uint32_t(r.Next() & ((1u << (len - 1)) - 1));
      const uint32_t ep = down ? std::min<uint32_t>(254, 1 + step) : std::max<int>(0, 254 - int(step));
      const uint32_t ex = down ? ep - std::min(step, ep) : std::min<uint32_t>(255, ep + step);
      ps.push_back((ep << 23) | uint32_t(r.Next() & 0x7FFFFF) | uint32_t(r.Next() & 1) << 31);
      xs.push_back((ex << 23) | uint32_t(r.Next() & 0x7FFFFF) | uint32_t(r.Next() & 1) << 31);
    }
  while (xs.size() < n) {  // a training step: small moves, some sign flips
    const uint32_t p = uint32_t(r.Next());
    const uint32_t pe = (p & 0x807FFFFF) | (uint32_t(100 + r.Next() % 30) << 23);
    const uint64_t kind = r.Next() % 8;
    uint32_t x = pe;
    if (kind < 5) x = FromOrderedKey(OrderedKey(pe) + uint32_t(r.Next() % (1u << (4 + 3 * kind))) - (1u << (3 + 3 * kind)));
    if (kind == 5) x = pe ^ 0x80000000u;
    if (kind == 6) x = uint32_t(r.Next());
    ps.push_back(pe);
    xs.push_back(x);
  }
  Check(xs.size() == n, "CmfPair: " + std::to_string(xs.size()) + " pairs for " + std::to_string(n) + " elements");
  return {FromElems(name, DType::kF32, shape, xs), FromElems(name, DType::kF32, shape, ps)};
}

// The cmf size classes (0..25) the reference encoder uses for `x` against `p` (spec 7.8.3).
std::set<uint32_t> CmfClasses(const Bytes& x, const Bytes& p) {
  std::set<uint32_t> out;
  for (size_t i = 0; i + 4 <= x.size(); i += 4) {
    const int64_t d = int64_t(OrderedKey(LoadLE32(x.data() + i))) - int64_t(OrderedKey(LoadLE32(p.data() + i)));
    uint64_t a = uint64_t(d < 0 ? -d : d);
    uint32_t k = 0;
    while (a) ++k, a >>= 1;
    out.insert(k > 24 ? 25 : k);
  }
  return out;
}

EncodeOptions CmfOpt(uint64_t chunk, Predictor predictor = Predictor::kSubRef) {
  return Opt(StreamCodec::kCmFloat, false, chunk, predictor);
}

// Element 0 of a cmf stream decodes the same decisions whatever its prediction (all states are
// fresh), so streams for hand-made cases are found by decoding random bytes against a few
// predictions. Returns the decoded bits of element 0 against `prediction`, or nullopt when
// that fails.
std::optional<uint32_t> CmfFirst(const Bytes& stream, uint32_t prediction) {
  Bytes pred(4), out(4);
  StoreLE32(pred.data(), prediction);
  size_t bad = 0;
  if (DecodeFloatStream(stream.data(), stream.size(), pred.data(), out.data(), 1, &bad) !=
      FloatDecodeResult::kOk)
    return std::nullopt;
  return LoadLE32(out.data());
}

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

// A stream of random bytes (4..7 of them) for which `accept` holds.
Bytes CmfSearch(uint64_t seed, const std::function<bool(const Bytes&)>& accept,
                const std::string& what) {
  Rng r(seed);
  for (int tries = 0; tries < 1000000; ++tries) {
    Bytes st(4 + r.Next() % 4);
    for (uint8_t& b : st) b = uint8_t(r.Next());
    if (accept(st)) return st;
  }
  Die("no stream found: " + what);
}

// Hand-made cmf streams the reference encoder never writes but every decoder must read: a near
// class whose key sum wraps around 2^32, and a tensor mixing cmf and stored chunks.
void CmfHandMade(Suite& s) {
  const uint32_t top = 0x7FFFFFFF;  // a NaN pattern: key 0xFFFFFFFF, the largest key
  const Bytes wrap = CmfSearch(5031, [&](const Bytes& st) {
    const auto mid = CmfFirst(st, 0x3F800000), hi = CmfFirst(st, top);
    if (!mid || !hi) return false;
    const int64_t d = int64_t(OrderedKey(*mid)) - int64_t(OrderedKey(0x3F800000));
    return d > 0 && d < (int64_t{1} << 24) && OrderedKey(*hi) == uint32_t(0xFFFFFFFFu + uint32_t(d));
  }, "a wrapping near class");
  const uint32_t wrapped = *CmfFirst(wrap, top);
  Ckpt parent = Single({FromElems("w", DType::kF32, {1}, {top}),
                        MakeT("m", DType::kF32, {16}, 5032)});
  Ckpt child = Single({FromElems("w", DType::kF32, {1}, {wrapped}), Next(parent, 5033).tensors[1]});
  const Encoded pe = Encode(parent, Opt(StreamCodec::kStored, false));
  const Encoded ce = Encode(child, CmfOpt(32), LinkTo(pe, parent, "parent-1.ckz", 1), &parent);
  Model m = FromFile(ce.bytes);
  Check(m.stored[0].size() == 1 && m.stored[1].size() == 2, "cmf hand-made: chunk layout");
  SetStream(m.stored[0][0], wrap);  // same decoded value, so the same CRC-32C
  // Chunk 1 of 'm' (elements 8..15) as a stored stream of SubRef residuals (7.4).
  Bytes z(32);
  ForwardTransform(Predictor::kSubRef, false, 4, child.tensors[1].bytes.data() + 32,
                   parent.tensors[1].bytes.data() + 32, 32, z.data());
  Bytes& c1 = m.stored[1][1];
  c1.assign(kStreamEntryBytes, 0);
  c1[0] = uint8_t(StreamCodec::kStored);
  SetStream(c1, z);
  Case c = Valid("full-cmf-hand-made", "full",
                 "A link whose cmf streams were made by hand (spec 7.8). 'w' is one element "
                 "predicted by 0x7FFFFFFF (key 0xFFFFFFFF): its stream codes a near class with "
                 "a positive difference, so key(p) + a wraps around 2^32 (to " +
                     Hex32(wrapped) + "). 'm' has two chunks: chunk 0 is cmf, chunk 1 a "
                 "stored stream of SubRef residuals (7.4): codecs are chosen per chunk.",
                 child, Assemble(m), {"codec:cmf", "cmf:wrap", "cmf:mixed-chunks"});
  c.files.push_back({"parent-1.ckz", pe.bytes});
  s.Add(c);
}

}  // namespace

void CmfValid(Suite& s) {
  {
    auto [x, p] = CmfPair("w", {12, 12}, 5001);
    Check(CmfClasses(x.bytes, p.bytes).size() == 26, "full-cmf-link: every size class");
    T u = MakeT("u", DType::kF32, {9}, 5004);
    u.predict = false;
    Ckpt parent = Single({p, MakeT("n", DType::kI64, {3}, 5002), MakeT("u", DType::kF32, {9}, 5005)});
    Ckpt child = Single({x, MakeT("n", DType::kI64, {3}, 5003), u});
    s.Add(ChainCase("full-cmf-link",
                    "A lossless link whose F32 tensor 'w' [12, 12] is cmf-coded (spec 7.8) "
                    "against its parent's 'w' (predictor SubRef; 200-byte chunks, so chunks "
                    "start mid-row and each starts with fresh states). The pairs reach every size "
                    "class 0..24 in both directions, escapes with exponent steps of every length "
                    "both ways, sign flips, NaN payloads, infinities, subnormals, +-0 and keys "
                    "at both ends of the key range. 'u' is cmf-coded without a prediction "
                    "(predictor None in a link: every prediction is +0.0, no parent tensor is "
                    "read). The I64 tensor 'n' is stored (cmf is for F32 only).",
                    {{parent, Opt(StreamCodec::kStored, false)}, {child, CmfOpt(200)}},
                    {"codec:cmf", "cmf:every-class", "cmf:escape", "cmf:no-prediction"}));
  }
  {
    // Predictor None: every prediction is +0.0, so nearly everything is an escape.
    auto [x, p] = CmfPair("w", {100}, 5011);
    Ckpt k = Single({x, MakeT("v", DType::kF32, {7}, 5012)});
    s.Add(Valid("full-cmf-keyframe", "full",
                "A keyframe whose F32 tensors are cmf-coded with predictor None (spec 7.8): "
                "every prediction is +0.0, so small magnitudes are near classes and the rest "
                "escapes; 'w' holds the same kinds of values as full-cmf-link.",
                k, Encode(k, CmfOpt(1u << 20, Predictor::kNone)).bytes,
                {"codec:cmf", "cmf:no-prediction", "cmf:escape"}));
  }
  {
    // Two links deep, XorRef in the middle (it means the same as SubRef for cmf), and a
    // keyframe with byte planes: predictions come from the decoded parent, whatever its coding.
    Ckpt p = ChainBase(5020);
    const Ckpt l1 = Next(p, 5021), l2 = Next(l1, 5022);
    s.Add(ChainCase("full-cmf-chain-depth2",
                    "input.ckz -> parent-1.ckz -> parent-2.ckz (keyframe: zstd, byte planes). "
                    "Both links cmf-code their F32 tensors (parent-1 with predictor XorRef, "
                    "input with SubRef: for cmf both mean 'the reference is the prediction'); "
                    "the F16 and I64 tensors are stored. 64-byte chunks.",
                    {{p, Opt(StreamCodec::kZstd, true, 64)},
                     {l1, CmfOpt(64, Predictor::kXorRef)},
                     {l2, CmfOpt(64)}},
                    {"codec:cmf", "chain:depth2"}));
  }
  CmfHandMade(s);
}

void CmfInvalid(Suite& s) {
  auto [x, p] = CmfPair("w", {12, 12}, 5101);
  StoreLE32(p.bytes.data(), 3);  // element 0: a subnormal prediction, unchanged
  StoreLE32(x.bytes.data(), 3);
  // 'z': element 0 predicted by the largest finite value (biased exponent 254).
  Ckpt parent = Single({p, MakeT("h", DType::kF16, {8}, 5102),
                        FromElems("z", DType::kF32, {4}, {0x7F7FFFFF, 1, 2, 3})});
  Ckpt child = Single({x, MakeT("h", DType::kF16, {8}, 5103),
                       FromElems("z", DType::kF32, {4}, {0x7F7FFFFF, 1, 2, 4})});
  const Encoded pe = Encode(parent, Opt(StreamCodec::kStored, false));
  const Encoded ce = Encode(child, CmfOpt(1u << 20), LinkTo(pe, parent, "parent-1.ckz", 1), &parent);
  const Model base = FromFile(ce.bytes);
  const Bytes& chunk = base.stored[0][0];
  Check(chunk[0] == uint8_t(StreamCodec::kCmFloat), "cmf stream expected");
  Check(base.required & kFeatureFloatModel, "feature bit 4 expected");
  const Bytes stream(chunk.begin() + kStreamEntryBytes, chunk.end());
  auto with_stream = [&](const Bytes& st) {
    Model m = base;
    SetStream(m.stored[0][0], st);
    return Assemble(m);
  };
  auto decodes = [&](const Bytes& st, size_t* bad) {
    Bytes out(x.bytes.size());
    return DecodeFloatStream(st.data(), st.size(), p.bytes.data(), out.data(), out.size() / 4, bad);
  };
  {
    Model m = base;
    m.required &= ~kFeatureFloatModel;
    s.Add(ChainInvalid("invalid-cmf-without-feature-bit", "C1", ErrorCode::kChunkMalformed,
                       "full-cmf-link's kind of file with required feature bit 4 cleared: codec 4 "
                       "(cmf) is allowed only with it (7.1).",
                       Assemble(m), pe.bytes, {"codec:cmf"}));
  }
  {
    Model m = base;
    m.stored[1][0][0] = uint8_t(StreamCodec::kCmFloat);  // 'h' is F16, stored
    s.Add(ChainInvalid("invalid-cmf-in-f16-tensor", "C1", ErrorCode::kChunkMalformed,
                       "The stored stream of the F16 tensor 'h' relabelled as codec 4 (cmf), which "
                       "only F32 tensors may use (7.1).",
                       Assemble(m), pe.bytes, {"codec:cmf"}));
  }
  {
    Model m = base;
    m.edit = [](Archive& a) { a.tensors[0].byte_planes = true; };
    s.Add(ChainInvalid("invalid-cmf-with-byte-planes", "C1", ErrorCode::kChunkMalformed,
                       "Tensor 'w' (one cmf stream) marked byte_planes = true: its directory "
                       "would need 4 entries, and codec 4 is not allowed in a tensor with byte "
                       "planes (7.1).",
                       Assemble(m), pe.bytes, {"codec:cmf"}));
  }
  {
    const Bytes st(8, 0xFF);
    size_t bad = 9;
    Check(decodes(st, &bad) == FloatDecodeResult::kBadSymbol && bad == 0,
          "invalid-cmf-size-class: element 0 must fail");
    s.Add(ChainInvalid("invalid-cmf-size-class", "C2", ErrorCode::kChunkDecodeFailed,
                       "The cmf stream of 'w' replaced by eight 0xFF bytes: code >= range, so every "
                       "decision is 1 and element 0's size class is 31 (> 25, 7.8.3).",
                       with_stream(st), pe.bytes, {"codec:cmf"}));
  }
  {
    // An escape whose exponent step goes below 0: with fresh states element 0's decisions do
    // not depend on its prediction; a stream that decodes element 0 against exponent 128 to
    // exponent <= 125 (an escape: near classes reach 126 at most) moves it down by >= 3, and
    // 'w''s element 0 is predicted by a value with biased exponent 0 or 1.
    const uint32_t ep = (LoadLE32(p.bytes.data()) >> 23) & 0xFF;
    Check(ep <= 2, "element 0 of the parent's 'w' must have a tiny exponent");
    Rng r(5111);
    Bytes found;
    for (int tries = 0; tries < 100000 && found.empty(); ++tries) {
      Bytes st(8);
      for (uint8_t& b : st) b = uint8_t(r.Next());
      const Bytes two = {0, 0, 0, 0x40};
      Bytes out(4);
      size_t bad = 0;
      if (DecodeFloatStream(st.data(), st.size(), two.data(), out.data(), 1, &bad) !=
          FloatDecodeResult::kOk)
        continue;
      if (((LoadLE32(out.data()) >> 23) & 0xFF) > 125) continue;
      size_t bad_all = 9;
      if (decodes(st, &bad_all) == FloatDecodeResult::kBadSymbol && bad_all == 0) found = st;
    }
    Check(!found.empty(), "invalid-cmf-exponent-below-0: no stream found");
    s.Add(ChainInvalid("invalid-cmf-exponent-below-0", "C2", ErrorCode::kChunkDecodeFailed,
                       "The cmf stream of 'w' replaced by 8 bytes whose element 0 is an escape "
                       "with an exponent step below the prediction's biased exponent (" +
                           std::to_string(ep) + "): e < 0 (7.8.3).",
                       with_stream(found), pe.bytes, {"codec:cmf"}));
  }
  {
    // Above 255: element 0 of 'z' is an escape stepping up by >= 3 from exponent 254 (against
    // exponent 128 it decodes to >= 131, beyond the near classes' reach of 130).
    const Bytes st = CmfSearch(5121, [&](const Bytes& b) {
      const auto mid = CmfFirst(b, 0x40000000);
      return mid && ((*mid >> 23) & 0xFF) >= 131 && !CmfFirst(b, 0x7F7FFFFF);
    }, "an escape above exponent 255");
    Model m = base;
    SetStream(m.stored[2][0], st);
    s.Add(ChainInvalid("invalid-cmf-exponent-above-255", "C2", ErrorCode::kChunkDecodeFailed,
                       "The cmf stream of 'z' replaced by " + std::to_string(st.size()) +
                           " bytes whose element 0 is an escape stepping up by at least 3 from "
                           "its prediction's biased exponent 254: e > 255 (7.8.3).",
                       Assemble(m), pe.bytes, {"codec:cmf"}));
  }
  {
    // Size classes 26..30 (not only 31): element 0's five tree decisions read fresh states.
    const Bytes st = CmfSearch(5131, [&](const Bytes& b) {
      RangeDecoder dec(b.data(), b.size());
      BitModel fresh[5];
      uint32_t cls = 0;
      for (BitModel& state : fresh) cls = 2 * cls + uint32_t(dec.Decode(state));
      size_t bad = 9;
      return cls >= 26 && cls <= 30 && decodes(b, &bad) == FloatDecodeResult::kBadSymbol &&
             bad == 0;
    }, "a size class in 26..30");
    s.Add(ChainInvalid("invalid-cmf-size-class-26-to-30", "C2", ErrorCode::kChunkDecodeFailed,
                       "The cmf stream of 'w' replaced by " + std::to_string(st.size()) +
                           " bytes whose element 0 has a size class in 26..30 (the 5-bit tree "
                           "can give 26..31; all are invalid, 7.8.3).",
                       with_stream(st), pe.bytes, {"codec:cmf"}));
  }
  {
    Bytes st = stream;
    size_t bad = 0;
    auto valid = [&](const Bytes& b) {
      Bytes out(x.bytes.size());
      return DecodeFloatStream(b.data(), b.size(), p.bytes.data(), out.data(), out.size() / 4,
                               &bad) == FloatDecodeResult::kOk && out == x.bytes;
    };
    Check(valid(st), "cmf stream of 'w' decodes");
    for (Bytes next = st; next.push_back(0), valid(next);) st = next;
    st.push_back(0x01);
    s.Add(ChainInvalid("invalid-cmf-trailing-bytes", "C2", ErrorCode::kChunkDecodeFailed,
                       "The cmf stream of 'w' padded with " +
                           std::to_string(st.size() - 1 - stream.size()) +
                           " zero bytes (still valid) and then one byte 0x01 that the decoder "
                           "never reads: length > consumed at finish (7.7.1).",
                       with_stream(st), pe.bytes, {"codec:cmf"}));
  }
  {
    // A changed byte that still decodes (no invalid symbol, finish passes) to other values.
    Bytes found;
    for (size_t i = stream.size() / 2; i < stream.size() && found.empty(); ++i)
      for (uint8_t flip : {0x01, 0x10, 0x80}) {
        Bytes st = stream;
        st[i] ^= flip;
        size_t bad = 0;
        Bytes out(x.bytes.size());
        if (DecodeFloatStream(st.data(), st.size(), p.bytes.data(), out.data(), out.size() / 4,
                              &bad) == FloatDecodeResult::kOk && out != x.bytes) {
          found = st;
          break;
        }
      }
    Check(!found.empty(), "invalid-cmf-corrupted: no silent corruption found");
    s.Add(ChainInvalid("invalid-cmf-corrupted", "C5", ErrorCode::kChunkChecksum,
                       "One byte in the second half of the cmf stream of 'w' changed so that it "
                       "still decodes (valid symbols, finish passes) to other values: the chunk's "
                       "CRC-32C does not match.",
                       with_stream(found), pe.bytes, {"codec:cmf"}));
  }
}

}  // namespace ckz::vectors
