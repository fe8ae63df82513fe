// level_measure: what the cml level codec (spec 7.9.3) spends per stream, and what each of its
// contexts is worth, on a chain written with the rate-distortion levels.
//
//   level_measure CHAIN_DIR
//
// For every link it decodes each level tensor's levels, then codes them again chunk by chunk
// (the file's own chunks, parent and aux levels exactly as a decoder has them) with the
// format's contexts and with one context switched off at a time, and prints bytes and bits per
// element by role (dW, m, v). "W aux = m" codes the weight with its first moment's levels as
// aux context and the first moment without any: the other order a format could have chosen.
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "ckz/decoder.h"
#include "ckz/io.h"
#include "common/index_model.h"
#include "common/level_model.h"

namespace {

using namespace ckz;

const char* Stream(Role r) {
  return r == Role::kWeight ? "dW" : r == Role::kMoment1 ? "m" : r == Role::kMoment2 ? "v" : "other";
}

struct Variant {
  std::string name;
  LevelModelConfig config;
  bool weight_aux_is_m = false;
};

std::vector<int32_t> Levels(ChainReader& reader, size_t t, IndexCache* cache) {
  const Archive& a = reader.archive();
  std::vector<int32_t> out(a.tensors[t].num_elements);
  Status s = DecodeIndexRange(a, t, 0,
                              MutableByteSpan(reinterpret_cast<uint8_t*>(out.data()), out.size() * 4),
                              reader.parent(), cache);
  if (!s.ok()) {
    fprintf(stderr, "level_measure: %s\n", s.ToString().c_str());
    exit(2);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: level_measure CHAIN_DIR\n");
    return 1;
  }
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(argv[1]))
    if (e.path().extension() == ".ckz") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  std::vector<Variant> variants = {{"format", {}, false}};
  auto off = [&](const char* name, bool LevelModelConfig::*flag) {
    Variant v{std::string("no ") + name, {}, false};
    v.config.*flag = false;
    variants.push_back(v);
  };
  off("zero parent", &LevelModelConfig::zero_parent);
  off("zero neighbours", &LevelModelConfig::zero_neighbours);
  off("zero aux", &LevelModelConfig::zero_aux);
  off("sign parent", &LevelModelConfig::sign_parent);
  off("sign aux", &LevelModelConfig::sign_aux);
  off("sign left", &LevelModelConfig::sign_left);
  off("magnitude neighbours", &LevelModelConfig::magnitude_neighbours);
  off("magnitude parent", &LevelModelConfig::magnitude_parent);
  variants.push_back({"W aux = m", {}, true});
  // bytes[variant][stream], elements[stream]
  std::vector<std::map<std::string, uint64_t>> bytes(variants.size());
  std::map<std::string, uint64_t> elements;
  IndexCache cache;
  for (const std::string& path : files) {
    auto reader = ChainReader::Open(path);
    if (!reader.ok()) {
      fprintf(stderr, "level_measure: %s\n", reader.status().ToString().c_str());
      return 2;
    }
    ChainReader& r = **reader;
    const Archive& a = r.archive();
    if (!a.link) continue;
    const std::vector<CmTensorRole> roles = CmRoles(a.tensors);
    for (size_t t = 0; t < a.tensors.size(); ++t) {
      const TensorInfo& info = a.tensors[t];
      if (!info.quantization || !info.quantization->IsLevels()) continue;
      const std::vector<int32_t> levels = Levels(r, t, &cache);
      std::vector<int32_t> parent(levels.size());
      uint32_t present = 0;
      if (!r.parent()
               ->ReadReferenceIndices(info, 0,
                                      MutableByteSpan(reinterpret_cast<uint8_t*>(parent.data()),
                                                      parent.size() * 4),
                                      &present)
               .ok())
        return 2;
      const int aux_tensor = CmAuxTensor(roles, t);
      std::vector<int32_t> aux, m_levels;
      if (aux_tensor >= 0) aux = Levels(r, size_t(aux_tensor), &cache);
      // The other order: a weight's aux is its level Moment1, which then has none.
      int m1 = -1;
      for (size_t i = 0; i < a.tensors.size(); ++i)
        if (roles[i].levels && roles[i].role == Role::kMoment1 && roles[i].owner == int32_t(t))
          m1 = int(i);
      if (info.role == Role::kWeight && m1 >= 0) m_levels = Levels(r, size_t(m1), &cache);
      const std::string stream = Stream(info.role);
      elements[stream] += levels.size();
      const uint64_t w = DTypeSize(info.dtype);
      for (size_t v = 0; v < variants.size(); ++v) {
        const int32_t* aux_ptr = aux.empty() ? nullptr : aux.data();
        if (variants[v].weight_aux_is_m) {
          if (info.role == Role::kWeight) aux_ptr = m_levels.empty() ? nullptr : m_levels.data();
          if (info.role == Role::kMoment1) aux_ptr = nullptr;
        }
        for (const ChunkInfo& c : info.chunks) {
          LevelModelInputs in;
          in.first = c.raw_offset / w;
          in.row = info.shape.size() >= 2 ? info.shape.back() : 0;
          if (present) in.parent = parent.data() + in.first;
          if (aux_ptr) in.aux = aux_ptr + in.first;
          std::vector<uint8_t> out;
          EncodeLevelStream(in, levels.data() + in.first, c.raw_length / w, &out,
                            variants[v].config);
          bytes[v][stream] += out.size() + 5;  // + the stream directory entry
        }
      }
    }
  }
  printf("%-22s", "variant");
  for (const auto& [s, n] : elements) printf("  %14s", (s + " bytes (b/el)").c_str());
  printf("  %10s\n", "total");
  for (size_t v = 0; v < variants.size(); ++v) {
    printf("%-22s", variants[v].name.c_str());
    uint64_t total = 0;
    for (const auto& [s, n] : elements) {
      printf("  %8llu (%.3f)", (unsigned long long)bytes[v][s], 8.0 * double(bytes[v][s]) / double(n));
      total += bytes[v][s];
    }
    printf("  %10llu\n", (unsigned long long)total);
  }
  return 0;
}
