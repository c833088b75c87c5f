// Microsoft Graph source: polls auditLogs/signIns (v1.0 interactive; beta for non-interactive,
// service-principal and managed-identity sign-ins) and auditLogs/directoryAudits.
//
// Lifecycle per poll (one state machine, driven by run()):
//   for each configured stream: read [cursor - lookback, now) page by page (same-origin
//   nextLinks only, loops detected), hand each page to the pipeline, commit new findings at
//   once (no checkpoint change, so alerts leave without waiting for the last page), then commit
//   the advanced cursor + seen-set. Then sleep poll_interval.
// A poll that cannot read its whole window keeps the cursor (the next poll reads it again) and
// counts why in health().rejected: a page that is not readable JSON, an off-host or looping
// @odata.nextLink, too many pages. A page larger than the body limit is asked for again with a
// quarter of the records per page ($top), down to one; the smaller $top stays for that stream.
// Malformed records are logged at most once a minute (core::log_gate), counted always.
// Requests go through one sliding-window limiter (default 5 per 10 s, the reports API limit);
// 429/5xx wait for Retry-After (seconds, fractional, HTTP-date) or back off when it is missing
// or garbage; a 401 renews the token once and retries.
//
// Thread: main thread only.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <string>

#include "core/alerting/pipeline.hpp"
#include "core/base/backoff.hpp"
#include "core/base/log_gate.hpp"
#include "core/config/config.hpp"
#include "core/protocol/graph_query.hpp"
#include "io/net/https_client.hpp"
#include "io/sources/graph_fetch.hpp"
#include "io/sources/ingest.hpp"
#include "io/sources/token_provider.hpp"

namespace glasswatch::io {

// What the tripwire and /readyz read about a source.
struct source_health {
    core::micros last_success = 0;     // last poll cycle that read at least one stream whole
    core::micros failing_since = 0;    // 0 while healthy; else since when the stream that has
                                       // been failing longest without a break has failed
    core::micros last_event_seen = 0;  // wall time a page last carried any record
    std::string last_error;            // human text, no secrets
    core::token_failure token = core::token_failure::none;
    std::uint64_t polls = 0, requests = 0, throttled = 0, pages = 0, records = 0;
    std::uint64_t unauthorized = 0, refused_next_links = 0;
    // Input refused, by reason (glasswatch_source_rejected_total): Graph "body_too_large",
    // "page_malformed", "next_link_off_host", "next_link_loop", "too_many_pages"; Event Hub
    // "message_too_large", "message_without_body".
    std::map<std::string, std::uint64_t> rejected;
};

class graph_poller {
public:
    graph_poller(runtime& rt, https_client& http, token_provider& tokens, core::pipeline& pipeline,
                 ingestor& ingest, const core::config& cfg);

    boost::asio::awaitable<void> run();
    void stop();

    const source_health& health() const noexcept { return health_; }

private:
    boost::asio::awaitable<bool> poll_stream(core::graph_kind kind);
    // One GET through the shared fetch discipline; copies its counters into health_.
    boost::asio::awaitable<graph_fetch_result> fetch(const std::string& url);
    void fail(const std::string& error);

    runtime& rt_;
    core::pipeline& pipeline_;
    ingestor& ingest_;
    const core::config& cfg_;
    // Pacing, tokens, 401 renewal and 429/5xx retries. Its timer lives in run()'s coroutine
    // frame, not in this object: an io object must not outlive its io_context, and this poller
    // may (see io::thread_pair).
    graph_fetcher graph_;
    core::backoff_policy backoff_;
    core::stream_plan plan_;  // the streams read (core::plan_streams), fixed for this config
    std::map<core::graph_kind, core::graph_cursor> cursors_;
    std::map<core::graph_kind, int> page_top_;  // $top per stream; 0 = Graph's default
    // When each stream started failing (0 = its last poll succeeded). A stream's clock is its
    // own: one that fails now and then and recovers never adds up to a source_error, however
    // the other streams fare in the same cycle.
    std::map<core::graph_kind, core::micros> stream_failing_since_;
    std::map<core::graph_kind, std::string> stream_error_;
    void settle(core::graph_kind kind, bool ok);
    core::log_gate problem_log_{60LL * 1000000};
    bool loaded_ = false;
    source_health health_;
};

}  // namespace glasswatch::io
