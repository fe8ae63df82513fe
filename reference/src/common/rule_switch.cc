#include "common/rule_switch.h"

#ifdef CKZ_RULE_SWITCHES

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace ckz {
namespace {

std::string& Off() {
  static std::string off;
  return off;
}

void MustBeSwitchable(const std::string& label) {
  const std::vector<std::string>& rules = SwitchableRules();
  if (std::find(rules.begin(), rules.end(), label) != rules.end()) return;
  fprintf(stderr, "rule %s has no switch (common/rule_switch.cc)\n", label.c_str());
  abort();
}

}  // namespace

const std::vector<std::string>& SwitchableRules() {
  static const std::vector<std::string> rules = {
      "P6", "P8", "H2", "H3", "H4", "H5", "H6", "H7", "H8", "T1",  "T5",  "T6", "T7", "T8",
      "T10", "T11", "T12", "Q1", "Q3", "Q4", "Q6", "Q7", "Q8", "Q9", "Q11", "Q12", "F1", "F2", "F3", "F4", "F5", "F6", "F7",
      "F8", "F9", "F10", "F11", "M1", "M2", "M3", "M4", "L2", "L3", "L4", "LM1", "LM2", "LM3", "LM4", "R3"};
  return rules;
}

bool RuleOn(const char* label) {
  MustBeSwitchable(label);
  return Off() != label;
}

void SwitchRuleOff(const std::string& label) {
  if (!label.empty()) MustBeSwitchable(label);
  Off() = label;
}

}  // namespace ckz

#endif  // CKZ_RULE_SWITCHES
