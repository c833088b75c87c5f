// Graph polling, the pure parts: which URL to ask for each stream, the cursor + seen-set
// checkpoint, the request-rate limiter and the same-origin rule for @odata.nextLink.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/time.hpp"
#include "core/config/config.hpp"
#include "core/detection/event.hpp"
#include "core/detection/watchlist.hpp"

namespace glasswatch::core {

std::string_view stream_name(graph_kind k) noexcept;  // "interactive", "audit", ...
std::string checkpoint_key(graph_kind k);             // "graph:interactive", ...
signin_type signin_of(graph_kind k) noexcept;         // none for audit

// The streams a poll reads, out of the configured `kinds`, and why a configured one is not read.
// Service-principal and managed-identity sign-ins can only concern a watched service principal or
// managed identity ([[watch.accounts]] type); without one they cost requests and find nothing —
// unless full_stream asks for every record (silence detection).
struct stream_plan {
    std::vector<graph_kind> read;
    std::vector<std::pair<graph_kind, std::string>> skipped;  // stream, why
};
stream_plan plan_streams(const graph_source_config& g, const watchlist_config& w);

// First-page URL of a poll for stream `k`, reading records created at or after `from`.
// Sign-ins: v1.0 for interactive (the only kind v1.0 serves), beta + signInEventTypes for the
// others. Unless `full_stream`, the filter is narrowed to the watched ids where Graph allows it
// (user sign-ins by userId; service-principal and managed-identity sign-ins by
// servicePrincipalId of the watched ones of that type; audits by initiator or target id).
// `top` > 0 asks for pages of at most that many records ($top; 0 = Graph's default, 1000).
std::string build_poll_url(std::string_view graph_base, graph_kind k, micros from,
                           const watchlist& wl, bool full_stream, int top = 0);

// The $top to ask for after a page was larger than the body limit: a quarter of `top` (0 means
// Graph's default of 1000); 0 when even one record per page is too large (nothing left to try).
int smaller_page_top(int top) noexcept;

// Where a complete poll moves its stream's cursor (the next window starts `lookback` before it).
// Entra stamps createdDateTime with its own clock, and this VM's clock may be stepped by hours
// (a bad RTC corrected by NTP, an operator, a restored snapshot): a cursor taken from a local
// clock that ran ahead would start the next window after events that exist, and they would
// never be read. So the cursor is the server's clock, the Date header of the poll's first page
// (whole seconds: one second is taken off), and the local clock at the poll's start only when
// the server sent no usable Date.
micros poll_cursor(micros local_started, std::optional<micros> server_date);

// True when `url` has the same scheme, host and port as `base` (the bearer token's audience).
bool same_origin(std::string_view url, std::string_view base);

// Per-stream checkpoint: where the next window starts, and the ids of matched events already
// committed (so an overlap window or a revised event never alerts twice and costs no commit).
struct graph_cursor {
    micros cursor = 0;                   // 0 = never polled
    std::map<std::string, micros> seen;  // event id -> createdDateTime

    bool seen_before(const std::string& id) const { return seen.count(id) != 0; }
    void remember(const std::string& id, micros created) { seen[id] = created; }
    // Forgets ids older than `horizon` (they can no longer come back in a window), then the
    // oldest ones beyond `max_entries`.
    void prune(micros horizon, std::size_t max_entries);

    std::string to_json() const;
    static std::optional<graph_cursor> from_json(std::string_view text);
};

// Sliding-window limiter: at most `max_requests` per `window`, spaced evenly (window / max
// apart). Throttled answers count too (Graph counts them), so every request sent is recorded.
// Margin a request keeps from the edge of the service's window (at least 100 ms).
inline constexpr micros rate_limit_margin = 150000;

class rate_limiter {
public:
    rate_limiter(int max_requests, micros window) : max_(max_requests), window_(window) {}
    // Earliest time the next request may go out (<= now means "now").
    micros next_allowed(micros now);
    void record(micros at);
    int in_window(micros now);

private:
    void expire(micros now);
    int max_;
    micros window_;
    std::deque<micros> sent_;
};

}  // namespace glasswatch::core
