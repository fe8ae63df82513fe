#include "io/lossy_plan.h"

#include <cmath>

#include "common/index_model.h"
#include "common/parallel.h"
#include "common/quantize.h"
#include "compress/rd_plan.h"
#include "io/optimizer_keys.h"

namespace ckz {
namespace {

// Moments by owner: moment1[w], moment2[w] = the input index of w's Moment1/Moment2, or -1.
void MomentsByOwner(const std::vector<InputTensor>& t, std::vector<int>* moment1,
                    std::vector<int>* moment2) {
  moment1->assign(t.size(), -1);
  moment2->assign(t.size(), -1);
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i].spec.owner < 0 || size_t(t[i].spec.owner) >= t.size()) continue;
    if (t[i].spec.role == Role::kMoment1) (*moment1)[size_t(t[i].spec.owner)] = int(i);
    if (t[i].spec.role == Role::kMoment2) (*moment2)[size_t(t[i].spec.owner)] = int(i);
  }
}

// A Moment2 is Adam's v when its state key says so, or when the caller set the role without
// one (ExCP's k formula and the level planner are made for it).
bool IsAdamV(const InputTensor& t) {
  return t.state_key.empty() || t.state_key == kAdamSecondMoment;
}

Status FirstError(const std::vector<Status>& results) {
  for (const Status& s : results)
    if (!s.ok()) return s;
  return Status::Ok();
}

}  // namespace

Status ReadWhole(ReferenceSource* reference, const TensorSpec& spec, uint64_t size,
                 std::vector<uint8_t>* out) {
  out->clear();
  if (!reference) return Status::Ok();
  TensorInfo wanted;
  wanted.name = spec.name;
  wanted.dtype = spec.dtype;
  wanted.shape = spec.shape;
  out->resize(size);
  Status s = reference->ReadReference(wanted, 0, MutableByteSpan(*out));
  if (s.code() == ErrorCode::kReferenceMismatch) {
    out->clear();  // a tensor the parent lacks: not an error, just not predicted
    return Status::Ok();
  }
  return s;
}

// ExCP: weights first (moments need their weight's kept elements, and a
// file may hold moments before their weights), each stage on `threads` threads. The plan and
// the report's order never depend on the thread count.
Status PlanShrinking(const InputCheckpoint& input, ReferenceSource* reference,
                     const ExcpOptions& excp, int threads, std::vector<ShrinkResult>* plan,
                     WriteReport* report) {
  const std::vector<InputTensor>& t = input.tensors;
  plan->assign(t.size(), ShrinkResult{});
  std::vector<int> moment1, moment2;
  MomentsByOwner(t, &moment1, &moment2);
  std::vector<size_t> weights;
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i].spec.role == Role::kWeight && DTypeIsFloat(t[i].spec.dtype)) weights.push_back(i);
  std::vector<Status> results(t.size());
  std::vector<char> without_adam_v(t.size(), false);
  auto note = [&](size_t i) {
    if (!(*plan)[i].quantized) report->lossless.push_back(t[i].spec.name + ": " + (*plan)[i].lossless_reason);
  };

  ParallelFor(weights.size(), threads, [&](size_t k, int) {
    const size_t i = weights[k];
    const TensorSpec& spec = t[i].spec;
    std::vector<uint8_t> ref;
    results[i] = ReadWhole(reference, spec, t[i].data.size, &ref);
    if (!results[i].ok()) return;
    if (ref.empty()) {
      (*plan)[i].lossless_reason = "no tensor of its name, dtype and shape in the parent";
      return;
    }
    // ExCP's k = alpha / sqrt(mean(v)) is made for Adam's v; without one, a weight is pruned
    // only with an explicit fallback_k (spec Appendix A).
    const int v = moment2[i];
    const bool adam_v = v >= 0 && IsAdamV(t[size_t(v)]);
    if (!adam_v && !excp.fallback_k) {
      (*plan)[i].lossless_reason =
          v < 0 ? "no Adam second moment (a weights-only or SGD checkpoint)"
                : "its second moment is '" + t[size_t(v)].state_key + "', not Adam's exp_avg_sq";
      without_adam_v[i] = true;
      return;
    }
    (*plan)[i] = ShrinkWeight(spec.dtype, t[i].data, ByteSpan(ref),
                              adam_v ? t[size_t(v)].spec.dtype : DType::kF32,
                              adam_v ? t[size_t(v)].data : ByteSpan(), excp);
  });
  CKZ_RETURN_IF_ERROR(FirstError(results));
  for (size_t i : weights) {
    note(i);
    report->without_adam_v += without_adam_v[i];
  }

  std::vector<size_t> owners;  // tensors with optimizer moments, whatever their role
  for (size_t w = 0; w < t.size(); ++w)
    if (moment1[w] >= 0 || moment2[w] >= 0) owners.push_back(w);
  ParallelFor(owners.size(), threads, [&](size_t k, int) {
    const size_t w = owners[k];
    std::vector<uint8_t> ref;
    for (int m : {moment1[w], moment2[w]}) {
      if (m < 0) continue;
      const size_t mi = size_t(m);
      if (!(*plan)[w].quantized) {
        (*plan)[mi].lossless_reason = "its weight '" + t[w].spec.name + "' is stored losslessly";
        continue;
      }
      // m: kept where |m| > beta mean|m| and the weight's residual was kept; v: where m was.
      const bool is_m = t[mi].spec.role == Role::kMoment1;
      const int m1 = moment1[w];
      const std::vector<uint8_t>& keep =
          !is_m && m1 >= 0 && (*plan)[size_t(m1)].quantized ? (*plan)[size_t(m1)].indices
                                                             : (*plan)[w].indices;
      ref.clear();
      if (!is_m && excp.v_residual) {
        results[mi] = ReadWhole(reference, t[mi].spec, t[mi].data.size, &ref);
        if (!results[mi].ok()) return;
      }
      (*plan)[mi] = ShrinkMoment(t[mi].spec.dtype, t[mi].data, keep, is_m, ByteSpan(ref), excp);
    }
  });
  CKZ_RETURN_IF_ERROR(FirstError(results));
  for (size_t w : owners)
    for (int m : {moment1[w], moment2[w]})
      if (m >= 0) note(size_t(m));
  return Status::Ok();
}

double StrengthOfQuality(int quality) { return std::exp2((5.0 - quality) / 4.0); }

Status ParentLevels(ReferenceSource* reference, const TensorSpec& spec, uint64_t count,
                    std::vector<int32_t>* out) {
  TensorInfo wanted;
  wanted.name = spec.name;
  wanted.dtype = spec.dtype;
  wanted.shape = spec.shape;
  wanted.quantization = QuantizationInfo{};
  wanted.quantization->kind = QuantKind::kLevelResidual;  // asks for levels
  out->resize(count);
  uint32_t present = 0;
  CKZ_RETURN_IF_ERROR(reference->ReadReferenceIndices(
      wanted, 0, MutableByteSpan(reinterpret_cast<uint8_t*>(out->data()), count * 4), &present));
  if (!present) out->clear();
  return Status::Ok();
}

namespace {

double Rms(DType dtype, ByteSpan x) {
  const size_t n = x.size / DTypeSize(dtype);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += FloatElement(dtype, x.data, i) * FloatElement(dtype, x.data, i);
  return n ? std::sqrt(sum / double(n)) : 0.0;
}

}  // namespace

Status PlanLevels(const InputCheckpoint& input, ReferenceSource* reference,
                  const RdOptions& rd, const EncodeOptions& encode,
                  std::vector<ShrinkResult>* plan, WriteReport* report) {
  const std::vector<InputTensor>& t = input.tensors;
  plan->assign(t.size(), ShrinkResult{});
  std::vector<int> moment1, moment2;
  MomentsByOwner(t, &moment1, &moment2);
  std::vector<size_t> weights;
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i].spec.role == Role::kWeight && DTypeIsFloat(t[i].spec.dtype)) weights.push_back(i);
  std::vector<Status> results(t.size());
  std::vector<char> without_adam_v(t.size(), false);
  auto layout_of = [&](size_t i, std::vector<int32_t>* parent_levels) {
    LevelLayout layout;
    const TensorSpec& spec = t[i].spec;
    uint64_t n = 1;
    for (uint64_t d : spec.shape) n *= d;
    layout.row = spec.shape.size() >= 2 ? spec.shape.back() : 0;
    layout.chunk_elements = ChunkElements(encode, spec.dtype, n, true);
    results[i] = ParentLevels(reference, spec, n, parent_levels);
    if (!parent_levels->empty()) layout.parent = parent_levels->data();
    return layout;
  };

  ParallelFor(weights.size(), encode.threads, [&](size_t k, int) {
    const size_t i = weights[k];
    const TensorSpec& spec = t[i].spec;
    std::vector<uint8_t> ref;
    results[i] = ReadWhole(reference, spec, t[i].data.size, &ref);
    if (!results[i].ok()) return;
    if (ref.empty()) {
      (*plan)[i].lossless_reason = "no tensor of its name, dtype and shape in the parent";
      return;
    }
    const int v = moment2[i];
    const bool adam_v = v >= 0 && IsAdamV(t[size_t(v)]);
    if (!adam_v && !rd.weights_only_step) {
      (*plan)[i].lossless_reason =
          v < 0 ? "no Adam second moment (a weights-only or SGD checkpoint)"
                : "its second moment is '" + t[size_t(v)].state_key + "', not Adam's exp_avg_sq";
      without_adam_v[i] = true;
      return;
    }
    std::vector<int32_t> parent_levels;
    const LevelLayout layout = layout_of(i, &parent_levels);
    if (!results[i].ok()) return;
    // With Adam's v: a step relative to this link's update, levels chosen by RDOQ. Without
    // (the bounded weights-only mode): relative to the weights themselves, plain rounding, so
    // that |error| <= step / 2 holds.
    double step = adam_v ? rd.strength * rd.weight_step *
                               RmsDifference(spec.dtype, t[i].data, ByteSpan(ref))
                         : *rd.weights_only_step * Rms(spec.dtype, t[i].data);
    if (adam_v && !parent_levels.empty()) {
      // The parent's weight is itself quantized: the residual holds its error (variance
      // step^2 / 12) besides this link's update, and a step taken from the residual's RMS would
      // grow link after link (unboundedly beyond 2 sqrt(3) RMS updates). Dividing by
      // sqrt(1 + s^2 / 12) makes `s` RMS updates the chain's steady state at any strength
      // (docs/rate-distortion.md, "The step of the weights").
      const double s = rd.strength * rd.weight_step;
      step /= std::sqrt(1 + s * s / 12);
    }
    (*plan)[i] = PlanWeightLevels(spec.dtype, t[i].data, ByteSpan(ref), step, layout,
                                  adam_v ? rd.rdoq_lambda : 0.0);
  });
  CKZ_RETURN_IF_ERROR(FirstError(results));
  for (size_t i : weights) {
    if (!(*plan)[i].quantized)
      report->lossless.push_back(t[i].spec.name + ": " + (*plan)[i].lossless_reason);
    report->without_adam_v += without_adam_v[i];
  }

  // Adam's m and v of each planned weight: m's steps follow the parent's v, v is a log-domain
  // residual of it. m's aux context is the weight's levels, v's is m's (spec 7.7.2's rule).
  std::vector<size_t> owners;
  for (size_t w : weights)
    if ((*plan)[w].quantized && moment2[w] >= 0 && IsAdamV(t[size_t(moment2[w])]))
      owners.push_back(w);
  ParallelFor(owners.size(), encode.threads, [&](size_t k, int) {
    const size_t w = owners[k];
    const size_t vi = size_t(moment2[w]);
    const int mi = moment1[w];
    std::vector<uint8_t> v_ref;
    results[vi] = ReadWhole(reference, t[vi].spec, t[vi].data.size, &v_ref);
    if (!results[vi].ok()) return;
    if (v_ref.empty()) {
      (*plan)[vi].lossless_reason = "no second moment of its name, dtype and shape in the parent";
      if (mi >= 0) (*plan)[size_t(mi)].lossless_reason = (*plan)[vi].lossless_reason;
      return;
    }
    const int32_t* aux = (*plan)[w].levels.data();
    if (mi >= 0) {
      const size_t m = size_t(mi);
      std::vector<int32_t> parent_levels;
      LevelLayout layout = layout_of(m, &parent_levels);
      if (!results[m].ok()) return;
      layout.aux = aux;
      (*plan)[m] = PlanFirstMomentLevels(t[m].spec.dtype, t[m].data, t[vi].spec.dtype,
                                         ByteSpan(v_ref), rd.strength * rd.moment1_step, layout,
                                         rd.rdoq_lambda);
      (*plan)[m].quant.step_source = int32_t(vi);
      if ((*plan)[m].quantized) aux = (*plan)[m].levels.data();
    }
    std::vector<int32_t> parent_levels;
    LevelLayout layout = layout_of(vi, &parent_levels);
    if (!results[vi].ok()) return;
    layout.aux = aux;
    (*plan)[vi] = PlanSecondMomentLevels(t[vi].spec.dtype, t[vi].data, ByteSpan(v_ref),
                                         rd.strength * rd.moment2_step, layout, rd.rdoq_lambda);
  });
  CKZ_RETURN_IF_ERROR(FirstError(results));
  for (size_t w : weights)
    for (int m : {moment1[w], moment2[w]})
      if (m >= 0 && (*plan)[w].quantized && !(*plan)[size_t(m)].quantized)
        report->lossless.push_back(t[size_t(m)].spec.name + ": " +
                                   ((*plan)[size_t(m)].lossless_reason.empty()
                                        ? std::string("not Adam's moment")
                                        : (*plan)[size_t(m)].lossless_reason));
  return Status::Ok();
}

}  // namespace ckz
