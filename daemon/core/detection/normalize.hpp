// Normalizers: Graph signIn / directoryAudit JSON and diagnostic-settings records -> event.
//
// Error policy: nothing here throws on bad input. A malformed body or record yields a status
// and a short reason (never the record's content, which may be attacker-controlled or secret).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/detection/event.hpp"

namespace glasswatch::core {

// What a top-level JSON text turned out to be.
enum class body_kind {
    unknown,
    diagnostic_body,  // {"records":[...]}  (Event Hub message body)
    graph_page,       // {"value":[...], "@odata.nextLink":...}
    single_record,    // one record object (NDJSON replay, --per-record streams)
};

struct split_result {
    body_kind kind = body_kind::unknown;
    std::vector<std::string_view> records;  // raw spans into the input
    std::string next_link;                  // graph_page only
    std::string odata_context;              // graph_page only
    std::size_t bad_elements = 0;           // array elements that were not objects
    std::string error;  // non-empty: the body is malformed (records may be partial)
};

// not_concerned: the record parsed, and none of the identity fields the matcher reads names
// anything the probe watches, so no event was built (see identity_probe).
enum class normalize_status { ok, skipped_category, malformed, not_concerned };

// Asked, before an event is built, about every identity value the matcher could look at: the
// actor's and the targets' object ids and UPNs, and a service principal's id (as written, any
// case). Building an event costs dozens of field lookups and copies; a candidate record whose
// watched GUID sits only in another field (a tenant id, a CA policy id inside modifiedProperties,
// a correlation id) does not need one. Must answer true for anything match_event() could match.
class identity_probe {
public:
    virtual ~identity_probe() = default;
    virtual bool concerns(std::string_view id_or_upn) const = 0;
};

struct normalize_result {
    normalize_status status = normalize_status::malformed;
    event ev;
    std::string error;  // reason when malformed; the category name when skipped
};

// Hint for records whose shape does not say what they are (Graph pages do not carry a kind).
enum class record_hint { any, graph_signin, graph_audit, diagnostic };

// Size and nesting limits applied to every parse (invariant 7).
struct parse_limits {
    std::size_t max_body_bytes = 64u << 20;  // 64 MiB
    std::size_t max_depth = 64;              // Entra records are < 10 deep
};

class normalizer {
public:
    explicit normalizer(parse_limits limits = {});
    ~normalizer();
    normalizer(const normalizer&) = delete;
    normalizer& operator=(const normalizer&) = delete;

    // Splits a body into record spans. `body` is copied into an internal padded buffer, so the
    // returned spans stay valid until the next split() call on this normalizer.
    split_result split(std::string_view body);

    // Parses and normalizes one record. `raw` is copied into the event. With a probe, a
    // well-formed record none of whose identities concerns it comes back not_concerned.
    normalize_result normalize(std::string_view raw, record_hint hint = record_hint::any,
                               signin_type signin_hint = signin_type::none,
                               const identity_probe* probe = nullptr);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// Maps a diagnostic-settings category to the sign-in type / audit; unknown -> false.
bool category_kind(std::string_view category, event_kind& kind, signin_type& type) noexcept;

}  // namespace glasswatch::core
