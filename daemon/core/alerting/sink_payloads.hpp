// Request bodies for the out-of-band sinks and the classification of their answers (pure).
// Wire formats: shared/reference/alert-sinks.md (PagerDuty Events v2 §6, Twilio Messages §7,
// Standard Webhooks §8.1, Slack incoming webhooks §8.2).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/alerting/alert.hpp"
#include "core/base/time.hpp"

namespace glasswatch::core {

// How a sink's HTTP answer is to be treated (delivery engine semantics, see
// io/delivery/delivery.hpp).
enum class sink_verdict { accepted, transient, permanent };

struct sink_answer {
    sink_verdict verdict = sink_verdict::transient;
    std::string error;  // the sink's own error text, bounded and sanitized
    std::string ref;    // the sink's id for the delivery (Twilio SID, PagerDuty dedup_key)
    std::string state;  // Twilio message status ("queued", "delivered", ...)
};

// ---- PagerDuty Events v2 ----------------------------------------------------------------------
inline constexpr std::size_t pagerduty_max_body = 512 * 1024;
// Trigger event: dedup_key = alert id (a second instance or a replay collapses into the same
// incident), severity mapped (critical/high -> critical/error, ...), custom_details = the full
// alert JSON (trimmed if the body would exceed 512 KB), summary <= 1024 characters.
std::string pagerduty_trigger(const alert& a, std::string_view routing_key,
                              std::string_view source);
std::string_view pagerduty_severity(severity s) noexcept;
sink_answer classify_pagerduty(int status, std::string_view body);

// ---- Twilio Messages --------------------------------------------------------------------------
std::string twilio_message_form(std::string_view to, std::string_view from,
                                std::string_view messaging_service_sid, std::string_view body);
std::string basic_auth(std::string_view user, std::string_view password);
sink_answer classify_twilio_create(int status, std::string_view body);
// Message resource (GET .../Messages/{Sid}.json): status -> accepted (still moving), confirmed
// (delivered / read), permanent (failed / undelivered / canceled).
struct twilio_status {
    std::string status;
    std::int64_t error_code = 0;
    bool final_ok = false;   // delivered, read
    bool final_bad = false;  // failed, undelivered, canceled
};
std::optional<twilio_status> parse_twilio_message(std::string_view body);
// Whether a message list (GET Messages.json?To=...) holds a message with exactly this body sent
// after `since`: used before re-sending after an ambiguous timeout (Twilio has no idempotency key).
std::optional<std::string> twilio_find_sent(std::string_view list_body, std::string_view text,
                                            micros since);

// ---- SMS burst grouping --------------------------------------------------------------------
// A burst of alerts (Teams retrying a sign-in every few seconds) must not become fifty texts,
// yet the first alert of a burst must never wait. The gate decides, for one SMS sink:
//   no SMS within the last window      -> send the oldest due alert alone, at once;
//   inside the window after an SMS     -> hold everything due until the window closes;
//   window closed with alerts held     -> send them all as ONE SMS with a count, and open a
//                                         new window (a burst that goes on yields one SMS per
//                                         window);
//   window closed with nothing held    -> the burst is over; the next alert goes at once.
// A window opens only when an SMS was accepted: while the sink fails, nothing is held back.
class sms_burst_gate {
public:
    using clock = std::chrono::steady_clock;
    explicit sms_burst_gate(std::chrono::milliseconds window) : window_(window) {}

    struct plan {
        enum class kind { nothing, single, group, wait } what = kind::nothing;
        clock::time_point wake{};  // for wait: when the window closes
    };
    plan next(clock::time_point now, std::size_t due);
    void accepted(clock::time_point now);  // an SMS (single or group) was accepted

private:
    std::chrono::milliseconds window_;
    clock::time_point window_end_{};
    bool open_ = false;
};
// The text of a grouped SMS: the count first (it is what the reader needs), then the latest
// alert's own text; <= 160 GSM-7 characters.
std::string sms_burst_text(std::string_view latest_sms, std::size_t count);

// ---- Webhooks ---------------------------------------------------------------------------------
// Body: {"type":"glasswatch.alert.<rule>","timestamp":...,"data":<alert JSON>}.
std::string webhook_body(const alert& a);
// Slack-compatible body: {"text": "..."} with mrkdwn-escaped text.
std::string slack_body(const alert& a);
// Standard Webhooks signature header value "v1,<base64 HMAC-SHA256(id.ts.body)>". The key is
// the base64 part of a "whsec_..." secret (a secret without the prefix is used as raw bytes).
std::string standard_webhook_signature(std::string_view secret, std::string_view msg_id,
                                       std::int64_t unix_ts, std::string_view body);
sink_answer classify_webhook(int status, std::string_view body);

// Common HTTP classification: 2xx accepted; 408/425/429/5xx transient; other 4xx permanent.
sink_verdict verdict_for_status(int status) noexcept;

// A permanent refusal, named for its episode ("http_410"). `holds`: the answer says the sink
// itself is wrong — 410 Gone, 401/403 refused credentials, 404 no such endpoint — so nothing
// more is sent to it until its configuration changes or an operator re-queues. Otherwise only
// this alert was refused (400 malformed, 413 too large, 422 unprocessable): other alerts still go.
struct refusal {
    std::string cause;
    bool holds = false;
};
refusal refusal_for_status(int status);

}  // namespace glasswatch::core
