// What the evidence entries say, as JSON bodies, and how an operational row is compared with the
// entry that sealed it (pure). The store writes these bodies; `evidence verify` compares the
// alerts and outbox tables against them, so an edit of either table is seen even when the chain
// itself is untouched.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/alerting/alert.hpp"

namespace glasswatch::core::evidence {

// An alert, the record behind it (source and raw text) and the sinks it was queued for.
std::string alert_body(const alert& a, std::string_view source, std::string_view raw,
                       const std::vector<std::string>& sinks);
// The first field in which `a` differs from the sealed alert body ("" when they agree).
std::string alert_difference(std::string_view body, const alert& a);
// The sinks an alert body says it was queued for.
std::vector<std::string> alert_sinks(std::string_view body);

// One delivery attempt or change of a row: queued, accepted, confirmed, retry, failed, requeued.
struct delivery_record {
    std::string alert_id;
    std::string sink;
    std::string result;
    int attempts = 0;
    std::string error;     // the sink's answer when it failed
    std::string sink_ref;  // the sink's own id (Twilio SID, PagerDuty dedup key)
};
std::string delivery_body(const delivery_record& d);
std::optional<delivery_record> parse_delivery(std::string_view body);
// The outbox state a result leaves the row in: pending, accepted, confirmed or failed.
std::string_view state_after(std::string_view result) noexcept;

}  // namespace glasswatch::core::evidence
