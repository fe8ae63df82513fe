// The lossy plan of a link (encoder side, not normative): which tensors are coded lossy and
// how. Two planners: ExCP's codebooks (spec 7.6, Appendix A) and the rate-distortion levels
// (spec 7.9, docs/rate-distortion.md). Both plan weights first, then their optimizer moments,
// each stage on the writer's threads; plans never depend on the thread count.
#ifndef CKZ_IO_LOSSY_PLAN_H_
#define CKZ_IO_LOSSY_PLAN_H_

#include <vector>

#include "ckz/checkpoint.h"
#include "compress/excp.h"

namespace ckz {

// The reference's bytes of `spec`, or an empty buffer when it has no such tensor.
Status ReadWhole(ReferenceSource* reference, const TensorSpec& spec, uint64_t size,
                 std::vector<uint8_t>* out);

// The parent's levels of tensor `spec` (spec 7.9.3's temporal context) when its tensor of that
// name, dtype and shape has a level kind, else an empty vector.
Status ParentLevels(ReferenceSource* reference, const TensorSpec& spec, uint64_t count,
                    std::vector<int32_t>* out);

// ExCP decisions for a link (plan[i] for input tensor i).
Status PlanShrinking(const InputCheckpoint& input, ReferenceSource* reference,
                     const ExcpOptions& excp, int threads, std::vector<ShrinkResult>* plan,
                     WriteReport* report);

// (0.7) Rate-distortion levels for a link: weights with an Adam v, their m and v; with
// rd.weights_only_step, weights without one too. A level tensor's quant.step_source is an
// input tensor index (the file's tensor index: tensors are written in input order).
Status PlanLevels(const InputCheckpoint& input, ReferenceSource* reference,
                  const RdOptions& rd, const EncodeOptions& encode,
                  std::vector<ShrinkResult>* plan, WriteReport* report);

}  // namespace ckz

#endif  // CKZ_IO_LOSSY_PLAN_H_
