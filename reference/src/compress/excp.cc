#include "compress/excp.h"

#include <algorithm>
#include <cmath>

#include "common/quantize.h"
#include "compress/select_kth.h"

namespace ckz {
namespace {

constexpr double kMaxK = 2.5;  // ExCP caps the pruning multiplier
constexpr size_t kMaxFitSamples = size_t{1} << 20;

// The order-preserving keys (KeyOfFloat) of the values of the elements `kept(i)` selects, in
// a vector of exactly their number (a doubling vector would hold up to twice what it needs).
template <class Kept, class Value>
std::vector<uint32_t> KeptKeys(size_t count, Kept kept, Value value) {
  size_t n = 0;
  for (size_t i = 0; i < count; ++i) n += kept(i);
  std::vector<uint32_t> out;
  out.reserve(n);
  for (size_t i = 0; i < count; ++i)
    if (kept(i)) out.push_back(KeyOfFloat(value(i)));
  return out;
}

// Quantizes value(i) of the kept elements (kept(i)) into result->indices/codebook. Besides the
// indices, only the kept values' keys are allocated (4 bytes each), and freed before the
// indices are.
template <class Kept, class Value>
void Quantize(size_t count, Kept kept, Value value, unsigned bits, ShrinkResult* result) {
  const size_t max_centres = (size_t{1} << bits) - 1;
  std::vector<float> centres;
  {
    std::vector<uint32_t> keys = KeptKeys(count, kept, value);
    SortKeys(&keys);
    centres = KMeans1DOfSortedKeys(keys, max_centres);
  }
  if (centres.empty()) centres.push_back(0.0f);  // nothing kept: a one-entry codebook
  result->indices.assign(count, 0);
  // Nearest centre; a value exactly between two goes to the lower one.
  for (size_t i = 0; i < count; ++i) {
    if (!kept(i)) continue;
    const float v = value(i);
    size_t hi = size_t(std::lower_bound(centres.begin(), centres.end(), v) - centres.begin());
    size_t best = hi;
    if (hi == centres.size() || (hi > 0 && double(v) - centres[hi - 1] <= double(centres[hi]) - v))
      best = hi - 1;
    result->indices[i] = uint8_t(best + 1);
  }
  result->quant.bits = uint8_t(bits);
  result->quant.codebook = std::move(centres);
  result->quantized = true;
}

ShrinkResult Lossless(const std::string& why) {
  ShrinkResult r;
  r.lossless_reason = why;
  return r;
}

}  // namespace

// An LSD radix sort, three passes of 11 bits, through one buffer of n keys: O(n) with
// sequential writes (issue 15: std::sort of a large tensor's kept values was 29 % of an ExCP
// link's encode; an in-place American-flag pass was no faster, its buckets being as uneven as
// the values' exponents). Small arrays go to std::sort.
void SortKeys(std::vector<uint32_t>* keys) {
  const size_t n = keys->size();
  if (n < 4096) {
    std::sort(keys->begin(), keys->end());
    return;
  }
  constexpr int kBits = 11;
  constexpr size_t kBins = size_t{1} << kBits;
  std::vector<size_t> count(3 * kBins, 0);
  for (uint32_t key : *keys)
    for (int pass = 0; pass < 3; ++pass) ++count[pass * kBins + ((key >> (pass * kBits)) & (kBins - 1))];
  std::vector<uint32_t> other(n);
  for (int pass = 0; pass < 3; ++pass) {
    size_t* c = &count[pass * kBins];
    size_t sum = 0;
    for (size_t d = 0; d < kBins; ++d) {
      const size_t here = c[d];
      c[d] = sum;
      sum += here;
    }
    for (uint32_t key : *keys) other[c[(key >> (pass * kBits)) & (kBins - 1)]++] = key;
    keys->swap(other);
  }
}

std::vector<float> KMeans1D(const std::vector<float>& values, size_t k) {
  std::vector<uint32_t> keys(values.size());
  for (size_t i = 0; i < values.size(); ++i) keys[i] = KeyOfFloat(values[i]);
  SortKeys(&keys);
  return KMeans1DOfSortedKeys(keys, k);
}

std::vector<float> KMeans1DOfSortedKeys(const std::vector<uint32_t>& keys, size_t k) {
  size_t distinct = 0;
  for (size_t i = 0; i < keys.size() && distinct <= k; ++i)
    distinct += i == 0 || FloatOfKey(keys[i]) != FloatOfKey(keys[i - 1]);
  if (distinct <= k) {  // few values: keep them exactly (the first of equal ones: -0.0 first)
    std::vector<float> out;
    for (uint32_t key : keys)
      if (out.empty() || FloatOfKey(key) != out.back()) out.push_back(FloatOfKey(key));
    return out;
  }

  // Fit on a fixed-stride sample of the sorted values (all of them when there are few).
  const size_t all = keys.size();
  const size_t n = std::min(all, kMaxFitSamples);
  std::vector<float> sorted(n);
  for (size_t i = 0; i < n; ++i) sorted[i] = FloatOfKey(keys[all > n ? i * all / n : i]);
  std::vector<double> prefix(n + 1, 0.0);
  for (size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + sorted[i];

  // Start at the quantiles; Lloyd iterations: a cluster is the run of sorted values between
  // two midpoints, its centre their mean.
  std::vector<double> centres(k);
  for (size_t j = 0; j < k; ++j) centres[j] = sorted[(2 * j + 1) * n / (2 * k)];
  std::vector<size_t> bounds(k + 1);
  for (int iteration = 0; iteration < 100; ++iteration) {
    bounds[0] = 0;
    bounds[k] = n;
    for (size_t j = 1; j < k; ++j) {
      const double mid = (centres[j - 1] + centres[j]) / 2;
      bounds[j] = size_t(std::upper_bound(sorted.begin(), sorted.end(), mid,
                                          [](double m, float v) { return m < double(v); }) -
                         sorted.begin());
      bounds[j] = std::max(bounds[j], bounds[j - 1]);
    }
    bool changed = false;
    for (size_t j = 0; j < k; ++j) {
      if (bounds[j + 1] == bounds[j]) continue;  // an empty cluster keeps its centre
      const double mean =
          (prefix[bounds[j + 1]] - prefix[bounds[j]]) / double(bounds[j + 1] - bounds[j]);
      if (mean != centres[j]) changed = true;
      centres[j] = mean;
    }
    std::sort(centres.begin(), centres.end());
    if (!changed) break;
  }
  std::vector<float> out;
  for (double c : centres) out.push_back(float(c));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

ShrinkResult ShrinkWeight(DType dtype, ByteSpan w, ByteSpan reference, DType v_dtype, ByteSpan v,
                          const ExcpOptions& options) {
  const size_t count = w.size / DTypeSize(dtype);
  std::vector<float> residual(count);
  for (size_t i = 0; i < count; ++i) {
    const double x = FloatAt(dtype, w.data, i), r = FloatAt(dtype, reference.data, i);
    // Computed as the decoder adds: in binary32 (binary64 for F64 tensors).
    const double d = dtype == DType::kF64 ? x - r : double(float(x) - float(r));
    if (!std::isfinite(x) || !std::isfinite(r) || !std::isfinite(float(d)))
      return Lossless("NaN or infinity in the tensor or its reference");
    residual[i] = float(d);
  }

  double k = options.fallback_k.value_or(1.0);
  ShrinkResult result;
  if (!v.empty()) {
    const size_t vn = v.size / DTypeSize(v_dtype);
    double sum = 0;
    for (size_t i = 0; i < vn; ++i) sum += FloatAt(v_dtype, v.data, i);
    const double mean = vn ? sum / double(vn) : 0;
    k = mean > 0 ? std::min(kMaxK, options.alpha / std::sqrt(mean)) : kMaxK;
  }
  if (options.k_at_cap) k = kMaxK;

  // The median magnitude, selected without a copy of the magnitudes (issue 15: memory that
  // does not grow with the tensor beyond its residual and indices).
  float median = 0;
  if (count > 0)
    median = float(SelectKth(count / 2, [&](auto&& fn) {
      for (size_t i = 0; i < count; ++i) fn(double(std::fabs(residual[i])));
    }));
  const double threshold = k * median;
  auto kept = [&](size_t i) { return std::fabs(residual[i]) > threshold; };
  auto value = [&](size_t i) { return residual[i]; };
  result.quant.kind = QuantKind::kResidual;
  result.quant.prune_k = float(k);
  result.quant.prune_threshold = float(threshold);
  Quantize(count, kept, value, options.bits, &result);
  return result;
}

ShrinkResult ShrinkMoment(DType dtype, ByteSpan m, const std::vector<uint8_t>& keep,
                          bool threshold_by_magnitude, ByteSpan reference,
                          const ExcpOptions& options) {
  const size_t count = m.size / DTypeSize(dtype);
  const bool residual = !reference.empty();
  // The reference is read again where needed instead of being copied (8 bytes an element).
  auto ref = [&](size_t i) { return FloatAt(dtype, reference.data, i); };
  std::vector<float> values(count);
  double sum_abs = 0;
  for (size_t i = 0; i < count; ++i) {
    const double x = FloatAt(dtype, m.data, i);
    if (!std::isfinite(x) || !std::isfinite(float(x)))
      return Lossless("NaN or infinity in the tensor");
    values[i] = float(x);
    sum_abs += std::fabs(x);
    if (residual && !std::isfinite(ref(i)))
      return Lossless("NaN or infinity in the tensor's reference");
  }
  float scale = 1.0f;
  // The reference as the decoder scales it: in binary32 (binary64 for F64 tensors).
  auto base = [&](size_t i) {
    return dtype == DType::kF64 ? ref(i) * double(scale) : double(float(ref(i)) * scale);
  };
  if (residual) {
    // Pruned elements become reference * scale: the scale that keeps their sum, so that a v
    // still growing (Adam's v is not bias-corrected) is not left behind at its old values.
    double sum = 0, sum_ref = 0;
    for (size_t i = 0; i < count; ++i)
      if (keep[i] == 0) {
        sum += values[i];
        sum_ref += ref(i);
      }
    if (sum > 0 && sum_ref > 0 && std::isfinite(float(sum / sum_ref)))
      scale = float(sum / sum_ref);
    for (size_t i = 0; i < count; ++i) {
      // Computed as the decoder does: in binary32 (binary64 for F64 tensors).
      const double b = base(i);
      const double d = dtype == DType::kF64 ? values[i] - b : double(float(values[i]) - float(b));
      if (!std::isfinite(float(d))) return Lossless("NaN or infinity in the tensor's reference");
      values[i] = float(d);
    }
  }
  const double threshold =
      threshold_by_magnitude && count ? options.beta * sum_abs / double(count) : -1.0;
  auto kept = [&](size_t i) {
    return keep[i] != 0 && (residual || std::fabs(values[i]) > threshold);
  };
  auto value = [&](size_t i) { return values[i]; };
  ShrinkResult result;
  result.quant.kind = residual ? QuantKind::kResidual : QuantKind::kDirect;
  result.quant.reference_scale = scale;
  result.quant.prune_threshold = threshold_by_magnitude ? float(threshold) : NAN;
  Quantize(count, kept, value, options.bits, &result);
  if (residual) {
    // A second moment must stay >= 0 (Adam takes its square root): where the scaled reference
    // plus the centre would be negative, take the nearest centre that is not, else index 0.
    const std::vector<float>& c = result.quant.codebook;
    for (size_t i = 0; i < count; ++i) {
      if (!kept(i)) continue;
      uint8_t& index = result.indices[i];
      const double r = base(i);
      auto sum = [&](size_t k) {
        return dtype == DType::kF64 ? r + c[k] : double(float(r) + c[k]);
      };
      if (sum(index - 1u) >= 0) continue;
      index = 0;
      double best = 0;
      for (size_t k = 0; k < c.size(); ++k)
        if (sum(k) >= 0 && (index == 0 || std::fabs(c[k] - values[i]) < best)) {
          index = uint8_t(k + 1);
          best = std::fabs(c[k] - values[i]);
        }
    }
  }
  return result;
}

}  // namespace ckz
