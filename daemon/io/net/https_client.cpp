#include "io/net/https_client.hpp"

#include "io/net/net_dial.hpp"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>

namespace glasswatch::io {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

using tls_stream = beast::ssl_stream<beast::tcp_stream>;
using steady = std::chrono::steady_clock;

// Idle pool bounds: a few connections per origin, dropped before common server keep-alive
// limits (60 s and up) so we rarely write into a connection the server is closing.
constexpr std::size_t max_idle_per_key = 4;
constexpr auto max_idle_age = std::chrono::seconds(50);

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

bool is_loopback_host(const std::string& host) {
    if (host == "localhost") return true;
    auto a = ip_literal(host);
    return a && a->is_loopback();
}

std::string host_header(const url_parts& u) {
    const bool default_port =
        (u.scheme == "https" && u.port == 443) || (u.scheme == "http" && u.port == 80);
    if (!default_port) return authority(u.host, u.port);
    return u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
}

std::string ms_text(std::chrono::milliseconds d) {
    return std::to_string(d.count()) + " ms";
}

// RFC 9110 tchar: methods and header names.
bool is_token(std::string_view s) {
    static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || extra.find(c) != extra.npos;
    });
}

// CR/LF/NUL in a value would let a caller (or a hostile nextLink) inject headers.
bool is_safe_value(std::string_view s) {
    return s.find_first_of(std::string_view("\r\n\0", 3)) == s.npos;
}

std::string env(const char* lower_name, const char* upper_name) {
    // curl's convention: the lower-case spelling wins.
    if (const char* v = std::getenv(lower_name); v && *v) return v;
    if (const char* v = std::getenv(upper_name); v && *v) return v;
    return {};
}

// no_proxy: comma-separated; "*" = everything; "example.com", ".example.com" and "*.example.com"
// all match example.com and its subdomains; IP literals match exactly; ":port" suffixes are
// ignored (the same host on another port is still "near").
bool no_proxy_matches(const std::string& host, std::string_view list) {
    const bool host_is_ip = ip_literal(host).has_value();
    std::size_t pos = 0;
    while (pos <= list.size()) {
        const std::size_t comma = list.find(',', pos);
        std::string e = lower(trim(list.substr(pos, comma == list.npos ? list.npos : comma - pos)));
        pos = comma == list.npos ? list.size() + 1 : comma + 1;
        if (e.empty()) continue;
        if (e == "*") return true;
        if (e.front() == '[') {
            const auto close = e.find(']');
            if (close == e.npos) continue;
            e = e.substr(1, close - 1);
        } else if (std::count(e.begin(), e.end(), ':') == 1) {
            e.erase(e.find(':'));
        }
        if (e.starts_with("*.")) e.erase(0, 1);
        if (!e.empty() && e.front() == '.') e.erase(0, 1);
        if (e.empty()) continue;
        if (host == e) return true;
        if (!host_is_ip && host.size() > e.size() && host.ends_with(e) &&
            host[host.size() - e.size() - 1] == '.')
            return true;
    }
    return false;
}

// The daemon destroys its io_contexts before the objects that own clients (runtime.hpp,
// thread_pair::finish), but a socket must be destroyed before its context's services are. This
// service lives inside the context; when the context shuts down it tells each registered owner
// to drop its I/O objects while that is still legal.
class context_watch final : public asio::execution_context::service {
public:
    using key_type = context_watch;
    static inline asio::execution_context::id id;
    explicit context_watch(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}
    void add(const void* owner, std::function<void()> on_shutdown) {
        std::lock_guard lock(mu_);
        hooks_[owner] = std::move(on_shutdown);
    }
    void remove(const void* owner) {
        std::lock_guard lock(mu_);
        hooks_.erase(owner);
    }

private:
    void shutdown() override {
        std::map<const void*, std::function<void()>> hooks;
        {
            std::lock_guard lock(mu_);
            hooks.swap(hooks_);
        }
        for (auto& [owner, hook] : hooks)
            hook();
    }
    std::mutex mu_;
    std::map<const void*, std::function<void()>> hooks_;
};

struct connection {
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<tls_stream> secure;
    beast::flat_buffer buffer;
    steady::time_point idle_since;
    beast::tcp_stream& tcp() { return secure ? secure->next_layer() : *plain; }
};
using connection_ptr = std::unique_ptr<connection>;

// True when an idle connection is unusable: the peer closed it, or sent something unsolicited
// (a TLS close_notify, a stray response) that leaves the stream in an unknown state. A peek
// costs one syscall and saves a doomed write plus the retry.
bool peer_went_away(connection& c) {
    auto& sock = c.tcp().socket();
    if (!sock.is_open()) return true;
    char byte = 0;
    const ssize_t n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0) return true;
    return errno != EAGAIN && errno != EWOULDBLOCK;
}

// Where one request goes, and the idle-pool key for it.
struct route {
    url_parts target;
    bool via_proxy = false;
    url_parts proxy;
    std::string key;
};

bool choose_route(const url_parts& target, const https_client_options& o, route& r,
                  std::string& error) {
    r.target = target;
    std::string proxy = o.proxy;
    // Loopback is never proxied from the environment: a proxy cannot reach our loopback.
    if (proxy.empty() && o.use_proxy_env && !is_loopback_host(target.host)) {
        proxy = target.scheme == "https" ? env("https_proxy", "HTTPS_PROXY")
                                         : env("http_proxy", "HTTP_PROXY");
        if (!proxy.empty() && no_proxy_matches(target.host, env("no_proxy", "NO_PROXY")))
            proxy.clear();
    }
    if (!proxy.empty()) {
        if (proxy.find("://") == proxy.npos) proxy = "http://" + proxy;
        url_parts p;
        // The setting is not echoed: it may carry credentials.
        if (!parse_url(proxy, p) || p.scheme != "http") {
            error = "unsupported proxy setting (expected http://host:port, no credentials)";
            return false;
        }
        r.via_proxy = true;
        r.proxy = std::move(p);
    }
    r.key = target.scheme + "://" + authority(target.host, target.port);
    if (r.via_proxy) r.key += " via " + authority(r.proxy.host, r.proxy.port);
    return true;
}

bool closed_early(const beast::error_code& ec) {
    return ec == asio::error::eof || ec == http::error::end_of_stream ||
           ec == http::error::partial_message || ec == ssl::error::stream_truncated;
}

std::string describe(const beast::error_code& ec) {
    if (closed_early(ec)) return "connection closed before a complete response";
    return ec.message();
}

struct exchange_outcome {
    http_error error = http_error::none;
    std::string message;
    http_response response;
    bool reusable = false;
    bool nothing_received = false;  // no byte of an answer arrived
    bool nothing_sent = false;      // not one byte of the request left
};

template <class Stream>
asio::awaitable<exchange_outcome> exchange(Stream& stream, connection& conn,
                                           http::request<http::string_body>& req,
                                           const https_client_options& opts, std::string where) {
    exchange_outcome out;
    beast::error_code ec;
    beast::tcp_stream& raw = conn.tcp();
    // One deadline for write + read: a server trickling bytes cannot stretch the exchange.
    raw.expires_after(opts.request_timeout);
    const std::size_t written =
        co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        raw.expires_never();
        out.nothing_received = true;
        out.nothing_sent = written == 0;
        if (ec == beast::error::timeout) {
            out.error = http_error::timeout;
            out.message =
                "write to " + where + ": timed out after " + ms_text(opts.request_timeout);
        } else {
            out.error = http_error::write;
            out.message = "write to " + where + ": " + ec.message();
        }
        co_return out;
    }

    bool got_interim = false;
    std::optional<http::response_parser<http::string_body>> parser;
    for (int interim = 0;; ++interim) {
        parser.emplace();
        limit_response_parser(*parser, opts.max_body_bytes, req.method() == http::verb::head);
        co_await http::async_read(stream, conn.buffer, *parser,
                                  asio::redirect_error(asio::use_awaitable, ec));
        accept_truncated_end(*parser, ec);
        if (ec) break;
        if (is_final_response(parser->get().result_int(), interim)) break;
        got_interim = true;
    }
    raw.expires_never();
    if (ec) {
        out.nothing_received = !got_interim && !parser->got_some() && conn.buffer.size() == 0;
        if (ec == beast::error::timeout) {
            out.error = http_error::timeout;
            out.message = "waiting for the response from " + where + ": timed out after " +
                          ms_text(opts.request_timeout);
        } else if (ec == http::error::body_limit) {
            out.error = http_error::body_too_large;
            out.message = "response body from " + where + " exceeds " +
                          std::to_string(opts.max_body_bytes) + " bytes";
        } else if (ec == http::error::header_limit) {
            out.error = http_error::read;
            out.message = "response headers from " + where + " exceed " +
                          std::to_string(max_response_header_bytes) + " bytes";
        } else {
            out.error = http_error::read;
            out.message = "read from " + where + ": " + describe(ec);
        }
        co_return out;
    }

    // Leftover bytes would belong to a response nobody asked for: do not pool such a stream.
    out.reusable = !parser->get().need_eof() && req.keep_alive() && conn.buffer.size() == 0;
    out.response = take_response(*parser);
    co_return out;
}

struct open_outcome {
    http_error error = http_error::none;
    std::string message;
    connection_ptr conn;
};

}  // namespace

std::string_view to_string(http_error e) noexcept {
    switch (e) {
        case http_error::none:
            return "none";
        case http_error::bad_url:
            return "bad_url";
        case http_error::token_host_mismatch:
            return "token_host_mismatch";
        case http_error::resolve:
            return "resolve";
        case http_error::connect:
            return "connect";
        case http_error::proxy:
            return "proxy";
        case http_error::tls_handshake:
            return "tls_handshake";
        case http_error::write:
            return "write";
        case http_error::read:
            return "read";
        case http_error::timeout:
            return "timeout";
        case http_error::body_too_large:
            return "body_too_large";
        case http_error::tls_verify:
            return "tls_verify";
        case http_error::cancelled:
            return "cancelled";
    }
    return "unknown";
}

bool is_transient(http_error e) noexcept {
    switch (e) {
        case http_error::resolve:
        case http_error::connect:
        case http_error::proxy:
        case http_error::tls_handshake:
        case http_error::tls_verify:  // a caller counts these: persistent = misconfiguration
        case http_error::write:
        case http_error::read:
        case http_error::timeout:
            return true;
        case http_error::none:
        case http_error::bad_url:
        case http_error::token_host_mismatch:
        case http_error::body_too_large:
        case http_error::cancelled:
            return false;
    }
    return false;
}

bool http_request::idempotent() const noexcept {
    return safe_to_repeat || method == "GET" || method == "HEAD";
}

bool parse_url(std::string_view url, url_parts& out) {
    url_parts p;
    const auto sep = url.find("://");
    if (sep == url.npos) return false;
    p.scheme = lower(url.substr(0, sep));
    if (p.scheme != "https" && p.scheme != "http") return false;
    std::string_view rest = url.substr(sep + 3);
    const auto end = rest.find_first_of("/?#");
    std::string_view auth = rest.substr(0, end);
    std::string_view tail = end == rest.npos ? std::string_view() : rest.substr(end);
    // Userinfo is refused outright: "https://graph.microsoft.com@evil.example/" must never
    // look like Graph to anyone reading it.
    if (auth.empty() || auth.find('@') != auth.npos) return false;

    std::string_view host, port;
    bool has_port = false;
    if (auth.front() == '[') {
        const auto close = auth.find(']');
        if (close == auth.npos) return false;
        host = auth.substr(1, close - 1);
        std::string_view after = auth.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return false;
            has_port = true;
            port = after.substr(1);
        }
        beast::error_code ec;
        asio::ip::make_address_v6(std::string(host), ec);
        if (ec) return false;
    } else {
        const auto colon = auth.find(':');
        host = auth.substr(0, colon);
        if (colon != auth.npos) {
            has_port = true;
            port = auth.substr(colon + 1);
        }
        if (host.empty()) return false;
        for (char c : host)
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_')
                return false;
    }
    p.host = lower(host);

    if (has_port) {
        if (port.empty() || port.size() > 5) return false;
        unsigned v = 0;
        for (char c : port) {
            if (c < '0' || c > '9') return false;
            v = v * 10 + static_cast<unsigned>(c - '0');
        }
        if (v == 0 || v > 65535) return false;
        p.port = static_cast<std::uint16_t>(v);
    } else {
        p.port = p.scheme == "https" ? 443 : 80;
    }

    tail = tail.substr(0, tail.find('#'));  // fragments never go on the wire
    for (char c : tail)
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
    if (tail.empty())
        p.target = "/";
    else if (tail.front() == '?')
        p.target = "/" + std::string(tail);
    else
        p.target = std::string(tail);
    out = std::move(p);
    return true;
}

// ---------------------------------------------------------------------------------------------

struct https_client::impl {
    impl(asio::any_io_executor e, https_client_options o)
        : ex(std::move(e)), opts(std::move(o)), tls(ssl::context::tls_client) {
        // The same TLS policy as every other outbound connection (io/net_dial).
        tls = std::move(*make_tls_client_context(opts.ca_file, tls_error));
        watch = &asio::use_service<context_watch>(asio::query(ex, asio::execution::context));
        auto drop_io = [this] {
            idle.clear();
            watch = nullptr;
        };
        watch->add(this, std::move(drop_io));
    }
    ~impl() {
        if (watch) watch->remove(this);
    }
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;

    asio::awaitable<http_result> run(http_request req);
    asio::awaitable<http_result> attempt(http_request req);
    asio::awaitable<open_outcome> open(route r);

    connection_ptr take_idle(const std::string& key) {
        auto it = idle.find(key);
        if (it == idle.end()) return nullptr;
        auto& list = it->second;
        while (!list.empty()) {
            connection_ptr c = std::move(list.back());
            list.pop_back();
            if (steady::now() - c->idle_since < max_idle_age && !peer_went_away(*c)) return c;
        }
        return nullptr;
    }

    void put_idle(const std::string& key, connection_ptr c) {
        c->idle_since = steady::now();
        auto& list = idle[key];
        list.push_back(std::move(c));
        if (list.size() > max_idle_per_key) list.erase(list.begin());
    }

    asio::any_io_executor ex;
    https_client_options opts;
    ssl::context tls;
    std::string tls_error;  // trust store unusable: every https request fails with this
    std::map<std::string, std::vector<connection_ptr>> idle;
    std::uint64_t opened = 0;
    context_watch* watch = nullptr;  // null once the io_context is gone
};

asio::awaitable<http_result> https_client::impl::run(http_request req) {
    http_result out;
    try {
        out = co_await attempt(std::move(req));
    } catch (const std::exception& e) {
        // Allocation failure or a Beast precondition: still an answer, never an exception.
        out = http_result{};
        out.error = http_error::read;
        out.message = std::string("unexpected failure: ") + e.what();
    }
    co_return out;
}

asio::awaitable<http_result> https_client::impl::attempt(http_request req) {
    http_result out;
    url_parts target;
    if (!parse_url(req.url, target)) {
        // The URL is not echoed: webhook URLs carry secrets in their path or query.
        out.error = http_error::bad_url;
        out.message = "malformed or unsupported URL";
        co_return out;
    }
    if (target.scheme == "http" && !is_loopback_host(target.host)) {
        out.error = http_error::bad_url;
        out.message = "plain http:// is only allowed to loopback, not to " + target.host;
        co_return out;
    }
    if (!is_token(req.method)) {
        out.error = http_error::bad_url;
        out.message = "invalid HTTP method";
        co_return out;
    }
    for (const auto& [name, value] : req.headers) {
        if (!is_token(name) || !is_safe_value(value)) {
            out.error = http_error::bad_url;
            out.message = "invalid request header";
            co_return out;
        }
    }
    if (!req.bearer_token.empty()) {
        if (lower(req.token_host) != target.host) {
            out.error = http_error::token_host_mismatch;
            out.message = "bearer token for '" + lower(req.token_host) + "' is not sent to '" +
                          target.host + "'";
            co_return out;
        }
        if (!is_safe_value(req.bearer_token)) {
            out.error = http_error::bad_url;
            out.message = "invalid bearer token (control characters)";
            co_return out;
        }
    }

    route rt;
    std::string route_error;
    if (!choose_route(target, opts, rt, route_error)) {
        out.error = http_error::proxy;
        out.message = std::move(route_error);
        co_return out;
    }

    http::request<http::string_body> breq;
    breq.version(11);
    breq.method_string(req.method);
    breq.target(target.target);
    breq.set(http::field::host, host_header(target));
    bool has_agent = false, has_accept = false;
    for (const auto& [name, value] : req.headers) {
        // Framing and routing belong to the client.
        if (iequals(name, "host") || iequals(name, "content-length") ||
            iequals(name, "transfer-encoding"))
            continue;
        has_agent = has_agent || iequals(name, "user-agent");
        has_accept = has_accept || iequals(name, "accept");
        breq.insert(name, value);
    }
    if (!has_agent) breq.set(http::field::user_agent, opts.user_agent);
    if (!has_accept) breq.set(http::field::accept, "application/json");
    if (!req.bearer_token.empty())
        breq.set(http::field::authorization, "Bearer " + req.bearer_token);
    breq.body() = std::move(req.body);
    breq.prepare_payload();

    const std::string where = authority(target.host, target.port);
    const bool repeatable = req.idempotent();
    for (int attempt_no = 0; attempt_no < 2; ++attempt_no) {
        if (req.before_send && !co_await req.before_send()) {
            out.error = http_error::cancelled;
            out.message = "request to " + where + " abandoned (shutting down)";
            co_return out;
        }
        connection_ptr conn;
        bool reused = false;
        if (attempt_no == 0) {
            conn = take_idle(rt.key);
            reused = conn != nullptr;
        }
        spdlog::debug("http: {} {} attempt {} on a {} connection", req.method, where,
                      attempt_no + 1, reused ? "reused" : "new");
        if (!conn) {
            open_outcome o = co_await open(rt);
            if (o.error != http_error::none) {
                out.error = o.error;
                out.message = std::move(o.message);
                co_return out;
            }
            conn = std::move(o.conn);
        }
        exchange_outcome x;
        if (conn->secure)
            x = co_await exchange(*conn->secure, *conn, breq, opts, where);
        else
            x = co_await exchange(*conn->plain, *conn, breq, opts, where);
        if (x.error == http_error::none) {
            if (x.reusable) put_idle(rt.key, std::move(conn));
            out.response = std::move(x.response);
            co_return out;
        }
        // A pooled connection the server closed while idle fails on write or before the first
        // response byte. Usually the request never reached the application, but a server can
        // also act on it and drop the connection before answering: only an idempotent request
        // may be written again.
        const bool stale = reused && x.nothing_received &&
                           (x.error == http_error::write || x.error == http_error::read);
        if (stale && repeatable) {
            spdlog::debug(
                "http: {} {}: pooled connection failed before the answer ({}); "
                "repeating the idempotent request on a new connection",
                req.method, where, x.message);
            continue;
        }
        out.error = x.error;
        out.message = std::move(x.message);
        out.ambiguous = !x.nothing_sent && x.error != http_error::body_too_large;
        co_return out;
    }
    co_return out;  // not reached: the second attempt always returns
}

asio::awaitable<open_outcome> https_client::impl::open(route r) {
    open_outcome out;
    const url_parts& hop = r.via_proxy ? r.proxy : r.target;
    const std::string hop_name = authority(hop.host, hop.port);
    const std::string target_name = authority(r.target.host, r.target.port);
    const std::string hop_what = r.via_proxy ? "proxy " + hop_name : hop_name;
    beast::error_code ec;

    resolved addresses =
        co_await resolve_with_deadline(ex, hop.host, hop.port, opts.connect_timeout, hop_what);
    if (addresses.endpoints.empty()) {
        out.error = addresses.timed_out ? http_error::timeout : http_error::resolve;
        out.message = std::move(addresses.error);
        co_return out;
    }
    const std::vector<tcp::endpoint>& endpoints = addresses.endpoints;

    auto tcp_s = std::make_unique<beast::tcp_stream>(ex);
    tcp_s->expires_after(opts.connect_timeout);
    co_await tcp_s->async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        out.error = ec == beast::error::timeout ? http_error::timeout : http_error::connect;
        out.message =
            "connect " + hop_what + ": " +
            (ec == beast::error::timeout ? "timed out after " + ms_text(opts.connect_timeout)
                                         : ec.message());
        co_return out;
    }
    ++opened;

    if (r.via_proxy) {
        proxy_outcome po = co_await proxy_connect(*tcp_s, target_name, hop_what,
                                                  opts.connect_timeout, opts.user_agent);
        if (!po.ok) {
            out.error = po.timed_out ? http_error::timeout : http_error::proxy;
            out.message = std::move(po.message);
            co_return out;
        }
    }

    out.conn = std::make_unique<connection>();
    if (r.target.scheme != "https") {
        out.conn->plain = std::move(tcp_s);
        co_return out;
    }

    if (!tls_error.empty()) {
        out.error = http_error::tls_handshake;
        out.message = tls_error;
        out.conn.reset();
        co_return out;
    }
    auto s = std::make_unique<tls_stream>(std::move(*tcp_s), tls);
    SSL* h = s->native_handle();
    const bool params_ok = set_tls_peer(h, r.target.host);
    if (!params_ok) {
        out.error = http_error::tls_handshake;
        out.message = "TLS setup for " + target_name + ": cannot set the expected host name";
        out.conn.reset();
        co_return out;
    }
    s->next_layer().expires_after(opts.connect_timeout);
    co_await s->async_handshake(ssl::stream_base::client,
                                asio::redirect_error(asio::use_awaitable, ec));
    s->next_layer().expires_never();
    if (ec) {
        out.conn.reset();
        if (ec == beast::error::timeout) {
            out.error = http_error::timeout;
            out.message = "TLS handshake with " + target_name + ": timed out after " +
                          ms_text(opts.connect_timeout);
        } else {
            out.error = SSL_get_verify_result(h) != X509_V_OK ? http_error::tls_verify
                                                              : http_error::tls_handshake;
            const std::string why = tls_failure_text(h, ec);
            out.message = "TLS handshake with " + target_name + ": " + why;
        }
        co_return out;
    }
    out.conn->secure = std::move(s);
    co_return out;
}

// ---------------------------------------------------------------------------------------------

https_client::https_client(asio::any_io_executor ex, https_client_options opts)
    : impl_(std::make_unique<impl>(std::move(ex), std::move(opts))) {}

https_client::~https_client() = default;

asio::awaitable<http_result> https_client::request(http_request req) {
    return impl_->run(std::move(req));
}

void https_client::close_idle() {
    impl_->idle.clear();
}

std::uint64_t https_client::connections_opened() const noexcept {
    return impl_->opened;
}

}  // namespace glasswatch::io
