// Definitions for spec_lstm.h.
#include "spec_lstm.h"

#include "common/bytes.h"
#include "common/level_model.h"
#include "common/lstm_model.h"
#include "format/chunk_layout.h"

namespace ckz::vectors::spec_lstm {

// The levels of tensor `name` of `file`, chunk by chunk: cml chunks (7.9.3) and lstm chunks
// (7.11) with `model` (the file's own or its parent's), the parent's and the aux tensor's levels
// (of the whole tensor; null: none).
SpecLevels SpecDecode(const Bytes& file, const std::string& name, const int32_t* parent,
                      const int32_t* aux, const LstmModel* model, const Reading& reading,
                      Clamps* clamps, Coverage* cover) {
  const Archive a = Must(ParseArchive(ByteSpan(file)), "SpecDecode");
  const auto index = a.FindTensor(name);
  Check(index.has_value(), "SpecDecode: no tensor '" + name + "'");
  const TensorInfo& t = a.tensors[*index];
  const uint64_t w = DTypeSize(t.dtype);
  const uint64_t row = t.shape.size() >= 2 ? t.shape.back() : 0;
  Clamps scratch;
  if (!clamps) clamps = &scratch;
  std::optional<SpecNetwork> net;
  SpecLevels out;
  out.levels.assign(t.num_elements, 0);
  int32_t* q = out.levels.data();
  for (size_t chunk = 0; chunk < t.chunks.size(); ++chunk) {
    const ChunkInfo& ch = t.chunks[chunk];
    const StreamCodec codec = StreamCodec(file[ch.offset]);
    out.codecs.push_back(codec);
    Check((codec == StreamCodec::kCmLevels || codec == StreamCodec::kLstmLevels) &&
              LoadLE32(file.data() + ch.offset + 1) + 5 == ch.stored_length,
          "SpecDecode: '" + name + "' has a chunk that is not one cml or lstm stream");
    const bool mixed = codec == StreamCodec::kLstmLevels && reading.use_model;
    if (mixed) {
      Check(model != nullptr, "SpecDecode: an lstm chunk without a model");
      if (!net) net.emplace(*model, RoleIndex(t.role), reading, clamps);
      else if (reading.fresh_per_chunk) net->Reset();
    }
    if (cover) {
      ++(codec == StreamCodec::kLstmLevels ? cover->lstm_chunks : cover->cml_chunks);
      if (codec == StreamCodec::kLstmLevels) {
        cover->roles.insert(RoleIndex(t.role));
        cover->hidden.insert(model->hidden);
        cover->clips.insert(model->clip);
      }
    }
    SpecRangeDecoder rc(file.data() + ch.offset + 5, ch.stored_length - 5);
    State zero[27], sign[27], unary[4][14], escape[24];
    const uint64_t f = ch.raw_offset / w, count = ch.raw_length / w;
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t g = f + i;
      const uint64_t c = row ? g % row : 0;
      const bool has_left = i >= 1 && (row == 0 || c != 0), has_up = row && i >= row;
      const int64_t left = has_left ? q[g - 1] : 0;
      const int64_t up = has_up ? q[g - row] : 0;
      const int64_t p = parent ? parent[g] : 0, x = aux ? aux[g] : 0;
      int32_t features[4] = {};
      if (mixed) {
        features[0] = net->Feature(has_left, left);
        features[1] = net->Feature(has_up, up);
        features[2] = net->Feature(parent != nullptr, p);
        features[3] = net->Feature(aux != nullptr, x);
        if (reading.step_first) net->Step(features);
      }
      auto decide = [&](uint32_t slot, State& st) {
        return mixed ? net->Decide(rc, slot, st, cover) : rc.Bit(st);
      };
      const int nb = (left != 0) + (up != 0);
      const int pc = parent ? 1 + (p != 0) : 0, ac = aux ? 1 + (x != 0) : 0;
      int32_t level = 0;
      if (decide(0, zero[(pc * 3 + nb) * 3 + ac]) == 1) {
        const bool negative = decide(1, sign[(Sign(p) * 3 + Sign(x)) * 3 + Sign(left)]) == 1;
        const uint64_t sum = Abs(left) + Abs(up) + 2 * Abs(p);
        const int mc = sum == 0 ? 0 : sum <= 2 ? 1 : sum <= 6 ? 2 : 3;
        uint64_t m = 1;
        while (m <= 14 && decide(uint32_t(m + 1), unary[mc][m - 1]) == 1) ++m;
        if (m == 15) {
          if (cover && mixed) ++cover->lstm_escapes;
          uint32_t k = 0;
          while (rc.Bit(escape[std::min(k, 23u)]) == 1)
            if (++k > 23) {
              out.outcome = Outcome::kEscapePrefix;
              return out;
            }
          uint64_t low = 0;
          for (uint32_t b = 0; b < k; ++b) low = 2 * low + uint64_t(rc.Direct());
          m = 15 + (uint64_t{1} << k) - 1 + low;
          if (m > uint64_t(kMaxLevel)) {
            out.outcome = Outcome::kEscapeMagnitude;
            return out;
          }
        }
        level = negative ? -int32_t(m) : int32_t(m);
      }
      q[g] = level;
      if (mixed && !reading.step_first) net->Step(features);
    }
    if (!rc.Finish()) {
      out.outcome = Outcome::kFinish;
      return out;
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// Models (deterministic: splitmix64, integers only).

static int16_t Uniform(Rng& r, int32_t amp) { return int16_t(int32_t(r.Below(uint64_t(2 * amp + 1))) - amp); }

// A model with moderate weights, like a trained one: gates and embeddings within about +-1.5
// (Q10), a recurrence of about +-0.8, output weights that give logits of a few units, and a
// mixer that starts at cml's probability with the network's logit added at 0.25 .. 0.6
// (different per role and slot), so that the network moves every mixed probability.
// `checked` false: sizes outside LM1's are allowed (for the invalid cases).
std::shared_ptr<LstmModel> Moderate(uint32_t hidden, uint32_t clip, uint64_t seed,
                                    bool checked) {
  auto m = std::make_shared<LstmModel>();
  m->hidden = hidden;
  m->clip = clip;
  m->recur_shift = 10;
  m->out_shift = 9;
  Rng r(seed);
  auto fill = [&](std::vector<int16_t>& v, size_t n, int32_t amp) {
    v.resize(n);
    for (int16_t& x : v) x = Uniform(r, amp);
  };
  fill(m->gate_bias, LstmModel::GateBiasSize(hidden), 600);
  for (uint32_t k = 0; k < hidden; ++k) m->gate_bias[hidden + k] += 1024;  // forget gates open
  fill(m->embed, LstmModel::EmbedSize(hidden, clip), 1500);
  fill(m->role, LstmModel::RoleSize(hidden), 700);
  fill(m->recur, LstmModel::RecurSize(hidden), 800);
  fill(m->out, LstmModel::OutSize(hidden), 400);
  fill(m->out_bias, kLstmSlots, 200);
  m->mix_init.resize(LstmModel::kMixInitSize);
  for (uint32_t role = 0; role < kLstmRoles; ++role)
    for (uint32_t s = 0; s < kLstmSlots; ++s) {
      int32_t* w = m->mix_init.data() + (role * kLstmSlots + s) * kLstmMixInputs;
      w[0] = 65536 - int32_t(r.Below(8192));
      w[1] = 16384 + int32_t(r.Below(24576));
      w[2] = int32_t(r.Below(4096)) - 2048;
    }
  Check(!checked || m->WellFormed(), "Moderate: the model must be well formed");
  return m;
}

// Saturated weights (full-lstm-saturated, full-lstm-cm-saturated): every int16 at an extreme
// and mix_init at +-2^20, so that every clamp of 7.11.3 and 7.11.4 is reached on both sides.
// Units 0 and 1 have every input to their gates at +32767 (unit 1's cell candidate at -32768)
// and no recurrence: their cells run into +-32767. The mixer: role 0 every weight at +-2^20
// (t past +-2047, P at its ends); role 1 the coder's stretch at 1 and the network's logit at
// 1/8, so that y's clamp shows in t; role 3 the stretch at 2^20 (16.0) and the bias at -2^20,
// which cancel where the coder's P0 is near 0.73 (STRETCH 256): there t is not clamped, and
// the stretch's weight, pushed past 2^20 and clamped, shows. H 8, clip 2.
std::shared_ptr<LstmModel> SaturatedModel(uint64_t seed) {
  auto model = std::make_shared<LstmModel>();
  const uint32_t H = 8, G = 4 * H, clip = 2;
  model->hidden = H;
  model->clip = clip;
  model->recur_shift = 0;
  model->out_shift = 2;
  Rng r(seed);
  auto extreme = [&]() { return int16_t(r.Below(2) ? 32767 : -32768); };
  auto fill = [&](std::vector<int16_t>& v, size_t n) {
    v.resize(n);
    for (int16_t& x : v) x = extreme();
  };
  fill(model->gate_bias, LstmModel::GateBiasSize(H));
  fill(model->embed, LstmModel::EmbedSize(H, clip));
  fill(model->role, LstmModel::RoleSize(H));
  fill(model->recur, LstmModel::RecurSize(H));
  fill(model->out, LstmModel::OutSize(H));
  fill(model->out_bias, kLstmSlots);
  model->mix_init.resize(LstmModel::kMixInitSize);
  for (uint32_t role = 0; role < kLstmRoles; ++role)
    for (uint32_t slot = 0; slot < kLstmSlots; ++slot) {
      int32_t* w = model->mix_init.data() + (role * kLstmSlots + slot) * kLstmMixInputs;
      for (uint32_t in = 0; in < kLstmMixInputs; ++in)
        w[in] = role == 1   ? (in == 0 ? 65536 : in == 1 ? 8192 : 0)
                : role == 3 ? (in == 0 ? 1 << 20 : in == 1 ? 0 : -(1 << 20))
                            : (r.Below(2) ? 1 << 20 : -(1 << 20));
    }
  const uint32_t V = LstmModel::Values(clip);
  for (uint32_t unit = 0; unit < 2; ++unit)
    for (uint32_t gate = 0; gate < 4; ++gate) {
      const uint32_t j = gate * H + unit;
      const int16_t v = unit == 1 && gate == 2 ? -32768 : 32767;
      model->gate_bias[j] = v;
      for (uint32_t role = 0; role < kLstmRoles; ++role) model->role[role * G + j] = v;
      for (uint32_t f = 0; f < 4 * V; ++f) model->embed[f * G + j] = v;
      for (uint32_t k = 0; k < H; ++k) model->recur[j * H + k] = 0;
    }
  return model;
}

}  // namespace ckz::vectors::spec_lstm
