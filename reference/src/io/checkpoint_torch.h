// torch.save files as part of an InputCheckpoint.
#ifndef CKZ_IO_CHECKPOINT_TORCH_H_
#define CKZ_IO_CHECKPOINT_TORCH_H_

#include <string>
#include <vector>

#include "ckz/checkpoint.h"
#include "ckz/torch.h"
#include "io/torch_roles.h"

namespace ckz {

// What a torch file contributes to role mapping, and to the description of its pickle.
struct TorchRoleInputs {
  std::vector<OptimizerState> optimizers;
  std::vector<uint32_t> candidates;  // input tensors that may be parameters, in model order
  // Files whose candidates are not in model order (a safetensors file sorted by name, as the
  // safetensors library writes them): no parameter order to match against.
  std::vector<std::string> unordered_files;
  // Other paths to stored tensors: the whole tensor under another name (tied weights:
  // path -> stored name), or a part of one (a view); and the globals carried opaquely.
  std::vector<std::pair<std::string, std::string>> tied;
  std::vector<std::string> views;
  std::vector<std::string> objects;
};

// A floating tensor named like a parameter: not an optimizer state by name, not a batch-norm
// statistic. `name` is a state_dict key or a path ending in one.
bool MayBeParameter(const std::string& name, DType dtype);

// Adds the tensors [first, end) of `out` (one safetensors file, in file order) as candidates.
void AddSafetensorsCandidates(const std::string& path_in_checkpoint, size_t first,
                              InputCheckpoint* out, TorchRoleInputs* roles);

// Adds a parsed torch.save file `file` as source file `path_in_checkpoint`: a TorchZip
// SourceFileInfo whose prolog is every byte but the storages' data (spec 8.2), and one input
// tensor per storage, named `name_prefix` + the first path that reaches one of its tensors
// ("model/fc1.weight"), shaped like that tensor when it is the whole storage, else 1-D.
void AddTorchFile(const std::string& path_in_checkpoint, const std::string& name_prefix,
                  ByteSpan file, const TorchFile& torch, InputCheckpoint* out,
                  TorchRoleInputs* roles);

// Links optimizer states to parameters (roles Moment1/Moment2 with owners), or notes why not.
void ApplyTorchRoles(const TorchRoleInputs& roles, InputCheckpoint* out);

// The metadata entry kTorchPickleMetadataKey (ckz/checkpoint.h) describing what the pickles hold besides the tensors
// named after their first path, when anything: a JSON object {"tied": {path: stored name},
// "tied_total": n, "views": [path...], "views_total": n, "objects": ["module.name"...]} (tied
// cut to 4096 entries, views and objects to 64). What a conversion to safetensors carries and what it cannot.
void AddTorchPickleMetadata(const TorchRoleInputs& roles, InputCheckpoint* out);

}  // namespace ckz

#endif  // CKZ_IO_CHECKPOINT_TORCH_H_
