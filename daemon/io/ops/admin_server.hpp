// Loopback-only admin HTTP server (Beast): /healthz, /readyz, /metrics.
//
// One short exchange per connection (read the request, answer, close). Any local user can
// connect, so idle or slow clients must never blind the probes: the request must arrive within
// 2 s of the connect and the whole exchange ends within 5 s; up to 128 connections are served
// at once, and when all slots are taken the connection that has waited longest without sending a
// request is closed to make room (a probe sends its request at once, so it always gets a slot).
// Only GET/HEAD; the handler is synchronous and cheap (it reads values the monitor caches).
//
// Thread: main thread. The object holds an acceptor, so it must be destroyed while its
// io_context exists (the daemon keeps it in the scope that runs the loop).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <string>

namespace glasswatch::io {

struct admin_answer {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

class admin_server {
public:
    using handler = std::function<admin_answer(const std::string& path)>;

    // `listen` is "127.x.y.z:port" or "[::1]:port" (config validation keeps it on loopback).
    static std::unique_ptr<admin_server> open(boost::asio::io_context& ctx,
                                              const std::string& listen, handler h,
                                              std::string& error);
    boost::asio::awaitable<void> run();
    void stop();
    std::uint16_t port() const noexcept { return port_; }

    static constexpr std::size_t max_connections = 128;
    static constexpr std::chrono::seconds request_deadline{2};
    static constexpr std::chrono::seconds exchange_deadline{5};

private:
    admin_server(boost::asio::io_context& ctx, handler h)
        : acceptor_(ctx), handler_(std::move(h)) {}
    boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket sock);

    boost::asio::ip::tcp::acceptor acceptor_;
    handler handler_;
    std::uint16_t port_ = 0;
    // One entry per open connection, oldest first. Shared with the sessions: a session frame
    // destroyed with the io_context (after this object) still finds a live list.
    struct connection {
        boost::asio::ip::tcp::socket* socket = nullptr;
        bool request_read = false;
    };
    using connection_list = std::list<connection>;
    std::shared_ptr<connection_list> conns_ = std::make_shared<connection_list>();
    std::uint64_t evicted_ = 0, refused_ = 0;  // for rate-limited log lines
    bool stopped_ = false;
    // Closes the oldest connection that has not sent its request; false when every one has.
    bool evict_idle();
};

}  // namespace glasswatch::io
