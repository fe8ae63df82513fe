#include "common/lstm_model.h"

#include <algorithm>

#include "common/bytes.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ckz {
namespace {

#include "common/lstm_tables.inc"

// Spec 7.11.4: a Q10 gate value (clamped to -8..8) to its table bin.
inline int32_t Act(const int16_t* table, int32_t z) {
  return table[(std::clamp(z, -8192, 8191) + 8192) >> 3];
}

constexpr int32_t kCellLimit = 32767;    // |c| in Q10
constexpr int32_t kLogitLimit = 2047;    // stretch domain, Q8
constexpr int32_t kMixLimit = kLstmMixLimit;  // |mixer weight| in Q16 (16.0)
constexpr int32_t kMixBias = 256;        // the bias input: 1.0 in Q8
constexpr int kMixRateShift = 14;        // weight step = in * err * kMixRate >> kMixRateShift
constexpr int32_t kMixRate = 3;

}  // namespace

bool LstmModel::WellFormed() const {
  const uint32_t h = hidden;
  return h >= 8 && h <= kLstmMaxHidden && h % 8 == 0 && clip >= 1 && clip <= kLstmMaxClip &&
         recur_shift <= 15 && out_shift >= 2 && out_shift <= 15 &&
         gate_bias.size() == GateBiasSize(h) && embed.size() == EmbedSize(h, clip) &&
         role.size() == RoleSize(h) && recur.size() == RecurSize(h) && out.size() == OutSize(h) &&
         out_bias.size() == kLstmSlots && mix_init.size() == kMixInitSize &&
         std::all_of(mix_init.begin(), mix_init.end(),
                     [](int32_t w) { return w >= -kMixLimit && w <= kMixLimit; });
}

bool LstmModel::Runnable() const {
  const uint32_t h = hidden;
  return h >= 2 && h <= kLstmMaxHidden && h % 2 == 0 && clip <= kLstmMaxClip &&
         gate_bias.size() == GateBiasSize(h) && embed.size() == EmbedSize(h, clip) &&
         role.size() == RoleSize(h) && recur.size() == RecurSize(h) && out.size() == OutSize(h) &&
         out_bias.size() == kLstmSlots && mix_init.size() == kMixInitSize;
}

size_t LstmModel::StoredBytes() const {
  return 2 * (gate_bias.size() + embed.size() + role.size() + recur.size() + out.size() +
              out_bias.size()) +
         4 * mix_init.size();
}

std::vector<uint8_t> LstmModel::Params() const {
  std::vector<uint8_t> blob(StoredBytes());
  uint8_t* p = blob.data();
  for (const std::vector<int16_t>* v : {&gate_bias, &embed, &role, &recur, &out, &out_bias})
    for (int16_t x : *v) {
      StoreLE16(p, uint16_t(x));
      p += 2;
    }
  for (int32_t x : mix_init) {
    StoreLE32(p, uint32_t(x));
    p += 4;
  }
  return blob;
}

bool LstmModel::SetParams(const uint8_t* data, size_t size) {
  if (hidden > 255 || clip > 255 || size != ParamsBytes(hidden, clip)) return false;
  const uint32_t h = hidden;
  gate_bias.resize(GateBiasSize(h));
  embed.resize(EmbedSize(h, clip));
  role.resize(RoleSize(h));
  recur.resize(RecurSize(h));
  out.resize(OutSize(h));
  out_bias.resize(kLstmSlots);
  mix_init.resize(kMixInitSize);
  for (std::vector<int16_t>* v : {&gate_bias, &embed, &role, &recur, &out, &out_bias})
    for (int16_t& x : *v) {
      x = int16_t(LoadLE16(data));
      data += 2;
    }
  for (int32_t& x : mix_init) {
    x = int32_t(LoadLE32(data));
    data += 4;
  }
  return true;
}

LstmCoderState::LstmCoderState(const LstmModel& model, uint32_t role)
    : m_(model) {
  const int16_t* role_row =
      model.role.data() + size_t(std::min(role, kLstmRoles - 1)) * 4 * model.hidden;
  for (uint32_t j = 0; j < 4 * model.hidden; ++j)
    base_[j] = int32_t(model.gate_bias[j]) + role_row[j];
  const int32_t* init = model.mix_init.data() +
                        size_t(std::min(role, kLstmRoles - 1)) * kLstmSlots * kLstmMixInputs;
  for (uint32_t s = 0; s < kLstmSlots; ++s)
    for (uint32_t k = 0; k < kLstmMixInputs; ++k) mix_[s][k] = init[s * kLstmMixInputs + k];
  const uint32_t H = model.hidden, G = 4 * H;
  for (uint32_t p = 0; p < H / 2; ++p)
    for (uint32_t j = 0; j < G; ++j) {
      pairs_[(size_t(p) * G + j) * 2] = model.recur[size_t(j) * H + 2 * p];
      pairs_[(size_t(p) * G + j) * 2 + 1] = model.recur[size_t(j) * H + 2 * p + 1];
    }
}

void LstmCoderState::Step(const uint8_t features[kLstmFeatures]) {
  const uint32_t H = m_.hidden, G = 4 * H;
  const int rs = int(m_.recur_shift);
  // Gate sums: bias, role, the four feature embeddings, then the recurrence. |recur| <= 2^15,
  // |h| <= 2^10, H <= 32: each row's sum stays below 2^30 (no int32 overflow).
  const int16_t* e[kLstmFeatures];
  for (uint32_t f = 0; f < kLstmFeatures; ++f)
    e[f] = m_.embed.data() + (size_t(f) * LstmModel::Values(m_.clip) + features[f]) * G;
  // Each gate's sum, then its table bin (spec 7.11.3's ACT index); the look-ups follow.
#if defined(__SSE2__)
  // Four gate rows at a time: the recurrence as multiply-adds of two hidden units each
  // (pmaddwd: exact int16 products summed in int32), then the shift, bias, role and embeddings.
  // The clamp to -8192..8191 goes through a saturating pack to int16 first, which changes no
  // value inside that range: the same integers as the portable loop below.
  __m128i hp[kLstmMaxHidden / 2];
  for (uint32_t p = 0; p < H / 2; ++p)
    hp[p] = _mm_set1_epi32(int32_t(uint32_t(uint16_t(h_[2 * p])) |
                                   (uint32_t(uint16_t(h_[2 * p + 1])) << 16)));
  const __m128i shift = _mm_cvtsi32_si128(rs);
  alignas(16) int32_t z[4 * kLstmMaxHidden];
  for (uint32_t j = 0; j < G; j += 4) {
    __m128i a = _mm_setzero_si128();
    for (uint32_t p = 0; p < H / 2; ++p)
      a = _mm_add_epi32(a, _mm_madd_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(
                                              pairs_ + (size_t(p) * G + j) * 2)),
                                          hp[p]));
    __m128i sum = _mm_add_epi32(_mm_sra_epi32(a, shift),
                                _mm_load_si128(reinterpret_cast<const __m128i*>(base_ + j)));
    for (uint32_t f = 0; f < kLstmFeatures; ++f) {
      const __m128i x = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(e[f] + j));
      sum = _mm_add_epi32(sum, _mm_srai_epi32(_mm_unpacklo_epi16(x, x), 16));
    }
    _mm_store_si128(reinterpret_cast<__m128i*>(z + j), sum);
  }
  alignas(16) uint16_t bin[4 * kLstmMaxHidden];
  for (uint32_t j = 0; j < G; j += 8) {  // G = 4H, H even: a multiple of 8
    __m128i v = _mm_packs_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(z + j)),
                                _mm_load_si128(reinterpret_cast<const __m128i*>(z + j + 4)));
    v = _mm_min_epi16(_mm_max_epi16(v, _mm_set1_epi16(-8192)), _mm_set1_epi16(8191));
    v = _mm_srli_epi16(_mm_add_epi16(v, _mm_set1_epi16(8192)), 3);
    _mm_store_si128(reinterpret_cast<__m128i*>(bin + j), v);
  }
#else
  // The recurrence (|recur| <= 2^15, |h| <= 2^10, H <= 32: each row's sum stays below 2^30, no
  // int32 overflow), then the shift, bias, role and embeddings, then the clamp and bin.
  uint16_t bin[4 * kLstmMaxHidden];
  for (uint32_t j = 0; j < G; ++j) {
    int32_t acc = 0;
    for (uint32_t k = 0; k < H; ++k) acc += int32_t(m_.recur[size_t(j) * H + k]) * h_[k];
    const int32_t sum = (acc >> rs) + base_[j] + e[0][j] + e[1][j] + e[2][j] + e[3][j];
    bin[j] = uint16_t((std::clamp(sum, -8192, 8191) + 8192) >> 3);
  }
#endif
  for (uint32_t j = 0; j < H; ++j) {
    const int32_t i = kLstmSigmoid[bin[j]];
    const int32_t f = kLstmSigmoid[bin[H + j]];
    const int32_t g = kLstmTanh[bin[2 * H + j]];
    const int32_t o = kLstmSigmoid[bin[3 * H + j]];
    c_[j] = std::clamp((f * c_[j] + i * g) >> 10, -kCellLimit, kCellLimit);
    h_[j] = int16_t((o * Act(kLstmTanh, c_[j])) >> 10);
  }
}

uint32_t LstmCoderState::Mix(uint32_t slot, uint32_t p0) {
  const uint32_t H = m_.hidden;
  const int16_t* v = m_.out.data() + size_t(slot) * H;
  int32_t acc = 0;
  uint32_t k = 0;
#if defined(__SSE2__)
  // Eight products at a time (pmaddwd: exact, summed in int32 like the loop; |sum| <= 2^30).
  __m128i sum = _mm_setzero_si128();
  for (; k + 8 <= H; k += 8)
    sum = _mm_add_epi32(sum, _mm_madd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + k)),
                                            _mm_load_si128(reinterpret_cast<const __m128i*>(h_ + k))));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4E));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xB1));
  acc = _mm_cvtsi128_si32(sum);
#endif
  for (; k < H; ++k) acc += int32_t(v[k]) * int32_t(h_[k]);
  const int32_t logit =
      std::clamp((acc >> m_.out_shift) + m_.out_bias[slot], -kLogitLimit, kLogitLimit);
  in_[0] = kLstmStretch[p0 >> 4];
  in_[1] = logit;
  in_[2] = kMixBias;
  int64_t dot = 0;
  for (uint32_t k = 0; k < kLstmMixInputs; ++k) dot += int64_t(mix_[slot][k]) * in_[k];
  const int64_t t = std::clamp<int64_t>(dot >> 16, -kLogitLimit, kLogitLimit);
  slot_ = slot;
  p_ = kLstmSquash[t + kLogitLimit];
  return p_;
}

void LstmCoderState::Learn(int bit) {
  const int32_t err = ((bit ? 0 : 65536) - int32_t(p_)) >> 4;  // |err| < 2^12
  for (uint32_t k = 0; k < kLstmMixInputs; ++k) {
    const int32_t step = int32_t((int64_t(in_[k]) * err * kMixRate) >> kMixRateShift);
    mix_[slot_][k] = std::clamp(mix_[slot_][k] + step, -kMixLimit, kMixLimit);
  }
}

}  // namespace ckz
