// LoadCheckpoint: recognises the input kind, maps its files, validates them, and describes the
// source files so that decompression rebuilds them byte for byte (their prologs are kept
// verbatim; only tensor bytes go through the codec).
#include <algorithm>
#include <filesystem>
#include <set>
#include <string_view>
#include <unordered_map>

#include "ckz/checkpoint.h"
#include "ckz/safetensors.h"
#include "ckz/torch.h"
#include "io/checkpoint_torch.h"
#include "io/json.h"
#include "io/optimizer_keys.h"
#include "common/bytes.h"
#include "format/rules.h"

namespace ckz {
namespace {

namespace fs = std::filesystem;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

constexpr char kAccepted[] =
    "accepted: a .safetensors file; a torch.save .pt/.pth/.bin file; a *.safetensors.index.json "
    "or pytorch_model.bin.index.json shard index; a checkpoint folder (a shard index with its shards, a Hugging Face Trainer "
    "checkpoint, or one checkpoint file with the files that go with it)";

// Files whose name says they hold tensors.
bool IsTensorFileName(std::string_view name) {
  return EndsWith(name, ".safetensors") || EndsWith(name, ".pt") || EndsWith(name, ".pth") ||
         EndsWith(name, ".bin") || EndsWith(name, ".ckpt");
}

// A zip's local header ("PK\3\4") or end record of an empty one: what torch.save writes.
bool LooksLikeZip(ByteSpan bytes) {
  return bytes.size >= 4 && bytes.data[0] == 'P' && bytes.data[1] == 'K' &&
         ((bytes.data[2] == 3 && bytes.data[3] == 4) || (bytes.data[2] == 5 && bytes.data[3] == 6));
}

// A pickle (the pre-1.6 torch.save format starts with one).
bool LooksLikePickle(ByteSpan bytes) { return bytes.size >= 2 && bytes.data[0] == 0x80; }

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
//  - T is optimizer state of P when its name is P + "." + KEY, KEY a per-parameter state key
//    of torch.optim (io/optimizer_keys.h: exp_avg, exp_avg_sq, momentum_buffer, square_avg,
//    sum, ...), where a tensor named P exists in the checkpoint with the same shape, T and P
//    both have a floating dtype, and P is a weight by this rule. T then takes KEY's role; a
//    Moment1 or Moment2 is owned by P.
//  - Otherwise T is a weight when its dtype is floating (F64 F32 F16 BF16) and its name is
//    not that of optimizer state (P.KEY) or of a batch-norm statistic (running_mean,
//    running_var), and other (owner -1) when it is not.
// ("P is a weight" is decided first for shorter names, so the rule is well defined for names
// like "a.exp_avg.exp_avg": "a.exp_avg" is a moment of "a", hence the longer name is a weight.)
void AssignRoles(std::vector<InputTensor>* tensors) {
  std::unordered_map<std::string_view, size_t> by_name;
  for (size_t i = 0; i < tensors->size(); ++i) by_name.emplace((*tensors)[i].spec.name, i);

  // Shorter names first: a tensor's candidate owner is decided before the tensor itself.
  std::vector<size_t> order(tensors->size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return (*tensors)[a].spec.name.size() < (*tensors)[b].spec.name.size();
  });
  for (size_t i : order) {
    InputTensor& input = (*tensors)[i];
    TensorSpec& t = input.spec;
    t.role = MayBeParameter(t.name, t.dtype) ? Role::kWeight : Role::kOther;
    t.owner = -1;
    const size_t dot = t.name.rfind('.');
    if (!DTypeIsFloat(t.dtype) || dot == std::string::npos) continue;
    const std::string_view key = std::string_view(t.name).substr(dot + 1);
    const std::optional<Role> role = OptimizerStateRole(key);
    if (!role) continue;
    auto it = by_name.find(std::string_view(t.name).substr(0, dot));
    if (it == by_name.end()) continue;
    const TensorSpec& p = (*tensors)[it->second].spec;
    if (p.shape != t.shape || !DTypeIsFloat(p.dtype) || p.role != Role::kWeight) continue;
    t.role = *role;
    t.owner = *role == Role::kOther ? -1 : int32_t(it->second);
    input.state_key = std::string(key);
  }
}

// LoadFile's work on the file's bytes (kept alive by the caller); `path` names it in messages.
Status LoadFileBytes(ByteSpan bytes, const std::string& path,
                     const std::string& path_in_checkpoint, bool keep_verbatim,
                     InputCheckpoint* out, TorchRoleInputs* roles) {
  auto keep_raw = [&](const std::string& why) {
    SourceFileInfo info;
    info.path = path_in_checkpoint;
    info.format = SourceFormat::kRaw;
    info.prolog.assign(bytes.begin(), bytes.end());
    out->files.push_back(std::move(info));
    if (!why.empty()) out->notes.push_back(path_in_checkpoint + ": kept verbatim (" + why + ")");
    return Status::Ok();
  };
  // Safetensors first: its 8-byte length may well start with 0x80, like a pickle.
  const bool safetensors = EndsWith(path, ".safetensors") || LooksLikeSafetensors(bytes);
  if (!safetensors &&
      (LooksLikeZip(bytes) || (IsTensorFileName(path) && LooksLikePickle(bytes)))) {
    Result<TorchFile> torch = ParseTorchFile(bytes);
    if (!torch.ok()) {
      if (keep_verbatim) return keep_raw(torch.status().ToString());
      return torch.status().WithContext(path);
    }
    // Inside a folder, a .pt's tensors are named after the file: "optimizer.pt:state/0/exp_avg".
    AddTorchFile(path_in_checkpoint, keep_verbatim ? path_in_checkpoint + ":" : "", bytes, *torch,
                 out, roles);
    if (out->kind.empty()) out->kind = "torch";
  } else {
    Result<SafetensorsHeader> header = ParseSafetensors(bytes);
    if (!header.ok()) {
      if (safetensors) return header.status().WithContext(path);
      if (keep_verbatim) return keep_raw("");
      return Unsupported(path, "neither a safetensors nor a torch.save file (" +
                                   header.status().message() + ")");
    }
    const size_t first = out->tensors.size();
    AddSafetensorsFile(path_in_checkpoint, bytes, *header, out);
    AddSafetensorsCandidates(path_in_checkpoint, first, out, roles);
    if (out->kind.empty()) out->kind = "safetensors";
  }
  return Status::Ok();
}

// pytorch_model.bin.index.json with its torch.save shards (what save_pretrained wrote before
// safetensors): every shard is a flat dict of tensors, named here without the file prefix of
// other folder members, as a safetensors-sharded checkpoint's are (weight_map keeps the names
// unique). The index is checked against each shard's tensor paths, not its storages: tied
// tensors share one storage but are listed (and pickled) under each name.
Status LoadTorchSharded(const std::string& folder, const std::string& index_name,
                        std::set<std::string>* in_shards, InputCheckpoint* out,
                        TorchRoleInputs* roles) {
  const std::string index_path = folder + "/" + index_name;
  Result<MappedFile> index_file = MappedFile::Open(index_path);
  if (!index_file.ok()) return index_file.status();
  Result<ShardIndex> index = ParseShardIndex(index_file->bytes());
  if (!index.ok()) return index.status().WithContext(index_path);
  std::unordered_map<std::string_view, std::string_view> shard_of;
  for (const auto& [tensor, shard] : index->weight_map) shard_of.emplace(tensor, shard);
  const std::string base = fs::path(index_name).parent_path().generic_string();
  for (const std::string& shard : index->shards) {
    const std::string name = base.empty() ? shard : base + "/" + shard;
    const std::string shard_path = folder + "/" + name;
    Result<MappedFile> file = MappedFile::Open(shard_path);
    if (!file.ok()) return file.status().WithContext(index_path + ": shard " + shard);
    Result<TorchFile> torch = ParseTorchFile(file->bytes());
    if (!torch.ok()) return torch.status().WithContext(shard_path);
    for (const TensorPath& p : TensorPaths(torch->pickle)) {
      auto it = shard_of.find(p.path);
      if (it == shard_of.end() || it->second != shard)
        return Status(ErrorCode::kShardIndexMalformed,
                      index_path + ": tensor '" + p.path + "' of shard '" + shard + "' is " +
                          (it == shard_of.end() ? std::string("not in weight_map")
                                                : "in '" + std::string(it->second) +
                                                      "' by weight_map"));
      shard_of.erase(it);  // a second copy of the name is then reported
    }
    AddTorchFile(name, "", file->bytes(), *torch, out, roles);
    out->mappings.push_back(std::move(*file));
    in_shards->insert(name);
  }
  for (const auto& [tensor, shard] : index->weight_map)  // in weight_map order: deterministic
    if (shard_of.count(tensor))
      return Status(ErrorCode::kShardIndexMalformed, index_path + ": weight_map puts tensor '" +
                                                         tensor + "' in '" + shard +
                                                         "', which does not hold it");
  return Status::Ok();
}

// Loads one file as source file `path_in_checkpoint`: safetensors, a torch.save file, or —
// with `keep_verbatim` (files of a folder checkpoint) — a Raw file when it is neither, or when
// it cannot be read safely (the reason goes to the notes).
Status LoadFile(const std::string& path, const std::string& path_in_checkpoint,
                bool keep_verbatim, InputCheckpoint* out, TorchRoleInputs* roles) {
  Result<MappedFile> file = MappedFile::Open(path);
  if (!file.ok()) return file.status();
  CKZ_RETURN_IF_ERROR(
      LoadFileBytes(file->bytes(), path, path_in_checkpoint, keep_verbatim, out, roles));
  out->mappings.push_back(std::move(*file));
  return Status::Ok();
}

// A pytorch_model.bin.index.json named on its own: the index (kept verbatim) and its shards.
Status LoadTorchShardIndex(const std::string& index_path, InputCheckpoint* out,
                           TorchRoleInputs* roles) {
  const fs::path p(index_path);
  const std::string name = p.filename().string();
  CKZ_RETURN_IF_ERROR(LoadFile(index_path, name, true, out, roles));
  std::set<std::string> in_shards;
  std::string folder = p.parent_path().string();
  if (folder.empty()) folder = ".";
  CKZ_RETURN_IF_ERROR(LoadTorchSharded(folder, name, &in_shards, out, roles));
  out->kind = "torch-sharded";
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

// A folder is a checkpoint when it holds a shard index, or a Hugging Face Trainer checkpoint
// (trainer_state.json or optimizer.pt), or exactly one tensor file (with or without other
// files). Several tensor files and neither of those: a history, not one checkpoint.
Status LoadFolder(const std::string& path, InputCheckpoint* out, TorchRoleInputs* roles) {
  std::vector<std::string> files;  // relative paths, sorted
  std::error_code ec;
  for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (name[0] == '.') {
      if (it->is_directory(type_ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(type_ec) && !EndsWith(name, ".ckz"))
      files.push_back(fs::relative(it->path(), path).generic_string());
  }
  if (ec) return Status(ErrorCode::kIoError, path + ": cannot list the folder: " + ec.message());
  std::sort(files.begin(), files.end());

  // What the folder is, from its own files (not its sub-folders': a history's checkpoint-N
  // folders each look like a checkpoint).
  std::vector<std::string> indexes, torch_indexes;
  size_t tensor_files = 0;
  bool trainer = false;
  for (const std::string& f : files) {
    if (f.find('/') != std::string::npos) continue;
    const std::string name = f;
    if (EndsWith(name, ".safetensors.index.json")) indexes.push_back(f);
    if (EndsWith(name, ".bin.index.json")) torch_indexes.push_back(f);
    if (IsTensorFileName(name)) ++tensor_files;
    if (name == "trainer_state.json" || name == "optimizer.pt" || name == "optimizer.bin")
      trainer = true;
  }
  if (indexes.size() > 1)
    return Unsupported(path, "the folder holds " + std::to_string(indexes.size()) +
                                 " *.safetensors.index.json files");
  if (indexes.size() + torch_indexes.size() > 1)
    return Unsupported(path, "the folder holds " +
                                 std::to_string(indexes.size() + torch_indexes.size()) +
                                 " shard index files (*.safetensors.index.json, *.bin.index.json)");
  if (indexes.empty() && torch_indexes.empty() && !trainer) {
    if (tensor_files == 0) return Unsupported(path, "the folder holds no checkpoint file");
    if (tensor_files > 1)
      return Unsupported(path, "the folder holds " + std::to_string(tensor_files) +
                                   " checkpoint files and no shard index or Trainer state: a "
                                   "history of checkpoints ('ckz compress FOLDER -o OUTDIR' "
                                   "chains them), not one checkpoint");
    if (files.size() == 1) return LoadFile(path + "/" + files[0], files[0], false, out, roles);
  }

  // A folder checkpoint: every file, each restored under its own name.
  std::set<std::string> in_shards;
  if (!indexes.empty()) {
    CKZ_RETURN_IF_ERROR(LoadSharded(path + "/" + indexes[0], out));
    const std::string base = fs::path(indexes[0]).parent_path().generic_string();
    for (const SourceFileInfo& f : out->files)
      in_shards.insert(base.empty() ? f.path : base + "/" + f.path);
    for (SourceFileInfo& f : out->files) f.path = base.empty() ? f.path : base + "/" + f.path;
  }
  if (!torch_indexes.empty())
    CKZ_RETURN_IF_ERROR(LoadTorchSharded(path, torch_indexes[0], &in_shards, out, roles));
  for (const std::string& f : files) {
    if (in_shards.count(f)) continue;
    CKZ_RETURN_IF_ERROR(LoadFile(path + "/" + f, f, true, out, roles));
    out->kind = "folder";
    if (f == "trainer_state.json") {
      // A Trainer checkpoint's step: trainer_state.json's "global_step".
      const ByteSpan json = out->mappings.back().bytes();
      Result<JsonValue> state = ParseJson(json);
      const JsonValue* step = state.ok() ? state->Find("global_step") : nullptr;
      if (step && step->AsUint64() && *step->AsUint64() <= uint64_t(INT64_MAX))
        out->step = int64_t(*step->AsUint64());
    }
  }
  return Status::Ok();
}

}  // namespace

uint64_t InputCheckpoint::TotalFileBytes() const {
  uint64_t total = 0;
  for (const MappedFile& m : mappings) total += m.bytes().size;
  return total;
}

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
  TorchRoleInputs roles;
  Status status;
  if (fs::is_directory(st))
    status = LoadFolder(path, &out, &roles);
  else if (!fs::is_regular_file(st))
    status = Unsupported(path, "not a regular file or folder");
  else if (EndsWith(path, ".bin.index.json"))
    status = LoadTorchShardIndex(path, &out, &roles);
  else if (EndsWith(path, ".index.json"))
    status = LoadSharded(path, &out);
  else
    status = LoadFile(path, BaseName(path), false, &out, &roles);
  if (!status.ok()) return status;
  AssignRoles(&out.tensors);
  ApplyTorchRoles(roles, &out);
  AddTorchPickleMetadata(roles, &out);
  return out;
}

Result<InputCheckpoint> LoadCheckpointFromMemory(ByteSpan bytes, const std::string& name) {
  InputCheckpoint out;
  TorchRoleInputs roles;
  CKZ_RETURN_IF_ERROR(LoadFileBytes(bytes, name, name, false, &out, &roles));
  AssignRoles(&out.tensors);
  ApplyTorchRoles(roles, &out);
  return out;
}

}  // namespace ckz
