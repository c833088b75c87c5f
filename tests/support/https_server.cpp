#include "support/https_server.hpp"

#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cctype>
#include <exception>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>

namespace glasswatch::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

using tls_stream = beast::ssl_stream<beast::tcp_stream>;
constexpr auto io_deadline = std::chrono::seconds(10);  // handshake / write; tests finish sooner

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return lower(a) == lower(b);
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// application/x-www-form-urlencoded decoding ('+' is a space); malformed escapes stay as-is.
std::string url_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
                   hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

// Runs `f` where the io_context's objects may be touched: inline when on its thread or when it
// is not running (tests call stop() between ctx.run() calls), else posted to it.
void on_context(asio::io_context& ctx, std::function<void()> f) {
    if (ctx.get_executor().running_in_this_thread() || ctx.stopped())
        f();
    else
        asio::post(ctx, std::move(f));
}

void ignore_exception(std::exception_ptr) {}

// Owners of a server or proxy (runtime.hpp's thread_pair, tests) may destroy the io_context
// before the object, but sockets must die before their context's services. This service lives
// in the context and, when it shuts down, has each registered owner drop its I/O objects.
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

// Registers `self` so its I/O objects are dropped if the io_context goes first.
template <class Impl>
void watch_context(const std::shared_ptr<Impl>& self) {
    self->watch = &asio::use_service<context_watch>(self->ctx);
    std::weak_ptr<Impl> weak = self;
    auto on_gone = [weak] {
        if (auto p = weak.lock()) p->context_gone();
    };
    self->watch->add(self.get(), std::move(on_gone));
}

// Sockets and timers of live sessions, so stop() can end them (a hung session never ends by
// itself). Entries are removed by the owning coroutine frame.
struct live_session {
    beast::tcp_stream* tcp = nullptr;
    asio::steady_timer* timer = nullptr;
};

class session_registration {
public:
    session_registration(std::list<live_session>& list, live_session s)
        : list_(list), it_(list.insert(list.end(), s)) {}
    ~session_registration() { list_.erase(it_); }
    session_registration(const session_registration&) = delete;
    session_registration& operator=(const session_registration&) = delete;

private:
    std::list<live_session>& list_;
    std::list<live_session>::iterator it_;
};

template <class Stream>
constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

void set_status(http::response_header<>& h, int status) {
    h.version(11);
    h.result(static_cast<unsigned>(status));
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string server_request::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return {};
}

std::string server_request::path() const {
    return target.substr(0, target.find('?'));
}

std::string server_request::query_param(std::string_view name) const {
    const auto q = target.find('?');
    if (q == std::string::npos) return {};
    std::string_view query = std::string_view(target).substr(q + 1);
    while (!query.empty()) {
        const auto amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == query.npos ? std::string_view() : query.substr(amp + 1);
        const auto eq = pair.find('=');
        if (url_decode(pair.substr(0, eq)) != name) continue;
        return eq == pair.npos ? std::string() : url_decode(pair.substr(eq + 1));
    }
    return {};
}

// ---------------------------------------------------------------------------------------------

struct https_server::impl {
    impl(asio::io_context& c, options o, request_handler h)
        : ctx(c), opts(std::move(o)), handler(std::move(h)), acceptor(std::in_place, c) {}
    ~impl() {
        if (watch) watch->remove(this);
    }
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;

    void stop_now() {
        stopped = true;
        beast::error_code ec;
        if (acceptor) acceptor->close(ec);
        for (auto& s : sessions) {
            s.tcp->close();
            s.timer->cancel();
        }
    }
    void context_gone() {
        ctx_gone = true;
        stop_now();
        acceptor.reset();
        watch = nullptr;
    }

    static asio::awaitable<void> accept_loop(std::shared_ptr<impl> self);
    static asio::awaitable<void> session(std::shared_ptr<impl> self, tcp::socket sock);
    template <class Stream>
    static asio::awaitable<void> serve(std::shared_ptr<impl> self, Stream& stream,
                                       beast::tcp_stream& raw);

    asio::io_context& ctx;
    options opts;
    request_handler handler;
    std::optional<ssl::context> tls;
    std::optional<ssl::context> untrusted_tls;  // made on first use of the fault
    std::atomic<int> tls_fault{0};
    std::optional<tcp::acceptor> acceptor;  // reset when the io_context shuts down first
    std::uint16_t port = 0;
    std::atomic<std::uint64_t> accepted{0};
    bool stopped = false;
    std::atomic<bool> stop_requested{false};
    std::atomic<bool> ctx_gone{false};
    context_watch* watch = nullptr;
    std::list<live_session> sessions;
};

asio::awaitable<void> https_server::impl::accept_loop(std::shared_ptr<impl> self) {
    asio::steady_timer backoff(self->ctx);
    for (;;) {
        beast::error_code ec;
        tcp::socket sock(self->ctx);
        co_await self->acceptor->async_accept(sock, asio::redirect_error(asio::use_awaitable, ec));
        if (self->stopped || !self->acceptor || !self->acceptor->is_open()) co_return;
        if (ec) {
            // EMFILE and friends: do not spin.
            backoff.expires_after(std::chrono::milliseconds(10));
            co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        ++self->accepted;
        asio::co_spawn(self->ctx, session(self, std::move(sock)), ignore_exception);
    }
}

asio::awaitable<void> https_server::impl::session(std::shared_ptr<impl> self, tcp::socket sock) {
    try {
        const auto fault = static_cast<https_server::tls_fault>(self->tls_fault.load());
        if (self->tls && fault == https_server::tls_fault::not_tls) {
            // Something that is not a TLS server answered on the port (a captive portal, a
            // misrouted load balancer): plain text, then close.
            static const std::string junk =
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            beast::error_code ec;
            asio::write(sock, asio::buffer(junk), ec);
            sock.shutdown(tcp::socket::shutdown_both, ec);
            co_return;
        }
        if (self->tls && fault == https_server::tls_fault::untrusted_certificate) {
            if (!self->untrusted_tls) {
                const auto other = test_pki::generate({"127.0.0.1", "localhost"}, "untrusted");
                self->untrusted_tls.emplace(ssl::context::tls_server);
                self->untrusted_tls->use_certificate_chain(asio::buffer(other.server_cert_pem));
                self->untrusted_tls->use_private_key(asio::buffer(other.server_key_pem),
                                                     ssl::context::pem);
            }
            tls_stream stream(std::move(sock), *self->untrusted_tls);
            co_await serve(self, stream, stream.next_layer());
        } else if (self->tls) {
            tls_stream stream(std::move(sock), *self->tls);
            co_await serve(self, stream, stream.next_layer());
        } else {
            beast::tcp_stream stream(std::move(sock));
            co_await serve(self, stream, stream);
        }
    } catch (const std::exception&) {
        // A test server: a broken connection ends the session, nothing else.
    }
}

template <class Stream>
asio::awaitable<void> https_server::impl::serve(std::shared_ptr<impl> self, Stream& stream,
                                                beast::tcp_stream& raw) {
    asio::steady_timer timer(self->ctx);
    session_registration reg(self->sessions, live_session{&raw, &timer});
    if (self->stopped) co_return;
    beast::error_code ec;
    if constexpr (is_tls<Stream>) {
        raw.expires_after(io_deadline);
        co_await stream.async_handshake(ssl::stream_base::server,
                                        asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
    }

    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(self->opts.max_body_bytes);
        parser.header_limit(64 * 1024);
        raw.expires_never();  // keep-alive: the client decides how long to idle
        co_await http::async_read(stream, buffer, parser,
                                  asio::redirect_error(asio::use_awaitable, ec));
        if (self->stopped) co_return;
        if (ec == http::error::body_limit) {
            http::response<http::string_body> res;
            set_status(res, 413);
            res.keep_alive(false);
            res.prepare_payload();
            raw.expires_after(io_deadline);
            co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
            raw.close();
            co_return;
        }
        if (ec) co_return;

        auto& msg = parser.get();
        server_request req;
        req.method = std::string(msg.method_string());
        req.target = std::string(msg.target());
        for (const auto& f : msg)
            req.headers.emplace_back(lower(f.name_string()), std::string(f.value()));
        req.body = std::move(msg.body());
        const bool client_keep_alive = msg.keep_alive();

        server_response resp;
        try {
            resp = self->handler(req);
        } catch (const std::exception& e) {
            resp = server_response{};
            resp.status = 500;
            resp.body = std::string("{\"error\":\"handler threw: ") + e.what() + "\"}";
        }

        if (resp.delay.count() > 0) {
            timer.expires_after(resp.delay);
            co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (self->stopped) co_return;
        }

        if (resp.what == server_response::fault::hang) {
            // Never answer; drain until the client gives up and closes (or stop()).
            raw.expires_never();
            std::array<char, 512> scratch;
            for (;;) {
                co_await raw.socket().async_read_some(
                    asio::buffer(scratch), asio::redirect_error(asio::use_awaitable, ec));
                if (ec) co_return;
            }
        }
        if (resp.what == server_response::fault::reset) {
            // SO_LINGER 0: close() sends RST, like a crashed or load-shedding peer.
            raw.socket().set_option(asio::socket_base::linger(true, 0), ec);
            raw.close();
            co_return;
        }

        // Framing headers from the handler are not copied: the server frames the body itself,
        // and "Transfer-Encoding: chunked" from the handler selects chunked framing.
        bool chunked = false;
        for (const auto& [k, v] : resp.headers)
            if (iequals(k, "transfer-encoding") && lower(v).find("chunked") != std::string::npos)
                chunked = true;
        auto add_headers = [&resp](http::response_header<>& h) {
            bool has_type = false;
            for (const auto& [k, v] : resp.headers) {
                if (iequals(k, "transfer-encoding") || iequals(k, "content-length") ||
                    iequals(k, "connection"))
                    continue;
                has_type = has_type || iequals(k, "content-type");
                h.insert(k, v);
            }
            if (!has_type && !resp.content_type.empty() && !resp.body.empty())
                h.set(http::field::content_type, resp.content_type);
            h.set(http::field::server, "glasswatch-test");
        };

        raw.expires_after(io_deadline);
        if (resp.what == server_response::fault::drop_after_headers) {
            // Promise a body, send half of it, vanish (no TLS close_notify either).
            http::response<http::empty_body> res;
            set_status(res, resp.status);
            add_headers(res);
            res.content_length(resp.body.empty() ? 1024 : resp.body.size());
            http::response_serializer<http::empty_body> sr{res};
            co_await http::async_write_header(stream, sr,
                                              asio::redirect_error(asio::use_awaitable, ec));
            if (!ec && resp.body.size() > 1)
                co_await asio::async_write(stream,
                                           asio::buffer(resp.body.data(), resp.body.size() / 2),
                                           asio::redirect_error(asio::use_awaitable, ec));
            raw.close();
            co_return;
        }

        const bool keep_alive = client_keep_alive && !resp.close;
        if (chunked) {
            // Three chunks (when the body allows), so the client's chunk parser really works.
            http::response<http::empty_body> res;
            set_status(res, resp.status);
            add_headers(res);
            res.chunked(true);
            res.keep_alive(keep_alive);
            http::response_serializer<http::empty_body> sr{res};
            co_await http::async_write_header(stream, sr,
                                              asio::redirect_error(asio::use_awaitable, ec));
            const std::size_t n = resp.body.size();
            const std::size_t step = n / 3 + 1;
            for (std::size_t off = 0; !ec && off < n; off += step) {
                auto chunk =
                    http::make_chunk(asio::buffer(resp.body.data() + off, std::min(step, n - off)));
                co_await asio::async_write(stream, chunk,
                                           asio::redirect_error(asio::use_awaitable, ec));
            }
            if (!ec) {
                auto last = http::make_chunk_last();
                co_await asio::async_write(stream, last,
                                           asio::redirect_error(asio::use_awaitable, ec));
            }
        } else {
            http::response<http::string_body> res;
            set_status(res, resp.status);
            add_headers(res);
            res.keep_alive(keep_alive);
            res.body() = resp.body;
            res.prepare_payload();
            co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
        }
        if (ec) co_return;
        if (!keep_alive) {
            if constexpr (is_tls<Stream>) {
                raw.expires_after(std::chrono::seconds(2));
                co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
            }
            raw.socket().shutdown(tcp::socket::shutdown_both, ec);
            raw.close();
            co_return;
        }
    }
}

https_server::https_server(asio::io_context& ctx, options opts, request_handler handler)
    : impl_(std::make_shared<impl>(ctx, std::move(opts), std::move(handler))) {
    auto& o = impl_->opts;
    if (o.tls) {
        if (o.cert_pem.empty() || o.key_pem.empty())
            throw std::invalid_argument("https_server: tls needs cert_pem and key_pem");
        impl_->tls.emplace(ssl::context::tls_server);
        SSL_CTX_set_min_proto_version(impl_->tls->native_handle(), TLS1_2_VERSION);
        impl_->tls->use_certificate_chain(asio::buffer(o.cert_pem));
        impl_->tls->use_private_key(asio::buffer(o.key_pem), ssl::context::pem);
    }
    const tcp::endpoint ep(asio::ip::make_address(o.bind), o.port);
    auto& a = *impl_->acceptor;
    a.open(ep.protocol());
    a.set_option(tcp::acceptor::reuse_address(true));
    a.bind(ep);
    a.listen();
    impl_->port = a.local_endpoint().port();
    watch_context(impl_);
    asio::co_spawn(ctx, impl::accept_loop(impl_), ignore_exception);
}

https_server::~https_server() {
    stop();
}

std::uint16_t https_server::port() const noexcept {
    return impl_->port;
}

void https_server::stop() {
    auto self = impl_;
    // Once stopped, or once the io_context is gone, the context is not touched again: the
    // destructor may run after the io_context was destroyed.
    if (self->ctx_gone || self->stop_requested.exchange(true)) return;
    on_context(self->ctx, [self] { self->stop_now(); });
}

std::uint64_t https_server::connections_accepted() const noexcept {
    return impl_->accepted;
}

void https_server::set_tls_fault(tls_fault f) {
    impl_->tls_fault = static_cast<int>(f);
}

// ---------------------------------------------------------------------------------------------

struct connect_proxy::impl {
    // Both ends of one CONNECT session; shared by the session and its two pumps.
    struct tunnel {
        tunnel(tcp::socket client_sock, asio::io_context& c)
            : client(std::move(client_sock)), upstream(c) {}
        beast::tcp_stream client;
        beast::tcp_stream upstream;
        void close() {
            client.close();
            upstream.close();
        }
    };

    impl(asio::io_context& c, int refuse)
        : ctx(c), refuse_status(refuse), acceptor(std::in_place, c) {}
    ~impl() {
        if (watch) watch->remove(this);
    }
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;

    void stop_now() {
        stopped = true;
        beast::error_code ec;
        if (acceptor) acceptor->close(ec);
        for (auto& w : tunnels)
            if (auto t = w.lock()) t->close();
        tunnels.clear();
    }
    void context_gone() {
        ctx_gone = true;
        stop_now();
        acceptor.reset();
        watch = nullptr;
    }

    static asio::awaitable<void> accept_loop(std::shared_ptr<impl> self);
    static asio::awaitable<void> session(std::shared_ptr<impl> self, std::shared_ptr<tunnel> t);
    static asio::awaitable<void> reply(std::shared_ptr<tunnel> t, int status);
    static asio::awaitable<void> pump(std::shared_ptr<tunnel> t, bool upward);

    asio::io_context& ctx;
    int refuse_status;
    std::optional<tcp::acceptor> acceptor;  // reset when the io_context shuts down first
    std::uint16_t port = 0;
    bool stopped = false;
    std::atomic<bool> stop_requested{false};
    std::atomic<bool> ctx_gone{false};
    context_watch* watch = nullptr;
    std::list<std::weak_ptr<tunnel>> tunnels;
    mutable std::mutex mu;  // targets() may be read from another thread
    std::vector<std::string> targets;
};

asio::awaitable<void> connect_proxy::impl::accept_loop(std::shared_ptr<impl> self) {
    asio::steady_timer backoff(self->ctx);
    for (;;) {
        beast::error_code ec;
        tcp::socket sock(self->ctx);
        co_await self->acceptor->async_accept(sock, asio::redirect_error(asio::use_awaitable, ec));
        if (self->stopped || !self->acceptor || !self->acceptor->is_open()) co_return;
        if (ec) {
            backoff.expires_after(std::chrono::milliseconds(10));
            co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        auto t = std::make_shared<tunnel>(std::move(sock), self->ctx);
        self->tunnels.remove_if([](const std::weak_ptr<tunnel>& w) { return w.expired(); });
        self->tunnels.push_back(t);
        asio::co_spawn(self->ctx, session(self, t), ignore_exception);
    }
}

asio::awaitable<void> connect_proxy::impl::reply(std::shared_ptr<tunnel> t, int status) {
    std::string head =
        "HTTP/1.1 " + std::to_string(status) + " " +
        std::string(http::obsolete_reason(http::int_to_status(static_cast<unsigned>(status)))) +
        "\r\n";
    if (status == 407) head += "Proxy-Authenticate: Basic realm=\"glasswatch-lab\"\r\n";
    head += "Content-Length: 0\r\nConnection: close\r\n\r\n";
    beast::error_code ec;
    t->client.expires_after(io_deadline);
    co_await asio::async_write(t->client, asio::buffer(head),
                               asio::redirect_error(asio::use_awaitable, ec));
    t->client.socket().shutdown(tcp::socket::shutdown_both, ec);
    t->close();
}

asio::awaitable<void> connect_proxy::impl::session(std::shared_ptr<impl> self,
                                                   std::shared_ptr<tunnel> t) {
    beast::error_code ec;
    beast::flat_buffer buffer;
    http::request_parser<http::empty_body> parser;
    parser.header_limit(8 * 1024);
    t->client.expires_after(io_deadline);
    co_await http::async_read(t->client, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec || self->stopped) co_return;
    const auto& req = parser.get();
    if (req.method() != http::verb::connect) {
        co_await reply(t, 405);
        co_return;
    }
    const std::string target(req.target());
    {
        std::lock_guard lock(self->mu);
        self->targets.push_back(target);
    }
    if (self->refuse_status != 0) {
        co_await reply(t, self->refuse_status);
        co_return;
    }

    // host:port, IPv6 in brackets. No DNS on purpose: tests must not depend on the network,
    // so only IP literals and "localhost" are reachable through this proxy (else 502).
    const auto colon = target.rfind(':');
    std::string host = colon == std::string::npos ? "" : target.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (host == "localhost") host = "127.0.0.1";
    unsigned port = 0;
    if (colon != std::string::npos) {
        for (char c : target.substr(colon + 1))
            port = (c >= '0' && c <= '9' && port < 65536) ? port * 10 + unsigned(c - '0') : 70000;
    }
    const auto addr = asio::ip::make_address(host, ec);
    if (ec || port == 0 || port > 65535) {
        co_await reply(t, 502);
        co_return;
    }
    t->upstream.expires_after(std::chrono::seconds(5));
    co_await t->upstream.async_connect(tcp::endpoint(addr, static_cast<std::uint16_t>(port)),
                                       asio::redirect_error(asio::use_awaitable, ec));
    if (ec || self->stopped) {
        co_await reply(t, 502);
        co_return;
    }
    t->upstream.expires_never();
    t->client.expires_never();
    const std::string ok = "HTTP/1.1 200 Connection established\r\n\r\n";
    co_await asio::async_write(t->client.socket(), asio::buffer(ok),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (!ec && buffer.size() > 0)  // the client spoke before our 200: pass it on
        co_await asio::async_write(t->upstream.socket(), buffer.data(),
                                   asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        t->close();
        co_return;
    }
    asio::co_spawn(self->ctx, pump(t, true), ignore_exception);
    asio::co_spawn(self->ctx, pump(t, false), ignore_exception);
}

asio::awaitable<void> connect_proxy::impl::pump(std::shared_ptr<tunnel> t, bool upward) {
    tcp::socket& from = upward ? t->client.socket() : t->upstream.socket();
    tcp::socket& to = upward ? t->upstream.socket() : t->client.socket();
    std::array<char, 16384> buf;
    beast::error_code ec;
    for (;;) {
        const std::size_t n = co_await from.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        co_await asio::async_write(to, asio::buffer(buf.data(), n),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
    }
    beast::error_code ignored;
    if (ec == asio::error::eof)
        to.shutdown(tcp::socket::shutdown_send, ignored);  // half-close, like a real tunnel
    else
        t->close();
}

connect_proxy::connect_proxy(asio::io_context& ctx, int refuse_status)
    : impl_(std::make_shared<impl>(ctx, refuse_status)) {
    const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    auto& a = *impl_->acceptor;
    a.open(ep.protocol());
    a.bind(ep);
    a.listen();
    impl_->port = a.local_endpoint().port();
    watch_context(impl_);
    asio::co_spawn(ctx, impl::accept_loop(impl_), ignore_exception);
}

connect_proxy::~connect_proxy() {
    stop();
}

std::uint16_t connect_proxy::port() const noexcept {
    return impl_->port;
}

std::vector<std::string> connect_proxy::targets() const {
    std::lock_guard lock(impl_->mu);
    return impl_->targets;
}

void connect_proxy::stop() {
    auto self = impl_;
    // Once stopped, or once the io_context is gone, the context is not touched again: the
    // destructor may run after the io_context was destroyed.
    if (self->ctx_gone || self->stop_requested.exchange(true)) return;
    on_context(self->ctx, [self] { self->stop_now(); });
}

}  // namespace glasswatch::test
