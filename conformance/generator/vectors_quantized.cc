// Quantized tensors (spec 7.6), full profile.
#include "vectors.h"

#include <cmath>
#include <cstring>

#include "common/bytes.h"
#include "common/quantize.h"

namespace ckz::vectors {
namespace {

// A keyframe with special values (NaN with payload, infinities, -0, subnormals) for residuals
// to be added to, and a link of it with quantized tensors of every floating dtype.
Ckpt QuantParent(uint64_t seed) {
  Ckpt c = Single({MakeT("w32", DType::kF32, {24, 10}, seed + 1, Role::kWeight),
                   MakeT("w16", DType::kF16, {9, 7}, seed + 2, Role::kWeight),
                   MakeT("wbf", DType::kBF16, {50}, seed + 3, Role::kWeight),
                   MakeT("w64", DType::kF64, {3, 11}, seed + 4, Role::kWeight),
                   MakeT("m", DType::kF32, {24, 10}, seed + 5, Role::kMoment1, 0),
                   MakeT("v", DType::kF32, {24, 10}, seed + 6, Role::kMoment2, 0),
                   MakeT("n", DType::kI64, {}, seed + 7)});
  c.step = 500;
  // Special values at the start of w32, w16 and w64.
  const uint32_t f32s[] = {0x7FA00001u, 0xFF800000u, 0x7F800000u, 0x80000000u, 0x00000001u,
                           0x807FFFFFu, 0x7F7FFFFFu};
  T& w32 = c.tensors[0];
  for (size_t i = 0; i < 7; ++i) StoreElem(w32.bytes.data() + 4 * i, 4, f32s[i]);
  const uint16_t f16s[] = {0x7D01, 0xFC00, 0x8000, 0x0001, 0x7BFF, 0x03FF};
  for (size_t i = 0; i < 6; ++i) StoreElem(c.tensors[1].bytes.data() + 2 * i, 2, f16s[i]);
  const uint64_t f64s[] = {0x7FF0000000000001ull, 0x8000000000000000ull, 0x0000000000000001ull};
  for (size_t i = 0; i < 3; ++i) StoreElem(c.tensors[3].bytes.data() + 8 * i, 8, f64s[i]);
  return c;
}

// For an F16/BF16/F64 Residual tensor `t` of `link` against `parent`: checks, with the
// arithmetic above (not the library's), that `t.bytes` is spec 7.6 step 3/4 (round32 of a×g,
// round32 of b + c, then rounded into the dtype), and returns how many elements a decoder
// taking the binary64 path (a×g + c computed in binary64 and rounded once into F16/BF16, the
// single rounding that 7.6 says is not the result) would get wrong.
size_t DoubleRoundingMisses(const T& t, const Ckpt& parent) {
  const T& r = *parent.Find(t.name);
  const QuantizationInfo& q = *t.quant;
  const size_t w = DTypeSize(t.dtype);
  const float g = q.reference_scale;
  size_t misses = 0;
  for (size_t i = 0; i < t.indices.size(); ++i) {
    const uint64_t ref = LoadElem(r.bytes.data() + i * w, w), got = LoadElem(t.bytes.data() + i * w, w);
    const unsigned j = t.indices[i];
    if (t.dtype == DType::kF64) {
      double a;
      std::memcpy(&a, &ref, 8);
      const double b = g == 1.0f ? a : a * double(g);
      const double x = j == 0 ? b : b + double(q.codebook[j - 1]);
      uint64_t xb;
      std::memcpy(&xb, &x, 8);
      Check(xb == got, t.name + ": F64 reconstruction differs from spec 7.6 step 4");
      continue;
    }
    const bool half = t.dtype == DType::kF16;
    Check(half || t.dtype == DType::kBF16, t.name + ": F16, BF16 or F64 only");
    if (g == 1.0f && j == 0) {
      Check(ref == got, t.name + ": a pruned element is not its reference");
      continue;
    }
    const double a64 = half ? WidenF16(uint16_t(ref)) : WidenBF16(uint16_t(ref));
    const float a = float(a64);  // exact
    const float b = g == 1.0f ? a : a * g;
    const float s = j == 0 ? b : b + q.codebook[j - 1];
    const uint16_t spec = half ? RoundF16(double(s)) : RoundBF16(double(s));
    Check(spec == got, t.name + ": reconstruction differs from spec 7.6 step 3");
    const double s64 = (g == 1.0f ? a64 : a64 * double(g)) + (j == 0 ? 0.0 : double(q.codebook[j - 1]));
    const uint16_t once = half ? RoundF16(s64) : RoundBF16(s64);
    misses += once != spec;
  }
  return misses;
}

}  // namespace

void QuantizedValid(Suite& s) {
  {
    Ckpt k = Single({MakeT("m", DType::kF32, {40}, 3001, Role::kMoment1),
                     MakeT("h", DType::kBF16, {3, 9}, 3002),
                     MakeT("d", DType::kF64, {5}, 3003)});
    Quantize(k, "m", QuantKind::kDirect, 4, 15, 3011, nullptr);
    Quantize(k, "h", QuantKind::kDirect, 2, 3, 3012, nullptr);
    Quantize(k, "d", QuantKind::kDirect, 8, 200, 3013, nullptr, 1.0f, 2);
    s.Add(Valid("full-quantized-direct-keyframe", "full",
                "Direct quantization in a keyframe (no reference): F32 with 4-bit indices and 15 "
                "centres, BF16 with 2-bit indices (3 centres, rounded into bf16), F64 with 8-bit "
                "indices and 200 centres (widened exactly). Index 0 is +0.0. Packed index "
                "streams, one chunk each.",
                k, Encode(k, IndexOpt(StreamCodec::kPacked)).bytes, {"quant:direct"}));
  }
  {
    Ckpt p = QuantParent(3100);
    Ckpt l = Next(p, 3101);
    l.step = 520;
    Quantize(l, "w32", QuantKind::kResidual, 4, 15, 3111, &p);
    Quantize(l, "w16", QuantKind::kResidual, 3, 7, 3112, &p);
    Quantize(l, "wbf", QuantKind::kResidual, 1, 1, 3113, &p);
    Quantize(l, "w64", QuantKind::kResidual, 5, 31, 3114, &p);
    Quantize(l, "m", QuantKind::kDirect, 4, 15, 3115, nullptr);
    Quantize(l, "v", QuantKind::kResidual, 4, 12, 3116, &p, F32FromBits(0x3FC00001u) /* ~1.5 */);
    s.Add(ChainCase("full-quantized-residual-every-dtype",
                    "A link whose weights are residual-quantized against the keyframe (parent-1.ckz): "
                    "F32 (4-bit, special reference values: NaN with payload, infinities, -0, "
                    "subnormals, the largest finite), F16 (3-bit, rounded into f16), BF16 (1-bit, one "
                    "centre), F64 (5-bit, binary64 sums); 'm' Direct; 'v' a Residual with "
                    "reference_scale 0x3FC00001 (pruned elements are reference × scale). The I64 "
                    "'n' is coded losslessly. Packed indices in 40-byte chunks (so streams of odd "
                    "lengths with zero padding bits).",
                    {{p, Opt(StreamCodec::kStored, false, 40)},
                     {l, IndexOpt(StreamCodec::kPacked, 40)}},
                    {"quant:residual", "quant:direct", "quant:scale", "quant:special-reference"}));
  }
  {
    // Depth 2: the second link's reference is the first link's reconstruction.
    Ckpt p = QuantParent(3200);
    Ckpt l1 = Next(p, 3201), l2;
    Quantize(l1, "w32", QuantKind::kResidual, 4, 15, 3211, &p);
    Quantize(l1, "w16", QuantKind::kResidual, 4, 15, 3212, &p);
    l2 = Next(l1, 3202);
    for (T& t : l2.tensors) t.quant.reset();
    Quantize(l2, "w32", QuantKind::kResidual, 4, 15, 3221, &l1);
    Quantize(l2, "w16", QuantKind::kResidual, 6, 40, 3222, &l1);
    s.Add(ChainCase("full-quantized-chain-depth2",
                    "Two quantized links: input.ckz -> parent-1.ckz (quantized) -> parent-2.ckz "
                    "(keyframe). Each residual is added to the parent's DECODED tensor (the "
                    "closed loop). zstd-compressed index streams, 64-byte chunks.",
                    {{p, Opt(StreamCodec::kZstd, false, 64)},
                     {l1, IndexOpt(StreamCodec::kZstd, 64)},
                     {l2, IndexOpt(StreamCodec::kZstd, 64)}},
                    {"quant:residual"}));
  }
  {
    // Spec 7.6 step 3's two roundings (round32, then into F16/BF16), told apart from one
    // rounding of the exact value, plus reference_scale != 1 for F16, BF16 and F64.
    const auto p2 = [](int e) { return std::ldexp(1.0, e); };
    const float c16 = ExactF32(p2(-11) + p2(-34));             // 0x3A000001
    const float c16d = ExactF32(p2(-11) - p2(-35));            // 0x39FFFFFF
    const float c16s = ExactF32(p2(-11) - p2(-23) + p2(-35));  // 0x39FFF001
    const float cbf = ExactF32(p2(-8) + p2(-30));              // 0x3B800002
    const float cbfd = ExactF32(p2(-8) - p2(-32));             // 0x3B7FFFFF
    const float cbfs = ExactF32(p2(-8) - p2(-23) + p2(-32));   // 0x3B7FFE01
    const float g = F32FromBits(0x3FC00001u);                  // 1.5 + 2^-23
    const float g64 = F32FromBits(0x3F8CCCCDu);                // ~1.1
    Ckpt p = Single({MakeT("h", DType::kF16, {6, 8}, 3401, Role::kWeight),
                     MakeT("hs", DType::kF16, {6, 8}, 3402, Role::kWeight),
                     MakeT("b", DType::kBF16, {5, 8}, 3403, Role::kWeight),
                     MakeT("bs", DType::kBF16, {5, 8}, 3404, Role::kMoment2),
                     MakeT("ds", DType::kF64, {4, 5}, 3405, Role::kMoment2)});
    p.step = 600;
    auto set = [&](const std::string& name, std::vector<uint16_t> v) {
      T& t = p.tensors[p.Index(name)];
      for (size_t i = 0; i < v.size(); ++i) StoreElem(t.bytes.data() + 2 * i, 2, v[i]);
    };
    // References: +-1.0 and 1 + 2^-10 (F16), +-1.0 and 1 + 2^-7 (BF16).
    set("h", {0x3C00, 0xBC00, 0x3C01, 0x3C00});
    set("hs", {0x3C00, 0xBC00, 0x3C00});
    set("b", {0x3F80, 0xBF80, 0x3F81, 0x3F80});
    set("bs", {0x3F80, 0xBF80, 0x3F80});
    Ckpt l = Next(p, 3406);
    l.step = 620;
    // Codebooks: seeded centres, then the constructed ones (unsorted as a whole); indices
    // seeded, with the first elements pointing at the constructed centres.
    auto indices = [](uint64_t n, size_t centres, uint64_t seed, std::vector<uint8_t> head) {
      Rng r(seed);
      Bytes ix(n);
      for (uint64_t i = 0; i < n; ++i)
        ix[i] = i < head.size() ? head[i] : uint8_t(r.Next() % (centres + 1));
      return ix;
    };
    auto book = [](size_t n, uint64_t seed, std::vector<float> extra) {
      std::vector<float> c = Codebook(n, seed);
      c.insert(c.end(), extra.begin(), extra.end());
      return c;
    };
    // h: 3 seeded + {c16, -c16, c16d} = 6 centres (indices 4, 5, 6), 3 bits, g = 1.
    QuantizeCentres(l, "h", QuantKind::kResidual, 3, book(3, 3411, {c16, -c16, c16d}), &p, 1.0f,
                    indices(48, 6, 3412, {4, 5, 6, 0}));
    // hs: 4 seeded + {c16s, -c16s} (indices 5, 6), 3 bits, g = 0x3FC00001.
    QuantizeCentres(l, "hs", QuantKind::kResidual, 3, book(4, 3413, {c16s, -c16s}), &p, g,
                    indices(48, 6, 3414, {5, 6, 0}));
    // b: 4 seeded + {cbf, -cbf, cbfd} (indices 5, 6, 7), 3 bits, g = 1.
    QuantizeCentres(l, "b", QuantKind::kResidual, 3, book(4, 3415, {cbf, -cbf, cbfd}), &p, 1.0f,
                    indices(40, 7, 3416, {5, 6, 7, 0}));
    // bs: 9 seeded + {cbfs, -cbfs} (indices 10, 11), 4 bits, g = 0x3FC00001.
    QuantizeCentres(l, "bs", QuantKind::kResidual, 4, book(9, 3417, {cbfs, -cbfs}), &p, g,
                    indices(40, 11, 3418, {10, 11, 0}));
    // ds: 11 seeded centres, 4 bits, g = 0x3F8CCCCD.
    QuantizeCentres(l, "ds", QuantKind::kResidual, 4, Codebook(11, 3419), &p, g64,
                    indices(20, 11, 3420, {0}));
    // The generator's own arithmetic agrees with the writer's reconstruction, and a decoder
    // that rounds once (the binary64 path) gets the constructed elements wrong: h's 0..2, hs's
    // 0..1, b's 0..2, bs's 0..1.
    const size_t mh = DoubleRoundingMisses(l.tensors[l.Index("h")], p);
    const size_t mhs = DoubleRoundingMisses(l.tensors[l.Index("hs")], p);
    const size_t mb = DoubleRoundingMisses(l.tensors[l.Index("b")], p);
    const size_t mbs = DoubleRoundingMisses(l.tensors[l.Index("bs")], p);
    DoubleRoundingMisses(l.tensors[l.Index("ds")], p);
    Check(mh >= 3 && mhs >= 2 && mb >= 3 && mbs >= 2,
          "double rounding: single rounding would give the same bytes (" + std::to_string(mh) +
              ", " + std::to_string(mhs) + ", " + std::to_string(mb) + ", " +
              std::to_string(mbs) + ")");
    auto bits16 = [&](const std::string& name, size_t i) {
      return Hex(l.tensors[l.Index(name)].bytes.data() + 2 * i, 2);
    };
    Check(bits16("h", 0) == "003c" && bits16("h", 1) == "00bc" && bits16("h", 2) == "023c" &&
              bits16("hs", 0) == "003e" && bits16("b", 0) == "803f" && bits16("b", 2) == "823f" &&
              bits16("bs", 0) == "c03f",
          "double rounding: the constructed elements");
    s.Add(ChainCase(
        "full-quantized-residual-double-rounding-and-scales",
        "Spec 7.6 step 3: s = round32(round32(a x g) + c), then s rounded a second time into F16 "
        "or BF16 (ties to even); NOT the exact a x g + c rounded once. A link (input.ckz) of the "
        "keyframe parent-1.ckz with five Residual tensors, packed indices. 'h' (F16, g = 1, "
        "codebook of 6 unsorted centres): element 0 is reference 1.0 (0x3C00) + centre "
        "2^-11 + 2^-34 (0x3A000001): round32 gives 1 + 2^-11, a tie, so F16 0x3C00 (single "
        "rounding: 0x3C01); element 1 is its negative (0xBC00; single: 0xBC01); element 2 is "
        "1 + 2^-10 (0x3C01) + (2^-11 - 2^-35) (0x39FFFFFF): round32 ties up to 1 + 3x2^-11, "
        "so 0x3C02 (single: 0x3C01); element 3 is pruned (index 0, g = 1: the reference bit for "
        "bit). 'hs' (F16, reference_scale 0x3FC00001 = 1.5 + 2^-23): 1.0 x g = 0x3FC00001, "
        "+ (2^-11 - 2^-23 + 2^-35) (0x39FFF001) rounds in binary32 to the tie 1.5 + 2^-11, "
        "so 0x3E00 (single: 0x3E01); element 1 its negative; element 2 pruned, so "
        "round16(round32(1.0 x g)) = 0x3E00. 'b' (BF16, g = 1, 7 centres): 1.0 (0x3F80) + "
        "(2^-8 + 2^-30) gives 0x3F80 (single: 0x3F81), its negative, and 1 + 2^-7 (0x3F81) + "
        "(2^-8 - 2^-32) gives 0x3F82 (single: 0x3F81). 'bs' (BF16, g = 0x3FC00001, 11 "
        "centres): 1.0 x g + (2^-8 - 2^-23 + 2^-32) gives 0x3FC0 (single: 0x3FC1), and its "
        "negative. 'ds' (F64, g = 0x3F8CCCCD, 11 centres): round64(a x g) then round64(+ c). "
        "The other elements have seeded references, centres and indices.",
        {{p, Opt(StreamCodec::kStored, false)}, {l, IndexOpt(StreamCodec::kPacked)}},
        {"quant:residual", "quant:scale", "quant:double-rounding"}));
  }
}

void QuantizedInvalid(Suite& s) {
  Ckpt p = QuantParent(3300);
  Ckpt l = Next(p, 3301);
  Quantize(l, "w32", QuantKind::kResidual, 4, 15, 3311, &p);
  Quantize(l, "m", QuantKind::kDirect, 4, 15, 3312, nullptr);
  const Encoded parent = Encode(p, Opt(StreamCodec::kStored, false, 64));
  const Encoded link = Encode(l, IndexOpt(StreamCodec::kPacked, 64),
                              LinkTo(parent, p, "parent-1.ckz", 1), &p);
  const size_t w32 = l.Index("w32"), m = l.Index("m");
  auto header_case = [&](const std::string& name, const std::string& rule, ErrorCode error,
                         const std::string& description, std::function<void(Archive&)> edit) {
    Model x = FromFile(link.bytes);
    x.edit = std::move(edit);
    return ChainInvalid(name, rule, error, description, Assemble(x), parent.bytes);
  };
  const std::string no_kind =
      "7.6 and 7.9 reconstruct the kinds 1 to 5 only: there is no value for an index of "
      "another kind";
  s.Add(header_case("invalid-quant-kind-zero", "Q2", ErrorCode::kFieldOutOfRange,
                    "'w32' has a quantization of kind 0 (Invalid).",
                    [&](Archive& a) { a.tensors[w32].quantization->kind = QuantKind(0); })
            .ByConstruction(no_kind));
  s.Add(header_case("invalid-quant-kind-unknown", "Q2", ErrorCode::kFieldOutOfRange,
                    "'w32' has a quantization of kind 6 (not defined; 3 to 5 are the level "
                    "kinds of 0.7).",
                    [&](Archive& a) { a.tensors[w32].quantization->kind = QuantKind(6); })
            .ByConstruction(no_kind));
  s.Add(header_case("invalid-quant-bits-zero", "Q3", ErrorCode::kFieldOutOfRange,
                    "'m' has 0-bit indices.",
                    [&](Archive& a) { a.tensors[m].quantization->bits = 0; })
            .ByConstruction("0-bit indices address no centre, so Q4 (1 to 2^bits - 1 centres) "
                            "fails as well, with the same error"));
  s.Add(header_case("invalid-quant-bits-nine", "Q3", ErrorCode::kFieldOutOfRange,
                    "'m' has 9-bit indices.",
                    [&](Archive& a) { a.tensors[m].quantization->bits = 9; })
            .WithoutRuleFails(ErrorCode::kChunkDecodeFailed));
  s.Add(header_case("invalid-quant-codebook-empty", "Q4", ErrorCode::kFieldOutOfRange,
                    "'m' has an empty codebook.",
                    [&](Archive& a) { a.tensors[m].quantization->codebook.clear(); })
            .WithoutRuleFails(ErrorCode::kCodebookIndex));
  s.Add(header_case("invalid-quant-codebook-too-long", "Q4", ErrorCode::kFieldOutOfRange,
                    "'m' has 4-bit indices and 16 centres (at most 15 are addressable).",
                    [&](Archive& a) { a.tensors[m].quantization->codebook.push_back(0.5f); }));
  s.Add(header_case("invalid-quant-codebook-nan", "Q4", ErrorCode::kFieldOutOfRange,
                    "A centre of 'w32' is a NaN.", [&](Archive& a) {
                      a.tensors[w32].quantization->codebook[3] = F32FromBits(0x7FC00000u);
                    })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-quant-codebook-infinity", "Q4", ErrorCode::kFieldOutOfRange,
                    "A centre of 'w32' is +infinity.", [&](Archive& a) {
                      a.tensors[w32].quantization->codebook[0] = F32FromBits(0x7F800000u);
                    })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-quant-integer-dtype", "Q5", ErrorCode::kFieldOutOfRange,
                    "The I64 scalar 'n' carries a quantization.", [&](Archive& a) {
                      a.tensors[l.Index("n")].quantization = a.tensors[m].quantization;
                    })
            .ByConstruction("7.6 stores centres into floating dtypes only: an integer tensor "
                            "has no reconstruction"));
  s.Add(header_case("invalid-quant-with-predictor", "Q6", ErrorCode::kFieldOutOfRange,
                    "'w32' is quantized and also names the XorRef predictor.",
                    [&](Archive& a) { a.tensors[w32].predictor = Predictor::kXorRef; }));
  s.Add(header_case("invalid-quant-with-byte-planes", "Q6", ErrorCode::kFieldOutOfRange,
                    "'m' is quantized and also has byte planes.",
                    [&](Archive& a) { a.tensors[m].byte_planes = true; })
            .WithoutRuleFails(ErrorCode::kChunkMalformed));
  s.Add(header_case("invalid-quant-scale-zero", "Q8", ErrorCode::kFieldOutOfRange,
                    "'w32' has reference_scale 0.",
                    [&](Archive& a) { a.tensors[w32].quantization->reference_scale = 0.0f; })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-quant-scale-negative", "Q8", ErrorCode::kFieldOutOfRange,
                    "'w32' has reference_scale -1.",
                    [&](Archive& a) { a.tensors[w32].quantization->reference_scale = -1.0f; })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-quant-scale-nan", "Q8", ErrorCode::kFieldOutOfRange,
                    "'w32' has a NaN reference_scale.", [&](Archive& a) {
                      a.tensors[w32].quantization->reference_scale = F32FromBits(0x7FC00000u);
                    })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-quant-scale-infinity", "Q8", ErrorCode::kFieldOutOfRange,
                    "'w32' has reference_scale +infinity (> 0, but not finite).",
                    [&](Archive& a) {
                      a.tensors[w32].quantization->reference_scale = F32FromBits(0x7F800000u);
                    })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-quant-direct-scaled", "Q8", ErrorCode::kFieldOutOfRange,
                    "'m' is Direct with reference_scale 2 (a Direct quantization has no reference).",
                    [&](Archive& a) { a.tensors[m].quantization->reference_scale = 2.0f; }));
  {
    // Rule Q1, both ways.
    Model x = FromFile(link.bytes);
    x.required &= ~kFeatureQuantized;
    s.Add(ChainInvalid("invalid-quant-feature-bit-clear", "Q1", ErrorCode::kFieldOutOfRange,
                       "A link with quantized tensors whose required feature bit 1 (quantized) "
                       "is clear.",
                       Assemble(x), parent.bytes));
    Model k = FromFile(BaseFile());
    k.required |= kFeatureQuantized;
    s.Add(Invalid("invalid-quant-feature-bit-set", "full", "Q1", ErrorCode::kFieldOutOfRange,
                  "A keyframe without any quantized tensor whose required feature bit 1 "
                  "(quantized) is set.",
                  Assemble(k)));
  }
  {
    // A residual in a keyframe: the link removed (and the reference-chain feature bit).
    Model x = FromFile(link.bytes);
    x.required &= ~uint64_t{1};
    x.edit = [](Archive& a) { a.link.reset(); };
    s.Add(Invalid("invalid-quant-residual-in-keyframe", "full", "Q7", ErrorCode::kBadLink,
                  "A keyframe (no link) with a Residual tensor 'w32': there is no reference.",
                  Assemble(x))
              .WithoutRuleFails(ErrorCode::kReferenceRequired));
  }
  {
    // Index values past the codebook: 'm' keeps 4-bit indices but its codebook is cut to 3
    // centres, so indices 4..15 in its stream point past it.
    Model x = FromFile(link.bytes);
    x.edit = [&](Archive& a) { a.tensors[m].quantization->codebook.resize(3); };
    s.Add(ChainInvalid("invalid-quant-index-beyond-codebook", "C6", ErrorCode::kCodebookIndex,
                       "'m' has 15-value indices in its stream but only 3 centres: an index of 4 "
                       "or more must be rejected (not clamped, not read past the codebook).",
                       Assemble(x), parent.bytes));
  }
  {
    // A packed stream with a non-zero padding bit: the last byte of the first chunk of 'm' has
    // its high nibble unused when the chunk holds an odd number of indices.
    Ckpt lo = l;
    T& t = lo.tensors[m];
    t.shape = {23};
    t.owner = -1;  // no longer the shape of its weight
    t.role = Role::kOther;
    t.bytes.resize(23 * 4);
    t.indices.resize(23);
    lo.files[0].tensors = {};
    for (const T& u : lo.tensors) lo.files[0].tensors.push_back(u.name);
    const Encoded odd = Encode(lo, IndexOpt(StreamCodec::kPacked, 1u << 20),
                               LinkTo(parent, p, "parent-1.ckz", 1), &p);
    Model x = FromFile(odd.bytes);
    Bytes& chunk = x.stored[m][0];
    Check(chunk[0] == uint8_t(StreamCodec::kPacked), "packed stream expected");
    chunk.back() |= 0x80;
    s.Add(ChainInvalid("invalid-quant-packed-padding", "C2", ErrorCode::kChunkDecodeFailed,
                       "'m' has 23 4-bit indices, packed into 12 bytes; the unused high nibble of "
                       "the last byte has a bit set.",
                       Assemble(x), parent.bytes));
  }
}

}  // namespace ckz::vectors
