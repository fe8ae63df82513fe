#include "io/lossy_plan.h"

#include <cmath>

#include "common/quantize.h"
#include "compress/rd_plan.h"
#include "io/optimizer_keys.h"

namespace ckz {
namespace {

// A Moment2 is Adam's v when its state key says so, or when the caller set the role without
// one (ExCP's k formula and the level planner are made for it).
bool IsAdamV(const InputTensor& t) {
  return t.state_key.empty() || t.state_key == kAdamSecondMoment;
}

bool IsPlannedWeight(const InputTensor& t) {
  return t.spec.role == Role::kWeight && DTypeIsFloat(t.spec.dtype);
}

TensorInfo Wanted(const TensorSpec& spec) {
  TensorInfo wanted;
  wanted.name = spec.name;
  wanted.dtype = spec.dtype;
  wanted.shape = spec.shape;
  return wanted;
}

double Rms(DType dtype, ByteSpan x) {
  const size_t n = x.size / DTypeSize(dtype);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += FloatAt(dtype, x.data, i) * FloatAt(dtype, x.data, i);
  return n ? std::sqrt(sum / double(n)) : 0.0;
}

}  // namespace

Status ReadWhole(ReferenceSource* reference, const TensorSpec& spec, uint64_t size,
                 std::vector<uint8_t>* out) {
  out->clear();
  if (!reference) return Status::Ok();
  out->resize(size);
  Status s = reference->ReadReference(Wanted(spec), 0, MutableByteSpan(*out));
  if (s.code() == ErrorCode::kReferenceMismatch) {
    out->clear();  // a tensor the parent lacks: not an error, just not predicted
    return Status::Ok();
  }
  return s;
}

Status ReferenceBytes(ReferenceSource* reference, const TensorSpec& spec, uint64_t size,
                      std::vector<uint8_t>* storage, ByteSpan* out) {
  if (reference) {
    if (const std::optional<ByteSpan> view = reference->ReferenceView(Wanted(spec));
        view && view->size == size) {
      *out = *view;
      return Status::Ok();
    }
  }
  CKZ_RETURN_IF_ERROR(ReadWhole(reference, spec, size, storage));
  *out = ByteSpan(*storage);
  return Status::Ok();
}

namespace {
// `spec` as a level tensor: what asks a reference for its levels.
TensorInfo WantedLevels(const TensorSpec& spec) {
  TensorInfo wanted = Wanted(spec);
  wanted.quantization = QuantizationInfo{};
  wanted.quantization->kind = QuantKind::kLevelResidual;
  return wanted;
}
}  // namespace

Status ParentLevels(ReferenceSource* reference, const TensorSpec& spec, uint64_t count,
                    std::vector<int32_t>* out) {
  out->resize(count);
  uint32_t present = 0;
  CKZ_RETURN_IF_ERROR(reference->ReadReferenceIndices(
      WantedLevels(spec), 0, MutableByteSpan(reinterpret_cast<uint8_t*>(out->data()), count * 4),
      &present));
  if (!present) out->clear();
  return Status::Ok();
}

Result<bool> HasParentLevels(ReferenceSource* reference, const TensorSpec& spec) {
  uint32_t present = 0;  // an empty read says whether there are levels, reading none
  CKZ_RETURN_IF_ERROR(reference->ReadReferenceIndices(WantedLevels(spec), 0, MutableByteSpan(), &present));
  return present != 0;
}

double StrengthOfQuality(int quality) { return std::exp2((5.0 - quality) / 4.0); }

std::vector<size_t> PlanGroups::Members(size_t owner) const {
  std::vector<size_t> m = {owner};
  if (moment1[owner] >= 0) m.push_back(size_t(moment1[owner]));
  if (moment2[owner] >= 0) m.push_back(size_t(moment2[owner]));
  return m;
}

PlanGroups GroupsOf(const InputCheckpoint& input) {
  const std::vector<InputTensor>& t = input.tensors;
  PlanGroups g;
  g.moment1.assign(t.size(), -1);
  g.moment2.assign(t.size(), -1);
  g.owner_of.resize(t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    g.owner_of[i] = int(i);
    if (t[i].spec.owner < 0 || size_t(t[i].spec.owner) >= t.size()) continue;
    if (t[i].spec.role == Role::kMoment1) g.moment1[size_t(t[i].spec.owner)] = int(i);
    if (t[i].spec.role == Role::kMoment2) g.moment2[size_t(t[i].spec.owner)] = int(i);
  }
  // Only a weight's plan is read by its moments; other owners' moments are planned alone.
  for (size_t w = 0; w < t.size(); ++w)
    if (t[w].spec.role == Role::kWeight)
      for (int m : {g.moment1[w], g.moment2[w]})
        if (m >= 0 && size_t(m) != w) g.owner_of[size_t(m)] = int(w);
  return g;
}

LinkPlanner::LinkPlanner(const InputCheckpoint& input, ReferenceSource* reference,
                         const WriteOptions& options, const EncodeOptions& encode)
    : input_(input), reference_(reference), options_(options), encode_(encode),
      groups_(GroupsOf(input)), without_adam_v_(input.tensors.size(), 0) {}

bool LinkPlanner::NeedsOwnerArrays(size_t t) const {
  if (groups_.OwnerOf(t) == t) return false;
  // ExCP keeps a moment where its weight's residual was kept; a level moment reads its
  // weight's levels only through RDOQ's aux context.
  if (options_.excp) return true;
  return options_.rd->rdoq_lambda > 0;
}

bool LinkPlanner::NeedsMoment1Arrays(size_t t) const {
  const size_t w = groups_.OwnerOf(t);
  return w != t && int(t) == groups_.moment2[w] && groups_.moment1[w] >= 0 &&
         NeedsOwnerArrays(t);
}

Result<bool> LinkPlanner::WeightToPlan(size_t i, bool without_adam_v,
                                       std::vector<uint8_t>* storage, ByteSpan* ref,
                                       bool* adam_v, ShrinkResult* out) {
  const std::vector<InputTensor>& t = input_.tensors;
  CKZ_RETURN_IF_ERROR(ReferenceBytes(reference_, t[i].spec, t[i].data.size, storage, ref));
  if (ref->empty()) {
    out->lossless_reason = "no tensor of its name, dtype and shape in the parent";
    return false;
  }
  const int v = groups_.moment2[i];
  *adam_v = v >= 0 && IsAdamV(t[size_t(v)]);
  if (!*adam_v && !without_adam_v) {
    out->lossless_reason =
        v < 0 ? "no Adam second moment (a weights-only or SGD checkpoint)"
              : "its second moment is '" + t[size_t(v)].state_key + "', not Adam's exp_avg_sq";
    without_adam_v_[i] = true;
    return false;
  }
  return true;
}

Status LinkPlanner::Plan(size_t t, const EarlierPlans& earlier, ShrinkResult* out) {
  *out = ShrinkResult{};
  return options_.excp ? PlanExcp(t, earlier, out) : PlanLevel(t, earlier, out);
}

// ExCP: a weight against its decoded reference, with k from its Adam v; a moment kept where
// its weight's residual was (v: where m was), spec Appendix A.
Status LinkPlanner::PlanExcp(size_t i, const EarlierPlans& earlier, ShrinkResult* out) {
  const std::vector<InputTensor>& t = input_.tensors;
  const ExcpOptions& excp = *options_.excp;
  const PlanGroups& g = groups_;
  if (IsPlannedWeight(t[i])) {
    std::vector<uint8_t> storage;
    ByteSpan ref;
    bool adam_v = false;
    // ExCP's k = alpha / sqrt(mean(v)) is made for Adam's v; without one, a weight is pruned
    // only with an explicit fallback_k (spec Appendix A).
    auto go = WeightToPlan(i, excp.fallback_k.has_value(), &storage, &ref, &adam_v, out);
    if (!go.ok() || !*go) return go.status();
    const int v = g.moment2[i];
    *out = ShrinkWeight(t[i].spec.dtype, t[i].data, ref,
                        adam_v ? t[size_t(v)].spec.dtype : DType::kF32,
                        adam_v ? t[size_t(v)].data : ByteSpan(), excp);
    return Status::Ok();
  }
  const int32_t owner = t[i].spec.owner;
  const bool is_moment = owner >= 0 && size_t(owner) < t.size() &&
                         (g.moment1[size_t(owner)] == int(i) || g.moment2[size_t(owner)] == int(i));
  if (!is_moment) return Status::Ok();
  const size_t w = size_t(owner);
  if (g.OwnerOf(i) != w || !earlier.owner->quantized) {
    out->lossless_reason = "its weight '" + t[w].spec.name + "' is stored losslessly";
    return Status::Ok();
  }
  // m: kept where |m| > beta mean|m| and the weight's residual was kept; v: where m was.
  const bool is_m = t[i].spec.role == Role::kMoment1;
  const bool after_m = !is_m && g.moment1[w] >= 0 && earlier.moment1->quantized;
  const std::vector<uint8_t>& keep = after_m ? earlier.moment1->indices : earlier.owner->indices;
  std::vector<uint8_t> storage;
  ByteSpan ref;
  if (!is_m && excp.v_residual)
    CKZ_RETURN_IF_ERROR(ReferenceBytes(reference_, t[i].spec, t[i].data.size, &storage, &ref));
  *out = ShrinkMoment(t[i].spec.dtype, t[i].data, keep, is_m, ref, excp);
  return Status::Ok();
}

// Rate-distortion levels: a weight with an Adam v (or, with rd.weights_only_step, any weight),
// then that weight's m and v. A level tensor's quant.step_source is an input tensor index.
Status LinkPlanner::PlanLevel(size_t i, const EarlierPlans& earlier, ShrinkResult* out) {
  const std::vector<InputTensor>& t = input_.tensors;
  const RdOptions& rd = *options_.rd;
  const PlanGroups& g = groups_;
  const size_t w = g.OwnerOf(i);
  auto layout_of = [&](size_t k, double lambda, std::vector<int32_t>* parent_levels) -> Result<LevelLayout> {
    LevelLayout layout;
    const TensorSpec& spec = t[k].spec;
    uint64_t n = 1;
    for (uint64_t d : spec.shape) n *= d;
    layout.row = spec.shape.size() >= 2 ? spec.shape.back() : 0;
    layout.chunk_elements = ChunkElements(encode_, spec.dtype, n, true);
    if (lambda > 0) {  // plain rounding reads no context
      CKZ_RETURN_IF_ERROR(ParentLevels(reference_, spec, n, parent_levels));
      if (!parent_levels->empty()) layout.parent = parent_levels->data();
    }
    return layout;
  };
  if (w == i) {
    if (!IsPlannedWeight(t[i])) return Status::Ok();
    const TensorSpec& spec = t[i].spec;
    std::vector<uint8_t> storage;
    ByteSpan ref;
    bool adam_v = false;
    auto go = WeightToPlan(i, rd.weights_only_step.has_value(), &storage, &ref, &adam_v, out);
    if (!go.ok() || !*go) return go.status();
    const double lambda = adam_v ? rd.rdoq_lambda : 0.0;
    std::vector<int32_t> parent_levels;
    auto layout = layout_of(i, lambda, &parent_levels);
    if (!layout.ok()) return layout.status();
    // With Adam's v: a step relative to this link's update, levels chosen by RDOQ. Without
    // (the bounded weights-only mode): relative to the weights themselves, plain rounding, so
    // that |error| <= step / 2 holds.
    double step = adam_v ? rd.strength * rd.weight_step * RmsDifference(spec.dtype, t[i].data, ref)
                         : *rd.weights_only_step * Rms(spec.dtype, t[i].data);
    if (adam_v) {
      auto quantized_parent = HasParentLevels(reference_, spec);
      if (!quantized_parent.ok()) return quantized_parent.status();
      if (*quantized_parent) {
        // The parent's weight is itself quantized: the residual holds its error (variance
        // step^2 / 12) besides this link's update, and a step taken from the residual's RMS
        // would grow link after link (unboundedly beyond 2 sqrt(3) RMS updates). Dividing by
        // sqrt(1 + s^2 / 12) makes `s` RMS updates the chain's steady state at any strength
        // (docs/rate-distortion.md, "The step of the weights").
        const double s = rd.strength * rd.weight_step;
        step /= std::sqrt(1 + s * s / 12);
      }
    }
    *out = PlanWeightLevels(spec.dtype, t[i].data, ref, step, *layout, lambda);
    return Status::Ok();
  }
  // Adam's m and v of a planned weight: m's steps follow the parent's v, v is a log-domain
  // residual of it. m's aux context is the weight's levels, v's is m's (spec 7.7.2's rule).
  const int v = g.moment2[w];
  if (!IsPlannedWeight(t[w]) || !earlier.owner->quantized || v < 0 || !IsAdamV(t[size_t(v)]))
    return Status::Ok();
  const size_t vi = size_t(v);
  std::vector<uint8_t> storage;
  ByteSpan v_ref;
  CKZ_RETURN_IF_ERROR(ReferenceBytes(reference_, t[vi].spec, t[vi].data.size, &storage, &v_ref));
  if (v_ref.empty()) {
    out->lossless_reason = "no second moment of its name, dtype and shape in the parent";
    return Status::Ok();
  }
  std::vector<int32_t> parent_levels;
  auto layout = layout_of(i, rd.rdoq_lambda, &parent_levels);
  if (!layout.ok()) return layout.status();
  if (int(i) == g.moment1[w]) {
    layout->aux = earlier.owner->levels.data();
    *out = PlanFirstMomentLevels(t[i].spec.dtype, t[i].data, t[vi].spec.dtype, v_ref,
                                 rd.strength * rd.moment1_step, *layout, rd.rdoq_lambda);
    out->quant.step_source = int32_t(vi);
    return Status::Ok();
  }
  const bool after_m = g.moment1[w] >= 0 && earlier.moment1->quantized;
  layout->aux = after_m ? earlier.moment1->levels.data() : earlier.owner->levels.data();
  *out = PlanSecondMomentLevels(t[vi].spec.dtype, t[vi].data, v_ref,
                                rd.strength * rd.moment2_step, *layout, rd.rdoq_lambda);
  return Status::Ok();
}

void LinkPlanner::Report(const std::vector<const ShrinkResult*>& plans, WriteReport* report) const {
  const std::vector<InputTensor>& t = input_.tensors;
  const PlanGroups& g = groups_;
  auto note = [&](size_t i, const std::string& otherwise) {
    const std::string& why = plans[i]->lossless_reason;
    report->lossless.push_back(t[i].spec.name + ": " + (why.empty() ? otherwise : why));
  };
  for (size_t i = 0; i < t.size(); ++i)
    if (IsPlannedWeight(t[i])) {
      if (!plans[i]->quantized) note(i, "");
      report->without_adam_v += without_adam_v_[i];
    }
  if (options_.excp) {  // every tensor with moments, in order
    for (size_t w = 0; w < t.size(); ++w)
      for (int m : {g.moment1[w], g.moment2[w]})
        if (m >= 0 && !plans[size_t(m)]->quantized) note(size_t(m), "");
  } else {  // the moments of planned weights
    for (size_t w = 0; w < t.size(); ++w)
      if (IsPlannedWeight(t[w]) && plans[w]->quantized)
        for (int m : {g.moment1[w], g.moment2[w]})
          if (m >= 0 && !plans[size_t(m)]->quantized) note(size_t(m), "not Adam's moment");
  }
}

}  // namespace ckz
