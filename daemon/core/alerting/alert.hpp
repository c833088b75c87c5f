// Alerts: what the sinks deliver. One alert per touch: an event that trips several rules (a
// break-glass account that registers security info on itself is both actor and target) is ONE
// alert naming every rule, with the highest severity. Deterministic id = f(tenant, source event
// id, primary rule), so the same event seen twice (Graph and Event Hub, a replay, a restart, a
// second instance) yields the same alert and collapses into the same PagerDuty incident. The
// primary rule is the first of the highest severity in match_event()'s fixed order, so the id
// of an event that trips one rule is what it always was.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/base/time.hpp"
#include "core/config/config.hpp"
#include "core/detection/event.hpp"
#include "core/detection/matcher.hpp"

namespace glasswatch::core {

struct alert {
    std::string id;                  // "gw-" + 32 hex
    std::string rule;                // the primary rule (highest severity)
    std::vector<std::string> rules;  // every rule the event tripped, primary first
    severity sev = severity::critical;
    std::string tenant_id;
    std::string event_id;
    micros event_time = 0;   // createdDateTime of the sign-in / activity
    micros observed_at = 0;  // when glasswatch processed it
    std::string subject_id;
    std::string subject_label;
    bool drill = false;
    std::string drill_id;
    std::string summary;      // one line, <= 1024 bytes (PagerDuty summary limit)
    std::string sms;          // <= 160 GSM-7 characters
    std::string detail_json;  // everything an analyst needs, as a JSON object
    // The evidence chain's head ("SEQ:HASH16") when the page was composed, carried out of band
    // by the channels with room for it (docs/evidence.md). Not stored with the alert.
    std::string evidence_head;
};

struct alert_context {
    std::string tenant_id;
    std::string tenant_name;
};

std::string make_alert_id(std::string_view tenant_id, std::string_view event_id,
                          std::string_view rule);

// One alert for every rule `ms` (non-empty) holds for the event.
alert make_event_alert(const alert_context& ctx, const event& ev, const std::vector<match>& ms,
                       micros observed_at);
inline alert make_event_alert(const alert_context& ctx, const event& ev, const match& m,
                              micros observed_at) {
    return make_event_alert(ctx, ev, std::vector<match>{m}, observed_at);
}

// True when `a` carries `rule` (primary or not).
bool has_rule(const alert& a, std::string_view rule);

// Alerts about glasswatch itself (source down, sink broken, ...). `episode` makes the id
// unique per incident, e.g. the time the condition started.
alert make_health_alert(const alert_context& ctx, std::string_view rule, severity sev,
                        std::string_view subject, std::string_view episode,
                        std::string_view summary, micros now, std::string_view detail_json = {});

// Marks an alert as part of a declared drill: the texts say DRILL, the id stays the same.
void label_drill(alert& a, std::string_view drill_id);

}  // namespace glasswatch::core
