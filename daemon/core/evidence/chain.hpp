// The evidence chain: every fact an auditor relies on (matched records, alerts, delivery attempts,
// drills, posture results, lost-event notices, reloads, operator actions) as numbered entries,
// each hashed over its predecessor and sealed (MAC) with the key of its epoch. An epoch ends with a
// `seal` entry, after which the store evolves the key and forgets the old one
// (sealing_key.hpp; docs/evidence.md has the scheme and what it proves).
//
// Pure: building entries and verifying a run of them. The store (io/store) keeps them in SQLite
// and the key in its own file; `evidence verify` and `evidence export` read them through here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/time.hpp"
#include "core/evidence/sealing_key.hpp"

namespace glasswatch::core::evidence {

// What an entry records. The names are part of the sealed data: never renamed.
namespace kinds {
inline constexpr std::string_view init = "init";            // the chain began (key id)
inline constexpr std::string_view migration = "migration";  // an older state file was sealed
inline constexpr std::string_view alert = "alert";          // an alert and the record behind it
inline constexpr std::string_view delivery = "delivery";    // one delivery attempt and its result
inline constexpr std::string_view sink_episode = "sink_episode";  // a sink broke / recovered
inline constexpr std::string_view drill = "drill";                // a drill was declared
inline constexpr std::string_view posture = "posture";            // a posture result changed
inline constexpr std::string_view reload = "reload";              // the configuration changed
inline constexpr std::string_view operator_action = "operator";   // re-queue, classification...
inline constexpr std::string_view seal = "seal";                  // closes an epoch
}  // namespace kinds

inline const std::string genesis_hash(64, '0');

struct entry {
    std::int64_t seq = 0;    // 1, 2, 3, ... without gaps
    std::int64_t epoch = 0;  // the sealing epoch it was appended in
    std::string kind;
    micros recorded_at = 0;
    std::string ref;        // what it is about (alert id, sink, drill id...), for look-ups
    std::string body;       // JSON text
    std::string prev_hash;  // the previous entry's hash (genesis_hash for seq 1)
    std::string hash;       // SHA-256 over the fields above, 64 hex
    std::string mac;        // seal(K_epoch, epoch, hash), 64 hex
};

// SHA-256 over seq, epoch, kind, recorded_at, ref, body and prev_hash, each length-prefixed so no
// two different entries encode alike.
std::string entry_hash(const entry& e);

// The chain's end as the store sees it.
struct head {
    std::int64_t seq = 0;
    std::string hash = genesis_hash;
    std::int64_t epoch = 0;  // the epoch the next entry belongs to (the key file's)
    bool last_is_seal = false;
};

// The next entry after `h`, hashed and sealed with K_epoch (h.epoch).
entry make_entry(const head& h, const sealing_key& k_epoch, std::string_view kind,
                 micros recorded_at, std::string ref, std::string body);
// The entry that closes epoch h.epoch (after it, the key evolves to h.epoch + 1).
entry make_seal(const head& h, const sealing_key& k_epoch, micros recorded_at);
// `h` moved past `e`.
head advance(const head& h, const entry& e);

// ---- anchors: the head as it left the machine -------------------------------------------------

// "SEQ:HASH16" — a sequence number and the first 16 hex digits of that entry's hash. Pages, the
// heartbeat and the evidence-head webhook carry it; an auditor keeps them off the machine.
struct anchor {
    std::int64_t seq = 0;
    std::string hash_prefix;  // 16 lower-case hex
};
std::string anchor_text(std::int64_t seq, std::string_view hash);
std::optional<anchor> parse_anchor(std::string_view text);
// Every anchor-shaped token in a text (a webhook receiver's history, a mail archive, a log).
std::vector<anchor> find_anchors(std::string_view text);

// ---- verification ------------------------------------------------------------------------------

struct verify_input {
    // K_0 (the verification key): every seal is checked. Without it only the hashes, numbering
    // and epoch structure are, and a rewrite that recomputes every hash goes unseen.
    std::optional<sealing_key> k0;
    // The epoch of the sealing key on the machine, when verifying the machine's own chain: the
    // chain must reach it (deleting closed epochs, or everything, shows as a gap here).
    std::optional<std::int64_t> key_epoch;
    std::vector<anchor> anchors;
    // A bundle may start after seq 1 (an export --since); the machine's chain starts at 1.
    bool from_genesis = true;
};

struct verify_report {
    bool ok = true;
    std::int64_t entries = 0;
    std::int64_t first_bad_seq = 0;  // the first entry that is wrong or missing; 0 when ok
    std::string problem;             // what is wrong, naming sequence numbers
    bool seals_checked = false;
    std::int64_t last_seq = 0;
    std::string last_hash;
    std::int64_t sealed_through_seq = 0;  // the last entry covered by a closed epoch
    std::int64_t closed_epochs = 0;
    std::int64_t anchors_checked = 0;
};

// Entries in seq order. Stops at the first problem (everything after it is unproven).
verify_report verify(const std::vector<entry>& entries, const verify_input& in);

}  // namespace glasswatch::core::evidence
