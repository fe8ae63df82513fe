#include "train/level_samples.h"

#include "ckz/decoder.h"
#include "common/index_model.h"
#include "common/lstm_model.h"
#include "decompress/level_inputs.h"

namespace ckz {
namespace {

MutableByteSpan AsBytes(std::vector<int32_t>& v) {
  return MutableByteSpan(reinterpret_cast<uint8_t*>(v.data()), v.size() * 4);
}

}  // namespace

LevelModelInputs LevelChunkSample::Inputs() const {
  LevelModelInputs in;
  in.first = first;
  in.row = row;
  in.role = role;
  if (!parent.empty()) in.parent = parent.data();
  if (!aux.empty()) in.aux = aux.data();
  return in;
}

Result<std::vector<LevelChunkSample>> ReadLevelChunks(ChainReader& reader,
                                                      uint64_t max_elements) {
  const Archive& a = reader.archive();
  struct Pick {
    size_t tensor;
    uint64_t first, count;
  };
  std::vector<Pick> all;
  uint64_t total = 0;
  for (size_t t = 0; t < a.tensors.size(); ++t) {
    const TensorInfo& info = a.tensors[t];
    if (!info.quantization || !info.quantization->IsLevels()) continue;
    const uint64_t w = DTypeSize(info.dtype);
    for (const ChunkInfo& c : info.chunks) {
      all.push_back({t, c.raw_offset / w, c.raw_length / w});
      total += c.raw_length / w;
    }
  }
  const uint64_t stride =
      max_elements == 0 || total <= max_elements ? 1 : (total + max_elements - 1) / max_elements;
  IndexCache cache;
  std::vector<LevelChunkSample> out;
  for (size_t k = 0; k < all.size(); k += size_t(stride)) {
    const Pick& p = all[k];
    const TensorInfo& info = a.tensors[p.tensor];
    LevelChunkSample s;
    s.tensor = p.tensor;
    s.role = LstmRoleOf(info.role);
    s.row = info.shape.size() >= 2 ? info.shape.back() : 0;
    s.first = p.first;
    s.levels.resize(p.count);
    CKZ_RETURN_IF_ERROR(
        DecodeIndexRange(a, p.tensor, p.first, AsBytes(s.levels), reader.parent(), &cache));
    LevelModelInputs in;
    CKZ_RETURN_IF_ERROR(LevelInputs(a, p.tensor, p.first, p.count, reader.parent(), &cache,
                                    &s.parent, &s.aux, &in));
    if (in.parent == nullptr) s.parent.clear();
    if (in.aux == nullptr) s.aux.clear();
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<LstmTrainingChunk> TrainingChunks(const std::vector<LevelChunkSample>& samples) {
  std::vector<LstmTrainingChunk> out;
  out.reserve(samples.size());
  for (const LevelChunkSample& s : samples) {
    LstmTrainingChunk c;
    c.in = s.Inputs();
    c.levels = s.levels.data();
    c.count = s.levels.size();
    out.push_back(c);
  }
  return out;
}

}  // namespace ckz
