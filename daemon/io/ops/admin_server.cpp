#include "io/ops/admin_server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
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
    if (!ec) s->acceptor_.listen(static_cast<int>(max_connections), ec);
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

bool admin_server::evict_idle() {
    for (auto& c : *conns_) {
        if (c.request_read || c.socket == nullptr) continue;
        boost::system::error_code ec;
        c.socket->close(ec);  // its session sees operation_aborted and ends
        c.socket = nullptr;
        if (evicted_++ % 100 == 0)
            spdlog::warn(
                "admin: every slot taken; closed an idle connection to make room ({} so "
                "far)",
                evicted_);
        return true;
    }
    return false;
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
        std::size_t open = 0;
        for (const auto& c : *conns_)
            open += c.socket != nullptr ? 1 : 0;
        if (open >= max_connections && !evict_idle()) {
            if (refused_++ % 100 == 0)
                spdlog::warn("admin: {} requests in progress at once; refusing a connection", open);
            continue;  // closes the socket: every slot is answering a request
        }
        asio::co_spawn(ex, session(std::move(sock)), asio::detached);
    }
}

asio::awaitable<void> admin_server::session(tcp::socket sock) {
    auto conns = conns_;
    conns->push_back({nullptr, false});
    auto self = std::prev(conns->end());
    struct unlist {
        std::shared_ptr<connection_list> list;
        connection_list::iterator it;
        ~unlist() { list->erase(it); }
    } guard{conns, self};
    auto ex = co_await asio::this_coro::executor;
    tcp::socket own(std::move(sock));
    self->socket = &own;
    // The request must come soon after the connect; the answer within the exchange deadline.
    asio::steady_timer deadline(ex, request_deadline);
    bool timed_out = false;
    deadline.async_wait([&own, &timed_out](const boost::system::error_code& ec) {
        if (ec) return;
        timed_out = true;
        boost::system::error_code ignored;
        own.close(ignored);
    });
    beast::flat_buffer buf;
    http::request_parser<http::empty_body> parser;
    parser.header_limit(8 * 1024);
    parser.body_limit(0);
    boost::system::error_code ec;
    co_await http::async_read(own, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || timed_out || self->socket == nullptr) {
        deadline.cancel();
        // Wait for the timer's handler before the frame (and `own`) goes away.
        co_await asio::post(ex, asio::use_awaitable);
        co_return;
    }
    self->request_read = true;
    deadline.expires_after(exchange_deadline - request_deadline);
    deadline.async_wait([&own, &timed_out](const boost::system::error_code& ec2) {
        if (ec2) return;
        timed_out = true;
        boost::system::error_code ignored;
        own.close(ignored);
    });
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
    co_await http::async_write(own, res, asio::redirect_error(asio::use_awaitable, ec));
    if (!timed_out) own.shutdown(tcp::socket::shutdown_send, ec);
    deadline.cancel();
    co_await asio::post(ex, asio::use_awaitable);
}

}  // namespace glasswatch::io
