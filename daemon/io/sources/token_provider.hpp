// Access tokens for Microsoft Graph (client credentials: secret or certificate), cached and
// renewed before expiry. Runs on the main thread only.
//
// Manners towards the token endpoint (shared by the poller's streams and the posture checker):
//   - one renewal in flight: a caller that arrives while one runs waits for its outcome;
//   - a 429/5xx Retry-After (seconds, or an HTTP-date read against the answer's Date), or a
//     back-off after failures without one, holds every renewal until it has passed;
//   - a renewal that fails while the cached token is still valid for a while is not a failure:
//     the cached token is used until it actually nears expiry (the failure is logged).
//
// Error policy: get() never throws; a failure is a token_failure class (bad secret, expired
// credential, Entra unreachable, ...) plus a message without secrets. The poller reports it as
// source health; the tripwire turns permanent classes into alerts at once.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <vector>

#include "core/config/config.hpp"
#include "core/protocol/oauth.hpp"
#include "io/net/https_client.hpp"

namespace glasswatch::io {

struct token_result {
    core::token_failure failure = core::token_failure::none;
    std::string token;    // when failure == none
    std::string message;  // when failed
    bool ok() const noexcept { return failure == core::token_failure::none; }
};

class token_provider {
public:
    // Reads the credential (secret, or certificate + key) named by the config. nullptr + error
    // when it cannot (missing file, world-readable file, bad PEM).
    static std::unique_ptr<token_provider> create(https_client& http, const core::config& cfg,
                                                  std::string& error);

    // A valid token, from the cache when it has more than the renewal margin left.
    boost::asio::awaitable<token_result> get();
    // Renewals the endpoint refused or could not answer since the last success.
    std::uint64_t renewal_failures() const noexcept { return renewal_failures_; }
    // Drops the cached token (after a 401 from Graph) so the next get() fetches a new one.
    void invalidate() { token_.clear(); }

    const std::string& token_url() const noexcept { return token_url_; }
    core::micros expires_at() const noexcept { return expires_at_; }
    core::token_failure last_failure() const noexcept { return last_failure_; }
    std::uint64_t tokens_fetched() const noexcept { return fetched_; }

private:
    token_provider(https_client& http) : http_(http) {}
    https_client& http_;
    std::string client_id_, scope_, token_url_;
    std::string secret_;              // client-secret flow
    std::string cert_pem_, key_pem_;  // certificate flow
    std::string token_;
    core::micros expires_at_ = 0;
    core::micros margin_ = 0;
    core::token_failure last_failure_ = core::token_failure::none;
    std::string last_message_;
    std::uint64_t fetched_ = 0, renewal_failures_ = 0;
    // Steady clock: no renewal before this (Retry-After or back-off), and how many failed.
    core::micros not_before_ = 0;
    int failures_ = 0;
    bool renewing_ = false;
    std::vector<boost::asio::steady_timer*> waiters_;  // callers waiting for the renewal
    boost::asio::awaitable<token_result> renew();
    token_result from_cache_or(token_result failed) const;
};

}  // namespace glasswatch::io
