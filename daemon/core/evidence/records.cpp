#include "core/evidence/records.hpp"

#include <nlohmann/json.hpp>

namespace glasswatch::core::evidence {

namespace {

using json = nlohmann::json;

json alert_json(const alert& a) {
    return {{"id", a.id},
            {"rule", a.rule},
            {"rules", a.rules.empty() ? std::vector<std::string>{a.rule} : a.rules},
            {"severity", std::string(to_string(a.sev))},
            {"tenant_id", a.tenant_id},
            {"event_id", a.event_id},
            {"event_time", a.event_time},
            {"observed_at", a.observed_at},
            {"subject_id", a.subject_id},
            {"subject_label", a.subject_label},
            {"drill_id", a.drill_id},
            {"summary", a.summary},
            {"sms", a.sms},
            {"detail", a.detail_json}};
}

}  // namespace

std::string alert_body(const alert& a, std::string_view source, std::string_view raw,
                       const std::vector<std::string>& sinks) {
    json body = {{"alert", alert_json(a)},
                 {"source", std::string(source)},
                 {"raw", std::string(raw)},
                 {"sinks", sinks}};
    return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string alert_difference(std::string_view body, const alert& a) {
    const json sealed = json::parse(body, nullptr, false);
    if (!sealed.is_object() || !sealed.contains("alert") || !sealed["alert"].is_object())
        return "the sealed entry is not an alert";
    const json now = alert_json(a);
    for (const auto& [key, value] : now.items()) {
        const auto it = sealed["alert"].find(key);
        if (it == sealed["alert"].end() || *it != value) return key;
    }
    return {};
}

std::vector<std::string> alert_sinks(std::string_view body) {
    std::vector<std::string> out;
    const json sealed = json::parse(body, nullptr, false);
    if (sealed.is_object() && sealed.contains("sinks") && sealed["sinks"].is_array())
        for (const auto& s : sealed["sinks"])
            if (s.is_string()) out.push_back(s.get<std::string>());
    return out;
}

std::string delivery_body(const delivery_record& d) {
    json body = {
        {"alert_id", d.alert_id}, {"sink", d.sink}, {"result", d.result}, {"attempts", d.attempts}};
    if (!d.error.empty()) body["error"] = d.error;
    if (!d.sink_ref.empty()) body["sink_ref"] = d.sink_ref;
    return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<delivery_record> parse_delivery(std::string_view body) {
    const json j = json::parse(body, nullptr, false);
    if (!j.is_object()) return std::nullopt;
    delivery_record d;
    d.alert_id = j.value("alert_id", std::string());
    d.sink = j.value("sink", std::string());
    d.result = j.value("result", std::string());
    d.attempts = j.value("attempts", 0);
    d.error = j.value("error", std::string());
    d.sink_ref = j.value("sink_ref", std::string());
    if (d.alert_id.empty() || d.sink.empty() || d.result.empty()) return std::nullopt;
    return d;
}

std::string_view state_after(std::string_view result) noexcept {
    if (result == "accepted") return "accepted";
    if (result == "confirmed") return "confirmed";
    if (result == "failed") return "failed";
    return "pending";  // queued, retry, requeued
}

}  // namespace glasswatch::core::evidence
