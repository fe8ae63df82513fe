// Untrusted surface: safetensors files and model.safetensors.index.json (and the JSON parser
// under both). Besides "no crash, no hang, no sanitizer report", an accepted input must satisfy
// what the parsers promise:
//  - safetensors: the tensors tile the data section in order, each holds exactly
//    numel x dtype size bytes, names are unique and valid; and the canonical prolog built from
//    the result parses back to the same tensors and metadata;
//  - shard index: shards are the distinct files of the weight map, in first-seen order.
// Mutations rarely keep a file's 8-byte header length right, so each input is also tried as
// "text + data": everything up to its last '}' becomes the JSON header (its length prefixed),
// the rest the data section. That way text seeds and text mutations reach the header rules.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "ckz/safetensors.h"
#include "common/bytes.h"
#include "format/rules.h"
#include "fuzz_check.h"

namespace {

void CheckSafetensors(ckz::ByteSpan file) {
  ckz::Result<ckz::SafetensorsHeader> parsed = ckz::ParseSafetensors(file);
  if (!parsed.ok()) {
    FUZZ_CHECK(!parsed.status().message().empty());
    return;
  }
  const ckz::SafetensorsHeader& h = *parsed;
  FUZZ_CHECK(file.size >= 8);
  FUZZ_CHECK(h.data_start == 8 + ckz::LoadLE64(file.data));
  FUZZ_CHECK(h.data_start <= file.size);
  uint64_t expected = 0;
  std::set<std::string> names;
  for (const ckz::SafetensorsEntry& t : h.tensors) {
    FUZZ_CHECK(ckz::CheckName(t.name, "name").ok());
    FUZZ_CHECK(names.insert(t.name).second);
    FUZZ_CHECK(ckz::DTypeSize(t.dtype) != 0);
    uint64_t elements = 0, bytes = 0;
    FUZZ_CHECK(ckz::ShapeBytes(t.shape, t.dtype, "shape", &elements, &bytes).ok());
    FUZZ_CHECK(t.begin == expected);
    FUZZ_CHECK(t.end >= t.begin && t.end - t.begin == bytes);
    expected = t.end;
  }
  FUZZ_CHECK(expected == file.size - h.data_start);

  // The canonical prolog of what was parsed, over the same data, parses to the same thing.
  std::vector<ckz::SafetensorsEntry> entries = h.tensors;
  std::vector<uint8_t> rebuilt = ckz::BuildSafetensorsProlog(entries, h.metadata);
  FUZZ_CHECK(rebuilt.size() % 8 == 0);
  rebuilt.insert(rebuilt.end(), file.data + h.data_start, file.data + file.size);
  ckz::Result<ckz::SafetensorsHeader> again = ckz::ParseSafetensors(rebuilt);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->metadata == h.metadata);
  FUZZ_CHECK(again->tensors.size() == h.tensors.size());
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const ckz::SafetensorsEntry& a = again->tensors[i];
    const ckz::SafetensorsEntry& b = h.tensors[i];
    FUZZ_CHECK(a.name == b.name && a.dtype == b.dtype && a.shape == b.shape && a.begin == b.begin &&
               a.end == b.end);
  }
}

void CheckShardIndex(ckz::ByteSpan json) {
  ckz::Result<ckz::ShardIndex> parsed = ckz::ParseShardIndex(json);
  if (!parsed.ok()) {
    FUZZ_CHECK(!parsed.status().message().empty());
    return;
  }
  FUZZ_CHECK(!parsed->weight_map.empty());
  std::set<std::string> tensors, shards(parsed->shards.begin(), parsed->shards.end());
  FUZZ_CHECK(shards.size() == parsed->shards.size());
  size_t next_new_shard = 0;
  std::set<std::string> seen;
  for (const auto& [tensor, shard] : parsed->weight_map) {
    FUZZ_CHECK(tensors.insert(tensor).second);
    FUZZ_CHECK(ckz::CheckRelativePath(shard, "shard").ok());
    FUZZ_CHECK(shards.count(shard) == 1);
    if (seen.insert(shard).second) FUZZ_CHECK(parsed->shards[next_new_shard++] == shard);
  }
  FUZZ_CHECK(next_new_shard == parsed->shards.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ckz::ByteSpan input(data, size);
  CheckSafetensors(input);
  CheckShardIndex(input);

  size_t header = size;
  while (header > 0 && data[header - 1] != '}') --header;
  if (header > 0) {
    std::vector<uint8_t> file(8 + size);
    ckz::StoreLE64(file.data(), header);
    std::copy(data, data + size, file.begin() + 8);
    CheckSafetensors(ckz::ByteSpan(file));
  }
  return 0;
}
