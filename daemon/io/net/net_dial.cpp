#include "io/net/net_dial.hpp"

#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <optional>
#include <vector>

#include "io/net/https_client.hpp"

namespace glasswatch::io {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

constexpr std::uint32_t max_proxy_reply_bytes = 8 * 1024;

std::string ms_text(std::chrono::milliseconds d) {
    return std::to_string(d.count()) + " ms";
}

std::string sanitize(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 80))
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
}

bool closed_early(const beast::error_code& ec) {
    return ec == asio::error::eof || ec == http::error::end_of_stream ||
           ec == http::error::partial_message || ec == ssl::error::stream_truncated;
}

struct resolve_state {
    explicit resolve_state(const asio::any_io_executor& ex) : resolver(ex), done(ex) {}
    tcp::resolver resolver;
    asio::steady_timer done;
    tcp::resolver::results_type results;
    beast::error_code ec;
    bool finished = false;
};

// The WebSocket upgrade: subprotocol AMQPWSB10 asked for and required in the answer; binary
// messages; the handshake under the phase deadline, no idle timeout (AMQP has its own).
template <class WS>
asio::awaitable<void> ws_upgrade(WS& ws, const dial_options& o, std::string& err) {
    beast::error_code ec;
    beast::get_lowest_layer(ws).expires_never();
    websocket::stream_base::timeout t{o.phase_timeout, websocket::stream_base::none(), false};
    ws.set_option(t);
    const std::string proto = o.ws_subprotocol;
    const std::string ua = o.user_agent;
    auto decorate = [proto, ua](websocket::request_type& req) {
        req.set(http::field::sec_websocket_protocol, proto);
        req.set(http::field::user_agent, ua);
    };
    ws.set_option(websocket::stream_base::decorator(std::move(decorate)));
    ws.binary(true);
    websocket::response_type res;
    const std::string host = authority(o.tls_name.empty() ? o.host : o.tls_name, o.port);
    co_await ws.async_handshake(res, host, o.ws_path,
                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        err = "WebSocket upgrade at " + host + o.ws_path + ": " +
              (ec == beast::error::timeout ? "timed out after " + ms_text(o.phase_timeout)
                                           : ec.message());
        co_return;
    }
    if (res[http::field::sec_websocket_protocol] != proto)
        err = "WebSocket upgrade at " + host + ": the server did not accept subprotocol " + proto;
}

// Upgrades `ws` and makes it the result's stream, or sets the result's error.
template <class WS>
asio::awaitable<void> upgrade_into(WS ws, const dial_options& o, dial_result& out) {
    std::string err;
    co_await ws_upgrade(ws, o, err);
    if (!err.empty()) {
        out.error = err;
        co_return;
    }
    out.stream = make_byte_stream(std::move(ws));
}

}  // namespace

std::optional<asio::ip::address> ip_literal(const std::string& host) {
    boost::system::error_code ec;
    auto a = asio::ip::make_address(host, ec);
    if (ec) return std::nullopt;
    return a;
}

std::string authority(const std::string& host, std::uint16_t port) {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

asio::awaitable<resolved> resolve_with_deadline(asio::any_io_executor ex, std::string host,
                                                std::uint16_t port, std::chrono::milliseconds limit,
                                                std::string what) {
    resolved out;
    if (auto addr = ip_literal(host)) {
        out.endpoints.emplace_back(*addr, port);
        co_return out;
    }
    auto st = std::make_shared<resolve_state>(ex);
    st->done.expires_after(limit);
    auto on_resolved = [st](const beast::error_code& e, tcp::resolver::results_type r) {
        st->ec = e;
        st->results = std::move(r);
        st->finished = true;
        st->done.cancel();
    };
    st->resolver.async_resolve(host, std::to_string(port), std::move(on_resolved));
    if (!st->finished) {
        beast::error_code wait_ec;
        co_await st->done.async_wait(asio::redirect_error(asio::use_awaitable, wait_ec));
    }
    if (!st->finished) {
        st->resolver.cancel();
        out.timed_out = true;
        out.error = "resolve " + what + ": timed out after " + ms_text(limit);
        co_return out;
    }
    if (st->ec || st->results.empty()) {
        out.error =
            "resolve " + what + ": " + (st->ec ? st->ec.message() : std::string("no addresses"));
        co_return out;
    }
    for (const auto& e : st->results)
        out.endpoints.push_back(e.endpoint());
    co_return out;
}

std::unique_ptr<ssl::context> make_tls_client_context(const std::string& ca_file,
                                                      std::string& error) {
    auto tls = std::make_unique<ssl::context>(ssl::context::tls_client);
    SSL_CTX* c = tls->native_handle();
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
    beast::error_code ec;
    tls->set_verify_mode(ssl::verify_peer, ec);
    if (ca_file.empty()) {
        tls->set_default_verify_paths(ec);
        if (ec) error = "cannot load the system trust store: " + ec.message();
    } else {
        tls->load_verify_file(ca_file, ec);
        if (ec) error = "cannot load CA file " + ca_file + ": " + ec.message();
    }
    return tls;
}

bool set_tls_peer(SSL* h, const std::string& host) {
    // OpenSSL's own host/IP check on the verify params (what asio::ssl::host_name_verification
    // uses) rather than a verify callback: a mismatch is then recorded as
    // X509_V_ERR_HOSTNAME_MISMATCH and the error message can say so.
    if (ip_literal(host))
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(h), host.c_str()) == 1;
    std::string sni = host;
    const bool ok =
        SSL_set_tlsext_host_name(h, sni.data()) == 1 && SSL_set1_host(h, host.c_str()) == 1;
    SSL_set_hostflags(h, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return ok;
}

std::string tls_failure_text(SSL* h, const boost::system::error_code& ec) {
    const long verify = SSL_get_verify_result(h);
    if (verify != X509_V_OK)
        return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
    if (closed_early(ec)) return "connection closed by the peer";
    return ec.message();
}

asio::awaitable<proxy_outcome> proxy_connect(beast::tcp_stream& s,
                                             const std::string& target_authority,
                                             const std::string& proxy_name,
                                             std::chrono::milliseconds timeout,
                                             const std::string& user_agent) {
    proxy_outcome out;
    beast::error_code ec;
    // Request and reply headers under one deadline.
    const std::string req = "CONNECT " + target_authority +
                            " HTTP/1.1\r\nHost: " + target_authority +
                            "\r\nUser-Agent: " + user_agent + "\r\n\r\n";
    s.expires_after(timeout);
    co_await asio::async_write(s, asio::buffer(req), asio::redirect_error(asio::use_awaitable, ec));
    http::response_parser<http::empty_body> reply;
    beast::flat_buffer reply_buf;
    if (!ec) {
        reply.header_limit(max_proxy_reply_bytes);
        reply.skip(true);  // a 2xx to CONNECT has no body whatever its headers claim
        co_await http::async_read_header(s, reply_buf, reply,
                                         asio::redirect_error(asio::use_awaitable, ec));
    }
    s.expires_never();
    const std::string what = "CONNECT to " + target_authority + " via " + proxy_name;
    if (ec == beast::error::timeout) {
        out.timed_out = true;
        out.message = what + ": timed out after " + ms_text(timeout);
        co_return out;
    }
    if (ec) {
        out.message =
            what + ": " + (closed_early(ec) ? "proxy closed the connection" : ec.message());
        co_return out;
    }
    const unsigned status = reply.get().result_int();
    if (status < 200 || status >= 300) {
        out.message = proxy_name + " refused CONNECT to " + target_authority + ": HTTP " +
                      std::to_string(status) + " " + sanitize(reply.get().reason());
        co_return out;
    }
    if (reply_buf.size() != 0) {
        out.message = proxy_name + " sent data after its CONNECT reply";
        co_return out;
    }
    out.ok = true;
    co_return out;
}

namespace {

// The client handshake with its deadline; false with out.error set when it failed.
template <class TlsStream>
asio::awaitable<bool> tls_handshake(TlsStream& tls_s, beast::tcp_stream& tcp, const dial_options& o,
                                    const std::string& target, dial_result& out) {
    const std::string& name = o.tls_name.empty() ? o.host : o.tls_name;
    if (!set_tls_peer(tls_s.native_handle(), name)) {
        out.error = "TLS setup for " + target + ": cannot set the expected host name " + name;
        co_return false;
    }
    beast::error_code ec;
    tcp.expires_after(o.phase_timeout);
    co_await tls_s.async_handshake(ssl::stream_base::client,
                                   asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) {
        if constexpr (std::is_same_v<TlsStream, coalesced_tls_stream>)
            co_await tls_s.next_layer().async_flush(asio::redirect_error(asio::use_awaitable, ec));
    }
    tcp.expires_never();
    if (ec) {
        out.timed_out = ec == beast::error::timeout;
        out.error = "TLS handshake with " + target +
                    (o.tls_name.empty() ? std::string() : " (expecting " + o.tls_name + ")") +
                    ": " +
                    (out.timed_out ? "timed out after " + ms_text(o.phase_timeout)
                                   : tls_failure_text(tls_s.native_handle(), ec));
        co_return false;
    }
    co_return true;
}

}  // namespace

asio::awaitable<dial_result> dial(asio::any_io_executor ex, dial_options o,
                                  std::function<void(const char*)> on_phase) {
    dial_result out;
    auto phase = [&](const char* p) {
        out.phase = p;
        if (on_phase) on_phase(p);
    };
    std::string hop_host = o.host;
    std::uint16_t hop_port = o.port;
    const std::string target = authority(o.host, o.port);
    std::string hop_what = target;
    if (!o.proxy.empty()) {
        url_parts p;
        std::string proxy =
            o.proxy.find("://") == std::string::npos ? "http://" + o.proxy : o.proxy;
        if (!parse_url(proxy, p) || p.scheme != "http") {
            out.phase = "proxy";
            out.error = "unsupported proxy setting (expected http://host:port, no credentials)";
            co_return out;
        }
        hop_host = p.host;
        hop_port = p.port;
        hop_what = "proxy " + authority(p.host, p.port);
    }
    beast::error_code ec;

    phase("resolve");
    resolved hop_addresses =
        co_await resolve_with_deadline(ex, hop_host, hop_port, o.phase_timeout, hop_what);
    if (hop_addresses.endpoints.empty()) {
        out.timed_out = hop_addresses.timed_out;
        out.error = std::move(hop_addresses.error);
        co_return out;
    }
    const std::vector<tcp::endpoint>& endpoints = hop_addresses.endpoints;

    phase("connect");
    beast::tcp_stream tcp_s(ex);
    tcp_s.expires_after(o.phase_timeout);
    co_await tcp_s.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
    tcp_s.expires_never();
    if (ec) {
        out.timed_out = ec == beast::error::timeout;
        out.error = "connect " + hop_what + ": " +
                    (out.timed_out ? "timed out after " + ms_text(o.phase_timeout) : ec.message());
        co_return out;
    }
    tcp_s.socket().set_option(tcp::no_delay(true), ec);

    if (!o.proxy.empty()) {
        phase("proxy");
        proxy_outcome po =
            co_await proxy_connect(tcp_s, target, hop_what, o.phase_timeout, o.user_agent);
        if (!po.ok) {
            out.timed_out = po.timed_out;
            out.error = po.message;
            co_return out;
        }
    }

    if (!o.tls) {
        if (o.websocket) {
            phase("websocket");
            websocket::stream<beast::tcp_stream> ws(std::move(tcp_s));
            co_await upgrade_into(std::move(ws), o, out);
        } else {
            out.stream = make_byte_stream(std::move(tcp_s));
        }
        co_return out;
    }

    phase("tls");
    if (!o.tls_context) {
        out.error = "TLS with " + target + ": no TLS context";
        co_return out;
    }
    if (!o.websocket) {
        // AMQPS: large socket reads and one send per write (see coalescing_stream.hpp).
        coalesced_tls_stream tls_s(coalescing_stream(std::move(tcp_s)), *o.tls_context);
        if (co_await tls_handshake(tls_s, tls_s.next_layer().next_layer(), o, target, out))
            out.stream = make_byte_stream(std::move(tls_s));
        co_return out;
    }
    beast::ssl_stream<beast::tcp_stream> tls_s(std::move(tcp_s), *o.tls_context);
    if (!co_await tls_handshake(tls_s, tls_s.next_layer(), o, target, out)) co_return out;
    phase("websocket");
    websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(std::move(tls_s));
    co_await upgrade_into(std::move(ws), o, out);
    co_return out;
}

}  // namespace glasswatch::io
