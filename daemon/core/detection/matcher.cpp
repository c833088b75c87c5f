#include "core/detection/matcher.hpp"

#include "core/base/json_text.hpp"

namespace glasswatch::core {

namespace {

bool contains_ci(std::string_view hay, std::string_view needle) noexcept {
    if (needle.size() > hay.size()) return false;
    for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i)
        if (iequals_ascii(hay.substr(i, needle.size()), needle)) return true;
    return false;
}

const watched_account* watched(const watchlist& wl, const identity& who) {
    if (const auto* a = wl.account_by_id(who.id)) return a;
    return wl.account_by_upn(who.upn);
}

std::string outcome(const event& ev) {
    if (ev.success) return "succeeded";
    return ev.error_code != 0 ? "failed (" + std::to_string(ev.error_code) + ")" : "failed";
}

}  // namespace

bool is_sensitive_activity(std::string_view a) noexcept {
    static constexpr std::string_view words[] = {
        "password",
        "security info",
        "authentication method",
        "strongauthentication",
        "to role",
        "from role",
        "role assignment",
        "role eligib",
        "member to group",
        "member from group",
        "owner to group",
        "owner from group",
        "update user",
        "disable account",
        "enable account",
        "delete user",
        "restore user",
        "credential",
        "temporary access pass",
        "fido",
        "authenticator",
        "phone",
        "conditional access",
    };
    for (auto w : words)
        if (contains_ci(a, w)) return true;
    return false;
}

std::vector<match> match_event(const watchlist& wl, const event& ev) {
    std::vector<match> out;
    if (ev.kind == event_kind::sign_in) {
        if (const auto* a = watched(wl, ev.actor)) {
            out.push_back({std::string(rules::breakglass_signin), severity::critical, a->object_id,
                           a->label,
                           std::string(to_string(ev.signin)) + " sign-in " + outcome(ev)});
        }
        return out;
    }

    if (const auto* a = watched(wl, ev.actor)) {
        out.push_back({std::string(rules::breakglass_audit_actor), severity::critical, a->object_id,
                       a->label, "break-glass account performed \"" + ev.activity + "\""});
    }
    const watched_account* target_account = nullptr;
    std::string group_hit, policy_hit;
    for (const auto& t : ev.targets) {
        if (!target_account) target_account = watched(wl, t.who);
        if (group_hit.empty() && wl.is_group(t.who.id)) group_hit = t.who.id;
        if (policy_hit.empty() && wl.is_ca_policy(t.who.id)) policy_hit = t.who.id;
    }
    if (target_account) {
        severity sev = is_sensitive_activity(ev.activity) ? severity::critical : severity::high;
        out.push_back({std::string(rules::breakglass_audit_target), sev, target_account->object_id,
                       target_account->label, "\"" + ev.activity + "\" on break-glass account"});
    }
    if (!group_hit.empty()) {
        out.push_back({std::string(rules::watched_group_change), severity::critical, group_hit,
                       "break-glass group", "\"" + ev.activity + "\" on the break-glass group"});
    }
    if (!policy_hit.empty()) {
        out.push_back({std::string(rules::ca_policy_change), severity::critical, policy_hit,
                       "CA policy with break-glass exclusions",
                       "\"" + ev.activity +
                           "\" on a Conditional Access policy that excludes the "
                           "break-glass accounts"});
    }
    return out;
}

}  // namespace glasswatch::core
