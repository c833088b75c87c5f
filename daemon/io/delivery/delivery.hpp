// Delivery engine: one worker coroutine per sink reads the outbox and delivers, marking a row
// delivered only on the sink's acknowledgement (invariant 2), and never sending anything twice
// that may have reached the service unless the service deduplicates it (invariant 8).
//
// Error policy: a sink's deliver() never throws; it returns an outcome classified once:
//   accepted/confirmed — the sink acknowledged (confirmed: final, e.g. SMS delivered);
//   transient — transport error, timeout, 408, 429, 5xx: retried forever with capped, jittered
//               back-off that honours Retry-After. The wait is the SERVICE's (core::service_gate):
//               it holds every request to that sink, new alerts and status polls included;
//   held      — not sent: the service's gate closed while the sink was part-way through;
//   permanent — the sink refused: the row stops (kept as failed, `outbox retry` re-queues it)
//               and a broken-sink episode opens, one per (sink, cause): one sink_broken page on
//               the other sinks, one sink_broken_recovered when the sink delivers again. A
//               holding cause (410, refused credentials, 404, TLS verification) stops every
//               request to the sink until its configuration changes or an operator re-queues.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <map>

#include "core/alerting/alert.hpp"
#include "core/base/backoff.hpp"
#include "core/config/config.hpp"
#include "io/store/runtime.hpp"
#include "io/store/store.hpp"

namespace glasswatch::io {

struct sink_outcome {
    enum class kind { accepted, confirmed, transient, held, permanent } what = kind::transient;
    std::string error;     // the sink's own error text (never a secret)
    std::string sink_ref;  // the sink's id for the delivery (Twilio SID, dedup key)
    std::optional<std::chrono::milliseconds> retry_after;
    // permanent only: the episode it belongs to ("http_410", "tls_verify", "sms_undelivered")
    // and whether the sink must stop sending (see core::refusal).
    std::string cause;
    bool holds = false;
};

class sink {
public:
    virtual ~sink() = default;
    // The back-off state of the service behind this sink, shared by all its requests. The engine
    // sets its policy and waits for it before anything is sent; the sink updates it from every
    // answer.
    core::service_gate& gate() noexcept { return gate_; }
    virtual const core::sink_config& config() const noexcept = 0;
    virtual asio::awaitable<sink_outcome> deliver(const outbox_row& row) = 0;
    // Sinks whose acceptance is not final (SMS: queued -> delivered) poll the state of accepted
    // rows through check(): confirmed, still accepted, or permanent (undelivered).
    virtual bool confirms_later() const noexcept { return false; }
    virtual asio::awaitable<sink_outcome> check(const outbox_row& row);
    // Sinks that group alert bursts (SMS, see core::sms_burst_gate) return their window here
    // and send several rows as one message through deliver_group(); zero = no grouping.
    virtual std::chrono::milliseconds burst_window() const noexcept { return {}; }
    virtual asio::awaitable<sink_outcome> deliver_group(const std::vector<outbox_row>& rows);
    // Which of the due rows one grouped message may cover. A group that failed half-way must be
    // finished as it was (its text already reached some recipients): only its own rows.
    virtual std::vector<outbox_row> group_of(const std::vector<outbox_row>& rows) const {
        return rows;
    }

protected:
    core::service_gate gate_;
};

// What a sink's configuration points at (kind, endpoint, account, recipients, CA, which
// secret): a holding episode ends when this changes.
std::string sink_fingerprint(const core::sink_config& cfg);

// The HTTP sinks (PagerDuty, Twilio, webhook), in io/delivery/sinks.cpp.
std::unique_ptr<sink> make_http_sink(runtime& rt, const core::sink_config& cfg,
                                     bool allow_world_readable, std::string& error);

// Builds the sink for a config entry; nullptr + error when it cannot (missing secret, ...).
std::unique_ptr<sink> make_sink(runtime& rt, const core::sink_config& cfg,
                                bool allow_world_readable, std::string& error);

struct delivery_stats {
    std::uint64_t delivered = 0, confirmed = 0, retries = 0, permanent_failures = 0,
                  escalations = 0;
    std::uint64_t grouped_messages = 0, grouped_alerts = 0;  // burst SMS and the alerts in them
    std::uint64_t held = 0;    // sends held back by the service's gate (Retry-After, back-off)
    core::micros last_ok = 0;  // last acknowledgement
    core::micros failing_since = 0;  // first failure since the last acknowledgement; 0 = fine
    std::string last_error;
};

// Delivery retries back off to at most 30 s (Retry-After still wins): a sink that recovers gets
// its backlog within half a minute, and a dead one costs one request per alert per 30 s.
inline core::backoff_policy delivery_backoff() {
    core::backoff_policy p;
    p.max = std::chrono::seconds(30);
    return p;
}

class delivery_engine {
public:
    delivery_engine(runtime& rt, std::vector<std::unique_ptr<sink>> sinks, core::alert_context ctx,
                    core::backoff_policy policy = delivery_backoff());

    // Runs all workers until stop(); in-flight sends finish (bounded by each sink's timeouts).
    asio::awaitable<void> run();
    void stop();

    // Waits until the outbox has no pending row due now, or `timeout` passes (replay --send).
    asio::awaitable<bool> drain(std::chrono::milliseconds timeout);

    const delivery_stats& stats(const std::string& sink) { return stats_[sink]; }
    delivery_stats stats_of(const std::string& sink) const {
        auto it = stats_.find(sink);
        return it == stats_.end() ? delivery_stats{} : it->second;
    }
    std::vector<std::string> sink_names() const;
    // At least one sink acknowledged its last attempt (or has not been tried yet).
    bool any_sink_reachable() const;
    // Broken-sink episodes not yet over (open, or closed by an operator or a configuration
    // change but not yet followed by a delivery), every sink.
    std::vector<sink_episode> broken() const;

    // Sends an alert straight to its sinks, bypassing the outbox: only for the one alert that
    // cannot be queued because the store itself is failing. One attempt per sink; true when at
    // least one sink accepted it.
    asio::awaitable<bool> send_direct(const core::alert& a, std::vector<std::string> sinks);

private:
    asio::awaitable<void> worker(sink& s);
    // Records the sink's answer for rows sent as one message (one row unless grouped).
    asio::awaitable<void> record_outcome(sink& s, const std::vector<outbox_row>& rows,
                                         const sink_outcome& o, std::chrono::milliseconds took);
    asio::awaitable<void> confirm_accepted(sink& s);
    asio::awaitable<void> follow_clock_step(const std::string& sink, core::micros step,
                                            core::micros now);
    asio::awaitable<void> escalate_from(sink& s);
    // Escalates one alert now (SMS undelivered or not delivered in time), or — without an
    // escalation target — opens the sink's episode for it.
    asio::awaitable<void> escalate_now(sink& s, const outbox_row& row, const sink_outcome& o);
    asio::awaitable<void> open_episode(sink& s, const outbox_row& row, const sink_outcome& o);
    asio::awaitable<void> end_episodes(sink& s);  // the sink delivered: recovered
    // True while a holding episode of this sink is open in the store (re-read: an operator's
    // `outbox retry` from another process ends it).
    asio::awaitable<bool> held_by_episode(sink& s);
    asio::awaitable<void> load_episodes();
    asio::awaitable<void> queue_health_alert(const core::alert& a, std::vector<std::string> to);
    std::vector<std::string> other_sinks(const std::string& name) const;
    asio::awaitable<void> sleep_until(asio::steady_timer& t,
                                      std::chrono::steady_clock::time_point when);

    runtime& rt_;
    std::vector<std::unique_ptr<sink>> sinks_;
    core::alert_context ctx_;
    core::backoff_policy policy_;
    bool stopping_ = false;  // main thread
    std::map<std::string, delivery_stats> stats_;
    std::map<std::string, std::chrono::steady_clock::time_point>
        last_check_;  // alert|sink -> last check()
    // A holding episode of this sink is open and not released (from episodes_).
    bool holding(const std::string& sink) const;
    // Episodes per sink not yet ended by a delivery (main thread; mirrors sink_episodes).
    std::map<std::string, std::vector<sink_episode>> episodes_;
};

}  // namespace glasswatch::io
