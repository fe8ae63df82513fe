#include "common/index_model.h"

#include <type_traits>

#include "common/lstm_model.h"
#include "common/range_coder.h"

namespace ckz {
namespace {

constexpr uint32_t kSigContexts = 3 * 5 * 3;
constexpr uint32_t kAuxBuckets = 4, kParentBuckets = 4, kLeftBuckets = 4;
constexpr uint32_t kValueContexts = kAuxBuckets * kParentBuckets * kLeftBuckets;

// Bits of the value j - 1 of a non-zero index j (0..K-1).
inline unsigned ValueBits(uint32_t k) {
  unsigned n = 0;
  while ((uint32_t{1} << n) < k) ++n;
  return n;
}

// A side codes a decision of `slot` (spec 7.11.7) with a state; kMixed sides step their LSTM
// before each element and code at the mixer's probability.
struct EncodeSide {
  static constexpr bool kDecodes = false, kMixed = false;
  RangeEncoder rc;
  int Code(BitModel& m, int bit, uint32_t) {
    rc.Encode(m, bit);
    return bit;
  }
};

struct DecodeSide {
  static constexpr bool kDecodes = true, kMixed = false;
  RangeDecoder rc;
  int Code(BitModel& m, int, uint32_t) { return rc.Decode(m); }
};

// Adapts the states and records each decision with the probability cm coded it at.
struct TraceSide {
  static constexpr bool kDecodes = false, kMixed = false;
  std::vector<IndexDecision>* out;
  uint32_t element = 0;
  int Code(BitModel& m, int bit, uint32_t slot) {
    out->push_back({element, uint8_t(slot), uint8_t(bit), uint16_t(m.P0())});
    m.Update(bit);
    return bit;
  }
};

// Codec lstm-cm (spec 7.11.7): every decision at the mixer's probability (7.11.4); cm's state
// still adapts to the bit.
struct MixedEncodeSide {
  static constexpr bool kDecodes = false, kMixed = true;
  RangeEncoder rc;
  LstmCoderState lstm;
  int Code(BitModel& m, int bit, uint32_t slot) {
    rc.EncodeP0(lstm.Mix(slot, m.P0()), bit);
    lstm.Learn(bit);
    m.Update(bit);
    return bit;
  }
};

struct MixedDecodeSide {
  static constexpr bool kDecodes = true, kMixed = true;
  RangeDecoder rc;
  LstmCoderState lstm;
  int Code(BitModel& m, int, uint32_t slot) {
    const int bit = rc.DecodeP0(lstm.Mix(slot, m.P0()));
    lstm.Learn(bit);
    m.Update(bit);
    return bit;
  }
};

// The one model both sides run. The encoder reads the indices from `idx`; the decoder writes
// them to `out` (== idx) as it goes. Returns the element whose decoded index exceeds K, or
// count when none did.
template <class Side>
size_t Run(Side& side, const IndexModelInputs& in, const uint8_t* idx, uint8_t* out, size_t count,
           const IndexModelConfig& cfg) {
  const uint32_t k = in.centres;
  const unsigned nbits = ValueBits(k);
  const size_t nodes = size_t{1} << nbits;
  std::vector<BitModel> sig(kSigContexts);
  std::vector<BitModel> val(kValueContexts * nodes);
  const uint64_t row = in.row;
  uint64_t col = row ? in.first % row : 0;
  for (size_t i = 0; i < count; ++i) {
    if constexpr (Side::kMixed) {  // the step comes before every index (7.11.7)
      uint8_t f[kLstmFeatures];
      IndexLstmFeaturesOf(in, idx, i, col, in.lstm->clip, f);
      side.lstm.Step(f);
    }
    if constexpr (std::is_same_v<Side, TraceSide>) side.element = uint32_t(i);
    // Neighbours inside this chunk only, so chunks decode independently.
    const bool has_left = i > 0 && (row == 0 || col != 0);
    const bool has_up = row != 0 && i >= row;
    const uint32_t left = has_left ? idx[i - 1] : 0;
    uint32_t nbr = 0;
    if (cfg.sig_neighbours >= 1) nbr += left != 0;
    if (cfg.sig_neighbours >= 2 && has_up) {
      nbr += idx[i - row] != 0;
      if (col != 0 && i > row) nbr += idx[i - row - 1] != 0;  // inside the chunk too
      if (col + 1 < row) nbr += idx[i - row + 1] != 0;
    }
    const uint32_t pc = in.parent && cfg.sig_parent ? 1 + (in.parent[i] != 0) : 0;
    const uint32_t ac = in.aux && cfg.sig_aux ? 1 + (in.aux[i] != 0) : 0;
    const uint32_t v = idx[i];  // the encoder's value; ignored by the decoder
    const int nonzero = side.Code(sig[(pc * 5 + nbr) * 3 + ac], v != 0, kLstmSlotZero);
    uint32_t j = 0;
    if (nonzero) {
      const uint32_t ab = in.aux && cfg.val_aux ? IndexBucket(in.aux[i], in.aux_centres, kAuxBuckets) : 0;
      const uint32_t pb =
          in.parent && cfg.val_parent ? IndexBucket(in.parent[i], in.parent_centres, kParentBuckets) : 0;
      const uint32_t lb = cfg.val_left ? IndexBucket(left, k, kLeftBuckets) : 0;
      BitModel* tree = &val[((ab * kParentBuckets + pb) * kLeftBuckets + lb) * nodes];
      uint32_t node = 1;
      for (unsigned b = nbits; b-- > 0;)
        node = (node << 1) | uint32_t(side.Code(tree[node], int(((v - 1) >> b) & 1),
                                                kLstmIndexSlotTree + (nbits - 1 - b)));
      j = node - uint32_t(nodes) + 1;
      if (j > k) return i;
    }
    if constexpr (Side::kDecodes) out[i] = uint8_t(j);
    if (row != 0 && ++col == row) col = 0;
  }
  return count;
}

}  // namespace

int CmAuxTensor(const std::vector<CmTensorRole>& tensors, size_t t) {
  const CmTensorRole& me = tensors[t];
  if (!me.quantized || me.owner < 0 || size_t(me.owner) >= tensors.size()) return -1;
  auto same_family = [&](const CmTensorRole& o) { return o.quantized && o.levels == me.levels; };
  const size_t owner = size_t(me.owner);
  const bool owner_ok = owner != t && same_family(tensors[owner]);
  if (me.role == Role::kMoment1) return owner_ok ? int(owner) : -1;
  if (me.role != Role::kMoment2) return -1;
  int sibling = -1;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const CmTensorRole& o = tensors[i];
    if (i == t || !same_family(o) || o.role != Role::kMoment1 || o.owner != me.owner) continue;
    if (sibling >= 0) return owner_ok ? int(owner) : -1;  // two Moment1: ambiguous
    sibling = int(i);
  }
  // A sibling Moment1's own aux is the owner, never this Moment2: no cycle.
  if (sibling >= 0) return sibling;
  return owner_ok ? int(owner) : -1;
}

int WeightMoment1(const std::vector<CmTensorRole>& tensors, size_t t) {
  if (tensors[t].role != Role::kWeight) return -1;
  int found = -1;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].role != Role::kMoment1 || tensors[i].owner != int32_t(t)) continue;
    if (found >= 0) return -1;  // two Moment1 of one weight: ambiguous
    found = int(i);
  }
  return found;
}

TensorInfo ParentMomentProbe(const TensorInfo& moment1, const TensorInfo& weight) {
  TensorInfo probe;
  probe.name = moment1.name;
  probe.dtype = moment1.dtype;
  probe.shape = moment1.shape;
  probe.quantization = weight.quantization;
  return probe;
}

std::vector<CmTensorRole> CmRoles(const std::vector<TensorInfo>& tensors) {
  std::vector<CmTensorRole> roles(tensors.size());
  for (size_t i = 0; i < roles.size(); ++i)
    roles[i] = {tensors[i].role, tensors[i].owner, tensors[i].quantization.has_value(),
                tensors[i].quantization && tensors[i].quantization->IsLevels()};
  return roles;
}

void EncodeIndexStream(const IndexModelInputs& in, const uint8_t* indices, size_t count,
                       std::vector<uint8_t>* out, const IndexModelConfig& config) {
  if (in.lstm) {
    MixedEncodeSide side{RangeEncoder(out), LstmCoderState(*in.lstm, in.role)};
    Run(side, in, indices, nullptr, count, config);
    side.rc.Finish();
    return;
  }
  EncodeSide side{RangeEncoder(out)};
  Run(side, in, indices, nullptr, count, config);
  side.rc.Finish();
}

void TraceIndexStream(const IndexModelInputs& in, const uint8_t* indices, size_t count,
                      std::vector<IndexDecision>* out) {
  TraceSide side{out};
  Run(side, in, indices, nullptr, count, IndexModelConfig{});
}

IndexDecodeResult DecodeIndexStream(const IndexModelInputs& in, const uint8_t* src, size_t size,
                                    uint8_t* out, size_t count, size_t* bad_element,
                                    const IndexModelConfig& config) {
  size_t stop = 0;
  bool finished = false;
  if (in.lstm) {
    MixedDecodeSide side{RangeDecoder(src, size), LstmCoderState(*in.lstm, in.role)};
    stop = Run(side, in, out, out, count, config);
    finished = stop == count && side.rc.Finish();
  } else {
    DecodeSide side{RangeDecoder(src, size)};
    stop = Run(side, in, out, out, count, config);
    finished = stop == count && side.rc.Finish();
  }
  if (stop != count) {
    *bad_element = stop;
    return IndexDecodeResult::kIndexTooLarge;
  }
  return finished ? IndexDecodeResult::kOk : IndexDecodeResult::kBadStream;
}

}  // namespace ckz
