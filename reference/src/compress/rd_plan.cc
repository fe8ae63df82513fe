#include "compress/rd_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/level_model.h"
#include "common/quantize.h"

namespace ckz {
namespace {

ShrinkResult Lossless(const std::string& why) {
  ShrinkResult r;
  r.lossless_reason = why;
  return r;
}

// The median of `v` (reordered); 0 when empty.
double Median(std::vector<double>* v) {
  if (v->empty()) return 0;
  auto mid = v->begin() + ptrdiff_t(v->size() / 2);
  std::nth_element(v->begin(), mid, v->end());
  return *mid;
}

int32_t ClampLevel(double t) {
  return int32_t(std::clamp(std::nearbyint(t), -double(kMaxLevel), double(kMaxLevel)));
}

// The largest step limit <= `wanted` that keeps every step normal (rule Q9).
uint8_t FitLimit(float step, unsigned wanted) {
  unsigned limit = std::min<unsigned>(wanted, kMaxStepLimit);
  while (limit > 0 && !StepRangeIsNormal(step, limit)) --limit;
  return uint8_t(limit);
}

}  // namespace

double RmsDifference(DType dtype, ByteSpan a, ByteSpan b) {
  const size_t n = a.size / DTypeSize(dtype);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = FloatElement(dtype, a.data, i) - FloatElement(dtype, b.data, i);
    sum += d * d;
  }
  return n ? std::sqrt(sum / double(n)) : 0.0;
}

void ChooseLevels(const double* target, size_t count, const LevelLayout& layout, double lambda,
                  int32_t* out) {
  const uint64_t chunk = std::max<uint64_t>(layout.chunk_elements, 1);
  const double bit_weight = lambda / 256.0;  // costs come in 1/256 bits
  for (uint64_t first = 0; first < count; first += chunk) {
    const uint64_t n = std::min<uint64_t>(chunk, count - first);
    LevelModel model;  // every chunk starts afresh (spec 7.9.3)
    LevelModelInputs in;
    in.first = first;
    in.row = layout.row;
    if (layout.parent) in.parent = layout.parent + first;
    if (layout.aux) in.aux = layout.aux + first;
    int32_t* levels = out + first;
    uint64_t col = in.row ? first % in.row : 0;
    for (uint64_t i = 0; i < n; ++i) {
      const double t = target[first + i];
      const int32_t q0 = ClampLevel(t);
      int32_t best = q0;
      if (lambda > 0) {
        const LevelModel::Context c = LevelModel::ContextOf(in, levels, i, col);
        auto cost = [&](int32_t q) {
          return (t - q) * (t - q) + bit_weight * double(model.Cost(c, q));
        };
        double best_cost = cost(q0);
        const int32_t toward_zero = q0 > 0 ? q0 - 1 : q0 < 0 ? q0 + 1 : 0;
        for (int32_t q : {toward_zero, 0}) {
          if (q == best) continue;
          const double j = cost(q);
          if (j < best_cost) best = q, best_cost = j;
        }
        model.Update(c, best);
      }
      levels[i] = best;
      if (in.row != 0 && ++col == in.row) col = 0;
    }
  }
}

ShrinkResult PlanWeightLevels(DType dtype, ByteSpan w, ByteSpan reference, double step,
                              const LevelLayout& layout, double lambda) {
  const size_t n = w.size / DTypeSize(dtype);
  std::vector<double> target(n);
  for (size_t i = 0; i < n; ++i) {
    const double x = FloatElement(dtype, w.data, i), r = FloatElement(dtype, reference.data, i);
    if (!std::isfinite(x) || !std::isfinite(r))
      return Lossless("NaN or infinity in the tensor or its reference");
    target[i] = x - r;
  }
  ShrinkResult result;
  QuantizationInfo& q = result.quant;
  q.kind = QuantKind::kLevelResidual;
  q.step = float(step > 0 ? step : 1.0);  // nothing moved: every level is 0 anyway
  if (!StepRangeIsNormal(q.step, 0)) return Lossless("an update below the smallest normal step");
  for (double& t : target) t /= double(q.step);
  result.levels.resize(n);
  ChooseLevels(target.data(), n, layout, lambda, result.levels.data());
  result.quantized = true;
  return result;
}

ShrinkResult PlanFirstMomentLevels(DType dtype, ByteSpan m, DType v_dtype, ByteSpan v_reference,
                                   double relative, const LevelLayout& layout, double lambda) {
  const size_t n = m.size / DTypeSize(dtype);
  // The centre of the parent v's exponents: steps are relative * sqrt(2^e), shifted from there.
  std::vector<double> exponents;
  for (size_t i = 0; i < n; ++i) {
    const double v = FloatElement(v_dtype, v_reference.data, i);
    if (std::isnormal(v) && v > 0) exponents.push_back(double(std::ilogb(v)));
  }
  ShrinkResult result;
  QuantizationInfo& q = result.quant;
  q.kind = QuantKind::kLevelDirect;
  if (exponents.empty()) return Lossless("its second moment's parent is all zero");
  q.step_center = int32_t(Median(&exponents));
  q.step_slope = 1;
  q.step = float(relative * std::exp2(0.5 * q.step_center));
  if (!StepRangeIsNormal(q.step, 0)) return Lossless("its steps would leave the binary32 range");
  q.step_limit = FitLimit(q.step, 24);
  q.step_source = 0;  // a placeholder: StepShifts only asks whether there is one
  std::vector<int8_t> shifts(n);
  StepShifts(q, v_dtype, v_reference.data, n, shifts.data());
  std::vector<double> target(n);
  for (size_t i = 0; i < n; ++i) {
    const double x = FloatElement(dtype, m.data, i);
    if (!std::isfinite(x)) return Lossless("NaN or infinity in the tensor");
    target[i] = x / double(std::ldexp(q.step, shifts[i]));
  }
  result.levels.resize(n);
  ChooseLevels(target.data(), n, layout, lambda, result.levels.data());
  result.quantized = true;
  return result;
}

ShrinkResult PlanSecondMomentLevels(DType dtype, ByteSpan v, ByteSpan reference,
                                    double log2_step, const LevelLayout& layout, double lambda) {
  const size_t n = v.size / DTypeSize(dtype);
  std::vector<double> x(n), r(n), ratios, fresh;
  for (size_t i = 0; i < n; ++i) {
    x[i] = FloatElement(dtype, v.data, i);
    r[i] = FloatElement(dtype, reference.data, i);
    if (!std::isfinite(x[i]) || !std::isfinite(r[i]) || x[i] < 0 || r[i] < 0)
      return Lossless("not a second moment: negative, NaN or infinite values");
    if (x[i] > 0 && r[i] > 0) ratios.push_back(std::log2(x[i] / r[i]));
  }
  ShrinkResult result;
  QuantizationInfo& q = result.quant;
  q.kind = QuantKind::kLevelLog;
  // The tensor's growth (Adam's v is not bias-corrected and grows early on): the median ratio.
  const double growth = std::exp2(Median(&ratios));
  q.reference_scale = std::isnormal(float(growth)) ? float(growth) : 1.0f;
  q.log_unit = int8_t(std::clamp<long>(std::lround(-std::log2(log2_step)), kMinLogUnit,
                                       kMaxLogUnit));
  const double per_unit = std::exp2(double(q.log_unit));  // levels per doubling
  // The reference as the decoder scales it; elements whose scaled reference is 0 take levels
  // of an absolute step: the median of their values, 2^-log_unit of it.
  std::vector<double> b(n);
  for (size_t i = 0; i < n; ++i) {
    b[i] = dtype == DType::kF64 ? r[i] * double(q.reference_scale)
                                : double(float(r[i]) * q.reference_scale);
    if (b[i] == 0 && x[i] > 0) fresh.push_back(x[i]);
  }
  const double fresh_median = Median(&fresh);
  q.step = float(fresh_median > 0 ? fresh_median / per_unit : 1.0);
  if (!StepRangeIsNormal(q.step, 0)) q.step = 1.0f;
  std::vector<double> target(n);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] == 0)
      target[i] = x[i] / double(q.step);
    else
      target[i] = x[i] > 0 ? std::log2(x[i] / b[i]) * per_unit : 0.0;
  }
  result.levels.resize(n);
  ChooseLevels(target.data(), n, layout, lambda, result.levels.data());
  result.quantized = true;
  return result;
}

}  // namespace ckz
