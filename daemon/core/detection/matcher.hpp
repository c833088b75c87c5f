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

#include "core/config/config.hpp"
#include "core/config/rule_names.hpp"
#include "core/detection/event.hpp"
#include "core/detection/watchlist.hpp"

namespace glasswatch::core {

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
