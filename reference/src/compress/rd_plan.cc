#include "compress/rd_plan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "common/level_model.h"
#include "common/quantize.h"
#include "compress/select_kth.h"

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
    const double d = FloatAt(dtype, a.data, i) - FloatAt(dtype, b.data, i);
    sum += d * d;
  }
  return n ? std::sqrt(sum / double(n)) : 0.0;
}

namespace {

// ChooseLevels on the chunk of elements [first, first + n): `target` holds its n targets, and
// its levels go to out[first..]. Every chunk starts afresh (spec 7.9.3).
void ChooseChunkLevels(const double* target, uint64_t first, uint64_t n, const LevelLayout& layout,
                       double lambda, int32_t* out) {
  const double bit_weight = lambda / 256.0;  // costs come in 1/256 bits
  LevelModel model;
  LevelModelInputs in;
  in.first = first;
  in.row = layout.row;
  if (layout.parent) in.parent = layout.parent + first;
  if (layout.aux) in.aux = layout.aux + first;
  int32_t* levels = out + first;
  uint64_t col = in.row ? first % in.row : 0;
  for (uint64_t i = 0; i < n; ++i) {
    const double t = target[i];
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

// Levels for `count` elements whose targets `fill(first, n, target)` writes chunk by chunk
// (the writer's chunks): memory for one chunk of targets, not the tensor's.
template <typename Fill>
void ChooseLevelsBy(uint64_t count, const LevelLayout& layout, double lambda, Fill fill,
                    int32_t* out) {
  const uint64_t chunk = std::max<uint64_t>(layout.chunk_elements, 1);
  std::vector<double> target(size_t(std::min(chunk, count)));
  for (uint64_t first = 0; first < count; first += chunk) {
    const uint64_t n = std::min<uint64_t>(chunk, count - first);
    fill(first, n, target.data());
    ChooseChunkLevels(target.data(), first, n, layout, lambda, out);
  }
}

// The median exponent (ilogb) of the normal positive values: the (size/2)-th smallest, as
// Median would take it, counted in a histogram (exponents of binary64 lie in -1022..1023).
std::optional<int32_t> MedianExponent(DType dtype, const uint8_t* data, size_t n) {
  constexpr int32_t kLow = -1100, kBins = 2200;
  std::vector<uint64_t> histogram(kBins, 0);
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const double v = FloatAt(dtype, data, i);
    if (std::isnormal(v) && v > 0) {
      ++histogram[size_t(std::ilogb(v) - kLow)];
      ++total;
    }
  }
  if (total == 0) return std::nullopt;
  uint64_t below = 0;
  for (int32_t b = 0; b < kBins; ++b) {
    below += histogram[size_t(b)];
    if (below > total / 2) return b + kLow;
  }
  return std::nullopt;  // not reached
}

}  // namespace

void ChooseLevels(const double* target, size_t count, const LevelLayout& layout, double lambda,
                  int32_t* out) {
  const uint64_t chunk = std::max<uint64_t>(layout.chunk_elements, 1);
  for (uint64_t first = 0; first < count; first += chunk)
    ChooseChunkLevels(target + first, first, std::min<uint64_t>(chunk, count - first), layout,
                      lambda, out);
}

ShrinkResult PlanWeightLevels(DType dtype, ByteSpan w, ByteSpan reference, double step,
                              const LevelLayout& layout, double lambda) {
  const size_t n = w.size / DTypeSize(dtype);
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(FloatAt(dtype, w.data, i)) ||
        !std::isfinite(FloatAt(dtype, reference.data, i)))
      return Lossless("NaN or infinity in the tensor or its reference");
  ShrinkResult result;
  QuantizationInfo& q = result.quant;
  q.kind = QuantKind::kLevelResidual;
  q.step = float(step > 0 ? step : 1.0);  // nothing moved: every level is 0 anyway
  if (!StepRangeIsNormal(q.step, 0)) return Lossless("an update below the smallest normal step");
  result.levels.resize(n);
  ChooseLevelsBy(
      n, layout, lambda,
      [&](uint64_t first, uint64_t count, double* target) {
        for (uint64_t i = 0; i < count; ++i) {
          const double x = FloatAt(dtype, w.data, first + i);
          const double r = FloatAt(dtype, reference.data, first + i);
          target[i] = (x - r) / double(q.step);
        }
      },
      result.levels.data());
  result.quantized = true;
  return result;
}

ShrinkResult PlanFirstMomentLevels(DType dtype, ByteSpan m, DType v_dtype, ByteSpan v_reference,
                                   double relative, const LevelLayout& layout, double lambda) {
  const size_t n = m.size / DTypeSize(dtype);
  // The centre of the parent v's exponents: steps are relative * sqrt(2^e), shifted from there.
  const std::optional<int32_t> center = MedianExponent(v_dtype, v_reference.data, n);
  ShrinkResult result;
  QuantizationInfo& q = result.quant;
  q.kind = QuantKind::kLevelDirect;
  if (!center) return Lossless("its second moment's parent is all zero");
  q.step_center = *center;
  q.step_slope = 1;
  q.step = float(relative * std::exp2(0.5 * q.step_center));
  if (!StepRangeIsNormal(q.step, 0)) return Lossless("its steps would leave the binary32 range");
  q.step_limit = FitLimit(q.step, 24);
  q.step_source = 0;  // a placeholder: StepShifts only asks whether there is one
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(FloatAt(dtype, m.data, i))) return Lossless("NaN or infinity in the tensor");
  result.levels.resize(n);
  std::vector<int8_t> shifts(size_t(std::min<uint64_t>(std::max<uint64_t>(layout.chunk_elements, 1), n)));
  const size_t vw = DTypeSize(v_dtype);
  ChooseLevelsBy(
      n, layout, lambda,
      [&](uint64_t first, uint64_t count, double* target) {
        StepShifts(q, v_dtype, v_reference.data + first * vw, count, shifts.data());
        for (uint64_t i = 0; i < count; ++i)
          target[i] = FloatAt(dtype, m.data, first + i) / double(std::ldexp(q.step, shifts[i]));
      },
      result.levels.data());
  result.quantized = true;
  return result;
}

ShrinkResult PlanSecondMomentLevels(DType dtype, ByteSpan v, ByteSpan reference,
                                    double log2_step, const LevelLayout& layout, double lambda) {
  const size_t n = v.size / DTypeSize(dtype);
  uint64_t both_positive = 0;
  for (size_t i = 0; i < n; ++i) {
    const double x = FloatAt(dtype, v.data, i), r = FloatAt(dtype, reference.data, i);
    if (!std::isfinite(x) || !std::isfinite(r) || x < 0 || r < 0)
      return Lossless("not a second moment: negative, NaN or infinite values");
    both_positive += x > 0 && r > 0;
  }
  ShrinkResult result;
  QuantizationInfo& q = result.quant;
  q.kind = QuantKind::kLevelLog;
  // The tensor's growth (Adam's v is not bias-corrected and grows early on): the median ratio,
  // selected among the ratios themselves (log2 keeps their order) in memory independent of n.
  double log2_growth = 0;
  if (both_positive > 0)
    log2_growth = std::log2(SelectKth(both_positive / 2, [&](auto&& fn) {
      for (size_t i = 0; i < n; ++i) {
        const double x = FloatAt(dtype, v.data, i), r = FloatAt(dtype, reference.data, i);
        if (x > 0 && r > 0) fn(x / r);
      }
    }));
  const double growth = std::exp2(log2_growth);
  q.reference_scale = std::isnormal(float(growth)) ? float(growth) : 1.0f;
  q.log_unit = int8_t(std::clamp<long>(std::lround(-std::log2(log2_step)), kMinLogUnit,
                                       kMaxLogUnit));
  const double per_unit = std::exp2(double(q.log_unit));  // levels per doubling
  // The reference as the decoder scales it; elements whose scaled reference is 0 take levels
  // of an absolute step: the median of their values, 2^-log_unit of it.
  auto scaled = [&](size_t i) {
    const double r = FloatAt(dtype, reference.data, i);
    return dtype == DType::kF64 ? r * double(q.reference_scale)
                                : double(float(r) * q.reference_scale);
  };
  std::vector<double> fresh;
  for (size_t i = 0; i < n; ++i) {
    const double x = FloatAt(dtype, v.data, i);
    if (x > 0 && scaled(i) == 0) fresh.push_back(x);
  }
  const double fresh_median = Median(&fresh);
  q.step = float(fresh_median > 0 ? fresh_median / per_unit : 1.0);
  if (!StepRangeIsNormal(q.step, 0)) q.step = 1.0f;
  result.levels.resize(n);
  ChooseLevelsBy(
      n, layout, lambda,
      [&](uint64_t first, uint64_t count, double* target) {
        for (uint64_t k = 0; k < count; ++k) {
          const size_t i = size_t(first + k);
          const double x = FloatAt(dtype, v.data, i), b = scaled(i);
          if (b == 0)
            target[k] = x / double(q.step);
          else
            target[k] = x > 0 ? std::log2(x / b) * per_unit : 0.0;
        }
      },
      result.levels.data());
  result.quantized = true;
  return result;
}

}  // namespace ckz
