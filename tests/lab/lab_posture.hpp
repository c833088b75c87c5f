// The lab's directory for posture checks: the break-glass users, their Global Administrator
// assignments (active / PIM schedules / eligibility), the break-glass group and the Conditional
// Access policies, served in Microsoft Graph v1.0 shapes:
//   GET /v1.0/users/{id}?$select=...                                   User.Read.All
//   GET /v1.0/roleManagement/directory/roleAssignments?$filter=principalId eq '{id}'
//   GET /v1.0/roleManagement/directory/roleAssignmentSchedules?$filter=...   (same filter)
//   GET /v1.0/roleManagement/directory/roleEligibilitySchedules?$filter=...
//   RoleManagement.Read.Directory GET /v1.0/groups/{id}/members?$select=id GroupMember.Read.All GET
//   /v1.0/identity/conditionalAccess/policies                      Policy.Read.All
// A permission listed in `deny` answers 403 Authorization_RequestDenied, like an app
// registration without that application permission.
//
// The initial state passes every posture check. The control API (POST /lab/posture, JSON)
// breaks and fixes each aspect; keys are applied in this order, any subset:
//   "reset": true                      back to the passing state
//   "accounts": {"bg1": {"enabled": false, "deleted": true, "synced": true,
//                        "role": "permanent"|"eligible"|"activated"|"time_bound"|"removed"}}
//   "group_members": ["bg1", "bg2", "admin" | "<object id>"]
//   "ca": {"<policy id>": {JSON merge patch of the policy; in includeUsers / excludeUsers /
//          includeGroups / excludeGroups "bg1", "bg2", "admin", "bg_group" stand for their ids}}
//   "deny": ["Policy.Read.All", ...]   permissions the app lacks ([] = none)
//   "page_size": N                     members / policies per page (0 = all on one page)
//   "next_link_host": "evil.example"   nextLinks point at another host ("" = off)
//   "pim_licensed": false              the PIM schedule endpoints answer 403
//                                      AadPremiumLicenseRequired (a tenant without P2)
// GET /lab/posture returns the state. Pure: no sockets, no clock; not thread-safe.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace glasswatch::lab {

namespace posture_ids {
inline constexpr std::string_view bg_group = "7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
inline constexpr std::string_view ca_require_mfa = "c0a1b2c3-d4e5-4f60-8172-8394a5b6c7d1";
inline constexpr std::string_view ca_block_legacy = "c0a1b2c3-d4e5-4f60-8172-8394a5b6c7d2";
inline constexpr std::string_view ca_report_only = "c0a1b2c3-d4e5-4f60-8172-8394a5b6c7d3";
inline constexpr std::string_view ca_disabled = "c0a1b2c3-d4e5-4f60-8172-8394a5b6c7d4";
}  // namespace posture_ids

class lab_posture {
public:
    lab_posture() { reset(); }

    struct answer {
        int status = 200;
        nlohmann::json body;        // the page / object when 200
        std::string code, message;  // Graph error when not 200
    };
    // True when `path` (no query) is one of the endpoints above.
    static bool owns(std::string_view path);
    // `host` builds @odata.context and nextLinks; `raw_query` is the text after '?'.
    answer handle(const std::string& path, const std::string& raw_query, const std::string& host);

    // The control API; false and `error` on bad input (then nothing changed).
    bool control(const nlohmann::json& spec, std::string& error);
    nlohmann::json to_json() const;
    void reset();

private:
    struct user {
        std::string id, upn;
        bool enabled = true, deleted = false, synced = false;
        std::string role = "permanent";
    };
    std::map<std::string, user> users_;  // by id
    std::vector<std::string> members_;
    std::vector<nlohmann::json> policies_;
    std::set<std::string> deny_;
    int page_size_ = 0;
    std::string next_link_host_;
    bool pim_licensed_ = true;
};

}  // namespace glasswatch::lab
