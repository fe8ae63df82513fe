// Writes the seed corpus of fuzz_cmf into the folder given on the command line:
//   make_cmf_corpus fuzz/corpus/fuzz_cmf
// Each seed is a real cmf stream (EncodeFloatStream) in fuzz_cmf.cc's input format, with the
// prediction it was coded against as the prediction bytes: smooth weights near a parent, tiny
// and exact updates, every near class, far values, special values (NaNs with payloads, +-inf,
// +-0, subnormals, max finite) against ordinary and special predictions, exponent steps,
// with and without a prediction, 0, 1 and 4096 elements; then damaged streams (truncated,
// trailing bytes, bit flips) and a few random ones that the decoder rejects (a bad symbol, a
// failed final check). Each seed is decoded before it is written and its result printed; an
// undamaged one must decode to its values bit for bit. Deterministic (fixed seeds).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "common/float_model.h"

namespace {

using ckz::FloatDecodeResult;

struct Rng {
  uint64_t s;
  uint32_t Next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(s >> 33);
  }
  double Uniform() { return (Next() + 0.5) / 4294967296.0; }
  // Roughly normal (the sum of four uniforms), scaled.
  float Normal(double sigma) {
    return float((Uniform() + Uniform() + Uniform() + Uniform() - 2.0) * 1.7320508 * sigma);
  }
};

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float Float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
using ckz::FromOrderedKey;
using ckz::OrderedKey;

constexpr uint32_t kSpecials[] = {
    0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001,
    0xFFBFFFFF, 0x7FC12345, 0x7FFFFFFF, 0xFFFFFFFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x00000001,
    0x80000001, 0x007FFFFF, 0x807FFFFF, 0x00800000, 0x80800000, 0x3F800000};

struct Seed {
  std::string name;
  bool with_prediction;
  size_t count;
  uint64_t seed;
  // Element i: fills *value and *prediction (the prediction is ignored without one).
  std::function<void(Rng&, size_t i, uint32_t* value, uint32_t* prediction)> make;
  int damage = 0;  // 1: last byte dropped, 2: half dropped, 3: 0x5A appended, 4: bit flip
};

void Store(std::vector<uint8_t>* v, uint32_t x) {
  for (int k = 0; k < 4; ++k) v->push_back(uint8_t(x >> (8 * k)));
}

const char* Name(FloatDecodeResult r) {
  return r == FloatDecodeResult::kOk          ? "ok"
         : r == FloatDecodeResult::kBadSymbol ? "bad symbol"
                                              : "bad stream";
}

// The file: header, stream, prediction bytes (fuzz_cmf.cc's layout). Without a prediction the
// values themselves follow the stream, as material for the harness's round trip.
bool WriteFile(const std::filesystem::path& dir, const std::string& name, bool with_prediction,
               size_t count, const std::vector<uint8_t>& stream,
               const std::vector<uint8_t>& tail) {
  std::vector<uint8_t> f = {uint8_t(with_prediction ? 1 : 0), uint8_t(count),
                            uint8_t(count >> 8), uint8_t(stream.size()),
                            uint8_t(stream.size() >> 8)};
  f.insert(f.end(), stream.begin(), stream.end());
  f.insert(f.end(), tail.begin(), tail.end());
  std::ofstream(dir / name, std::ios::binary)
      .write(reinterpret_cast<const char*>(f.data()), std::streamsize(f.size()));
  return true;
}

bool Write(const std::filesystem::path& dir, const Seed& s) {
  Rng r{s.seed};
  std::vector<uint8_t> values, pred;
  for (size_t i = 0; i < s.count; ++i) {
    uint32_t v = 0, p = 0;
    s.make(r, i, &v, &p);
    Store(&values, v);
    Store(&pred, s.with_prediction ? p : 0);
  }
  const uint8_t* prediction = s.with_prediction ? pred.data() : nullptr;
  std::vector<uint8_t> coded;
  ckz::EncodeFloatStream(values.data(), prediction, s.count, &coded);
  if (s.damage == 1 && !coded.empty()) coded.pop_back();
  if (s.damage == 2) coded.resize(coded.size() / 2);
  if (s.damage == 3) coded.push_back(0x5A);
  if (s.damage == 4 && !coded.empty()) coded[coded.size() / 3] ^= 0x10;
  std::vector<uint8_t> out(values.size());
  size_t bad = 0;
  const FloatDecodeResult res =
      ckz::DecodeFloatStream(coded.data(), coded.size(), prediction, out.data(), s.count, &bad);
  std::printf("  %-28s %4zu elements, stream %5zu bytes: %s%s\n", s.name.c_str(), s.count,
              coded.size(), Name(res),
              s.damage && res == FloatDecodeResult::kOk
                  ? (out == values ? " (the same values)" : " (other values)")
                  : "");
  if (s.damage == 0 && (res != FloatDecodeResult::kOk || out != values)) {
    std::fprintf(stderr, "make_cmf_corpus: %s does not round-trip\n", s.name.c_str());
    return false;
  }
  return WriteFile(dir, s.name, s.with_prediction, s.count, coded,
                   s.with_prediction ? pred : values);
}

// Random streams until one decodes to `want` (the decoder's rejections, from real bytes).
bool WriteRejected(const std::filesystem::path& dir, const std::string& name, size_t count,
                   bool with_prediction, FloatDecodeResult want, uint64_t seed) {
  Rng r{seed};
  std::vector<uint8_t> pred;
  for (size_t i = 0; i < count; ++i) Store(&pred, Bits(r.Normal(0.05)));
  const uint8_t* prediction = with_prediction ? pred.data() : nullptr;
  std::vector<uint8_t> out(4 * count);
  for (int attempt = 0; attempt < 100000; ++attempt) {
    std::vector<uint8_t> stream(8 + r.Next() % 64);
    for (uint8_t& b : stream) b = uint8_t(r.Next() >> 7);
    size_t bad = 0;
    const FloatDecodeResult res = ckz::DecodeFloatStream(stream.data(), stream.size(),
                                                         prediction, out.data(), count, &bad);
    if (res != want) continue;
    std::printf("  %-28s %4zu elements, stream %5zu bytes: %s", name.c_str(), count,
                stream.size(), Name(res));
    if (res == FloatDecodeResult::kBadSymbol) std::printf(" at element %zu", bad);
    std::printf("\n");
    return WriteFile(dir, name, with_prediction, count, stream,
                     with_prediction ? pred : std::vector<uint8_t>{});
  }
  std::fprintf(stderr, "make_cmf_corpus: no random stream gave %s\n", Name(want));
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_cmf_corpus <folder>\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);

  // Building blocks: a weight-like prediction and values derived from it.
  auto weight = [](Rng& r) { return Bits(r.Normal(0.02)); };
  auto smooth = [&](Rng& r, size_t, uint32_t* v, uint32_t* p) {
    const float w = Float(weight(r));
    *p = Bits(w);
    *v = Bits(w + r.Normal(1e-4));
  };
  auto ulps = [&](Rng& r, size_t, uint32_t* v, uint32_t* p) {
    *p = weight(r);
    *v = FromOrderedKey(OrderedKey(*p) + r.Next() % 7 - 3);
  };
  auto exact = [&](Rng& r, size_t, uint32_t* v, uint32_t* p) { *v = *p = weight(r); };
  auto every_class = [&](Rng& r, size_t i, uint32_t* v, uint32_t* p) {
    *p = weight(r);
    const uint32_t bits = uint32_t(i % 26);  // 0..24 near, 25 the first escape
    const uint32_t d = bits ? (r.Next() >> (32 - bits)) | 1u << (bits - 1) : 0;
    *v = FromOrderedKey(r.Next() & 1 ? OrderedKey(*p) - d : OrderedKey(*p) + d);
  };
  auto boundary = [&](Rng& r, size_t, uint32_t* v, uint32_t* p) {
    *p = weight(r);
    const uint32_t d = (1u << 24) - 2 + r.Next() % 4;
    *v = FromOrderedKey(r.Next() & 1 ? OrderedKey(*p) - d : OrderedKey(*p) + d);
  };
  auto far = [&](Rng& r, size_t, uint32_t* v, uint32_t* p) {
    *p = weight(r);
    *v = r.Next();
  };
  auto mixed = [&](Rng& r, size_t i, uint32_t* v, uint32_t* p) {
    // A fine-tuning delta: a third unchanged, most near, a few escapes and specials.
    const uint32_t k = r.Next() % 100;
    if (k < 33) return exact(r, i, v, p);
    if (k < 85) return smooth(r, i, v, p);
    if (k < 95) return far(r, i, v, p);
    *p = weight(r);
    *v = kSpecials[r.Next() % std::size(kSpecials)];
  };
  auto specials = [&](Rng& r, size_t, uint32_t* v, uint32_t* p) {
    *p = weight(r);
    *v = kSpecials[r.Next() % std::size(kSpecials)];
  };
  auto special_pred = [&](Rng& r, size_t i, uint32_t* v, uint32_t* p) {
    // Predictions that are special values, values one step away or far (key wrap-around).
    *p = kSpecials[i % std::size(kSpecials)];
    const uint32_t k = r.Next() % 4;
    *v = k == 0   ? *p
         : k == 1 ? FromOrderedKey(OrderedKey(*p) + 1)
         : k == 2 ? FromOrderedKey(OrderedKey(*p) - 1 - r.Next() % 1000)
                  : kSpecials[r.Next() % std::size(kSpecials)];
  };
  auto nan_payloads = [&](Rng& r, size_t, uint32_t* v, uint32_t* p) {
    *p = (r.Next() & 0x80000000u) | 0x7F800000u | (1 + r.Next() % 0x7FFFFF);
    *v = r.Next() % 2 ? (*p ^ (1u << (r.Next() % 23)))
                      : (r.Next() & 0x80000000u) | 0x7F800000u | (1 + r.Next() % 0x7FFFFF);
  };
  auto subnormal = [&](Rng& r, size_t, uint32_t* v, uint32_t* p) {
    *p = (r.Next() & 0x80000000u) | r.Next() % 0x800000;
    *v = (r.Next() & 0x80000000u) | r.Next() % 0x800000;
  };
  auto extremes = [&](Rng& r, size_t, uint32_t* v, uint32_t* p) {
    // Around max finite and infinity.
    *p = (r.Next() & 0x80000000u) | (0x7F7FFFFFu - r.Next() % 16);
    *v = FromOrderedKey(OrderedKey(*p) + r.Next() % 32 - 8);
  };
  auto exponent_steps = [&](Rng& r, size_t, uint32_t* v, uint32_t* p) {
    *p = r.Next() & 0xBFFFFFFFu;
    const int32_t e = int32_t((*p >> 23) & 0xFF) + int32_t(r.Next() % 256) - 128;
    const uint32_t ex = uint32_t(e < 0 ? 0 : e > 255 ? 255 : e);
    const uint32_t sign = (*p & 0x80000000u) ^ (r.Next() % 4 == 0 ? 0x80000000u : 0);
    *v = sign | ex << 23 | (r.Next() & 0x7FFFFFu);
  };
  auto exponent_classes = [&](Rng& r, size_t i, uint32_t* v, uint32_t* p) {
    // Predictions in every magnitude class (biased exponents 90..135), values near them.
    *p = (r.Next() & 0x807FFFFFu) | uint32_t(90 + i % 46) << 23;
    *v = FromOrderedKey(OrderedKey(*p) + (r.Next() >> (8 + r.Next() % 24)));
  };
  auto one_escape = [&](Rng&, size_t, uint32_t* v, uint32_t* p) {
    *p = Bits(0.5f);
    *v = Bits(-3.0e30f);
  };
  auto one_near = [&](Rng&, size_t, uint32_t* v, uint32_t* p) {
    *p = Bits(0.5f);
    *v = Bits(std::nextafter(0.5f, 1.0f));
  };

  const std::vector<Seed> seeds = {
      {"smooth_pred", true, 600, 1, smooth},
      {"ulps_pred", true, 500, 2, ulps},
      {"exact_pred", true, 800, 3, exact},
      {"every_class_pred", true, 520, 4, every_class},
      {"escape_boundary_pred", true, 300, 5, boundary},
      {"far_pred", true, 300, 6, far},
      {"far_nopred", false, 300, 7, far},
      {"weights_nopred", false, 500, 8, exact},
      {"mixed_pred", true, 1000, 9, mixed},
      {"specials_pred", true, 200, 10, specials},
      {"specials_nopred", false, 200, 11, specials},
      {"special_predictions", true, 400, 12, special_pred},
      {"nan_payloads_pred", true, 300, 13, nan_payloads},
      {"subnormals_pred", true, 300, 14, subnormal},
      {"subnormals_nopred", false, 300, 15, subnormal},
      {"extremes_pred", true, 200, 16, extremes},
      {"exponent_steps_pred", true, 400, 17, exponent_steps},
      {"exponent_classes_pred", true, 460, 18, exponent_classes},
      {"count0_pred", true, 0, 19, exact},
      {"count0_nopred", false, 0, 20, exact},
      {"count1_near", true, 1, 21, one_near},
      {"count1_escape", true, 1, 22, one_escape},
      {"count1_nopred", false, 1, 23, one_escape},
      {"count4096_exact", true, 4096, 24, exact},
      {"count4096_ulps", true, 4096, 25, ulps},
      {"truncated_last_byte", true, 400, 26, smooth, 1},
      {"truncated_half", true, 400, 27, mixed, 2},
      {"trailing_byte", true, 300, 28, smooth, 3},
      {"bit_flip", true, 400, 29, mixed, 4},
      {"bit_flip_nopred", false, 300, 30, specials, 4},
  };
  for (const Seed& s : seeds)
    if (!Write(dir, s)) return 1;
  if (!WriteRejected(dir, "random_bad_symbol_pred", 64, true, FloatDecodeResult::kBadSymbol, 31) ||
      !WriteRejected(dir, "random_bad_symbol_nopred", 64, false, FloatDecodeResult::kBadSymbol,
                     32) ||
      !WriteRejected(dir, "random_bad_stream_pred", 16, true, FloatDecodeResult::kBadStream, 33))
    return 1;
  std::printf("make_cmf_corpus: %zu seeds in %s\n", seeds.size() + 3, dir.string().c_str());
  return 0;
}
