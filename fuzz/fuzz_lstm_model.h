// The LSTM model (spec 7.11) fuzz_lstm decodes with: built from a few
// header bytes of the input and expanded deterministically from a 64-bit seed (splitmix64), so
// an input never spends thousands of bytes on parameters. Shared with make_lstm_corpus, so
// that the seeds are coded with exactly the model the fuzzer rebuilds from their header and
// decode all the way.
//
// Header bytes used here (fuzz_lstm.cc documents the whole input):
//   0      bits 2-3: hidden index into {8, 16, 24, 32}  (bits 0, 1, 4, 5: the target's)
//   1      clip = 1 + b % 7
//   2      recur_shift = b & 15; out_shift = 2 + (b >> 4) % 14
//   3      bits 0-1: weight ranges, bits 2-3: mix_init values (see MakeFuzzLstmModel)
//   12..19 seed (little-endian)
#ifndef CKZ_FUZZ_FUZZ_LSTM_MODEL_H_
#define CKZ_FUZZ_FUZZ_LSTM_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/lstm_model.h"

namespace ckz_fuzz {

// splitmix64 (Steele, Lea, Flood 2014): small, fast, every seed a full-period stream.
struct LstmRng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

constexpr uint32_t kFuzzLstmHidden[4] = {8, 16, 24, 32};
constexpr int32_t kFuzzMixLimit = 1 << 20;  // |mix_init| allowed by LstmModel::WellFormed

// Weight-range modes (header byte 3, bits 0-1).
enum : uint32_t {
  kWeightsFull = 0,     // every vector over the whole int16 range, extremes often: saturation
  kWeightsSmall = 1,    // every vector within +-2^(b-1), b = 1..12 drawn per vector
  kWeightsMixed = 2,    // per vector: the whole range or +-2^(b-1), b = 1..15
  kWeightsTrained = 3,  // ranges like a trained model's (Q10 ~ +-2, recurrence by its shift)
};
// mix_init modes (header byte 3, bits 2-3).
enum : uint32_t {
  kMixUniform = 0,  // uniform over -2^20 .. 2^20
  kMixEdges = 1,    // only edge values: +-2^20, 0, +-1, +-1.0 (Q16)
  kMixTypical = 2,  // near an untrained mixer's start: cml's stretch at ~1.0, the rest small
  kMixBoth = 3,     // uniform, one in four an edge value
};

// `bits` 16: the whole int16 range with -32768 / 32767 one time in eight; else a value in
// -2^(bits-1) .. 2^(bits-1) - 1.
inline void FillInt16(LstmRng& r, std::vector<int16_t>* v, size_t n, unsigned bits) {
  v->resize(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t u = r.Next();
    if (bits >= 16) {
      (*v)[i] = (u & 7) == 0 ? int16_t((u >> 3) & 1 ? 32767 : -32768) : int16_t(uint16_t(u >> 16));
    } else {
      (*v)[i] = int16_t(int32_t((u >> 16) & ((1u << bits) - 1)) - (1 << (bits - 1)));
    }
  }
}

inline int32_t MixEdge(uint64_t u) {
  constexpr int32_t kEdges[] = {kFuzzMixLimit, -kFuzzMixLimit, 0, 1, -1, 65536, -65536,
                                kFuzzMixLimit - 1};
  return kEdges[u % (sizeof(kEdges) / sizeof(kEdges[0]))];
}

// The model of header `h` (at least 20 bytes). Always WellFormed().
inline ckz::LstmModel MakeFuzzLstmModel(const uint8_t* h) {
  ckz::LstmModel m;
  m.hidden = kFuzzLstmHidden[(h[0] >> 2) & 3];
  m.clip = 1 + h[1] % ckz::kLstmMaxClip;
  m.recur_shift = h[2] & 15;
  m.out_shift = 2 + (h[2] >> 4) % 14;
  uint64_t seed = 0;
  for (int b = 0; b < 8; ++b) seed |= uint64_t(h[12 + b]) << (8 * b);
  LstmRng r{seed};
  const uint32_t weights = h[3] & 3, mix = (h[3] >> 2) & 3;
  const uint32_t H = m.hidden;
  // Bits of each vector's range, in the order gate_bias, embed, role, recur, out, out_bias.
  unsigned bits[6];
  for (int k = 0; k < 6; ++k) {
    switch (weights) {
      case kWeightsFull: bits[k] = 16; break;
      case kWeightsSmall: bits[k] = 1 + unsigned(r.Next() % 12); break;
      case kWeightsMixed: bits[k] = r.Next() % 2 ? 16 : 1 + unsigned(r.Next() % 15); break;
      default: {
        const unsigned trained[6] = {12, 12, 10, m.recur_shift + 2 > 16 ? 16 : m.recur_shift + 2,
                                     m.out_shift + 4 > 16 ? 16 : m.out_shift + 4, 11};
        bits[k] = trained[k];
      }
    }
  }
  FillInt16(r, &m.gate_bias, ckz::LstmModel::GateBiasSize(H), bits[0]);
  FillInt16(r, &m.embed, ckz::LstmModel::EmbedSize(H, m.clip), bits[1]);
  FillInt16(r, &m.role, ckz::LstmModel::RoleSize(H), bits[2]);
  FillInt16(r, &m.recur, ckz::LstmModel::RecurSize(H), bits[3]);
  FillInt16(r, &m.out, ckz::LstmModel::OutSize(H), bits[4]);
  FillInt16(r, &m.out_bias, ckz::kLstmSlots, bits[5]);
  m.mix_init.resize(ckz::LstmModel::kMixInitSize);
  for (size_t i = 0; i < m.mix_init.size(); ++i) {
    const uint64_t u = r.Next();
    const int32_t uniform = int32_t((u >> 8) % (2 * uint64_t(kFuzzMixLimit) + 1)) - kFuzzMixLimit;
    switch (mix) {
      case kMixUniform: m.mix_init[i] = uniform; break;
      case kMixEdges: m.mix_init[i] = MixEdge(u >> 8); break;
      case kMixTypical: {
        const int32_t small = int32_t((u >> 8) % 8193) - 4096;  // +-1/16
        m.mix_init[i] = i % ckz::kLstmMixInputs == 0 ? 65536 + small : small;
        break;
      }
      default: m.mix_init[i] = (u & 3) == 0 ? MixEdge(u >> 8) : uniform;
    }
  }
  return m;
}

}  // namespace ckz_fuzz

#endif  // CKZ_FUZZ_FUZZ_LSTM_MODEL_H_
