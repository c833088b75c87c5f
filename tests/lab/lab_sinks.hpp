// The lab's alert receivers: faithful fakes of PagerDuty Events v2, Twilio Messages and a
// Standard Webhooks receiver (shared/reference/alert-sinks.md). They validate every request the
// way the real service does (auth, fields, limits, signatures), record what they accepted, and
// can be told to fail like the real ones do: a status (4xx/5xx, 429 + Retry-After), hang, reset,
// accept-then-drop (the message is recorded but the answer never arrives), bad TLS (a
// certificate the client does not trust, or no TLS at all).
//
// Pure request handler: time passed in, no sockets; lab_main serves it on the lab's TLS port.
//   POST /v2/enqueue                                   PagerDuty
//   POST /2010-04-01/Accounts/{AC}/Messages.json       Twilio create
//   GET  /2010-04-01/Accounts/{AC}/Messages/{SM}.json  Twilio status (queued->sent->delivered)
//   GET  /2010-04-01/Accounts/{AC}/Messages.json?To=   Twilio list
//   POST /hooks/{name}                                 webhook (signature verified)
//   GET  /ping/{uuid}[/fail]                           dead-man switch (Healthchecks.io style)
// Control (plain-HTTP port): GET /lab/sinks, POST /lab/sink_faults, POST /lab/sinks_reset.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "support/https_server.hpp"

namespace glasswatch::lab {

struct sink_receiver_options {
    std::string pagerduty_routing_key = "e93facc04764012d7bfb002500d5d1a6";
    std::string twilio_account_sid = "AC149ad09b18a042f68390b6ad8c8fd4c7";
    std::string twilio_auth_token = "lab-twilio-token-0123456789abcdef";
    std::string webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    double sms_sent_after_s = 0.5;       // queued -> sent
    double sms_delivered_after_s = 1.5;  // sent -> delivered
};

class sink_receivers {
public:
    explicit sink_receivers(sink_receiver_options opts = {});

    // True when `path` belongs to a receiver (or to their control API under /lab/).
    static bool owns(const std::string& path);
    test::server_response handle(const test::server_request& req, std::int64_t now_us);

    // Faults: {"pagerduty"|"twilio"|"webhook": {"status": 503, "count": 0 (0 = until cleared),
    //   "skip": N (the first N requests it would apply to pass untouched),
    //   "retry_after": "7" | "" , "transport": "hang"|"reset"|"accept_then_drop"},
    //   "twilio_delivery": "delivered"|"undelivered"|"failed"|"stuck",
    //   "twilio_delivery_to": {"+14155550101": "undelivered", ...} (per recipient, wins),
    //   "tls": "none"|"untrusted_certificate"|"not_tls"}  (the server applies tls_fault())
    // accept_then_drop records the request (the service acted on it) and then resets the
    // connection before any byte of the answer: on a kept-alive connection this is the case a
    // client must not "retry as stale". A Twilio fault applies to message creation only.
    bool set_faults(const nlohmann::json& f, std::string& error);
    void reset();
    // {"pagerduty": [...], "pagerduty_incidents": {dedup_key: triggers}, "twilio": [...],
    //  "webhook": [...], "webhook_ids": {id: deliveries}, "pings": [...], "rejected": N,
    //  "requests": N, "log": [{"service", "method", "path", "status", "at_us"}]} — the log has
    //  every request each service saw (status 0 = reset or hang), status polls included.
    nlohmann::json recorded() const;

    const sink_receiver_options& options() const noexcept { return opts_; }
    test::https_server::tls_fault tls_fault() const noexcept { return tls_fault_; }

private:
    struct fault {
        int status = 0;
        int remaining = 0;  // 0 with status/transport set = until cleared
        int skip = 0;       // requests that pass before the fault applies
        std::string retry_after;
        std::string transport;
        bool active() const { return status != 0 || !transport.empty(); }
    };
    struct sms {
        std::string sid, to, from, service, body;
        std::int64_t created_us = 0;
    };
    // Applies a fault to a request if one is armed. `accepted` tells whether the request was
    // valid and recorded (accept_then_drop only drops after recording).
    bool take_fault(fault& f, test::server_response& out, bool accepted);
    test::server_response pagerduty(const test::server_request& req, std::int64_t now);
    test::server_response twilio(const test::server_request& req, std::int64_t now);
    test::server_response webhook(const test::server_request& req, std::int64_t now);
    nlohmann::json sms_resource(const sms& m, std::int64_t now) const;

    sink_receiver_options opts_;
    fault pd_fault_, tw_fault_, wh_fault_;
    std::string twilio_delivery_ = "delivered";
    std::map<std::string, std::string> twilio_delivery_to_;
    nlohmann::json log_ = nlohmann::json::array();
    void log(const char* service, const test::server_request& req, const test::server_response& r,
             std::int64_t now);
    test::https_server::tls_fault tls_fault_ = test::https_server::tls_fault::none;
    nlohmann::json pd_events_ = nlohmann::json::array();
    std::map<std::string, int> pd_incidents_;  // dedup_key -> triggers
    std::vector<sms> sms_;
    nlohmann::json hooks_ = nlohmann::json::array();
    std::map<std::string, int> hook_ids_;  // webhook-id -> deliveries
    nlohmann::json pings_ = nlohmann::json::array();
    std::uint64_t rejected_ = 0, requests_ = 0;
};

}  // namespace glasswatch::lab
