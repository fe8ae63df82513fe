// The per-parameter state keys of PyTorch's optimizers (encoder side, not normative): which
// role each one gets (spec 8.3). One table for the torch reader (optimizer state_dicts) and the
// safetensors name rule (P.exp_avg_sq ...).
#ifndef CKZ_IO_OPTIMIZER_KEYS_H_
#define CKZ_IO_OPTIMIZER_KEYS_H_

#include <optional>
#include <string_view>

#include "ckz/archive.h"

namespace ckz {

// The role of the state tensor stored under `key` in torch.optim's per-parameter state, or
// nullopt when `key` is not a known per-parameter state (scalars such as `step`, `mu_product`):
//   Moment1: exp_avg (Adam, AdamW, Adamax, NAdam, RAdam), momentum_buffer (SGD, RMSprop),
//            grad_avg (centered RMSprop);
//   Moment2: exp_avg_sq (Adam, AdamW, NAdam, RAdam), square_avg (RMSprop, Adadelta), sum
//            (Adagrad): running averages or sums of the squared gradient;
//   Other:   acc_delta (Adadelta), exp_inf (Adamax), max_exp_avg_sq (AMSGrad): shaped like the
//            parameter but no moment the coding tools model.
std::optional<Role> OptimizerStateRole(std::string_view key);

// Adam's second moment: the only one whose scale the lossy ExCP planner's k formula is made for.
inline constexpr std::string_view kAdamSecondMoment = "exp_avg_sq";

}  // namespace ckz

#endif  // CKZ_IO_OPTIMIZER_KEYS_H_
