#include "train/level_samples.h"

#include "ckz/decoder.h"
#include "common/index_model.h"
#include "common/lstm_model.h"
#include "decompress/coder_inputs.h"

namespace ckz {
namespace {

MutableByteSpan AsBytes(std::vector<int32_t>& v) {
  return MutableByteSpan(reinterpret_cast<uint8_t*>(v.data()), v.size() * 4);
}

struct Pick {
  size_t tensor;
  uint64_t first, count;
};

// The chunks of the tensors quantized with a level kind (`levels`) or a codebook kind, and
// the stride that keeps about `max_elements` of them.
std::vector<Pick> PickChunks(const Archive& a, bool levels, uint64_t max_elements,
                             uint64_t* stride) {
  std::vector<Pick> all;
  uint64_t total = 0;
  for (size_t t = 0; t < a.tensors.size(); ++t) {
    const TensorInfo& info = a.tensors[t];
    if (!info.quantization || info.quantization->IsLevels() != levels) continue;
    const uint64_t w = DTypeSize(info.dtype);
    for (const ChunkInfo& c : info.chunks) {
      all.push_back({t, c.raw_offset / w, c.raw_length / w});
      total += c.raw_length / w;
    }
  }
  *stride =
      max_elements == 0 || total <= max_elements ? 1 : (total + max_elements - 1) / max_elements;
  return all;
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
  uint64_t stride = 1;
  const std::vector<Pick> all = PickChunks(a, /*levels=*/true, max_elements, &stride);
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

IndexModelInputs IndexChunkSample::Inputs() const {
  IndexModelInputs in;
  in.centres = centres;
  in.first = first;
  in.row = row;
  in.role = role;
  if (!parent.empty()) in.parent = parent.data(), in.parent_centres = parent_centres;
  if (!aux.empty()) in.aux = aux.data(), in.aux_centres = aux_centres;
  return in;
}

Result<std::vector<IndexChunkSample>> ReadIndexChunks(ChainReader& reader,
                                                      uint64_t max_elements) {
  const Archive& a = reader.archive();
  uint64_t stride = 1;
  const std::vector<Pick> all = PickChunks(a, /*levels=*/false, max_elements, &stride);
  IndexCache cache;
  std::vector<IndexChunkSample> out;
  for (size_t k = 0; k < all.size(); k += size_t(stride)) {
    const Pick& p = all[k];
    const TensorInfo& info = a.tensors[p.tensor];
    IndexChunkSample s;
    s.tensor = p.tensor;
    s.role = LstmRoleOf(info.role);
    s.first = p.first;
    s.indices.resize(p.count);
    CKZ_RETURN_IF_ERROR(DecodeIndexRange(a, p.tensor, p.first, MutableByteSpan(s.indices),
                                         reader.parent(), &cache));
    IndexModelInputs in;
    CKZ_RETURN_IF_ERROR(CmInputs(a, p.tensor, p.first, p.count, reader.parent(), &cache,
                                 &s.parent, &s.aux, &in));
    s.centres = in.centres;
    s.row = in.row;
    s.parent_centres = in.parent_centres;
    s.aux_centres = in.aux_centres;
    if (in.parent == nullptr) s.parent.clear();
    if (in.aux == nullptr) s.aux.clear();
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<LstmTrainingChunk> TrainingChunks(const std::vector<IndexChunkSample>& samples) {
  std::vector<LstmTrainingChunk> out;
  out.reserve(samples.size());
  for (const IndexChunkSample& s : samples) {
    LstmTrainingChunk c;
    c.index_in = s.Inputs();
    c.indices = s.indices.data();
    c.count = s.indices.size();
    out.push_back(c);
  }
  return out;
}

}  // namespace ckz
