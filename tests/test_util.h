// Small helpers shared by the unit tests.
#ifndef CKZ_TESTS_TEST_UTIL_H_
#define CKZ_TESTS_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <unistd.h>
#include <string>
#include <vector>

#include "ckz/archive.h"
#include "ckz/decoder.h"
#include "ckz/writer.h"

namespace ckz::testing {

struct TestTensor {
  TensorSpec spec;
  std::vector<uint8_t> bytes;
};

// Bytes that look like a trained tensor of `dtype`: floats from a normal distribution, ints
// small, bools 0/1.
inline std::vector<uint8_t> RandomTensorBytes(DType dtype, uint64_t elements, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 0.05f);
  std::vector<uint8_t> out(elements * DTypeSize(dtype));
  for (uint64_t i = 0; i < elements; ++i) {
    uint8_t* p = out.data() + i * DTypeSize(dtype);
    const float f = normal(rng);
    switch (dtype) {
      case DType::kF64: { double d = f; std::memcpy(p, &d, 8); break; }
      case DType::kF32: std::memcpy(p, &f, 4); break;
      case DType::kF16:
      case DType::kBF16: {  // truncated f32 bits: fine as test data for both 16-bit formats
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        const uint16_t h = uint16_t(bits >> 16);
        std::memcpy(p, &h, 2);
        break;
      }
      case DType::kBool: *p = uint8_t(rng() & 1); break;
      default: {
        const int64_t v = int64_t(rng() % 2001) - 1000;
        std::memcpy(p, &v, DTypeSize(dtype));  // little-endian host
      }
    }
  }
  return out;
}

// A tensor whose values moved a little from `base` (a later training step).
inline std::vector<uint8_t> PerturbF32(const std::vector<uint8_t>& base, uint32_t seed,
                                       float scale = 1e-3f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, scale);
  std::vector<uint8_t> out = base;
  for (size_t i = 0; i + 4 <= out.size(); i += 4) {
    float f;
    std::memcpy(&f, out.data() + i, 4);
    f += normal(rng) * std::fabs(f);
    std::memcpy(out.data() + i, &f, 4);
  }
  return out;
}

inline TestTensor MakeTensor(const std::string& name, DType dtype, std::vector<uint64_t> shape,
                             uint32_t seed) {
  TestTensor t;
  t.spec.name = name;
  t.spec.dtype = dtype;
  t.spec.shape = std::move(shape);
  uint64_t n = 1;
  for (uint64_t d : t.spec.shape) n *= d;
  t.bytes = RandomTensorBytes(dtype, n, seed);
  return t;
}

// Writes `tensors` to memory; `refs` (same order, may be empty) are their reference bytes.
// A link's header fields for WriteToMemory: `depth`, the parent's id left zero.
inline LinkInfo LinkOfDepth(uint32_t depth) {
  LinkInfo link;
  link.depth = depth;
  return link;
}

inline std::vector<uint8_t> WriteToMemory(const std::vector<TestTensor>& tensors,
                                          const EncodeOptions& options = {},
                                          const LinkInfo* link = nullptr,
                                          const std::vector<std::vector<uint8_t>>* refs = nullptr,
                                          ContentId* id = nullptr) {
  auto sink = std::make_unique<MemorySink>();
  MemorySink* mem = sink.get();
  Writer writer(std::move(sink), options);
  if (link) writer.SetLink(*link);
  for (size_t i = 0; i < tensors.size(); ++i) {
    ByteSpan ref;
    if (refs && i < refs->size()) ref = ByteSpan((*refs)[i]);
    Status s = writer.AddTensor(tensors[i].spec, ByteSpan(tensors[i].bytes), ref);
    if (!s.ok()) throw std::runtime_error(s.ToString());
  }
  Result<ContentId> r = writer.Finish();
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  if (id) *id = *r;
  return std::move(mem->bytes());
}

// A fresh empty folder under the test temp dir.
inline std::string FreshDir(const std::string& name) {
  const std::string dir = std::filesystem::temp_directory_path().string() + "/ckz_test_" +
                          name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A ReferenceSource over in-memory tensors, keyed by name.
class MemoryReference : public ReferenceSource {
 public:
  explicit MemoryReference(const std::vector<TestTensor>& tensors) : tensors_(tensors) {}
  Status ReadReference(const TensorInfo& t, uint64_t offset, MutableByteSpan out) override {
    for (const TestTensor& r : tensors_)
      if (r.spec.name == t.name) {
        std::memcpy(out.data, r.bytes.data() + offset, out.size);
        return Status::Ok();
      }
    return Status(ErrorCode::kReferenceMismatch, "no reference for " + t.name);
  }
  // A parent of plain values: no quantized tensors, so no indices for the cm contexts.
  Status ReadReferenceIndices(const TensorInfo&, uint64_t, MutableByteSpan,
                              uint32_t* centres) override {
    *centres = 0;
    return Status::Ok();
  }

 private:
  const std::vector<TestTensor>& tensors_;
};

}  // namespace ckz::testing

#endif  // CKZ_TESTS_TEST_UTIL_H_
