// The LSTM level model (spec 7.11): a small recurrent network, stored in the header as
// integers (ckz/lstm_model.h) and run with integer arithmetic only, whose per-decision logit
// is mixed with the cml model's probability (spec 7.9.3) by an online logistic mixer. Encoder and decoder run this same code,
// so both see the same probabilities on every machine; no float is involved.
#ifndef CKZ_COMMON_LSTM_MODEL_H_
#define CKZ_COMMON_LSTM_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ckz/lstm_model.h"
#include "ckz/types.h"

namespace ckz {

// Spec 7.11.2: the role input r of a tensor's chunks.
inline uint32_t LstmRoleOf(Role role) {
  return role == Role::kWeight ? 0 : role == Role::kMoment1 ? 1 : role == Role::kMoment2 ? 2 : 3;
}

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
  // gate_bias + the role's row, summed once per chunk (the same integers as per step).
  alignas(16) int32_t base_[4 * kLstmMaxHidden];
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
