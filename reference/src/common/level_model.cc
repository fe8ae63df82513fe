#include "common/level_model.h"

#include <algorithm>
#include <cmath>

namespace ckz {
namespace {

// 0: absent or zero, 1: positive, 2: negative.
inline uint32_t SignClass(int32_t v) { return v > 0 ? 1 : v < 0 ? 2 : 0; }

inline uint32_t Magnitude(int32_t v) { return uint32_t(v < 0 ? -int64_t(v) : v); }

struct EncodeSide {
  RangeEncoder& rc;
  int Code(BitModel& m, int bit) {
    rc.Encode(m, bit);
    return bit;
  }
  uint32_t Direct(uint32_t value, unsigned count) {
    rc.EncodeDirect(value, count);
    return value;
  }
};

struct DecodeSide {
  RangeDecoder& rc;
  int Code(BitModel& m, int) { return rc.Decode(m); }
  uint32_t Direct(uint32_t, unsigned count) { return rc.DecodeDirect(count); }
};

// Adapts the states only: the encoder's rehearsal of a choice.
struct UpdateSide {
  int Code(BitModel& m, int bit) {
    m.Update(bit);
    return bit;
  }
  uint32_t Direct(uint32_t value, unsigned) { return value; }
};

// Adapts the states and records every decision with the probability it was coded at.
struct TraceSide {
  std::vector<LevelModel::Decision>* out;
  LevelModel::Decision::Kind kind = LevelModel::Decision::kZero;
  uint8_t slot = 0;
  int Code(BitModel& m, int bit) {
    out->push_back({kind, slot, uint16_t(m.P0()), uint8_t(bit)});
    m.Update(bit);
    return bit;
  }
  uint32_t Direct(uint32_t value, unsigned count) {
    while (count-- > 0)
      out->push_back({LevelModel::Decision::kDirect, 0, 32768, uint8_t((value >> count) & 1)});
    return value;
  }
};

// Codec cml+lstm (spec 7.11.4): the zero flag, sign and unary decisions are coded at the
// mixer's probability (cml's state still adapts to the bit); escapes by cml alone.
struct MixedEncodeSide {
  RangeEncoder& rc;
  LstmCoderState& lstm;
  int slot = -1;
  int Code(BitModel& m, int bit) {
    if (slot < 0) {
      rc.Encode(m, bit);
      return bit;
    }
    rc.EncodeP0(lstm.Mix(uint32_t(slot), m.P0()), bit);
    lstm.Learn(bit);
    m.Update(bit);
    return bit;
  }
  uint32_t Direct(uint32_t value, unsigned count) {
    rc.EncodeDirect(value, count);
    return value;
  }
};

struct MixedDecodeSide {
  RangeDecoder& rc;
  LstmCoderState& lstm;
  int slot = -1;
  int Code(BitModel& m, int) {
    if (slot < 0) return rc.Decode(m);
    const int bit = rc.DecodeP0(lstm.Mix(uint32_t(slot), m.P0()));
    lstm.Learn(bit);
    m.Update(bit);
    return bit;
  }
  uint32_t Direct(uint32_t, unsigned count) { return rc.DecodeDirect(count); }
};

// -log2(p / 65536) in 1/256 bits for p = 16 * i + 8 (i = 0..4095): the encoder's cost table.
struct CostTable {
  uint32_t bits[4096];
  CostTable() {
    for (int i = 0; i < 4096; ++i)
      bits[i] = uint32_t(std::lround(-256.0 * std::log2((16.0 * i + 8.0) / 65536.0)));
  }
};
const CostTable& Costs() {
  static const CostTable table;
  return table;
}
inline uint32_t BitCost(const BitModel& m, int bit) {
  const uint32_t p0 = m.P0();
  return Costs().bits[(bit ? 65536u - p0 : p0) >> 4];
}

}  // namespace

// Spec 7.9.3's contexts of element i. Inlined into the coding loops: it runs once per element.
[[gnu::always_inline]] inline LevelModel::Context Contexts(const LevelModelInputs& in,
                                                           const int32_t* levels, size_t i,
                                                           uint64_t col,
                                                           const LevelModelConfig& cfg) {
  const uint64_t row = in.row;
  // Neighbours inside this chunk only, so chunks decode independently.
  const bool has_left = i > 0 && (row == 0 || col != 0);
  const bool has_up = row != 0 && i >= row;
  const int32_t left = has_left ? levels[i - 1] : 0;
  const int32_t up = has_up ? levels[i - row] : 0;
  const uint32_t nb = cfg.zero_neighbours ? (left != 0) + (up != 0) : 0;
  const uint32_t pc = in.parent && cfg.zero_parent ? 1 + (in.parent[i] != 0) : 0;
  const uint32_t ac = in.aux && cfg.zero_aux ? 1 + (in.aux[i] != 0) : 0;
  const uint32_t ps = in.parent && cfg.sign_parent ? SignClass(in.parent[i]) : 0;
  const uint32_t as = in.aux && cfg.sign_aux ? SignClass(in.aux[i]) : 0;
  // Magnitude class from the neighbours and the parent (|level| < 2^24: no overflow).
  const uint64_t a =
      (cfg.magnitude_neighbours ? uint64_t(Magnitude(left)) + Magnitude(up) : 0) +
      (in.parent && cfg.magnitude_parent ? 2 * uint64_t(Magnitude(in.parent[i])) : 0);
  LevelModel::Context c;
  c.zero = (pc * 3 + nb) * 3 + ac;
  c.sign = (ps * 3 + as) * 3 + (cfg.sign_left ? SignClass(left) : 0);
  c.magnitude = a == 0 ? 0 : a <= 2 ? 1 : a <= 6 ? 2 : 3;
  return c;
}

LevelModel::Context LevelModel::ContextOf(const LevelModelInputs& in, const int32_t* levels,
                                          size_t i, uint64_t col, const LevelModelConfig& cfg) {
  return Contexts(in, levels, i, col, cfg);
}

namespace {
// Tells a tracing side which decision comes next; a no-op for the others.
template <class Side>
inline void Mark(Side&, LevelModel::Decision::Kind, uint32_t) {}
inline void Mark(TraceSide& s, LevelModel::Decision::Kind kind, uint32_t slot) {
  s.kind = kind;
  s.slot = uint8_t(slot);
}
inline void Mark(MixedEncodeSide& s, LevelModel::Decision::Kind kind, uint32_t slot) {
  s.slot = LstmSlotOf(kind, slot);
}
inline void Mark(MixedDecodeSide& s, LevelModel::Decision::Kind kind, uint32_t slot) {
  s.slot = LstmSlotOf(kind, slot);
}
}  // namespace

template <class Side>
int64_t LevelModel::Code(Side& side, const Context& c, int32_t level) {
  const uint32_t mag = Magnitude(level);
  Mark(side, Decision::kZero, 0);
  if (!side.Code(zero_[c.zero], mag != 0)) return 0;
  Mark(side, Decision::kSign, 0);
  const int negative = side.Code(sign_[c.sign], level < 0);
  uint32_t m = 1;
  BitModel* unary = unary_[c.magnitude];
  while (m <= kUnary && (Mark(side, Decision::kUnary, m - 1), side.Code(unary[m - 1], mag > m)))
    ++m;
  if (m > kUnary) {
    // Exp-Golomb (order 0) of the rest u = |level| - 15: k prefix ones, a zero, k direct bits.
    const uint32_t u = mag - (kUnary + 1);
    uint32_t k = 0;
    while (true) {
      Mark(side, Decision::kEscape, k);
      const int more = side.Code(escape_[std::min(k, kEscapeBits)], (u + 1) >> (k + 1) != 0);
      if (!more) break;
      if (++k > kEscapeBits) return kTooLarge;
    }
    const uint32_t low = side.Direct((u + 1) & ((uint32_t{1} << k) - 1), k);
    m = (kUnary + 1) + ((uint32_t{1} << k) - 1 + low);
    if (m > kMaxMagnitude) return kTooLarge;
  }
  return negative ? -int64_t(m) : int64_t(m);
}

int64_t LevelModel::Encode(RangeEncoder& rc, const Context& c, int32_t level) {
  EncodeSide side{rc};
  return Code(side, c, level);
}

int64_t LevelModel::Decode(RangeDecoder& rc, const Context& c) {
  DecodeSide side{rc};
  return Code(side, c, 0);
}

void LevelModel::Update(const Context& c, int32_t level) {
  UpdateSide side;
  Code(side, c, level);
}

void LevelModel::Trace(const Context& c, int32_t level, std::vector<Decision>* out) {
  TraceSide side{out};
  Code(side, c, level);
}

uint32_t LevelModel::Cost(const Context& c, int32_t level) const {
  const uint32_t mag = Magnitude(level);
  uint32_t cost = BitCost(zero_[c.zero], mag != 0);
  if (mag == 0) return cost;
  cost += BitCost(sign_[c.sign], level < 0);
  const BitModel* unary = unary_[c.magnitude];
  uint32_t m = 1;
  for (; m <= kUnary; ++m) {
    cost += BitCost(unary[m - 1], mag > m);
    if (mag <= m) return cost;
  }
  const uint32_t u = mag - (kUnary + 1);
  uint32_t k = 0;
  while ((u + 1) >> (k + 1)) {
    cost += BitCost(escape_[std::min(k, kEscapeBits)], 1);
    ++k;
  }
  return cost + BitCost(escape_[std::min(k, kEscapeBits)], 0) + 256 * k;
}


template <class Side>
int64_t LevelModel::CodeMixed(Side& side, const Context& c, int32_t level) {
  return Code(side, c, level);
}

void EncodeLevelStream(const LevelModelInputs& in, const int32_t* levels, size_t count,
                       std::vector<uint8_t>* out, const LevelModelConfig& config) {
  RangeEncoder rc(out);
  if (in.lstm) {
    LevelModel model;
    LstmCoderState lstm(*in.lstm, in.role);
    MixedEncodeSide side{rc, lstm};
    uint64_t col = in.row ? in.first % in.row : 0;
    uint8_t f[kLstmFeatures];
    for (size_t i = 0; i < count; ++i) {
      LstmFeaturesOf(in, levels, i, col, in.lstm->clip, f);
      lstm.Step(f);
      model.CodeMixed(side, Contexts(in, levels, i, col, config), levels[i]);
      if (in.row != 0 && ++col == in.row) col = 0;
    }
    rc.Finish();
    return;
  }
  LevelModel model;
  uint64_t col = in.row ? in.first % in.row : 0;
  for (size_t i = 0; i < count; ++i) {
    model.Encode(rc, Contexts(in, levels, i, col, config), levels[i]);
    if (in.row != 0 && ++col == in.row) col = 0;
  }
  rc.Finish();
}

LevelDecodeResult DecodeLevelStream(const LevelModelInputs& in, const uint8_t* src, size_t size,
                                    int32_t* out, size_t count, size_t* bad_element) {
  RangeDecoder rc(src, size);
  LevelModel model;
  uint64_t col = in.row ? in.first % in.row : 0;
  if (in.lstm) {
    LstmCoderState lstm(*in.lstm, in.role);
    MixedDecodeSide side{rc, lstm};
    uint8_t f[kLstmFeatures];
    for (size_t i = 0; i < count; ++i) {
      LstmFeaturesOf(in, out, i, col, in.lstm->clip, f);
      lstm.Step(f);
      const int64_t level = model.CodeMixed(side, Contexts(in, out, i, col, LevelModelConfig{}), 0);
      if (level == LevelModel::kTooLarge) {
        *bad_element = i;
        return LevelDecodeResult::kTooLarge;
      }
      out[i] = int32_t(level);
      if (in.row != 0 && ++col == in.row) col = 0;
    }
    return rc.Finish() ? LevelDecodeResult::kOk : LevelDecodeResult::kBadStream;
  }
  for (size_t i = 0; i < count; ++i) {
    const int64_t level = model.Decode(rc, Contexts(in, out, i, col, LevelModelConfig{}));
    if (level == LevelModel::kTooLarge) {
      *bad_element = i;
      return LevelDecodeResult::kTooLarge;
    }
    out[i] = int32_t(level);
    if (in.row != 0 && ++col == in.row) col = 0;
  }
  return rc.Finish() ? LevelDecodeResult::kOk : LevelDecodeResult::kBadStream;
}

}  // namespace ckz
