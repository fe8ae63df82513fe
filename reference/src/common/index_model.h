// The context model of the "cm" index-stream codec (spec 7.7): how a chunk's quantization
// indices are turned into binary decisions and which adaptive BitModel codes each one.
// Encoder and decoder run the same function (one code path), so their contexts cannot drift.
#ifndef CKZ_COMMON_INDEX_MODEL_H_
#define CKZ_COMMON_INDEX_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ckz/archive.h"
#include "ckz/lstm_model.h"
#include "ckz/types.h"

namespace ckz {

// Spec 7.7.2: what the aux-context rule looks at for each tensor of a file.
struct CmTensorRole {
  Role role = Role::kOther;
  int32_t owner = -1;
  bool quantized = false;
  bool levels = false;  // (0.7) quantized with a level kind (spec 7.9)
};

// The tensor whose indices are tensor t's aux context, or -1: for a quantized Moment1, its
// owner when quantized; for a quantized Moment2, the only quantized Moment1 of the same owner,
// else its owner when quantized. Never a tensor that itself uses t as aux (no cycles).
// (0.7) "Quantized" means of t's family: codebook kinds look at codebook kinds only, level
// kinds at level kinds only (spec 7.9.3).
int CmAuxTensor(const std::vector<CmTensorRole>& tensors, size_t t);

// (0.10, spec 7.9.3, required feature bit 9) For a Weight t: the only Moment1 whose owner is
// t, whatever its coding, or -1 (none, several, or t is not a Weight). A link's level Weight
// takes the parent's levels of that tensor's name as its aux levels.
int WeightMoment1(const std::vector<CmTensorRole>& tensors, size_t t);
// What a ReferenceSource is asked for those levels: the Moment1's name, dtype and shape, with
// the Weight's level quantization (ReadReferenceIndices gives levels only to a level tensor).
TensorInfo ParentMomentProbe(const TensorInfo& moment1, const TensorInfo& weight);

// What the aux-context rule looks at, for every tensor of a parsed file.
std::vector<CmTensorRole> CmRoles(const std::vector<TensorInfo>& tensors);

// Everything the model of one chunk may look at besides its own, already coded, indices.
struct IndexModelInputs {
  uint32_t centres = 0;  // K: the chunk's indices are 0..K (K = codebook size, 1..255)
  uint64_t first = 0;    // the chunk's first element, counted in the tensor
  uint64_t row = 0;      // elements per row (the last dimension) of a >= 2-D tensor, else 0
  // The parent link's indices of the tensor of the same name at the same elements (temporal
  // context), or null when the parent's tensor is not quantized.
  const uint8_t* parent = nullptr;
  uint32_t parent_centres = 0;
  // Indices of the related stream at the same elements (a Moment1's weight, a Moment2's
  // Moment1), or null.
  const uint8_t* aux = nullptr;
  uint32_t aux_centres = 0;
  // (0.11) Codec lstm-cm (spec 7.11.7): the model mixed with cm's states, and the tensor's role
  // (LstmRoleOf); null for plain cm.
  const LstmModel* lstm = nullptr;
  uint32_t role = 0;
};

// Spec 7.7.2's bucket(j, k, m): 0 for index 0 (pruned or absent), then the k centres in index
// order split into m - 1 runs. The encoder sorts its centres, so a class says "how negative
// or positive"; it depends on the index only, never on the centres' values.
inline uint32_t IndexBucket(uint32_t index, uint32_t k, uint32_t m) {
  return index == 0 ? 0 : 1 + (index - 1) * (m - 1) / k;
}

// (0.11) Spec 7.11.7's LSTM inputs of element i of an index chunk: the left, up, parent and
// aux indices, each as bucket(j, K, 2 clip + 1) of its own codebook's K, or 2 clip + 1 when
// absent (col = (first + i) mod row).
inline void IndexLstmFeaturesOf(const IndexModelInputs& in, const uint8_t* idx, size_t i,
                                uint64_t col, uint32_t clip, uint8_t f[kLstmFeatures]) {
  const uint32_t m = 2 * clip + 1;
  const bool has_left = i > 0 && (in.row == 0 || col != 0);
  const bool has_up = in.row != 0 && i >= in.row;
  f[0] = uint8_t(has_left ? IndexBucket(idx[i - 1], in.centres, m) : m);
  f[1] = uint8_t(has_up ? IndexBucket(idx[i - in.row], in.centres, m) : m);
  f[2] = uint8_t(in.parent ? IndexBucket(in.parent[i], in.parent_centres, m) : m);
  f[3] = uint8_t(in.aux ? IndexBucket(in.aux[i], in.aux_centres, m) : m);
}

// (0.11) Spec 7.11.7's slots: the SIG decision is slot 0, the VAL tree's bit at depth b (0 the
// most significant) slot 2 + b.
constexpr uint32_t kLstmIndexSlotTree = 2;

// One binary decision of a cm chunk with the probability cm gave it (the trainer's view).
struct IndexDecision {
  uint32_t element;  // in the chunk
  uint8_t slot;      // spec 7.11.7's slot
  uint8_t bit;
  uint16_t p0;       // P0 of cm's state before the update
};
// Codes nothing: appends every decision cm makes for `indices` (in.lstm ignored).
void TraceIndexStream(const IndexModelInputs& in, const uint8_t* indices, size_t count,
                      std::vector<IndexDecision>* out);

// Which contexts are on. The format uses the default; other settings exist only so that the
// measurement tool (tools/bench/cm_measure.cc) can show what each context is worth.
struct IndexModelConfig {
  bool sig_parent = true;
  int sig_neighbours = 2;  // 0: none, 1: left only, 2: left, up-left, up, up-right
  bool sig_aux = true;
  bool val_parent = true;
  bool val_aux = true;
  bool val_left = true;
};

// Appends the coded stream of `count` indices (each <= in.centres) to `out`.
void EncodeIndexStream(const IndexModelInputs& in, const uint8_t* indices, size_t count,
                       std::vector<uint8_t>* out, const IndexModelConfig& config = {});

enum class IndexDecodeResult {
  kOk,
  kIndexTooLarge,  // a decoded index exceeds K (*bad_element: the chunk's element)
  kBadStream,      // the coder's final check failed: bytes left over or an impossible state
};

// Decodes `count` indices from `src` into `out`.
IndexDecodeResult DecodeIndexStream(const IndexModelInputs& in, const uint8_t* src, size_t size,
                                    uint8_t* out, size_t count, size_t* bad_element,
                                    const IndexModelConfig& config = {});

}  // namespace ckz

#endif  // CKZ_COMMON_INDEX_MODEL_H_
