// HTTPS client shared by every HTTP adapter (Graph, token endpoint, sinks, heartbeat).
//
// Checklist (STYLE.md / Beast examples): TLS 1.2+, SNI, peer verification against the system
// trust store or a configured CA bundle, host-name check; a deadline on every phase (resolve,
// connect, proxy CONNECT, handshake, write, read); a response body limit; keep-alive reuse of
// one connection per host:port; HTTPS through an HTTP CONNECT proxy (explicit, or the
// https_proxy / no_proxy environment conventions).
//
// Bearer tokens: a request may carry a token only together with the host the token was issued
// for; the client refuses (token_host_mismatch) to send it anywhere else, e.g. to a host named
// by a hostile @odata.nextLink.
//
// Error policy: request() never throws for network or protocol problems. It returns an
// http_result whose `error` is classified once; any HTTP status (including 4xx/5xx) is a
// successful exchange (error == none) and the caller interprets the status.
//
// Re-sends (invariant 8): the client never sends a request twice on its own unless it is
// idempotent (GET, HEAD, or a request the caller marks safe_to_repeat). Only then, and only when
// a pooled keep-alive connection failed before any byte of the answer, is it written once more
// on a fresh connection. A POST's failure always goes back to the caller, with `ambiguous` set
// when the server may have acted on it, so the caller applies its own rule (look the message
// up, re-send with the same idempotency key). Every attempt on the wire first passes the
// caller's before_send gate (a rate limiter) and is logged at debug level.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/net/http_response.hpp"

namespace glasswatch::io {

struct http_request {
    std::string method = "GET";
    std::string url;  // absolute: https://host[:port]/path?query (http:// only to loopback)
    header_list headers;
    std::string body;
    std::string
        bearer_token;        // sent as "Authorization: Bearer ..." only when url host == token_host
    std::string token_host;  // host (lower-case, no port) the token was issued for
    // A non-GET request the server treats as idempotent (an OAuth token request): it may be
    // repeated on a fresh connection like a GET.
    bool safe_to_repeat = false;
    // Awaited before every attempt that writes this request on the wire, the repeat on a stale
    // pooled connection included (a caller's rate limiter). false abandons the request
    // (http_error::cancelled). Empty = no gate.
    std::function<boost::asio::awaitable<bool>()> before_send;
    bool idempotent() const noexcept;
};

enum class http_error {
    none,
    bad_url,              // unparsable URL, unsupported scheme, http:// to a non-loopback host
    token_host_mismatch,  // bearer token would go to a host it was not issued for
    resolve,
    connect,
    proxy,          // CONNECT refused or malformed proxy reply
    tls_handshake,  // handshake failed for another reason (no TLS, protocol, reset)
    tls_verify,     // the peer's certificate is not trusted or names another host
    write,
    read,     // connection reset, EOF before a full response, malformed HTTP
    timeout,  // a phase deadline expired
    body_too_large,
    cancelled,  // the caller's before_send gate abandoned the request (shutdown)
};
std::string_view to_string(http_error e) noexcept;

// Transport-level failures worth retrying (everything except bad_url / token_host_mismatch /
// body_too_large, which retrying cannot fix).
bool is_transient(http_error e) noexcept;

struct http_result {
    http_error error = http_error::none;
    std::string message;  // human detail, never contains the token or a request body
    http_response response;
    // The request (or part of it) was written and no complete answer came back: the server may
    // have acted on it. Never set when the request provably did not leave (connect, TLS, bad
    // URL) or when an answer arrived.
    bool ambiguous = false;
    bool ok() const noexcept { return error == http_error::none; }
};

struct https_client_options {
    std::string ca_file;  // PEM bundle; empty = system trust store
    std::string
        proxy;  // "http://host:port"; empty = use https_proxy/HTTPS_PROXY unless no_proxy matches
    bool use_proxy_env = true;
    std::chrono::milliseconds connect_timeout{
        10000};  // resolve + connect + proxy + handshake, each
    std::chrono::milliseconds request_timeout{30000};  // write + read of one exchange
    std::size_t max_body_bytes = 16u << 20;
    std::string user_agent = "glasswatch";
};

class https_client {
public:
    https_client(boost::asio::any_io_executor ex, https_client_options opts);
    ~https_client();
    https_client(const https_client&) = delete;
    https_client& operator=(const https_client&) = delete;

    // One request/response exchange. Reuses an idle keep-alive connection to the same
    // host:port when there is one. An idempotent request whose reused connection failed before
    // any byte of the answer is written once more on a fresh connection (through before_send
    // again); any other request's failure is returned as it happened.
    boost::asio::awaitable<http_result> request(http_request req);

    // Drops idle connections (e.g. after a TLS error or on shutdown).
    void close_idle();

    // Connections opened so far (tests assert keep-alive reuse with it).
    std::uint64_t connections_opened() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// URL pieces (exposed for the poller's nextLink check and for tests).
struct url_parts {
    std::string scheme;  // "https" / "http"
    std::string host;    // lower-case, brackets stripped for IPv6
    std::uint16_t port = 0;
    std::string target;  // path + query, at least "/"
};
bool parse_url(std::string_view url, url_parts& out);

}  // namespace glasswatch::io
