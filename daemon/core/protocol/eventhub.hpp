// Event Hubs over AMQP 1.0: the decisions, without any I/O (reference/eventhub.md §5).
//
//   - connection strings (Endpoint, SharedAccessKeyName, SharedAccessKey | SharedAccessSignature,
//     EntityPath, UseDevelopmentEmulator), parsed case-insensitively;
//   - SAS tokens: computed locally with HMAC-SHA256 over "<url-encoded sr>\n<se>" and verified
//     the way the service does it (the emulator uses the verifier);
//   - the receiver's selector filter ("amqp.annotation.x-opt-sequence-number > '42'") in both
//     directions: built by the consumer, parsed by the emulator;
//   - the per-partition checkpoint stored with the alerts (invariant 1);
//   - the error policy: which AMQP conditions are retried at which pace;
//   - the stuck-partition rule;
//   - retention gaps: where to attach, and which sequence numbers were lost (events_lost).
// Pure functions and values; time is passed in. Secrets (keys, tokens) are only ever returned
// to the caller, never put into error texts.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/time.hpp"

namespace glasswatch::core {

// ---- connection string ------------------------------------------------------------------------
struct eventhub_connection {
    std::string namespace_host;  // "contoso.servicebus.windows.net" (from Endpoint, lower-case)
    std::uint16_t port = 0;      // Endpoint's port, or 0 = the transport default
    std::string key_name;        // SharedAccessKeyName
    std::string key;             // SharedAccessKey, exactly as given (not base64-decoded)
    std::string signature;       // SharedAccessSignature (a ready token with fixed expiry)
    std::string entity_path;     // EntityPath (the hub), may be empty
    bool development_emulator = false;  // UseDevelopmentEmulator=true: plain AMQP, no TLS
};

// Parses "Endpoint=sb://host[:port]/;SharedAccessKeyName=..;SharedAccessKey=..;EntityPath=..".
// Keys are case-insensitive; unknown keys are ignored. On failure returns nullopt and sets
// `error` to a message that names the problem but never contains the key or signature.
std::optional<eventhub_connection> parse_eventhub_connection_string(std::string_view text,
                                                                    std::string& error);

// Default port: 5671 (AMQPS), 5672 (UseDevelopmentEmulator), 443 (WebSocket).
std::uint16_t eventhub_port(const eventhub_connection& c, bool websocket);

// "sb://<namespace>[:port]/<hub>": the audience of the put-token and the SAS `sr`. The port is
// kept when the Endpoint names one (the emulator convention, reference §7).
std::string eventhub_audience(const eventhub_connection& c, std::string_view hub);

// ---- SAS tokens -------------------------------------------------------------------------------
// "SharedAccessSignature sr=<enc uri>&sig=<enc b64 sig>&se=<expiry>&skn=<key name>".
std::string make_sas_token(std::string_view resource_uri, std::string_view key_name,
                           std::string_view key, std::int64_t expiry_unix_s);

struct sas_fields {
    std::string sr_encoded;  // as it appears in the token (still url-encoded)
    std::string resource;    // decoded
    std::string signature;   // decoded base64 text
    std::string key_name;
    std::int64_t expiry = 0;
};
std::optional<sas_fields> parse_sas_token(std::string_view token);

enum class sas_verdict { ok, malformed, unknown_key, bad_signature, expired, wrong_audience };
std::string_view to_string(sas_verdict v) noexcept;
// Checks `token` for `audience` (the token's resource must be a prefix of it) with the rule
// `key_name`/`key`, at `now_unix_s`.
sas_verdict verify_sas_token(std::string_view token, std::string_view audience,
                             std::string_view key_name, std::string_view key,
                             std::int64_t now_unix_s);

// When to put the next token: at 90% of its lifetime (the Python SDK's rule), at least 1 s on.
std::int64_t sas_renew_at(std::int64_t issued_unix_s, std::int64_t expiry_unix_s);

// ---- positions --------------------------------------------------------------------------------
// Where a receiver starts. `inclusive` selects >= instead of >.
struct start_position {
    enum class kind {
        sequence_number,
        offset,
        enqueued_time,
        start_of_stream,
        latest
    } what = kind::latest;
    std::int64_t sequence_number = 0;
    std::string offset;
    std::int64_t enqueued_ms = 0;  // unix epoch milliseconds
    bool inclusive = false;
};

// "amqp.annotation.x-opt-sequence-number > '42'" and friends (reference §5.4).
std::string selector_expression(const start_position& p);
// The inverse, for the emulator. nullopt for anything else.
std::optional<start_position> parse_selector_expression(std::string_view expr);

// Source address of a partition: "<hub>/ConsumerGroups/<group>/Partitions/<id>".
std::string partition_address(std::string_view hub, std::string_view group,
                              std::string_view partition);
// The inverse, for the emulator (case of the fixed words ignored).
struct partition_ref {
    std::string hub, group, partition;
};
std::optional<partition_ref> parse_partition_address(std::string_view address);

// What we persist per partition, in the same transaction as the alerts it covers.
struct eventhub_checkpoint {
    std::int64_t sequence_number = -1;  // last message committed; -1 = none yet
    std::string offset;                 // its x-opt-offset (opaque)
    std::int64_t enqueued_ms = 0;       // its x-opt-enqueued-time
};
// Store key "eventhub:<hub>:<partition>".
std::string eventhub_checkpoint_key(std::string_view hub, std::string_view partition);
std::string encode_checkpoint(const eventhub_checkpoint& c);  // small JSON object
std::optional<eventhub_checkpoint> decode_checkpoint(std::string_view text);

// Resume after `saved` (exclusive sequence number, the SDKs' reconnect pattern); without a
// checkpoint: from `now - lookback` by enqueued time.
start_position resume_position(const std::optional<eventhub_checkpoint>& saved, micros now,
                               std::chrono::seconds lookback);

// ---- annotations ------------------------------------------------------------------------------
// The x-opt-* annotations of one delivery after the adapter decoded the AMQP values.
struct message_position {
    std::optional<std::int64_t> sequence_number;
    std::optional<std::string> offset;
    std::optional<std::int64_t> enqueued_ms;
    std::optional<std::string> partition_key;
};
// A delivery is usable for checkpointing only with a sequence number.
bool usable(const message_position& p) noexcept;
// Moves `cp` to the delivery at `p`; an unusable position or one older than `cp` changes nothing.
void advance(eventhub_checkpoint& cp, const message_position& p);

// Strips a UTF-8 BOM and trailing whitespace from a body (reference §4.1).
std::string_view trim_body(std::string_view body) noexcept;

// ---- partitions: runtime info and retention gaps
// -------------------------------------------------- What $management READ com.microsoft:partition
// says (reference §5.6).
struct partition_info {
    std::int64_t begin_sequence = 0;    // begin_sequence_number: the oldest event still retained
    std::int64_t last_sequence = -1;    // last_enqueued_sequence_number; -1: never held an event
    std::int64_t last_enqueued_ms = 0;  // last_enqueued_time_utc (0 = unknown)
    bool empty = false;                 // is_partition_empty
};

// Sequence numbers that will never be read: expired by retention while nobody read them, or
// left behind when the hub was deleted and created again (the saved checkpoint is past the new
// partition's end). Sequence numbers are contiguous within a partition, so any jump between
// what was asked for (or the previous delivery) and what arrives is a loss.
struct sequence_gap {
    enum class cause { retention, reset } why = cause::retention;
    std::int64_t first = 0;        // first missing sequence number
    std::int64_t last = -1;        // last missing one; -1 = unknown (reset: the old hub's end)
    std::int64_t from_ms = 0;      // enqueued time of the last event read before it (0 = unknown)
    std::int64_t to_ms = 0;        // enqueued time of the first event after it (0 = unknown)
    std::int64_t checkpoint = -1;  // reset: the checkpoint that was past the end
    std::int64_t resumed_at = -1;  // reset: where reading starts again
};
std::string_view to_string(sequence_gap::cause c) noexcept;

// Where a (re)attach starts, and what is known lost before anything is read.
struct attach_plan {
    start_position from;
    // The sequence number that must arrive first (-1: not known, e.g. a start by enqueued time).
    std::int64_t expect_next = -1;
    std::int64_t last_read_ms = 0;     // enqueued time of the event before expect_next (0 unknown)
    std::optional<sequence_gap> lost;  // known now: raise it before reading on
};

// The attach rule. `after`: the last event read (committed, or received on this connection);
// `info`: the partition's runtime info when the $management READ answered.
//   - nothing read yet: from now - lookback by enqueued time, no gap check;
//   - after n, n <= last: "> n", expecting n + 1 first; if retention removed everything after n
//     (empty partition, begin > last), the gap n+1..last is known at once;
//   - after n, n > last (the hub was re-created, or reset): events_lost (cause reset) and, the
//     documented rule, the partition is read from its beginning (begin_sequence, inclusive) —
//     never a silent jump, never a refused attach retried for ever.
attach_plan plan_attach(const std::optional<eventhub_checkpoint>& after,
                        const std::optional<partition_info>& info, micros now,
                        std::chrono::seconds lookback);

// One delivery on a partition link against what was expected: a gap when the sequence number
// jumped. Moves `expect_next` / `last_read_ms` on; a repeat (a sequence number below
// expect_next) changes nothing; a delivery without a sequence number makes the next one the
// new start (expect_next = -1).
std::optional<sequence_gap> observe_delivery(std::int64_t& expect_next, std::int64_t& last_read_ms,
                                             const message_position& p);

// The other owner's epoch in the service's amqp:link:stolen description ("...higher epoch of
// '9'...", "...created with epoch of '9'...", "...a higher epoch '9' already exists..."), if any.
std::optional<std::int64_t> stolen_by_epoch(std::string_view description);

// ---- error policy -----------------------------------------------------------------------------
// Every AMQP failure is retried (the daemon never gives up on a source): `transient` at the
// normal back-off, `busy` no sooner than 4 s, `stolen` (another epoch receiver owns the
// partition) and `fatal` (auth, missing entity, bad argument: an operator must act) at the
// long back-off, and raised in the health state at once. On a partition link (not the
// connection) every class affects that partition only; `unauthorized` (a token that expired or
// was revoked) is answered by putting a new token and attaching again at once — only a refused
// put-token is fatal.
enum class amqp_error_class { transient, busy, stolen, fatal, unauthorized, out_of_range };
amqp_error_class classify_amqp_error(std::string_view condition) noexcept;
std::string_view to_string(amqp_error_class c) noexcept;

// ---- stuck partitions -------------------------------------------------------------------------
// A partition is stuck when the service reports newer events than we have committed and our
// position has not moved for `after`. Fed by the periodic $management READ.
class stuck_detector {
public:
    explicit stuck_detector(micros after) : after_(after) {}
    // committed: our last committed sequence number (-1 none); last_enqueued: the service's.
    // Returns whether the partition counts as stuck now.
    bool observe(std::int64_t committed, std::int64_t last_enqueued, micros now);
    bool stuck() const noexcept { return stuck_; }

private:
    micros after_;
    std::int64_t last_committed_ = -2;
    micros behind_since_ = 0;  // 0 = not behind
    bool stuck_ = false;
};

}  // namespace glasswatch::core
