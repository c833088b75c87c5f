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
//   - the stuck-partition rule.
// Pure functions and values; time is passed in. Secrets (keys, tokens) are only ever returned
// to the caller, never put into error texts.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/time.hpp"

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

// ---- error policy -----------------------------------------------------------------------------
// Every AMQP failure is retried (the daemon never gives up on a source): `transient` at the
// normal back-off, `busy` no sooner than 4 s, `stolen` (another epoch receiver owns the
// partition) and `fatal` (auth, missing entity, bad argument: an operator must act) at the
// long back-off, and raised in the health state at once.
enum class amqp_error_class { transient, busy, stolen, fatal };
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
