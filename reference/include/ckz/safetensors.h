// safetensors, parsed by a pure function over the file's bytes, and built back.
// Format: u64le N, N bytes of JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
// {str: str}}, then the data section. Tensors must tile the data section exactly.
#ifndef CKZ_SAFETENSORS_H_
#define CKZ_SAFETENSORS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ckz/status.h"
#include "ckz/types.h"

namespace ckz {

// Largest JSON header accepted (the safetensors reference implementation's limit).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100u << 20;

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kInvalid;
  std::vector<uint64_t> shape;
  uint64_t begin = 0;  // data_offsets, relative to the data section
  uint64_t end = 0;
};

struct SafetensorsHeader {
  uint64_t data_start = 0;                // 8 + N: where the data section starts in the file
  // Sorted by `begin` (the order of the bytes); zero-length tensors sharing an offset with
  // others come first, by name (the order is (begin, end, name)).
  std::vector<SafetensorsEntry> tensors;
  std::vector<std::pair<std::string, std::string>> metadata;  // "__metadata__", in file order
};

// Validates everything: size fields, JSON syntax, keys, dtypes, shapes against offsets, the
// tensors tiling the data section without gaps or overlaps, no duplicate names. Errors:
// kSafetensorsMalformed, except kUnsupportedDtype (a dtype outside F64 F32 F16 BF16 I64 I32
// I16 I8 U8 BOOL), kShapeOverflow, kDuplicateName (a key twice in one JSON object) and kBadName
// (a tensor name breaking the CKZ name rules). Messages name the field and the file offset.
Result<SafetensorsHeader> ParseSafetensors(ByteSpan file);

// The bytes before the data section (u64le N + JSON padded with spaces to a multiple of 8) for
// `tensors` laid out in the given order (their begin/end are recomputed) and `metadata`.
// Canonical form: compact JSON, {"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]},...},
// "__metadata__" last and only when non-empty. Shapes and dtypes must be valid (ShapeBytes).
std::vector<uint8_t> BuildSafetensorsProlog(
    std::vector<SafetensorsEntry>& tensors,
    const std::vector<std::pair<std::string, std::string>>& metadata);

// model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard file}}.
struct ShardIndex {
  std::vector<std::pair<std::string, std::string>> weight_map;  // tensor -> shard, file order
  std::vector<std::string> shards;                               // distinct shards, first-seen order
};
// Errors: kShardIndexMalformed (not JSON, no "weight_map" object, an empty one, a non-string
// file, a non-object "metadata"), kDuplicateName, kBadName (a tensor name, or a file name that
// is not a relative path, see CheckRelativePath). Other top-level keys are ignored.
Result<ShardIndex> ParseShardIndex(ByteSpan json);

}  // namespace ckz

#endif  // CKZ_SAFETENSORS_H_
