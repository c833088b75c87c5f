// Alerts: what the sinks deliver. Deterministic id = f(tenant, source event id, rule), so the
// same event seen twice (Graph and Event Hub, a replay, a restart) yields the same alert and a
// second glasswatch instance collapses into the same PagerDuty incident.
#pragma once

#include <string>
#include <string_view>

#include "core/config.hpp"
#include "core/event.hpp"
#include "core/matcher.hpp"
#include "core/time.hpp"

namespace glasswatch::core {

struct alert {
    std::string id;  // "gw-" + 32 hex
    std::string rule;
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
};

struct alert_context {
    std::string tenant_id;
    std::string tenant_name;
};

std::string make_alert_id(std::string_view tenant_id, std::string_view event_id,
                          std::string_view rule);

alert make_event_alert(const alert_context& ctx, const event& ev, const match& m,
                       micros observed_at);

// Alerts about glasswatch itself (source down, sink broken, ...). `episode` makes the id
// unique per incident, e.g. the time the condition started.
alert make_health_alert(const alert_context& ctx, std::string_view rule, severity sev,
                        std::string_view subject, std::string_view episode,
                        std::string_view summary, micros now, std::string_view detail_json = {});

// Marks an alert as part of a declared drill: the texts say DRILL, the id stays the same.
void label_drill(alert& a, std::string_view drill_id);

}  // namespace glasswatch::core
