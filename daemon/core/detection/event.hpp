// The one event type every source format is normalized into.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/time.hpp"

namespace glasswatch::core {

enum class event_kind { sign_in, audit };

// Which wire format the record came from; both are first-class (DESIGN.md §2).
enum class record_format { graph_signin, graph_audit, diagnostic };

enum class signin_type { none, interactive, non_interactive, service_principal, managed_identity };

std::string_view to_string(event_kind k) noexcept;
std::string_view to_string(signin_type t) noexcept;

struct identity {
    std::string id;   // object id (user) or service principal id; lower-cased GUID if GUID
    std::string upn;  // lower-cased
    std::string display_name;
    std::string type;    // "user", "app", "User", "Group", "Policy", "Role", ... as given
    std::string app_id;  // for apps / service principals
    std::string ip;      // audit initiator ip
};

struct modified_property {
    std::string name;
    std::string old_value;  // JSON-in-string text as delivered
    std::string new_value;
};

struct target_resource {
    identity who;
    std::vector<modified_property> modified;
};

struct event {
    event_kind kind = event_kind::sign_in;
    record_format format = record_format::graph_signin;
    signin_type signin = signin_type::none;
    std::string category;   // diagnostic category ("SignInLogs") or Graph endpoint label
    std::string id;         // Graph id / properties.id: the event's stable identity
    micros time = 0;        // createdDateTime / activityDateTime
    std::string tenant_id;  // from the record when present
    std::string correlation_id;

    identity actor;                        // sign-in: the user / SP; audit: initiatedBy user or app
    std::vector<target_resource> targets;  // audit only

    // Result: sign-in errorCode (0 = success) or audit result.
    bool success = true;
    std::int64_t error_code = 0;
    std::string failure_reason;

    // Context an analyst needs.
    std::string activity;           // audit activityDisplayName / "Sign-in"
    std::string audit_category;     // audit properties.category (UserManagement, Policy, ...)
    std::string operation_type;     // audit operationType
    std::string logged_by_service;  // audit
    std::string ip;
    std::string city, state, country;
    std::string app_id, app_display_name;
    std::string resource_display_name;
    std::string client_app;
    std::string user_agent;
    std::string ca_status;   // conditionalAccessStatus
    std::string risk_level;  // riskLevelDuringSignIn / aggregated
    std::string risk_state;
    std::string auth_requirement;
    bool is_interactive = false;

    std::string raw;  // the record's bytes exactly as received
};

}  // namespace glasswatch::core
