// Loopback-only admin HTTP server (Beast): /healthz, /readyz, /metrics.
//
// One short exchange per connection (read the request, answer, close), each bounded by a 5 s
// deadline, at most 16 connections at once: a stuck scraper cannot pin the main loop or memory.
// Only GET/HEAD; the handler is synchronous and cheap (it reads values the monitor caches).
//
// Thread: main thread. The object holds an acceptor, so it must be destroyed while its
// io_context exists (the daemon keeps it in the scope that runs the loop).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
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

private:
    admin_server(boost::asio::io_context& ctx, handler h)
        : acceptor_(ctx), handler_(std::move(h)) {}
    boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket sock);

    boost::asio::ip::tcp::acceptor acceptor_;
    handler handler_;
    std::uint16_t port_ = 0;
    // Shared with the sessions: a session frame destroyed with the io_context (after this
    // object) still decrements a live counter.
    std::shared_ptr<int> active_ = std::make_shared<int>(0);
    bool stopped_ = false;
};

}  // namespace glasswatch::io
