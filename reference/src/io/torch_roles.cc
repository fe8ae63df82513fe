#include "io/torch_roles.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "io/optimizer_keys.h"

namespace ckz {
namespace {

const PickleValue* DictGet(const TorchPickle& p, const PickleValue& dict, std::string_view key) {
  for (size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    const PickleValue& k = p.values[dict.items[i]];
    if (k.kind == PickleValue::Kind::kString && k.text == key) return &p.values[dict.items[i + 1]];
  }
  return nullptr;
}

// The {"state": {...}, "param_groups": [...]} shape of torch.optim.Optimizer.state_dict().
bool IsOptimizerStateDict(const TorchPickle& p, const PickleValue& v) {
  if (v.kind != PickleValue::Kind::kDict) return false;
  const PickleValue* state = DictGet(p, v, "state");
  const PickleValue* groups = DictGet(p, v, "param_groups");
  return state && groups && state->kind == PickleValue::Kind::kDict &&
         groups->kind == PickleValue::Kind::kList;
}

}  // namespace

std::vector<OptimizerState> FindOptimizers(const TorchPickle& pickle,
                                           const std::vector<uint32_t>& storage_tensor,
                                           const std::string& where) {
  std::vector<OptimizerState> found;
  std::vector<bool> seen(pickle.values.size(), false);
  std::vector<uint32_t> stack = {pickle.root};
  while (!stack.empty()) {
    const uint32_t at = stack.back();
    stack.pop_back();
    if (at >= pickle.values.size() || seen[at]) continue;
    seen[at] = true;
    const PickleValue& v = pickle.values[at];
    if (!IsOptimizerStateDict(pickle, v)) {
      for (uint32_t child : v.items) stack.push_back(child);
      continue;
    }
    OptimizerState opt;
    opt.where = where;
    const PickleValue& state = *DictGet(pickle, v, "state");
    const auto& groups = DictGet(pickle, v, "param_groups")->items;
    // Each parameter's state, by id, found once (a hostile pickle may list many ids).
    std::unordered_map<int64_t, const PickleValue*> state_of;
    for (size_t i = 0; i + 1 < state.items.size(); i += 2) {
      const PickleValue& key = pickle.values[state.items[i]];
      const PickleValue& entry = pickle.values[state.items[i + 1]];
      if (key.kind == PickleValue::Kind::kInt && entry.kind == PickleValue::Kind::kDict)
        state_of.emplace(key.integer, &entry);
    }
    std::unordered_set<int64_t> listed;
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const PickleValue& group = pickle.values[groups[gi]];
      const PickleValue* params = group.kind == PickleValue::Kind::kDict
                                      ? DictGet(pickle, group, "params")
                                      : nullptr;
      if (!params || params->kind != PickleValue::Kind::kList) continue;
      for (uint32_t id_index : params->items) {
        const PickleValue& id = pickle.values[id_index];
        if (id.kind != PickleValue::Kind::kInt || !listed.insert(id.integer).second) continue;
        ParamState ps;
        ps.id = id.integer;
        ps.group = gi;
        auto found_state = state_of.find(ps.id);
        if (found_state != state_of.end()) {
          const PickleValue& entry = *found_state->second;
          for (size_t j = 0; j + 1 < entry.items.size(); j += 2) {
            const PickleValue& name = pickle.values[entry.items[j]];
            const PickleValue& value = pickle.values[entry.items[j + 1]];
            if (name.kind != PickleValue::Kind::kString || value.kind != PickleValue::Kind::kTensor)
              continue;
            const TorchTensor& t = pickle.tensors[value.tensor];
            const TorchStorage& s = pickle.storages[t.storage];
            uint64_t numel = 1;
            for (uint64_t d : t.shape) numel *= d;
            if (t.storage_offset == 0 && numel == s.numel)  // a whole storage
              ps.tensors.emplace_back(name.text, storage_tensor[t.storage]);
          }
        }
        opt.params.push_back(std::move(ps));
      }
    }
    found.push_back(std::move(opt));
  }
  return found;
}

bool MapOptimizerRoles(const OptimizerState& optimizer, const std::vector<uint32_t>& candidates,
                       InputCheckpoint* checkpoint, std::vector<uint32_t>* parameters) {
  std::vector<InputTensor>& tensors = checkpoint->tensors;
  auto note = [&](const std::string& why) {
    checkpoint->notes.push_back(optimizer.where + ": optimizer state not linked to parameters (" +
                                why + "); its tensors are stored with role 'other'");
    return false;
  };
  // The shape each parameter must have: that of its moments (all moments agree), or unknown
  // when it has no state yet.
  const size_t np = optimizer.params.size(), nc = candidates.size();
  if (np == 0) return false;
  if (np > nc) return note(std::to_string(np) + " parameters but " + std::to_string(nc) +
                           " candidate tensors");
  std::vector<const std::vector<uint64_t>*> shape(np, nullptr);
  for (size_t i = 0; i < np; ++i)
    for (const auto& [key, t] : optimizer.params[i].tensors) {
      if (!OptimizerStateRole(key)) continue;  // a scalar such as `step`
      if (shape[i] && *shape[i] != tensors[t].spec.shape)
        return note("the moments of parameter " + std::to_string(optimizer.params[i].id) +
                    " have different shapes");
      shape[i] = &tensors[t].spec.shape;
    }
  auto fits = [&](size_t i, size_t c) {
    return !shape[i] || *shape[i] == tensors[candidates[c]].spec.shape;
  };

  // Each group is a sequence in model order; groups interleave freely. A state is how far each
  // group has been matched (16 bits per group, up to 4 groups), walked over the candidates in
  // order; count[c][state] is the number of ways to reach it, capped at 2.
  std::vector<std::vector<size_t>> groups;
  for (size_t i = 0; i < np; ++i) {
    const size_t g = optimizer.params[i].group;
    if (groups.size() <= g) groups.resize(g + 1);
    groups[g].push_back(i);
  }
  groups.erase(std::remove_if(groups.begin(), groups.end(),
                              [](const std::vector<size_t>& g) { return g.empty(); }),
               groups.end());
  if (groups.size() > 4) return note(std::to_string(groups.size()) + " param groups");
  for (const auto& g : groups)
    if (g.size() >= 0xFFFF) return note("a param group of more than 65534 parameters");
  auto pos = [](uint64_t state, size_t g) { return size_t((state >> (16 * g)) & 0xFFFF); };
  constexpr size_t kMaxStates = size_t{1} << 22;
  std::vector<std::unordered_map<uint64_t, uint8_t>> count(nc + 1);
  count[0][0] = 1;
  size_t states = 1;
  for (size_t c = 0; c < nc; ++c) {
    for (const auto& entry : count[c]) {
      // Not a structured binding: clang 14 cannot capture one in a lambda (C++20).
      const uint64_t state = entry.first;
      const uint8_t n = entry.second;
      auto add = [&](uint64_t next) {
        uint8_t& m = count[c + 1][next];
        m = uint8_t(std::min(2, m + n));
      };
      add(state);  // candidate c is not a parameter
      for (size_t g = 0; g < groups.size(); ++g) {
        const size_t p = pos(state, g);
        if (p < groups[g].size() && fits(groups[g][p], c)) add(state + (uint64_t{1} << (16 * g)));
      }
    }
    states += count[c + 1].size();
    if (states > kMaxStates) return note("too many ways to try; the model is too large to match");
  }
  uint64_t done = 0;
  for (size_t g = 0; g < groups.size(); ++g) done |= uint64_t(groups[g].size()) << (16 * g);
  const auto final_state = count[nc].find(done);
  if (final_state == count[nc].end()) return note("no order-preserving match of parameter shapes");
  if (final_state->second > 1)
    return note("the parameter shapes match the model's tensors in more than one way");

  // The unique match, walking back: from each state exactly one predecessor has a count.
  std::vector<uint32_t> param_tensor(np);
  uint64_t state = done;
  for (size_t c = nc; c > 0; --c) {
    if (count[c - 1].count(state)) continue;  // candidate c-1 skipped
    for (size_t g = 0; g < groups.size(); ++g) {
      const size_t p = pos(state, g);
      const uint64_t before = state - (uint64_t{1} << (16 * g));
      if (p > 0 && fits(groups[g][p - 1], c - 1) && count[c - 1].count(before)) {
        param_tensor[groups[g][p - 1]] = candidates[c - 1];
        state = before;
        break;
      }
    }
  }
  for (size_t i = 0; i < np; ++i) {
    const uint32_t w = param_tensor[i];
    tensors[w].spec.role = Role::kWeight;
    tensors[w].spec.owner = -1;
    for (const auto& [key, t] : optimizer.params[i].tensors) {
      const Role role = OptimizerStateRole(key).value_or(Role::kOther);
      tensors[t].spec.role = role;
      tensors[t].spec.owner = role == Role::kOther ? -1 : int32_t(w);
      tensors[t].state_key = key;
    }
  }
  *parameters = std::move(param_tensor);
  return true;
}

}  // namespace ckz
