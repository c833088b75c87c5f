#include "core/alerting/alert.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/base/crypto.hpp"
#include "core/base/json_text.hpp"

namespace glasswatch::core {

using json = nlohmann::json;

std::string make_alert_id(std::string_view tenant_id, std::string_view event_id,
                          std::string_view rule) {
    std::string key;
    key.reserve(tenant_id.size() + event_id.size() + rule.size() + 2);
    key.append(to_lower_ascii(tenant_id))
        .append("\x1f")
        .append(event_id)
        .append("\x1f")
        .append(rule);
    return "gw-" + sha256_hex(key).substr(0, 32);
}

namespace {

std::string_view sev_tag(severity s) {
    switch (s) {
        case severity::critical:
            return "CRIT";
        case severity::high:
            return "HIGH";
        case severity::warning:
            return "WARN";
        case severity::info:
            return "INFO";
    }
    return "?";
}

std::string hhmm(micros t) {
    std::string iso = format_iso8601(t, false);  // 2025-11-03T14:22:07Z
    return iso.substr(11, 5) + "Z";
}

// Attacker-controlled text limited for a field of the detail JSON.
std::string field(std::string_view s, std::size_t max = 256) {
    return sanitize_line(s, max);
}

std::string who_of(const identity& who) {
    if (!who.upn.empty()) return who.upn;
    if (!who.display_name.empty()) return who.display_name;
    return who.id;
}

json identity_json(const identity& who) {
    json j = json::object();
    if (!who.id.empty()) j["id"] = field(who.id, 128);
    if (!who.upn.empty()) j["userPrincipalName"] = field(who.upn);
    if (!who.display_name.empty()) j["displayName"] = field(who.display_name);
    if (!who.type.empty()) j["type"] = field(who.type, 64);
    if (!who.app_id.empty()) j["appId"] = field(who.app_id, 64);
    if (!who.ip.empty()) j["ipAddress"] = field(who.ip, 64);
    return j;
}

json event_json(const event& ev) {
    json e;
    e["id"] = field(ev.id, 256);
    e["kind"] = std::string(to_string(ev.kind));
    if (ev.kind == event_kind::sign_in) e["signInType"] = std::string(to_string(ev.signin));
    e["source"] = ev.format == record_format::diagnostic ? "diagnostic-settings" : "graph";
    e["category"] = field(ev.category, 64);
    e["time"] = format_iso8601(ev.time);
    e["actor"] = identity_json(ev.actor);
    if (!ev.targets.empty()) {
        json ts = json::array();
        for (const auto& t : ev.targets) {
            json tj = identity_json(t.who);
            json mods = json::array();
            for (const auto& m : t.modified)
                mods.push_back({{"name", field(m.name, 128)},
                                {"old", field(m.old_value, 512)},
                                {"new", field(m.new_value, 512)}});
            if (!mods.empty()) tj["modifiedProperties"] = std::move(mods);
            ts.push_back(std::move(tj));
        }
        e["targets"] = std::move(ts);
    }
    e["result"] = {{"success", ev.success},
                   {"errorCode", ev.error_code},
                   {"failureReason", field(ev.failure_reason, 512)}};
    if (!ev.activity.empty()) e["activity"] = field(ev.activity, 256);
    if (!ev.audit_category.empty()) e["auditCategory"] = field(ev.audit_category, 64);
    if (!ev.operation_type.empty()) e["operationType"] = field(ev.operation_type, 64);
    if (!ev.logged_by_service.empty()) e["loggedByService"] = field(ev.logged_by_service, 128);
    if (!ev.ip.empty()) e["ipAddress"] = field(ev.ip, 64);
    if (!ev.country.empty() || !ev.city.empty())
        e["location"] = {{"city", field(ev.city, 128)},
                         {"state", field(ev.state, 128)},
                         {"countryOrRegion", field(ev.country, 8)}};
    if (!ev.app_id.empty() || !ev.app_display_name.empty())
        e["app"] = {{"id", field(ev.app_id, 64)}, {"displayName", field(ev.app_display_name)}};
    if (!ev.resource_display_name.empty()) e["resource"] = field(ev.resource_display_name);
    if (!ev.client_app.empty()) e["clientAppUsed"] = field(ev.client_app, 128);
    if (!ev.user_agent.empty()) e["userAgent"] = field(ev.user_agent, 512);
    if (!ev.ca_status.empty()) e["conditionalAccessStatus"] = field(ev.ca_status, 64);
    if (!ev.risk_level.empty() || !ev.risk_state.empty())
        e["risk"] = {{"level", field(ev.risk_level, 64)}, {"state", field(ev.risk_state, 64)}};
    if (!ev.auth_requirement.empty())
        e["authenticationRequirement"] = field(ev.auth_requirement, 64);
    if (!ev.correlation_id.empty()) e["correlationId"] = field(ev.correlation_id, 128);
    if (!ev.tenant_id.empty()) e["tenantId"] = field(ev.tenant_id, 64);
    return e;
}

std::string outcome_word(const event& ev) {
    return ev.success ? "succeeded" : "FAILED (" + std::to_string(ev.error_code) + ")";
}

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

bool has_rule(const alert& a, std::string_view rule) {
    if (a.rule == rule) return true;
    for (const auto& r : a.rules)
        if (r == rule) return true;
    return false;
}

alert make_event_alert(const alert_context& ctx, const event& ev, const std::vector<match>& ms,
                       micros observed_at) {
    // The primary match: the first of the highest severity (match_event's order is fixed).
    std::size_t primary = 0;
    for (std::size_t i = 1; i < ms.size(); ++i)
        if (ms[i].sev > ms[primary].sev) primary = i;
    const match& m = ms[primary];
    alert a;
    a.tenant_id = ctx.tenant_id;
    a.event_id = ev.id;
    a.rule = m.rule;
    a.sev = m.sev;
    a.rules.push_back(m.rule);
    for (const auto& other : ms)
        if (std::find(a.rules.begin(), a.rules.end(), other.rule) == a.rules.end())
            a.rules.push_back(other.rule);
    a.id = make_alert_id(ctx.tenant_id, ev.id, m.rule);
    a.event_time = ev.time;
    a.observed_at = observed_at;
    a.subject_id = m.subject_id;
    a.subject_label = m.subject_label;

    std::string where = ev.ip;
    if (!ev.country.empty()) where += " " + ev.country;
    const std::string short_id = a.id.substr(3, 8);
    const std::string label = sanitize_line(m.subject_label, 40);

    if (ev.kind == event_kind::sign_in) {
        std::string result = ev.success ? "OK" : "FAIL " + std::to_string(ev.error_code);
        a.summary = sanitize_line(
            "Break-glass sign-in " + outcome_word(ev) + ": " + label + " (" + who_of(ev.actor) +
                ") " + std::string(to_string(ev.signin)) + " from " +
                (ev.ip.empty() ? std::string("unknown IP") : ev.ip) +
                (ev.city.empty() && ev.country.empty()
                     ? std::string()
                     : " (" + ev.city + (ev.city.empty() ? "" : ", ") + ev.country + ")") +
                " to " +
                (ev.app_display_name.empty() ? std::string("unknown app") : ev.app_display_name) +
                " at " + format_iso8601(ev.time, false),
            1024);
        a.sms =
            to_gsm7("GW " + std::string(sev_tag(a.sev)) + " break-glass " +
                        sanitize_line(m.subject_label, 24) + " sign-in " + result + " " +
                        sanitize_line(where, 46) + " " + sanitize_line(ev.app_display_name, 28) +
                        " " + hhmm(ev.time) + " #" + short_id,
                    160);
    } else {
        std::string by = who_of(ev.actor);
        // One alert per touch: when the event tripped several rules, the text names them all.
        std::string also;
        for (std::size_t i = 0; a.rules.size() > 1 && i < a.rules.size(); ++i)
            also += (i == 0 ? "; rules " : ", ") + a.rules[i];
        a.summary = sanitize_line(m.why + ": " + label + ", by " + (by.empty() ? "unknown" : by) +
                                      ", result " + (ev.success ? "success" : "failure") + ", at " +
                                      format_iso8601(ev.time, false) + also,
                                  1024);
        a.sms =
            to_gsm7("GW " + std::string(sev_tag(a.sev)) + " " + sanitize_line(m.subject_label, 24) +
                        ": " + sanitize_line(ev.activity, 40) + (ev.success ? "" : " FAILED") +
                        " by " + sanitize_line(by, 40) + " " + hhmm(ev.time) + " #" + short_id,
                    160);
    }

    json d;
    d["alertId"] = a.id;
    d["rule"] = a.rule;
    d["rules"] = a.rules;
    d["severity"] = std::string(to_string(a.sev));
    d["summary"] = a.summary;
    d["why"] = sanitize_line(m.why, 512);
    if (ms.size() > 1) {
        json all = json::array();
        for (const auto& x : ms)
            all.push_back({{"rule", x.rule},
                           {"severity", std::string(to_string(x.sev))},
                           {"subject",
                            {{"id", x.subject_id}, {"label", sanitize_line(x.subject_label, 128)}}},
                           {"why", sanitize_line(x.why, 512)}});
        d["matches"] = std::move(all);
    }
    d["tenant"] = {{"id", ctx.tenant_id}, {"name", ctx.tenant_name}};
    d["subject"] = {{"id", m.subject_id}, {"label", sanitize_line(m.subject_label, 128)}};
    d["observedAt"] = format_iso8601(observed_at);
    d["event"] = event_json(ev);
    d["drill"] = false;
    a.detail_json = dump(d);
    return a;
}

alert make_health_alert(const alert_context& ctx, std::string_view rule, severity sev,
                        std::string_view subject, std::string_view episode,
                        std::string_view summary, micros now, std::string_view detail_json) {
    alert a;
    a.tenant_id = ctx.tenant_id;
    a.rule = std::string(rule);
    a.rules = {a.rule};
    a.sev = sev;
    a.event_id = "health/" + std::string(subject) + "/" + std::string(episode);
    a.id = make_alert_id(ctx.tenant_id, a.event_id, rule);
    a.event_time = now;
    a.observed_at = now;
    a.subject_id = std::string(subject);
    a.subject_label = std::string(subject);
    a.summary = sanitize_line(summary, 1024);
    a.sms = to_gsm7("GW " + std::string(sev_tag(sev)) + " " + std::string(summary), 150) + " #" +
            a.id.substr(3, 6);
    json d;
    d["alertId"] = a.id;
    d["rule"] = a.rule;
    d["severity"] = std::string(to_string(sev));
    d["summary"] = a.summary;
    d["tenant"] = {{"id", ctx.tenant_id}, {"name", ctx.tenant_name}};
    d["subject"] = {{"id", a.subject_id}, {"label", a.subject_label}};
    d["observedAt"] = format_iso8601(now);
    d["drill"] = false;
    if (!detail_json.empty()) {
        json extra = json::parse(detail_json, nullptr, false);
        if (!extra.is_discarded()) d["details"] = std::move(extra);
    }
    a.detail_json = dump(d);
    return a;
}

void label_drill(alert& a, std::string_view drill_id) {
    if (a.drill) return;
    a.drill = true;
    a.drill_id = std::string(drill_id);
    a.summary = sanitize_line("[DRILL] " + a.summary, 1024);
    a.sms = to_gsm7("DRILL " + a.sms, 160);
    json d = json::parse(a.detail_json, nullptr, false);
    if (!d.is_discarded()) {
        d["drill"] = true;
        d["drillId"] = a.drill_id;
        d["summary"] = a.summary;
        a.detail_json = dump(d);
    }
}

}  // namespace glasswatch::core
