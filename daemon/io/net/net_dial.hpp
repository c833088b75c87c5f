// Outbound connections shared by the HTTPS client and the AMQP (Event Hub) source: the TLS
// client context (TLS 1.2+, system trust store or a CA file), peer verification (SNI + OpenSSL's
// host/IP check), the HTTP CONNECT proxy exchange, and — for AMQP — a full dial that ends in a
// ready byte_stream: TCP → [CONNECT proxy] → [TLS] → [WebSocket upgrade].
//
// Every phase has its own deadline. Error texts name the phase and the peer, never a secret.
// Thread: the caller's executor.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/net/amqp_pump.hpp"

namespace glasswatch::io {

// A client TLS context: TLS >= 1.2, no renegotiation, verify_peer against `ca_file` (PEM) or
// the system trust store. On failure `error` is set and the context refuses every handshake.
std::unique_ptr<boost::asio::ssl::context> make_tls_client_context(const std::string& ca_file,
                                                                   std::string& error);

// SNI (not for IP literals, RFC 6066) and the expected peer name on one SSL handle.
bool set_tls_peer(SSL* ssl, const std::string& host);

// Why a TLS handshake failed, in words (certificate verify result when there is one).
std::string tls_failure_text(SSL* ssl, const boost::system::error_code& ec);

// An IP literal (v4 or v6, no brackets) as an address; nullopt for a name.
std::optional<boost::asio::ip::address> ip_literal(const std::string& host);
// "host:port", with brackets around an IPv6 literal.
std::string authority(const std::string& host, std::uint16_t port);

// A name resolved under a deadline (an IP literal needs no lookup). getaddrinfo runs on a helper
// thread and cancel() cannot interrupt it, so the deadline is a timer race and the state lives in
// a shared_ptr: a late resolver completion still has somewhere to land.
struct resolved {
    std::vector<boost::asio::ip::tcp::endpoint> endpoints;  // empty when it failed
    bool timed_out = false;
    std::string error;  // "resolve WHAT: ..." when it failed
};
boost::asio::awaitable<resolved> resolve_with_deadline(boost::asio::any_io_executor ex,
                                                       std::string host, std::uint16_t port,
                                                       std::chrono::milliseconds limit,
                                                       std::string what);

// The CONNECT exchange on a connected TCP stream to the proxy, under `timeout`.
struct proxy_outcome {
    bool ok = false;
    bool timed_out = false;
    std::string message;  // when !ok
};
boost::asio::awaitable<proxy_outcome> proxy_connect(boost::beast::tcp_stream& s,
                                                    const std::string& target_authority,
                                                    const std::string& proxy_name,
                                                    std::chrono::milliseconds timeout,
                                                    const std::string& user_agent);

struct dial_options {
    std::string host;  // where the TCP (or CONNECT) goes and, unless tls_name, the TLS name
    // The name the server's certificate must carry (SNI, verification, WebSocket Host) when it is
    // not `host`: an IP address or a private endpoint dialled for a public namespace name.
    std::string tls_name;
    std::uint16_t port = 0;
    std::string proxy;  // "http://host:port"; empty = direct
    bool tls = true;
    boost::asio::ssl::context* tls_context = nullptr;  // required when tls
    bool websocket = false;
    std::string ws_path = "/$servicebus/websocket";
    std::string ws_subprotocol = "AMQPWSB10";
    std::chrono::milliseconds phase_timeout{10000};  // each of resolve, connect, CONNECT, TLS, WS
    std::string user_agent = "glasswatch";
};

struct dial_result {
    std::unique_ptr<byte_stream> stream;  // set on success
    std::string phase;                    // "resolve", "connect", "proxy", "tls", "websocket"
    std::string error;                    // when !stream
    bool timed_out = false;
};

// `on_phase` (optional) is told each phase as it starts (the source's state machine follows).
boost::asio::awaitable<dial_result> dial(boost::asio::any_io_executor ex, dial_options o,
                                         std::function<void(const char*)> on_phase = {});

}  // namespace glasswatch::io
