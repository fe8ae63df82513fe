// Level quantization (spec 7.9, coding tool 6, format 0.7), full profile. Every valid file is
// checked against this file's own reading of 7.9 — a cml decoder (7.7.1, 7.7.2, 7.8.1, 7.9.3)
// and the step and value arithmetic (7.9.1, 7.9.2), written from the spec apart from the
// library — and against readings a decoder could get wrong (states or neighbours across
// chunks, rows ignored, steps from this file, exponents of F16 subnormals, d / 2 truncated,
// levels of another family as context), which must decode other levels or values.
#include "vectors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "common/bytes.h"
#include "common/level_model.h"
#include "common/quantize.h"
#include "format/chunk_layout.h"
#include "spec_range_decoder.h"

namespace ckz::vectors {
namespace {

// ------------------------------------------------------------------------------------------
// Spec 7.9.3 from the spec: the binarization and contexts of the cml stream, over the range
// decoder of spec_range_decoder.h.

struct CmlStates {
  State zero[27], sign[27], unary[4][14], escape[24];
};

// How a decoder reads 7.9.3; the defaults are the spec's. The others are misreadings that the
// cases must catch.
struct Reading {
  bool fresh_states = true;      // every state fresh at the start of each chunk
  bool chunk_neighbours = true;  // left and up only from the chunk's own levels
  bool rows = true;              // R = the last dimension of a tensor of >= 2 dimensions
  bool finish_code = true;       // finish checks code < range (7.7.1), not only the length
};

// The range decoder's state just before a direct bit (7.8.1) of chunk `chunk`.
struct DirectState {
  size_t chunk;
  uint32_t code, range;
  uint64_t consumed;
};

// The contexts coded, over all the valid cases: each must be used somewhere.
struct ContextUse {
  std::set<int> zero, sign, unary, escape;
};

enum class Outcome { kOk, kEscapePrefix, kEscapeMagnitude, kFinish };

struct SpecLevels {
  Outcome outcome = Outcome::kOk;
  std::vector<int32_t> levels;
};

int Sign(int64_t v) { return v == 0 ? 0 : v > 0 ? 1 : 2; }
uint64_t Abs(int64_t v) { return uint64_t(v < 0 ? -v : v); }

// The levels of tensor `name` of `file`, decoded chunk by chunk from its cml streams with the
// parent's and the aux tensor's levels (of the whole tensor; null: none).
SpecLevels SpecDecode(const Bytes& file, const std::string& name, const int32_t* parent,
                      const int32_t* aux, const Reading& reading = {}, ContextUse* use = nullptr,
                      std::vector<DirectState>* directs = nullptr) {
  const Archive a = Must(ParseArchive(ByteSpan(file)), "SpecDecode");
  const auto index = a.FindTensor(name);
  Check(index.has_value(), "SpecDecode: no tensor '" + name + "'");
  const TensorInfo& t = a.tensors[*index];
  const uint64_t w = DTypeSize(t.dtype);
  const uint64_t row = reading.rows && t.shape.size() >= 2 ? t.shape.back() : 0;
  SpecLevels out;
  out.levels.assign(t.num_elements, 0);
  int32_t* q = out.levels.data();
  CmlStates st;
  for (size_t chunk = 0; chunk < t.chunks.size(); ++chunk) {
    const ChunkInfo& ch = t.chunks[chunk];
    // One directory entry: codec 5 and the stream's length (7.1).
    Check(file[ch.offset] == 5 && LoadLE32(file.data() + ch.offset + 1) + 5 == ch.stored_length,
          "SpecDecode: '" + name + "' has a chunk that is not one cml stream");
    SpecRangeDecoder rc(file.data() + ch.offset + 5, ch.stored_length - 5);
    if (reading.fresh_states) st = CmlStates{};
    const uint64_t f = ch.raw_offset / w, count = ch.raw_length / w;
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t g = f + i;
      const uint64_t c = row ? g % row : 0;
      const uint64_t back = reading.chunk_neighbours ? i : g;  // how far back neighbours reach
      const int64_t left = back >= 1 && (row == 0 || c != 0) ? q[g - 1] : 0;
      const int64_t up = row && back >= row ? q[g - row] : 0;
      const int64_t p = parent ? parent[g] : 0, x = aux ? aux[g] : 0;
      const int nb = (left != 0) + (up != 0);
      const int pc = parent ? 1 + (p != 0) : 0, ac = aux ? 1 + (x != 0) : 0;
      const int zc = (pc * 3 + nb) * 3 + ac;
      if (use) use->zero.insert(zc);
      if (rc.Bit(st.zero[zc]) == 0) {
        q[g] = 0;
        continue;
      }
      const int sc = (Sign(p) * 3 + Sign(x)) * 3 + Sign(left);
      if (use) use->sign.insert(sc);
      const bool negative = rc.Bit(st.sign[sc]) == 1;
      const uint64_t sum = Abs(left) + Abs(up) + 2 * Abs(p);
      const int mc = sum == 0 ? 0 : sum <= 2 ? 1 : sum <= 6 ? 2 : 3;
      uint64_t m = 1;
      while (m <= 14) {
        if (use) use->unary.insert(mc * 14 + int(m) - 1);
        if (rc.Bit(st.unary[mc][m - 1]) == 0) break;
        ++m;
      }
      if (m == 15) {
        uint32_t k = 0;
        while (true) {
          if (use) use->escape.insert(int(std::min(k, 23u)));
          if (rc.Bit(st.escape[std::min(k, 23u)]) == 0) break;
          if (++k > 23) {
            out.outcome = Outcome::kEscapePrefix;
            return out;
          }
        }
        uint64_t low = 0;
        for (uint32_t b = 0; b < k; ++b) {
          if (directs) directs->push_back({chunk, rc.code(), rc.range(), rc.consumed()});
          low = 2 * low + uint64_t(rc.Direct());
        }
        m = 15 + (uint64_t{1} << k) - 1 + low;
        if (m > uint64_t(kMaxLevel)) {
          out.outcome = Outcome::kEscapeMagnitude;
          return out;
        }
      }
      q[g] = negative ? -int32_t(m) : int32_t(m);
    }
    if (!rc.Finish(reading.finish_code)) {
      out.outcome = Outcome::kFinish;
      return out;
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// Spec 7.9.1 and 7.9.2 from the spec (binary32 products and sums computed exactly in binary64
// and rounded once, LevelLog's scaling by scalbn, F64's by long double: other paths than the
// library's).

// F[j]: 2^(j/16) rounded to the nearest binary32, from a long-double root, checked against
// the library's table (the spec's).
float Fraction(int j) {
  const float f = float(std::exp2l((long double)j / 16));
  Check(F32Bits(f) == kLevelLogFractions[j], "LevelLog fraction " + std::to_string(j));
  return f;
}

// How a reading of 7.9.1/7.9.2 may differ from the spec's (all false: the spec's).
struct ValueReading {
  bool steps_from_this_file = false;  // the step source's values in this file, not the parent's
  bool f16_subnormal_is_zero = false; // an F16 subnormal step source taken as exponent -1000
  bool truncate = false;              // slope x d / 2 rounded toward zero
  bool f64_as_binary32 = false;       // LevelDirect F64 rounded to binary32
  bool exponent_raw = false;          // e_i = E - bias for zeros and infinities too (no +-1000)
  bool log_single = false;            // LevelLog: b x F[j] x 2^n rounded once (t not rounded)
  bool f64_log_zero_binary32 = false; // F64 LevelLog, zero reference: round32(q x D) widened
};

// 7.9.1's e_i of a step source element (`raw`: the misreading without the special cases).
int32_t SpecExponent(DType dtype, const uint8_t* p, bool raw = false) {
  if (dtype == DType::kF64) {
    const uint64_t e = (LoadElem(p, 8) >> 52) & 0x7FF;
    if (raw) return int32_t(e) - 1023;
    return e == 0 ? -1000 : e == 0x7FF ? 1000 : int32_t(e) - 1023;
  }
  if (dtype == DType::kF16) {  // widened: a subnormal F16 is a normal binary32
    const uint32_t h = uint32_t(LoadElem(p, 2)), e = (h >> 10) & 0x1F, f = h & 0x3FF;
    if (e == 0x1F) return raw ? 128 : 1000;
    if (e != 0) return int32_t(e) - 15;
    if (f == 0) return raw ? -127 : -1000;
    int top = 9;
    while (!(f >> top)) --top;
    return top - 24;
  }
  const uint32_t b = dtype == DType::kF32 ? uint32_t(LoadElem(p, 4)) : uint32_t(LoadElem(p, 2)) << 16;
  const uint32_t e = (b >> 23) & 0xFF;
  if (raw) return int32_t(e) - 127;
  return e == 0 ? -1000 : e == 0xFF ? 1000 : int32_t(e) - 127;
}

// 7.9.1's s_i; `floor` false: a misreading that rounds slope x d / 2 toward zero.
int32_t SpecShift(const QuantizationInfo& q, int32_t e, bool floor = true) {
  const double half = double(q.step_slope) * (e - q.step_center) / 2;
  const int32_t s = int32_t(floor ? std::floor(half) : std::trunc(half));
  return std::clamp(s, -int32_t(q.step_limit), int32_t(q.step_limit));
}

// D_i = step x 2^s, which rule Q9 makes a normal binary32.
double SpecStep(const QuantizationInfo& q, int32_t shift) {
  const double d = std::ldexp(double(q.step), shift);
  Check(double(float(d)) == d && std::isnormal(float(d)), "a step outside the normal range");
  return d;
}

bool IsNaN(DType dtype, uint64_t b) {
  switch (dtype) {
    case DType::kF64: return (b & 0x7FF0000000000000ull) == 0x7FF0000000000000ull && (b << 12);
    case DType::kF32: return (b & 0x7F800000u) == 0x7F800000u && (b & 0x7FFFFF);
    case DType::kF16: return (b & 0x7C00) == 0x7C00 && (b & 0x3FF);
    default: return (b & 0x7F80) == 0x7F80 && (b & 0x7F);
  }
}

// 7.6's "stored into the dtype" for a binary32 value that is not a NaN.
uint64_t Store(DType dtype, float v) {
  switch (dtype) {
    case DType::kF32: return F32Bits(v);
    case DType::kF16: return RoundF16(double(v));
    default: return RoundBF16(double(v));
  }
}

// LevelLog's exponent of a level: q / 2^k = n + j / 16.
void LogExponent(int32_t q, int k, int64_t* n, int* j) {
  if (k > 0) {
    *n = int64_t(std::floor(double(q) / double(1 << k)));
    *j = int(16 * (q - *n * (1 << k)) / (1 << k));
  } else {
    *n = int64_t(q) * (int64_t{1} << -k);
    *j = 0;
  }
}

// Element i's bits from its level, its step `d` and, for the residual kinds, its reference
// element `r` (bits), as `reading` has them.
uint64_t SpecValue(const QuantizationInfo& q, DType dtype, int32_t level, double d, uint64_t r,
                   const ValueReading& reading = {}) {
  const bool unit = F32Bits(q.reference_scale) == 0x3F800000u;
  const double g = double(q.reference_scale);
  int64_t n = 0;
  int j = 0;
  if (q.kind == QuantKind::kLevelLog) LogExponent(level, q.log_unit, &n, &j);
  if (dtype == DType::kF64) {
    double s;
    if (q.kind == QuantKind::kLevelDirect) {
      if (level == 0) return 0;
      s = reading.f64_as_binary32 ? double(float(level * d)) : level * d;  // exact in binary64
    } else {
      if (unit && level == 0) return r;
      if (IsNaN(dtype, r)) return (r & (uint64_t{1} << 63)) | 0x7FF8000000000000ull;
      double a;
      std::memcpy(&a, &r, 8);
      const double b = unit ? a : a * g;
      if (level == 0) s = b;
      else if (q.kind == QuantKind::kLevelResidual) s = b + level * d;
      else if (b == 0) s = reading.f64_log_zero_binary32 ? double(float(level * d)) : level * d;
      else s = double((long double)(b * double(Fraction(j))) * std::ldexp(1.0L, int(std::clamp<int64_t>(n, -20000, 20000))));
    }
    uint64_t bits;
    std::memcpy(&bits, &s, 8);
    return bits;
  }
  if (q.kind == QuantKind::kLevelDirect) return level == 0 ? 0 : Store(dtype, float(level * d));
  if (unit && level == 0) return r;
  if (IsNaN(dtype, r)) {
    const uint64_t sign = dtype == DType::kF32 ? r & 0x80000000u : r & 0x8000;
    return sign | (dtype == DType::kF32 ? 0x7FC00000u : dtype == DType::kF16 ? 0x7E00 : 0x7FC0);
  }
  const float a = dtype == DType::kF32  ? F32FromBits(uint32_t(r))
                  : dtype == DType::kF16 ? float(WidenF16(uint16_t(r)))
                                         : float(WidenBF16(uint16_t(r)));
  const float b = unit ? a : float(double(a) * g);
  float s = b;
  if (level != 0) {
    if (q.kind == QuantKind::kLevelResidual) s = float(double(b) + double(float(level * d)));
    else if (b == 0) s = float(level * d);
    else if (reading.log_single)  // the exact product (48 bits: exact in binary64) rounded once
      s = float(std::ldexp(double(b) * double(Fraction(j)), int(std::clamp<int64_t>(n, -2000, 2000))));
    else s = std::scalbn(float(double(b) * double(Fraction(j))), int(std::clamp<int64_t>(n, -100000, 100000)));
  }
  return Store(dtype, s);
}

// ------------------------------------------------------------------------------------------
// Checking a checkpoint's level tensors with the above.

// Tensor t's elements by 7.9.1/7.9.2 as `reading` has them (t of `c`, a link of `parent`).
Bytes SpecValues(const Ckpt& c, const Ckpt* parent, const T& t, const ValueReading& reading = {}) {
  const QuantizationInfo& q = *t.quant;
  const size_t w = DTypeSize(t.dtype);
  const T* u = q.step_source >= 0 ? &c.tensors[size_t(q.step_source)] : nullptr;
  const T* su = u ? (reading.steps_from_this_file ? u : parent->Find(u->name)) : nullptr;
  const T* r = q.NeedsReference() ? parent->Find(t.name) : nullptr;
  Bytes out(t.bytes.size());
  for (size_t i = 0; i < t.levels.size(); ++i) {
    int32_t shift = 0;
    if (su) {
      const uint8_t* p = su->bytes.data() + i * DTypeSize(su->dtype);
      int32_t e = SpecExponent(su->dtype, p, reading.exponent_raw);
      if (reading.f16_subnormal_is_zero && su->dtype == DType::kF16 && ((LoadElem(p, 2) >> 10) & 0x1F) == 0)
        e = -1000;
      shift = SpecShift(q, e, !reading.truncate);
    }
    const uint64_t ref = r ? LoadElem(r->bytes.data() + i * w, w) : 0;
    StoreElem(out.data() + i * w, w,
              SpecValue(q, t.dtype, t.levels[i], SpecStep(q, shift), ref, reading));
  }
  return out;
}

// Checks every level tensor of `c`, written as `file` (a link of `parent`, or a keyframe):
// its cml streams decode to its levels and its elements are 7.9.2's values.
void CheckLevels(const std::string& what, const Ckpt& c, const Ckpt* parent, const Bytes& file,
                 ContextUse* use) {
  for (const T& t : c.tensors) {
    if (!t.HasLevels()) continue;
    const SpecLevels got = SpecDecode(file, t.name, SpecParentLevels(parent, t),
                                      SpecAuxLevels(c, parent, t), {}, use);
    Check(got.outcome == Outcome::kOk && got.levels == t.levels,
          what + ": '" + t.name + "': the cml streams do not decode (7.9.3) to its levels");
    Check(SpecValues(c, parent, t) == t.bytes,
          what + ": '" + t.name + "': the values differ from spec 7.9.2's");
  }
}

// A valid chain (ChainCase) whose every link is checked by CheckLevels first.
Case LevelChain(const std::string& name, const std::string& description,
                const std::vector<Level>& levels, std::vector<std::string> features,
                ContextUse* use) {
  Case c = ChainCase(name, description, levels, std::move(features));
  const size_t n = levels.size();
  for (size_t i = 0; i < n; ++i)  // level i is files[n - 1 - i] (input.ckz, parent-1, ...)
    CheckLevels(name + " level " + std::to_string(i), levels[i].ckpt,
                i ? &levels[i - 1].ckpt : nullptr, c.files[n - 1 - i].second, use);
  return c;
}

// The file of level `i` of a case made by LevelChain from `n` levels.
const Bytes& LevelFile(const Case& c, size_t n, size_t i) { return c.files[n - 1 - i].second; }

// ------------------------------------------------------------------------------------------
// Data.

QuantizationInfo Sourced(QuantizationInfo q, int32_t source, int8_t slope, int32_t center,
                         uint8_t limit) {
  q.step_source = source;
  q.step_slope = slope;
  q.step_center = center;
  q.step_limit = limit;
  return q;
}

// Positive values of `dtype` with unbiased exponents emin..emax, random mantissas.
Bytes Positive(DType dtype, uint64_t n, uint64_t seed, int emin, int emax) {
  Rng r(seed);
  const size_t w = DTypeSize(dtype);
  Bytes out(n * w);
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t e = uint64_t(emin + int(r.Below(uint64_t(emax - emin + 1))));
    uint64_t v = 0;
    switch (dtype) {
      case DType::kF64: v = (e + 1023) << 52 | (r.Next() & ((uint64_t{1} << 52) - 1)); break;
      case DType::kF32: v = (e + 127) << 23 | (r.Next() & 0x7FFFFF); break;
      case DType::kF16: v = (e + 15) << 10 | (r.Next() & 0x3FF); break;
      default: v = (e + 127) << 7 | (r.Next() & 0x7F); break;
    }
    StoreElem(out.data() + i * w, w, v);
  }
  return out;
}

void Put(Ckpt& c, const std::string& name, std::vector<uint64_t> elems) {
  T& t = c.tensors[c.Index(name)];
  const size_t w = DTypeSize(t.dtype);
  for (size_t i = 0; i < elems.size(); ++i) StoreElem(t.bytes.data() + i * w, w, elems[i]);
}

// The levels of `t`'s elements with element `i` set to `v`.
std::vector<int32_t> With(std::vector<int32_t> levels, std::vector<std::pair<size_t, int32_t>> set) {
  for (const auto& [i, v] : set) levels[i] = v;
  return levels;
}

// Escape magnitudes with every prefix length k = 0..23 of 7.9.3 (the last one 2^24 - 1).
std::vector<int32_t> EscapeMagnitudes() {
  std::vector<int32_t> m;
  for (int k = 0; k < 23; ++k) m.push_back(14 + (1 << k) + ((1 << k) - 1) / 3);
  m.push_back(kMaxLevel);
  return m;
}

// A level q and a step whose exact product P lies just above the tie between 1 and the next
// value of a format with `sig` significant bits (F16 11, BF16 8): round32(P) is that tie, so
// stored into the format it rounds to even (1.0) while P rounded once goes up.
std::pair<int32_t, float> AboveTie(int sig) {
  const uint64_t tie = ((uint64_t{1} << sig) + 1) << (46 - sig);  // (1 + 2^-sig) x 2^46
  for (uint64_t q = (1u << 23) + 1; q < (1u << 24); q += 2) {
    const uint64_t m = tie / q + 1, p = q * m;
    if (m < (1u << 24) && p - tie < (uint64_t{1} << 22)) {
      const float step = ExactF32(std::ldexp(double(m), -46));
      Check(float(double(q) * step) == 1.0f + std::ldexp(1.0f, -sig) &&
                double(q) * step > 1.0 + std::ldexp(1.0, -sig),
            "AboveTie: the product");
      return {int32_t(q), step};
    }
  }
  Die("AboveTie: no level and step found");
}

}  // namespace

void LevelsValid(Suite& s) {
  ContextUse use;
  {
    // A keyframe 'w'/'w.m'/'w.v' and 'b'/'b.m'/'b.v' (an Adam weight with both moments, 2-D
    // and 1-D), then two links of level tensors.
    Ckpt k = Single({MakeT("w", DType::kF32, {16, 12}, 9001, Role::kWeight),
                     MakeT("w.m", DType::kF32, {16, 12}, 9002, Role::kMoment1, 0),
                     MakeT("w.v", DType::kF32, {16, 12}, 9003, Role::kMoment2, 0),
                     MakeT("b", DType::kF32, {100}, 9004, Role::kWeight),
                     MakeT("b.m", DType::kF32, {100}, 9005, Role::kMoment1, 3),
                     MakeT("b.v", DType::kF32, {100}, 9006, Role::kMoment2, 3),
                     MakeT("n", DType::kI64, {}, 9007)});
    k.step = 7000;
    k.tensors[2].bytes = Positive(DType::kF32, 192, 9013, -40, -4);
    k.tensors[5].bytes = Positive(DType::kF32, 100, 9016, -30, -6);
    // Special references (NaN with payload, infinities, -0, subnormals, the largest finite)
    // and step-source elements (zero, subnormal, infinity, NaN).
    Put(k, "w", {0x7FA00001u, 0xFF800000u, 0x7F800000u, 0x80000000u, 0x00000001u, 0x807FFFFFu,
                 0x7F7FFFFFu, 0xFFC00000u});
    Put(k, "w.v", {0x00000000u, 0x00000010u, 0x7F800000u, 0x7FC00000u, 0x80000000u,
                   0x807FFFFFu, 0x00800000u, 0x3F800000u});
    Put(k, "b.v", {0x00000000u, 0x00000001u, 0x7F800000u});
    Ckpt l1 = NextLossless(k, 9100);
    l1.step = 7100;
    auto set = [](Ckpt& l, const Ckpt& p, uint64_t seed, int8_t unit_w, int8_t unit_b) {
      const auto like = [&](const char* name) {
        const T* t = p.Find(name);
        return t && t->HasLevels() ? &t->levels : nullptr;
      };
      SetLevels(l, "w", LevelQuant(QuantKind::kLevelResidual, F32FromBits(0x39B00000u)),
                PlannerLevels(192, seed + 1, like("w")), &p);
      SetLevels(l, "w.m",
                Sourced(LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A800000u)), 2, 1, -20, 6),
                PlannerLevels(192, seed + 2, like("w.m")), &p);
      SetLevels(l, "w.v", LevelQuant(QuantKind::kLevelLog, F32FromBits(0x2F000000u), F32FromBits(0x3F880000u), unit_w),
                PlannerLevels(192, seed + 3, like("w.v")), &p);
      SetLevels(l, "b", LevelQuant(QuantKind::kLevelResidual, F32FromBits(0x3A100000u), F32FromBits(0x3F800001u)),
                PlannerLevels(100, seed + 4, like("b")), &p);
      SetLevels(l, "b.m",
                Sourced(LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3B000000u)), 5, -1, -16, 3),
                PlannerLevels(100, seed + 5, like("b.m")), &p);
      SetLevels(l, "b.v", LevelQuant(QuantKind::kLevelLog, F32FromBits(0x30000000u), 1.0f, unit_b),
                PlannerLevels(100, seed + 6, like("b.v")), &p);
    };
    set(l1, k, 9110, 2, -1);
    Ckpt l2 = NextLossless(l1, 9200);
    l2.step = 7200;
    set(l2, l1, 9210, 3, 0);
    const std::vector<Level> chain = {{k, Opt(StreamCodec::kStored, false)},
                                      {l1, IndexOpt(StreamCodec::kStored, 256)},
                                      {l2, IndexOpt(StreamCodec::kStored, 256)}};
    Case c = LevelChain(
        "full-levels-chain-depth2",
        "Level quantization (spec 7.9) along a chain: input.ckz -> parent-1.ckz -> parent-2.ckz "
        "(a lossless keyframe). Both links hold an Adam weight 'w' (F32 [16, 12]) with moments "
        "'w.m' and 'w.v', and 'b' (F32 [100], 1-D) with 'b.m' and 'b.v': the weights "
        "LevelResidual (reference + level x step; 'b' with reference_scale 0x3F800001), the "
        "first moments LevelDirect with step_source the second moment ('w.m' slope +1, "
        "step_center -20, step_limit 6; 'b.m' slope -1, center -16, limit 3: steps follow the "
        "PARENT's decoded v, clamped), the second moments LevelLog (reference x "
        "2^(level / 2^log_unit); 'w.v' reference_scale 0x3F880000, log_unit 2 in parent-1.ckz "
        "and 3 in input.ckz; 'b.v' log_unit -1 then 0). The keyframe's 'w' starts with a NaN "
        "with payload, -inf, +inf, -0, subnormals, the largest finite value and a negative "
        "quiet NaN (references of parent-1.ckz's residuals); its 'w.v' and 'b.v' with +0, "
        "subnormals, +inf, a NaN, -0 (step-source exponents -1000 and +1000; LevelLog "
        "references, zeros taking level x step). cml streams in 256-byte chunks: 'w' in chunks "
        "of 64 elements (rows of 12: chunks start mid-row, neighbours only inside a chunk), 'b' "
        "in 64 + 36 (R = 0). In input.ckz every level tensor has parent levels (7.9.3), the "
        "moments aux levels ('w.m' reads 'w', 'w.v' reads 'w.m'). The I64 'n' is lossless. "
        "Checked by the generator against its own decoder and arithmetic; a decoder that kept "
        "states or neighbours across chunks, ignored rows, took the step source from this file "
        "instead of the parent, or truncated slope x d / 2 toward zero gets levels or values "
        "wrong.",
        chain,
        {"quant:level-residual", "quant:level-direct", "quant:level-log", "levels:step-source",
         "levels:parent", "levels:aux", "levels:special-reference", "quant:scale"},
        &use);
    // The readings that must fail: on 'w' of input.ckz (2-D, 3 chunks) and 'b' (1-D, 2).
    const Bytes& in = LevelFile(c, 3, 2);
    for (const char* name : {"w", "b"}) {
      const T& t = l2.tensors[l2.Index(name)];
      const int32_t* p = l1.tensors[l1.Index(name)].levels.data();
      for (int r = 0; r < 3; ++r) {
        if (r == 2 && t.shape.size() < 2) continue;
        Reading bad;
        bad.fresh_states = r != 0;
        bad.chunk_neighbours = r != 1;
        bad.rows = r != 2;
        const SpecLevels got = SpecDecode(in, name, p, nullptr, bad);
        Check(got.outcome != Outcome::kOk || got.levels != t.levels,
              std::string("chain-depth2: misreading ") + std::to_string(r) + " of '" + name +
                  "' decodes the same levels");
      }
    }
    for (const char* name : {"w.m", "b.m"}) {
      const T& t = l2.tensors[l2.Index(name)];
      ValueReading here, trunc;
      here.steps_from_this_file = true;
      trunc.truncate = true;
      Check(SpecValues(l2, &l1, t, here) != t.bytes && SpecValues(l2, &l1, t, trunc) != t.bytes,
            std::string("chain-depth2: '") + name + "': misread steps give the same values");
    }
    s.Add(std::move(c));
  }
  {
    // (0.10) Moment aux levels: a keyframe and three links of level tensors, the last two
    // written with moment contexts (required feature bit 9).
    Ckpt k = Single({MakeT("w", DType::kF32, {8, 6}, 9031, Role::kWeight),
                     MakeT("w.m", DType::kF32, {8, 6}, 9032, Role::kMoment1, 0),
                     MakeT("w.v", DType::kF32, {8, 6}, 9033, Role::kMoment2, 0),
                     MakeT("b", DType::kF32, {20}, 9034, Role::kWeight),
                     MakeT("b.m", DType::kF32, {20}, 9035, Role::kMoment1, 3),
                     MakeT("u", DType::kF32, {20}, 9036, Role::kWeight),
                     MakeT("u.m", DType::kF32, {20}, 9037, Role::kMoment1, 5),
                     MakeT("y", DType::kF32, {20}, 9038, Role::kWeight),
                     MakeT("y.m", DType::kF32, {20}, 9039, Role::kMoment1, 7),
                     MakeT("x", DType::kF32, {20}, 9040, Role::kWeight),
                     MakeT("x.m", DType::kF32, {20}, 9041, Role::kMoment1, 9),
                     MakeT("x.m2", DType::kF32, {20}, 9042, Role::kMoment1, 9)});
    k.step = 9000;
    // Levels for every tensor of `l` but those in `lossless`.
    auto set = [](Ckpt& l, const Ckpt& p, uint64_t seed, const std::vector<std::string>& lossless) {
      const QuantizationInfo weight = LevelQuant(QuantKind::kLevelResidual, F32FromBits(0x3A100000u));
      const QuantizationInfo moment = LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3B000000u));
      const QuantizationInfo second = LevelQuant(QuantKind::kLevelLog, F32FromBits(0x2F000000u), 1.0f, 1);
      for (size_t i = 0; i < l.tensors.size(); ++i) {
        const T& t = l.tensors[i];
        if (std::find(lossless.begin(), lossless.end(), t.name) != lossless.end()) continue;
        const T* before = p.Find(t.name);
        const std::vector<int32_t>* like = before && before->HasLevels() ? &before->levels : nullptr;
        const QuantizationInfo& q =
            t.role == Role::kWeight ? weight : t.role == Role::kMoment1 ? moment : second;
        SetLevels(l, t.name, q, PlannerLevels(t.levels.empty() ? t.bytes.size() / 4 : t.levels.size(), seed + i, like), &p);
      }
    };
    Ckpt l1 = NextLossless(k, 9050);
    l1.step = 9100;
    set(l1, k, 9060, {"u.m"});  // 'u.m' stays lossless in parent-2.ckz
    Ckpt l2 = NextLossless(l1, 9070);
    l2.step = 9200;
    set(l2, l1, 9080, {"u.m"});
    l2.moment_context = true;
    Ckpt l3 = NextLossless(l2, 9090);
    l3.step = 9300;
    set(l3, l2, 9100, {"y.m"});  // 'y.m' lossless here, levels in the parent
    l3.moment_context = true;
    // Different chunk boundaries in each link: element f + i counts elements across them.
    const std::vector<Level> chain = {{k, Opt(StreamCodec::kStored, false)},
                                      {l1, IndexOpt(StreamCodec::kStored, 64)},
                                      {l2, IndexOpt(StreamCodec::kStored, 96)},
                                      {l3, IndexOpt(StreamCodec::kStored, 72)}};
    Case c = LevelChain(
        "full-levels-moment-context",
        "Moment aux levels (spec 7.9.3, since 0.10): input.ckz -> parent-1.ckz -> parent-2.ckz "
        "-> parent-3.ckz (a lossless keyframe); input.ckz and parent-1.ckz set required feature "
        "bit 9, parent-2.ckz does not. Weights 'w' (F32 [8, 6], with Moment1 'w.m' and Moment2 "
        "'w.v'), 'b', 'u', 'y' and 'x' (F32 [20]) with Moment1 'b.m', 'u.m', 'y.m' and two, "
        "'x.m' and 'x.m2'. With bit 9 a level weight's aux levels are the parent's levels of "
        "the tensor named as its only Moment1: in input.ckz 'w' reads parent-1.ckz's 'w.m', "
        "'b' its 'b.m', 'y' its 'y.m' (though input.ckz's 'y.m' is lossless: its coding does "
        "not matter), and 'u' and 'x' have none ('u.m' is lossless in parent-1.ckz; 'x' has two "
        "Moment1); in parent-1.ckz 'w' reads parent-2.ckz's 'w.m' and so on, recursively; "
        "parent-2.ckz's weights have no aux levels. cml streams in 72-byte chunks in input.ckz, "
        "96 in parent-1.ckz and 64 in parent-2.ckz (18, 24 and 16 elements): 'w''s chunk 1 in "
        "input.ckz (elements 18..35) reads elements 18..35 of parent-1.ckz's 'w.m', across its "
        "chunks 0 and 1. A decoder that gives the weights no aux levels (0.9's rule), reads "
        "this file's Moment1 instead of the parent's, or counts elements per chunk decodes "
        "other levels.",
        chain,
        {"quant:level-residual", "quant:level-direct", "quant:level-log", "levels:parent",
         "levels:aux", "levels:moment-aux", "chain:depth-3"},
        &use);
    const Bytes& in = LevelFile(c, 4, 3);
    for (const char* name : {"w", "b", "y"}) {
      const T& t = l3.tensors[l3.Index(name)];
      const int32_t* p = l2.tensors[l2.Index(name)].levels.data();
      const T& own = l3.tensors[l3.Index(std::string(name) + ".m")];
      const int32_t* own_moment = own.HasLevels() ? own.levels.data() : nullptr;
      for (const int32_t* wrong : {static_cast<const int32_t*>(nullptr), own_moment}) {
        const SpecLevels got = SpecDecode(in, name, p, wrong, {});
        Check(got.outcome != Outcome::kOk || got.levels != t.levels,
              std::string("moment-context: a misread aux of '") + name +
                  "' decodes the same levels");
      }
    }
    s.Add(std::move(c));
  }
  {
    // Every floating dtype: F16, BF16, F64 triples, an F32 tensor stepped by an F16 source,
    // and the elements that tell binary32-then-dtype rounding from one rounding.
    Ckpt k = Single({MakeT("h", DType::kF16, {6, 8}, 9301, Role::kWeight),
                     MakeT("h.m", DType::kF16, {6, 8}, 9302, Role::kMoment1, 0),
                     MakeT("h.v", DType::kF16, {6, 8}, 9303, Role::kMoment2, 0),
                     MakeT("g", DType::kBF16, {5, 8}, 9304, Role::kWeight),
                     MakeT("g.m", DType::kBF16, {5, 8}, 9305, Role::kMoment1, 3),
                     MakeT("g.v", DType::kBF16, {5, 8}, 9306, Role::kMoment2, 3),
                     MakeT("d", DType::kF64, {4, 5}, 9307, Role::kWeight),
                     MakeT("d.m", DType::kF64, {4, 5}, 9308, Role::kMoment1, 6),
                     MakeT("d.v", DType::kF64, {4, 5}, 9309, Role::kMoment2, 6),
                     MakeT("x", DType::kF32, {6, 8}, 9310),
                     MakeT("h2", DType::kF16, {8}, 9311), MakeT("g2", DType::kBF16, {8}, 9312),
                     MakeT("hd", DType::kF16, {4}, 9313), MakeT("gd", DType::kBF16, {4}, 9314),
                     MakeT("dd", DType::kF64, {4}, 9315)});
    k.step = 8000;
    k.tensors[2].bytes = Positive(DType::kF16, 48, 9323, -14, -2);
    k.tensors[5].bytes = Positive(DType::kBF16, 40, 9326, -30, -4);
    k.tensors[8].bytes = Positive(DType::kF64, 20, 9329, -60, -4);
    // F16 step-source elements: +0, subnormals (binary32 exponents -24 and -15: not -1000),
    // +inf, a NaN, -0; BF16: a subnormal (-1000), +inf; F64: a subnormal, +inf.
    Put(k, "h.v", {0x0000, 0x0001, 0x03FF, 0x7C00, 0x7E01, 0x8000, 0x0200, 0x0003});
    Put(k, "g.v", {0x0001, 0x7F80, 0x0000});
    Put(k, "d.v", {0x0000000000000001ull, 0x7FF0000000000000ull});
    Put(k, "h", {0x7D01, 0xFC00, 0x8000, 0x0001, 0x7BFF});
    Put(k, "g", {0x7FC1, 0xFF80, 0x0001, 0x7F7F});
    Put(k, "d", {0x7FF0000000000001ull, 0xFFF0000000000000ull, 0x0000000000000001ull});
    // Double rounding references: 1.0, -1.0, 1 + 2^-10 (F16) and 1 + 2^-7 (BF16).
    Put(k, "h2", {0x3C00, 0xBC00, 0x3C01});
    Put(k, "g2", {0x3F80, 0xBF80, 0x3F81});
    Ckpt l = NextLossless(k, 9400);
    l.step = 8100;
    const size_t hv = l.Index("h.v");
    SetLevels(l, "h", LevelQuant(QuantKind::kLevelResidual, F32FromBits(0x3A000000u)), PlannerLevels(48, 9411), &k);
    SetLevels(l, "h.m", Sourced(LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x38000000u)), int32_t(hv), 1, -14, 6),
              PlannerLevels(48, 9412), &k);
    SetLevels(l, "h.v", LevelQuant(QuantKind::kLevelLog, F32FromBits(0x33800000u), F32FromBits(0x3F900000u), 1),
              PlannerLevels(48, 9413), &k);
    SetLevels(l, "g", LevelQuant(QuantKind::kLevelResidual, F32FromBits(0x3B800000u), F32FromBits(0x3F7F0000u)),
              PlannerLevels(40, 9414), &k);
    SetLevels(l, "g.m", Sourced(LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A000000u)), int32_t(l.Index("g.v")), -1, -17, 8),
              PlannerLevels(40, 9415), &k);
    SetLevels(l, "g.v", LevelQuant(QuantKind::kLevelLog, F32FromBits(0x30000000u), 1.0f, 2), PlannerLevels(40, 9416), &k);
    SetLevels(l, "d", LevelQuant(QuantKind::kLevelResidual, F32FromBits(0x33800001u), F32FromBits(0x3F8CCCCDu)),
              PlannerLevels(20, 9417), &k);
    SetLevels(l, "d.m", Sourced(LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A7FFFFFu)), int32_t(l.Index("d.v")), 1, -32, 12),
              PlannerLevels(20, 9418), &k);
    SetLevels(l, "d.v", LevelQuant(QuantKind::kLevelLog, F32FromBits(0x20000000u), F32FromBits(0x3F800001u), -2),
              PlannerLevels(20, 9419), &k);
    SetLevels(l, "x", Sourced(LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A000000u)), int32_t(hv), 1, -12, 5),
              PlannerLevels(48, 9420), &k);
    // 7.9.2 via 7.6 step 3: b + c rounded to binary32, then into F16/BF16. With step 2^-34,
    // levels +-(2^23 + 1) and 2^23 - 1 add 2^-11 + 2^-34 and 2^-11 - 2^-34 (F16 ties after
    // round32; one rounding would go up); with 2^-30, +-(2^22 + 1) and 2^22 - 1 do the same
    // for BF16 (2^-8).
    SetLevels(l, "h2", LevelQuant(QuantKind::kLevelResidual, ExactF32(std::ldexp(1.0, -34))),
              With(PlannerLevels(8, 9421), {{0, (1 << 23) + 1}, {1, -(1 << 23) - 1}, {2, (1 << 23) - 1}}), &k);
    SetLevels(l, "g2", LevelQuant(QuantKind::kLevelResidual, ExactF32(std::ldexp(1.0, -30))),
              With(PlannerLevels(8, 9422), {{0, (1 << 22) + 1}, {1, -(1 << 22) - 1}, {2, (1 << 22) - 1}}), &k);
    // LevelDirect: a level and step whose exact product is just above an F16 (BF16) tie.
    const auto [q16, s16] = AboveTie(11);
    const auto [q8, s8] = AboveTie(8);
    SetLevels(l, "hd", LevelQuant(QuantKind::kLevelDirect, s16), {q16, -q16, 3, 0}, &k);
    SetLevels(l, "gd", LevelQuant(QuantKind::kLevelDirect, s8), {q8, -q8, 5, 0}, &k);
    SetLevels(l, "dd", LevelQuant(QuantKind::kLevelDirect, s16), {q16, -q8, kMaxLevel, 7}, &k);
    auto bits16 = [&](const char* name, size_t i) { return uint32_t(LoadElem(l.Find(name)->bytes.data() + 2 * i, 2)); };
    Check(bits16("h2", 0) == 0x3C00 && bits16("h2", 1) == 0xBC00 && bits16("h2", 2) == 0x3C02 &&
              bits16("g2", 0) == 0x3F80 && bits16("g2", 1) == 0xBF80 && bits16("g2", 2) == 0x3F82 &&
              bits16("hd", 0) == 0x3C00 && bits16("hd", 1) == 0xBC00 && bits16("gd", 0) == 0x3F80,
          "every-dtype: the double-rounding elements");
    Check(RoundF16(double(q16) * double(s16)) == 0x3C01 && RoundBF16(double(q8) * double(s8)) == 0x3F81,
          "every-dtype: one rounding must go up");
    {
      ValueReading narrow, zero;
      narrow.f64_as_binary32 = true;
      zero.f16_subnormal_is_zero = true;
      Check(SpecValues(l, &k, *l.Find("dd"), narrow) != l.Find("dd")->bytes,
            "every-dtype: LevelDirect F64 in binary32 gives the same values");
      Check(SpecValues(l, &k, *l.Find("h.m"), zero) != l.Find("h.m")->bytes &&
                SpecValues(l, &k, *l.Find("x"), zero) != l.Find("x")->bytes,
            "every-dtype: F16 subnormal step sources read as -1000 give the same values");
    }
    s.Add(LevelChain(
        "full-levels-every-dtype",
        "Level tensors of every floating dtype in a link (input.ckz) of the keyframe "
        "parent-1.ckz, cml streams, one chunk each. F16 'h'/'h.m'/'h.v', BF16 'g'/'g.m'/'g.v' "
        "and F64 'd'/'d.m'/'d.v': a LevelResidual weight (special references: NaNs with "
        "payloads, infinities, -0, subnormals, the largest finite; 'g' and 'd' with "
        "reference_scale != 1), a LevelDirect first moment stepped by its second moment "
        "(slopes +1, -1, +1; F16 step-source subnormals have binary32 exponents -24 and -15 "
        "once widened, not -1000; BF16 and F64 subnormals are -1000, infinities and NaNs "
        "+1000), a LevelLog second moment (log_unit 1, 2, -2). 'x' is F32 LevelDirect stepped "
        "by the F16 'h.v' (a step source of another dtype). 7.9.2's binary32 path with F16 and "
        "BF16: 'h2' (LevelResidual, step 2^-34) elements 0-2 are 1.0 + (2^23 + 1) x 2^-34 -> "
        "round32 1 + 2^-11 -> F16 0x3C00 (ties to even; one rounding: 0x3C01), its negative "
        "(0xBC00), and (1 + 2^-10) + (2^23 - 1) x 2^-34 -> 0x3C02 (one rounding: 0x3C01); 'g2' "
        "the same for BF16 with step 2^-30 (0x3F80, 0xBF80, 0x3F82). 'hd' and 'gd' "
        "(LevelDirect): level x step exactly just above the tie 1 + 2^-11 (1 + 2^-8), so "
        "round32 then F16 (BF16) gives 1.0 (one rounding: the next value). The binary64 path: "
        "'dd' (F64 LevelDirect) level x step computed in binary64 (exact), which is not "
        "round32(level x step) widened, and level 2^24 - 1. Checked by the generator against "
        "its own arithmetic.",
        {{k, Opt(StreamCodec::kStored, false)}, {l, IndexOpt(StreamCodec::kStored)}},
        {"quant:level-residual", "quant:level-direct", "quant:level-log", "levels:step-source",
         "levels:double-rounding", "levels:special-reference", "quant:scale"},
        &use));
  }
  {
    // LevelLog with every log_unit -4..4.
    std::vector<T> ts;
    for (int u = -4; u <= 4; ++u)
      ts.push_back(MakeT("u" + std::to_string(u + 4), DType::kF32, {4, 6}, uint64_t(9500 + u + 4)));
    ts.push_back(MakeT("src", DType::kF32, {4, 6}, 9509));
    Ckpt k = Single(ts);
    k.step = 9000;
    for (int u = 0; u < 9; ++u)  // +-0, subnormals, infinities, a NaN, near the largest finite
      Put(k, "u" + std::to_string(u), {0x00000000u, 0x80000000u, 0x00000003u, 0x7F800000u,
                                       0xFF800000u, 0x7FC00001u, 0x7F000000u, 0x00800000u});
    Ckpt l = NextLossless(k, 9600);
    l.step = 9100;
    for (int u = 0; u < 9; ++u) {
      const int unit = u - 4;
      // Levels: zero, a zero reference's q x step, q of both signs, and q whose n is far out of
      // range (overflow to infinity, underflow through the subnormals to zero).
      std::vector<int32_t> lv = PlannerLevels(24, uint64_t(9610 + u));
      lv[0] = 5;
      lv[1] = -3;
      lv[6] = unit <= 0 ? 2 : 1 << (unit + 1);                             // 2^127 x 4
      // n = -10 (about: unit -4 and -3 give -16 and -8), with j = 16 / 2^unit for unit > 0.
      lv[7] = unit <= 0 ? -std::max(1, 10 >> -unit) : -10 * (1 << unit) + 1;
      lv[8] = kMaxLevel;
      lv[9] = -kMaxLevel;
      lv[10] = 0;
      lv[11] = unit > 0 ? -((1 << unit) + 1) : -1;
      QuantizationInfo q = LevelQuant(QuantKind::kLevelLog, F32FromBits(0x34000000u + uint32_t(u) * 0x00800000u),
                             u % 2 ? F32FromBits(0x3F7FFFF0u) : 1.0f, int8_t(unit));
      if (u == 5) q = Sourced(q, 9, -1, -2, 4);  // zero references take level x step x 2^s
      SetLevels(l, "u" + std::to_string(u), q, lv, &k);
    }
    s.Add(LevelChain(
        "full-levels-log-units",
        "LevelLog (7.9.2) with every log_unit -4..4: 'u0' .. 'u8' (F32 [4, 6]) of input.ckz have "
        "log_unit -4 .. 4, the odd ones reference_scale 0x3F7FFFF0 (a level 0 then gives "
        "round32(reference x scale)), 'u5' a step source ('src', slope -1). Level q gives "
        "reference x 2^(n + j/16) with q / 2^k = n + j/16 (negative units multiply: k = -4 is "
        "16 doublings per level; positive units take F[j], j a multiple of 16 / 2^k, negative "
        "q rounding n toward minus infinity). References (parent-1.ckz) start with +0 and -0 "
        "(levels 5 and -3 give level x step), a subnormal, +-inf (stay infinite), a NaN "
        "(canonical NaN), 2^127 (levels that overflow to infinity) and 2^-126 (levels that "
        "underflow through the subnormals, rounded once); levels +-(2^24 - 1) put n far out of "
        "range (clamping n to -400..400 changes nothing). Checked by the generator against its "
        "own arithmetic (scalbn of the binary32 product).",
        {{k, Opt(StreamCodec::kStored, false)}, {l, IndexOpt(StreamCodec::kStored)}},
        {"quant:level-log", "levels:log-units", "levels:special-reference", "quant:scale"}, &use));
  }
  {
    // Escapes of every prefix length, and magnitudes in every unary context, in a keyframe:
    // LevelDirect needs no reference, and without a link no parent (pc = 0).
    Ckpt k = Single({MakeT("e", DType::kF32, {24, 10}, 9701, Role::kWeight),
                     MakeT("e.m", DType::kF32, {24, 10}, 9702, Role::kMoment1, 0),
                     MakeT("big", DType::kF32, {6}, 9703)});
    k.step = 9500;
    std::vector<int32_t> e(240), em(240);
    Rng r(9711);
    const std::vector<int32_t> esc = EscapeMagnitudes();
    for (size_t i = 0; i < 240; ++i) {
      const uint64_t pick = r.Below(10);
      const int32_t m = pick < 3 ? 0 : pick < 6 ? int32_t(1 + r.Below(3)) : int32_t(13 + r.Below(24));
      e[i] = r.Below(2) ? -m : m;
      em[i] = e[i] == 0 && r.Below(2) ? 0 : int32_t(r.Below(5)) - 2;
    }
    for (size_t j = 0; j < esc.size(); ++j) e[5 + 10 * j] = j % 2 ? -esc[j] : esc[j];
    SetLevels(k, "e", LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x2B800000u)), e, nullptr);
    SetLevels(k, "e.m", LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x30000000u)), em, nullptr);
    // Values that overflow binary32: (2^24 - 1) x 2^110 and -2^20 x 2^110 are +-infinity.
    SetLevels(k, "big", LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x76800000u)),
              {kMaxLevel, -(1 << 20), 3, 0, 1 << 17, -(1 << 16)}, nullptr);
    const Bytes file = Encode(k, IndexOpt(StreamCodec::kStored, 480)).bytes;
    CheckLevels("escapes", k, nullptr, file, &use);
    s.Add(Valid("full-levels-escapes", "full",
                "A keyframe with LevelDirect tensors (no reference, no link, no parent levels): "
                "'e' (F32 [24, 10], a Weight) has magnitudes 13..36 (the ends of 7.9.3's unary "
                "code, 14 ones then the escape at 15) next to neighbours of every magnitude "
                "class, and escapes with every Exp-Golomb prefix length k = 0..23, from 15 up "
                "to 2^24 - 1 (k = 23, the largest level); 'e.m' (its Moment1) reads 'e' as aux "
                "levels. 'big' (step 2^110) overflows binary32: (2^24 - 1) x 2^110 = +inf, "
                "-2^20 x 2^110 = -inf. cml streams in 480-byte chunks (120 elements, so 'e' "
                "has two).",
                k, file, {"quant:level-direct", "levels:escape", "levels:aux", "chunks:many"}));
  }
  {
    // Families (7.9.3): codebook and level tensors side by side along a chain. A level tensor
    // takes parent and aux levels only from level tensors, a codebook tensor indices only from
    // codebook tensors.
    Ckpt k = Single({MakeT("w", DType::kF32, {8, 12}, 9801, Role::kWeight),
                     MakeT("w.m", DType::kF32, {8, 12}, 9802, Role::kMoment1, 0),
                     MakeT("w.v", DType::kF32, {8, 12}, 9803, Role::kMoment2, 0)});
    k.step = 9900;
    k.tensors[2].bytes = Positive(DType::kF32, 96, 9813, -30, -10);
    Ckpt l1 = NextLossless(k, 9820);
    l1.step = 9910;
    Quantize(l1, "w", QuantKind::kResidual, 4, 15, 9821, &k);
    SetLevels(l1, "w.m", LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A000000u)), PlannerLevels(96, 9822), &k);
    SetLevels(l1, "w.v", LevelQuant(QuantKind::kLevelLog, F32FromBits(0x30000000u), 1.0f, 1), PlannerLevels(96, 9823), &k);
    Ckpt l2 = NextLossless(l1, 9830);
    l2.step = 9920;
    SetLevels(l2, "w", LevelQuant(QuantKind::kLevelResidual, F32FromBits(0x39800000u)), PlannerLevels(96, 9831), &l1);
    Quantize(l2, "w.m", QuantKind::kDirect, 4, 15, 9832, nullptr);
    SetLevels(l2, "w.v", LevelQuant(QuantKind::kLevelLog, F32FromBits(0x30000000u), 1.0f, 1),
              PlannerLevels(96, 9833, &l1.Find("w.v")->levels), &l1);
    Case c = LevelChain(
        "full-levels-codebook-families",
        "Codebook kinds (7.6, cm index streams) and level kinds (7.9, cml) mixed along a chain "
        "input.ckz -> parent-1.ckz -> parent-2.ckz (keyframe). parent-1.ckz: 'w' Residual "
        "(codebook), 'w.m' LevelDirect, 'w.v' LevelLog. input.ckz: 'w' LevelResidual whose "
        "parent tensor has a codebook kind (its reference is parent-1's decoded 'w', but it has "
        "no parent levels, 7.9.3), 'w.m' Direct (codebook) whose parent tensor has levels (no "
        "parent indices, 7.7.2), 'w.v' LevelLog with parent levels. Aux tensors by family: "
        "parent-1's 'w.m' has none (its owner 'w' has a codebook kind), parent-1's 'w.v' reads "
        "'w.m'; input.ckz's 'w.v' reads 'w' (the only Moment1, 'w.m', has a codebook kind) "
        "and its 'w.m' has none. A decoder that took indices for levels, or an aux tensor of "
        "the other family, decodes other levels (checked by the generator).",
        {{k, Opt(StreamCodec::kStored, false)}, {l1, IndexOpt(StreamCodec::kCm, 192)},
         {l2, IndexOpt(StreamCodec::kCm, 192)}},
        {"quant:level-residual", "quant:level-direct", "quant:level-log", "quant:residual",
         "quant:direct", "levels:families", "levels:parent", "levels:aux"},
        &use);
    // Family-blind readings: indices as parent levels, the other family's aux tensor.
    const auto as_levels = [](const Bytes& ix) { return std::vector<int32_t>(ix.begin(), ix.end()); };
    const std::vector<int32_t> l1w = as_levels(l1.Find("w")->indices);
    const std::vector<int32_t> l2m = as_levels(l2.Find("w.m")->indices);
    const SpecLevels a = SpecDecode(LevelFile(c, 3, 2), "w", l1w.data(), nullptr);
    const SpecLevels b = SpecDecode(LevelFile(c, 3, 2), "w.v", l1.Find("w.v")->levels.data(), l2m.data());
    const std::vector<int32_t> l1ww = as_levels(l1.Find("w")->indices);
    const SpecLevels d = SpecDecode(LevelFile(c, 3, 1), "w.m", nullptr, l1ww.data());
    Check((a.outcome != Outcome::kOk || a.levels != l2.Find("w")->levels) &&
              (b.outcome != Outcome::kOk || b.levels != l2.Find("w.v")->levels) &&
              (d.outcome != Outcome::kOk || d.levels != l1.Find("w.m")->levels),
          "codebook-families: a family-blind reading decodes the same levels");
    s.Add(std::move(c));
  }
  {
    // 7.9.1's special exponents where they matter: step centres near -127 and +128 (F64:
    // -1023 and +1024), so that a zero's -1000 and E - bias = -127, or an infinity's +1000 and
    // 128, give different shifts after the clamp.
    Ckpt k = Single({MakeT("v", DType::kF32, {4, 6}, 9951), MakeT("v64", DType::kF64, {4, 6}, 9952),
                     MakeT("a", DType::kF32, {4, 6}, 9953), MakeT("b", DType::kF32, {4, 6}, 9954),
                     MakeT("c", DType::kF32, {4, 6}, 9955), MakeT("d", DType::kF32, {4, 6}, 9956)});
    k.step = 9950;
    k.tensors[0].bytes = Positive(DType::kF32, 24, 9957, -12, -2);
    k.tensors[1].bytes = Positive(DType::kF64, 24, 9958, -12, -2);
    // +0, -0, +inf, -inf, a NaN, a subnormal, a negative NaN.
    Put(k, "v", {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0x00000005u,
                 0xFFC00001u});
    Put(k, "v64", {0x0000000000000000ull, 0x8000000000000000ull, 0x7FF0000000000000ull,
                   0xFFF0000000000000ull, 0x7FF8000000000000ull, 0x0000000000000005ull,
                   0xFFF8000000000001ull});
    Ckpt l = NextLossless(k, 9960);
    l.step = 9970;
    const QuantizationInfo base = LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A800000u));
    const int32_t v = int32_t(l.Index("v")), v64 = int32_t(l.Index("v64"));
    const auto lv = [](uint64_t seed) {
      return With(PlannerLevels(24, seed), {{0, 3}, {1, -5}, {2, 7}, {3, -2}, {4, 9}, {5, 4}, {6, -6}});
    };
    SetLevels(l, "a", Sourced(base, v, 1, -120, 8), lv(9971), &k);
    SetLevels(l, "b", Sourced(base, v, -1, 124, 8), lv(9972), &k);
    SetLevels(l, "c", Sourced(base, v64, 1, -1016, 8), lv(9973), &k);
    SetLevels(l, "d", Sourced(base, v64, 1, 1020, 8), lv(9974), &k);
    ValueReading raw;
    raw.exponent_raw = true;
    for (const char* name : {"a", "b", "c", "d"})
      Check(SpecValues(l, &k, *l.Find(name), raw) != l.Find(name)->bytes,
            std::string("step-exponent-specials: '") + name +
                "': exponents without -1000/+1000 give the same values");
    s.Add(LevelChain(
        "full-levels-step-exponent-specials",
        "7.9.1's special exponents of a step source, where a decoder that takes E - 127 (E - "
        "1023) for zeros, subnormals, infinities and NaNs gets other steps. input.ckz links to "
        "the keyframe parent-1.ckz, whose 'v' (F32 [4, 6]) starts with +0, -0, +inf, -inf, a "
        "NaN, a subnormal and a negative NaN, and 'v64' (F64) with the same. LevelDirect "
        "tensors of input.ckz, step 2^-10, step_limit 8: 'a' (source 'v', slope +1, "
        "step_center -120): a zero or subnormal gives e = -1000, d = -880, shift -8 (E - 127 "
        "would give d = -7, shift -4); 'b' ('v', slope -1, center 124): an infinity or NaN "
        "gives e = +1000, shift -8 (128 would give -2); 'c' ('v64', slope +1, center -1016): "
        "a zero or subnormal gives shift +8 (-1023 would give -4); 'd' ('v64', slope +1, "
        "center 1020): an infinity or NaN gives -8 (1024 would give +2). The other elements "
        "(exponents -12..-2) clamp to +-8. Checked by the generator: the reading without the "
        "special cases gives other values in each tensor.",
        {{k, Opt(StreamCodec::kStored, false)}, {l, IndexOpt(StreamCodec::kStored)}},
        {"quant:level-direct", "levels:step-source"}, &use));
  }
  {
    // LevelLog's t = round32(b x F[j]) before the scaling (7.9.2): elements whose s is
    // subnormal, with b x F[j] inexact and rounded by round32 onto a tie of the subnormal
    // precision, so that rounding once (without t) goes the other way.
    struct Pick {
      uint32_t b;
      int32_t q;
    };
    std::vector<Pick> picks;
    const int n = -140;  // t in [1, 2) times 2^-140: 9 fraction bits kept as a subnormal
    for (uint32_t a = 3; picks.size() < 8 && a < 512; a += 29)
      for (int j = 1; j < 16 && picks.size() < 8; j += 2) {
        const uint32_t tb = 0x3F800000u | a << 14 | 1u << 13;  // a tie at 9 fraction bits
        const float t = F32FromBits(tb);
        const double fj = double(Fraction(j));
        const uint32_t b0 = F32Bits(float(double(t) / fj));
        for (int dlt = -4; dlt <= 4; ++dlt) {
          const float b = F32FromBits(b0 + uint32_t(dlt));
          const double exact = double(b) * fj;  // 48 significant bits at most: exact
          if (float(exact) != t || exact == double(t)) continue;
          const float twice = std::scalbn(float(exact), n);
          const float once = float(std::ldexp(exact, n));
          if (F32Bits(twice) == F32Bits(once)) continue;
          const uint32_t sign = picks.size() % 2 ? 0x80000000u : 0;
          picks.push_back({F32Bits(b) | sign, 16 * n + j});
          break;
        }
      }
    Check(picks.size() == 8, "log-subnormal-rounding: not enough elements found");
    Ckpt k = Single({MakeT("r", DType::kF32, {4, 6}, 9981)});
    k.step = 9980;
    k.tensors[0].bytes = Positive(DType::kF32, 24, 9982, -8, 2);
    std::vector<uint64_t> refs;
    std::vector<std::pair<size_t, int32_t>> set;
    for (size_t i = 0; i < picks.size(); ++i) {
      refs.push_back(picks[i].b);
      set.push_back({i, picks[i].q});
    }
    Put(k, "r", refs);
    Ckpt l = NextLossless(k, 9983);
    l.step = 9990;
    SetLevels(l, "r", LevelQuant(QuantKind::kLevelLog, F32FromBits(0x30000000u), 1.0f, 4),
              With(PlannerLevels(24, 9984), set), &k);
    ValueReading single;
    single.log_single = true;
    Check(SpecValues(l, &k, *l.Find("r"), single) != l.Find("r")->bytes,
          "log-subnormal-rounding: rounding once gives the same values");
    s.Add(LevelChain(
        "full-levels-log-subnormal-rounding",
        "LevelLog (7.9.2) rounds t = round32(b x F[j]) first and then t x 2^n once. input.ckz "
        "links to the keyframe parent-1.ckz; its 'r' (F32 [4, 6], LevelLog, log_unit 4, "
        "reference_scale 1) has at elements 0-7 references b with full mantissas (signs "
        "alternating) and levels 16 x (-140) + j (j odd, 1..15): b x F[j] is inexact and "
        "round32 makes it a tie of the subnormal precision of t x 2^-140 (9 fraction bits), "
        "which then rounds to even; the exact b x F[j] x 2^-140 rounded once goes the other "
        "way. Checked by the generator: rounding once gives other values.",
        {{k, Opt(StreamCodec::kStored, false)}, {l, IndexOpt(StreamCodec::kStored)}},
        {"quant:level-log", "levels:double-rounding"}, &use));
  }
  {
    // F64 LevelLog with a zero reference: q x D_i in binary64 (exact), not round32(q x D_i).
    Ckpt k = Single({MakeT("z", DType::kF64, {4, 4}, 9991)});
    k.step = 9990;
    k.tensors[0].bytes = Positive(DType::kF64, 16, 9992, -20, -6);
    Put(k, "z", {0x0000000000000000ull, 0x8000000000000000ull, 0x0000000000000000ull,
                 0x8000000000000000ull});
    Ckpt l = NextLossless(k, 9993);
    l.step = 9995;
    SetLevels(l, "z", LevelQuant(QuantKind::kLevelLog, F32FromBits(0x3A7FFFFFu), F32FromBits(0x3F880000u), 1),
              With(PlannerLevels(16, 9994), {{0, 0xABCDEF}, {1, -0xF0F0F1}, {2, 0x7FFFFF}, {3, -kMaxLevel}}),
              &k);
    ValueReading narrow;
    narrow.f64_log_zero_binary32 = true;
    Check(SpecValues(l, &k, *l.Find("z"), narrow) != l.Find("z")->bytes,
          "log-f64-zero-reference: round32(q x D) gives the same values");
    s.Add(LevelChain(
        "full-levels-log-f64-zero-reference",
        "F64 LevelLog (7.9.2 step 4) with zero references: input.ckz's 'z' (F64 [4, 4], "
        "step 0x3A7FFFFF (a full 24-bit mantissa), reference_scale 0x3F880000, log_unit 1) "
        "has references (parent-1.ckz, a keyframe) +0, -0, +0, -0 at elements 0-3 and levels "
        "0xABCDEF, -0xF0F0F1, 0x7FFFFF, -(2^24 - 1): the value is q x D computed in binary64 "
        "(exact, up to 48 significant bits), not round32(q x D) widened. Checked by the "
        "generator: the binary32 reading gives other values.",
        {{k, Opt(StreamCodec::kStored, false)}, {l, IndexOpt(StreamCodec::kStored)}},
        {"quant:level-log", "quant:scale"}, &use));
  }
  {
    // 7.9.3's parent levels need the parent's tensor of T's name, dtype AND shape: the
    // keyframe's 'p' is BF16 and its 'r' of another shape, both level tensors.
    Ckpt k = Single({MakeT("p", DType::kBF16, {4, 6}, 9961), MakeT("r", DType::kF32, {6, 4}, 9962)});
    k.step = 9960;
    SetLevels(k, "p", LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3B000000u)), PlannerLevels(24, 9963, nullptr, 1), nullptr);
    SetLevels(k, "r", LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3B000000u)), PlannerLevels(24, 9964, nullptr, 1), nullptr);
    Ckpt l = Single({MakeT("p", DType::kF32, {4, 6}, 9965), MakeT("r", DType::kF32, {4, 6}, 9966)});
    l.step = 9970;
    SetLevels(l, "p", LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A800000u)),
              PlannerLevels(24, 9967, &k.Find("p")->levels), &k);
    SetLevels(l, "r", LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A800000u)),
              PlannerLevels(24, 9968, &k.Find("r")->levels), &k);
    Case c = LevelChain(
        "full-levels-parent-other-dtype",
        "7.9.3's parent levels come only from the parent's tensor of T's name, dtype and "
        "shape. parent-1.ckz (a keyframe) has LevelDirect 'p' (BF16 [4, 6]) and 'r' (F32 "
        "[6, 4]), mostly non-zero levels; input.ckz, its link, has LevelDirect 'p' (F32 "
        "[4, 6]: another dtype) and 'r' (F32 [4, 6]: another shape), with levels near the "
        "parent's: neither has parent levels (pc = 0). A decoder that took the parent's "
        "levels of another dtype or shape as contexts decodes other levels (checked by the "
        "generator).",
        {{k, IndexOpt(StreamCodec::kStored)}, {l, IndexOpt(StreamCodec::kStored)}},
        {"quant:level-direct", "levels:parent"}, &use);
    for (const char* name : {"p", "r"}) {
      const SpecLevels got = SpecDecode(LevelFile(c, 2, 1), name, k.Find(name)->levels.data(), nullptr);
      Check(got.outcome != Outcome::kOk || got.levels != l.Find(name)->levels,
            std::string("parent-other-dtype: '") + name +
                "' decodes the same levels with the other tensor's levels as parent levels");
    }
    s.Add(std::move(c));
  }
  // Every context of 7.9.3 is used by some cml stream above.
  for (int x = 0; x < 27; ++x) {
    Check(use.zero.count(x) == 1, "no level case uses ZERO context " + std::to_string(x));
    Check(use.sign.count(x) == 1, "no level case uses SIGN context " + std::to_string(x));
  }
  for (int x = 0; x < 56; ++x)
    Check(use.unary.count(x) == 1, "no level case uses UNARY[" + std::to_string(x / 14) + "][" +
                                       std::to_string(x % 14) + "]");
  for (int x = 0; x < 24; ++x)
    Check(use.escape.count(x) == 1, "no level case uses ESCAPE[" + std::to_string(x) + "]");
}

void LevelsInvalid(Suite& s) {
  // The base: a lossless keyframe and a link of it with an Adam weight 'w' (LevelResidual),
  // 'w.m' (LevelDirect, step source 'w.v', slope +1, center -6, limit 4: the keyframe's v has
  // exponents -9..-2, so no shift reaches the limit) and 'w.v' (LevelLog); 'c' a codebook
  // tensor (cm); 's' F32 [48] (another shape, the same element count), 'i' I32 and 'n' I64
  // lossless. cml streams in 96-byte chunks (two per tensor).
  Ckpt k = Single({MakeT("w", DType::kF32, {8, 6}, 9901, Role::kWeight),
                   MakeT("w.m", DType::kF32, {8, 6}, 9902, Role::kMoment1, 0),
                   MakeT("w.v", DType::kF32, {8, 6}, 9903, Role::kMoment2, 0),
                   MakeT("c", DType::kF32, {8, 6}, 9904), MakeT("s", DType::kF32, {48}, 9905),
                   MakeT("i", DType::kI32, {8, 6}, 9906), MakeT("n", DType::kI64, {}, 9907)});
  k.step = 100;
  Ckpt l = NextLossless(k, 9910);
  l.step = 200;
  const size_t w = 0, wm = 1, wv = 2, cb = 3, sv = 4, iv = 5;
  const QuantizationInfo qw = LevelQuant(QuantKind::kLevelResidual, F32FromBits(0x3A000000u));
  const QuantizationInfo qm = Sourced(LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A800000u)), 2, 1, -6, 4);
  const QuantizationInfo qv = LevelQuant(QuantKind::kLevelLog, F32FromBits(0x30000000u), F32FromBits(0x3F880000u), 1);
  SetLevels(l, "w", qw, PlannerLevels(48, 9911), &k);
  SetLevels(l, "w.m", qm, PlannerLevels(48, 9912), &k);
  SetLevels(l, "w.v", qv, PlannerLevels(48, 9913), &k);
  Quantize(l, "c", QuantKind::kDirect, 4, 15, 9914, nullptr);
  const EncodeOptions opt = IndexOpt(StreamCodec::kCm, 96);
  const Encoded parent = Encode(k, Opt(StreamCodec::kStored, false));
  const Encoded link = Encode(l, opt, LinkTo(parent, k, "parent-1.ckz", 1), &k);
  CheckLevels("invalid base", l, &k, link.bytes, nullptr);
  const std::vector<std::string> feat = {"codec:cml"};
  auto header_case = [&](const std::string& name, const std::string& rule, ErrorCode error,
                         const std::string& description, std::function<void(Archive&)> edit) {
    Model x = FromFile(link.bytes);
    x.edit = std::move(edit);
    return ChainInvalid(name, rule, error, description, Assemble(x), parent.bytes, feat);
  };
  auto quant = [](Archive& a, size_t t) -> QuantizationInfo& { return *a.tensors[t].quantization; };
  const ErrorCode range = ErrorCode::kFieldOutOfRange;

  // Q2.
  s.Add(header_case("invalid-levels-kind-unknown", "Q2", range,
                    "'w.m' (a level tensor with a step source) has kind 6: kinds are 1..5.",
                    [&](Archive& a) { quant(a, wm).kind = QuantKind(6); })
            .ByConstruction("7.9.2 gives values for the kinds 3 to 5 only (7.6 for 1 and 2): "
                            "kind 6 has no reconstruction, and Q2 comes first among the rules "
                            "of a quantization"));
  // Q9, in its order.
  s.Add(header_case("invalid-levels-bits-set", "Q9", range,
                    "'w.m' (LevelDirect) has bits 4: a level kind has bits 0.",
                    [&](Archive& a) { quant(a, wm).bits = 4; }));
  s.Add(header_case("invalid-levels-codebook-set", "Q9", range,
                    "'w.m' (LevelDirect) has a codebook of one centre (0.5): a level kind has "
                    "none.",
                    [&](Archive& a) { quant(a, wm).codebook = {0.5f}; }));
  s.Add(header_case("invalid-levels-step-limit-33", "Q9", range,
                    "'w.m' has step_limit 33 (at most 32). Its step times 2^-33 .. 2^33 is "
                    "normal, and no element's shift reaches 5: only the limit itself is wrong.",
                    [&](Archive& a) { quant(a, wm).step_limit = 33; }));
  s.Add(header_case("invalid-levels-step-zero", "Q9", range, "'w' (LevelResidual) has step 0.",
                    [&](Archive& a) { quant(a, w).step = 0.0f; })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-levels-step-negative", "Q9", range,
                    "'w.m' has a negative step (-2^-10).",
                    [&](Archive& a) { quant(a, wm).step = -quant(a, wm).step; })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-levels-step-subnormal", "Q9", range,
                    "'w' has a subnormal step (0x00000200, 2^-140).",
                    [&](Archive& a) { quant(a, w).step = F32FromBits(0x00000200u); })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-levels-step-nan", "Q9", range, "'w' has a NaN step.",
                    [&](Archive& a) { quant(a, w).step = F32FromBits(0x7FC00000u); })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-levels-step-infinity", "Q9", range, "'w' has step +infinity.",
                    [&](Archive& a) { quant(a, w).step = F32FromBits(0x7F800000u); })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-levels-step-range-overflow", "Q9", range,
                    "'w.m' (step_limit 4) has step 2^124: step x 2^4 = 2^128 is not finite.",
                    [&](Archive& a) { quant(a, wm).step = F32FromBits(0x7D800000u); })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-levels-step-range-underflow", "Q9", range,
                    "'w.m' (step_limit 4) has step 1.5 x 2^-123 (normal): step x 2^-4 is "
                    "subnormal.",
                    [&](Archive& a) { quant(a, wm).step = F32FromBits(0x02400000u); })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-levels-log-unit-5", "Q9", range,
                    "'w.v' (LevelLog) has log_unit 5 (-4..4).",
                    [&](Archive& a) { quant(a, wv).log_unit = 5; })
            .ByConstruction("with log_unit 5, 7.9.2's j = 16 (q - 32 n) / 32 is not an integer "
                            "for odd q - 32 n: F has no entry for it, and there is no value to "
                            "decode"));
  s.Add(header_case("invalid-levels-log-unit-minus-5", "Q9", range,
                    "'w.v' (LevelLog) has log_unit -5 (-4..4).",
                    [&](Archive& a) { quant(a, wv).log_unit = -5; })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-levels-log-unit-on-direct", "Q9", range,
                    "'w.m' (LevelDirect) has log_unit 1: only LevelLog has one.",
                    [&](Archive& a) { quant(a, wm).log_unit = 1; }));
  s.Add(header_case("invalid-levels-step-source-below-minus-one", "Q9", range,
                    "'w' has step_source -2 (-1 or a tensor index).",
                    [&](Archive& a) { quant(a, w).step_source = -2; }));
  s.Add(header_case("invalid-levels-slope-without-source", "Q9", range,
                    "'w' has no step source but step_slope 1.",
                    [&](Archive& a) { quant(a, w).step_slope = 1; }));
  s.Add(header_case("invalid-levels-center-without-source", "Q9", range,
                    "'w' has no step source but step_center 5.",
                    [&](Archive& a) { quant(a, w).step_center = 5; }));
  s.Add(header_case("invalid-levels-limit-without-source", "Q9", range,
                    "'w' has no step source but step_limit 3.",
                    [&](Archive& a) { quant(a, w).step_limit = 3; }));
  s.Add(header_case("invalid-levels-slope-zero", "Q9", range,
                    "'w.m' has a step source and step_slope 0 (+1 or -1).",
                    [&](Archive& a) { quant(a, wm).step_slope = 0; })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-levels-slope-two", "Q9", range,
                    "'w.m' has a step source and step_slope 2 (+1 or -1).",
                    [&](Archive& a) { quant(a, wm).step_slope = 2; }));
  s.Add(header_case("invalid-levels-center-above-1100", "Q9", range,
                    "'w.m' has step_center 1101 (-1100..1100).",
                    [&](Archive& a) { quant(a, wm).step_center = 1101; })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  s.Add(header_case("invalid-levels-center-below-minus-1100", "Q9", range,
                    "'w.m' has step_center -1101 (-1100..1100).",
                    [&](Archive& a) { quant(a, wm).step_center = -1101; })
            .WithoutRuleFails(ErrorCode::kChunkChecksum));
  // Q4: level fields on a codebook kind.
  s.Add(header_case("invalid-levels-step-on-codebook", "Q4", range,
                    "'c' (Direct, a codebook kind) has step 0.5.",
                    [&](Archive& a) { quant(a, cb).step = 0.5f; }));
  s.Add(header_case("invalid-levels-step-source-on-codebook", "Q4", range,
                    "'c' (Direct, a codebook kind) has step_source 'w.v' (an F32 tensor of its "
                    "shape) and step_slope 1.",
                    [&](Archive& a) {
                      quant(a, cb).step_source = int32_t(wv);
                      quant(a, cb).step_slope = 1;
                    }));
  // Q10, after every tensor: the index names another floating tensor of the same shape.
  const std::string q10 =
      "the file is the valid base with only 'w.m''s step_source changed, which Q9 accepts "
      "(slope +1, step_source >= -1); Q10 is the only rule that judges the index, and without "
      "it there is no parent tensor for 7.9.1 to read (";
  s.Add(header_case("invalid-levels-step-source-itself", "Q10", range,
                    "'w.m''s step_source is its own index (1).",
                    [&](Archive& a) { quant(a, wm).step_source = int32_t(wm); })
            .ByConstruction(q10 + "a tensor steps by another's values)"));
  s.Add(header_case("invalid-levels-step-source-out-of-range", "Q10", range,
                    "'w.m''s step_source is 7, the number of tensors.",
                    [&](Archive& a) { quant(a, wm).step_source = 7; })
            .ByConstruction(q10 + "index 7 names no tensor)"));
  s.Add(header_case("invalid-levels-step-source-other-shape", "Q10", range,
                    "'w.m' (F32 [8, 6]) has step_source 's' (F32 [48]: the same number of "
                    "elements, another shape).",
                    [&](Archive& a) { quant(a, wm).step_source = int32_t(sv); })
            .ByConstruction(q10 + "element f + i of another shape is no co-located element)"));
  s.Add(header_case("invalid-levels-step-source-integer", "Q10", range,
                    "'w.m' has step_source 'i' (I32 [8, 6]).",
                    [&](Archive& a) { quant(a, wm).step_source = int32_t(iv); })
            .ByConstruction(q10 + "an integer has no binary exponent)"));
  // Q8.
  s.Add(header_case("invalid-levels-direct-scaled", "Q8", range,
                    "'w.m' (LevelDirect) has reference_scale 2: a LevelDirect tensor has no "
                    "reference.",
                    [&](Archive& a) { quant(a, wm).reference_scale = 2.0f; }));
  // Q7: a residual level kind or a step source in a keyframe. Each from a link with only that
  // level tensor (the others lossless), its link removed.
  {
    struct Q7Case {
      const char* name;
      const char* tensor;
      QuantizationInfo q;
      const char* what;
    };
    for (const Q7Case& c : {Q7Case{"invalid-levels-residual-in-keyframe", "w", qw,
                                   "'w' is LevelResidual"},
                            Q7Case{"invalid-levels-log-in-keyframe", "w.v", qv,
                                   "'w.v' is LevelLog"},
                            Q7Case{"invalid-levels-step-source-in-keyframe", "w.m", qm,
                                   "'w.m' is LevelDirect with a step source"}}) {
      Ckpt one = NextLossless(k, 9910);
      one.step = 200;
      SetLevels(one, c.tensor, c.q, PlannerLevels(48, 9920), &k);
      Model x = FromFile(Encode(one, opt, LinkTo(parent, k, "parent-1.ckz", 1), &k).bytes);
      x.required &= ~kFeatureReferenceChain;
      x.edit = [](Archive& a) { a.link.reset(); };
      s.Add(Invalid(c.name, "full", "Q7", ErrorCode::kBadLink,
                    std::string("A keyframe (no link) in which ") + c.what +
                        ": it needs a parent, and a keyframe has none.",
                    Assemble(x), feat)
                .WithoutRuleFails(ErrorCode::kReferenceRequired));
    }
  }
  // Q11, both ways.
  {
    Model x = FromFile(link.bytes);
    x.required &= ~kFeatureLevels;
    s.Add(ChainInvalid("invalid-levels-feature-bit-clear", "Q11", range,
                       "A link with level tensors whose required feature bit 6 (levels) is "
                       "clear.",
                       Assemble(x), parent.bytes, feat));
    Model b = FromFile(BaseFile());
    b.required |= kFeatureLevels;
    s.Add(Invalid("invalid-levels-feature-bit-set", "full", "Q11", range,
                  "A lossless keyframe whose required feature bit 6 (levels) is set: no tensor "
                  "has a level kind.",
                  Assemble(b)));
  }
  // Q12 (0.10): bit 9 only in a link with level tensors.
  {
    Model b = FromFile(BaseFile());
    b.required |= kFeatureMomentContext;
    s.Add(Invalid("invalid-moment-context-in-keyframe", "full", "Q12", range,
                  "A lossless keyframe whose required feature bit 9 (moment contexts) is set: "
                  "it is allowed only in a link some tensor of which has a level kind.",
                  Assemble(b)));
    // A keyframe with a level tensor (LevelDirect, no step source: allowed in a keyframe).
    Ckpt kl = k;
    SetLevels(kl, "w.m", LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A800000u)),
              PlannerLevels(48, 9921), nullptr);
    Model kx = FromFile(Encode(kl, opt).bytes);
    kx.required |= kFeatureMomentContext;
    s.Add(Invalid("invalid-moment-context-keyframe-with-levels", "full", "Q12", range,
                  "A keyframe with a level tensor ('w.m', LevelDirect) whose required feature "
                  "bit 9 (moment contexts) is set: bit 9 needs a link (a reader that checked "
                  "only for level tensors accepts it).",
                  Assemble(kx), {"codec:cml"}));
    Ckpt lossless = NextLossless(k, 9920);
    lossless.step = 200;
    Model x = FromFile(Encode(lossless, opt, LinkTo(parent, k, "parent-1.ckz", 1), &k).bytes);
    x.required |= kFeatureMomentContext;
    s.Add(ChainInvalid("invalid-moment-context-without-levels", "Q12", range,
                       "A lossless link (no tensor has a level kind, required feature bit 6 "
                       "clear) whose required feature bit 9 (moment contexts) is set.",
                       Assemble(x), parent.bytes, {}));
  }
  // C1: codec 5, and only codec 5, in level tensors.
  auto chunk_case = [&](const std::string& name, const std::string& rule, ErrorCode error,
                        const std::string& description, std::function<void(Model&)> edit) {
    Model x = FromFile(link.bytes);
    edit(x);
    return ChainInvalid(name, rule, error, description, Assemble(x), parent.bytes, feat);
  };
  s.Add(chunk_case("invalid-levels-codec-cm", "C1", ErrorCode::kChunkMalformed,
                   "The stream of 'w.m''s chunk 0 (a level tensor) is marked cm (3) instead of "
                   "cml (5); the file has required feature bit 2 (its codebook tensor 'c' is "
                   "cm-coded).",
                   [&](Model& x) {
                     Check(x.stored[wm][0][0] == 5, "cml expected");
                     x.stored[wm][0][0] = uint8_t(StreamCodec::kCm);
                   }));
  s.Add(chunk_case("invalid-levels-cml-in-codebook-tensor", "C1", ErrorCode::kChunkMalformed,
                   "The cm stream of 'c''s chunk 0 (Direct, a codebook kind) is marked cml (5).",
                   [&](Model& x) {
                     Check(x.stored[cb][0][0] == uint8_t(StreamCodec::kCm), "cm expected");
                     x.stored[cb][0][0] = uint8_t(StreamCodec::kCmLevels);
                   }));
  s.Add(chunk_case("invalid-levels-cml-in-lossless-tensor", "C1", ErrorCode::kChunkMalformed,
                   "The stored stream of the lossless F32 tensor 's' is marked cml (5).",
                   [&](Model& x) {
                     Check(x.stored[sv][0][0] == uint8_t(StreamCodec::kStored), "stored expected");
                     x.stored[sv][0][0] = uint8_t(StreamCodec::kCmLevels);
                   }));
  // C2: streams that do not decode. Chunk 0 of 'w.m' (24 levels; aux levels from 'w', no
  // parent levels: the keyframe has no level tensors), coded with a level beyond 2^24 - 1.
  const T& tm = l.tensors[wm];
  const std::vector<int32_t>& wl = l.tensors[w].levels;
  auto wm_stream = [&](int32_t poison) {
    std::vector<int32_t> lv(tm.levels.begin(), tm.levels.begin() + 24);
    lv[9] = poison;
    LevelModelInputs in;
    in.row = 6;
    in.aux = wl.data();
    Bytes st;
    EncodeLevelStream(in, lv.data(), lv.size(), &st);
    return st;
  };
  auto wm_outcome = [&](const Bytes& file) {
    return SpecDecode(file, "w.m", nullptr, wl.data()).outcome;
  };
  {
    Model x = FromFile(link.bytes);
    SetStream(x.stored[wm][0], wm_stream((1 << 24) + 14));
    const Bytes f = Assemble(x);
    Check(wm_outcome(f) == Outcome::kEscapePrefix, "escape-prefix: 24 ones expected");
    s.Add(ChainInvalid("invalid-levels-escape-prefix-24-ones", "C2",
                       ErrorCode::kChunkDecodeFailed,
                       "The cml stream of 'w.m''s chunk 0 codes element 9 with 14 unary ones "
                       "and then 24 escape-prefix ones (an encoder handed the level 2^24 + 14 "
                       "writes that): k > 23 stops decoding (7.9.3).",
                       f, parent.bytes, feat));
  }
  {
    Model x = FromFile(link.bytes);
    SetStream(x.stored[wm][0], wm_stream(-((1 << 24) + 13)));
    const Bytes f = Assemble(x);
    Check(wm_outcome(f) == Outcome::kEscapeMagnitude, "escape-magnitude: m > 2^24 - 1 expected");
    s.Add(ChainInvalid("invalid-levels-escape-beyond-max", "C2", ErrorCode::kChunkDecodeFailed,
                       "The cml stream of 'w.m''s chunk 0 codes element 9 with the escape "
                       "prefix k = 23 and 23 direct bits all 1: m = 15 + 2^23 - 1 + 2^23 - 1 = "
                       "2^24 + 13 > 2^24 - 1 (7.9.3).",
                       f, parent.bytes, feat));
  }
  {
    // Zeros after the written bytes keep it valid as long as the decoder reads them; then one
    // byte it never reads.
    Model x = FromFile(link.bytes);
    Bytes st(x.stored[wm][0].begin() + kStreamEntryBytes, x.stored[wm][0].end());
    auto valid = [&](const Bytes& b) {
      Model y = x;
      SetStream(y.stored[wm][0], b);
      const SpecLevels got = SpecDecode(Assemble(y), "w.m", nullptr, wl.data());
      return got.outcome == Outcome::kOk && got.levels == tm.levels;
    };
    Check(valid(st), "finish: the stream decodes");
    for (Bytes next = st; next.push_back(0), valid(next);) st = next;
    st.push_back(0x01);
    Check(!valid(st), "finish: the extended stream must fail");
    SetStream(x.stored[wm][0], st);
    const Bytes f = Assemble(x);
    Check(wm_outcome(f) == Outcome::kFinish, "finish: finish must fail");
    s.Add(ChainInvalid("invalid-levels-finish", "C2", ErrorCode::kChunkDecodeFailed,
                       "The cml stream of 'w.m''s chunk 0 extended with the zero bytes the "
                       "decoder reads after it and then one byte 0x01 that it never reads: "
                       "length > consumed at finish (7.7.1).",
                       f, parent.bytes, feat));
  }
  {
    // C5: a byte of 'w.m''s chunk 1 changed so that the stream still decodes, to other levels.
    Model x = FromFile(link.bytes);
    const Bytes st(x.stored[wm][1].begin() + kStreamEntryBytes, x.stored[wm][1].end());
    std::optional<Bytes> damaged;
    for (size_t at = st.size() / 2; at < st.size() && !damaged; ++at)
      for (uint8_t flip : {0x01, 0x10, 0x55, 0x80}) {
        Bytes b = st;
        b[at] ^= flip;
        Model y = x;
        SetStream(y.stored[wm][1], b);
        const SpecLevels got = SpecDecode(Assemble(y), "w.m", nullptr, wl.data());
        if (got.outcome == Outcome::kOk && got.levels != tm.levels) {
          damaged = b;
          break;
        }
      }
    Check(damaged.has_value(), "checksum: no damage that still decodes");
    SetStream(x.stored[wm][1], *damaged);
    s.Add(ChainInvalid("invalid-levels-checksum", "C5", ErrorCode::kChunkChecksum,
                       "A byte of the cml stream of 'w.m''s chunk 1 changed: the stream still "
                       "decodes (7.9.3), to other levels, and the chunk's CRC-32C does not "
                       "match.",
                       Assemble(x), parent.bytes, feat));
  }
  {
    // R3 (7.9.4 step 7): the parent lacks the step source. The link has a lossless 'u' that
    // the keyframe has not; 'w.m' steps by it (written against a copy of the keyframe with a
    // 'u', linked to the keyframe itself).
    Ckpt lu = l;
    T u = MakeT("u", DType::kF32, {8, 6}, 9930);
    u.predict = false;
    lu.tensors.push_back(u);
    lu.files[0].tensors.push_back("u");
    Ckpt ku = k;
    ku.tensors.push_back(u);
    SetLevels(lu, "w.m", Sourced(qm, int32_t(lu.Index("u")), 1, -6, 4), PlannerLevels(48, 9912), &ku);
    const Encoded f = Encode(lu, opt, LinkTo(parent, k, "parent-1.ckz", 1), &ku);
    s.Add(ChainInvalid("invalid-levels-step-source-missing-in-parent", "R3",
                       ErrorCode::kReferenceMismatch,
                       "'w.m' (LevelDirect) has step_source 'u', a lossless tensor of input.ckz "
                       "that parent-1.ckz does not have: its steps follow the parent's 'u' "
                       "(7.9.1), which is missing.",
                       f.bytes, parent.bytes, feat)
              .ByConstruction("the parent lacks the tensor altogether, R3's part that has no "
                              "switch (there is nothing to read), and the file has no coded "
                              "prolog (R4)"));
  }
  // The chain keyframe -> l -> `link`, with parent-1.ckz's (l's) 'w.m' chunk 0 given an
  // escape prefix of 24 ones (element 9) and its content id kept; `link`'s levels checked.
  struct DamagedChain {
    Bytes input, parent;
  };
  auto damaged_parent = [&](const Ckpt& link, const std::string& what) {
    const auto files = WriteChain({{k, Opt(StreamCodec::kStored, false)}, {l, opt}, {link, opt}},
                                  ChainNames(3));
    Model pm = FromFile(files[1].bytes);
    SetStream(pm.stored[wm][0], wm_stream((1 << 24) + 14));
    DamagedChain d{files[2].bytes, Assemble(pm)};
    Check(Must(ParseArchive(ByteSpan(d.parent)), "damaged parent").content_id == files[1].id,
          what + ": the parent keeps its content id");
    CheckLevels(what, link, &l, d.input, nullptr);
    return d;
  };
  {
    // C2 through the parent levels (7.9.4 step 3): parent-1.ckz's 'w.m' chunk 0 fails its
    // escape; input.ckz's 'w.m' (LevelDirect, no step source, no reference) needs those levels.
    Ckpt l2 = NextLossless(l, 9940);
    l2.step = 300;
    SetLevels(l2, "w", qw, PlannerLevels(48, 9941, &l.Find("w")->levels), &l);
    SetLevels(l2, "w.m", LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A800000u)),
              PlannerLevels(48, 9942, &tm.levels), &l);
    const DamagedChain d = damaged_parent(l2, "parent-levels-escape");
    // Without parent levels the link's 'w.m' does not decode to its levels (a decoder that
    // skipped them would report another error, or ChunkChecksum).
    const SpecLevels without = SpecDecode(d.input, "w.m", nullptr, l2.Find("w")->levels.data());
    Check(without.outcome != Outcome::kOk || without.levels != l2.Find("w.m")->levels,
          "parent-levels-escape: without parent levels the stream must not give its levels");
    Case c = ChainInvalid("invalid-levels-parent-levels-escape", "C2",
                          ErrorCode::kChunkDecodeFailed,
                          "input.ckz is intact: its 'w.m' (LevelDirect, no step source) has "
                          "parent levels from parent-1.ckz's 'w.m' (7.9.3). In parent-1.ckz the "
                          "cml stream of 'w.m''s chunk 0 has an escape prefix of 24 ones "
                          "(element 9). Decoding input.ckz's 'w.m' needs those levels, and the "
                          "error decoding them is its chunk's error (7.9.4 step 3): "
                          "ChunkDecodeFailed. A decoder that went on without parent levels "
                          "does not get input.ckz's levels (checked by the generator) and would "
                          "report another error.",
                          d.input, d.parent, feat);
    c.files.push_back({"parent-2.ckz", parent.bytes});
    s.Add(std::move(c));
  }
  {
    // (0.10) C2 through the moment aux levels (7.9.4 step 4): the same damaged parent-1.ckz;
    // input.ckz, written with moment contexts (bit 9), has only 'w' with a level kind, and its
    // other tensors are not predicted, so only 'w''s moment aux levels read parent-1.ckz's
    // 'w.m'.
    Ckpt l2 = NextLossless(l, 9950);
    l2.step = 300;
    l2.moment_context = true;
    for (T& t : l2.tensors) t.predict = t.name == "w";  // 'w''s residual reads the parent's 'w'
    SetLevels(l2, "w", qw, PlannerLevels(48, 9951, &l.Find("w")->levels), &l);
    const DamagedChain d = damaged_parent(l2, "moment-aux-escape");
    const SpecLevels without = SpecDecode(d.input, "w", l.Find("w")->levels.data(), nullptr);
    Check(without.outcome != Outcome::kOk || without.levels != l2.Find("w")->levels,
          "moment-aux-escape: without moment aux levels the stream must not give its levels");
    Case c = ChainInvalid("invalid-levels-moment-aux-escape", "C2", ErrorCode::kChunkDecodeFailed,
                          "input.ckz is intact and sets required feature bit 9: its level "
                          "weight 'w' (LevelResidual) has moment aux levels, parent-1.ckz's "
                          "'w.m' levels (7.9.3; its other tensors are lossless and not "
                          "predicted). In parent-1.ckz the cml stream of 'w.m''s chunk 0 has an "
                          "escape prefix of 24 ones (element 9). Decoding input.ckz's 'w' needs "
                          "those levels, and the error decoding them is its chunk's error "
                          "(7.9.4 step 4): ChunkDecodeFailed. A decoder that ignored bit 9 "
                          "(no aux levels for 'w') does not get input.ckz's levels (checked by "
                          "the generator) and would report another error.",
                          d.input, d.parent, {"codec:cml", "levels:moment-aux"});
    c.files.push_back({"parent-2.ckz", parent.bytes});
    s.Add(std::move(c));
  }
  {
    // C2, finish's `code < range` (7.7.1) alone. A direct bit (7.8.1) halves an odd range R
    // to (R - 1) / 2 and can leave code = range: when the code before it is R - 1, the bit is
    // 1 and every decision before it is the same as for any code in [0, R). So: 'w.m' with
    // its chunk 0's last level an escape whose last direct bit is 1, coded; then the stream's
    // value raised, inside that interval, to make the code R - 1 at that bit; the stream cut
    // where the decoder has read to at that point. Every level decodes as coded (the chunk's
    // CRC matches them), the length check passes, and only code < range fails.
    std::optional<Bytes> found;
    for (int32_t a = 16; a < 30 && !found; ++a)
      for (int32_t b = 16; b < 30 && !found; ++b) {
        // The range before the last direct bit is odd only when the escape state that ends
        // the prefix has a probability moved off 2^15's multiples: two escapes first use it.
        Ckpt lf = l;
        lf.step = 250;
        std::vector<int32_t> lv = tm.levels;
        lv[19] = a;
        lv[21] = -b;
        lv[23] = -17;  // escape prefix 1, one direct bit: 1
        SetLevels(lf, "w.m", qm, lv, &k);
        Model x = FromFile(Encode(lf, opt, LinkTo(parent, k, "parent-1.ckz", 1), &k).bytes);
        std::vector<DirectState> directs;
        const SpecLevels got = SpecDecode(Assemble(x), "w.m", nullptr, wl.data(), {}, nullptr, &directs);
        Check(got.outcome == Outcome::kOk && got.levels == lv, "finish-code: the coded stream");
        const DirectState* last = nullptr;
        for (const DirectState& ds : directs)
          if (ds.chunk == 0) last = &ds;
        Check(last != nullptr, "finish-code: chunk 0 has direct bits");
        if (last->range % 2 == 0 || last->consumed < 4) continue;
        // The code is the last 4 bytes read, less what the decisions took: adding to them adds
        // to the code (carries go into the bytes before).
        Bytes st(x.stored[wm][0].begin() + kStreamEntryBytes, x.stored[wm][0].end());
        st.resize(last->consumed, 0);  // bytes read past the end were zeros
        uint64_t add = uint64_t(last->range - 1) - last->code;
        for (size_t at = st.size(); add != 0 && at-- > 0;) {
          const uint64_t sum = uint64_t(st[at]) + (add & 0xFF);
          st[at] = uint8_t(sum);
          add = (add >> 8) + (sum >> 8);
        }
        Model y = x;
        SetStream(y.stored[wm][0], st);
        const Bytes f = Assemble(y);
        Reading lax;
        lax.finish_code = false;
        const SpecLevels strict = SpecDecode(f, "w.m", nullptr, wl.data());
        const SpecLevels loose = SpecDecode(f, "w.m", nullptr, wl.data(), lax);
        if (strict.outcome != Outcome::kFinish || loose.outcome != Outcome::kOk || loose.levels != lv)
          continue;
        found = f;
      }
    Check(found.has_value(), "finish-code: no stream found");
    s.Add(ChainInvalid("invalid-levels-finish-code", "C2", ErrorCode::kChunkDecodeFailed,
                       "The cml stream of 'w.m''s chunk 0 (24 levels, the last an escape whose "
                       "last direct bit is 1) ends with code = range: before that direct bit "
                       "the range R was odd and the code R - 1 (the stream's value raised "
                       "inside the interval of its decisions), so halving leaves code = "
                       "(R - 1) / 2 = range. Every level decodes as coded (the chunk's CRC-32C "
                       "matches them) and the stream has no byte the decoder does not read: "
                       "only finish's code < range fails (7.7.1). A decoder without that check "
                       "accepts the file (checked by the generator).",
                       *found, parent.bytes, feat));
  }
  {
    // R3 for a level tensor without elements (7.9.4, last paragraph): 'z' (F32 [0, 6],
    // LevelDirect, no chunks) steps by 'u' (F32 [0, 6], lossless), which the parent has as F64
    // [0, 6]. The parent has a lossless 'z' F32 [0, 6] too, so only the step source is wrong.
    Ckpt kz = k;
    kz.step = 150;
    T pu = MakeT("u", DType::kF64, {0, 6}, 9950), pz = MakeT("z", DType::kF32, {0, 6}, 9951);
    kz.tensors.push_back(pu);
    kz.tensors.push_back(pz);
    kz.files[0].tensors.push_back("u");
    kz.files[0].tensors.push_back("z");
    const Encoded pkz = Encode(kz, Opt(StreamCodec::kStored, false));
    Ckpt lz = l;
    T u = MakeT("u", DType::kF32, {0, 6}, 9952), z = MakeT("z", DType::kF32, {0, 6}, 9953);
    u.predict = false;
    z.predict = false;
    lz.tensors.push_back(u);
    lz.tensors.push_back(z);
    lz.files[0].tensors.push_back("u");
    lz.files[0].tensors.push_back("z");
    // Written against a parent whose 'u' is F32 (the writer reads the step source from it),
    // linked to the real one.
    Ckpt kw = kz;
    kw.tensors[kw.Index("u")] = u;
    SetLevels(lz, "z", Sourced(LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A800000u)),
                               int32_t(lz.Index("u")), 1, -6, 4),
              {}, &kw);
    const Encoded f = Encode(lz, opt, LinkTo(pkz, kz, "parent-1.ckz", 1), &kw);
    s.Add(ChainInvalid("invalid-levels-step-source-empty", "R3", ErrorCode::kReferenceMismatch,
                       "'z' (F32 [0, 6], LevelDirect, no elements and so no chunks) has "
                       "step_source 'u' (F32 [0, 6], lossless); parent-1.ckz has 'u' as F64 "
                       "[0, 6] (and a lossless 'z' F32 [0, 6]). R3 holds for the step source "
                       "of a tensor without elements too (7.9.1, 7.9.4's last paragraph), as "
                       "for 7.6's reference.",
                       f.bytes, pkz.bytes, {"levels:step-source"}));
  }
}

}  // namespace ckz::vectors
