// Posture checks, the pure parts: is the break-glass setup still sound?
//
//   Graph JSON (already fetched) --parse_*--> small structs --evaluate--> check results
//   check results + last persisted state --diff--> changes (new failure, changed, fixed)
//   changes --posture_alerts--> health-style alerts with their own rule names
//
// No I/O and no clock here: io/posture_checker fetches the endpoints and passes `now`.
//
// Error policy: a body that is not the expected JSON is a parse failure returned as text (the
// checker reports the check as cannot_check); nothing here throws for bad input.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/alerting/alert.hpp"
#include "core/base/time.hpp"
#include "core/config/config.hpp"

namespace glasswatch::core::posture {

// Built-in role template id of Global Administrator (the same in every tenant).
inline constexpr std::string_view global_admin_role = "62e90394-69f5-4237-9190-012177145e10";

// Graph application permissions each endpoint needs (documented in README "Posture checks").
inline constexpr std::string_view perm_users = "User.Read.All";
inline constexpr std::string_view perm_roles = "RoleManagement.Read.Directory";
inline constexpr std::string_view perm_groups = "GroupMember.Read.All";
inline constexpr std::string_view perm_ca = "Policy.Read.All";

// ---- what was fetched ----------------------------------------------------------------------

// How one Graph read ended. `denied` is a 403 (the app lacks the permission); `not_found` is a
// 404 (only meaningful for a single user); `failed` is anything else (network, 5xx, bad JSON).
enum class fetch_state { ok, not_found, denied, failed };
struct fetch_outcome {
    fetch_state state = fetch_state::failed;
    std::string error;  // human text without secrets, when not ok
};

struct user_info {
    fetch_outcome fetch;
    std::string id;
    std::string upn;
    bool account_enabled = false;
    // true: synchronised from on-premises AD; null/absent in Graph means cloud-only.
    bool on_premises_sync = false;
};

struct role_assignment {  // roleAssignments (active), or a schedule / eligibility schedule
    std::string role_definition_id;
    std::string directory_scope_id = "/";
    std::string assignment_type;  // schedules: "Assigned" | "Activated"; empty otherwise
    std::string expiration_type;  // schedules: "noExpiration" | "afterDateTime" | ...
    std::string expiration_end;   // schedules: endDateTime when time-bound
};

struct role_info {
    fetch_outcome active_fetch, schedule_fetch, eligible_fetch;
    std::vector<role_assignment> active;     // roleAssignments
    std::vector<role_assignment> schedules;  // roleAssignmentSchedules
    std::vector<role_assignment> eligible;   // roleEligibilitySchedules
};

struct group_info {
    std::string id;
    fetch_outcome fetch;
    std::vector<std::string> members;  // lower-case object ids
};

struct ca_policy {
    std::string id, display_name;
    std::string state;  // "enabled" | "disabled" | "enabledForReportingButNotEnforced"
    std::vector<std::string> include_users, exclude_users, include_groups, exclude_groups;
    std::vector<std::string> built_in_controls;  // grantControls.builtInControls
    bool has_grant_controls = false;  // any grant control (built-in, strength, terms, custom)
    bool has_session_controls = false;
    // Can this policy stop a sign-in? Enabled (not report-only) with any grant control: a
    // break-glass account cannot be counted on to meet mfa / compliantDevice / a strength.
    bool can_block() const noexcept { return state == "enabled" && has_grant_controls; }
};

struct ca_info {
    fetch_outcome fetch;
    std::vector<ca_policy> policies;
};

struct account_input {
    watched_account account;
    user_info user;
    role_info roles;
};

struct posture_input {
    std::vector<account_input> accounts;
    std::vector<group_info> groups;             // the watched groups
    std::vector<std::string> expected_members;  // lower-case ids
    ca_info ca;
};

// ---- parsing Graph bodies ------------------------------------------------------------------

// One user object (fills everything but `fetch`). False (and `error`) when it is not one.
bool parse_user(std::string_view body, user_info& out, std::string& error);
// A Graph collection page: appends the objects of "value" and returns the @odata.nextLink in
// `next_link` ("" on the last page). False (and `error`) when the body is not such a page.
bool parse_role_page(std::string_view body, std::vector<role_assignment>& out,
                     std::string& next_link, std::string& error);
bool parse_members_page(std::string_view body, std::vector<std::string>& out,
                        std::string& next_link, std::string& error);
bool parse_ca_page(std::string_view body, std::vector<ca_policy>& out, std::string& next_link,
                   std::string& error);

// ---- evaluation ----------------------------------------------------------------------------

enum class status { ok, fail, cannot_check };
std::string_view to_string(status s) noexcept;

// Check ids, and the alert rule each raises when it fails.
inline constexpr std::string_view check_account_exists = "account_exists";
inline constexpr std::string_view check_account_enabled = "account_enabled";
inline constexpr std::string_view check_cloud_only = "cloud_only";
inline constexpr std::string_view check_global_admin = "global_admin_permanent";
inline constexpr std::string_view check_group_membership = "group_membership";
inline constexpr std::string_view check_ca_excluded = "ca_excludes_accounts";
inline constexpr std::string_view check_ca_includes = "ca_includes_accounts";
inline constexpr std::string_view rule_fixed = "posture_fixed";
inline constexpr std::string_view rule_cannot_check = "posture_cannot_check";
std::string_view rule_of(std::string_view check) noexcept;  // "posture_account_missing", ...
severity severity_of(std::string_view check) noexcept;

struct check_result {
    std::string check;    // one of the check ids above
    std::string subject;  // account id, group id or CA policy id
    std::string label;    // human name of the subject (account label / UPN, policy name)
    status st = status::ok;
    std::string problem;     // what is wrong (fail) or why it cannot be checked; "" when ok
    std::string permission;  // cannot_check because of a 403: the missing permission
    std::string key() const { return check + "/" + subject; }
};

// Every check, in a stable order: per account (exists, enabled, cloud-only, Global Admin),
// per watched group (membership), per CA policy that can block (exclusions), per enabled CA
// policy that names a watched account (includes).
std::vector<check_result> evaluate(const posture_input& in);

// ---- what changed since the last check -----------------------------------------------------

// Persisted between checks (checkpoint row "posture"): the last definite state of each check.
struct state_entry {
    status st = status::ok;  // ok or fail (cannot_check keeps the previous definite state)
    std::string problem;
    micros since = 0;  // when this failing state was first seen
    // Stable per failing state: the alert id of a failure derives from it. It is computed from
    // the content (alerting transitions of this check so far + a hash of the problem), not the
    // clock, so two redundant instances that saw the same history raise the same alert ids.
    std::string episode;
    int occurrence = 0;  // alerting transitions (new failure or changed details) of this check
    std::string label;
    std::string permission;  // last cannot_check permission, "" when none
};
struct posture_state {
    micros checked_at = 0;
    std::map<std::string, state_entry> entries;  // check_result::key()
    std::string to_json() const;
    static std::optional<posture_state> from_json(std::string_view text);
};

enum class change_kind { new_failure, changed, fixed, cannot_check };
std::string_view to_string(change_kind k) noexcept;

struct change {
    change_kind kind = change_kind::new_failure;
    check_result result;   // for `fixed` of a vanished subject: st ok, problem ""
    std::string previous;  // the previous problem (changed / fixed)
    std::string episode;
    micros since = 0;
    bool vanished = false;  // fixed because the subject is gone (policy deleted or disabled)
};

struct diff_result {
    std::vector<change> changes;
    posture_state next;
};

// A failure alerts once per failing state: new, or still failing with other details. A check
// that passes again (or whose subject vanished, e.g. a deleted policy) is announced as fixed.
// A cannot_check caused by a missing permission is reported once per permission.
diff_result diff(const posture_state& previous, const std::vector<check_result>& current,
                 micros now);

std::vector<alert> posture_alerts(const alert_context& ctx, const std::vector<change>& changes,
                                  micros now);

// ---- reports -------------------------------------------------------------------------------

bool all_pass(const std::vector<check_result>& results) noexcept;
std::string render_text(const std::vector<check_result>& results);
std::string render_json(const std::vector<check_result>& results, micros now);

}  // namespace glasswatch::core::posture
