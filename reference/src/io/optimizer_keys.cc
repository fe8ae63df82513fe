#include "io/optimizer_keys.h"

namespace ckz {

std::optional<Role> OptimizerStateRole(std::string_view key) {
  struct Entry {
    std::string_view key;
    Role role;
  };
  static constexpr Entry kKeys[] = {
      {"exp_avg", Role::kMoment1},       {"momentum_buffer", Role::kMoment1},
      {"grad_avg", Role::kMoment1},      {"exp_avg_sq", Role::kMoment2},
      {"square_avg", Role::kMoment2},    {"sum", Role::kMoment2},
      {"acc_delta", Role::kOther},       {"exp_inf", Role::kOther},
      {"max_exp_avg_sq", Role::kOther},
  };
  for (const Entry& e : kKeys)
    if (e.key == key) return e.role;
  return std::nullopt;
}

}  // namespace ckz
