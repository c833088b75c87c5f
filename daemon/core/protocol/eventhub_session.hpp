// The Event Hub connection's decisions as one state machine, without any I/O (sans-I/O, like
// Boost.MySQL's connection node): which request links to open, when to put CBS tokens and renew
// them, reading hub and partition info via $management, when and from which position to attach
// each partition link, what a link error means by its class, per-partition and reconnect
// back-off, when the connection counts as running, the stuck rule.
//
// The driver (io/sources/eventhub_session_driver.cpp) feeds it what happened — transport phases,
// the AMQP open, request replies, partition links attached or closed with their condition,
// deliveries, commits, a tick with `now` — and performs the actions it returns, in order (open a
// request link, put a token, READ, attach a partition from a position, give credit, close a link,
// fail the connection with a class and a text, ...). Actions that only report (a partition went
// down, is stuck, was read) are for the driver's health view and log lines: core does not log.
//
// It lives as long as the source: per-connection state is reset by begin_connection(); what
// outlives a connection (the committed checkpoints, the stuck clocks, the reconnect back-off,
// the counters) stays. Time comes in with every event (eventhub_clock: steady for deadlines and
// back-offs, wall for the token expiry, the lookback and what health reports); jitter comes from
// the function given at construction, so tests are deterministic. Secrets never enter: a
// put_token action names the audience and the expiry, the driver signs it.
//
// Error policy (the one sentence of core::classify_amqp_error, applied): a failure of the
// connection, of $cbs or $management, or a refused put-token ends the connection (fail_connection,
// the first cause counts) and the next one starts after on_connection_end()'s delay; a partition
// link's failure is that partition's alone: it backs off on its own (partition_backoff_max) and
// attaches again after a fresh $management READ; unauthorized puts a new token and attaches again
// at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/base/time.hpp"
#include "core/protocol/eventhub.hpp"

namespace glasswatch::core {

// The connection's phases; each has a deadline (phase_timeout) until `running`.
enum class connection_phase {
    idle,
    connecting,
    tls,
    ws_upgrade,
    amqp_open,
    cbs_auth,
    management,
    receivers,
    running,
    backoff,
    stopped
};
std::string_view to_string(connection_phase p) noexcept;

// One moment read from both clocks.
struct eventhub_clock {
    micros steady = 0;  // a monotonic clock (deadlines, back-offs)
    micros wall = 0;    // microseconds since the epoch (token expiry, lookback, health)
};

struct eventhub_session_config {
    struct hub {
        std::string name;
        std::string audience;  // of its put-token: core::eventhub_audience()
    };
    std::vector<hub> hubs;
    std::string consumer_group = "$Default";
    std::optional<std::int64_t> epoch;               // com.microsoft:epoch on every partition link
    std::uint32_t credit = 300;                      // per partition link
    std::uint64_t max_message_size = 2u << 20;       // advertised; a bigger delivery is refused
    std::chrono::seconds start_lookback{3600};       // no checkpoint: from now - this
    bool sasl_plain = false;                         // SASL PLAIN authorised the connection: no CBS
    std::chrono::milliseconds phase_timeout{20000};  // each phase, each READ, attach, put-token
    std::chrono::seconds token_ttl{3600};
    std::chrono::milliseconds management_interval{60000};  // the periodic READ of partitions
    std::chrono::milliseconds stuck_after{300000};
    std::chrono::milliseconds backoff_initial{1000}, backoff_max{60000};  // reconnect
    std::chrono::milliseconds busy_min{4000};                // server-busy: never sooner
    std::chrono::milliseconds long_backoff{60000};           // the connection: auth refused, stolen
    std::chrono::milliseconds partition_backoff_max{30000};  // one partition's re-attach cap
};

// What a $cbs or $management reply said, decoded by the driver.
struct eventhub_reply {
    std::int64_t status = 0;  // status-code; 0 when missing or unreadable
    std::string description;  // status-description
    // The READ answers: present when the body is an AMQP map. Fields it lacks keep their
    // defaults (partition_ids empty; partition_info's defaults).
    struct read_body {
        std::vector<std::string> partition_ids;  // com.microsoft:eventhub
        partition_info partition;                // com.microsoft:partition
    };
    std::optional<read_body> body;
};

// An AMQP error condition; an empty name means none was given.
struct amqp_condition {
    std::string name, description;
    explicit operator bool() const noexcept { return !name.empty(); }
};

// Counters that outlive connections (the source's health copies them).
struct eventhub_session_counters {
    std::uint64_t connects = 0;  // connections that reached running
    std::uint64_t failures = 0;  // connection attempts or connections that failed
    std::uint64_t auth_refused = 0, detached = 0, stolen = 0, busy = 0, phase_timeouts = 0;
    std::uint64_t token_puts = 0;
    std::uint64_t partition_failures = 0;  // partition links that failed (the others went on)
    std::uint64_t reattaches = 0;          // partition links attached again after a failure
};

class eventhub_session {
public:
    using link_id = std::uint64_t;  // a partition link, unique for the machine's life; 0 = none
    using request_id = std::uint64_t;

    // ---- actions (performed by the driver in the order given) ----
    enum class request_node { cbs, management };
    struct open_request_link {  // a sender to `address`, a receiver whose target is reply_to
        request_node node;
        std::string address, reply_to;
    };
    struct put_token {  // a $cbs put-token of a SAS token for `audience` expiring then
        request_id id;
        std::string hub, audience;
        std::int64_t expiry_unix_s = 0;
    };
    struct read_hub {  // $management READ com.microsoft:eventhub
        request_id id;
        std::string hub;
    };
    struct read_partition {  // $management READ com.microsoft:partition
        request_id id;
        std::string hub, partition;
    };
    struct attach_partition {  // a receiver: explicit credit, no auto-accept
        link_id link;
        std::string key, hub, partition;
        std::string address;  // <hub>/ConsumerGroups/<group>/Partitions/<id>
        std::string name;     // a re-attach gets a name of its own
        start_position from;
        std::string selector;  // apache.org:selector-filter:string
        std::optional<std::int64_t> epoch;
        std::uint64_t max_message_size = 0;
    };
    struct give_credit {
        link_id link;
        std::uint32_t count = 0;
    };
    struct close_link {
        link_id link;
    };
    struct now_running {  // every partition's first attach was answered
        std::size_t receiving = 0, partitions = 0, hubs = 0;
    };
    struct fail_connection {  // end this connection; on_connection_end() says when again
        amqp_error_class cls;
        std::string text;  // never a secret
    };
    struct events_lost {  // known before anything is read (runtime info)
        std::string hub, partition;
        sequence_gap gap;
    };
    struct partition_started {  // a partition of this connection (health lists it)
        std::string key, hub, partition;
    };
    struct partition_attached {
        std::string hub, partition;
        bool again = false;  // after a failure
    };
    struct partition_failed {
        std::string hub, partition;
        amqp_error_class cls;
        std::string why;
        std::optional<std::chrono::milliseconds> retry_in;  // nullopt: a new token first
    };
    struct partition_read {  // runtime info arrived
        std::string hub, partition;
        std::int64_t last_enqueued = -1;
    };
    struct partition_stuck {
        std::string hub, partition;
        std::int64_t committed = -1, last_enqueued = -1;
    };
    struct partition_moves {  // no longer stuck
        std::string hub, partition;
    };
    using action = std::variant<open_request_link, put_token, read_hub, read_partition,
                                attach_partition, give_credit, close_link, now_running,
                                fail_connection, events_lost, partition_started, partition_attached,
                                partition_failed, partition_read, partition_stuck, partition_moves>;
    using actions = std::vector<action>;

    // ---- one partition's link: its own small state machine inside the connection ----
    //
    //   info ─► attaching ─► receiving ─► (detached) ─► backoff ─► info ─► ...
    //                                         └─ unauthorized ─► token ─► info ─► ...
    //
    //   info       $management READ com.microsoft:partition (the attach rule needs it);
    //   attaching  the receiver attach is out, resuming after `after`;
    //   receiving  attached, credit given;
    //   backoff    until retry_at (jittered, per class, capped by partition_backoff_max);
    //   token      waiting for a new CBS token (the old one expired or was revoked).
    enum class link_state { info, attaching, receiving, backoff, token };
    struct partition_link {
        std::string key, hub, id;
        link_state state = link_state::info;
        link_id link = 0;  // the latest attach (0: none yet)
        std::optional<partition_info> info;
        // The last event read on this connection (or committed before it): where a re-attach
        // resumes, so the open batch is not read twice.
        std::optional<eventhub_checkpoint> after;
        std::int64_t expect_next = -1, last_read_ms = 0;  // the gap check (observe_delivery)
        // After a reset (checkpoint past the end): where reading restarts until the first
        // delivery, so a re-attach before it does not fall back to the lookback.
        std::optional<std::int64_t> restart_at;
        int failures_in_row = 0;
        bool tried = false;     // its first attach is answered (or failed)
        micros retry_at = 0;    // steady; backoff
        micros asked_at = 0;    // steady; info / attaching: answered within phase_timeout
        micros down_since = 0;  // wall; 0 while receiving
        amqp_error_class last_class = amqp_error_class::transient;
        std::string last_error;
        std::uint64_t attaches = 0;
    };

    // A delivery on a partition link: `partition` is null when the link is no partition's
    // current link (the delivery is ignored); `gap`: events lost just before it.
    struct delivery_note {
        const partition_link* partition = nullptr;
        std::optional<sequence_gap> gap;
    };
    // Partitions that count as failing (the source's health): since when, and why.
    struct outage {
        micros since = 0;  // wall
        std::string why;
    };
    // After a connection ended: when to try again, and the cause that counted.
    struct reconnect {
        std::chrono::milliseconds delay{0};
        amqp_error_class cls = amqp_error_class::transient;
        std::string text;
    };

    static constexpr micros never = std::numeric_limits<micros>::max();

    // `jitter` returns u in [0, 1) for each back-off (core::backoff_delay).
    eventhub_session(eventhub_session_config cfg, std::function<double()> jitter);

    // ---- across connections ----
    // A checkpoint made durable (loaded at start, or committed): where the partition resumes
    // on the next connection, and the stuck rule's view of progress.
    void on_committed(const std::string& key, const eventhub_checkpoint& cp);
    // The connection ended (it failed; not a stop): counts it, returns the back-off and the
    // cause; the phase is `backoff`.
    reconnect on_connection_end();
    void on_stopped();

    // ---- one connection ----
    void begin_connection(eventhub_clock now);  // dialling: per-connection state reset
    void on_transport_phase(connection_phase p, eventhub_clock now);  // tls, ws_upgrade
    actions on_dial_failed(const std::string& text, bool timed_out);
    void on_amqp_start(eventhub_clock now);  // transport up, the AMQP engine starts
    // The mechanisms the server offered (nullopt until its SASL frame is complete).
    actions on_sasl_offered(const std::optional<std::vector<std::string>>& offered);
    actions on_connection_open(eventhub_clock now);
    // A $cbs or $management reply to request `id` (unknown ids are ignored).
    actions on_reply(request_id id, const eventhub_reply& reply, eventhub_clock now);
    actions on_partition_attached(link_id link, eventhub_clock now);
    delivery_note on_delivery(link_id link, const message_position& pos);
    // A link closed by the peer: `link` when it is a partition link (0 otherwise); `label`
    // names it for a connection failure ("receiver $cbs").
    actions on_link_closed(link_id link, std::string_view label, const amqp_condition& error,
                           eventhub_clock now);
    actions on_connection_error(const amqp_condition& error);
    actions on_connection_closed();  // closed by the peer without an error
    actions on_transport_error(const amqp_condition& error);
    actions on_error(const amqp_condition& error);
    // Any other failure (the store, a drop, the pump): the first cause of a connection's end
    // is the one that counts.
    actions fail(amqp_error_class cls, const std::string& text);
    // Timed duties: phase deadline, partition back-offs and unanswered READs/attaches, the
    // put-token deadline, token renewal, the periodic READ.
    actions on_tick(eventhub_clock now);

    // ---- queries ----
    micros next_wake() const;  // steady; when on_tick has something to do
    connection_phase phase() const noexcept { return phase_; }
    bool running() const noexcept { return running_; }
    const std::optional<fail_connection>& failure() const noexcept { return failure_; }
    const eventhub_session_counters& counters() const noexcept { return counters_; }
    const std::map<std::string, partition_link>& partitions() const noexcept { return parts_; }
    std::size_t tokens_waiting() const noexcept { return tokens_waiting_; }
    // The last durable sequence number of a partition (-1: none).
    std::int64_t committed_sequence(const std::string& key) const;
    // Whether a delivery of `bytes` is refused unread (larger than max_message_size).
    bool too_large(std::uint64_t bytes) const noexcept { return bytes > cfg_.max_message_size; }
    // After a commit: credit goes back only to the link a message came on while it is still
    // its partition's live, receiving link (a re-attached link got its own credit).
    bool returns_credit(const std::string& key, link_id link) const;
    std::optional<outage> partition_outage() const;
    // "; SASL: the server offers [...], glasswatch uses ..." for a failure in amqp_open.
    std::string sasl_words() const;

private:
    struct request {
        enum class kind { token, hub, partition } what;
        std::string hub, partition;
    };
    void set_phase(connection_phase p, eventhub_clock now);
    void fail_into(actions& out, amqp_error_class cls, std::string text);
    request_id next_request(request r);
    void open_management(actions& out);
    void put_tokens(actions& out, eventhub_clock now);
    void read_hubs(actions& out);
    void ask_info(actions& out, partition_link& pl, eventhub_clock now);
    void start_partitions(actions& out, eventhub_clock now);
    void attach(actions& out, partition_link& pl, eventhub_clock now);
    void check_running(actions& out, eventhub_clock now);
    void partition_failed_into(actions& out, partition_link& pl, amqp_error_class cls,
                               const std::string& why, eventhub_clock now);
    void partition_info_into(actions& out, partition_link& pl, std::int64_t last_enqueued,
                             eventhub_clock now);
    void retry_due(actions& out, eventhub_clock now);
    partition_link* part_of(link_id link);
    std::chrono::milliseconds partition_backoff(amqp_error_class cls, int failures_in_row);
    micros token_period() const;

    eventhub_session_config cfg_;
    std::function<double()> jitter_;

    // Across connections.
    std::map<std::string, eventhub_checkpoint> committed_;  // checkpoint key -> durable
    std::map<std::string, stuck_detector> stuck_;           // checkpoint key -> its clock
    eventhub_session_counters counters_;
    int failures_in_row_ = 0;  // connections that failed since the last one ran
    link_id next_link_ = 1;
    connection_phase phase_ = connection_phase::idle;

    // This connection.
    std::optional<fail_connection> failure_;
    micros phase_deadline_ = never;           // steady; until running
    std::map<request_id, request> inflight_;  // asked, not yet answered
    request_id next_id_ = 1;
    std::size_t tokens_waiting_ = 0, hubs_waiting_ = 0;
    micros tokens_sent_at_ = 0;                    // steady; while tokens_waiting_
    micros renew_at_ = never, manage_at_ = never;  // steady
    std::map<std::string, std::vector<std::string>> hub_partitions_;  // hub -> partition ids
    std::map<std::string, partition_link> parts_;                     // checkpoint key -> link
    bool running_ = false;
    std::optional<std::vector<std::string>> sasl_offered_;
    bool sasl_checked_ = false;
};

}  // namespace glasswatch::core
