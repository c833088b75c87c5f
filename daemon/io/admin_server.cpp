#include "io/admin_server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

namespace glasswatch::io {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::unique_ptr<admin_server> admin_server::open(asio::io_context& ctx, const std::string& listen,
                                                 handler h, std::string& error) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) {
        error = "admin.listen: expected host:port";
        return nullptr;
    }
    std::string host = listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    boost::system::error_code ec;
    const auto addr = asio::ip::make_address(host, ec);
    if (ec || !addr.is_loopback()) {
        error = "admin.listen: " + listen + " is not a loopback address";
        return nullptr;
    }
    const int port = std::atoi(listen.c_str() + colon + 1);
    std::unique_ptr<admin_server> s(new admin_server(ctx, std::move(h)));
    const tcp::endpoint ep(addr, static_cast<std::uint16_t>(port));
    s->acceptor_.open(ep.protocol(), ec);
    if (!ec) s->acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) s->acceptor_.bind(ep, ec);
    if (!ec) s->acceptor_.listen(16, ec);
    if (ec) {
        error = "admin.listen: cannot listen on " + listen + ": " + ec.message();
        return nullptr;
    }
    s->port_ = s->acceptor_.local_endpoint().port();
    return s;
}

void admin_server::stop() {
    stopped_ = true;
    boost::system::error_code ec;
    acceptor_.close(ec);
}

asio::awaitable<void> admin_server::run() {
    auto ex = co_await asio::this_coro::executor;
    while (!stopped_) {
        boost::system::error_code ec;
        tcp::socket sock(ex);
        co_await acceptor_.async_accept(sock, asio::redirect_error(asio::use_awaitable, ec));
        if (stopped_) break;
        if (ec) {
            // EMFILE and friends persist: wait instead of spinning the loop.
            asio::steady_timer pause(ex, std::chrono::milliseconds(100));
            co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        if (*active_ >= 16) continue;  // closes the socket: too many scrapers at once
        ++*active_;
        asio::co_spawn(ex, session(std::move(sock)), asio::detached);
    }
}

asio::awaitable<void> admin_server::session(tcp::socket sock) {
    struct count {
        std::shared_ptr<int> n;
        ~count() { --*n; }
    } guard{active_};
    beast::tcp_stream stream(std::move(sock));
    stream.expires_after(std::chrono::seconds(5));
    beast::flat_buffer buf;
    http::request_parser<http::empty_body> parser;
    parser.header_limit(8 * 1024);
    parser.body_limit(0);
    boost::system::error_code ec;
    co_await http::async_read(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    const auto& req = parser.get();
    admin_answer a;
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
        a.status = 405;
        a.body = "method not allowed\n";
    } else {
        std::string path(req.target());
        if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
        a = handler_(path);
    }
    http::response<http::string_body> res{static_cast<http::status>(a.status), req.version()};
    res.set(http::field::server, "glasswatch");
    res.set(http::field::content_type, a.content_type);
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(false);
    if (req.method() != http::verb::head) res.body() = std::move(a.body);
    res.prepare_payload();
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace glasswatch::io
