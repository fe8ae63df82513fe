// The LSTM level model (draft spec 7.11, docs/lstm.md): a small recurrent network, stored in the header as integers
// and run with integer arithmetic only, whose per-decision logit is mixed with the cml model's
// probability (spec 7.9.3) by an online logistic mixer. Encoder and decoder run this same code,
// so both see the same probabilities on every machine; no float is involved.
#ifndef CKZ_COMMON_LSTM_MODEL_H_
#define CKZ_COMMON_LSTM_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ckz {

// Inputs of one step: the left, up, parent and aux levels of the element about to be coded
// (spec 7.9.3's values), each clipped to -clip..clip and shifted to 0..2 clip, 2 clip + 1 when
// absent (clip 1..7, a model parameter: a small history pays for every embedding row).
constexpr uint32_t kLstmFeatures = 4;
constexpr uint32_t kLstmMaxClip = 7;
// The tensor's role (0 weight, 1 first moment, 2 second moment, 3 anything else).
constexpr uint32_t kLstmRoles = 4;
// One output per mixed decision of cml's binarization: the zero flag, the sign, the 14 unary
// bins (escape and direct bits are coded by cml alone).
constexpr uint32_t kLstmSlots = 16;
constexpr uint32_t kLstmSlotZero = 0, kLstmSlotSign = 1, kLstmSlotUnary = 2;
constexpr uint32_t kLstmMixInputs = 3;  // cml's stretch(P0), the model's logit, a bias
// Hidden sizes 8, 16, 24 or 32: the recurrence's int32 sums cannot overflow (draft spec 7.11.3, docs/lstm.md).
constexpr uint32_t kLstmMaxHidden = 32;

// The model's parameters, as stored in the header (draft spec 7.11.2, docs/lstm.md). Gate rows in the order input,
// forget, cell, output (4 * hidden rows). Q10 means units of 2^-10, Q8 of 2^-8.
struct LstmModel {
  uint32_t hidden = 0;       // H
  uint32_t clip = 0;         // 1..7: features take V = 2 clip + 2 values
  uint32_t recur_shift = 0;  // 0..15: recurrent weights are in units of 2^-recur_shift
  uint32_t out_shift = 0;    // 0..15: output weights are in units of 2^-(out_shift - 2)
  std::vector<int16_t> gate_bias;  // [4H] Q10
  std::vector<int16_t> embed;      // [kLstmFeatures][V][4H] Q10
  std::vector<int16_t> role;       // [kLstmRoles][4H] Q10
  std::vector<int16_t> recur;      // [4H][H]
  std::vector<int16_t> out;        // [kLstmSlots][H]
  std::vector<int16_t> out_bias;   // [kLstmSlots] Q8 logit
  std::vector<int32_t> mix_init;   // [kLstmRoles][kLstmSlots][kLstmMixInputs] Q16

  static size_t GateBiasSize(uint32_t h) { return 4 * h; }
  static size_t EmbedSize(uint32_t h, uint32_t clip) { return kLstmFeatures * Values(clip) * 4 * h; }
  static uint32_t Values(uint32_t clip) { return 2 * clip + 2; }
  static size_t RoleSize(uint32_t h) { return kLstmRoles * 4 * h; }
  static size_t RecurSize(uint32_t h) { return 4 * h * h; }
  static size_t OutSize(uint32_t h) { return kLstmSlots * h; }
  static constexpr size_t kMixInitSize = kLstmRoles * kLstmSlots * kLstmMixInputs;
  // True when the sizes and shifts are those of draft spec 7.11.2's rules.
  bool WellFormed() const;
  // Bytes of the parameters as stored (int16 and int32 little-endian).
  size_t StoredBytes() const;
};

// One chunk's running state: the LSTM's h and c, and the mixer's weights (both start fresh
// at every chunk, so chunks decode independently).
class LstmCoderState {
 public:
  LstmCoderState(const LstmModel& model, uint32_t role);

  // Advances the LSTM by one element with its clipped features (0 .. V - 1 each).
  void Step(const uint8_t features[kLstmFeatures]);
  // The probability of a 0 bit (1/65536 units, 32..65504) for `slot`, mixing the model's
  // logit with cml's `p0`; Learn then adapts that slot's mixer to the coded bit.
  uint32_t Mix(uint32_t slot, uint32_t p0);
  void Learn(int bit);

  // A feature's value: the level clipped to -clip..clip, shifted to 0..2 clip.
  static uint8_t Feature(int32_t level, uint32_t clip) {
    const int32_t c = int32_t(clip);
    return uint8_t(level < -c ? 0 : level > c ? 2 * c : level + c);
  }
  static uint8_t Absent(uint32_t clip) { return uint8_t(2 * clip + 1); }

 private:
  const LstmModel& m_;
  const int16_t* role_row_;
  // The recurrent weights regrouped for the step's multiply-adds: for each pair of hidden
  // units (2p, 2p + 1) and gate row j, the two weights side by side. Same products, same sums.
  alignas(16) int16_t pairs_[4 * kLstmMaxHidden * kLstmMaxHidden];
  alignas(32) int16_t h_[kLstmMaxHidden] = {};
  alignas(32) int32_t c_[kLstmMaxHidden] = {};
  int32_t mix_[kLstmSlots][kLstmMixInputs];
  // The last Mix call's inputs, for Learn.
  int32_t in_[kLstmMixInputs] = {};
  uint32_t slot_ = 0, p_ = 0;
};

}  // namespace ckz

#endif  // CKZ_COMMON_LSTM_MODEL_H_
