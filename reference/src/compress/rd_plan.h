// Rate-distortion planning of a link's lossy tensors (encoder side, not normative; spec
// Appendix A, docs/rate-distortion.md): the level kinds of spec 7.9 with steps from one
// trade-off, and levels chosen by rate-distortion optimised quantization against the cml
// model's own costs.
//  - a weight: LevelResidual of its decoded parent, one step per tensor, `weight_step` times the
//    RMS of this link's update;
//  - its Adam m: LevelDirect, steps `moment1_step` times 2^floor(e/2), e the exponent of the
//    parent's decoded v (m in the units Adam divides it by);
//  - its Adam v: LevelLog against the parent's decoded v times the tensor's growth, a level
//    being 2^-log_unit in log2 (v's relative error is what the update feels).
#ifndef CKZ_COMPRESS_RD_PLAN_H_
#define CKZ_COMPRESS_RD_PLAN_H_

#include <cstdint>
#include <vector>

#include "ckz/checkpoint.h"
#include "compress/excp.h"

namespace ckz {

// Where a plan's chunks start afresh (their models restart) and its contexts.
struct LevelLayout {
  uint64_t row = 0;             // last dimension of a >= 2-D tensor, else 0
  uint64_t chunk_elements = 0;  // the writer's chunking (ChunkElements)
  const int32_t* parent = nullptr;  // parent levels of the tensor, or null
  const int32_t* aux = nullptr;     // aux tensor's levels, or null
};

// Chooses out[i] among round(target[i]), its neighbour toward zero and 0, minimising
// (target[i] - level)^2 + lambda * bits(level) with the cml model's costs as coding goes (a
// greedy choice in coding order; lambda = 0: plain rounding). |level| <= kMaxLevel.
void ChooseLevels(const double* target, size_t count, const LevelLayout& layout, double lambda,
                  int32_t* out);

// A weight W against its decoded parent `reference`: LevelResidual, step `step` (> 0; zero
// steps are replaced by 1 when nothing moved).
ShrinkResult PlanWeightLevels(DType dtype, ByteSpan w, ByteSpan reference, double step,
                              const LevelLayout& layout, double lambda);

// Adam's m: LevelDirect with steps relative * 2^floor((e_i - center) / 2) from the parent's
// decoded v (`v_reference`, `v_dtype`); the step_source is set by the caller.
ShrinkResult PlanFirstMomentLevels(DType dtype, ByteSpan m, DType v_dtype, ByteSpan v_reference,
                                   double relative, const LevelLayout& layout, double lambda);

// Adam's v: LevelLog against the parent's decoded v (`reference`) times the tensor's growth,
// a level being 2^-log_unit in log2, log_unit from `log2_step`.
ShrinkResult PlanSecondMomentLevels(DType dtype, ByteSpan v, ByteSpan reference,
                                    double log2_step, const LevelLayout& layout, double lambda);

// The RMS of a - b over the elements (floating dtype).
double RmsDifference(DType dtype, ByteSpan a, ByteSpan b);

}  // namespace ckz

#endif  // CKZ_COMPRESS_RD_PLAN_H_
