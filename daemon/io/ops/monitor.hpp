// The monitor: the daemon's view of itself, on the main thread.
//
// Once a second it takes a health snapshot of every source, the store and the sinks, runs the
// tripwire (core/alerting/tripwire.hpp) and commits the health alerts it yields like any other
// alert — except store_unwritable, which cannot be queued in the store that is failing and is sent
// straight to the sinks until one accepts it. It also
//   - raises drill_overdue for an account without a successful drill for drill_max_age,
//   - pings the dead-man switch (heartbeat.url while healthy, "<url>/fail" while not), and
//   - answers the admin endpoints: liveness, readiness and the Prometheus metrics.
//
// Thread: main thread only (store reads hop to the store thread through runtime::on_store).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/alerting/alert.hpp"
#include "core/alerting/pipeline.hpp"
#include "core/alerting/tripwire.hpp"
#include "core/config/config.hpp"
#include "io/delivery/delivery.hpp"
#include "io/net/https_client.hpp"
#include "io/sources/ingest.hpp"
#include "io/store/runtime.hpp"

namespace glasswatch::io {

struct source_probe {
    std::string name;
    std::function<core::source_snapshot()> snapshot;
    std::function<core::micros()> token_expiry;  // optional
};

struct readiness {
    bool ready = true;
    std::vector<std::string> reasons;  // why not, one line each
};

// What the daemon's view of itself keeps across a configuration reload, owned by the daemon and
// lent to each monitor in turn: the tripwire's conditions (a firing one must neither page again
// nor announce a recovery that did not happen), the store alerts no sink has taken yet, the
// heartbeat's state and the process-wide counters.
struct monitor_memory {
    explicit monitor_memory(const core::tripwire_config& t) : tripwire(t) {}
    core::tripwire tripwire;
    core::micros process_started = 0;
    bool start_pinged = false;
    bool last_beat_healthy = true;
    // store_unwritable alerts not yet accepted by any sink (sent directly, retried each tick)
    std::vector<core::alert> direct_pending;
    std::uint64_t beats_ok = 0, beats_fail = 0, beat_errors = 0;
    // Configuration reloads (SIGHUP): counts, the last one's outcome, and since when reloads
    // fail (0 = the last one applied): the episode of the config_reload_failed alert.
    std::uint64_t reloads_ok = 0, reloads_failed = 0;
    core::micros last_reload_at = 0;
    core::micros reload_failing_since = 0;
};

class monitor {
public:
    monitor(runtime& rt, const core::config& cfg, core::alert_context ctx, ingestor& ingest,
            delivery_engine& delivery, const core::pipeline& pipeline, monitor_memory& memory);
    ~monitor();

    void add_source(source_probe p) { sources_.push_back(std::move(p)); }

    boost::asio::awaitable<void> run();
    void stop();

    bool live() const;  // the loop ticked recently
    readiness ready() const;
    std::string metrics_text() const;

    // Raises a health alert from outside the monitor (a refused reload): queued, committed by
    // the monitor's own loop within a second, so nothing outlives this generation's objects.
    void report(core::health_alert h);

private:
    boost::asio::awaitable<void> tick();
    boost::asio::awaitable<void> raise(core::health_alert h);  // by value: may run detached
    boost::asio::awaitable<void> check_drills();
    // false when the beat was held back (start grace): try again at the next tick.
    boost::asio::awaitable<bool> heartbeat();
    boost::asio::awaitable<bool> ping(std::string url);  // true when the switch answered 2xx
    core::micros start_grace() const;
    core::health_snapshot snapshot() const;
    bool is_paging_sink(const std::string& name) const;  // not a local file

    runtime& rt_;
    const core::config& cfg_;
    core::alert_context ctx_;
    ingestor& ingest_;
    delivery_engine& delivery_;
    const core::pipeline& pipeline_;
    monitor_memory& mem_;
    std::vector<source_probe> sources_;
    std::unique_ptr<https_client> heartbeat_http_;
    // When this monitor (and the sources it watches) started: the process start, or the reload
    // that built them. The start grace and "never polled yet" count from here.
    core::micros started_at_ = 0;
    // Schedules and liveness run on the steady clock: a wall clock set back a day must not
    // silence the heartbeat for that day.
    using steady = std::chrono::steady_clock;
    steady::time_point last_tick_{};
    steady::time_point next_beat_{};
    steady::time_point next_head_{};  // the next evidence_head alert ([evidence] head_interval)
    std::string head_sent_;           // the head the last one carried
    steady::time_point next_drill_check_{};
    bool stopping_ = false;
    std::vector<core::health_alert> reported_;  // report()ed, raised by the next tick
    // Cached from the store thread on every tick, for /readyz and /metrics.
    std::int64_t outbox_depth_ = 0;
    std::string evidence_head_;  // "SEQ:HASH16", read each tick
    core::micros oldest_undelivered_ = 0;
    boost::asio::steady_timer* timer_ = nullptr;  // lives in run()'s frame
};

}  // namespace glasswatch::io
