#include "core/alerting/posture.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/base/crypto.hpp"
#include "core/base/json_field.hpp"
#include "core/base/json_text.hpp"

namespace glasswatch::core::posture {

using nlohmann::json;

namespace {

// Graph answers are untrusted: a depth limit keeps a hostile body from exhausting the stack.
constexpr int max_depth = 64;

bool parse_body(std::string_view body, json& out, std::string& error) {
    int depth = 0, max_seen = 0;
    bool in_string = false, escaped = false;
    for (char c : body) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            max_seen = std::max(max_seen, ++depth);
        } else if (c == '}' || c == ']') {
            --depth;
        }
    }
    if (max_seen > max_depth) {
        error = "JSON nested too deeply";
        return false;
    }
    out = json::parse(body, nullptr, false);
    if (out.is_discarded() || !out.is_object()) {
        error = "not a JSON object";
        return false;
    }
    return true;
}

std::vector<std::string> lower_list(const json& j, const char* key) {
    std::vector<std::string> out;
    auto it = j.find(key);
    if (it == j.end() || !it->is_array()) return out;
    for (const auto& v : *it)
        if (v.is_string()) out.push_back(to_lower_ascii(v.get<std::string>()));
    return out;
}

// The "value" array of a collection page (parsed into `page`), and its nextLink.
const json* page_values(std::string_view body, json& page, std::string& next_link,
                        std::string& error) {
    if (!parse_body(body, page, error)) return nullptr;
    auto it = page.find("value");
    if (it == page.end() || !it->is_array()) {
        error = "no \"value\" array in the Graph page";
        return nullptr;
    }
    next_link = json_string(page, "@odata.nextLink");
    return &*it;
}

bool contains(const std::vector<std::string>& v, std::string_view x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

bool parse_user(std::string_view body, user_info& out, std::string& error) {
    json j;
    if (!parse_body(body, j, error)) return false;
    out.id = to_lower_ascii(json_string(j, "id"));
    out.upn = json_string(j, "userPrincipalName");
    auto en = j.find("accountEnabled");
    if (out.id.empty() || en == j.end() || !en->is_boolean()) {
        error = "user object without id or accountEnabled";
        return false;
    }
    out.account_enabled = en->get<bool>();
    auto sync = j.find("onPremisesSyncEnabled");
    out.on_premises_sync = sync != j.end() && sync->is_boolean() && sync->get<bool>();
    return true;
}

bool parse_role_page(std::string_view body, std::vector<role_assignment>& out,
                     std::string& next_link, std::string& error) {
    json j;
    const json* values = page_values(body, j, next_link, error);
    if (values == nullptr) return false;
    for (const auto& v : *values) {
        if (!v.is_object()) continue;
        role_assignment a;
        a.role_definition_id = to_lower_ascii(json_string(v, "roleDefinitionId"));
        if (auto scope = json_string(v, "directoryScopeId"); !scope.empty())
            a.directory_scope_id = scope;
        a.assignment_type = json_string(v, "assignmentType");
        if (auto si = v.find("scheduleInfo"); si != v.end() && si->is_object()) {
            if (auto ex = si->find("expiration"); ex != si->end() && ex->is_object()) {
                a.expiration_type = json_string(*ex, "type");
                a.expiration_end = json_string(*ex, "endDateTime");
            }
        }
        out.push_back(std::move(a));
    }
    return true;
}

bool parse_members_page(std::string_view body, std::vector<std::string>& out,
                        std::string& next_link, std::string& error) {
    json j;
    const json* values = page_values(body, j, next_link, error);
    if (values == nullptr) return false;
    for (const auto& v : *values)
        if (v.is_object() && !json_string(v, "id").empty())
            out.push_back(to_lower_ascii(json_string(v, "id")));
    return true;
}

bool parse_ca_page(std::string_view body, std::vector<ca_policy>& out, std::string& next_link,
                   std::string& error) {
    json j;
    const json* values = page_values(body, j, next_link, error);
    if (values == nullptr) return false;
    for (const auto& v : *values) {
        if (!v.is_object()) continue;
        ca_policy p;
        p.id = to_lower_ascii(json_string(v, "id"));
        p.display_name = json_string(v, "displayName");
        p.state = json_string(v, "state");
        if (auto c = v.find("conditions"); c != v.end() && c->is_object()) {
            if (auto u = c->find("users"); u != c->end() && u->is_object()) {
                p.include_users = lower_list(*u, "includeUsers");
                p.exclude_users = lower_list(*u, "excludeUsers");
                p.include_groups = lower_list(*u, "includeGroups");
                p.exclude_groups = lower_list(*u, "excludeGroups");
            }
        }
        if (auto g = v.find("grantControls"); g != v.end() && g->is_object()) {
            p.built_in_controls = lower_list(*g, "builtInControls");
            // Any grant control at all can stop a break-glass sign-in.
            p.has_grant_controls = !p.built_in_controls.empty();
            for (const char* k :
                 {"authenticationStrength", "termsOfUse", "customAuthenticationFactors"}) {
                auto it = g->find(k);
                if (it != g->end() && !it->is_null() && !(it->is_array() && it->empty()))
                    p.has_grant_controls = true;
            }
        }
        if (auto s = v.find("sessionControls"); s != v.end() && s->is_object() && !s->empty())
            p.has_session_controls = true;
        // "All" is a keyword, not an id; keep its spelling comparable.
        for (auto* list : {&p.include_users, &p.exclude_users})
            for (auto& u : *list)
                if (u == "all") u = "All";
        out.push_back(std::move(p));
    }
    return true;
}

std::string_view to_string(status s) noexcept {
    switch (s) {
        case status::ok:
            return "ok";
        case status::fail:
            return "fail";
        case status::cannot_check:
            return "cannot_check";
    }
    return "cannot_check";
}

std::string_view to_string(change_kind k) noexcept {
    switch (k) {
        case change_kind::new_failure:
            return "new_failure";
        case change_kind::changed:
            return "changed";
        case change_kind::fixed:
            return "fixed";
        case change_kind::cannot_check:
            return "cannot_check";
    }
    return "cannot_check";
}

std::string_view rule_of(std::string_view check) noexcept {
    if (check == check_account_exists) return "posture_account_missing";
    if (check == check_account_enabled) return "posture_account_disabled";
    if (check == check_cloud_only) return "posture_synced";
    if (check == check_global_admin) return "posture_role_not_permanent";
    if (check == check_group_membership) return "posture_group_membership";
    if (check == check_ca_excluded) return "posture_ca_not_excluded";
    if (check == check_ca_includes) return "posture_ca_includes";
    return "posture_check";
}

severity severity_of(std::string_view check) noexcept {
    // A missing/disabled account or a blocking policy without the exclusion means the
    // emergency door is shut right now; the others weaken it.
    if (check == check_account_exists || check == check_account_enabled ||
        check == check_ca_excluded)
        return severity::critical;
    return severity::high;
}

// ---- evaluation ------------------------------------------------------------------------------

namespace {

check_result result(std::string_view check, std::string subject, std::string label) {
    check_result r;
    r.check = std::string(check);
    r.subject = std::move(subject);
    r.label = std::move(label);
    return r;
}

check_result& cannot(check_result& r, const fetch_outcome& f, std::string_view permission) {
    r.st = status::cannot_check;
    if (f.state == fetch_state::denied) {
        r.permission = std::string(permission);
        r.problem = "cannot check: missing permission " + r.permission;
    } else {
        r.problem =
            "cannot check: " + (f.error.empty() ? std::string("Graph read failed") : f.error);
    }
    return r;
}

check_result& fail(check_result& r, std::string problem) {
    r.st = status::fail;
    r.problem = std::move(problem);
    return r;
}

std::string account_label(const watched_account& a) {
    if (!a.label.empty()) return a.label;
    if (!a.upn.empty()) return a.upn;
    return a.object_id;
}

bool holds_ga(const role_assignment& a) {
    return a.role_definition_id == global_admin_role && a.directory_scope_id == "/";
}

check_result global_admin(const account_input& ai, const std::string& label) {
    check_result r = result(check_global_admin, ai.account.object_id, label);
    const role_info& ri = ai.roles;
    if (ri.active_fetch.state != fetch_state::ok) return cannot(r, ri.active_fetch, perm_roles);
    const bool active = std::any_of(ri.active.begin(), ri.active.end(), holds_ga);
    const bool eligible = ri.eligible_fetch.state == fetch_state::ok &&
                          std::any_of(ri.eligible.begin(), ri.eligible.end(), holds_ga);
    if (!active) {
        if (eligible)
            return fail(r,
                        "holds Global Administrator only as PIM-eligible (no active assignment)");
        return fail(r, "does not hold the Global Administrator role");
    }
    if (ri.schedule_fetch.state == fetch_state::denied)
        return cannot(r, ri.schedule_fetch, perm_roles);
    // Without PIM (no schedules to read) every active assignment is permanent.
    if (ri.schedule_fetch.state != fetch_state::ok) return r;
    std::vector<const role_assignment*> ga;
    for (const auto& s : ri.schedules)
        if (holds_ga(s)) ga.push_back(&s);
    if (ga.empty()) return r;
    for (const auto* s : ga)
        if (s->assignment_type != "Activated" && s->expiration_type == "noExpiration") return r;
    for (const auto* s : ga)
        if (s->assignment_type == "Activated")
            return fail(r,
                        "Global Administrator is active only through a PIM activation (eligible, "
                        "not permanently assigned)");
    std::string until = ga.front()->expiration_end.empty()
                            ? ga.front()->expiration_type
                            : "expires " + ga.front()->expiration_end;
    return fail(r, "Global Administrator assignment is time-bound (" + until + "), not permanent");
}

std::string join_labels(const std::vector<std::string>& ids,
                        const std::map<std::string, std::string>& labels) {
    std::string out;
    for (const auto& id : ids) {
        if (!out.empty()) out += ", ";
        auto it = labels.find(id);
        out += it != labels.end() && it->second != id ? it->second + " (" + id + ")" : id;
    }
    return out;
}

}  // namespace

std::vector<check_result> evaluate(const posture_input& in) {
    std::vector<check_result> out;
    std::map<std::string, std::string> labels;
    for (const auto& ai : in.accounts)
        labels[ai.account.object_id] = account_label(ai.account);

    for (const auto& ai : in.accounts) {
        const std::string& id = ai.account.object_id;
        const std::string label = account_label(ai.account);
        check_result exists = result(check_account_exists, id, label);
        check_result enabled = result(check_account_enabled, id, label);
        check_result cloud = result(check_cloud_only, id, label);
        const user_info& u = ai.user;
        if (u.fetch.state == fetch_state::not_found) {
            fail(exists, "the account does not exist (deleted, or the object id is wrong)");
            fetch_outcome gone{fetch_state::failed, "the account does not exist"};
            cannot(enabled, gone, perm_users);
            cannot(cloud, gone, perm_users);
        } else if (u.fetch.state != fetch_state::ok) {
            cannot(exists, u.fetch, perm_users);
            cannot(enabled, u.fetch, perm_users);
            cannot(cloud, u.fetch, perm_users);
        } else {
            if (!u.account_enabled) fail(enabled, "the account is disabled (accountEnabled false)");
            if (u.on_premises_sync)
                fail(cloud,
                     "the account is synchronised from on-premises (onPremisesSyncEnabled true): "
                     "it must be cloud-only");
        }
        out.push_back(std::move(exists));
        out.push_back(std::move(enabled));
        out.push_back(std::move(cloud));
        out.push_back(global_admin(ai, label));
    }

    // Who is in each watched group (as fetched, or as expected when it could not be read).
    std::map<std::string, std::vector<std::string>> members_of;
    for (const auto& g : in.groups) {
        check_result r = result(check_group_membership, g.id, "group " + g.id);
        if (g.fetch.state != fetch_state::ok) {
            cannot(r, g.fetch, perm_groups);
            members_of[g.id] = in.expected_members;
        } else {
            members_of[g.id] = g.members;
            std::vector<std::string> unexpected, missing;
            for (const auto& m : g.members)
                if (!contains(in.expected_members, m)) unexpected.push_back(m);
            for (const auto& m : in.expected_members)
                if (!contains(g.members, m)) missing.push_back(m);
            std::sort(unexpected.begin(), unexpected.end());
            std::sort(missing.begin(), missing.end());
            std::string problem;
            if (!unexpected.empty())
                problem = "unexpected member(s): " + join_labels(unexpected, labels);
            if (!missing.empty())
                problem += (problem.empty() ? "" : "; ") +
                           ("missing member(s): " + join_labels(missing, labels));
            if (!problem.empty()) fail(r, problem);
        }
        out.push_back(std::move(r));
    }

    if (in.ca.fetch.state != fetch_state::ok) {
        // One result per check covering every policy ("*"): the previous per-policy state stays.
        check_result ex = result(check_ca_excluded, "*", "Conditional Access policies");
        check_result inc = result(check_ca_includes, "*", "Conditional Access policies");
        out.push_back(cannot(ex, in.ca.fetch, perm_ca));
        out.push_back(cannot(inc, in.ca.fetch, perm_ca));
        return out;
    }
    auto via_group = [&](const std::vector<std::string>& groups, const std::string& account) {
        for (const auto& g : groups) {
            auto it = members_of.find(g);
            if (it != members_of.end() && contains(it->second, account)) return true;
        }
        return false;
    };
    for (const auto& p : in.ca.policies) {
        if (p.state != "enabled") continue;  // report-only and disabled policies block nothing
        const std::string label = "CA policy '" + p.display_name + "'";
        std::vector<std::string> not_excluded, included;
        bool named = false;  // an account named in includeUsers / a watched includeGroups
        for (const auto& ai : in.accounts) {
            const std::string& id = ai.account.object_id;
            const bool excluded = contains(p.exclude_users, id) || via_group(p.exclude_groups, id);
            if (!excluded) not_excluded.push_back(id);
            const bool by_name = contains(p.include_users, id) || via_group(p.include_groups, id);
            if (by_name || (!excluded && contains(p.include_users, "All"))) {
                included.push_back(id);
                named = named || by_name;
            }
        }
        if (p.can_block()) {
            check_result r = result(check_ca_excluded, p.id, label);
            if (!not_excluded.empty())
                fail(r, label + " can block sign-ins but does not exclude " +
                            join_labels(not_excluded, labels) +
                            " (neither in excludeUsers nor through a watched group in "
                            "excludeGroups)");
            out.push_back(std::move(r));
        }
        if (!included.empty() || contains(p.include_users, "All")) {
            check_result r = result(check_ca_includes, p.id, label);
            if (!included.empty())
                fail(r, label + " includes " + join_labels(included, labels) +
                            (named ? " (named in includeUsers or through a watched group in "
                                     "includeGroups)"
                                   : " (includeUsers All without the exclusion)"));
            out.push_back(std::move(r));
        }
    }
    return out;
}

// ---- state and diff --------------------------------------------------------------------------

namespace {

std::optional<status> parse_status(std::string_view s) {
    if (s == "ok") return status::ok;
    if (s == "fail") return status::fail;
    if (s == "cannot_check") return status::cannot_check;
    return std::nullopt;
}

std::string_view check_of_key(std::string_view key) {
    return key.substr(0, key.find('/'));
}

std::string make_episode(int occurrence, std::string_view problem) {
    return std::to_string(occurrence) + "-" + sha256_hex(problem).substr(0, 16);
}

}  // namespace

std::string posture_state::to_json() const {
    json j;
    j["version"] = 1;
    j["checkedAt"] = checked_at;
    json e = json::object();
    for (const auto& [key, v] : entries) {
        e[key] = {{"status", std::string(posture::to_string(v.st))},
                  {"problem", v.problem},
                  {"since", v.since},
                  {"episode", v.episode},
                  {"occurrence", v.occurrence},
                  {"label", v.label},
                  {"permission", v.permission}};
    }
    j["entries"] = std::move(e);
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<posture_state> posture_state::from_json(std::string_view text) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("version", 0) != 1) return std::nullopt;
    posture_state s;
    auto at = j.find("checkedAt");
    auto entries = j.find("entries");
    if (at == j.end() || !at->is_number_integer() || entries == j.end() || !entries->is_object())
        return std::nullopt;
    s.checked_at = at->get<micros>();
    for (const auto& [key, v] : entries->items()) {
        if (!v.is_object()) return std::nullopt;
        auto st = parse_status(json_string(v, "status"));
        auto since = v.find("since");
        if (!st || since == v.end() || !since->is_number_integer()) return std::nullopt;
        state_entry e;
        e.st = *st;
        e.problem = json_string(v, "problem");
        e.since = since->get<micros>();
        e.episode = json_string(v, "episode");
        if (auto occ = v.find("occurrence"); occ != v.end() && occ->is_number_integer())
            e.occurrence = occ->get<int>();
        e.label = json_string(v, "label");
        e.permission = json_string(v, "permission");
        s.entries[key] = std::move(e);
    }
    return s;
}

diff_result diff(const posture_state& previous, const std::vector<check_result>& current,
                 micros now) {
    diff_result d;
    d.next.checked_at = now;
    // A "*" cannot_check (e.g. the CA list could not be read) covers every subject of its check.
    std::vector<std::string> covered;
    for (const auto& r : current)
        if (r.st == status::cannot_check && r.subject == "*") covered.push_back(r.check);

    for (const auto& r : current) {
        const std::string key = r.key();
        auto it = previous.entries.find(key);
        const state_entry* p = it != previous.entries.end() ? &it->second : nullptr;
        state_entry next;
        next.label = r.label;
        if (r.st == status::ok) {
            if (p && p->st == status::fail)
                d.changes.push_back({change_kind::fixed, r, p->problem, p->episode, p->since});
            next.st = status::ok;
            next.since = now;
            next.occurrence = p ? p->occurrence : 0;
        } else if (r.st == status::fail) {
            next.st = status::fail;
            next.problem = r.problem;
            if (!p || p->st != status::fail) {
                next.since = now;
                next.occurrence = (p ? p->occurrence : 0) + 1;
                next.episode = make_episode(next.occurrence, r.problem);
                d.changes.push_back({change_kind::new_failure, r, "", next.episode, now});
            } else if (p->problem != r.problem) {
                // Still failing, differently: a new episode, so it pages again with the news.
                next.since = p->since;
                next.occurrence = p->occurrence + 1;
                next.episode = make_episode(next.occurrence, r.problem);
                d.changes.push_back({change_kind::changed, r, p->problem, next.episode, p->since});
            } else {
                next.since = p->since;
                next.episode = p->episode;
                next.occurrence = p->occurrence;
            }
        } else {
            // Unknown now: keep the last definite state (a failure stays open, no "fixed").
            if (p) {
                next = *p;
                next.label = r.label;
            } else {
                next.st = status::cannot_check;
                next.since = now;
            }
            if (!r.permission.empty() && (!p || p->permission != r.permission))
                d.changes.push_back({change_kind::cannot_check, r, "",
                                     r.permission + "@" + std::to_string(now), now});
        }
        next.permission = r.st == status::cannot_check ? r.permission : std::string();
        d.next.entries[key] = std::move(next);
    }
    // Subjects that vanished (a deleted or disabled policy, a group no longer watched).
    for (const auto& [key, e] : previous.entries) {
        if (d.next.entries.count(key) != 0) continue;
        const std::string check(check_of_key(key));
        if (contains(covered, check)) {
            d.next.entries[key] = e;
            continue;
        }
        // Remembered (as passing) once it has ever failed: should the subject come back failing,
        // its next alert must not reuse an old alert id.
        if (e.occurrence > 0) {
            state_entry kept = e;
            kept.st = status::ok;
            kept.problem.clear();
            kept.permission.clear();
            d.next.entries[key] = kept;
        }
        if (e.st != status::fail) continue;
        check_result r = result(check, key.substr(key.find('/') + 1), e.label);
        r.problem = "";
        d.changes.push_back({change_kind::fixed, r, e.problem, e.episode, e.since, true});
    }
    return d;
}

std::vector<alert> posture_alerts(const alert_context& ctx, const std::vector<change>& changes,
                                  micros now) {
    std::vector<alert> out;
    std::map<std::string, std::vector<const change*>> by_permission;
    for (const auto& c : changes) {
        const check_result& r = c.result;
        json d = {{"check", r.check},
                  {"subject", r.subject},
                  {"label", r.label},
                  {"status", std::string(to_string(r.st))},
                  {"change", std::string(to_string(c.kind))},
                  {"failingSince", format_iso8601(c.since)}};
        if (!r.problem.empty()) d["problem"] = r.problem;
        if (!c.previous.empty()) d["previousProblem"] = c.previous;
        std::string summary;
        std::string rule(rule_of(r.check));
        severity sev = severity_of(r.check);
        std::string episode = c.episode;
        switch (c.kind) {
            case change_kind::new_failure:
                summary = "Break-glass posture: " + r.label + ": " + r.problem;
                d["whatChanged"] = "was passing (or not checked) at the last check";
                break;
            case change_kind::changed:
                summary = "Break-glass posture changed: " + r.label + ": " + r.problem +
                          " (was: " + c.previous + ")";
                d["whatChanged"] = "still failing, differently; was: " + c.previous;
                break;
            case change_kind::fixed:
                summary = "Break-glass posture fixed: " + r.label + ": " + r.check +
                          (c.vanished ? " no longer applies" : " passes again") +
                          " (was: " + c.previous + ")";
                d["whatChanged"] = "fixed; was: " + c.previous;
                rule = std::string(rule_fixed);
                sev = severity::info;
                episode = r.check + "@" + c.episode;
                break;
            case change_kind::cannot_check:
                by_permission[r.permission].push_back(&c);
                continue;
        }
        out.push_back(make_health_alert(ctx, rule, sev, r.subject, episode, summary, now,
                                        d.dump(-1, ' ', false, json::error_handler_t::replace)));
    }
    // Degraded checks: one alert per missing permission, naming what cannot be checked.
    for (const auto& [permission, list] : by_permission) {
        json checks = json::array();
        for (const auto* c : list)
            checks.push_back({{"check", c->result.check},
                              {"subject", c->result.subject},
                              {"label", c->result.label}});
        json d = {{"permission", permission}, {"checks", checks}};
        out.push_back(make_health_alert(
            ctx, rule_cannot_check, severity::warning, "posture", list.front()->episode,
            "Break-glass posture: cannot check " + std::to_string(list.size()) +
                " check(s): missing Graph permission " + permission,
            now, d.dump(-1, ' ', false, json::error_handler_t::replace)));
    }
    return out;
}

// ---- reports -------------------------------------------------------------------------------

bool all_pass(const std::vector<check_result>& results) noexcept {
    return std::all_of(results.begin(), results.end(),
                       [](const check_result& r) { return r.st == status::ok; });
}

std::string render_text(const std::vector<check_result>& results) {
    std::size_t pass = 0, failing = 0, unknown = 0;
    std::string body;
    for (const auto& r : results) {
        const char* tag = r.st == status::ok     ? "ok    "
                          : r.st == status::fail ? "FAIL  "
                                                 : "CANNOT";
        (r.st == status::ok ? pass : r.st == status::fail ? failing : unknown) += 1;
        std::string check = r.check;
        check.resize(std::max<std::size_t>(check.size(), 22), ' ');  // one column
        body += std::string("  ") + tag + "  " + check + "  " + sanitize_line(r.label, 120);
        if (r.subject != "*" && r.label.find(r.subject) == std::string::npos)
            body += " [" + r.subject + "]";
        if (!r.problem.empty()) body += "\n            " + sanitize_line(r.problem, 400);
        body += "\n";
    }
    std::string head = "posture: " + std::to_string(failing) + " failing, " +
                       std::to_string(unknown) + " cannot be checked, " + std::to_string(pass) +
                       " passing\n";
    return head + body;
}

std::string render_json(const std::vector<check_result>& results, micros now) {
    json checks = json::array();
    std::size_t pass = 0, failing = 0, unknown = 0;
    for (const auto& r : results) {
        (r.st == status::ok ? pass : r.st == status::fail ? failing : unknown) += 1;
        json c = {{"check", r.check},
                  {"rule", std::string(rule_of(r.check))},
                  {"subject", r.subject},
                  {"label", r.label},
                  {"status", std::string(to_string(r.st))}};
        if (!r.problem.empty()) c["problem"] = r.problem;
        if (!r.permission.empty()) c["missingPermission"] = r.permission;
        checks.push_back(std::move(c));
    }
    json j = {{"checkedAt", format_iso8601(now)},
              {"ok", all_pass(results)},
              {"summary", {{"pass", pass}, {"fail", failing}, {"cannotCheck", unknown}}},
              {"checks", std::move(checks)}};
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace glasswatch::core::posture
