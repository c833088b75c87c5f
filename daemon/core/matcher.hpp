// Watchlist rules over a normalized event. Each rule that fires yields one `match`; the alert
// id is derived from (tenant, event id, rule), so one event can raise several distinct alerts
// (e.g. a break-glass account that adds itself to a group is both actor and target).
//
// Field discipline: only identity fields count (sign-in user/service principal, audit initiator,
// audit target ids/UPNs). A watched id inside appliedConditionalAccessPolicies, additionalDetails
// or the JSON text of modifiedProperties is a decoy and must never alert.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "core/event.hpp"
#include "core/watchlist.hpp"

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

struct match {
    std::string rule;
    severity sev = severity::critical;
    std::string subject_id;     // the watched account / group / policy id
    std::string subject_label;  // its label from the config
    std::string why;            // short human explanation
};

std::vector<match> match_event(const watchlist& wl, const event& ev);

// True for audit activities that change how a break-glass account can be used (credentials,
// auth methods, roles, group membership, enable/disable/delete): these page as critical.
bool is_sensitive_activity(std::string_view activity) noexcept;

}  // namespace glasswatch::core
