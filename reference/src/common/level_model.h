// The context model of the "cml" level-stream codec (spec 7.9.3): how a chunk's signed integer
// levels become binary decisions and which adaptive BitModel codes each one. Encoder and
// decoder run the same code (one path), so their contexts cannot drift; the encoder can also
// ask what a level would cost before choosing it (rate-distortion optimised quantization).
#ifndef CKZ_COMMON_LEVEL_MODEL_H_
#define CKZ_COMMON_LEVEL_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/lstm_model.h"
#include "common/range_coder.h"

namespace ckz {

// Everything the model of one chunk may look at besides its own, already coded, levels.
struct LevelModelInputs {
  uint64_t first = 0;  // the chunk's first element, counted in the tensor
  uint64_t row = 0;    // elements per row (the last dimension) of a >= 2-D tensor, else 0
  // The parent link's levels of the tensor of the same name at the same elements (temporal
  // context), or null; the aux tensor's levels at the same elements (spec 7.7.2's rule), or null.
  const int32_t* parent = nullptr;
  const int32_t* aux = nullptr;
  // (0.9) Codec cml+lstm (spec 7.11): the model mixed with cml's states, and the tensor's role
  // (0 weight, 1 first moment, 2 second moment, 3 other); null for plain cml.
  const LstmModel* lstm = nullptr;
  uint32_t role = 0;
};

// Which contexts are on. The format uses the default; the others exist only so that the
// measurement tool (tools/bench/level_measure.cc) can show what each context is worth.
struct LevelModelConfig {
  bool zero_parent = true, zero_neighbours = true, zero_aux = true;
  bool sign_parent = true, sign_aux = true, sign_left = true;
  bool magnitude_neighbours = true, magnitude_parent = true;
};

// The adaptive states of one chunk and the binarization of spec 7.9.3.
class LevelModel {
 public:
  static constexpr uint32_t kUnary = 14;       // magnitudes 1..15 in unary
  static constexpr uint32_t kEscapeBits = 23;  // Exp-Golomb prefix of the rest, at most 23
  static constexpr uint32_t kMaxMagnitude = (1u << 24) - 1;  // kMaxLevel

  // The contexts of element i (levels[0 .. i-1] already known; col = (first + i) mod row).
  struct Context {
    uint32_t zero = 0, sign = 0, magnitude = 0;
  };
  static Context ContextOf(const LevelModelInputs& in, const int32_t* levels, size_t i,
                           uint64_t col, const LevelModelConfig& config = {});

  // Codes `level` (encoder) or decodes one (decoder; `level` ignored). Returns the level, or
  // kTooLarge when a decoded magnitude exceeds kMaxMagnitude (or its escape prefix 23 bits).
  static constexpr int64_t kTooLarge = int64_t{1} << 40;
  int64_t Encode(RangeEncoder& rc, const Context& c, int32_t level);
  int64_t Decode(RangeDecoder& rc, const Context& c);

  // What coding `level` would cost now, in 1/256 bits (encoder side).
  uint32_t Cost(const Context& c, int32_t level) const;
  // Adapts the states as coding `level` would, without coding it (encoder side).
  void Update(const Context& c, int32_t level);

  // One binary decision of the binarization with the probability the model gave it: what a
  // second model mixed with this one sees (measurement tools, model training).
  struct Decision {
    enum Kind : uint8_t { kZero, kSign, kUnary, kEscape, kDirect } kind;
    uint8_t slot;  // kUnary: m - 1 (0..13); kEscape: k; else 0
    uint16_t p0;   // P0 of the state before the update (kDirect: 32768)
    uint8_t bit;
  };
  // Like Update, and appends the decisions made to `out`.
  void Trace(const Context& c, int32_t level, std::vector<Decision>* out);
  // Codes through a side of the cml+lstm codec (level_model.cc's mixed sides).
  template <class Side>
  int64_t CodeMixed(Side& side, const Context& c, int32_t level);

 private:
  template <class Side>
  int64_t Code(Side& side, const Context& c, int32_t level);

  BitModel zero_[27];
  BitModel sign_[27];
  BitModel unary_[4][kUnary];
  BitModel escape_[kEscapeBits + 1];
};

// Spec 7.11.3's inputs of element i for the LSTM: the left, up, parent and aux levels, each
// clipped to the model's range (LstmCoderState::Feature), or its absent value.
inline void LstmFeaturesOf(const LevelModelInputs& in, const int32_t* levels, size_t i,
                           uint64_t col, uint32_t clip, uint8_t f[kLstmFeatures]) {
  const bool has_left = i > 0 && (in.row == 0 || col != 0);
  const bool has_up = in.row != 0 && i >= in.row;
  const uint8_t absent = LstmCoderState::Absent(clip);
  f[0] = has_left ? LstmCoderState::Feature(levels[i - 1], clip) : absent;
  f[1] = has_up ? LstmCoderState::Feature(levels[i - in.row], clip) : absent;
  f[2] = in.parent ? LstmCoderState::Feature(in.parent[i], clip) : absent;
  f[3] = in.aux ? LstmCoderState::Feature(in.aux[i], clip) : absent;
}

// The LSTM output a decision of cml's binarization is mixed with (kLstmSlot*), or -1 for
// decisions cml codes alone (escape prefix and direct bits).
inline int LstmSlotOf(LevelModel::Decision::Kind kind, uint32_t slot) {
  return kind == LevelModel::Decision::kZero    ? int(kLstmSlotZero)
         : kind == LevelModel::Decision::kSign  ? int(kLstmSlotSign)
         : kind == LevelModel::Decision::kUnary ? int(kLstmSlotUnary + slot)
                                                : -1;
}

// Appends the coded stream of `count` levels (|level| <= kMaxLevel) to `out`.
void EncodeLevelStream(const LevelModelInputs& in, const int32_t* levels, size_t count,
                       std::vector<uint8_t>* out, const LevelModelConfig& config = {});

enum class LevelDecodeResult {
  kOk,
  kTooLarge,   // a magnitude above 2^24 - 1 (*bad_element: the chunk's element)
  kBadStream,  // the coder's final check failed
};

LevelDecodeResult DecodeLevelStream(const LevelModelInputs& in, const uint8_t* src, size_t size,
                                    int32_t* out, size_t count, size_t* bad_element);

}  // namespace ckz

#endif  // CKZ_COMMON_LEVEL_MODEL_H_
