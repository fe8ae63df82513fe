// The lossy plan of a link (encoder side, not normative): which tensors are coded lossy and
// how. Two planners: ExCP's codebooks (spec 7.6, Appendix A) and the rate-distortion levels
// (spec 7.9, docs/rate-distortion.md). A weight and its optimizer moments form a group, planned
// in that order (a moment's plan needs its weight's, a second moment's its first moment's);
// groups are independent, so a link is planned tensor by tensor, in bounded memory. Plans never
// depend on the thread count or on the order tensors are planned in.
#ifndef CKZ_IO_LOSSY_PLAN_H_
#define CKZ_IO_LOSSY_PLAN_H_

#include <functional>
#include <vector>

#include "ckz/checkpoint.h"
#include "compress/excp.h"

namespace ckz {

// The reference's bytes of `spec`, or an empty buffer when it has no such tensor.
Status ReadWhole(ReferenceSource* reference, const TensorSpec& spec, uint64_t size,
                 std::vector<uint8_t>* out);

// The reference's bytes of `spec` as ReadWhole gives them, without a copy when the reference
// holds them in memory (`storage` otherwise).
Status ReferenceBytes(ReferenceSource* reference, const TensorSpec& spec, uint64_t size,
                      std::vector<uint8_t>* storage, ByteSpan* out);

// The parent's levels of tensor `spec` (spec 7.9.3's temporal context) when its tensor of that
// name, dtype and shape has a level kind, else an empty vector.
Status ParentLevels(ReferenceSource* reference, const TensorSpec& spec, uint64_t count,
                    std::vector<int32_t>* out);
// Whether the parent has levels of `spec` (as ParentLevels would give), without reading them.
Result<bool> HasParentLevels(ReferenceSource* reference, const TensorSpec& spec);

// Which tensors are planned together: by owner, the input index of its Moment1 / Moment2 (the
// last of each when there are several), or -1.
struct PlanGroups {
  std::vector<int> moment1, moment2;
  // Tensor t's group: the owner whose moment it is, or t itself.
  size_t OwnerOf(size_t t) const { return size_t(owner_of[t]); }
  // An owner's group in plan order: the owner, its Moment1, its Moment2 (those present).
  std::vector<size_t> Members(size_t owner) const;
  std::vector<int> owner_of;
};
PlanGroups GroupsOf(const InputCheckpoint& input);

// What a plan of one tensor may read of the plans of its group's earlier members (their
// index or level arrays are kept apart, possibly on disk, so the caller supplies them).
struct EarlierPlans {
  const ShrinkResult* owner = nullptr;    // the group's owner, when planning a moment
  const ShrinkResult* moment1 = nullptr;  // the owner's Moment1, when planning its Moment2
};

class LinkPlanner {
 public:
  // A planner for `input` against `reference` with options.excp or options.rd (one is set).
  LinkPlanner(const InputCheckpoint& input, ReferenceSource* reference,
              const WriteOptions& options, const EncodeOptions& encode);
  const PlanGroups& groups() const { return groups_; }
  // Which plans of earlier members tensor t's plan reads whole (the owner's arrays, the
  // Moment1's): the caller has them in memory when it calls Plan.
  bool NeedsOwnerArrays(size_t t) const;
  bool NeedsMoment1Arrays(size_t t) const;
  // Plans tensor t; `earlier` has the plans of the members of its group before it (their
  // `quantized` always; their arrays when Needs*Arrays says so). Tensors outside the lossy
  // planners' reach get an unquantized plan without a reason.
  Status Plan(size_t t, const EarlierPlans& earlier, ShrinkResult* out);
  // The report's list of tensors kept lossless (in the order the planners always gave it),
  // from every tensor's plan (`plans[t]`: quantized and lossless_reason; arrays not needed).
  void Report(const std::vector<const ShrinkResult*>& plans, WriteReport* report) const;

 private:
  Status PlanExcp(size_t t, const EarlierPlans& earlier, ShrinkResult* out);
  Status PlanLevel(size_t t, const EarlierPlans& earlier, ShrinkResult* out);
  // What both planners check of weight t first: its reference (`ref`, in `storage` unless the
  // reference has it in memory) and its Adam v (`adam_v`). False when it stays lossless, `out`
  // saying why; `without_adam_v`: a weight without Adam's v is planned too.
  Result<bool> WeightToPlan(size_t t, bool without_adam_v, std::vector<uint8_t>* storage,
                            ByteSpan* ref, bool* adam_v, ShrinkResult* out);
  const InputCheckpoint& input_;
  ReferenceSource* reference_;
  const WriteOptions& options_;
  const EncodeOptions& encode_;
  PlanGroups groups_;
  std::vector<char> without_adam_v_;
};

}  // namespace ckz

#endif  // CKZ_IO_LOSSY_PLAN_H_
