// Durable state in one SQLite file (WAL, synchronous=FULL): alerts, the per-sink outbox,
// hash-chained evidence, source checkpoints, drills.
//
// Invariant 1 lives here: commit() writes the alerts, their outbox rows, their evidence and the
// source checkpoint that covers them in ONE transaction and returns only after it is durable.
// A source may advance its position only after commit() returned ok.
//
// Thread model: a `store` object is used by one thread at a time (the store thread in the
// daemon, the main thread in CLI commands). SQLite's own locking makes a second process (e.g.
// `glasswatch drill report` while the daemon runs) safe; busy_timeout covers short waits.
//
// Error policy: open() failures (corrupt file, newer schema, unwritable directory) are reported
// as a message and the daemon refuses to start — never a silent reset. Write failures (disk
// full, read-only) return an error string; the caller keeps the source position and retries.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/alerting/pipeline.hpp"
#include "core/evidence/chain.hpp"

struct sqlite3;

namespace glasswatch::io::store_sql {
class stmt;
}

namespace glasswatch::io {

using core::micros;

// 2: drills, meta.created_at; 3: alerts.rules, sink_episodes; 4: the sealed evidence chain
// (docs/evidence.md) replaces the hash-chained evidence table.
inline constexpr int store_schema_version = 4;

struct checkpoint {
    std::string source;    // "graph:signins:interactive", "eventhub:<hub>:<partition>", ...
    std::string position;  // opaque to the store (JSON or a number)
};

struct routed_finding {
    core::finding f;
    std::vector<std::string> sinks;
};

struct commit_result {
    bool ok = false;
    std::string error;                      // when !ok
    std::vector<std::string> new_alerts;    // ids inserted (not seen before)
    std::size_t duplicates = 0;             // alerts already known: no new page
    std::vector<std::string> drill_alerts;  // new alerts labelled DRILL by a declared drill
};

enum class delivery_state { pending, accepted, confirmed, failed };
std::string_view to_string(delivery_state s) noexcept;

struct outbox_row {
    std::string alert_id;
    std::string sink;
    delivery_state state = delivery_state::pending;
    int attempts = 0;
    micros next_attempt_at = 0;
    micros created_at = 0;
    micros accepted_at = 0;
    micros confirmed_at = 0;
    std::string last_error;
    std::string sink_ref;  // the sink's own id (Twilio SID, PagerDuty dedup key)
    core::alert a;         // the alert itself
};

// A declared drill: alerts for `account_id` whose event time falls in [starts_at, ends_at] are
// still sent, labelled DRILL, and become the drill's evidence.
struct drill {
    std::string id;  // "drill-" + 16 hex
    std::string account_id;
    std::string account_label;
    micros starts_at = 0, ends_at = 0, created_at = 0;
    std::string note;
};

// A broken sink is one episode per (sink, cause) — one sink_broken page, one recovery — never a
// page per refused alert. A holding episode (410 Gone, refused credentials, a certificate that
// fails verification) stops every request to the sink until the configuration changes or an
// operator re-queues (both "release" it); its rows wait, kept. An episode ends (closed) only
// when the sink delivers again: that is its sink_broken_recovered page.
struct sink_episode {
    std::string sink, cause;  // cause: "http_410", "http_401", "tls_verify", "sms_undelivered"...
    micros opened_at = 0;
    bool holds = false;
    std::string detail;       // the service's own error text
    std::string alert_id;     // the sink_broken alert raised for it
    std::string config_fp;    // fingerprint of the sink's configuration when it opened
    micros released_at = 0;   // a holding episode's hold lifted (0 = still holding)
    std::string released_by;  // the operator's name, or "configuration change"
    micros closed_at = 0;     // 0 while open
    std::string closed_by;    // "delivered"
    bool holding() const noexcept { return holds && released_at == 0 && closed_at == 0; }
};

struct requeue_result {
    bool ok = false;
    std::string error;
    std::int64_t rows = 0;           // failed rows put back to pending
    std::vector<std::string> sinks;  // sinks whose holding episodes were released
};

// The evidence chain's state on this machine (`status`, `evidence verify`, pages).
struct evidence_state {
    core::evidence::head head;              // the last entry and the epoch of the sealing key
    std::string key_id;                     // of the verification key this chain is sealed for
    std::int64_t unsealed = 0;              // entries after the last seal
    bool verification_key_on_host = false;  // <state>/evidence-verification.key still exists
};

class store {
public:
    // Opens (creating if needed) `<state_dir>/glasswatch.db`. Returns nullptr and sets `error`
    // (naming the path and what to do) when the directory is not writable, or the file is
    // corrupt, empty, from a newer glasswatch, or cannot be created. A new file is built aside
    // and renamed into place, so an existing empty or schema-less file is damage, never a fresh
    // start. A refused file is left byte for byte as it was.
    static std::unique_ptr<store> open(const std::string& state_dir, std::string& error,
                                       bool read_only = false);
    ~store();
    store(const store&) = delete;
    store& operator=(const store&) = delete;

    const std::string& path() const noexcept { return path_; }

    commit_result commit(const std::vector<routed_finding>& findings,
                         const std::vector<checkpoint>& checkpoints, micros now);

    std::optional<std::string> load_checkpoint(const std::string& source);
    std::vector<checkpoint> load_checkpoints(const std::string& prefix);

    // Outbox. Due: pending rows whose next attempt is at or before `now`, and rows scheduled
    // more than max_schedule_ahead after it (no back-off or Retry-After schedules that far: the
    // row was scheduled under a wall clock that has since been set back, e.g. while stopped).
    static constexpr micros max_schedule_ahead = 2LL * 3600 * 1000000;
    std::vector<outbox_row> due(const std::string& sink, micros now, int limit);
    // The wall clock was set back by -`step` (core::wall_step_detector) while rows of `sink`
    // waited for their next attempt: the rows still waiting under the old clock (next attempt
    // after `now - step`) keep their wait, moved by the step. Returns the rows moved, -1 on
    // error.
    std::int64_t shift_schedule(const std::string& sink, micros step, micros now);
    std::vector<outbox_row> pending_all();  // every row not yet accepted (for status / tests)
    bool mark_accepted(const std::string& alert_id, const std::string& sink, micros now,
                       const std::string& sink_ref, bool confirmed);
    bool mark_confirmed(const std::string& alert_id, const std::string& sink, micros now);
    // `sink_ref` (when not empty) records partial progress, e.g. the SMS already sent to some
    // recipients, so a retry does not repeat them.
    bool mark_retry(const std::string& alert_id, const std::string& sink, micros next_attempt,
                    const std::string& error, const std::string& sink_ref = {});
    // Rows accepted by a sink that confirms later (Twilio delivery status), oldest first.
    std::vector<outbox_row> awaiting_confirmation(const std::string& sink, int limit);
    // Escalation: alerts that `sink` has not confirmed since before `older_than` and that
    // have no row for `to` yet; add_outbox() gives them one (idempotent).
    std::vector<std::string> unconfirmed_without(const std::string& sink, const std::string& to,
                                                 micros older_than);
    bool add_outbox(const std::string& alert_id, const std::string& sink, micros now);
    bool mark_failed(const std::string& alert_id, const std::string& sink, micros now,
                     const std::string& error);
    // Records progress (the row's sink_ref) without touching its state or attempts: an SMS
    // about to be sent is marked unsure BEFORE the request leaves, so a crash mid-send leaves a
    // trace to look up instead of a silent second SMS.
    bool set_sink_ref(const std::string& alert_id, const std::string& sink,
                      const std::string& sink_ref);
    // Rows of a sink (empty = all) in a state (nullopt = any), newest first (`outbox list`).
    std::vector<outbox_row> list_outbox(const std::string& sink,
                                        std::optional<delivery_state> state, int limit);
    // Operator re-queue (`outbox retry`): failed rows of `sink` (or of `alert_id`) become pending
    // and due now, the holding episodes of the sinks involved are released, and the action is
    // chained as evidence. One transaction.
    requeue_result requeue(const std::string& sink, const std::string& alert_id, micros now,
                           const std::string& actor);

    // Sink episodes.
    bool open_episode(const sink_episode& e);
    std::vector<sink_episode> open_episodes(const std::string& sink = {});  // "" = every sink
    // Closes every open episode of `sink` (it delivered); returns them, closed_at set.
    std::vector<sink_episode> close_episodes(const std::string& sink, micros now,
                                             const std::string& by);
    // Lifts the hold of the open holding episodes of `sink` (they stay open until a delivery).
    bool release_episodes(const std::string& sink, micros now, const std::string& by);
    // The sink failed again for the same cause after a release: it holds again (no new page).
    bool rehold_episode(const std::string& sink, const std::string& cause);
    std::int64_t outbox_depth();
    // Rows not yet accepted, per sink name (to find rows of sinks no longer configured).
    std::map<std::string, std::int64_t> pending_by_sink();
    std::int64_t count_in_state(const std::string& sink, delivery_state state);
    std::optional<micros> oldest_undelivered();
    std::vector<outbox_row> deliveries_of(const std::string& alert_id);

    // Alerts.
    std::optional<core::alert> get_alert(const std::string& alert_id);

    // Evidence (store_evidence.cpp; docs/evidence.md). Every write above chains its entry in the
    // same transaction; these are the rest.
    // Chains one entry of its own (a reload, a posture result...) and seals it at once.
    bool record(std::string_view kind, const std::string& ref, const std::string& body, micros now);
    // Closes the epoch when an entry has waited unsealed for `max_age` or longer (delivery
    // records are sealed this way, in batches; alerts and operator actions at once).
    bool seal_if_due(micros now, micros max_age);
    std::optional<evidence_state> evidence();
    // "SEQ:HASH16" of the last entry, "" when there is none.
    std::string evidence_anchor();
    std::vector<core::evidence::entry> evidence_entries(std::int64_t from_seq = 1);
    // The machine's own chain: core::evidence::verify with the key file's epoch, then the alerts
    // and outbox tables compared with the entries that sealed them.
    core::evidence::verify_report verify_evidence(core::evidence::verify_input in);

    // Drills.
    bool add_drill(const drill& d);
    std::vector<drill> drills_since(micros since);
    std::vector<std::string> alerts_of_drill(const std::string& drill_id);
    // Start of the newest drill of `account_id` that produced an alert some sink accepted.
    std::optional<micros> last_successful_drill(const std::string& account_id);
    // When this state was created (drill-overdue counts from here when there was never a drill).
    micros created_at();

    const std::string& last_error() const noexcept { return last_error_; }

    int schema_version() const noexcept { return schema_version_; }

private:
    store() = default;
    bool exec(const char* sql);
    // Steps a write statement to its end: false (last_error_ set) when SQLite refused it.
    bool finish(store_sql::stmt& q);
    // Write transactions carry their evidence: begin_write() starts one, append() chains an entry
    // inside it, seal() closes the epoch, end_write() commits and, after a seal, evolves the key
    // file (after the commit: a crash in between is mended by the next writer).
    // Runs `f` in a write transaction of its own, or inside the one already open.
    bool in_write(const std::function<bool()>& f);
    int released_ = 0;  // episodes the last release_episodes() released
    bool begin_write();
    bool end_write();
    void abort_write();
    bool append(std::string_view kind, const std::string& ref, const std::string& body, micros now);
    bool seal(micros now);
    bool insert_entry(const core::evidence::entry& e);
    bool append_delivery(const std::string& alert_id, const std::string& sink,
                         std::string_view result, micros now, const std::string& error = {},
                         const std::string& sink_ref = {});
    bool load_chain_head(micros now);
    bool start_chain(micros now, const std::string& reason);
    bool migrate_legacy_evidence(micros now);
    std::string state_dir_;
    struct write_txn {
        bool open = false, loaded = false, sealed = false;
        core::evidence::head head;
        core::evidence::sealing_key key;
        std::string key_id;
    } txn_;
    const char* outbox_select() const noexcept;
    int schema_version_ = 0;
    bool seal_on_close_ = false;  // opened for writing and accepted
    sqlite3* db_ = nullptr;
    std::string path_;
    std::string last_error_;
};

// One daemon per state directory: an exclusive flock on <state_dir>/glasswatch.lock, held for
// the life of the process and released by the kernel on any exit (kill -9 included). CLI
// commands that write the store do not take it: SQLite's own locking serialises them with the
// running daemon.
class state_lock {
public:
    // nullptr + error (naming the holder's PID when it can be read) when another process holds it.
    static std::unique_ptr<state_lock> acquire(const std::string& state_dir, std::string& error);
    ~state_lock();
    state_lock(const state_lock&) = delete;
    state_lock& operator=(const state_lock&) = delete;

private:
    explicit state_lock(int fd) : fd_(fd) {}
    int fd_ = -1;
};

}  // namespace glasswatch::io
