// LoadCheckpoint: recognises the input kind, maps its files, validates them, and describes the
// source files so that decompression rebuilds them byte for byte (their prologs are kept
// verbatim; only tensor bytes go through the codec).
#include <algorithm>
#include <filesystem>
#include <string_view>
#include <unordered_map>

#include "ckz/checkpoint.h"
#include "ckz/safetensors.h"
#include "common/bytes.h"
#include "format/rules.h"

namespace ckz {
namespace {

namespace fs = std::filesystem;

constexpr char kAccepted[] =
    "accepted: a .safetensors file, a *.index.json shard index, or a folder holding exactly "
    "one *.safetensors.index.json or (without one) exactly one *.safetensors file";

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string BaseName(const std::string& path) { return fs::path(path).filename().string(); }

Status Unsupported(const std::string& path, const std::string& why) {
  return Status(ErrorCode::kUnsupportedInput, path + ": " + why + "; " + kAccepted);
}

// Bytes that start the way safetensors files do (a plausible header length, then '{'): a
// parse failure is then worth reporting as such, not as an unrecognised input.
bool LooksLikeSafetensors(ByteSpan bytes) {
  if (bytes.size < 10) return false;
  const uint64_t n = LoadLE64(bytes.data);
  return n >= 2 && n <= bytes.size - 8 && bytes.data[8] == '{';
}

// "step" in __metadata__, when it is a decimal integer: the training step of the checkpoint.
std::optional<int64_t> StepFromMetadata(
    const std::vector<std::pair<std::string, std::string>>& metadata) {
  for (const auto& [key, value] : metadata) {
    if (key != "step") continue;
    std::string_view s = value;
    const bool negative = !s.empty() && s[0] == '-';
    std::string_view digits = negative ? s.substr(1) : s;
    if (digits.empty() || digits.size() > 19) return std::nullopt;
    uint64_t v = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + uint64_t(c - '0');  // at most 19 digits: no overflow
    }
    if (v > uint64_t(INT64_MAX) + (negative ? 1 : 0)) return std::nullopt;
    return negative ? int64_t(~v + 1) : int64_t(v);
  }
  return std::nullopt;
}

// Adds one validated safetensors file: its SourceFileInfo (prolog verbatim) and its tensors
// in data order, pointing into `file`.
void AddSafetensorsFile(const std::string& path_in_checkpoint, ByteSpan file,
                        const SafetensorsHeader& header, InputCheckpoint* out) {
  SourceFileInfo info;
  info.path = path_in_checkpoint;
  info.format = SourceFormat::kSafetensors;
  info.prolog.assign(file.data, file.data + header.data_start);
  for (const SafetensorsEntry& e : header.tensors) {
    info.tensors.push_back(uint32_t(out->tensors.size()));
    InputTensor t;
    t.spec.name = e.name;
    t.spec.dtype = e.dtype;
    t.spec.shape = e.shape;
    t.data = file.subspan(size_t(header.data_start + e.begin), size_t(e.end - e.begin));
    out->tensors.push_back(std::move(t));
  }
  out->files.push_back(std::move(info));
  if (!out->step) out->step = StepFromMetadata(header.metadata);
}

// Roles from names (spec/ckz.md, section 8.3). For each tensor T, in any order:
//  - T is an optimizer moment when its name is P + ".exp_avg" or P + ".momentum_buffer"
//    (moment1), or P + ".exp_avg_sq" (moment2), where a tensor named P exists in the
//    checkpoint with the same shape, T and P both have a floating dtype, and P is not itself a
//    moment by this rule. Its owner is the index of P, and P is a weight.
//  - Otherwise T is a weight when its dtype is floating (F64 F32 F16 BF16), and other (owner
//    -1) when it is not.
// ("P is not itself a moment" is decided first for shorter names, so the rule is well defined
// for names like "a.exp_avg.exp_avg": "a.exp_avg" is a moment of "a", hence the longer name is
// a weight.)
void AssignRoles(std::vector<InputTensor>* tensors) {
  std::unordered_map<std::string_view, size_t> by_name;
  for (size_t i = 0; i < tensors->size(); ++i) by_name.emplace((*tensors)[i].spec.name, i);

  struct Suffix {
    std::string_view text;
    Role role;
  };
  static constexpr Suffix kSuffixes[] = {{".exp_avg", Role::kMoment1},
                                         {".momentum_buffer", Role::kMoment1},
                                         {".exp_avg_sq", Role::kMoment2}};

  // Shorter names first: a tensor's candidate owner is decided before the tensor itself.
  std::vector<size_t> order(tensors->size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return (*tensors)[a].spec.name.size() < (*tensors)[b].spec.name.size();
  });
  for (size_t i : order) {
    TensorSpec& t = (*tensors)[i].spec;
    t.role = DTypeIsFloat(t.dtype) ? Role::kWeight : Role::kOther;
    t.owner = -1;
    if (!DTypeIsFloat(t.dtype)) continue;
    for (const Suffix& s : kSuffixes) {
      if (!EndsWith(t.name, s.text)) continue;
      auto it = by_name.find(std::string_view(t.name).substr(0, t.name.size() - s.text.size()));
      if (it == by_name.end()) continue;
      const TensorSpec& p = (*tensors)[it->second].spec;
      if (p.shape != t.shape || !DTypeIsFloat(p.dtype) || p.role != Role::kWeight) continue;
      t.role = s.role;
      t.owner = int32_t(it->second);
      break;
    }
  }
}

Status LoadSingle(const std::string& path, InputCheckpoint* out) {
  Result<MappedFile> file = MappedFile::Open(path);
  if (!file.ok()) return file.status();
  const ByteSpan bytes = file->bytes();
  Result<SafetensorsHeader> header = ParseSafetensors(bytes);
  if (!header.ok()) {
    if (EndsWith(path, ".safetensors") || LooksLikeSafetensors(bytes))
      return header.status().WithContext(path);
    return Unsupported(path, "not a safetensors file (" + header.status().message() + ")");
  }
  out->kind = "safetensors";
  AddSafetensorsFile(BaseName(path), bytes, *header, out);
  out->mappings.push_back(std::move(*file));
  return Status::Ok();
}

Status LoadSharded(const std::string& index_path, InputCheckpoint* out) {
  Result<MappedFile> index_file = MappedFile::Open(index_path);
  if (!index_file.ok()) return index_file.status();
  Result<ShardIndex> index = ParseShardIndex(index_file->bytes());
  if (!index.ok()) return index.status().WithContext(index_path);
  out->kind = "safetensors-sharded";
  SourceFileInfo info;
  info.path = BaseName(index_path);
  info.format = SourceFormat::kRaw;
  info.prolog.assign(index_file->bytes().begin(), index_file->bytes().end());
  out->files.push_back(std::move(info));
  out->mappings.push_back(std::move(*index_file));

  std::unordered_map<std::string_view, std::string_view> shard_of;  // tensor -> shard
  for (const auto& [tensor, shard] : index->weight_map) shard_of.emplace(tensor, shard);
  const fs::path folder = fs::path(index_path).parent_path();
  for (const std::string& shard : index->shards) {
    const std::string shard_path = (folder / shard).string();
    Result<MappedFile> file = MappedFile::Open(shard_path);
    if (!file.ok()) return file.status().WithContext(index_path + ": shard " + shard);
    Result<SafetensorsHeader> header = ParseSafetensors(file->bytes());
    if (!header.ok()) return header.status().WithContext(shard_path);
    for (const SafetensorsEntry& e : header->tensors) {
      auto it = shard_of.find(e.name);
      if (it == shard_of.end())
        return Status(
            ErrorCode::kShardIndexMalformed,
            index_path + ": tensor '" + e.name + "' of shard '" + shard + "' is not in weight_map");
      if (it->second != shard)
        return Status(ErrorCode::kShardIndexMalformed,
                      index_path + ": weight_map puts tensor '" + e.name + "' in '" +
                          std::string(it->second) + "', but it is in '" + shard + "'");
      shard_of.erase(it);  // found once: a second copy in another shard is then reported
    }
    AddSafetensorsFile(shard, file->bytes(), *header, out);
    out->mappings.push_back(std::move(*file));
  }
  if (!shard_of.empty()) {
    // Name the first missing tensor in weight_map order, so the message is deterministic.
    for (const auto& [tensor, shard] : index->weight_map)
      if (shard_of.count(tensor))
        return Status(ErrorCode::kShardIndexMalformed, index_path + ": weight_map puts tensor '" +
                                                           tensor + "' in '" + shard +
                                                           "', which does not hold it");
  }
  return Status::Ok();
}

Status LoadFolder(const std::string& path, InputCheckpoint* out) {
  std::vector<std::string> indexes, files;
  std::error_code ec;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    const std::string name = it->path().filename().string();
    if (EndsWith(name, ".safetensors.index.json"))
      indexes.push_back(it->path().string());
    else if (EndsWith(name, ".safetensors"))
      files.push_back(it->path().string());
  }
  if (ec) return Status(ErrorCode::kIoError, path + ": cannot list the folder: " + ec.message());
  if (indexes.size() == 1) return LoadSharded(indexes[0], out);
  if (indexes.size() > 1)
    return Unsupported(path, "the folder holds " + std::to_string(indexes.size()) +
                                 " *.safetensors.index.json files");
  if (files.size() == 1) return LoadSingle(files[0], out);
  return Unsupported(path, "the folder holds " + std::to_string(files.size()) +
                               " *.safetensors files and no index");
}

}  // namespace

uint64_t InputCheckpoint::TotalBytes() const {
  uint64_t total = 0;
  for (const InputTensor& t : tensors) total += t.data.size;
  return total;
}

Result<InputCheckpoint> LoadCheckpoint(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st))
    return Status(ErrorCode::kIoError,
                  path + ": cannot open: " + (ec ? ec.message() : "no such file or folder"));
  InputCheckpoint out;
  Status status;
  if (fs::is_directory(st))
    status = LoadFolder(path, &out);
  else if (!fs::is_regular_file(st))
    status = Unsupported(path, "not a regular file or folder");
  else if (EndsWith(path, ".index.json"))
    status = LoadSharded(path, &out);
  else
    status = LoadSingle(path, &out);
  if (!status.ok()) return status;
  AssignRoles(&out.tensors);
  return out;
}

}  // namespace ckz
