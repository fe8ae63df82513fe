// The lstm-cm index codec (spec 7.11.7, stream codec 7, format 0.11), full profile. Every valid
// file is checked against this file's own reading of 7.7 + 7.11.7 — a cm decoder (7.7.1, 7.7.2)
// whose SIG and VAL decisions go through the network and mixer of spec_lstm.h (7.11.1 - 7.11.5),
// written from the spec apart from the library — and against readings a decoder could get
// wrong (codec-7 chunks read as cm, the tree bits' slots counted from 1 or from the least
// significant bit, the features clipped like levels or bucketed into cm's 4 buckets or with the
// tensor's K for the parent's and aux indices, absent features read as 0, neighbour features
// taken across the chunk's start, h, c and the mixer kept across chunks, the role ignored, the
// step after the index, cm's state left unadapted, the network's logit or the mixer's learning
// left out, a parent's lstm-cm chunks decoded with the link's model; in the saturated case the
// cell, y or the mixer's weights left unclamped), each of which must decode other indices or
// fail. The saturated case is checked to reach the clamps of 7.11.3 and 7.11.4 on both sides.
#include <algorithm>
#include <optional>
#include <set>

#include "common/bytes.h"
#include "common/lstm_model.h"
#include "common/quantize.h"
#include "format/chunk_layout.h"
#include "spec_lstm.h"
#include "spec_range_decoder.h"
#include "vectors.h"

namespace ckz::vectors {
using namespace spec_lstm;  // NOLINT: the shared reading of 7.11
namespace {

using ModelPtr = std::shared_ptr<const LstmModel>;

// ------------------------------------------------------------------------------------------
// Spec 7.7 + 7.11.7 as `reading` has them (the defaults are the spec's).

enum class SlotReading { kSpec, kFromOne, kFromLsb };
enum class FeatureReading { kSpec, kClipLikeLevels, kFourBuckets, kTensorK };

struct IndexReading {
  Reading net;                                  // use_model, fresh_per_chunk, role, step_first...
  SlotReading slots = SlotReading::kSpec;       // tree bit d: slot 2 + d (spec), 1 + d, B + 1 - d
  FeatureReading feature = FeatureReading::kSpec;
  int absent = -1;                              // -1: 2 clip + 1 (spec), else this value
  bool chunk_neighbours = true;                 // false: left/up features across the chunk start
};

enum class IndexOutcome { kOk, kCodebookIndex, kFinish };

struct SpecIndices {
  IndexOutcome outcome = IndexOutcome::kOk;
  uint64_t bad_element = 0;  // kCodebookIndex: the tensor's element
  Bytes indices;
  std::vector<StreamCodec> codecs;  // each chunk's
};

struct IndexCoverage {
  Coverage net;  // slots, roles, hidden sizes, clips of the mixed chunks
  std::set<uint32_t> bits;  // B of the mixed chunks
  uint64_t mixed_chunks = 0, cm_chunks = 0, mid_row = 0, parent = 0, aux = 0;
  bool tensor_mixes_codecs = false;
};

uint32_t Bucket(uint32_t j, uint32_t k, uint32_t m) { return j == 0 ? 0 : 1 + (j - 1) * (m - 1) / k; }

// The indices of tensor `name` of `file`, chunk by chunk: cm chunks (7.7) and lstm-cm chunks
// (7.11.7) with `model`; the parent's and the aux tensor's indices of the whole tensor (null:
// none) with their codebook sizes.
SpecIndices SpecIndexDecode(const Bytes& file, const std::string& name, const uint8_t* parent,
                            uint32_t kp, const uint8_t* aux, uint32_t ka, const LstmModel* model,
                            const IndexReading& reading = {}, IndexCoverage* cover = nullptr,
                            Clamps* clamps = nullptr) {
  const Archive a = Must(ParseArchive(ByteSpan(file)), "SpecIndexDecode");
  const auto index = a.FindTensor(name);
  Check(index.has_value() && a.tensors[*index].quantization &&
            !a.tensors[*index].quantization->IsLevels(),
        "SpecIndexDecode: no codebook tensor '" + name + "'");
  const TensorInfo& t = a.tensors[*index];
  const uint32_t K = uint32_t(t.quantization->codebook.size());
  uint32_t B = 0;
  while ((1u << B) < K) ++B;
  const uint64_t w = DTypeSize(t.dtype);
  const uint64_t R = t.shape.size() >= 2 ? t.shape.back() : 0;
  Clamps scratch;
  if (!clamps) clamps = &scratch;
  std::optional<SpecNetwork> net;
  SpecIndices out;
  out.indices.assign(t.num_elements, 0);
  uint8_t* q = out.indices.data();
  for (size_t chunk = 0; chunk < t.chunks.size(); ++chunk) {
    const ChunkInfo& ch = t.chunks[chunk];
    const StreamCodec codec = StreamCodec(file[ch.offset]);
    out.codecs.push_back(codec);
    Check((codec == StreamCodec::kCm || codec == StreamCodec::kLstmIndices) &&
              LoadLE32(file.data() + ch.offset + 1) + 5 == ch.stored_length,
          "SpecIndexDecode: '" + name + "' has a chunk that is not one cm or lstm-cm stream");
    const bool mixed = codec == StreamCodec::kLstmIndices && reading.net.use_model;
    if (mixed) {
      Check(model != nullptr, "SpecIndexDecode: an lstm-cm chunk without a model");
      if (!net) net.emplace(*model, RoleIndex(t.role), reading.net, clamps);
      else if (reading.net.fresh_per_chunk) net->Reset();
    }
    const uint64_t f = ch.raw_offset / w, E = ch.raw_length / w;
    if (cover) {
      ++(codec == StreamCodec::kLstmIndices ? cover->mixed_chunks : cover->cm_chunks);
      if (codec == StreamCodec::kLstmIndices) {
        cover->net.roles.insert(RoleIndex(t.role));
        cover->net.hidden.insert(model->hidden);
        cover->net.clips.insert(model->clip);
        cover->bits.insert(B);
        if (R && f % R) ++cover->mid_row;
        if (parent) ++cover->parent;
        if (aux) ++cover->aux;
      }
    }
    SpecRangeDecoder rc(file.data() + ch.offset + 5, ch.stored_length - 5);
    State sig[45];
    std::vector<State> val(size_t(64) << B);
    const uint32_t clip = model ? model->clip : 1, m = 2 * clip + 1;
    for (uint64_t i = 0; i < E; ++i) {
      const uint64_t g = f + i;
      const uint64_t c = R ? g % R : 0;
      const bool has_left = i >= 1 && (R == 0 || c != 0);
      const bool has_up = R > 0 && i >= R;
      const bool has_upl = R > 0 && i >= R + 1 && c != 0;
      const bool has_upr = R > 0 && i >= R && c + 1 < R;
      const uint32_t left = has_left ? q[g - 1] : 0, up = has_up ? q[g - R] : 0;
      const uint32_t nbr = (has_left && left != 0) + (has_up && up != 0) +
                           (has_upl && q[g - R - 1] != 0) + (has_upr && q[g - R + 1] != 0);
      const uint32_t pc = parent ? 1 + (parent[g] != 0) : 0;
      const uint32_t ac = aux ? 1 + (aux[g] != 0) : 0;
      int32_t x[4] = {};
      if (mixed) {
        // 7.11.7's features.
        auto G = [&](bool present, uint32_t j, uint32_t k) -> int32_t {
          if (!present) return reading.absent >= 0 ? reading.absent : int32_t(2 * clip + 1);
          switch (reading.feature) {
            case FeatureReading::kSpec: return int32_t(Bucket(j, k, m));
            case FeatureReading::kClipLikeLevels: return int32_t(std::min(j, clip) + clip);
            case FeatureReading::kFourBuckets: return int32_t(Bucket(j, k, 4));
            case FeatureReading::kTensorK: return int32_t(Bucket(j, K, m));
          }
          return 0;
        };
        bool fl = has_left, fu = has_up;
        if (!reading.chunk_neighbours) fl = g >= 1 && (R == 0 || c != 0), fu = R > 0 && g >= R;
        x[0] = G(fl, fl ? q[g - 1] : 0, K);
        x[1] = G(fu, fu ? q[g - R] : 0, K);
        x[2] = G(parent != nullptr, parent ? parent[g] : 0, kp);
        x[3] = G(aux != nullptr, aux ? aux[g] : 0, ka);
        if (reading.net.step_first) net->Step(x);
      }
      // 7.7.2's decisions; with codec 7 each at the mixer's probability for its slot (7.11.7).
      auto decide = [&](uint32_t slot, State& st) {
        return mixed ? net->Decide(rc, slot, st, cover ? &cover->net : nullptr) : rc.Bit(st);
      };
      uint32_t j = 0;
      if (decide(0, sig[(pc * 5 + nbr) * 3 + ac]) == 1) {
        const uint32_t ab = aux ? Bucket(aux[g], ka, 4) : 0, pb = parent ? Bucket(parent[g], kp, 4) : 0;
        const uint32_t lb = has_left ? Bucket(left, K, 4) : 0;
        const uint32_t ctx = (ab * 4 + pb) * 4 + lb;
        uint32_t node = 1;
        for (uint32_t d = 0; d < B; ++d) {
          const uint32_t slot = reading.slots == SlotReading::kSpec      ? 2 + d
                                : reading.slots == SlotReading::kFromOne ? 1 + d
                                                                         : B + 1 - d;
          node = 2 * node + uint32_t(decide(slot, val[(size_t(ctx) << B) + node]));
        }
        j = node - (1u << B) + 1;
        if (j > K) {
          out.outcome = IndexOutcome::kCodebookIndex;
          out.bad_element = g;
          return out;
        }
      }
      q[g] = uint8_t(j);
      if (mixed && !reading.net.step_first) net->Step(x);
    }
    if (!rc.Finish()) {
      out.outcome = IndexOutcome::kFinish;
      return out;
    }
  }
  return out;
}

// 7.7.2 read from the text: "quantized" is "with a codebook kind" here.
bool Codebook(const T* t) { return t && t->quant && !t->HasLevels(); }

// The aux tensor of `t` (a tensor of `c`), or null.
const T* SpecIndexAux(const Ckpt& c, const T& t) {
  if (!Codebook(&t) || t.owner < 0) return nullptr;
  const T& o = c.tensors[size_t(t.owner)];
  const T* owner = Codebook(&o) ? &o : nullptr;
  if (t.role == Role::kMoment1) return owner;
  if (t.role != Role::kMoment2) return nullptr;
  const T* sibling = nullptr;
  int siblings = 0;
  for (const T& u : c.tensors)
    if (u.role == Role::kMoment1 && u.owner == t.owner && Codebook(&u)) sibling = &u, ++siblings;
  return siblings == 1 ? sibling : owner;
}

// The parent's tensor of `t`'s name, dtype and shape with a codebook kind, or null.
const T* SpecIndexParent(const Ckpt* parent, const T& t) {
  const T* p = parent ? parent->Find(t.name) : nullptr;
  return Codebook(p) && p->dtype == t.dtype && p->shape == t.shape ? p : nullptr;
}

SpecIndices SpecIndexTensor(const Ckpt& c, const Ckpt* parent, const Bytes& file, const T& t,
                            const LstmModel* model, const IndexReading& reading = {},
                            IndexCoverage* cover = nullptr, Clamps* clamps = nullptr) {
  const T* p = SpecIndexParent(parent, t);
  const T* x = SpecIndexAux(c, t);
  return SpecIndexDecode(file, t.name, p ? p->indices.data() : nullptr,
                         p ? uint32_t(p->quant->codebook.size()) : 0,
                         x ? x->indices.data() : nullptr, x ? uint32_t(x->quant->codebook.size()) : 0,
                         model, reading, cover, clamps);
}

// Checks every codebook tensor of `c`, written as `file` (a link of `parent`, or a keyframe,
// whose model is `model`): its chunks decode to its indices by this file's reading of 7.7 and
// 7.11.7. Returns the chunks' codecs, tensor by tensor.
std::vector<StreamCodec> CheckLstmCm(const std::string& what, const Ckpt& c, const Ckpt* parent,
                                     const Bytes& file, const LstmModel* model,
                                     IndexCoverage* cover, Clamps* clamps = nullptr) {
  std::vector<StreamCodec> codecs;
  for (const T& t : c.tensors) {
    if (!Codebook(&t)) continue;
    const SpecIndices got = SpecIndexTensor(c, parent, file, t, model, {}, cover, clamps);
    Check(got.outcome == IndexOutcome::kOk && got.indices == t.indices,
          what + ": '" + t.name + "': its chunks do not decode (7.7, 7.11.7) to its indices");
    if (cover && std::count(got.codecs.begin(), got.codecs.end(), StreamCodec::kCm) > 0 &&
        std::count(got.codecs.begin(), got.codecs.end(), StreamCodec::kLstmIndices) > 0)
      cover->tensor_mixes_codecs = true;
    codecs.insert(codecs.end(), got.codecs.begin(), got.codecs.end());
  }
  return codecs;
}

using Misreading = std::pair<std::string, IndexReading>;

// Checks that each misreading decodes some codebook tensor of `c` (as `file`) to other indices,
// or fails.
void CheckMisreadings(const std::string& what, const Ckpt& c, const Ckpt* parent,
                      const Bytes& file, const LstmModel* model,
                      const std::vector<Misreading>& readings) {
  for (const auto& [name, reading] : readings) {
    bool caught = false;
    for (const T& t : c.tensors) {
      if (!Codebook(&t)) continue;
      const SpecIndices got = SpecIndexTensor(c, parent, file, t, model, reading);
      caught = caught || got.outcome != IndexOutcome::kOk || got.indices != t.indices;
    }
    Check(caught, what + ": a decoder that " + name + " decodes the same indices");
  }
}

// The misreading "model_top": a decoder that decodes every lstm-cm chunk of a chain with the
// model of the file it was asked to decode, its parent's chunks too. The codebook tensors of
// `parent` (written as `parent_file`, a link of `grand`) are decoded with `model` (the link's),
// in tensor order (their aux indices those so decoded); then those of `c` (as `file`) with these
// as parent indices. True if some tensor of `c` (or of the parent) fails or decodes to other
// indices.
bool ModelTopCaught(const Ckpt& c, const Bytes& file, const Ckpt& parent,
                    const Bytes& parent_file, const Ckpt* grand, const LstmModel* model) {
  Ckpt wrong = parent;
  for (T& t : wrong.tensors) {
    if (!Codebook(&t)) continue;
    const SpecIndices got = SpecIndexTensor(wrong, grand, parent_file, t, model);
    if (got.outcome != IndexOutcome::kOk) return true;
    t.indices = got.indices;
  }
  for (const T& t : c.tensors) {
    if (!Codebook(&t)) continue;
    const SpecIndices got = SpecIndexTensor(c, &wrong, file, t, model);
    if (got.outcome != IndexOutcome::kOk || got.indices != t.indices) return true;
  }
  return false;
}

std::vector<Misreading> Misreadings(bool parent_or_aux) {
  std::vector<Misreading> out;
  auto add = [&](const std::string& name, auto change) {
    IndexReading r;
    change(r);
    out.push_back({name, r});
  };
  add("reads lstm-cm chunks as cm", [](IndexReading& r) { r.net.use_model = false; });
  add("gives the tree bits slots 1 .. B (off by one)",
      [](IndexReading& r) { r.slots = SlotReading::kFromOne; });
  add("counts the tree bits' slots from the least significant bit",
      [](IndexReading& r) { r.slots = SlotReading::kFromLsb; });
  add("clips the features like levels (clamp(j, -clip, clip) + clip) instead of bucketing them",
      [](IndexReading& r) { r.feature = FeatureReading::kClipLikeLevels; });
  add("buckets the features into cm's 4 buckets instead of 2 clip + 1",
      [](IndexReading& r) { r.feature = FeatureReading::kFourBuckets; });
  add("reads an absent feature as 0 instead of 2 clip + 1", [](IndexReading& r) { r.absent = 0; });
  add("takes the left and up features across the chunk's start (the tensor's neighbours)",
      [](IndexReading& r) { r.chunk_neighbours = false; });
  add("keeps h, c and the mixer's weights across chunks",
      [](IndexReading& r) { r.net.fresh_per_chunk = false; });
  add("reads every tensor with role index 0", [](IndexReading& r) { r.net.role = false; });
  add("steps the network after each index instead of before it",
      [](IndexReading& r) { r.net.step_first = false; });
  add("does not adapt cm's state after a mixed decision",
      [](IndexReading& r) { r.net.adapt_state = false; });
  add("leaves the network's output out of the mixer",
      [](IndexReading& r) { r.net.model_logit = false; });
  add("never adapts the mixer's weights", [](IndexReading& r) { r.net.learn = false; });
  if (parent_or_aux)
    add("buckets the parent's and aux indices with the tensor's K instead of K_P and K_A",
        [](IndexReading& r) { r.feature = FeatureReading::kTensorK; });
  return out;
}

// ------------------------------------------------------------------------------------------
// Data: ExCP-shaped indices (vector_builder's WeightIndices and FollowIndices).

EncodeOptions LstmCmOpt(uint64_t chunk, StreamCodec codec = StreamCodec::kLstmIndices) {
  return IndexOpt(codec, chunk);
}

size_t Count(const std::vector<StreamCodec>& codecs, StreamCodec c) {
  return size_t(std::count(codecs.begin(), codecs.end(), c));
}

const QuantizationInfo kLevelDirect = LevelQuant(QuantKind::kLevelDirect, F32FromBits(0x3A800000u));

// The keyframe of full-lstm-cm-beside-lstm and of the invalid cases: 'w' (F32 [6, 8], Weight,
// Direct, 7 centres), 'c' (F32 [30], Other, Direct, `c_centres` centres, indices `ci`) and
// 'lv' (F32 [8, 6], LevelDirect).
Ckpt BesideCkpt(size_t c_centres, unsigned c_bits, const Bytes& ci) {
  Ckpt k = Single({MakeT("w", DType::kF32, {6, 8}, 13001, Role::kWeight),
                   MakeT("c", DType::kF32, {30}, 13002), MakeT("lv", DType::kF32, {8, 6}, 13003)});
  k.step = 13000;
  QuantizeWith(k, "w", QuantKind::kDirect, 3, 7, 13011, nullptr, 1.0f, WeightIndices(48, 8, 7, 13021));
  QuantizeWith(k, "c", QuantKind::kDirect, c_bits, c_centres, 13012, nullptr, 1.0f, ci);
  SetLevels(k, "lv", kLevelDirect, PlannerLevels(48, 13013, nullptr, 3, 40), nullptr);
  return k;
}

// The beside case's options: index chunks lstm-cm, level chunks lstm, 96-byte chunks.
EncodeOptions BesideOpt(StreamCodec index_codec = StreamCodec::kLstmIndices) {
  EncodeOptions o = IndexOpt(index_codec, 96);
  o.force_codec = StreamCodec::kLstmLevels;
  return o;
}

// 'c''s indices: 0..5 only (so that bucket(j, K, 4) and bucket(j, K, 3) are the same for K 7
// and 8), with 8 at element 23 when `with_eight`.
Bytes BesideC(bool with_eight) {
  Rng r(13022);
  Bytes out(30);
  for (uint8_t& j : out) j = r.Below(3) == 0 ? 0 : uint8_t(1 + r.Below(5));
  if (with_eight) out[23] = 8;
  return out;
}

// keyframe -> link 1 (its own model A, every index chunk lstm-cm) -> link 2 (its own model B,
// every index chunk lstm-cm, parent indices from link 1's): full-lstm-cm-own-model-parent and
// invalid-lstm-cm-parent-finish. 'w' (F32 [10, 8], Weight, Direct: 7 centres in link 1, 9 in
// link 2), 'w.m' (its Moment1, Direct, 5 centres; aux 'w') and 'x' (F32 [40], Other, Direct, 3
// then 4 centres), in chunks of 40 elements.
struct OwnModelChain {
  Ckpt k, l1, l2;
  ModelPtr a, b;
  std::vector<std::string> names;
  std::vector<Encoded> files;
};

OwnModelChain MakeOwnModelChain() {
  OwnModelChain o;
  o.k = Single({MakeT("w", DType::kF32, {10, 8}, 13401, Role::kWeight),
                MakeT("w.m", DType::kF32, {10, 8}, 13402, Role::kMoment1, 0),
                MakeT("x", DType::kF32, {40}, 13403)});
  o.k.step = 13400;
  o.l1 = Next(o.k, 13410);
  o.l1.step = 13500;
  QuantizeWith(o.l1, "w", QuantKind::kDirect, 3, 7, 13411, nullptr, 1.0f,
               WeightIndices(80, 8, 7, 13421));
  QuantizeWith(o.l1, "w.m", QuantKind::kDirect, 3, 5, 13412, nullptr, 1.0f,
               FollowIndices(o.l1.tensors[0].indices, 7, 5, 13422, 7, 8));
  QuantizeWith(o.l1, "x", QuantKind::kDirect, 2, 3, 13413, nullptr, 1.0f,
               WeightIndices(40, 0, 3, 13423));
  o.l2 = Next(o.l1, 13430);
  o.l2.step = 13600;
  for (T& t : o.l2.tensors) t.quant.reset();
  QuantizeWith(o.l2, "w", QuantKind::kDirect, 4, 9, 13431, nullptr, 1.0f,
               FollowIndices(o.l1.tensors[0].indices, 7, 9, 13441, 7, 8));
  QuantizeWith(o.l2, "w.m", QuantKind::kDirect, 3, 5, 13432, nullptr, 1.0f,
               FollowIndices(o.l2.tensors[0].indices, 9, 5, 13442, 7, 8));
  QuantizeWith(o.l2, "x", QuantKind::kDirect, 3, 4, 13433, nullptr, 1.0f,
               FollowIndices(o.l1.tensors[2].indices, 3, 4, 13443, 7, 8));
  o.a = Moderate(8, 2, 13450);
  o.b = Moderate(8, 1, 13460);
  o.names = ChainNames(3);
  o.files = WriteChain({{o.k, Opt(StreamCodec::kStored, false)},
                        {o.l1, LstmCmOpt(160), {o.a, false}},
                        {o.l2, LstmCmOpt(160), {o.b, false}}},
                       o.names);
  return o;
}

}  // namespace

void LstmCmValid(Suite& s) {
  IndexCoverage cover;
  {
    // A keyframe (lossless), link 1 with its own model and every index chunk lstm-cm, link 2
    // with lstm_model_from_parent and parent indices from link 1.
    Ckpt k = Single({MakeT("w", DType::kF32, {12, 10}, 13101, Role::kWeight),
                     MakeT("w.m", DType::kF32, {12, 10}, 13102, Role::kMoment1, 0),
                     MakeT("w.v", DType::kF32, {12, 10}, 13103, Role::kMoment2, 0),
                     MakeT("x", DType::kF32, {30}, 13104),
                     MakeT("one", DType::kF32, {5, 6}, 13105),
                     MakeT("e", DType::kF32, {6, 10}, 13106),
                     MakeT("g", DType::kF32, {10, 9}, 13107, Role::kWeight)});
    k.step = 13100;
    Ckpt l1 = Next(k, 13110);
    l1.step = 13200;
    QuantizeWith(l1, "w", QuantKind::kResidual, 4, 11, 13111, &k, 1.0f,
                 WeightIndices(120, 10, 11, 13121));
    QuantizeWith(l1, "w.m", QuantKind::kDirect, 3, 6, 13112, nullptr, 1.0f,
                 FollowIndices(l1.tensors[0].indices, 11, 6, 13122));
    QuantizeWith(l1, "w.v", QuantKind::kDirect, 3, 5, 13113, nullptr, 1.0f,
                 FollowIndices(l1.tensors[1].indices, 6, 5, 13123));
    QuantizeWith(l1, "x", QuantKind::kDirect, 2, 3, 13114, nullptr, 1.0f,
                 WeightIndices(30, 0, 3, 13124));
    QuantizeWith(l1, "one", QuantKind::kDirect, 1, 1, 13115, nullptr, 1.0f,
                 WeightIndices(30, 6, 1, 13125));
    QuantizeWith(l1, "e", QuantKind::kDirect, 8, 200, 13116, nullptr, 1.0f,
                 WeightIndices(60, 10, 200, 13126));
    QuantizeWith(l1, "g", QuantKind::kResidual, 4, 13, 13117, &k, 1.0f,
                 WeightIndices(90, 9, 13, 13127));
    Ckpt l2 = Next(l1, 13130);
    l2.step = 13300;
    for (T& t : l2.tensors) t.quant.reset();
    QuantizeWith(l2, "w", QuantKind::kResidual, 4, 9, 13131, &l1, 1.0f,
                 FollowIndices(l1.tensors[0].indices, 11, 9, 13141));
    QuantizeWith(l2, "w.m", QuantKind::kDirect, 3, 7, 13132, nullptr, 1.0f,
                 FollowIndices(l2.tensors[0].indices, 9, 7, 13142));
    QuantizeWith(l2, "w.v", QuantKind::kDirect, 3, 5, 13133, nullptr, 1.0f,
                 FollowIndices(l2.tensors[1].indices, 7, 5, 13143));
    QuantizeWith(l2, "x", QuantKind::kDirect, 2, 3, 13134, nullptr, 1.0f,
                 FollowIndices(l1.tensors[3].indices, 3, 3, 13144));
    QuantizeWith(l2, "one", QuantKind::kDirect, 1, 1, 13135, nullptr, 1.0f,
                 FollowIndices(l1.tensors[4].indices, 1, 1, 13145));
    QuantizeWith(l2, "e", QuantKind::kDirect, 8, 200, 13136, nullptr, 1.0f,
                 FollowIndices(l1.tensors[5].indices, 200, 200, 13146));
    QuantizeWith(l2, "g", QuantKind::kResidual, 4, 13, 13137, &l1, 1.0f,
                 FollowIndices(l1.tensors[6].indices, 13, 13, 13147));
    const ModelPtr model = Moderate(8, 2, 13150);
    const std::vector<Level> levels = {{k, Opt(StreamCodec::kStored, false)},
                                       {l1, LstmCmOpt(136), {model, false}},
                                       {l2, LstmCmOpt(136), {model, true}}};
    const auto names = ChainNames(3);
    const auto files = WriteChain(levels, names);
    // input.ckz: chunk 1 of 'g' (elements 34..67) taken from the same link coded with cm.
    const Encoded cm = Encode(l2, LstmCmOpt(136, StreamCodec::kCm),
                              LinkTo(files[1], l1, names[1], 2), &l1);
    Model m = FromFile(files[2].bytes);
    const Model mc = FromFile(cm.bytes);
    const size_t g = l2.Index("g");
    Check(m.stored[g].size() == 3 && mc.stored[g].size() == 3 &&
              m.stored[g][1][0] == uint8_t(StreamCodec::kLstmIndices) &&
              mc.stored[g][1][0] == uint8_t(StreamCodec::kCm),
          "lstm-cm chain: 'g' in three chunks, lstm-cm and cm");
    m.stored[g][1] = mc.stored[g][1];
    Check((m.required & kFeatureContextModel) == 0, "lstm-cm chain: no cm chunk yet");
    m.required |= kFeatureContextModel;
    const Bytes input = Assemble(m);
    Check(Must(ParseArchive(ByteSpan(input)), "chain input").content_id == files[2].id,
          "lstm-cm chain: input.ckz keeps its content id");
    {
      const Archive a1 = Must(ParseArchive(ByteSpan(files[1].bytes)), "link 1");
      const Archive a2 = Must(ParseArchive(ByteSpan(input)), "link 2");
      Check(a1.lstm_model_own && !a1.lstm_model_from_parent && !a2.lstm_model_own &&
                a2.lstm_model_from_parent,
            "lstm-cm chain: link 1 holds the model, link 2 takes it from its parent");
      const uint64_t bits = kFeatureLstm | kFeatureLstmIndices;
      Check((a1.preamble.required_features & bits) == bits &&
                (a2.preamble.required_features & bits) == bits,
            "lstm-cm chain: both links set required feature bits 8 and 10");
    }
    const std::vector<StreamCodec> c1 =
        CheckLstmCm("lstm-cm chain link 1", l1, &k, files[1].bytes, model.get(), &cover);
    Check(Count(c1, StreamCodec::kLstmIndices) == c1.size(), "lstm-cm chain: link 1 all lstm-cm");
    const std::vector<StreamCodec> c2 =
        CheckLstmCm("lstm-cm chain link 2", l2, &l1, input, model.get(), &cover);
    Check(Count(c2, StreamCodec::kCm) == 1 && Count(c2, StreamCodec::kLstmIndices) + 1 == c2.size(),
          "lstm-cm chain: link 2 all lstm-cm but 'g''s chunk 1");
    CheckMisreadings("lstm-cm chain link 1", l1, &k, files[1].bytes, model.get(), Misreadings(true));
    CheckMisreadings("lstm-cm chain link 2", l2, &l1, input, model.get(), Misreadings(true));
    {
      // A decoder that took no parent indices in link 2 (as in link 1): other indices.
      bool caught = false;
      for (const T& t : l2.tensors) {
        const T* x = SpecIndexAux(l2, t);
        const SpecIndices got = SpecIndexDecode(
            input, t.name, nullptr, 0, x ? x->indices.data() : nullptr,
            x ? uint32_t(x->quant->codebook.size()) : 0, model.get());
        caught = caught || got.outcome != IndexOutcome::kOk || got.indices != t.indices;
      }
      Check(caught, "lstm-cm chain: link 2 decodes the same without parent indices");
    }
    Case c = Valid(
        "full-lstm-cm-chain", "full",
        "input.ckz -> parent-1.ckz -> parent-2.ckz (a lossless keyframe). parent-1.ckz's header "
        "holds an LSTM model (spec 7.11.1: hidden 8, clip 2, recur_shift 10, out_shift 9) and "
        "every index chunk of its codebook tensors has stream codec 7 (lstm-cm, 7.11.7): cm's "
        "SIG decision (slot 0) and VAL tree bits (slots 2 .. B + 1, most significant first) "
        "decoded at the mixer's probability, features bucket(j, K, 2 clip + 1) of left, up, "
        "parent and aux indices (absent: 2 clip + 1), a fresh network per chunk. input.ckz has "
        "lstm_model_from_parent (parent-1's model) and its chunks have parent indices from "
        "parent-1.ckz's (other codebook sizes: 'w' K 9, its parent K 11). Both links set "
        "required feature bits 8 and 10. Tensors (chunks of 34 elements: they start mid-row): "
        "'w' (F32 [12, 10], Weight, Residual, 11 centres, role 0), 'w.m' (Moment1, Direct, 6 "
        "or 7 centres, aux 'w', role 1), 'w.v' (Moment2, Direct, 5 centres, aux 'w.m', role "
        "2), 'x' (F32 [30], Other, 1-D: no up, role 3), 'one' (F32 [5, 6], 1 centre: B = 0, no "
        "tree bit), 'e' (F32 [6, 10], 200 centres: B = 8, slots 2..9) and 'g' (F32 [10, 9], "
        "Residual, 13 centres), whose chunk 1 in input.ckz is cm (codec 3, and required feature "
        "bit 2) between two lstm-cm chunks. Checked by the generator against its own reading "
        "of 7.7 and 7.11.7; a decoder that read codec 7 as cm, gave the tree bits slots 1..B "
        "or counted them from the least significant bit, clipped the features like levels or "
        "bucketed them into 4, read absent features as 0, took neighbour features across a "
        "chunk's start, kept h, c or the mixer's weights across chunks, ignored the role, "
        "stepped after the index, left cm's state unadapted, left the network's logit or the "
        "mixer's learning out, bucketed parent or aux indices with the tensor's K, or took no "
        "parent indices decodes other indices or fails.",
        l2, input,
        {"lstm:own", "lstm:from-parent", "lstm:hidden-8", "lstm-cm:mixed-codecs", "cm:parent",
         "cm:aux", "cm:mid-row", "quant:residual", "quant:direct"});
    c.files.push_back({names[1], files[1].bytes});
    c.files.push_back({names[0], files[0].bytes});
    s.Add(std::move(c));
  }
  {
    // A keyframe with both an lstm level tensor (codec 6) and lstm-cm index tensors (codec 7):
    // one model for both.
    const Ckpt k = BesideCkpt(6, 3, BesideC(false));
    const ModelPtr model = Moderate(8, 1, 13020);
    const Bytes file = Encode(k, BesideOpt(), std::nullopt, nullptr, {model, false}).bytes;
    const std::vector<StreamCodec> codecs =
        CheckLstmCm("beside-lstm", k, nullptr, file, model.get(), &cover);
    Check(Count(codecs, StreamCodec::kLstmIndices) == codecs.size() && codecs.size() == 4,
          "beside-lstm: four lstm-cm chunks");
    const SpecLevels lv = SpecDecode(file, "lv", nullptr, nullptr, model.get());
    Check(lv.outcome == Outcome::kOk && lv.levels == k.tensors[2].levels &&
              lv.codecs == std::vector<StreamCodec>(2, StreamCodec::kLstmLevels),
          "beside-lstm: 'lv' in two lstm chunks that decode (7.11) to its levels");
    CheckMisreadings("beside-lstm", k, nullptr, file, model.get(), Misreadings(false));
    s.Add(Valid("full-lstm-cm-beside-lstm", "full",
                "A keyframe whose header holds an LSTM model (hidden 8, clip 1: features take "
                "3 buckets and the absent value 3) used by both of its codecs: 'lv' (F32 [8, "
                "6], LevelDirect) in lstm chunks (codec 6, 7.11), and the codebook tensors 'w' "
                "(F32 [6, 8], Weight, Direct, 7 centres) and 'c' (F32 [30], Other, Direct, 6 "
                "centres) in lstm-cm chunks (codec 7, 7.11.7); required feature bits 8 and 10, "
                "96-byte chunks. Checked by the generator against its own reading of 7.11 and "
                "7.11.7.",
                k, file, {"lstm:own", "lstm:hidden-8", "lstm:clip-1", "quant:direct", "quant:level-direct"}));
  }
  {
    // A link with its own model B whose codec-7 chunks have parent indices from codec-7 chunks
    // of a parent with its own, other model A: the parent's chunks decode with A only.
    const OwnModelChain o = MakeOwnModelChain();
    const Bytes& input = o.files[2].bytes;
    const Bytes& parent = o.files[1].bytes;
    {
      const Archive a1 = Must(ParseArchive(ByteSpan(parent)), "link 1");
      const Archive a2 = Must(ParseArchive(ByteSpan(input)), "link 2");
      Check(a1.lstm_model_own && !a1.lstm_model_from_parent && a2.lstm_model_own &&
                !a2.lstm_model_from_parent,
            "own-model-parent: both links hold their own model");
    }
    const std::vector<StreamCodec> c1 =
        CheckLstmCm("own-model-parent link 1", o.l1, &o.k, parent, o.a.get(), &cover);
    const std::vector<StreamCodec> c2 =
        CheckLstmCm("own-model-parent link 2", o.l2, &o.l1, input, o.b.get(), &cover);
    Check(Count(c1, StreamCodec::kLstmIndices) == c1.size() && c1.size() == 5 &&
              Count(c2, StreamCodec::kLstmIndices) == c2.size() && c2.size() == 5,
          "own-model-parent: every index chunk of both links lstm-cm, five each");
    for (const T& t : o.l2.tensors)
      Check(SpecIndexParent(&o.l1, t) != nullptr, "own-model-parent: '" + t.name + "' has parent indices");
    // Each link's chunks decoded with the other link's model: other indices or a failure.
    CheckMisreadings("own-model-parent link 2", o.l2, &o.l1, input, o.b.get(), Misreadings(true));
    Check(ModelTopCaught(o.l2, input, o.l1, parent, &o.k, o.b.get()),
          "own-model-parent: a decoder that decodes the parent's lstm-cm chunks with the link's "
          "model (model_top) decodes the same indices");
    {
      bool caught = false;
      for (const T& t : o.l1.tensors) {
        const SpecIndices got = SpecIndexTensor(o.l1, &o.k, parent, t, o.b.get());
        caught = caught || got.outcome != IndexOutcome::kOk || got.indices != t.indices;
      }
      Check(caught, "own-model-parent: link 1's chunks decode the same with model B");
    }
    Case c = Valid(
        "full-lstm-cm-own-model-parent", "full",
        "input.ckz -> parent-1.ckz -> parent-2.ckz (a lossless keyframe). Both links hold their "
        "own LSTM model (7.11.1), two different ones: parent-1.ckz model A (hidden 8, clip 2), "
        "input.ckz model B (hidden 8, clip 1; not lstm_model_from_parent). Every index chunk of "
        "both links is lstm-cm (stream codec 7, 7.11.7), chunks of 40 elements. input.ckz's "
        "codebook tensors have parent indices (7.7.2) from parent-1.ckz's lstm-cm chunks, which "
        "decode with parent-1.ckz's model A, not with input.ckz's B (7.11.7: a parent's lstm-cm "
        "chunks use the parent's model). Tensors: 'w' (F32 [10, 8], Weight, Direct, 9 centres; "
        "its parent's 7: K_P != K), 'w.m' (Moment1, Direct, 5 centres, aux 'w') and 'x' (F32 "
        "[40], Other, Direct, 4 centres; its parent's 3). Checked by the generator against its "
        "own reading of 7.7 and 7.11.7; a decoder that decoded the parent's lstm-cm chunks "
        "with input.ckz's model decodes other indices or fails (checked by the generator), as "
        "do the misreadings of full-lstm-cm-chain.",
        o.l2, input,
        {"lstm:own", "lstm:parent-other-model", "lstm:hidden-8", "lstm:clip-1", "cm:parent",
         "cm:aux", "quant:direct"});
    c.files.push_back({o.names[1], parent});
    c.files.push_back({o.names[0], o.files[0].bytes});
    s.Add(std::move(c));
  }
  {
    // Saturated weights, as full-lstm-saturated's (vectors_lstm.cc) for codec 6: every int16 at
    // an extreme and mix_init at +-2^20, so that the clamps of 7.11.3 and 7.11.4 are reached on
    // both sides in codec-7 chunks. Units 0 and 1 have every input to their gates at +32767
    // (unit 1's cell candidate at -32768) and no recurrence: their cells run into +-32767.
    auto model = SaturatedModel(13520);
    const uint32_t H = model->hidden, G = 4 * H, clip = model->clip;
    const uint32_t V = LstmModel::Values(clip);
    // Unit 2 shows the cell clamp: its input, forget and output gates wide open, its cell
    // candidate -1 where x_0 (left) is 0 and +1 elsewhere (absent too), and no recurrence.
    // In 'o' (1-D) 48 non-zero indices run its cell past +32767 (48 × 1024), then 48 zeros
    // take it down by 1024 each: clamped, it crosses 0 after 32 of them, unclamped
    // after 48. Slot 0's logit reads unit 2 alone (out[0][k] = 0 for k != 2).
    for (uint32_t gate = 0; gate < 4; ++gate) {
      const uint32_t j = gate * H + 2;
      model->gate_bias[j] = gate == 2 ? 0 : 32767;
      for (uint32_t role = 0; role < kLstmRoles; ++role) model->role[role * G + j] = gate == 2 ? 0 : 32767;
      for (uint32_t f = 0; f < 4 * V; ++f)
        model->embed[f * G + j] = gate != 2 ? 32767 : f >= V ? 0 : f == 0 ? -32768 : 32767;
      for (uint32_t k = 0; k < H; ++k) model->recur[j * H + k] = 0;
    }
    for (uint32_t k = 0; k < H; ++k)
      if (k != 2) model->out[k] = 0;
    Check(model->WellFormed(), "lstm-cm saturated: well formed");
    Ckpt k = Single({MakeT("e", DType::kF32, {10, 8}, 13501, Role::kWeight),
                     MakeT("e.m", DType::kF32, {10, 8}, 13502, Role::kMoment1, 0),
                     MakeT("o", DType::kF32, {200}, 13503)});
    k.step = 13700;
    QuantizeWith(k, "e", QuantKind::kDirect, 3, 7, 13511, nullptr, 1.0f,
                 WeightIndices(80, 8, 7, 13531));
    QuantizeWith(k, "e.m", QuantKind::kDirect, 3, 6, 13512, nullptr, 1.0f,
                 FollowIndices(k.tensors[0].indices, 7, 6, 13532));
    Bytes oi = WeightIndices(200, 0, 3, 13533);
    for (size_t i = 0; i < 96; ++i) oi[i] = i < 48 ? uint8_t(1 + (oi[i] + i) % 3) : 0;
    QuantizeWith(k, "o", QuantKind::kDirect, 2, 3, 13513, nullptr, 1.0f, oi);
    const Bytes file = Encode(k, LstmCmOpt(400), std::nullopt, nullptr, {model, false}).bytes;
    Clamps clamps;
    const std::vector<StreamCodec> codecs =
        CheckLstmCm("lstm-cm saturated", k, nullptr, file, model.get(), &cover, &clamps);
    Check(Count(codecs, StreamCodec::kLstmIndices) == codecs.size() && codecs.size() == 4,
          "lstm-cm saturated: every chunk lstm-cm");
    // 7.11.7's features are buckets (0 .. 2 clip + 1): the feature clip of 7.11.2 is codec 6's.
    const std::pair<const char*, const uint64_t*> reached[] = {
        {"gate ACT clamp", clamps.gate},       {"cell clamp", clamps.cell},
        {"ACT clamp of the cell", clamps.act_cell}, {"logit y clamp", clamps.logit},
        {"mixer t clamp", clamps.mix},         {"mixer weight clamp", clamps.weight},
        {"P at 32 / 65504", clamps.p}};
    for (const auto& [what, n] : reached)
      Check(n[0] > 0 && n[1] > 0,
            std::string("lstm-cm saturated: the ") + what + " is not reached on both sides");
    // Saturated gates hardly read the features' finer values: the bucketing misreadings are
    // full-lstm-cm-chain's to catch.
    auto misread = Misreadings(true);
    misread.erase(std::remove_if(misread.begin(), misread.end(),
                                 [](const Misreading& m) {
                                   return m.second.feature == FeatureReading::kFourBuckets ||
                                          m.second.feature == FeatureReading::kTensorK;
                                 }),
                  misread.end());
    auto add = [&](const std::string& name, auto change) {
      IndexReading x;
      change(x);
      misread.push_back({name, x});
    };
    add("sums the mixer's products in int32", [](IndexReading& x) { x.net.mixer_int64 = false; });
    add("does not clamp y", [](IndexReading& x) { x.net.clamp_logit = false; });
    add("does not clamp the mixer's weights", [](IndexReading& x) { x.net.clamp_weight = false; });
    add("does not clamp the cell", [](IndexReading& x) { x.net.clamp_cell = false; });
    add("rounds shifts of negative values toward zero",
        [](IndexReading& x) { x.net.floor_shifts = false; });
    CheckMisreadings("lstm-cm saturated", k, nullptr, file, model.get(), misread);
    s.Add(Valid("full-lstm-cm-saturated", "full",
                "A keyframe whose LSTM model (hidden 8, clip 2, recur_shift 0, out_shift 2) has "
                "every int16 weight at -32768 or 32767 (but the recurrent weights of hidden "
                "units 0, 1 and 2, which are 0: every other input of the gates of units 0 and 1 "
                "is at the extreme, unit 1's cell candidate negative, so their cells run into "
                "+-32767), and whose every index chunk is lstm-cm (stream codec 7, 7.11.7; "
                "chunks of 100 indices), so that in codec-7 decoding every clamp of 7.11.3 and "
                "7.11.4 is reached on both sides (checked by the generator): gate sums past "
                "-8192 and 8191 (ACT), cells past +-32767, y past +-2047, the mixer's t past "
                "+-2047 (P = 32 and 65504), and mixer weights pushed past +-2^20. Unit 2 has its "
                "input, forget and output gates open and its cell candidate -1 where the left "
                "index is 0, +1 elsewhere (x_0 alone); slot 0's output weights are 0 but unit "
                "2's. 'o' (F32 [200], Other, Direct, 3 centres) starts with 48 non-zero indices "
                "and 48 zeros: unit 2's cell passes +32767 and comes back, crossing 0 after 32 "
                "zeros when clamped (after 48 unclamped). mix_init: every weight of role 0 ('e', "
                "F32 [10, 8], Weight, Direct, 7 centres) at -2^20 or +2^20; role 1 ('e.m', "
                "Moment1, Direct, 6 centres, aux 'e') 1, 1/8 and 0, so that y's clamp shows in "
                "t; role 3 ('o') 2^20, 0 and -2^20, which cancel where cm's P0 is near 0.73, so "
                "that cm's weight, clamped at 2^20, shows. A decoder that left the cell, y or "
                "the mixer's weights unclamped, summed the mixer in int32 or rounded shifts "
                "toward zero decodes other indices or fails (checked by the generator), as do "
                "most misreadings of full-lstm-cm-chain.",
                k, file, {"lstm:own", "lstm:saturated", "lstm:hidden-8", "cm:aux", "quant:direct"}));
  }
  // Every slot cm uses is mixed somewhere (0 and 2..9), every role index, B = 0 and B = 8,
  // chunks that start mid-row, parent and aux indices, and a tensor with cm and lstm-cm chunks.
  for (uint32_t slot : {0u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u})
    Check(cover.net.slots.count(slot) == 1, "no lstm-cm chunk mixes slot " + std::to_string(slot));
  for (uint32_t slot : {1u, 10u, 11u, 12u, 13u, 14u, 15u})
    Check(cover.net.slots.count(slot) == 0, "an lstm-cm chunk mixes slot " + std::to_string(slot));
  for (uint32_t r = 0; r < kLstmRoles; ++r)
    Check(cover.net.roles.count(r) == 1, "no lstm-cm chunk has role index " + std::to_string(r));
  Check(cover.bits.count(0) && cover.bits.count(8), "lstm-cm: B = 0 and B = 8 must be covered");
  Check(cover.mid_row > 0 && cover.parent > 0 && cover.aux > 0 && cover.tensor_mixes_codecs,
        "lstm-cm: mid-row chunks, parent and aux indices and mixed codecs must be covered");
}

void LstmCmInvalid(Suite& s) {
  // The base: full-lstm-cm-beside-lstm's keyframe ('w' and 'c' lstm-cm, 'lv' lstm).
  const Ckpt k = BesideCkpt(6, 3, BesideC(false));
  const ModelPtr model = Moderate(8, 1, 13020);
  const Bytes file = Encode(k, BesideOpt(), std::nullopt, nullptr, {model, false}).bytes;
  const Model base = FromFile(file);
  const size_t w = 0, lv = 2;
  Check(base.stored[w][0][0] == uint8_t(StreamCodec::kLstmIndices) &&
            base.stored[lv][0][0] == uint8_t(StreamCodec::kLstmLevels),
        "lstm-cm invalid base: 'w' lstm-cm, 'lv' lstm");
  const std::vector<std::string> own = {"codec:lstm-cm", "lstm:own"};
  {
    Model m = base;
    Check((m.required & kFeatureLstmIndices) != 0, "bit 10 expected");
    m.required &= ~kFeatureLstmIndices;
    s.Add(Invalid("invalid-lstm-cm-without-bit10", "full", "C1", ErrorCode::kChunkMalformed,
                  "full-lstm-cm-beside-lstm's keyframe with required feature bit 10 (lstm-cm) "
                  "clear: its 'w' and 'c' chunks have codec 7, which needs the bit (7.1, "
                  "7.11.7). Bit 8 stays set (the header holds the model, LM3).",
                  Assemble(m), own));
  }
  {
    Model m = base;
    m.stored[lv][0][0] = uint8_t(StreamCodec::kLstmIndices);
    s.Add(Invalid("invalid-lstm-cm-in-level-tensor", "full", "C1", ErrorCode::kChunkMalformed,
                  "full-lstm-cm-beside-lstm's keyframe (required feature bits 8 and 10, a "
                  "model) whose chunk 0 of the level tensor 'lv' (LevelDirect) is marked codec "
                  "7 (lstm-cm) instead of 6 (its stream is lstm): codec 7 is for tensors with a "
                  "codebook kind only (7.1, 7.11.7).",
                  Assemble(m), own));
  }
  {
    // The same keyframe without a model: 'w' and 'c' cm, 'lv' cml; then bit 10 set.
    Model m = FromFile(Encode(k, BesideOpt(StreamCodec::kCm)).bytes);
    Check((m.required & (kFeatureLstm | kFeatureLstmIndices)) == 0 &&
              m.stored[w][0][0] == uint8_t(StreamCodec::kCm),
          "bit10-without-bit8: a cm file without a model");
    m.required |= kFeatureLstmIndices;
    s.Add(Invalid("invalid-lstm-cm-bit10-without-bit8", "full", "LM4", ErrorCode::kFieldOutOfRange,
                  "A keyframe without an LSTM model whose codebook tensors 'w' and 'c' are cm "
                  "(codec 3) and whose level tensor 'lv' is cml, with required feature bit 10 "
                  "(lstm-cm) set and bit 8 (lstm) clear: bit 10 only with bit 8 (rule LM4). "
                  "LM3 holds (no model, no bit 8), and no chunk has codec 7 (bit 10 without "
                  "such a chunk is valid).",
                  Assemble(m), {"codec:cm"}));
  }
  {
    // 'c' written with 8 centres (4-bit indices), 8 at element 23, then its codebook cut to 7
    // (B = 3 still). With clip 1, bucket(j, K, 3) and bucket(j, K, 4) agree for K 7 and 8 on
    // the indices before it (0..5): the stream decodes as written up to element 23, 8 > K.
    const Ckpt k8 = BesideCkpt(8, 4, BesideC(true));
    const Bytes f8 = Encode(k8, BesideOpt(), std::nullopt, nullptr, {model, false}).bytes;
    const SpecIndices written = SpecIndexDecode(f8, "c", nullptr, 0, nullptr, 0, model.get());
    Check(written.outcome == IndexOutcome::kOk && written.indices == k8.tensors[1].indices &&
              written.codecs == std::vector<StreamCodec>(2, StreamCodec::kLstmIndices),
          "codebook-index: 'c' in two lstm-cm chunks with 8 centres");
    Model m = FromFile(f8);
    m.edit = [](Archive& a) { a.tensors[1].quantization->codebook.resize(7); };
    const Bytes f = Assemble(m);
    const SpecIndices got = SpecIndexDecode(f, "c", nullptr, 0, nullptr, 0, model.get());
    Check(got.outcome == IndexOutcome::kCodebookIndex && got.bad_element == 23,
          "codebook-index: element 23 must fail C6");
    Check(std::equal(got.indices.begin(), got.indices.begin() + 23, k8.tensors[1].indices.begin()),
          "codebook-index: elements 0..22 decode as written");
    s.Add(Invalid("invalid-lstm-cm-codebook-index", "full", "C6", ErrorCode::kCodebookIndex,
                  "The keyframe of full-lstm-cm-beside-lstm with 'c' (F32 [30], 4-bit indices) "
                  "written with 8 centres in two lstm-cm chunks (elements 0..23, 24..29), index 8 at element 23, the last of chunk 0 (indices "
                  "0..5 before it), then its codebook cut to 7 centres (B = 3 still; K is not a "
                  "power of 2). With clip 1 the features and cm's contexts of elements 0..22 are "
                  "the same for K 7 and 8, so the stream decodes as written up to element 23, "
                  "which decodes to 8 > K: CodebookIndex (C6, 7.7.2, 7.11.7), naming element 23 "
                  "(checked by the generator).",
                  f, own));
  }
  {
    // 'w''s chunk 0 (elements 0..11): zero bytes up to what the decoder reads, then 0x01.
    Model m = base;
    Bytes st(m.stored[w][0].begin() + kStreamEntryBytes, m.stored[w][0].end());
    auto read = [&](const Bytes& b) {
      Model y = m;
      SetStream(y.stored[w][0], b);
      return SpecIndexDecode(Assemble(y), "w", nullptr, 0, nullptr, 0, model.get());
    };
    auto valid = [&](const Bytes& b) {
      const SpecIndices got = read(b);
      return got.outcome == IndexOutcome::kOk && got.indices == k.tensors[w].indices;
    };
    Check(valid(st), "lstm-cm finish: the stream decodes");
    const size_t written = st.size();
    for (Bytes next = st; next.push_back(0), valid(next);) st = next;
    st.push_back(0x01);
    Check(read(st).outcome == IndexOutcome::kFinish, "lstm-cm finish: finish must fail");
    SetStream(m.stored[w][0], st);
    s.Add(Invalid("invalid-lstm-cm-finish", "full", "C2", ErrorCode::kChunkDecodeFailed,
                  "The lstm-cm stream of 'w''s chunk 0 (" + std::to_string(written) +
                      " bytes) extended with the " + std::to_string(st.size() - 1 - written) +
                      " zero bytes the decoder reads after it and then one byte 0x01 that it "
                      "never reads: length > consumed at finish (7.7.1, 7.11.7).",
                  Assemble(m), own));
  }
  {
    // C1: codec 7 in a tensor without quantization. The beside keyframe with a lossless 'n'
    // (F32 [16], stored) added; 'n''s chunk marked codec 7. The file has the model and bits 8
    // and 10, and 'w' and 'c' are lstm-cm: only the tensor is wrong.
    Ckpt kn = k;
    kn.tensors.push_back(MakeT("n", DType::kF32, {16}, 13004));
    kn.files[0].tensors.push_back("n");
    Model m = FromFile(Encode(kn, BesideOpt(), std::nullopt, nullptr, {model, false}).bytes);
    const size_t n = kn.Index("n");
    Check(m.stored[w][0][0] == uint8_t(StreamCodec::kLstmIndices) && m.stored[n].size() == 1 &&
              m.stored[n][0][0] == uint8_t(StreamCodec::kStored) &&
              !m.h.tensors[n].quantization &&
              (m.required & (kFeatureLstm | kFeatureLstmIndices)) ==
                  (kFeatureLstm | kFeatureLstmIndices),
          "unquantized-tensor: 'n' stored and unquantized, 'w' lstm-cm, bits 8 and 10");
    m.stored[n][0][0] = uint8_t(StreamCodec::kLstmIndices);
    s.Add(Invalid("invalid-lstm-cm-unquantized-tensor", "full", "C1", ErrorCode::kChunkMalformed,
                  "full-lstm-cm-beside-lstm's keyframe (an LSTM model, required feature bits 8 "
                  "and 10, 'w' and 'c' in lstm-cm chunks) with a lossless tensor 'n' (F32 [16], "
                  "no quantization) added, whose one stream (stored, 64 bytes) is marked codec 7 "
                  "(lstm-cm) instead of 0: codec 7 is for tensors with a codebook kind only "
                  "(7.1, 7.11.7), and 'n' has no quantization at all.",
                  Assemble(m), own));
  }
  {
    // C2 through the parent indices (7.7.3 step 3, 7.11.7): full-lstm-cm-own-model-parent's
    // chain with parent-1.ckz's 'w' chunk 0 (lstm-cm, model A) extended with the zero bytes its
    // decoder reads and then 0x01; input.ckz intact.
    const OwnModelChain o = MakeOwnModelChain();
    const Bytes& input = o.files[2].bytes;
    Model pm = FromFile(o.files[1].bytes);
    const size_t pw = o.l1.Index("w");
    Check(pm.stored[pw].size() == 2 && pm.stored[pw][0][0] == uint8_t(StreamCodec::kLstmIndices),
          "parent-finish: the parent's 'w' in two lstm-cm chunks");
    Bytes st(pm.stored[pw][0].begin() + kStreamEntryBytes, pm.stored[pw][0].end());
    auto read = [&](const Bytes& b) {
      Model y = pm;
      SetStream(y.stored[pw][0], b);
      return SpecIndexTensor(o.l1, &o.k, Assemble(y), o.l1.tensors[pw], o.a.get());
    };
    auto valid = [&](const Bytes& b) {
      const SpecIndices got = read(b);
      return got.outcome == IndexOutcome::kOk && got.indices == o.l1.tensors[pw].indices;
    };
    Check(valid(st), "parent-finish: the parent's stream decodes");
    const size_t written = st.size();
    for (Bytes next = st; next.push_back(0), valid(next);) st = next;
    st.push_back(0x01);
    const SpecIndices bad = read(st);
    Check(bad.outcome == IndexOutcome::kFinish &&
              std::equal(o.l1.tensors[pw].indices.begin(), o.l1.tensors[pw].indices.begin() + 40,
                         bad.indices.begin()),
          "parent-finish: the parent's chunk 0 decodes its indices, then fails finish");
    SetStream(pm.stored[pw][0], st);
    const Bytes parent = Assemble(pm);
    Check(Must(ParseArchive(ByteSpan(parent)), "damaged parent").content_id == o.files[1].id,
          "parent-finish: the parent keeps its content id");
    // input.ckz's 'w' decodes with the intact parent indices; without them (a decoder that
    // went on without parent indices), to other indices or a failure.
    CheckLstmCm("parent-finish", o.l2, &o.l1, input, o.b.get(), nullptr);
    const T& lw = o.l2.tensors[o.l2.Index("w")];
    const SpecIndices without = SpecIndexDecode(input, "w", nullptr, 0, nullptr, 0, o.b.get());
    Check(without.outcome != IndexOutcome::kOk || without.indices != lw.indices,
          "parent-finish: without parent indices 'w' must not decode to its indices");
    Case c = ChainInvalid(
        "invalid-lstm-cm-parent-finish", "C2", ErrorCode::kChunkDecodeFailed,
        "The chain of full-lstm-cm-own-model-parent with parent-1.ckz damaged: input.ckz is "
        "intact, and its 'w' (F32 [10, 8], Direct, 9 centres, lstm-cm, model B) has parent "
        "indices from parent-1.ckz's 'w' (7 centres, lstm-cm, model A), chunks of 40 elements. "
        "In parent-1.ckz the lstm-cm stream of 'w''s chunk 0 (" + std::to_string(written) +
            " bytes) is extended with the " + std::to_string(st.size() - 1 - written) +
            " zero bytes the decoder reads after it and then one byte 0x01 that it never reads: "
            "its indices decode as written, and finish fails (length > consumed; C2, 7.7.1, "
            "7.11.7); parent-1.ckz keeps its content id. Decoding chunk 0 of input.ckz's 'w' "
            "needs those parent indices, and the error decoding them is this chunk's error, "
            "with its code (7.7.3 step 3): ChunkDecodeFailed. A decoder that went on without "
            "parent indices does not get input.ckz's indices (checked by the generator) and "
            "would report another error.",
        input, parent, {"codec:lstm-cm", "lstm:own", "cm:parent"});
    c.files.push_back({o.names[0], o.files[0].bytes});
    s.Add(std::move(c));
  }
}

}  // namespace ckz::vectors
