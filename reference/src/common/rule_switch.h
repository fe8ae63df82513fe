// Validation rules that a test build can switch off one at a time, so that the conformance
// generator can show that each invalid vector is rejected by the rule it names and by no other
// (conformance/generator/vector_suite.cc). Only the library variant that the generator links is
// built with CKZ_RULE_SWITCHES (reference/CMakeLists.txt); in the library that ships,
// CKZ_RULE_ON(rule) is the constant true and nothing of this is compiled in.
//
// Labels are those of conformance/README.md ("T8", "H3", ...). Only rules whose error code
// other rules share have a switch, and only their checks that can be skipped without reading
// out of bounds; the generator argues every other rule by its error code or by construction.
#ifndef CKZ_COMMON_RULE_SWITCH_H_
#define CKZ_COMMON_RULE_SWITCH_H_

#ifdef CKZ_RULE_SWITCHES

#include <string>
#include <vector>

namespace ckz {

// False only for the rule switched off; aborts on a label that has no switch.
bool RuleOn(const char* label);
// Switches `label` off ("": none). Set it while no decode runs.
void SwitchRuleOff(const std::string& label);
// The labels that have a switch.
const std::vector<std::string>& SwitchableRules();

}  // namespace ckz

#define CKZ_RULE_ON(label) ::ckz::RuleOn(#label)

#else

#define CKZ_RULE_ON(label) true

#endif  // CKZ_RULE_SWITCHES

#endif  // CKZ_COMMON_RULE_SWITCH_H_
