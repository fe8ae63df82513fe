// level_measure: what the cml level codec (spec 7.9.3) spends per stream, and what each of its
// contexts is worth, on a chain written with the rate-distortion levels.
//
//   level_measure CHAIN_DIR [--dump PREFIX]
//
// For every link it decodes each level tensor's levels, then codes them again chunk by chunk
// (the file's own chunks, parent and aux levels exactly as a decoder has them) with the
// format's contexts and with one context switched off at a time, and prints bytes and bits per
// element by role (dW, m, v). "W aux = m" codes the weight with its first moment's levels as
// aux context and the first moment without any: the other order a format could have chosen.
//
// --dump PREFIX writes what a learned model mixed with cml would see (tools/lstm/): PREFIX.el,
// one record of kDumpFields int32 per element of every level tensor of every link, and
// PREFIX.dec, one record per binary decision of the format's coding (element, kind, slot, P0,
// bit as int32), in coding order.
#include <algorithm>
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

// Per element: link, role (0 W, 1 m, 2 v), tensor, chunk, level, left, up, parent level, aux
// level, then the owner's group (W, m, v) at this element: current levels, parent's levels
// (0 where a tensor or parent level is absent), then presence bits (parent, aux).
constexpr int kDumpFields = 17;

// The parent's levels of the tensor named like `info` (all 0, *present = 0, when it has none).
std::vector<int32_t> ParentLevels(ChainReader& r, const TensorInfo& info, uint32_t* present) {
  std::vector<int32_t> out(info.num_elements, 0);
  *present = 0;
  Status s = r.parent()->ReadReferenceIndices(
      info, 0, MutableByteSpan(reinterpret_cast<uint8_t*>(out.data()), out.size() * 4), present);
  if (!s.ok()) {
    fprintf(stderr, "level_measure: %s\n", s.ToString().c_str());
    exit(2);
  }
  if (!*present) std::fill(out.begin(), out.end(), 0);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && !(argc == 4 && std::string(argv[2]) == "--dump")) {
    fprintf(stderr, "usage: level_measure CHAIN_DIR [--dump PREFIX]\n");
    return 1;
  }
  FILE* dump_el = nullptr;
  FILE* dump_dec = nullptr;
  if (argc == 4) {
    dump_el = fopen((std::string(argv[3]) + ".el").c_str(), "wb");
    dump_dec = fopen((std::string(argv[3]) + ".dec").c_str(), "wb");
    if (!dump_el || !dump_dec) {
      fprintf(stderr, "level_measure: cannot write %s.el/.dec\n", argv[3]);
      return 1;
    }
  }
  uint64_t dumped = 0;
  int link_no = 0;
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
    ++link_no;
    const std::vector<CmTensorRole> roles = CmRoles(a.tensors);
    for (size_t t = 0; t < a.tensors.size(); ++t) {
      const TensorInfo& info = a.tensors[t];
      if (!info.quantization || !info.quantization->IsLevels()) continue;
      const std::vector<int32_t> levels = Levels(r, t, &cache);
      uint32_t present = 0;
      const std::vector<int32_t> parent = ParentLevels(r, info, &present);
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
      if (dump_el) {
        // The owner's group: the weight, its level Moment1 and Moment2.
        const int32_t owner = info.role == Role::kWeight ? int32_t(t) : roles[t].owner;
        int group[3] = {-1, -1, -1};
        for (size_t i = 0; i < a.tensors.size(); ++i) {
          if (!roles[i].levels || owner < 0) continue;
          if (int32_t(i) == owner) group[0] = int(i);
          if (roles[i].owner == owner && roles[i].role == Role::kMoment1) group[1] = int(i);
          if (roles[i].owner == owner && roles[i].role == Role::kMoment2) group[2] = int(i);
        }
        std::vector<int32_t> cur[3], par[3];
        for (int g = 0; g < 3; ++g) {
          uint32_t p = 0;
          cur[g] = group[g] >= 0 ? Levels(r, size_t(group[g]), &cache)
                                 : std::vector<int32_t>(levels.size(), 0);
          par[g] = group[g] >= 0 ? ParentLevels(r, a.tensors[size_t(group[g])], &p)
                                 : std::vector<int32_t>(levels.size(), 0);
        }
        const int role = info.role == Role::kWeight ? 0 : info.role == Role::kMoment1 ? 1 : 2;
        int chunk_no = 0;
        for (const ChunkInfo& c : info.chunks) {
          LevelModelInputs in;
          in.first = c.raw_offset / w;
          in.row = info.shape.size() >= 2 ? info.shape.back() : 0;
          if (present) in.parent = parent.data() + in.first;
          if (!aux.empty()) in.aux = aux.data() + in.first;
          const int32_t* q = levels.data() + in.first;
          LevelModel model;
          std::vector<LevelModel::Decision> decisions;
          uint64_t col = in.row ? in.first % in.row : 0;
          const size_t n = c.raw_length / w;
          for (size_t i = 0; i < n; ++i) {
            const uint64_t e = in.first + i;
            const bool has_left = i > 0 && (in.row == 0 || col != 0);
            const bool has_up = in.row != 0 && i >= in.row;
            const int32_t rec[kDumpFields] = {
                link_no, role, int32_t(t), chunk_no, q[i], has_left ? q[i - 1] : 0,
                has_up ? q[i - in.row] : 0, present ? parent[e] : 0, aux.empty() ? 0 : aux[e],
                cur[0][e], cur[1][e], cur[2][e], par[0][e], par[1][e], par[2][e],
                int32_t(present != 0), int32_t(!aux.empty())};
            fwrite(rec, 4, kDumpFields, dump_el);
            decisions.clear();
            model.Trace(LevelModel::ContextOf(in, q, i, col), q[i], &decisions);
            for (const auto& d : decisions) {
              const int32_t drec[5] = {int32_t(dumped), d.kind, d.slot, d.p0, d.bit};
              fwrite(drec, 4, 5, dump_dec);
            }
            ++dumped;
            if (in.row != 0 && ++col == in.row) col = 0;
          }
          ++chunk_no;
        }
      }
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
  if (dump_el) {
    fclose(dump_el);
    fclose(dump_dec);
    fprintf(stderr, "level_measure: dumped %llu elements\n", (unsigned long long)dumped);
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
