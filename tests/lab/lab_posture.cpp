#include "lab/lab_posture.hpp"

#include <algorithm>

#include "lab/lab_graph.hpp"
#include "lab/lab_internal.hpp"

namespace glasswatch::lab {

using nlohmann::json;
using namespace detail;

namespace {

constexpr std::string_view global_admin = "62e90394-69f5-4237-9190-012177145e10";
constexpr std::string_view roles_prefix = "/v1.0/roleManagement/directory/";

std::vector<std::string> split(const std::string& path) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < path.size()) {
        std::size_t j = path.find('/', i);
        if (j == std::string::npos) j = path.size();
        if (j > i) out.push_back(path.substr(i, j - i));
        i = j + 1;
    }
    return out;
}

// "bg1" / "bg2" / "admin" / "bg_group" -> the id; anything else is taken as an id.
std::string resolve(const std::string& name) {
    if (name == "bg1") return std::string(ids::bg1);
    if (name == "bg2") return std::string(ids::bg2);
    if (name == "admin") return std::string(ids::admin);
    if (name == "bg_group") return std::string(posture_ids::bg_group);
    return lower(name);
}

json ca_policy(std::string_view id, const char* name, const char* state, json users, json grant) {
    return {
        {"id", std::string(id)},
        {"displayName", name},
        {"createdDateTime", "2025-06-02T09:14:00Z"},
        {"modifiedDateTime", "2025-10-20T16:40:12Z"},
        {"state", state},
        {"conditions",
         {{"clientAppTypes", json::array({"all"})},
          {"applications",
           {{"includeApplications", json::array({"All"})}, {"excludeApplications", json::array()}}},
          {"users", std::move(users)}}},
        {"grantControls", std::move(grant)},
        {"sessionControls", nullptr}};
}

json users_condition(json include_users, json exclude_users, json exclude_groups) {
    return {{"includeUsers", std::move(include_users)},
            {"excludeUsers", std::move(exclude_users)},
            {"includeGroups", json::array()},
            {"excludeGroups", std::move(exclude_groups)},
            {"includeRoles", json::array()},
            {"excludeRoles", json::array()}};
}

json grant(std::initializer_list<const char*> controls) {
    json list = json::array();
    for (const char* c : controls)
        list.push_back(c);
    return {{"operator", "OR"},
            {"builtInControls", std::move(list)},
            {"customAuthenticationFactors", json::array()},
            {"termsOfUse", json::array()},
            {"authenticationStrength", nullptr}};
}

// The principal of `$filter=principalId eq '...'`, "" when there is no such filter.
std::string principal_filter(const std::string& raw_query, bool& bad) {
    bad = false;
    for (const auto& [k, v] : parse_params(raw_query)) {
        if (!iequals(k, "$filter")) continue;
        const std::string prefix = "principalid eq '";
        const std::string f = lower(v);
        if (f.rfind(prefix, 0) != 0 || f.size() < prefix.size() + 2 || f.back() != '\'') {
            bad = true;
            return {};
        }
        return f.substr(prefix.size(), f.size() - prefix.size() - 1);
    }
    return {};
}

}  // namespace

void lab_posture::reset() {
    users_.clear();
    users_[std::string(ids::bg1)] = {std::string(ids::bg1), std::string(ids::bg1_upn)};
    users_[std::string(ids::bg2)] = {std::string(ids::bg2), std::string(ids::bg2_upn)};
    user admin{std::string(ids::admin), std::string(ids::admin_upn)};
    admin.synced = true;  // an ordinary hybrid admin, not break-glass
    admin.role = "eligible";
    users_[admin.id] = admin;
    members_ = {std::string(ids::bg1), std::string(ids::bg2)};
    const json bg_users = json::array({std::string(ids::bg1), std::string(ids::bg2)});
    const json bg_group = json::array({std::string(posture_ids::bg_group)});
    policies_ = {
        ca_policy(posture_ids::ca_require_mfa, "Require MFA for all users", "enabled",
                  users_condition(json::array({"All"}), json::array(), bg_group), grant({"mfa"})),
        ca_policy(posture_ids::ca_block_legacy, "Block legacy authentication", "enabled",
                  users_condition(json::array({"All"}), bg_users, json::array()), grant({"block"})),
        ca_policy(posture_ids::ca_report_only, "Sign-in risk: require MFA (report-only)",
                  "enabledForReportingButNotEnforced",
                  users_condition(json::array({"All"}), json::array(), json::array()),
                  grant({"mfa"})),
        ca_policy(posture_ids::ca_disabled, "Require compliant device (retired)", "disabled",
                  users_condition(json::array({"All"}), json::array(), json::array()),
                  grant({"compliantDevice"})),
    };
    deny_.clear();
    page_size_ = 0;
    next_link_host_.clear();
    pim_licensed_ = true;
}

bool lab_posture::owns(std::string_view path) {
    const auto seg = split(std::string(path));
    if (seg.size() < 2 || seg[0] != "v1.0") return false;
    if (seg.size() == 3 && iequals(seg[1], "users")) return true;
    if (seg.size() == 4 && iequals(seg[1], "groups") && iequals(seg[3], "members")) return true;
    if (seg.size() == 4 && iequals(seg[1], "identity") && iequals(seg[2], "conditionalAccess") &&
        iequals(seg[3], "policies"))
        return true;
    return seg.size() == 4 && iequals(seg[1], "roleManagement") && iequals(seg[2], "directory") &&
           (iequals(seg[3], "roleAssignments") || iequals(seg[3], "roleAssignmentSchedules") ||
            iequals(seg[3], "roleEligibilitySchedules"));
}

lab_posture::answer lab_posture::handle(const std::string& path, const std::string& raw_query,
                                        const std::string& host) {
    const auto seg = split(path);
    const std::string v1 = "https://" + host + "/v1.0/";
    answer a;
    auto error = [&](int status, std::string code, std::string message) {
        a.status = status;
        a.code = std::move(code);
        a.message = std::move(message);
        return a;
    };
    auto need = [&](const char* permission) { return deny_.count(permission) == 0; };
    auto refuse = [&] {
        return error(403, "Authorization_RequestDenied",
                     "Insufficient privileges to complete the operation.");
    };
    // One page of `items` from the offset in $skiptoken, and a nextLink to the rest.
    auto page = [&](const std::vector<json>& items, const std::string& context,
                    const std::string& link_query) {
        std::size_t offset = 0;
        for (const auto& [k, v] : parse_params(raw_query))
            if (iequals(k, "$skiptoken")) offset = static_cast<std::size_t>(std::atoll(v.c_str()));
        const std::size_t n = page_size_ > 0 ? static_cast<std::size_t>(page_size_) : items.size();
        const std::size_t end = std::min(items.size(), offset + n);
        json value = json::array();
        for (std::size_t i = std::min(offset, items.size()); i < end; ++i)
            value.push_back(items[i]);
        a.body = {{"@odata.context", v1 + "$metadata#" + context}};
        if (end < items.size())
            a.body["@odata.nextLink"] = "https://" +
                                        (next_link_host_.empty() ? host : next_link_host_) + path +
                                        "?" + link_query + "$skiptoken=" + std::to_string(end);
        a.body["value"] = std::move(value);
        return a;
    };

    if (iequals(seg[1], "users")) {
        if (!need("User.Read.All")) return refuse();
        const std::string id = lower(seg[2]);
        auto it = users_.find(id);
        if (it == users_.end() || it->second.deleted)
            return error(404, "Request_ResourceNotFound",
                         "Resource '" + id +
                             "' does not exist or one of its queried reference-property objects "
                             "are not present.");
        const user& u = it->second;
        a.body = {{"@odata.context", v1 + "$metadata#users(id,userPrincipalName,accountEnabled,"
                                          "onPremisesSyncEnabled)/$entity"},
                  {"id", u.id},
                  {"userPrincipalName", u.upn},
                  {"accountEnabled", u.enabled},
                  {"onPremisesSyncEnabled", u.synced ? json(true) : json(nullptr)}};
        return a;
    }
    if (iequals(seg[1], "groups")) {
        if (!need("GroupMember.Read.All")) return refuse();
        const std::string id = lower(seg[2]);
        if (id != posture_ids::bg_group)
            return error(404, "Request_ResourceNotFound",
                         "Resource '" + id +
                             "' does not exist or one of its queried "
                             "reference-property objects are not present.");
        std::vector<json> items;
        for (const auto& m : members_)
            items.push_back({{"@odata.type", "#microsoft.graph.user"}, {"id", m}});
        return page(items, "directoryObjects(id)", "$select=id&");
    }
    if (iequals(seg[1], "identity")) {
        if (!need("Policy.Read.All")) return refuse();
        return page(policies_, "identity/conditionalAccess/policies", "");
    }
    // roleManagement/directory/...
    if (!need("RoleManagement.Read.Directory")) return refuse();
    bool bad = false;
    const std::string principal = principal_filter(raw_query, bad);
    if (bad)
        return error(400, "BadRequest",
                     "Invalid filter clause: only principalId eq '<id>' is supported here.");
    const std::string collection = seg[3];
    if (!pim_licensed_ && !iequals(collection, "roleAssignments"))
        return error(403, "AadPremiumLicenseRequired",
                     "The tenant needs an AAD Premium 2 license.");
    std::vector<json> items;
    const json ga_schedule_start = {{"startDateTime", "2025-01-10T08:00:00Z"},
                                    {"recurrence", nullptr}};
    for (const auto& [id, u] : users_) {
        if (u.deleted || (!principal.empty() && id != principal) || u.role == "removed") continue;
        const std::string item_id = "lab-" + u.role + "-" + id.substr(0, 8);
        json base_item = {{"id", item_id},
                          {"principalId", id},
                          {"roleDefinitionId", std::string(global_admin)},
                          {"directoryScopeId", "/"}};
        const bool active = u.role != "eligible";
        const bool eligible = u.role == "eligible" || u.role == "activated";
        if (iequals(collection, "roleAssignments")) {
            if (active) items.push_back(base_item);
        } else if (iequals(collection, "roleAssignmentSchedules")) {
            if (!active) continue;
            json s = base_item;
            s["memberType"] = "Direct";
            s["status"] = "Provisioned";
            s["assignmentType"] = u.role == "activated" ? "Activated" : "Assigned";
            json info = ga_schedule_start;
            info["expiration"] = u.role == "permanent"
                                     ? json{{"type", "noExpiration"},
                                            {"endDateTime", nullptr},
                                            {"duration", nullptr}}
                                     : json{{"type", "afterDateTime"},
                                            {"endDateTime", "2026-12-31T00:00:00Z"},
                                            {"duration", nullptr}};
            s["scheduleInfo"] = std::move(info);
            items.push_back(std::move(s));
        } else if (eligible) {
            json s = base_item;
            s["memberType"] = "Direct";
            s["status"] = "Provisioned";
            json info = ga_schedule_start;
            info["expiration"] = {
                {"type", "noExpiration"}, {"endDateTime", nullptr}, {"duration", nullptr}};
            s["scheduleInfo"] = std::move(info);
            items.push_back(std::move(s));
        }
    }
    a.body = {{"@odata.context", v1 + "$metadata#roleManagement/directory/" + collection},
              {"value", items}};
    return a;
}

bool lab_posture::control(const json& spec, std::string& error) {
    if (!spec.is_object()) {
        error = "the body must be a JSON object";
        return false;
    }
    // Work on a copy: nothing changes unless every key is valid.
    lab_posture next = *this;
    for (const auto& [key, v] : spec.items()) {
        if (key != "reset" && key != "accounts" && key != "group_members" && key != "ca" &&
            key != "deny" && key != "page_size" && key != "next_link_host" &&
            key != "pim_licensed") {
            error = "unknown key '" + key + "'";
            return false;
        }
    }
    if (auto it = spec.find("reset"); it != spec.end()) {
        if (!it->is_boolean()) {
            error = "'reset' must be a boolean";
            return false;
        }
        if (it->get<bool>()) next.reset();
    }
    if (auto it = spec.find("accounts"); it != spec.end()) {
        if (!it->is_object()) {
            error = "'accounts' must be an object keyed by bg1, bg2, admin or an object id";
            return false;
        }
        for (const auto& [name, change] : it->items()) {
            auto u = next.users_.find(resolve(name));
            if (u == next.users_.end() || !change.is_object()) {
                error = "unknown account '" + name + "' (or its change is not an object)";
                return false;
            }
            for (const auto& [k, val] : change.items()) {
                if ((k == "enabled" || k == "deleted" || k == "synced") && val.is_boolean()) {
                    (k == "enabled"   ? u->second.enabled
                     : k == "deleted" ? u->second.deleted
                                      : u->second.synced) = val.get<bool>();
                } else if (k == "role" && val.is_string() &&
                           (val == "permanent" || val == "eligible" || val == "activated" ||
                            val == "time_bound" || val == "removed")) {
                    u->second.role = val.get<std::string>();
                } else {
                    error = "accounts." + name + ": bad key or value '" + k + "'";
                    return false;
                }
            }
        }
    }
    if (auto it = spec.find("group_members"); it != spec.end()) {
        if (!it->is_array()) {
            error = "'group_members' must be an array";
            return false;
        }
        next.members_.clear();
        for (const auto& m : *it) {
            if (!m.is_string()) {
                error = "'group_members' must hold strings";
                return false;
            }
            next.members_.push_back(resolve(m.get<std::string>()));
        }
    }
    if (auto it = spec.find("ca"); it != spec.end()) {
        if (!it->is_object()) {
            error = "'ca' must be an object keyed by policy id";
            return false;
        }
        for (const auto& [id, patch] : it->items()) {
            auto p = std::find_if(next.policies_.begin(), next.policies_.end(),
                                  [&](const json& x) { return x.value("id", "") == lower(id); });
            if (p == next.policies_.end() || !patch.is_object()) {
                error = "unknown policy '" + id + "' (or its patch is not an object)";
                return false;
            }
            p->merge_patch(patch);
            (*p)["id"] = lower(id);
            auto& users = (*p)["conditions"]["users"];
            for (const char* list :
                 {"includeUsers", "excludeUsers", "includeGroups", "excludeGroups"}) {
                if (!users.contains(list) || !users[list].is_array()) users[list] = json::array();
                for (auto& x : users[list])
                    if (x.is_string() && x != "All") x = resolve(x.get<std::string>());
            }
        }
    }
    if (auto it = spec.find("deny"); it != spec.end()) {
        if (!it->is_array()) {
            error = "'deny' must be an array of permission names";
            return false;
        }
        next.deny_.clear();
        for (const auto& d : *it) {
            if (!d.is_string()) {
                error = "'deny' must hold strings";
                return false;
            }
            next.deny_.insert(d.get<std::string>());
        }
    }
    if (auto it = spec.find("page_size"); it != spec.end()) {
        if (!it->is_number_integer() || it->get<int>() < 0) {
            error = "'page_size' must be a non-negative integer";
            return false;
        }
        next.page_size_ = it->get<int>();
    }
    if (auto it = spec.find("next_link_host"); it != spec.end()) {
        if (!it->is_string()) {
            error = "'next_link_host' must be a string";
            return false;
        }
        next.next_link_host_ = it->get<std::string>();
    }
    if (auto it = spec.find("pim_licensed"); it != spec.end()) {
        if (!it->is_boolean()) {
            error = "'pim_licensed' must be a boolean";
            return false;
        }
        next.pim_licensed_ = it->get<bool>();
    }
    *this = std::move(next);
    return true;
}

json lab_posture::to_json() const {
    json accounts = json::object();
    for (const auto& [id, u] : users_)
        accounts[id] = {{"upn", u.upn},
                        {"enabled", u.enabled},
                        {"deleted", u.deleted},
                        {"synced", u.synced},
                        {"role", u.role}};
    return {{"accounts", accounts},
            {"group", std::string(posture_ids::bg_group)},
            {"group_members", members_},
            {"ca", policies_},
            {"deny", deny_},
            {"page_size", page_size_},
            {"next_link_host", next_link_host_},
            {"pim_licensed", pim_licensed_}};
}

}  // namespace glasswatch::lab
