// Event Hub source: Entra diagnostic-settings logs read from Azure Event Hubs over AMQP 1.0.
//
// One AMQP connection per source (all configured hubs share it), driven by Qpid Proton's
// connection_driver on the daemon's main thread (io/net/amqp_pump.hpp explains why not the Proton
// container). Transports (io/net_dial): AMQPS 5671 (TLS, same verification as the HTTPS
// client), AMQP over WebSockets 443 (AMQPWSB10 at /$servicebus/websocket, optionally through an
// HTTP CONNECT proxy), plain AMQP for UseDevelopmentEmulator=true.
//
// The connection is one explicit state machine (connection_phase), decided in the pure core
// (core::eventhub_session, core/protocol/eventhub_session.hpp) and driven from here by a thin
// Proton driver (eventhub_session_driver.hpp); each phase has a deadline (tuning.phase_timeout)
// and any failure leads to backoff → connecting:
//
//   connecting ─► tls ─► [ws_upgrade] ─► amqp_open ─► cbs_auth ─► management ─► receivers ─►
//   running
//        ▲                                                                                     │
//        └──────────────── backoff (jittered; ≥4 s on server-busy; long on auth/stolen) ◄────────┘
//
//   amqp_open   SASL ANONYMOUS (or PLAIN with the key as password), open with the namespace as
//               hostname, idle timeout = idle_timeout (Proton sends the heartbeats).
//   cbs_auth    $cbs put-token, one SAS token per hub (HMAC-SHA256 computed here, core/eventhub),
//               renewed at 90% of its lifetime while running.
//   management  $management READ of each hub (partition ids) and of each partition
//               (begin/last sequence numbers: the attach rule, the stuck rule).
//   receivers   one receiver per partition on the consumer group, resuming after the committed
//               checkpoint with the selector filter (first start: enqueued time = now − lookback);
//               optional com.microsoft:epoch link property. Each partition link has its own
//               small state machine (eventhub_session::link_state: info → attaching → receiving →
//               backoff/token → info ...): a link that is stolen, detached or refused affects
//               its partition only and attaches again on its own back-off (capped by
//               partition_backoff_max); the connection reaches `running` once every
//               partition's first attach was answered, whatever the answer.
//   running     deliveries are batched; each batch goes through the pipeline, and findings +
//               per-partition checkpoints are committed in ONE store transaction (ingestor),
//               overlapped with the processing of the next batch; only after the commit are the
//               batch's deliveries accepted and the credit given back. Credit is explicit
//               (credit_window 0): at most `credit` uncommitted messages per partition exist, which
//               bounds memory. A crash re-reads at most the uncommitted batch (at-least-once; alert
//               ids are deterministic, so a re-read never pages twice).
//
// Error policy: nothing is fatal to the daemon. Transport errors, failures of the connection or
// of its $cbs/$management links and refused put-tokens end the connection and reconnect after a
// back-off whose class comes from core::classify_amqp_error. A partition link's failure is that
// partition's: detach-forced and server-busy re-attach on its back-off; amqp:link:stolen (another
// epoch owner) too, and the partition counts as failing at once (health().common names it and
// the other epoch when the service says it, so the tripwire raises source_error after
// source_error_threshold); amqp:unauthorized-access (a CBS token that expired or was revoked)
// puts a new token and attaches again at once. The last error and failing-since are in health().
//
// Retention gaps (issue 16): every (re)attach resumes after the last event read and expects the
// next sequence number; a delivery that jumps (the service starts at the oldest event retention
// left), or runtime info showing everything after the checkpoint expired, is a critical
// events_lost alert naming hub, partition, the missing range and its enqueued-time window,
// committed in the same transaction as the checkpoint that moves past it. A checkpoint past the
// partition's end (the hub was deleted and created again) is events_lost too (cause "reset"),
// and the partition is then read from its beginning (core::plan_attach states the rule).
// A partition whose committed position does not move while $management reports newer events
// for `stuck_after` is reported as stuck (health + one warning line), not silently waited on,
// and the connection is made again once per episode (a broker that lost the link's credit
// serves a freshly attached link).
// Messages larger than max_message_size (advertised on the attach) are refused unread while
// they arrive (memory stays bounded): counted (health().common.rejected), logged at most once
// a minute, raised as unparsed_candidate alerts (what they held is unknown), and checkpointed
// past, so a partition never sticks on one.
//
// Thread: main thread only. Secrets (key, tokens) never reach logs or health texts.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/alerting/pipeline.hpp"
#include "core/base/backoff.hpp"
#include "core/base/log_gate.hpp"
#include "core/config/config.hpp"
#include "core/protocol/eventhub.hpp"
#include "core/protocol/eventhub_session.hpp"
#include "io/net/amqp_pump.hpp"
#include "io/sources/graph_poller.hpp"  // source_health
#include "io/sources/ingest.hpp"
#include "io/store/runtime.hpp"

namespace glasswatch::io {

// The connection's phases (core::eventhub_session decides them).
using core::connection_phase;

struct eventhub_partition_health {
    std::string hub, partition;
    std::int64_t committed_sequence = -1;      // last sequence number made durable
    std::int64_t last_enqueued_sequence = -1;  // the service's view ($management)
    std::uint64_t messages = 0;
    bool stuck = false;
    bool attached = false;  // its receiver link is attached on the live connection
};

struct eventhub_health {
    source_health
        common;  // last_success = last commit or management read, failing_since, last_error
    connection_phase phase = connection_phase::idle;
    std::uint64_t connects = 0;  // AMQP connections that reached running
    std::uint64_t failures = 0;  // connection attempts or connections that failed
    std::uint64_t auth_refused = 0, detached = 0, stolen = 0, busy = 0, phase_timeouts = 0;
    std::uint64_t messages = 0, batches = 0, commit_failures = 0, bad_bodies = 0;
    std::uint64_t token_puts = 0;
    std::uint64_t partition_failures = 0;  // partition links that failed (the others went on)
    std::uint64_t reattaches = 0;          // partition links attached again after a failure
    std::uint64_t gaps = 0;                // events_lost alerts raised
    // Most messages ever held uncommitted (received, not yet durable): bounded by credit per
    // partition, whatever the backlog.
    std::size_t max_uncommitted = 0;
    std::vector<eventhub_partition_health> partitions;
    std::size_t stuck_partitions() const;
    bool all_attached() const;  // every partition known so far is attached
};

// Test seams and production defaults (not in the config file).
struct eventhub_tuning {
    std::chrono::milliseconds phase_timeout{20000};  // CBS must finish within 20 s anyway
    std::chrono::seconds token_ttl{3600};
    std::chrono::milliseconds management_interval{60000};
    std::chrono::milliseconds stuck_after{300000};
    std::chrono::milliseconds backoff_initial{1000}, backoff_max{60000};
    std::chrono::milliseconds busy_min{4000};       // server-busy: the Python SDK waits >= 4 s
    std::chrono::milliseconds long_backoff{60000};  // the connection: auth refused
    // One partition's re-attach back-off cap (stolen, detached, refused): its own, short enough
    // that a partition another owner held for a moment is read again within seconds.
    std::chrono::milliseconds partition_backoff_max{30000};
    std::size_t max_batch = 500;  // messages per store transaction
    bool sasl_plain = false;      // SASL PLAIN; forced on by [sources.eventhub] sasl = "plain"
};

class eventhub_source {
public:
    // Reads the connection string (secret_ref) at construction; `error` is set and ok() false
    // when it is unreadable or malformed (the daemon refuses to start).
    eventhub_source(runtime& rt, core::pipeline& pipeline, ingestor& ingest,
                    const core::config& cfg, eventhub_tuning tuning = {});
    ~eventhub_source();
    eventhub_source(const eventhub_source&) = delete;
    eventhub_source& operator=(const eventhub_source&) = delete;

    bool ok() const noexcept { return error_.empty(); }
    const std::string& error() const noexcept { return error_; }

    boost::asio::awaitable<void> run();
    void stop();
    // Drops the current connection as if the network failed (tests, and an operator's kick).
    void drop_connection();

    const eventhub_health& health() const noexcept { return health_; }

    struct session;  // the proton::messaging_handler of one connection (eventhub_session_driver)

private:
    boost::asio::awaitable<void> connect_once();
    // Batches and their commits (running): the main thread runs messages through the pipeline
    // into the open batch while the previous batch's store transaction is under way on the
    // store thread (one in flight, so checkpoints stay in order). A batch is committed as soon
    // as nothing else is; while one is, the next grows (group commit: slow fsyncs mean bigger
    // batches, never a slower pipeline).
    struct batch;
    void process_pending(session* s, std::size_t max_messages);
    void start_commit();
    bool finish_commit(session* s);
    boost::asio::awaitable<bool> settle_inflight(session* s);  // false: the store refused
    std::size_t uncommitted() const;
    boost::asio::awaitable<void> wait_until(std::chrono::steady_clock::time_point tp);
    // Does what the machine decided (Proton calls through `s`, the live connection's session,
    // when there is one; health and log lines here), then copies its counters and phase.
    void perform(session* s, core::eventhub_session::actions acts);
    void sync_health();
    void fail(const std::string& error, core::amqp_error_class cls);
    void notify();
    // events_lost: the alert (critical, evidence) for a gap; raise_gap() queues it in the open
    // batch when it is known before any delivery.
    core::finding gap_finding(const std::string& hub, const std::string& partition,
                              const core::sequence_gap& g, core::micros now);
    void raise_gap(const std::string& hub, const std::string& partition,
                   const core::sequence_gap& g);
    // The source fails while partitions count as failing (the machine's partition_outage).
    void update_partition_health();
    eventhub_partition_health& partition_health(const std::string& hub, const std::string& p);
    core::finding refused_message_finding(const std::string& key, const core::message_position& pos,
                                          std::uint64_t size, const std::string& head,
                                          core::micros now) const;

    runtime& rt_;
    core::pipeline& pipeline_;
    ingestor& ingest_;
    const core::config& cfg_;
    const core::eventhub_source_config& ec_;
    eventhub_tuning tuning_;
    core::eventhub_connection conn_;
    std::vector<std::string> hubs_;
    std::string error_;
    std::unique_ptr<boost::asio::ssl::context> tls_;
    // The connection's decisions, across connections (committed checkpoints, stuck clocks,
    // the reconnect back-off); null when the configuration is unusable (!ok()).
    std::unique_ptr<core::eventhub_session> machine_;
    bool loaded_ = false;
    bool stopping_ = false;
    bool signalled_ = false;
    bool drop_requested_ = false;
    std::shared_ptr<batch> open_;      // processed, not yet handed to the store
    std::shared_ptr<batch> inflight_;  // its store transaction under way
    session* session_ = nullptr;       // of the live connection, owned by its pump
    std::weak_ptr<amqp_pump> pump_;
    // The wake-up timer lives in run()'s coroutine frame (io objects must not outlive their
    // io_context, and this source may).
    boost::asio::steady_timer* timer_ = nullptr;
    // Malformed, oversized and body-less messages: each at most a line a minute.
    core::log_gate problem_log_{60LL * 1000000}, too_large_log_{60LL * 1000000},
        no_body_log_{60LL * 1000000};
    eventhub_health health_;
};

}  // namespace glasswatch::io
