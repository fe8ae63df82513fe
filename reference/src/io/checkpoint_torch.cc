#include "io/checkpoint_torch.h"

#include <algorithm>
#include <set>

#include "ckz/json.h"
#include "format/rules.h"
#include "io/optimizer_keys.h"

namespace ckz {
namespace {

bool IsWholeStorage(const TorchTensor& t, const TorchStorage& s) {
  if (t.storage_offset != 0) return false;
  uint64_t numel = 1, expected_stride = 1;
  for (size_t d = t.shape.size(); d-- > 0;) {
    if (t.shape[d] != 1 && t.stride[d] != expected_stride) return false;  // not row-major
    expected_stride *= t.shape[d];
    numel *= t.shape[d];
  }
  return numel == s.numel;
}

// A name the writer accepts (spec rule N1) and no other tensor has yet: the path, else (the
// path is empty, too long, holds a NUL or a lone surrogate) the storage's key.
std::string TensorName(const std::string& prefix, const std::string* path,
                       const TorchStorage& storage, size_t index,
                       const std::set<std::string>& names) {
  std::vector<std::string> tries;
  if (path && !path->empty()) {
    tries.push_back(prefix + *path);
    tries.push_back(prefix + *path + "@" + storage.key);  // two paths that print alike
  }
  tries.push_back(prefix + "storage/" + storage.key);
  tries.push_back(prefix + "storage/" + std::to_string(index));
  for (const std::string& t : tries)
    if (!names.count(t) && CheckName(t, "").ok()) return t;
  return prefix + "storage/" + std::to_string(index) + "@" + std::to_string(names.size());
}

// The attribute name at the end of a path: "model/bn.running_mean" -> "running_mean".
std::string LastComponent(const std::string& path) {
  const size_t cut = path.find_last_of("/.");
  return cut == std::string::npos ? path : path.substr(cut + 1);
}

}  // namespace

bool MayBeParameter(const std::string& name, DType dtype) {
  const std::string last = LastComponent(name);
  const size_t dot = name.rfind('.');
  const bool state_name =
      dot != std::string::npos && OptimizerStateRole(std::string_view(name).substr(dot + 1));
  return DTypeIsFloat(dtype) && last != "running_mean" && last != "running_var" && !state_name;
}

void AddSafetensorsCandidates(const std::string& path_in_checkpoint, size_t first,
                              InputCheckpoint* out, TorchRoleInputs* roles) {
  bool sorted = out->tensors.size() - first > 1;
  for (size_t t = first; t < out->tensors.size(); ++t) {
    const TensorSpec& spec = out->tensors[t].spec;
    if (t > first && !(out->tensors[t - 1].spec.name < spec.name)) sorted = false;
    if (MayBeParameter(spec.name, spec.dtype)) roles->candidates.push_back(uint32_t(t));
  }
  if (sorted) roles->unordered_files.push_back(path_in_checkpoint);
}

void AddTorchFile(const std::string& path_in_checkpoint, const std::string& name_prefix,
                  ByteSpan file, const TorchFile& torch, InputCheckpoint* out,
                  TorchRoleInputs* roles) {
  const TorchPickle& pickle = torch.pickle;
  const std::vector<TensorPath> paths = TensorPaths(pickle);

  // Name and shape of each storage, from the first path that reaches one of its tensors.
  std::vector<int64_t> first_path(pickle.storages.size(), -1);
  for (size_t i = 0; i < paths.size(); ++i) {
    const uint32_t s = pickle.tensors[paths[i].tensor].storage;
    if (first_path[s] < 0) first_path[s] = int64_t(i);
  }

  // Storages in the order of their data in the file: that is the order of SourceFile.tensors.
  std::vector<uint32_t> order(pickle.storages.size());
  for (uint32_t s = 0; s < order.size(); ++s) order[s] = s;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return torch.storage_entries[a]->data_offset < torch.storage_entries[b]->data_offset;
  });

  SourceFileInfo info;
  info.path = path_in_checkpoint;
  info.format = SourceFormat::kTorchZip;
  std::vector<uint32_t> storage_tensor(pickle.storages.size());
  std::set<std::string> names;
  for (const InputTensor& t : out->tensors) names.insert(t.spec.name);
  uint64_t file_pos = 0;
  for (uint32_t s : order) {
    const ZipEntry& entry = *torch.storage_entries[s];
    info.prolog.insert(info.prolog.end(), file.data + file_pos, file.data + entry.data_offset);
    info.splits.push_back(info.prolog.size());
    file_pos = entry.data_offset + entry.size;

    const TorchStorage& storage = pickle.storages[s];
    InputTensor t;
    t.spec.dtype = storage.dtype;
    t.spec.shape = {storage.numel};
    const std::string* path = nullptr;
    if (first_path[s] >= 0) {
      const TensorPath& p = paths[size_t(first_path[s])];
      path = &p.path;
      const TorchTensor& view = pickle.tensors[p.tensor];
      if (IsWholeStorage(view, storage)) t.spec.shape = view.shape;
    }
    t.spec.name = TensorName(name_prefix, path, storage, s, names);
    names.insert(t.spec.name);
    t.data = file.subspan(size_t(entry.data_offset), size_t(entry.size));
    storage_tensor[s] = uint32_t(out->tensors.size());
    info.tensors.push_back(uint32_t(out->tensors.size()));
    out->tensors.push_back(std::move(t));
  }
  info.prolog.insert(info.prolog.end(), file.data + file_pos, file.data + file.size);

  // Each stored CRC-32 of a storage, moved to its prolog offset (minus the data cut out before).
  for (size_t i = 0; i < order.size(); ++i) {
    for (uint64_t at : torch.storage_entries[order[i]]->crc_offsets) {
      uint64_t removed = 0;
      for (uint32_t s : order) {
        const ZipEntry& e = *torch.storage_entries[s];
        if (e.data_offset + e.size <= at) removed += e.size;
      }
      info.crc32_patches.push_back({at - removed, uint32_t(i)});
    }
  }
  std::sort(info.crc32_patches.begin(), info.crc32_patches.end(),
            [](const Crc32Patch& a, const Crc32Patch& b) { return a.prolog_offset < b.prolog_offset; });
  out->files.push_back(std::move(info));

  // Role inputs: the optimizers, and the other floating whole storages in model order (batch
  // norm statistics are buffers, never parameters).
  std::vector<OptimizerState> found = FindOptimizers(pickle, storage_tensor, path_in_checkpoint);
  std::set<uint32_t> in_optimizer;
  for (const OptimizerState& o : found)
    for (const ParamState& p : o.params)
      for (const auto& [key, t] : p.tensors) in_optimizer.insert(t);
  std::set<uint32_t> taken;
  for (const TensorPath& p : paths) {
    const TorchTensor& view = pickle.tensors[p.tensor];
    const uint32_t t = storage_tensor[view.storage];
    if (in_optimizer.count(t) || taken.count(t) || !MayBeParameter(p.path, out->tensors[t].spec.dtype) ||
        !IsWholeStorage(view, pickle.storages[view.storage]))
      continue;
    taken.insert(t);
    roles->candidates.push_back(t);
  }
  for (OptimizerState& o : found) roles->optimizers.push_back(std::move(o));

  // Paths other than the one a tensor is named after: the whole tensor again (tied weights,
  // the same tensor twice) or a part of it (a view); and what the pickle carries opaquely.
  for (size_t i = 0; i < paths.size(); ++i) {
    const TorchTensor& view = pickle.tensors[paths[i].tensor];
    const InputTensor& stored = out->tensors[storage_tensor[view.storage]];
    const std::string path = name_prefix + paths[i].path;
    if (path == stored.spec.name || size_t(first_path[view.storage]) == i) continue;
    if (IsWholeStorage(view, pickle.storages[view.storage]) && view.shape == stored.spec.shape)
      roles->tied.emplace_back(path, stored.spec.name);
    else
      roles->views.push_back(path);
  }
  for (const std::string& g : pickle.opaque_globals)
    if (std::find(roles->objects.begin(), roles->objects.end(), g) == roles->objects.end())
      roles->objects.push_back(g);

  // The training step, when the checkpoint says it: {"step": N} or {"global_step": N}.
  const PickleValue& root = pickle.values[pickle.root];
  if (!out->step && root.kind == PickleValue::Kind::kDict)
    for (size_t i = 0; i + 1 < root.items.size(); i += 2) {
      const PickleValue& key = pickle.values[root.items[i]];
      const PickleValue& value = pickle.values[root.items[i + 1]];
      if (key.kind == PickleValue::Kind::kString &&
          (key.text == "step" || key.text == "global_step") &&
          value.kind == PickleValue::Kind::kInt)
        out->step = value.integer;
    }
}

void ApplyTorchRoles(const TorchRoleInputs& roles, InputCheckpoint* out) {
  // Optimizer state is never a weight, whatever the name rule said; it is a moment only when
  // linked to its parameter below.
  for (const OptimizerState& o : roles.optimizers)
    for (const ParamState& p : o.params)
      for (const auto& [key, t] : p.tensors) {
        out->tensors[t].spec.role = Role::kOther;
        out->tensors[t].spec.owner = -1;
      }
  if (roles.optimizers.size() > 1) {
    out->notes.push_back(std::to_string(roles.optimizers.size()) +
                         " optimizers in one checkpoint: their states are stored with role "
                         "'other' (which parameters each one covers is not recorded)");
    return;
  }
  if (roles.optimizers.empty()) return;
  if (!roles.unordered_files.empty()) {
    out->notes.push_back(roles.optimizers[0].where + ": optimizer state not linked to parameters (" +
                         roles.unordered_files[0] +
                         " lists its tensors sorted by name, which loses the parameter order "
                         "the optimizer refers to); its tensors are stored with role 'other'");
    return;
  }
  std::vector<uint32_t> parameters;
  if (!MapOptimizerRoles(roles.optimizers[0], roles.candidates, out, &parameters)) return;
  // Linked: the candidates left over are buffers, not parameters.
  const std::set<uint32_t> is_parameter(parameters.begin(), parameters.end());
  for (uint32_t t : roles.candidates)
    if (!is_parameter.count(t)) out->tensors[t].spec.role = Role::kOther;
}

void AddTorchPickleMetadata(const TorchRoleInputs& roles, InputCheckpoint* out) {
  constexpr size_t kMaxListed = 64;
  if (roles.tied.empty() && roles.views.empty() && roles.objects.empty()) return;
  auto list = [&](const std::vector<std::string>& items) {
    std::string s = "[";
    for (size_t i = 0; i < items.size() && i < kMaxListed; ++i)
      s += (i ? ", " : "") + JsonQuote(items[i]);
    return s + "]";
  };
  constexpr size_t kMaxTied = 4096;  // safetensors metadata names each one
  std::string json = "{\"tied\": {";
  for (size_t i = 0; i < roles.tied.size() && i < kMaxTied; ++i)
    json += (i ? ", " : "") + JsonQuote(roles.tied[i].first) + ": " + JsonQuote(roles.tied[i].second);
  json += "}, \"tied_total\": " + std::to_string(roles.tied.size()) + ", \"views\": " + list(roles.views) +
          ", \"views_total\": " + std::to_string(roles.views.size()) +
          ", \"objects\": " + list(roles.objects) + "}";
  out->metadata.push_back({kTorchPickleMetadataKey, json});
}

}  // namespace ckz
