// (0.9) The LSTM level model's parameters (spec 7.11): a small recurrent network stored in a
// file's header (or its parent's) as integers. Decoders run it with integer arithmetic only
// (reference/src/common/lstm_model.h); the encoder-side trainer (reference/train) makes one.
#ifndef CKZ_LSTM_MODEL_H_
#define CKZ_LSTM_MODEL_H_

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
// Hidden sizes 8, 16, 24 or 32: the recurrence's int32 sums cannot overflow (spec 7.11.3).
constexpr uint32_t kLstmMaxHidden = 32;
constexpr int32_t kLstmMixLimit = 1 << 20;  // |mix_init| and the mixer's weights, Q16

// The model's parameters (spec 7.11.1). Gate rows in the order input, forget, cell, output
// (4 * hidden rows). Q10 means units of 2^-10, Q8 of 2^-8, Q16 of 2^-16.
struct LstmModel {
  uint32_t hidden = 0;       // H: 8, 16, 24 or 32
  uint32_t clip = 0;         // 1..7: features take V = 2 clip + 2 values
  uint32_t recur_shift = 0;  // 0..15: recurrent weights are in units of 2^-recur_shift
  uint32_t out_shift = 0;    // 2..15: output weights are in units of 2^-(out_shift - 2)
  std::vector<int16_t> gate_bias;  // [4H] Q10
  std::vector<int16_t> embed;      // [kLstmFeatures][V][4H] Q10
  std::vector<int16_t> role;       // [kLstmRoles][4H] Q10
  std::vector<int16_t> recur;      // [4H][H]
  std::vector<int16_t> out;        // [kLstmSlots][H]
  std::vector<int16_t> out_bias;   // [kLstmSlots] Q8 logit
  std::vector<int32_t> mix_init;   // [kLstmRoles][kLstmSlots][kLstmMixInputs] Q16

  static size_t GateBiasSize(uint32_t h) { return 4 * size_t(h); }
  static size_t EmbedSize(uint32_t h, uint32_t clip) {
    return kLstmFeatures * size_t(Values(clip)) * 4 * h;
  }
  static uint32_t Values(uint32_t clip) { return 2 * clip + 2; }
  static size_t RoleSize(uint32_t h) { return kLstmRoles * 4 * size_t(h); }
  static size_t RecurSize(uint32_t h) { return 4 * size_t(h) * h; }
  static size_t OutSize(uint32_t h) { return kLstmSlots * size_t(h); }
  static constexpr size_t kMixInitSize = kLstmRoles * kLstmSlots * kLstmMixInputs;
  // The length of the stored parameter blob (LstmModel.params) for these sizes.
  static size_t ParamsBytes(uint32_t h, uint32_t clip) {
    return 2 * (GateBiasSize(h) + EmbedSize(h, clip) + RoleSize(h) + RecurSize(h) + OutSize(h) +
                kLstmSlots) +
           4 * kMixInitSize;
  }
  // True when the sizes, shifts and mixer weights are those of spec 7.11.1's rules.
  bool WellFormed() const;
  // True when the integer coder can run the model without overrunning its state (hidden even
  // and 2..32, clip at most 7, every array of the size they give): weaker than WellFormed(),
  // which readers require (rule LM1); the writer refuses less, so that test files can break LM1.
  bool Runnable() const;
  // Bytes of the parameters as stored (int16 and int32 little-endian).
  size_t StoredBytes() const;
  // The stored parameter blob (spec 7.11.1): the arrays in the order above, int16 then the
  // int32 mix_init, little-endian.
  std::vector<uint8_t> Params() const;
  // Fills the arrays from a blob for `hidden` and `clip` as set (any byte values); false when
  // its length is not ParamsBytes(hidden, clip). Says nothing of the rules: WellFormed() does.
  bool SetParams(const uint8_t* data, size_t size);
};

}  // namespace ckz

#endif  // CKZ_LSTM_MODEL_H_
