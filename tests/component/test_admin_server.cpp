// The admin endpoint under idle and slow local clients: any local user can open connections to
// it, and that must never make /healthz fail (the probes would restart or page for nothing).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "io/ops/admin_server.hpp"

using namespace glasswatch;
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// The server on its own thread, as in the daemon (one loop), with a trivial handler.
struct admin_fixture {
    asio::io_context ctx;
    std::unique_ptr<io::admin_server> server;
    std::thread thread;
    std::uint16_t port = 0;

    admin_fixture() {
        std::string err;
        server = io::admin_server::open(
            ctx, "127.0.0.1:0",
            [](const std::string& path) {
                io::admin_answer a;
                a.status = path == "/healthz" ? 200 : 404;
                a.body = path == "/healthz" ? "ok\n" : "no\n";
                return a;
            },
            err);
        REQUIRE(server);
        port = server->port();
        asio::co_spawn(ctx, server->run(), asio::detached);
        thread = std::thread([this] { ctx.run(); });
    }
    ~admin_fixture() {
        asio::post(ctx, [this] { server->stop(); });
        // Sessions end on their own deadlines; the loop returns when they have.
        thread.join();
    }
};

// A blocking GET on a fresh connection; "" when nothing answered.
std::string get(std::uint16_t port, const std::string& path) {
    asio::io_context io;
    tcp::socket s(io);
    boost::system::error_code ec;
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    if (ec) return "";
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
    asio::write(s, asio::buffer(req), ec);
    if (ec) return "";
    std::string out;
    char buf[4096];
    for (;;) {
        const std::size_t n = s.read_some(asio::buffer(buf), ec);
        out.append(buf, n);
        if (ec) break;
    }
    return out;
}

std::vector<std::unique_ptr<tcp::socket>> idle_connections(asio::io_context& io, std::uint16_t port,
                                                           int n) {
    std::vector<std::unique_ptr<tcp::socket>> v;
    for (int i = 0; i < n; ++i) {
        auto s = std::make_unique<tcp::socket>(io);
        s->connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
        v.push_back(std::move(s));
    }
    return v;
}

bool answered_ok(const std::string& response) {
    return response.rfind("HTTP/1.1 200", 0) == 0 &&
           response.find("\r\n\r\nok\n") != std::string::npos;
}

}  // namespace

TEST_CASE("admin endpoint: /healthz answers with 64 idle connections open", "[admin]") {
    admin_fixture f;
    asio::io_context io;
    auto idle = idle_connections(io, f.port, 64);
    for (int i = 0; i < 5; ++i)
        CHECK(answered_ok(get(f.port, "/healthz")));
}

TEST_CASE("admin endpoint: beyond every slot, the longest-idle connection makes room", "[admin]") {
    admin_fixture f;
    asio::io_context io;
    auto idle =
        idle_connections(io, f.port, static_cast<int>(io::admin_server::max_connections) + 40);
    // Give the loop time to take them all in.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(answered_ok(get(f.port, "/healthz")));
    CHECK(answered_ok(get(f.port, "/healthz")));
}

TEST_CASE("admin endpoint: a client that sends nothing, or half a request, is closed", "[admin]") {
    admin_fixture f;
    asio::io_context io;
    auto idle = idle_connections(io, f.port, 2);
    asio::write(*idle[1], asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHost")));
    for (auto& s : idle) {
        // The server closes it: the read ends (EOF or reset) instead of blocking forever.
        char c;
        boost::system::error_code ec;
        const auto t0 = std::chrono::steady_clock::now();
        s->read_some(asio::buffer(&c, 1), ec);
        CHECK(ec);
        CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30));
    }
    CHECK(answered_ok(get(f.port, "/healthz")));
}
