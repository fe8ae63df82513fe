// Optimizer state -> parameter mapping for PyTorch checkpoints (encoder side, not normative).
//
// An optimizer's state_dict keys its per-parameter state by parameter id, in the order of its
// param_groups; the ids are positions in model.parameters(), which is the model state_dict's
// order without its buffers. So the sequence of parameter shapes the optimizer implies is
// matched against the model's tensors in order. The match is used only when it is the one
// order-preserving match; otherwise nothing is guessed and the states keep role Other.
#ifndef CKZ_IO_TORCH_ROLES_H_
#define CKZ_IO_TORCH_ROLES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ckz/checkpoint.h"
#include "ckz/torch.h"

namespace ckz {

// One parameter's optimizer state: its moments as (state key, input tensor index), e.g.
// ("exp_avg", 12). Only tensors that are whole storages are listed.
struct ParamState {
  int64_t id = 0;
  size_t group = 0;  // index of its param_group
  std::vector<std::pair<std::string, uint32_t>> tensors;
};

// An optimizer found in a pickle: its parameters' states in param_groups order. Within a
// group, parameters are in model order; how groups interleave is not recorded.
struct OptimizerState {
  std::string where;  // the file, for messages
  std::vector<ParamState> params;
};

// Finds every optimizer state_dict ({"state": {id: {...}}, "param_groups": [{"params": [...]}]})
// in `pickle`. `storage_tensor[s]` is the input tensor index of storage s; a tensor that is not
// a whole storage (a view) is left out.
std::vector<OptimizerState> FindOptimizers(const TorchPickle& pickle,
                                           const std::vector<uint32_t>& storage_tensor,
                                           const std::string& where);

// Sets roles and owners in `checkpoint` for `optimizer` against `candidates` (the input tensor
// indices that may be model parameters, in model order). The match assigns each parameter a
// candidate of its shape, injectively, keeping each param_group's order; it is used only when
// it is the only one. Each state gets the role OptimizerStateRole gives its key (Moment1,
// Moment2 owned by its parameter, which becomes a Weight; Other) and its key as state_key; `parameters` receives the matched candidates. Returns false (and appends a
// note saying why) when no unique match exists.
bool MapOptimizerRoles(const OptimizerState& optimizer, const std::vector<uint32_t>& candidates,
                       InputCheckpoint* checkpoint, std::vector<uint32_t>* parameters);

}  // namespace ckz

#endif  // CKZ_IO_TORCH_ROLES_H_
