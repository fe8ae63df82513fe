// The generator's own reading of spec 7.11 (the LSTM model: its tables, network and mixer,
// 7.11.1 - 7.11.5), written from the spec apart from the library, shared by the vectors of the
// lstm level codec (vectors_lstm.cc, codec 6: SpecDecode, a cml decoder around it) and of the
// lstm-cm index codec (vectors_lstm_cm.cc, codec 7, 7.11.7). `Reading` also holds the
// misreadings that the cases must catch. Deterministic models for the cases (Moderate).
#ifndef CKZ_CONFORMANCE_GENERATOR_SPEC_LSTM_H_
#define CKZ_CONFORMANCE_GENERATOR_SPEC_LSTM_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ckz/lstm_model.h"
#include "spec_range_decoder.h"
#include "vector_builder.h"

namespace ckz::vectors::spec_lstm {

// ------------------------------------------------------------------------------------------
// Spec 7.11.5: the tables from their formulas (binary64; no argument is near a half).

struct Tables {
  int32_t sigmoid[2048], tanh[2048], stretch[4096], squash[4095];
};

inline int32_t RoundHalfAway(double v) { return int32_t(std::round(v)); }

inline const Tables& SpecTables() {
  static const Tables t = [] {
    Tables x;
    for (int n = 0; n < 2048; ++n) {
      const double v = double(8 * n - 8188) / 1024;
      x.sigmoid[n] = RoundHalfAway(1024 / (1 + std::exp(-v)));
      x.tanh[n] = RoundHalfAway(1024 * std::tanh(v));
    }
    for (int i = 0; i < 4096; ++i) {
      const double p = double(16 * i + 8) / 65536;
      x.stretch[i] = std::clamp(RoundHalfAway(256 * std::log(p / (1 - p))), -2047, 2047);
    }
    for (int t = -2047; t <= 2047; ++t)
      x.squash[t + 2047] = std::clamp(RoundHalfAway(65536 / (1 + std::exp(-double(t) / 256))), 32, 65504);
    Check(x.squash[2047] == 32768, "SQUASH[2047] must be 32768");
    return x;
  }();
  return t;
}

// ------------------------------------------------------------------------------------------
// Spec 7.11.2 - 7.11.4: the network and the mixer, as `reading` has them (the defaults are the
// spec's; the others are misreadings that the cases must catch).

struct Reading {
  bool use_model = true;       // false: a codec-6 stream read as cml (the model ignored)
  bool fresh_per_chunk = true; // false: h, c and the mixer's weights carried across chunks
  bool role = true;            // false: every tensor read with role index 0
  bool floor_shifts = true;    // false: every >> of a signed value rounds toward zero
  bool step_first = true;      // false: the step after the level instead of before it
  bool model_logit = true;     // false: in_1 = 0 (the network's output ignored by the mixer)
  bool learn = true;           // false: the mixer's weights stay at mix_init
  bool mixer_int64 = true;     // false: the mixer's sum wraps like an int32
  bool clamp_logit = true;     // false: y not clamped to -2047..2047
  bool clamp_weight = true;    // false: the mixer's weights not clamped to -2^20..2^20
  bool clamp_cell = true;      // false: the cell c not clamped to -32767..32767
  bool adapt_state = true;     // false: the coder's own state not updated after a mixed decision
};

// How often each clamp (and each end of the tables) was reached: [0] the low side, [1] high.
struct Clamps {
  uint64_t feature[2] = {}, gate[2] = {}, cell[2] = {}, act_cell[2] = {}, logit[2] = {},
           mix[2] = {}, weight[2] = {}, p[2] = {};
};

// What the valid cases reached, over all of them: each must be reached somewhere.
struct Coverage {
  std::set<uint32_t> slots, roles, hidden, clips;
  uint64_t lstm_escapes = 0, lstm_chunks = 0, cml_chunks = 0;
};

inline int64_t Shr(int64_t x, int s, bool floor) {
  if (floor) return x >= 0 ? x / (int64_t{1} << s) : -((-x + (int64_t{1} << s) - 1) / (int64_t{1} << s));
  return x / (int64_t{1} << s);
}

class SpecNetwork {
 public:
  SpecNetwork(const LstmModel& m, uint32_t role, const Reading& reading, Clamps* clamps)
      : m_(m), r_(reading.role ? role : 0), reading_(reading), clamps_(clamps) {
    Reset();
  }
  void Reset() {
    h_.assign(m_.hidden, 0);
    c_.assign(m_.hidden, 0);
    for (uint32_t s = 0; s < 16; ++s)
      for (uint32_t k = 0; k < 3; ++k) w_[s][k] = m_.mix_init[(r_ * 16 + s) * 3 + k];
  }
  int32_t Feature(bool present, int64_t v) {
    const int64_t clip = m_.clip;
    if (!present) return int32_t(2 * clip + 1);
    if (v < -clip) ++clamps_->feature[0];
    if (v > clip) ++clamps_->feature[1];
    return int32_t(std::clamp(v, -clip, clip) + clip);
  }
  void Step(const int32_t x[4]) {
    const uint32_t H = m_.hidden, G = 4 * H, V = 2 * m_.clip + 2;
    std::vector<int64_t> z(G);
    for (uint32_t j = 0; j < G; ++j) {
      int64_t acc = 0;
      for (uint32_t k = 0; k < H; ++k) acc += int64_t(m_.recur[j * H + k]) * h_[k];
      Check(acc >= -(int64_t{1} << 30) && acc <= (int64_t{1} << 30), "7.11.3: |acc| <= 2^30");
      int64_t sum = Shr(acc, int(m_.recur_shift), reading_.floor_shifts) + m_.gate_bias[j] +
                    m_.role[r_ * G + j];
      for (uint32_t f = 0; f < 4; ++f) sum += m_.embed[(f * V + uint32_t(x[f])) * G + j];
      z[j] = sum;
    }
    const Tables& t = SpecTables();
    for (uint32_t k = 0; k < H; ++k) {
      const int64_t ig = Act(t.sigmoid, z[k], clamps_->gate), fg = Act(t.sigmoid, z[H + k], clamps_->gate);
      const int64_t gg = Act(t.tanh, z[2 * H + k], clamps_->gate), og = Act(t.sigmoid, z[3 * H + k], clamps_->gate);
      const int64_t c = Shr(fg * c_[k] + ig * gg, 10, reading_.floor_shifts);
      if (c < -32767) ++clamps_->cell[0];
      if (c > 32767) ++clamps_->cell[1];
      c_[k] = reading_.clamp_cell ? std::clamp<int64_t>(c, -32767, 32767) : c;
      h_[k] = Shr(og * Act(t.tanh, c_[k], clamps_->act_cell), 10, reading_.floor_shifts);
      Check(h_[k] >= -1024 && h_[k] <= 1024, "7.11.3: |h| <= 1024");
    }
  }
  // Decodes one decision of slot `s` whose cml state is `st`.
  int Decide(SpecRangeDecoder& rc, uint32_t s, State& st, Coverage* cover) {
    if (cover) cover->slots.insert(s);
    const Tables& t = SpecTables();
    int64_t acc = 0;
    for (uint32_t k = 0; k < m_.hidden; ++k) acc += int64_t(m_.out[s * m_.hidden + k]) * h_[k];
    const int64_t y0 = Shr(acc, int(m_.out_shift), reading_.floor_shifts) + m_.out_bias[s];
    if (y0 < -2047) ++clamps_->logit[0];
    if (y0 > 2047) ++clamps_->logit[1];
    const int64_t y = reading_.clamp_logit ? std::clamp<int64_t>(y0, -2047, 2047) : y0;
    const int64_t in[3] = {t.stretch[st.p >> 4], reading_.model_logit ? y : 0, 256};
    int64_t dot = 0;
    for (int k = 0; k < 3; ++k) dot += w_[s][k] * in[k];
    if (!reading_.mixer_int64) dot = int64_t(int32_t(uint32_t(uint64_t(dot))));
    const int64_t t0 = Shr(dot, 16, reading_.floor_shifts);
    if (t0 < -2047) ++clamps_->mix[0];
    if (t0 > 2047) ++clamps_->mix[1];
    const int64_t p = t.squash[std::clamp<int64_t>(t0, -2047, 2047) + 2047];
    if (p == 32) ++clamps_->p[0];
    if (p == 65504) ++clamps_->p[1];
    const int bit = rc.BitAt(uint32_t(p));
    const int64_t err = Shr((bit == 0 ? 65536 : 0) - p, 4, reading_.floor_shifts);
    if (reading_.learn)
      for (int k = 0; k < 3; ++k) {
        const int64_t v = w_[s][k] + Shr(in[k] * err * 3, 14, reading_.floor_shifts);
        if (v < -(1 << 20)) ++clamps_->weight[0];
        if (v > (1 << 20)) ++clamps_->weight[1];
        w_[s][k] = reading_.clamp_weight ? std::clamp<int64_t>(v, -(1 << 20), 1 << 20) : v;
      }
    if (reading_.adapt_state) Adapt(st, bit);
    return bit;
  }

 private:
  int64_t Act(const int32_t* table, int64_t z, uint64_t* clamp) {
    if (z < -8192) ++clamp[0];
    if (z > 8191) ++clamp[1];
    return table[(std::clamp<int64_t>(z, -8192, 8191) + 8192) >> 3];
  }
  const LstmModel& m_;
  uint32_t r_;
  Reading reading_;
  Clamps* clamps_;
  std::vector<int64_t> h_, c_;
  int64_t w_[16][3];
};

enum class Outcome { kOk, kEscapePrefix, kEscapeMagnitude, kFinish };

struct SpecLevels {
  Outcome outcome = Outcome::kOk;
  std::vector<int32_t> levels;
  std::vector<StreamCodec> codecs;  // each chunk's
};

inline int Sign(int64_t v) { return v == 0 ? 0 : v > 0 ? 1 : 2; }
inline uint64_t Abs(int64_t v) { return uint64_t(v < 0 ? -v : v); }

inline uint32_t RoleIndex(Role role) {
  return role == Role::kWeight ? 0 : role == Role::kMoment1 ? 1 : role == Role::kMoment2 ? 2 : 3;
}

// The levels of tensor `name` of `file`, chunk by chunk: cml chunks (7.9.3) and lstm chunks
// (7.11) with `model` (the file's own or its parent's), the parent's and the aux tensor's levels
// (of the whole tensor; null: none).
SpecLevels SpecDecode(const Bytes& file, const std::string& name, const int32_t* parent,
                      const int32_t* aux, const LstmModel* model, const Reading& reading = {},
                      Clamps* clamps = nullptr, Coverage* cover = nullptr);

// ------------------------------------------------------------------------------------------
// Models (deterministic: splitmix64, integers only).

// A model with moderate weights, like a trained one: gates and embeddings within about +-1.5
// (Q10), a recurrence of about +-0.8, output weights that give logits of a few units, and a
// mixer that starts at cml's probability with the network's logit added at 0.25 .. 0.6
// (different per role and slot), so that the network moves every mixed probability.
// `checked` false: sizes outside LM1's are allowed (for the invalid cases).
std::shared_ptr<LstmModel> Moderate(uint32_t hidden, uint32_t clip, uint64_t seed,
                                    bool checked = true);
// Saturated weights for the clamp cases (every int16 at an extreme; spec_lstm.cc says how).
std::shared_ptr<LstmModel> SaturatedModel(uint64_t seed);

}  // namespace ckz::vectors::spec_lstm

#endif  // CKZ_CONFORMANCE_GENERATOR_SPEC_LSTM_H_
