#include "core/alerting/sink_payloads.hpp"

#include <nlohmann/json.hpp>

#include "core/base/backoff.hpp"
#include "core/base/crypto.hpp"
#include "core/base/json_field.hpp"
#include "core/base/json_text.hpp"
#include "core/protocol/oauth.hpp"

namespace glasswatch::core {

using json = nlohmann::json;

namespace {
std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}
std::string bounded(std::string_view s) {
    return sanitize_line(s, 300);
}
std::string rule_title(std::string_view rule) {
    std::string t(rule);
    for (char& c : t)
        if (c == '_') c = ' ';
    return t;
}
}  // namespace

sink_verdict verdict_for_status(int status) noexcept {
    if (status >= 200 && status < 300) return sink_verdict::accepted;
    if (status == 408 || status == 425 || status == 429 || status >= 500)
        return sink_verdict::transient;
    return sink_verdict::permanent;
}

std::string_view pagerduty_severity(severity s) noexcept {
    switch (s) {
        case severity::critical:
            return "critical";
        case severity::high:
            return "error";
        case severity::warning:
            return "warning";
        case severity::info:
            return "info";
    }
    return "critical";
}

std::string pagerduty_trigger(const alert& a, std::string_view routing_key,
                              std::string_view source) {
    json details = json::parse(a.detail_json, nullptr, false);
    if (details.is_discarded()) details = json::object();
    if (!a.evidence_head.empty() && details.is_object()) details["evidence_head"] = a.evidence_head;
    json body = {
        {"routing_key", std::string(routing_key)},
        {"event_action", "trigger"},
        {"dedup_key", a.id},
        {"payload",
         {{"summary", sanitize_line(a.summary, 1024)},
          {"source", std::string(source)},
          {"severity", std::string(pagerduty_severity(a.sev))},
          {"timestamp", format_iso8601(a.event_time != 0 ? a.event_time : a.observed_at)},
          {"component", "entra-id"},
          {"group", a.drill ? "break-glass-drill" : "break-glass"},
          {"class", a.rule},
          {"custom_details", details}}},
        {"client", "glasswatch"},
    };
    std::string out = dump(body);
    if (out.size() > pagerduty_max_body) {
        // Keep the page: replace the oversized details by their summary fields.
        body["payload"]["custom_details"] = {
            {"alertId", a.id},
            {"rule", a.rule},
            {"note", "details trimmed to fit PagerDuty's 512 KB limit"}};
        if (!a.evidence_head.empty())
            body["payload"]["custom_details"]["evidence_head"] = a.evidence_head;
        out = dump(body);
    }
    return out;
}

sink_answer classify_pagerduty(int status, std::string_view body) {
    sink_answer r;
    r.verdict = verdict_for_status(status);
    auto j = json::parse(body, nullptr, false);
    if (r.verdict == sink_verdict::accepted) {
        if (j.is_object()) r.ref = json_string(j, "dedup_key");
        return r;
    }
    std::string text = "HTTP " + std::to_string(status);
    if (j.is_object()) {
        text += ": " + json_string(j, "status") + " " + json_string(j, "message");
        if (j.contains("errors") && j["errors"].is_array())
            for (auto& e : j["errors"])
                if (e.is_string()) text += "; " + e.get<std::string>();
    }
    r.error = bounded(text);
    return r;
}

std::string twilio_message_form(std::string_view to, std::string_view from,
                                std::string_view messaging_service_sid, std::string_view body) {
    std::string f = "To=" + form_encode(to);
    if (!messaging_service_sid.empty())
        f += "&MessagingServiceSid=" + form_encode(messaging_service_sid);
    else
        f += "&From=" + form_encode(from);
    f += "&Body=" + form_encode(body);
    return f;
}

std::string basic_auth(std::string_view user, std::string_view password) {
    std::string up(user);
    up += ':';
    up += password;
    return "Basic " + base64_encode(up);
}

namespace {
twilio_status status_of(const json& j) {
    twilio_status s;
    s.status = json_string(j, "status");
    if (j.contains("error_code") && j["error_code"].is_number_integer())
        s.error_code = j["error_code"].get<std::int64_t>();
    s.final_ok = s.status == "delivered" || s.status == "read";
    s.final_bad = s.status == "failed" || s.status == "undelivered" || s.status == "canceled";
    return s;
}
}  // namespace

sink_answer classify_twilio_create(int status, std::string_view body) {
    sink_answer r;
    r.verdict = verdict_for_status(status);
    auto j = json::parse(body, nullptr, false);
    if (r.verdict == sink_verdict::accepted) {
        if (!j.is_object() || !j.contains("sid") || !j["sid"].is_string()) {
            // 2xx without a message resource: treat as not delivered, try again.
            r.verdict = sink_verdict::transient;
            r.error = "HTTP " + std::to_string(status) + " without a message sid";
            return r;
        }
        r.ref = j["sid"].get<std::string>();
        r.state = json_string(j, "status");
        return r;
    }
    std::string text = "HTTP " + std::to_string(status);
    if (j.is_object()) {
        if (j.contains("code") && j["code"].is_number_integer())
            text += " (Twilio " + std::to_string(j["code"].get<std::int64_t>()) + ")";
        text += ": " + json_string(j, "message");
    }
    r.error = bounded(text);
    return r;
}

std::optional<twilio_status> parse_twilio_message(std::string_view body) {
    auto j = json::parse(body, nullptr, false);
    if (!j.is_object() || !j.contains("status") || !j["status"].is_string()) return std::nullopt;
    return status_of(j);
}

std::optional<std::string> twilio_find_sent(std::string_view list_body, std::string_view text,
                                            micros since) {
    auto j = json::parse(list_body, nullptr, false);
    if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array()) return std::nullopt;
    for (auto& m : j["messages"]) {
        if (!m.is_object() || json_string(m, "body") != text) continue;
        auto created = parse_http_date(json_string(m, "date_created"));
        if (created && *created + 60LL * 1000000 < since) continue;  // an older identical text
        if (m.contains("sid") && m["sid"].is_string()) return m["sid"].get<std::string>();
    }
    return std::nullopt;
}

sms_burst_gate::plan sms_burst_gate::next(clock::time_point now, std::size_t due) {
    plan p;
    if (window_.count() <= 0) {
        if (due > 0) p.what = plan::kind::single;
        return p;
    }
    if (open_ && now < window_end_) {
        if (due > 0) {
            p.what = plan::kind::wait;
            p.wake = window_end_;
        }
        return p;
    }
    if (due == 0) {
        open_ = false;  // the window closed empty: the burst is over
        return p;
    }
    p.what = open_ ? plan::kind::group : plan::kind::single;
    return p;
}

void sms_burst_gate::accepted(clock::time_point now) {
    if (window_.count() <= 0) return;
    open_ = true;
    window_end_ = now + window_;
}

std::string sms_burst_text(std::string_view latest_sms, std::size_t count) {
    std::string_view rest = latest_sms;
    if (rest.substr(0, 3) == "GW ") rest.remove_prefix(3);
    return to_gsm7(
        "GW x" + std::to_string(count) + " alerts since last SMS, latest: " + std::string(rest),
        160);
}

std::string webhook_body(const alert& a) {
    json data = json::parse(a.detail_json, nullptr, false);
    if (data.is_discarded()) data = json::object();
    json body = {{"type", "glasswatch.alert." + a.rule},
                 {"timestamp", format_iso8601(a.observed_at)},
                 {"data", data}};
    if (!a.evidence_head.empty()) body["evidence_head"] = a.evidence_head;
    return dump(body);
}

std::string slack_body(const alert& a) {
    // Slack mrkdwn: &, <, > must be escaped; everything else is literal.
    std::string text = (a.sev == severity::critical ? ":rotating_light: *" : "*") +
                       std::string(a.drill ? "[DRILL] " : "") + rule_title(a.rule) + "* " +
                       a.summary + " (`" + a.id + "`)";
    std::string esc;
    for (char c : text) {
        if (c == '&')
            esc += "&amp;";
        else if (c == '<')
            esc += "&lt;";
        else if (c == '>')
            esc += "&gt;";
        else
            esc += c;
    }
    return dump(json{{"text", esc}});
}

std::string standard_webhook_signature(std::string_view secret, std::string_view msg_id,
                                       std::int64_t unix_ts, std::string_view body) {
    std::string key;
    std::string_view s = secret;
    if (s.substr(0, 6) == "whsec_") s.remove_prefix(6);
    if (!base64_decode(s, key)) key = std::string(secret);
    std::string content;
    content.reserve(msg_id.size() + body.size() + 24);
    content.append(msg_id).append(".").append(std::to_string(unix_ts)).append(".").append(body);
    return "v1," + base64_encode(hmac_sha256(key, content));
}

sink_answer classify_webhook(int status, std::string_view body) {
    sink_answer r;
    r.verdict = verdict_for_status(status);
    if (r.verdict != sink_verdict::accepted)
        r.error = bounded("HTTP " + std::to_string(status) +
                          (body.empty() ? "" : ": " + std::string(body.substr(0, 200))));
    return r;
}

refusal refusal_for_status(int status) {
    refusal r;
    r.cause = "http_" + std::to_string(status);
    r.holds = status == 401 || status == 403 || status == 404 || status == 410;
    return r;
}

}  // namespace glasswatch::core
