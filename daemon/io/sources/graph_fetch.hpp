// One Microsoft Graph GET the way the service expects a client to behave, shared by the audit
// log poller and the posture checker:
//   - paced by a sliding-window limiter (requests per 10 s, owned here, one per user);
//   - a bearer token from the token_provider, sent only to the Graph host;
//   - 401: the token is renewed once and the request repeated;
//   - 429/5xx/408 and transient transport errors: wait for Retry-After (seconds, fractional,
//     HTTP-date) or back off when it is missing or garbage, then retry (bounded attempts);
//   - any other status is returned to the caller (403 = missing permission, 404, 400...);
//   - an answer larger than the client's body limit is refused unread (too_large), not retried.
//
// Thread: main thread only. Waits use a timer the caller owns and attaches (a coroutine-frame
// local: io objects must not outlive their io_context, and this object may).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <optional>
#include <random>
#include <string>

#include "core/base/backoff.hpp"
#include "core/protocol/graph_query.hpp"
#include "core/protocol/oauth.hpp"
#include "io/net/https_client.hpp"
#include "io/sources/token_provider.hpp"

namespace glasswatch::io {

struct graph_fetch_result {
    bool ok = false;         // status 200 and `body` holds the answer
    bool stopped = false;    // stop() was called while waiting
    bool too_large = false;  // the answer was larger than the client's body limit (not retried)
    int status = 0;          // last HTTP status, 0 when no response
    std::string graph_code;  // Graph's error.code of a non-200 answer (at most 80 characters)
    std::string body;
    std::string error;                        // human text without secrets, when !ok
    std::optional<core::micros> server_date;  // the answer's Date header, when it had one
};

struct graph_fetch_counters {
    std::uint64_t requests = 0, throttled = 0, unauthorized = 0;
    std::uint64_t too_large = 0;  // answers refused for their size (https_client body limit)
    core::token_failure token = core::token_failure::none;  // class of the last token result
};

class graph_fetcher {
public:
    // `base`: the Graph base URL (scheme://host[:port], no trailing slash needed).
    graph_fetcher(https_client& http, token_provider& tokens, std::string base,
                  int max_requests_per_10s);

    const std::string& base() const noexcept { return base_; }
    const std::string& host() const noexcept { return host_; }

    // The timer waits run on; nullptr detaches (then every wait reports "stopped").
    void attach(boost::asio::steady_timer* timer) noexcept { timer_ = timer; }
    void stop();
    bool stopping() const noexcept { return stopping_; }

    // Sleeps on the attached timer; false when stopped (before or during the wait).
    boost::asio::awaitable<bool> sleep_for(std::chrono::milliseconds d);
    boost::asio::awaitable<graph_fetch_result> get(const std::string& url);

    const graph_fetch_counters& counters() const noexcept { return counters_; }

private:
    https_client& http_;
    token_provider& tokens_;
    std::string base_;
    std::string host_;  // bearer tokens go to this host only
    // Fed steady-clock times: a step of the wall clock must not park polling.
    core::rate_limiter limiter_;
    core::backoff_policy backoff_;
    std::mt19937_64 rng_{std::random_device{}()};
    bool stopping_ = false;
    boost::asio::steady_timer* timer_ = nullptr;
    graph_fetch_counters counters_;
};

}  // namespace glasswatch::io
