// The LSTM level model (spec 7.11, coding tool 8, format 0.9), full profile. Every valid file is
// checked against this file's own reading of 7.11 — the network, the mixer and the tables
// computed from their formulas, around a cml decoder (7.7.1, 7.7.2, 7.8.1, 7.9.3), written from
// the spec apart from the library — and against readings a decoder could get wrong (state kept
// across chunks, the role ignored, shifts rounding toward zero, the step after the level, the
// network's output or the mixer's learning left out, the mixer's sum in int32), which must
// decode other levels. The saturated case is checked to reach every clamp of 7.11.3 and 7.11.4
// on both sides. Case names say `lstm` and never `levels`, so the outsiders' walk of 7.9
// (independent/spec_walk.py, `*levels*`) does not take them.
#include "vectors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "ckz_generated.h"
#include "common/bytes.h"
#include "common/level_model.h"
#include "common/lstm_model.h"
#include "common/quantize.h"
#include "format/chunk_layout.h"
#include "spec_lstm.h"
#include "spec_range_decoder.h"

namespace ckz::vectors {
using namespace spec_lstm;  // NOLINT: the shared reading of 7.11
namespace {

using ModelPtr = std::shared_ptr<const LstmModel>;

// ------------------------------------------------------------------------------------------
// Checkpoints and their level tensors.

SpecLevels SpecTensor(const Ckpt& c, const Ckpt* parent, const Bytes& file, const T& t,
                      const LstmModel* model, const Reading& reading = {},
                      Clamps* clamps = nullptr, Coverage* cover = nullptr) {
  return SpecDecode(file, t.name, SpecParentLevels(parent, t), SpecAuxLevels(c, parent, t),
                    model, reading, clamps, cover);
}

// Checks every level tensor of `c`, written as `file` (a link of `parent`, or a keyframe, whose
// model is `model`): its chunks decode to its levels by this file's reading of 7.9.3 and 7.11.
// Returns the chunks' codecs, tensor by tensor.
std::vector<StreamCodec> CheckLstm(const std::string& what, const Ckpt& c, const Ckpt* parent,
                                   const Bytes& file, const LstmModel* model, Coverage* cover,
                                   Clamps* clamps = nullptr) {
  std::vector<StreamCodec> codecs;
  for (const T& t : c.tensors) {
    if (!t.HasLevels()) continue;
    const SpecLevels got = SpecTensor(c, parent, file, t, model, {}, clamps, cover);
    Check(got.outcome == Outcome::kOk && got.levels == t.levels,
          what + ": '" + t.name + "': its chunks do not decode (7.9.3, 7.11) to its levels");
    codecs.insert(codecs.end(), got.codecs.begin(), got.codecs.end());
  }
  return codecs;
}

// Checks that each misreading in `readings` decodes some level tensor of `c` (as `file`) to
// other levels, or fails.
void CheckMisreadings(const std::string& what, const Ckpt& c, const Ckpt* parent,
                      const Bytes& file, const LstmModel* model,
                      const std::vector<std::pair<std::string, Reading>>& readings) {
  for (const auto& [name, reading] : readings) {
    bool caught = false;
    for (const T& t : c.tensors) {
      if (!t.HasLevels()) continue;
      const SpecLevels got = SpecTensor(c, parent, file, t, model, reading);
      caught = caught || got.outcome != Outcome::kOk || got.levels != t.levels;
    }
    Check(caught, what + ": a decoder that " + name + " decodes the same levels");
  }
}

// The misreadings every case with lstm chunks checks (the saturated case adds its own).
std::vector<std::pair<std::string, Reading>> Misreadings(bool chunks, bool roles) {
  std::vector<std::pair<std::string, Reading>> out;
  Reading r;
  r.use_model = false;
  out.push_back({"reads lstm chunks as cml", r});
  r = {};
  r.model_logit = false;
  out.push_back({"leaves the network's output out of the mixer", r});
  r = {};
  r.learn = false;
  out.push_back({"never adapts the mixer's weights", r});
  r = {};
  r.floor_shifts = false;
  out.push_back({"rounds shifts of negative values toward zero", r});
  r = {};
  r.step_first = false;
  out.push_back({"steps the network after each level instead of before it", r});
  if (chunks) {
    r = {};
    r.fresh_per_chunk = false;
    out.push_back({"keeps h, c and the mixer's weights across chunks", r});
  }
  if (roles) {
    r = {};
    r.role = false;
    out.push_back({"reads every tensor with role index 0", r});
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// Data.

// PlannerLevels with an escape one time in 40 (these vectors were made so).
std::vector<int32_t> Levels(uint64_t n, uint64_t seed, const std::vector<int32_t>* like = nullptr,
                            unsigned zeros = 3) {
  return PlannerLevels(n, seed, like, zeros, 40);
}

const std::vector<int32_t>* LevelsOf(const Ckpt& c, const std::string& name) {
  const T* t = c.Find(name);
  return t && t->HasLevels() ? &t->levels : nullptr;
}

// Level options: lossless tensors stored, level chunks of `chunk` bytes, each with the model
// (`force`) or the smaller of cml and lstm.
EncodeOptions LstmOpt(uint64_t chunk, bool force = true) {
  EncodeOptions o = IndexOpt(StreamCodec::kStored, chunk);
  if (force) o.force_codec = StreamCodec::kLstmLevels;
  return o;
}

size_t Count(const std::vector<StreamCodec>& codecs, StreamCodec c) {
  return size_t(std::count(codecs.begin(), codecs.end(), c));
}

const QuantizationInfo kResidual = LevelQuant(QuantKind::kLevelResidual, F32FromBits(0x39800000u));
const QuantizationInfo kDirect = LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A800000u));
const QuantizationInfo kLog = LevelQuant(QuantKind::kLevelLog, F32FromBits(0x30000000u), 1.0f, 1);

}  // namespace

void LstmValid(Suite& s) {
  Coverage cover;
  {
    // A link with its own model (H 8, clip 3), every level chunk lstm: an Adam weight 'w'
    // (2-D, so `up` exists; chunks start mid-row) with both moments (aux levels), and an Other
    // 'x' (1-D): the four role indices.
    Ckpt k = Single({MakeT("w", DType::kF32, {12, 10}, 11001, Role::kWeight),
                     MakeT("w.m", DType::kF32, {12, 10}, 11002, Role::kMoment1, 0),
                     MakeT("w.v", DType::kF32, {12, 10}, 11003, Role::kMoment2, 0),
                     MakeT("x", DType::kF32, {30}, 11004), MakeT("n", DType::kI64, {}, 11005)});
    k.step = 11000;
    Ckpt l = NextLossless(k, 11010);
    l.step = 11100;
    SetLevels(l, "w", kResidual, Levels(120, 11011), &k);
    SetLevels(l, "w.m", kDirect, Levels(120, 11012), &k);
    SetLevels(l, "w.v", kLog, Levels(120, 11013), &k);
    SetLevels(l, "x", kDirect, Levels(30, 11014, nullptr, 1), &k);
    const ModelPtr model = Moderate(8, 3, 11020);
    Case c = ChainCase(
        "full-lstm-own-model",
        "A link (input.ckz) of a lossless keyframe whose header holds an LSTM model (spec "
        "7.11: hidden 8, clip 3, recur_shift 10, out_shift 9, moderate weights) and whose "
        "every level chunk has stream codec 6 (lstm): cml's decisions (7.9.3) with the zero "
        "flag, sign and unary bins at the mixer's probability. 'w' (F32 [12, 10], Weight, "
        "LevelResidual) in chunks of 34 elements (they start mid-row: `up` is absent in a "
        "chunk's first 10 levels), 'w.m' (Moment1, LevelDirect; aux levels 'w'), 'w.v' "
        "(Moment2, LevelLog; aux levels 'w.m') and 'x' (F32 [30], Other, 1-D): role indices "
        "0 to 3. The I64 'n' is lossless. Checked by the generator against its own reading "
        "of 7.11; a decoder that kept h, c or the mixer's weights across chunks, ignored the "
        "role, rounded shifts toward zero, stepped after the level, or left the network's "
        "logit or the mixer's learning out decodes other levels.",
        {{k, Opt(StreamCodec::kStored, false)}, {l, LstmOpt(136), {model, false}}},
        {"lstm:own", "lstm:hidden-8", "levels:aux", "quant:level-residual", "quant:level-direct",
         "quant:level-log"});
    const std::vector<StreamCodec> codecs =
        CheckLstm("own-model", l, &k, c.files[0].second, model.get(), &cover);
    Check(Count(codecs, StreamCodec::kLstmLevels) == codecs.size() && codecs.size() >= 10,
          "own-model: every level chunk lstm");
    CheckMisreadings("own-model", l, &k, c.files[0].second, model.get(), Misreadings(true, true));
    s.Add(std::move(c));
  }
  {
    // cml and lstm chunks side by side, as the writer chooses (each level chunk coded both
    // ways, the smaller kept). The model knows one thing cml's contexts do not: the sign of
    // `up` (cml's sign context reads the parent's, the aux's and left's signs). Hidden unit 0
    // holds tanh of the sign of `up` (its forget gate shut, its input and output gates open),
    // and the sign decision's logit is that unit; everything else is zero, so the other
    // decisions are coded at about cml's probability. Where each column keeps one sign, the
    // writer takes lstm; where signs are random, cml.
    auto model = std::make_shared<LstmModel>();
    {
      const uint32_t H = 24, clip = 1, G = 4 * H, V = LstmModel::Values(clip);
      model->hidden = H;
      model->clip = clip;
      model->recur_shift = 10;
      model->out_shift = 9;
      model->gate_bias.assign(LstmModel::GateBiasSize(H), 0);
      model->embed.assign(LstmModel::EmbedSize(H, clip), 0);
      model->role.assign(LstmModel::RoleSize(H), 0);
      model->recur.assign(LstmModel::RecurSize(H), 0);
      model->out.assign(LstmModel::OutSize(H), 0);
      model->out_bias.assign(kLstmSlots, 0);
      model->gate_bias[0] = 8000;       // unit 0's input gate open
      model->gate_bias[H] = -8000;      // its forget gate shut
      model->gate_bias[3 * H] = 8000;   // its output gate open
      model->embed[(1 * V + 0) * G + 2 * H] = -4096;         // up < 0: cell candidate -1
      model->embed[(1 * V + 2 * clip) * G + 2 * H] = 4096;   // up > 0: +1
      model->out[kLstmSlotSign * H + 0] = 1000;
      model->mix_init.assign(LstmModel::kMixInitSize, 0);
      for (uint32_t role = 0; role < kLstmRoles; ++role)
        for (uint32_t slot = 0; slot < kLstmSlots; ++slot) {
          int32_t* w = model->mix_init.data() + (role * kLstmSlots + slot) * kLstmMixInputs;
          w[0] = 65536;
          w[1] = slot == kLstmSlotSign ? 65536 : 0;
        }
      Check(model->WellFormed(), "mixed-codecs: well formed");
    }
    Ckpt k = Single({MakeT("w", DType::kF32, {16, 12}, 11101, Role::kWeight),
                     MakeT("w.m", DType::kF32, {16, 12}, 11102, Role::kMoment1, 0)});
    k.step = 11200;
    // parent-1.ckz: a link with a model of its own (hidden 8, clip 1), every level chunk lstm:
    // the input's parent levels are its levels, decoded with that model, not the input's.
    Ckpt p = NextLossless(k, 11105);
    p.step = 11250;
    SetLevels(p, "w", kResidual, Levels(192, 11106), &k);
    SetLevels(p, "w.m", kDirect, Levels(192, 11107), &k);
    const ModelPtr parent_model = Moderate(8, 1, 11108);
    Ckpt l = NextLossless(p, 11110);
    l.step = 11300;
    // Chunks of 48 levels (4 rows): in chunks 0 and 2 each column keeps one sign (a pattern of
    // its own per tensor), in chunks 1 and 3 signs are random.
    std::vector<int32_t> w = Levels(192, 11111, nullptr, 2), m = Levels(192, 11112, nullptr, 2);
    Rng cols(11113);
    int32_t sw[12], sm[12];
    for (int c = 0; c < 12; ++c) sw[c] = cols.Below(2) ? 1 : -1, sm[c] = cols.Below(2) ? 1 : -1;
    for (size_t i = 0; i < 192; ++i)
      if ((i / 48) % 2 == 0) w[i] = std::abs(w[i]) * sw[i % 12], m[i] = std::abs(m[i]) * sm[i % 12];
    SetLevels(l, "w", kResidual, w, &p);
    SetLevels(l, "w.m", kDirect, m, &p);
    Case c = ChainCase(
        "full-lstm-mixed-codecs",
        "input.ckz -> parent-1.ckz -> parent-2.ckz (a lossless keyframe). input.ckz's header "
        "holds an LSTM model (hidden 24, clip 1: features take 4 values) and its level chunks "
        "are cml (5) or lstm (6), as the reference writer chose for each the smaller coding. "
        "The model's hidden unit 0 follows the sign of `up` (feature x_1), which cml's sign "
        "contexts do not read, and only the sign decision's logit uses it. 'w' (F32 [16, 12], "
        "Weight, LevelResidual) and 'w.m' (Moment1, LevelDirect, aux 'w') in chunks of 48 "
        "levels: in chunks 0 and 2 every column keeps one sign (lstm chosen), in chunks 1 and "
        "3 signs are random (cml chosen). An lstm chunk's network and mixer start fresh, "
        "whatever the chunk before it was. parent-1.ckz holds another model (hidden 8, clip 1) "
        "and codes every level chunk with it: input.ckz's parent levels are those chunks' "
        "levels, decoded with parent-1's model, not input.ckz's (7.11; a decoder that took the "
        "link's model decodes other levels). Checked by the generator against its own reading "
        "of 7.11.",
        {{k, Opt(StreamCodec::kStored, false)},
         {p, LstmOpt(192), {parent_model, false}},
         {l, LstmOpt(192, false), {model, false}}},
        {"lstm:own", "lstm:mixed-codecs", "lstm:parent-other-model", "lstm:hidden-24",
         "lstm:clip-1", "levels:parent", "levels:aux", "quant:level-residual",
         "quant:level-direct"});
    {
      const std::vector<StreamCodec> pc =
          CheckLstm("mixed-codecs parent", p, &k, c.files[1].second, parent_model.get(), &cover);
      Check(Count(pc, StreamCodec::kLstmLevels) == pc.size(), "mixed-codecs: parent all lstm");
      // The parent's 'w' decoded with input.ckz's model, as parent levels of input.ckz's 'w'.
      const SpecLevels wrong = SpecDecode(c.files[1].second, "w", nullptr, nullptr, model.get());
      const SpecLevels got =
          wrong.outcome == Outcome::kOk
              ? SpecDecode(c.files[0].second, "w", wrong.levels.data(), nullptr, model.get())
              : wrong;
      Check(got.outcome != Outcome::kOk || got.levels != l.Find("w")->levels,
            "mixed-codecs: the parent's chunks decoded with the link's model give the same levels");
    }
    const std::vector<StreamCodec> codecs =
        CheckLstm("mixed-codecs", l, &p, c.files[0].second, model.get(), &cover);
    std::vector<StreamCodec> expected;
    for (int t = 0; t < 2; ++t)
      for (int chunk = 0; chunk < 4; ++chunk)
        expected.push_back(chunk % 2 ? StreamCodec::kCmLevels : StreamCodec::kLstmLevels);
    Check(codecs == expected,
          "mixed-codecs: the writer must choose lstm for chunks 0 and 2, cml for 1 and 3 (" +
              std::to_string(Count(codecs, StreamCodec::kLstmLevels)) + " lstm, " +
              std::to_string(Count(codecs, StreamCodec::kCmLevels)) + " cml)");
    CheckMisreadings("mixed-codecs", l, &p, c.files[0].second, model.get(),
                     {Misreadings(false, false)[0], Misreadings(false, false)[1]});
    s.Add(std::move(c));
  }
  {
    // A chain: link 1 holds the model, links 2 and 3 take it from their parent (link 3 through
    // link 2), each with parent levels from the link before.
    Ckpt k = Single({MakeT("w", DType::kF32, {8, 6}, 11201, Role::kWeight),
                     MakeT("w.m", DType::kF32, {8, 6}, 11202, Role::kMoment1, 0),
                     MakeT("b", DType::kF32, {20}, 11203, Role::kWeight)});
    k.step = 11400;
    std::vector<Ckpt> links;
    links.reserve(3);
    const Ckpt* prev = &k;
    for (int i = 0; i < 3; ++i) {
      Ckpt l = NextLossless(*prev, uint64_t(11210 + 10 * i));
      l.step = 11500 + 100 * i;
      for (const char* name : {"w", "w.m", "b"}) {
        const T& t = l.tensors[l.Index(name)];
        SetLevels(l, name, std::string(name) == "w.m" ? kDirect : kResidual,
                  Levels(Elements(t.shape), uint64_t(11211 + 10 * i + t.bytes.size()),
                         LevelsOf(*prev, name)),
                  prev);
      }
      l.moment_context = i == 2;  // (0.10) input.ckz: 'w' reads parent-1.ckz's 'w.m'
      links.push_back(std::move(l));
      prev = &links.back();
    }
    const ModelPtr model = Moderate(16, 2, 11230);
    const std::vector<Level> levels = {{k, Opt(StreamCodec::kStored, false)},
                                       {links[0], LstmOpt(96), {model, false}},
                                       {links[1], LstmOpt(96), {model, true}},
                                       {links[2], LstmOpt(96), {model, true}}};
    Case c = ChainCase(
        "full-lstm-chain-from-parent",
        "input.ckz -> parent-1.ckz -> parent-2.ckz -> parent-3.ckz (a lossless keyframe). "
        "parent-2.ckz holds an LSTM model (hidden 16, clip 2); parent-1.ckz and input.ckz have "
        "lstm_model_from_parent: parent-1's model is parent-2's, and input.ckz's is "
        "parent-1's, that is parent-2's again (10.2, R5). Every level chunk of the three links "
        "is lstm: 'w' (F32 [8, 6], LevelResidual), 'w.m' (LevelDirect, aux 'w') and 'b' "
        "(F32 [20], LevelResidual) in chunks of 24 levels; in parent-1.ckz and input.ckz "
        "each has parent levels (7.9.3), the network's feature x_2. input.ckz also sets "
        "required feature bit 9 (0.10): its 'w' has moment aux levels, parent-1.ckz's 'w.m' "
        "levels, as the feature x_3 and in cml's contexts ('b' has no Moment1: none). Checked "
        "by the generator against its own reading of 7.11.",
        levels, {"lstm:own", "lstm:from-parent", "lstm:hidden-16", "levels:parent", "levels:aux",
                 "levels:moment-aux", "quant:level-residual", "quant:level-direct"});
    for (size_t i = 1; i < levels.size(); ++i) {
      const Bytes& file = c.files[levels.size() - 1 - i].second;
      const std::vector<StreamCodec> codecs = CheckLstm(
          "chain-from-parent link " + std::to_string(i), levels[i].ckpt, &levels[i - 1].ckpt,
          file, model.get(), &cover);
      Check(Count(codecs, StreamCodec::kLstmLevels) == codecs.size(), "chain: every chunk lstm");
    }
    CheckMisreadings("chain-from-parent", links[2], &links[1], c.files[0].second, model.get(),
                     Misreadings(true, true));
    s.Add(std::move(c));
  }
  {
    // The largest model (H 32, clip 7: 27,680 bytes of parameters) in a keyframe (LevelDirect
    // needs no parent; LM2 forbids only lstm_model_from_parent in a keyframe).
    Ckpt k = Single({MakeT("k", DType::kF32, {12, 16}, 11301, Role::kWeight),
                     MakeT("k.v", DType::kF32, {12, 16}, 11302, Role::kMoment2, 0)});
    k.step = 11600;
    SetLevels(k, "k", kDirect, Levels(192, 11311, nullptr, 2), nullptr);
    SetLevels(k, "k.v", kDirect, Levels(192, 11312, &k.tensors[0].levels, 2), nullptr);
    const ModelPtr model = Moderate(32, 7, 11320);
    Check(LstmModel::ParamsBytes(32, 7) == 27680, "the largest model has 27,680 bytes");
    const Bytes file = Encode(k, LstmOpt(256), std::nullopt, nullptr, {model, false}).bytes;
    const std::vector<StreamCodec> codecs = CheckLstm("largest", k, nullptr, file, model.get(), &cover);
    Check(Count(codecs, StreamCodec::kLstmLevels) == codecs.size(), "largest: every chunk lstm");
    CheckMisreadings("largest", k, nullptr, file, model.get(), Misreadings(true, true));
    s.Add(Valid("full-lstm-keyframe-largest-model", "full",
                "A keyframe whose header holds the largest LSTM model: hidden 32, clip 7 "
                "(features take 16 values), 27,680 bytes of parameters (7.11.1). 'k' (F32 "
                "[12, 16], Weight) and 'k.v' (its Moment2, aux levels 'k': there is no Moment1) "
                "are LevelDirect (no reference, no parent levels: x_2 is always absent), every "
                "chunk (64 levels) lstm. Checked by the generator against its own reading of "
                "7.11.",
                k, file,
                {"lstm:own", "lstm:hidden-32", "lstm:clip-7", "levels:aux", "quant:level-direct"}));
  }
  {
    // Saturated weights: every int16 at an extreme and mix_init at +-2^20, so that every clamp
    // of 7.11.3 and 7.11.4 is reached on both sides. Units 0 and 1 have every input to their
    // gates at +32767 (unit 1's cell candidate at -32768) and no recurrence: their cells run
    // into +-32767.
    auto model = SaturatedModel(11420);
    Check(model->WellFormed(), "saturated: well formed");
    Ckpt k = Single({MakeT("e", DType::kF32, {10, 8}, 11401, Role::kWeight),
                     MakeT("e.m", DType::kF32, {10, 8}, 11402, Role::kMoment1, 0),
                     MakeT("o", DType::kF32, {120}, 11403)});
    k.step = 11700;
    SetLevels(k, "e", kDirect, Levels(80, 11411, nullptr, 2), nullptr);
    SetLevels(k, "e.m", kDirect, Levels(80, 11412, &k.tensors[0].levels, 2), nullptr);
    SetLevels(k, "o", kDirect, Levels(120, 11413, nullptr, 6), nullptr);
    const Bytes file = Encode(k, LstmOpt(160), std::nullopt, nullptr, {model, false}).bytes;
    Clamps clamps;
    const std::vector<StreamCodec> codecs =
        CheckLstm("saturated", k, nullptr, file, model.get(), &cover, &clamps);
    Check(Count(codecs, StreamCodec::kLstmLevels) == codecs.size(), "saturated: every chunk lstm");
    const std::pair<const char*, const uint64_t*> reached[] = {
        {"feature clip", clamps.feature}, {"gate ACT clamp", clamps.gate},
        {"cell clamp", clamps.cell},      {"ACT clamp of the cell", clamps.act_cell},
        {"logit y clamp", clamps.logit},  {"mixer t clamp", clamps.mix},
        {"mixer weight clamp", clamps.weight}, {"P at 32 / 65504", clamps.p}};
    for (const auto& [what, n] : reached)
      Check(n[0] > 0 && n[1] > 0, std::string("saturated: the ") + what + " is not reached on both sides");
    auto misread = Misreadings(true, true);
    Reading narrow, unclamped_y, unclamped_w;
    narrow.mixer_int64 = false;
    unclamped_y.clamp_logit = false;
    unclamped_w.clamp_weight = false;
    misread.push_back({"sums the mixer's products in int32", narrow});
    misread.push_back({"does not clamp y", unclamped_y});
    misread.push_back({"does not clamp the mixer's weights", unclamped_w});
    CheckMisreadings("saturated", k, nullptr, file, model.get(), misread);
    s.Add(Valid("full-lstm-saturated", "full",
                "A keyframe whose LSTM model (hidden 8, clip 2, recur_shift 0, out_shift 2) has "
                "every int16 weight at -32768 or 32767 (but the recurrent weights of hidden "
                "units 0 and 1, which are 0: every other input of their gates is at the extreme, "
                "unit 1's cell candidate negative, so their cells run into +-32767), so that "
                "every clamp of 7.11.3 and 7.11.4 is reached on both sides (checked by the "
                "generator): features past +-clip, gate sums past -8192 and 8191 (ACT), cells "
                "past +-32767, y past +-2047, the mixer's t past +-2047 (P = 32 and 65504), and "
                "mixer weights pushed past +-2^20. mix_init: every weight of role 0 ('e', "
                "F32 [10, 8], Weight) at -2^20 or +2^20, so that w x in sums to about +-2^32 "
                "(int64); role 1 ('e.m', Moment1, aux 'e') 1, 1/8 and 0, so that y's clamp "
                "shows in t; role 3 ('o', F32 [120], Other) 2^20, 0 and -2^20, which cancel "
                "where cml's P0 is near 0.73, so that cml's weight, clamped at 2^20, shows. "
                "LevelDirect, every chunk (40 levels) lstm. A decoder that summed the mixer in "
                "int32, or left y or the mixer's weights unclamped, decodes other levels "
                "(checked by the generator).",
                k, file,
                {"lstm:own", "lstm:saturated", "lstm:hidden-8", "levels:aux", "quant:level-direct"}));
  }
  {
    // A link that names its parent's model but codes every chunk with cml: the model passes
    // through it, unused (the writer keeps the reference for the next link).
    Ckpt k = Single({MakeT("w", DType::kF32, {6, 8}, 11501, Role::kWeight),
                     MakeT("u", DType::kF32, {24}, 11502)});
    k.step = 11800;
    Ckpt l1 = NextLossless(k, 11510), l2 = NextLossless(l1, 11520);
    l1.step = 11900;
    l2.step = 12000;
    SetLevels(l1, "w", kResidual, Levels(48, 11511), &k);
    SetLevels(l1, "u", kDirect, Levels(24, 11512), &k);
    SetLevels(l2, "w", kResidual, Levels(48, 11521, LevelsOf(l1, "w")), &l1);
    SetLevels(l2, "u", kDirect, Levels(24, 11522, LevelsOf(l1, "u")), &l1);
    const ModelPtr model = Moderate(8, 4, 11530);
    const auto files = WriteChain({{k, Opt(StreamCodec::kStored, false)},
                                   {l1, LstmOpt(96), {model, false}},
                                   {l2, IndexOpt(StreamCodec::kStored, 96)}},
                                  ChainNames(3));
    Model m = FromFile(files[2].bytes);
    m.h.lstm_model_from_parent = true;
    m.required |= kFeatureLstm;
    const Bytes input = Assemble(m);
    CheckLstm("from-parent-unused parent", l1, &k, files[1].bytes, model.get(), &cover);
    const std::vector<StreamCodec> codecs =
        CheckLstm("from-parent-unused", l2, &l1, input, model.get(), &cover);
    Check(Count(codecs, StreamCodec::kCmLevels) == codecs.size(), "from-parent-unused: cml only");
    Case c = Valid("full-lstm-from-parent-unused", "full",
                   "input.ckz -> parent-1.ckz -> parent-2.ckz (a lossless keyframe). "
                   "parent-1.ckz holds an LSTM model (hidden 8, clip 4) and codes its level "
                   "chunks with it; input.ckz has lstm_model_from_parent (and required feature "
                   "bit 8, rule LM3) but every chunk of its level tensors 'w' (F32 [6, 8], "
                   "LevelResidual) and 'u' (F32 [24], LevelDirect) is cml (5): a model named "
                   "and not used is valid (R5 holds: the parent has one).",
                   l2, input,
                   {"lstm:from-parent", "lstm:unused", "levels:parent", "codec:cml",
                    "quant:level-residual", "quant:level-direct"});
    c.files.push_back({"parent-1.ckz", files[1].bytes});
    c.files.push_back({"parent-2.ckz", files[0].bytes});
    s.Add(std::move(c));
  }
  // Every hidden size, every role index and every mixed slot is used by some lstm chunk, and
  // an escape is decoded inside one.
  for (uint32_t h : {8u, 16u, 24u, 32u})
    Check(cover.hidden.count(h) == 1, "no lstm case has hidden " + std::to_string(h));
  for (uint32_t r = 0; r < kLstmRoles; ++r)
    Check(cover.roles.count(r) == 1, "no lstm chunk has role index " + std::to_string(r));
  for (uint32_t slot = 0; slot < kLstmSlots; ++slot)
    Check(cover.slots.count(slot) == 1, "no lstm chunk mixes slot " + std::to_string(slot));
  Check(cover.lstm_escapes > 0, "no lstm chunk decodes an escape");
  Check(cover.clips.count(1) && cover.clips.count(7), "clip 1 and clip 7 must be covered");
}

void LstmInvalid(Suite& s) {
  // The base: a lossless keyframe (parent-1.ckz) and a link whose header holds an LSTM model
  // (hidden 8, clip 1: 2,912 bytes) with 'w' (F32 [6, 4], Weight, LevelResidual) in two lstm
  // chunks of 12 levels, and 's' (F32 [8]) lossless, stored.
  Ckpt k = Single({MakeT("w", DType::kF32, {6, 4}, 12001, Role::kWeight),
                   MakeT("s", DType::kF32, {8}, 12002)});
  k.step = 12000;
  Ckpt l = NextLossless(k, 12010);
  l.step = 12100;
  SetLevels(l, "w", kResidual, Levels(24, 12011), &k);
  const size_t w = 0, sv = 1;
  const ModelPtr model = Moderate(8, 1, 12020);
  const EncodeOptions opt = LstmOpt(48);
  const Encoded parent = Encode(k, Opt(StreamCodec::kStored, false));
  const LinkInfo to_parent = LinkTo(parent, k, "parent-1.ckz", 1);
  const Encoded link = Encode(l, opt, to_parent, &k, {model, false});
  // The same link without a model: every chunk cml.
  const Encoded plain = Encode(l, IndexOpt(StreamCodec::kStored, 48), to_parent, &k);
  {
    const std::vector<StreamCodec> codecs = CheckLstm("invalid base", l, &k, link.bytes, model.get(), nullptr);
    Check(codecs.size() == 2 && Count(codecs, StreamCodec::kLstmLevels) == 2, "invalid base: two lstm chunks");
    Check(CheckLstm("invalid plain", l, &k, plain.bytes, nullptr, nullptr) ==
              std::vector<StreamCodec>(2, StreamCodec::kCmLevels),
          "invalid plain: two cml chunks");
  }
  const std::vector<std::string> own = {"codec:lstm", "lstm:own"};
  const std::vector<std::string> by_ref = {"codec:lstm", "lstm:from-parent"};
  const ErrorCode range = ErrorCode::kFieldOutOfRange;
  auto add = [&](const std::string& name, const std::string& rule, ErrorCode error,
                 const std::string& description, const Bytes& file,
                 const std::vector<std::string>& features) {
    return ChainInvalid(name, rule, error, description, file, parent.bytes, features);
  };
  // A link written by the reference writer with `bad` (which it does not check): its lstm
  // chunks are coded with that very model, so a decoder without LM1 decodes them exactly.
  auto coded_with = [&](std::shared_ptr<LstmModel> bad) {
    return Encode(l, opt, to_parent, &k, {bad, false}).bytes;
  };
  // The cml link with `bad` put in its header (no chunk uses it): for models the reference
  // cannot run at all (its arrays are sized for hidden <= 32 and clip <= 7).
  auto named_only = [&](std::shared_ptr<LstmModel> bad) {
    Model m = FromFile(plain.bytes);
    m.h.lstm_model = bad;
    m.h.lstm_model_own = true;
    m.required |= kFeatureLstm;
    return Assemble(m);
  };
  auto copy = [&]() { return std::make_shared<LstmModel>(*model); };

  // LM1, in its order: hidden, clip, recur_shift, out_shift, the length of params, mix_init.
  s.Add(add("invalid-lstm-hidden-12", "LM1", range,
            "The model has hidden 12 (8, 16, 24 or 32) and params of the length hidden 12 and "
            "clip 1 give (" + std::to_string(LstmModel::ParamsBytes(12, 1)) + " bytes). Its "
            "lstm chunks were coded with it: a decoder without the check decodes them.",
            coded_with(Moderate(12, 1, 12030, false)), own));
  s.Add(add("invalid-lstm-hidden-40", "LM1", range,
            "The model has hidden 40 (at most 32: the recurrence's int32 sums) and params of "
            "the length hidden 40 and clip 1 give (" +
                std::to_string(LstmModel::ParamsBytes(40, 1)) + " bytes). No chunk uses it "
            "(both are cml), so nothing but LM1 rejects the file.",
            named_only(Moderate(40, 1, 12031, false)), own));
  s.Add(add("invalid-lstm-clip-0", "LM1", range,
            "The model has clip 0 (1..7) and params of the length hidden 8 and clip 0 give (" +
                std::to_string(LstmModel::ParamsBytes(8, 0)) + " bytes: features would take 2 "
            "values). Its lstm chunks were coded with it.",
            coded_with(Moderate(8, 0, 12032, false)), own));
  s.Add(add("invalid-lstm-clip-8", "LM1", range,
            "The model has clip 8 (1..7) and params of the length hidden 8 and clip 8 give (" +
                std::to_string(LstmModel::ParamsBytes(8, 8)) + " bytes). No chunk uses it (both "
            "are cml).",
            named_only(Moderate(8, 8, 12033, false)), own));
  {
    auto bad = copy();
    bad->recur_shift = 16;
    s.Add(add("invalid-lstm-recur-shift-16", "LM1", range,
              "The model has recur_shift 16 (0..15). Its lstm chunks were coded with it.",
              coded_with(bad), own));
  }
  for (uint32_t shift : {1u, 16u}) {
    auto bad = copy();
    bad->out_shift = shift;
    s.Add(add("invalid-lstm-out-shift-" + std::to_string(shift), "LM1", range,
              "The model has out_shift " + std::to_string(shift) +
                  " (2..15). Its lstm chunks were coded with it.",
              coded_with(bad), own));
  }
  const std::string no_length =
      "LM1's length check has no switch: without params of the length hidden and clip give "
      "there are no arrays to read (7.11.1 lays them out back to back), and every other field "
      "of the model is valid";
  {
    Model m = FromFile(link.bytes);
    m.tweaks.lstm_params_delta = -2;
    s.Add(add("invalid-lstm-params-short", "LM1", range,
              "The model's params (hidden 8, clip 1: 2,912 bytes) is one int16 short: 2,910 "
              "bytes, the last byte of the last mix_init value and one more cut off.",
              Assemble(m), own)
              .ByConstruction(no_length));
  }
  {
    Model m = FromFile(link.bytes);
    m.code_header = [](const Bytes& buffer) {
      Bytes b = buffer;
      const fb::Header* h = fb::GetHeader(b.data());
      const fb::LstmModel* lm = h->lstm_model();
      Check(lm != nullptr && lm->params() != nullptr, "params-absent: a model with params");
      const size_t vt = VtablePosition(b, lm);
      Check(vt != VtablePosition(b, h) && vt != VtablePosition(b, h->tensors()->Get(0)) &&
                vt != VtablePosition(b, h->link()),
            "params-absent: the model's vtable must be its own");
      Check(LoadLE16(b.data() + vt) > fb::LstmModel::VT_PARAMS, "params-absent: the slot");
      StoreLE16(b.data() + vt + fb::LstmModel::VT_PARAMS, 0);
      return b;
    };
    const Bytes f = Assemble(m);
    Check(fb::GetHeader(f.data() + HeaderOffset(f))->lstm_model()->params() == nullptr,
          "params-absent: params must be absent");
    s.Add(add("invalid-lstm-params-absent", "LM1", range,
              "The model table has no params field (its vtable slot is 0; the vector's bytes "
              "are left in the buffer, unreferenced): absent counts as empty, and hidden 8 and "
              "clip 1 need 2,912 bytes.",
              f, own)
              .ByConstruction(no_length));
  }
  {
    auto bad = copy();
    bad->mix_init[0] = kLstmMixLimit + 1;
    s.Add(add("invalid-lstm-mix-init-above", "LM1", range,
              "The model's first mix_init value (role 0, slot 0, the weight of cml's stretch, "
              "used by 'w''s zero flags) is 2^20 + 1 (-2^20 .. 2^20). Its lstm chunks were "
              "coded with it.",
              coded_with(bad), own));
  }
  {
    auto bad = copy();
    bad->mix_init.back() = -kLstmMixLimit - 1;
    s.Add(add("invalid-lstm-mix-init-below", "LM1", range,
              "The model's last mix_init value (role 3, slot 15, the bias weight: no chunk of "
              "this file uses it, 'w' is a Weight) is -2^20 - 1: every one of the 192 values is "
              "checked. Its lstm chunks were coded with it.",
              coded_with(bad), own));
  }
  // LM2.
  {
    // The parent a keyframe with the same model (no chunk uses it there).
    Model pm = FromFile(parent.bytes);
    pm.h.lstm_model = model;
    pm.h.lstm_model_own = true;
    pm.required |= kFeatureLstm;
    const Bytes with_model = Assemble(pm);
    Model m = FromFile(link.bytes);
    m.h.lstm_model_from_parent = true;
    s.Add(ChainInvalid("invalid-lstm-own-and-from-parent", "LM2", range,
                       "The link's header has its own lstm_model and lstm_model_from_parent "
                       "true: not both. parent-1.ckz (a keyframe) holds the very same model, so "
                       "either reading decodes the chunks.",
                       Assemble(m), with_model, {"codec:lstm", "lstm:own", "lstm:from-parent"}));
  }
  {
    // A keyframe of LevelDirect levels coded with the model, its own model then replaced by
    // lstm_model_from_parent.
    Ckpt kf = k;
    SetLevels(kf, "w", kDirect, Levels(24, 12040), nullptr);
    Model m = FromFile(Encode(kf, opt, std::nullopt, nullptr, {model, false}).bytes);
    Check(m.h.lstm_model_own, "keyframe-from-parent: the keyframe holds the model");
    m.h.lstm_model.reset();
    m.h.lstm_model_own = false;
    m.h.lstm_model_from_parent = true;
    s.Add(Invalid("invalid-lstm-keyframe-from-parent", "full", "LM2", ErrorCode::kBadLink,
                  "A keyframe (no link) with lstm_model_from_parent true (and required feature "
                  "bit 8): a keyframe has no parent. Its 'w' (LevelDirect) is coded in lstm "
                  "chunks, which would need that parent's model.",
                  Assemble(m), by_ref)
              .WithoutRuleFails(ErrorCode::kReferenceRequired));
  }
  // LM3, both ways.
  {
    Model m = FromFile(plain.bytes);
    m.required |= kFeatureLstm;
    s.Add(add("invalid-lstm-feature-bit-without-model", "LM3", range,
              "Required feature bit 8 (lstm) set in a link without lstm_model and without "
              "lstm_model_from_parent (its level chunks are cml).",
              Assemble(m), {"codec:cml"}));
  }
  {
    Model m = FromFile(link.bytes);
    m.required &= ~kFeatureLstm;
    s.Add(add("invalid-lstm-model-without-feature-bit", "LM3", range,
              "A link whose header holds an LSTM model, with required feature bit 8 (lstm) "
              "clear. Its chunks use codec 6, which needs the bit too (C1, after LM3).",
              Assemble(m), own)
              .WithoutRuleFails(ErrorCode::kChunkMalformed));
  }
  // R5.
  const std::string r5 =
      "R5 has no switch: the model is looked for when the chain is opened, and here no file "
      "up the chain has one (the only thing R5 checks); the link's reference tensors are in "
      "the parent with their dtype and shape (R3), and no prolog is coded (R4)";
  {
    Model m = FromFile(link.bytes);
    m.h.lstm_model.reset();
    m.h.lstm_model_own = false;
    m.h.lstm_model_from_parent = true;
    s.Add(add("invalid-lstm-from-parent-without-model", "R5", ErrorCode::kReferenceMismatch,
              "The link has lstm_model_from_parent (its lstm chunks were coded with a model), "
              "but parent-1.ckz, a keyframe, has no model (10.2).",
              Assemble(m), by_ref)
              .ByConstruction(r5));
  }
  {
    // Two links deep: input.ckz and parent-1.ckz both name their parent's model; parent-2.ckz
    // (a link without a model, cml) has none.
    Ckpt l1 = NextLossless(k, 12050), l2 = NextLossless(l1, 12060), l3 = NextLossless(l2, 12070);
    l1.step = 12200;
    l2.step = 12300;
    l3.step = 12400;
    SetLevels(l1, "w", kResidual, Levels(24, 12051), &k);
    SetLevels(l2, "w", kResidual, Levels(24, 12061, LevelsOf(l1, "w")), &l1);
    SetLevels(l3, "w", kResidual, Levels(24, 12071, LevelsOf(l2, "w")), &l2);
    const auto files = WriteChain({{k, Opt(StreamCodec::kStored, false)},
                                   {l1, IndexOpt(StreamCodec::kStored, 48)},
                                   {l2, opt, {model, true}},
                                   {l3, opt, {model, true}}},
                                  ChainNames(4));
    Case c = add("invalid-lstm-from-parent-chain-without-model", "R5",
                 ErrorCode::kReferenceMismatch,
                 "input.ckz -> parent-1.ckz -> parent-2.ckz -> parent-3.ckz (a keyframe). "
                 "input.ckz and parent-1.ckz have lstm_model_from_parent (their lstm chunks "
                 "were coded with a model); parent-2.ckz, a link, has neither lstm_model nor "
                 "lstm_model_from_parent (its chunks are cml): no model is found up the chain "
                 "(10.2). parent-1.ckz itself breaks R5, and a parent that fails fails the "
                 "decode.",
                 files[3].bytes, by_ref)
                 .ByConstruction(r5);
    c.files[1].second = files[2].bytes;
    c.files.push_back({"parent-2.ckz", files[1].bytes});
    c.files.push_back({"parent-3.ckz", files[0].bytes});
    s.Add(std::move(c));
  }
  // C1: codec 6 in a file without required feature bit 8, and in a lossless tensor.
  {
    Model m = FromFile(plain.bytes);
    Check(m.stored[w][0][0] == uint8_t(StreamCodec::kCmLevels), "cml expected");
    m.stored[w][0][0] = uint8_t(StreamCodec::kLstmLevels);
    s.Add(add("invalid-lstm-codec-without-feature-bit", "C1", ErrorCode::kChunkMalformed,
              "A link without a model and without required feature bit 8 (so LM3 holds), whose "
              "chunk 0 of 'w' (a level tensor) is marked codec 6 (lstm) instead of 5 (its "
              "stream is cml): codec 6 needs the bit (7.1, 7.11.6).",
              Assemble(m), {"codec:lstm"}));
  }
  {
    Model m = FromFile(link.bytes);
    Check(m.stored[sv][0][0] == uint8_t(StreamCodec::kStored), "stored expected");
    m.stored[sv][0][0] = uint8_t(StreamCodec::kLstmLevels);
    s.Add(add("invalid-lstm-codec-in-lossless-tensor", "C1", ErrorCode::kChunkMalformed,
              "The stored stream of the lossless F32 tensor 's' is marked codec 6 (lstm), in a "
              "file with a model and required feature bit 8: codec 6 is for level tensors "
              "only (7.1).",
              Assemble(m), own));
  }
  // C2 and C5 on 'w''s lstm chunks (no parent levels: the keyframe has none; no aux: a Weight).
  auto w_stream = [&](size_t chunk, std::vector<int32_t> levels) {
    LevelModelInputs in;
    in.first = chunk * 12;
    in.row = 4;
    in.lstm = model.get();
    in.role = 0;
    Bytes st;
    EncodeLevelStream(in, levels.data(), levels.size(), &st);
    return st;
  };
  auto w_read = [&](const Bytes& file) {
    return SpecDecode(file, "w", nullptr, nullptr, model.get());
  };
  const std::vector<int32_t>& wl = l.tensors[w].levels;
  {
    Model m = FromFile(link.bytes);
    std::vector<int32_t> lv(wl.begin(), wl.begin() + 12);
    lv[5] = -((1 << 24) + 13);
    SetStream(m.stored[w][0], w_stream(0, lv));
    const Bytes f = Assemble(m);
    Check(w_read(f).outcome == Outcome::kEscapeMagnitude, "escape-beyond-max: m > 2^24 - 1 expected");
    s.Add(add("invalid-lstm-escape-beyond-max", "C2", ErrorCode::kChunkDecodeFailed,
              "The lstm stream of 'w''s chunk 0 codes element 5 with the escape prefix k = 23 "
              "and 23 direct bits all 1 (cml's alone, 7.11.4): m = 15 + 2^23 - 1 + 2^23 - 1 = "
              "2^24 + 13 > 2^24 - 1 (7.9.3).",
              f, own));
  }
  {
    Model m = FromFile(link.bytes);
    Bytes st(m.stored[w][0].begin() + kStreamEntryBytes, m.stored[w][0].end());
    auto valid = [&](const Bytes& b) {
      Model y = m;
      SetStream(y.stored[w][0], b);
      const SpecLevels got = w_read(Assemble(y));
      return got.outcome == Outcome::kOk && got.levels == wl;
    };
    Check(valid(st), "lstm finish: the stream decodes");
    for (Bytes next = st; next.push_back(0), valid(next);) st = next;
    st.push_back(0x01);
    SetStream(m.stored[w][0], st);
    const Bytes f = Assemble(m);
    Check(w_read(f).outcome == Outcome::kFinish, "lstm finish: finish must fail");
    s.Add(add("invalid-lstm-finish", "C2", ErrorCode::kChunkDecodeFailed,
              "The lstm stream of 'w''s chunk 0 extended with the zero bytes the decoder reads "
              "after it and then one byte 0x01 that it never reads: length > consumed at "
              "finish (7.7.1, 7.11).",
              f, own));
  }
  {
    // A byte of chunk 1 changed so that the stream still decodes, to other levels.
    Model m = FromFile(link.bytes);
    const Bytes st(m.stored[w][1].begin() + kStreamEntryBytes, m.stored[w][1].end());
    std::optional<Bytes> damaged;
    for (size_t at = st.size() / 2; at < st.size() && !damaged; ++at)
      for (uint8_t flip : {0x01, 0x10, 0x55, 0x80}) {
        Bytes b = st;
        b[at] ^= flip;
        Model y = m;
        SetStream(y.stored[w][1], b);
        const SpecLevels got = w_read(Assemble(y));
        if (got.outcome == Outcome::kOk && got.levels != wl) {
          damaged = b;
          break;
        }
      }
    Check(damaged.has_value(), "lstm checksum: no damage that still decodes");
    SetStream(m.stored[w][1], *damaged);
    s.Add(add("invalid-lstm-checksum", "C5", ErrorCode::kChunkChecksum,
              "A byte of the lstm stream of 'w''s chunk 1 changed: the stream still decodes "
              "(7.11), to other levels, and the chunk's CRC-32C does not match.",
              Assemble(m), own));
  }
}

}  // namespace ckz::vectors
