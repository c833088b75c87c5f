// The vocabulary of alert rules: every name the matcher can emit and every name an alert can
// carry. Here, below detection, because the configuration is checked against it (a sink's
// `rules`), and the matcher and the daemon's own alerts use the same constants.
#pragma once

#include <string_view>
#include <vector>

namespace glasswatch::core {

namespace rules {
inline constexpr std::string_view breakglass_signin = "breakglass_signin";
inline constexpr std::string_view breakglass_audit_actor = "breakglass_audit_actor";
inline constexpr std::string_view breakglass_audit_target = "breakglass_audit_target";
inline constexpr std::string_view watched_group_change = "watched_group_change";
inline constexpr std::string_view ca_policy_change = "ca_policy_change";
// Fail closed: a record that mentions a watched identifier but cannot be parsed.
inline constexpr std::string_view unparsed_candidate = "unparsed_candidate";
}  // namespace rules

// Every rule name the matcher can emit.
const std::vector<std::string_view>& all_rule_names();
// Every rule name an alert can carry, the daemon's own (tripwire, posture, sinks, test) included:
// what a sink's `rules` may name.
const std::vector<std::string_view>& known_rule_names();

}  // namespace glasswatch::core
