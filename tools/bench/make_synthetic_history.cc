// Writes a tiny synthetic training history for the ckz_bench smoke test: N safetensors files
// (written here by hand, not with libckz) named step_<s>.safetensors with steps chosen so that
// natural and lexicographic order differ (20, 60, 100, ...). Each holds float32 weights with
// their Adam moments (".exp_avg", ".exp_avg_sq") and an int64 step counter; between checkpoints
// the values change a little, as in training.
//
//   ckz_bench_synth OUT_DIR [CHECKPOINTS]      (default 3 checkpoints)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

struct Tensor {
  std::string name;
  std::string dtype;  // "F32" or "I64"
  std::vector<uint64_t> shape;
  std::vector<uint8_t> bytes;
};

std::vector<uint8_t> FloatBytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &v[i], 4);
    for (int b = 0; b < 4; ++b) out[i * 4 + size_t(b)] = uint8_t(bits >> (8 * b));  // LE
  }
  return out;
}

bool WriteSafetensors(const std::string& path, const std::vector<Tensor>& tensors, int64_t step) {
  std::string json = "{";
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    json += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) json += (i ? "," : "") + std::to_string(t.shape[i]);
    json += "],\"data_offsets\":[" + std::to_string(offset) + "," +
            std::to_string(offset + t.bytes.size()) + "]},";
    offset += t.bytes.size();
  }
  json += "\"__metadata__\":{\"format\":\"pt\",\"step\":\"" + std::to_string(step) + "\"}}";
  while (json.size() % 8) json += ' ';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  uint8_t n[8];
  for (int b = 0; b < 8; ++b) n[b] = uint8_t(uint64_t(json.size()) >> (8 * b));
  out.write(reinterpret_cast<const char*>(n), 8);
  out.write(json.data(), std::streamsize(json.size()));
  for (const Tensor& t : tensors)
    out.write(reinterpret_cast<const char*>(t.bytes.data()), std::streamsize(t.bytes.size()));
  out.close();
  return bool(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: ckz_bench_synth OUT_DIR [CHECKPOINTS]\n");
    return 1;
  }
  const std::string dir = argv[1];
  const int count = argc == 3 ? std::atoi(argv[2]) : 3;
  if (count < 1 || count > 1000) {
    std::fprintf(stderr, "ckz_bench_synth: CHECKPOINTS must be 1..1000\n");
    return 1;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "ckz_bench_synth: %s: %s\n", dir.c_str(), ec.message().c_str());
    return 1;
  }

  struct Param {
    std::string name;
    std::vector<uint64_t> shape;
    std::vector<float> w, m, v;
  };
  std::mt19937 rng(12345);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<Param> params = {{"fc1.weight", {32, 24}, {}, {}, {}},
                               {"fc1.bias", {32}, {}, {}, {}},
                               {"fc2.weight", {10, 32}, {}, {}, {}},
                               {"fc2.bias", {10}, {}, {}, {}}};
  for (Param& p : params) {
    size_t n = 1;
    for (uint64_t d : p.shape) n *= size_t(d);
    p.w.resize(n);
    p.m.assign(n, 0.0f);
    p.v.assign(n, 0.0f);
    for (float& x : p.w) x = 0.1f * normal(rng);
  }
  for (int c = 0; c < count; ++c) {
    const int64_t step = 20 + 40 * c;  // 20, 60, 100: "step_100" sorts first as text
    for (int s = 0; s < 5; ++s) {      // a few Adam-like updates between checkpoints
      for (Param& p : params) {
        for (size_t i = 0; i < p.w.size(); ++i) {
          const float g = 0.01f * normal(rng) + 0.001f * p.w[i];
          p.m[i] = 0.9f * p.m[i] + 0.1f * g;
          p.v[i] = 0.999f * p.v[i] + 0.001f * g * g;
          p.w[i] -= 1e-3f * p.m[i] / (std::sqrt(p.v[i]) + 1e-8f);
        }
      }
    }
    std::vector<Tensor> tensors;
    for (const Param& p : params) {
      tensors.push_back({p.name, "F32", p.shape, FloatBytes(p.w)});
      tensors.push_back({p.name + ".exp_avg", "F32", p.shape, FloatBytes(p.m)});
      tensors.push_back({p.name + ".exp_avg_sq", "F32", p.shape, FloatBytes(p.v)});
    }
    Tensor counter{"optimizer.step", "I64", {}, std::vector<uint8_t>(8, 0)};
    for (int b = 0; b < 8; ++b) counter.bytes[size_t(b)] = uint8_t(uint64_t(step) >> (8 * b));
    tensors.push_back(counter);
    const std::string path = dir + "/step_" + std::to_string(step) + ".safetensors";
    if (!WriteSafetensors(path, tensors, step)) {
      std::fprintf(stderr, "ckz_bench_synth: cannot write %s\n", path.c_str());
      return 1;
    }
  }
  return 0;
}
