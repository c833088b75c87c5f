// coalescing_stream under asio::ssl on both ends of a loopback connection: what arrives is what
// was sent, records leave in few sends and arrive in few reads, and the flush-before-read rule
// keeps handshakes and request/response exchanges from waiting on bytes still buffered.
#include <unistd.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <chrono>

#include <cstdio>
#include <memory>
#include <string>

#include "io/net/amqp_pump.hpp"
#include "io/net/coalescing_stream.hpp"
#include "io/net/net_dial.hpp"
#include "support/https_server.hpp"

using namespace glasswatch;
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

const test::test_pki& pki() {
    static const test::test_pki p = test::test_pki::generate();
    return p;
}

std::string pattern(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& c : s) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = static_cast<char>(x);
    }
    return s;
}

// A connected client/server pair, both coalesced TLS, handshakes done.
struct tls_pair {
    asio::io_context ctx;
    ssl::context server_ctx{ssl::context::tls_server};
    std::unique_ptr<ssl::context> client_ctx;
    std::unique_ptr<io::coalesced_tls_stream> client, server;
    std::string ca_path;

    explicit tls_pair(std::size_t capacity = io::coalescing_stream::default_capacity) {
        server_ctx.use_certificate_chain(asio::buffer(pki().server_cert_pem));
        server_ctx.use_private_key(asio::buffer(pki().server_key_pem), ssl::context::pem);
        ca_path = "/tmp/glasswatch-coalesce-ca-" + std::to_string(::getpid()) + ".pem";
        pki().write_ca(ca_path);
        std::string err;
        client_ctx = io::make_tls_client_context(ca_path, err);
        REQUIRE(err.empty());

        tcp::acceptor acc(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        tcp::socket s_sock(ctx);
        boost::beast::tcp_stream c_tcp(ctx);
        error_code aec, cec;
        acc.async_accept(s_sock, [&](error_code e) { aec = e; });
        c_tcp.async_connect(acc.local_endpoint(), [&](error_code e) { cec = e; });
        ctx.run();
        ctx.restart();
        REQUIRE(!aec);
        REQUIRE(!cec);
        server = std::make_unique<io::coalesced_tls_stream>(
            io::coalescing_stream(boost::beast::tcp_stream(std::move(s_sock)), capacity, capacity),
            server_ctx);
        client = std::make_unique<io::coalesced_tls_stream>(
            io::coalescing_stream(std::move(c_tcp), capacity, capacity), *client_ctx);
        REQUIRE(io::set_tls_peer(client->native_handle(), "127.0.0.1"));
        error_code shs = asio::error::would_block, chs = asio::error::would_block;
        server->async_handshake(ssl::stream_base::server, [&](error_code e) { shs = e; });
        client->async_handshake(ssl::stream_base::client, [&](error_code e) {
            chs = e;
            // The client's Finished is still buffered: flush it, as net_dial does.
            if (!e) client->next_layer().async_flush([&](error_code fe) { chs = fe; });
        });
        ctx.run_for(std::chrono::seconds(10));
        ctx.restart();
        INFO("server handshake: " << shs.message() << "; client: " << chs.message());
        REQUIRE(!shs);  // would_block left: the handshake waited on a buffered flight
        REQUIRE(!chs);
    }
    ~tls_pair() { std::remove(ca_path.c_str()); }
};

// Writes `data` whole, then flushes (what stream_of does for every AMQP write).
asio::awaitable<error_code> write_all(io::coalesced_tls_stream& s, const std::string& data) {
    error_code ec;
    co_await asio::async_write(s, asio::buffer(data),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) co_await s.next_layer().async_flush(asio::redirect_error(asio::use_awaitable, ec));
    co_return ec;
}

asio::awaitable<std::string> read_n(io::coalesced_tls_stream& s, std::size_t n) {
    std::string out(n, '\0');
    error_code ec;
    co_await asio::async_read(s, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) out.clear();
    co_return out;
}

}  // namespace

TEST_CASE("coalescing TLS stream: 4 MB each way arrive intact in few socket sends and reads") {
    tls_pair p;
    const std::string up = pattern(4 << 20, 1), down = pattern(4 << 20, 2);
    std::string got_up, got_down;
    error_code e1 = asio::error::would_block, e2 = asio::error::would_block;
    asio::co_spawn(
        p.ctx,
        [&]() -> asio::awaitable<void> {
            got_up = co_await read_n(*p.server, up.size());
            e2 = co_await write_all(*p.server, down);
        },
        asio::detached);
    asio::co_spawn(
        p.ctx,
        [&]() -> asio::awaitable<void> {
            e1 = co_await write_all(*p.client, up);
            got_down = co_await read_n(*p.client, down.size());
        },
        asio::detached);
    p.ctx.run_for(std::chrono::seconds(30));
    REQUIRE(!e1);
    REQUIRE(!e2);
    CHECK(got_up == up);
    CHECK(got_down == down);

    // 4 MB is 256 TLS records of 16 KB: without the layer that is 256 sends and 256 reads.
    const auto c = p.client->next_layer().stats(), s = p.server->next_layer().stats();
    INFO("client sends " << c.socket_writes << " reads " << c.socket_reads << "; server sends "
                         << s.socket_writes << " reads " << s.socket_reads);
    // 16 full buffers, the rest of the data and the record overhead, the handshake's flights.
    const std::size_t most_sends = (4u << 20) / io::coalescing_stream::default_capacity + 8;
    CHECK(c.socket_writes <= most_sends);
    CHECK(s.socket_writes <= most_sends);
    CHECK(c.socket_reads < 128);
    CHECK(s.socket_reads < 128);
    CHECK(c.bytes_written > up.size());  // the records' framing and tags ride along
}

TEST_CASE(
    "coalescing TLS stream: a read sends what is buffered first (request and answer, no "
    "flush)") {
    tls_pair p;
    std::string answer;
    asio::co_spawn(
        p.ctx,
        [&]() -> asio::awaitable<void> {
            const std::string q = co_await read_n(*p.server, 4);
            co_await asio::async_write(*p.server, asio::buffer("re:" + q), asio::use_awaitable);
            // No flush: the server's next read (the peer's close) must push the answer out.
            co_await read_n(*p.server, 1);
        },
        asio::detached);
    asio::co_spawn(
        p.ctx,
        [&]() -> asio::awaitable<void> {
            co_await asio::async_write(*p.client, asio::buffer(std::string("ping")),
                                       asio::use_awaitable);
            answer = co_await read_n(*p.client, 7);
            p.ctx.stop();
        },
        asio::detached);
    p.ctx.run_for(std::chrono::seconds(10));
    CHECK(answer == "re:ping");
}

TEST_CASE(
    "coalescing TLS stream: writes larger than a small buffer wait for room and stay in "
    "order") {
    tls_pair p(4096);  // smaller than one TLS record: every record fills the buffer
    const std::string up = pattern(1 << 20, 3);
    std::string got;
    error_code ec = asio::error::would_block;
    asio::co_spawn(
        p.ctx, [&]() -> asio::awaitable<void> { got = co_await read_n(*p.server, up.size()); },
        asio::detached);
    asio::co_spawn(
        p.ctx, [&]() -> asio::awaitable<void> { ec = co_await write_all(*p.client, up); },
        asio::detached);
    p.ctx.run_for(std::chrono::seconds(30));
    REQUIRE(!ec);
    CHECK(got == up);
    CHECK(p.client->next_layer().stats().socket_writes >= (1u << 20) / 4096);
}

TEST_CASE("coalescing TLS stream: a closed socket fails the pending read and every later write") {
    tls_pair p;
    error_code read_ec, write_ec, flush_ec;
    std::size_t zero = 1;
    // A zero-size read completes at once (asio::ssl uses it to post its own completion).
    p.client->next_layer().async_read_some(asio::mutable_buffer(),
                                           [&](error_code, std::size_t n) { zero = n; });
    p.ctx.run_for(std::chrono::seconds(1));
    p.ctx.restart();
    CHECK(zero == 0);

    char buf[16];
    p.client->async_read_some(asio::buffer(buf), [&](error_code e, std::size_t) { read_ec = e; });
    p.ctx.poll();
    boost::beast::get_lowest_layer(*p.client).close();
    p.ctx.run_for(std::chrono::seconds(5));
    p.ctx.restart();
    CHECK(read_ec);

    p.client->next_layer().async_write_some(asio::buffer(std::string(10, 'x')),
                                            [&](error_code e, std::size_t) { write_ec = e; });
    p.client->next_layer().async_flush([&](error_code e) { flush_ec = e; });
    p.ctx.run_for(std::chrono::seconds(5));
    CHECK(flush_ec);  // the buffered bytes cannot be sent on a closed socket
}
