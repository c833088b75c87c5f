// https_client against the in-process server, CONNECT proxy and throwaway PKI: one
// single-threaded io_context per test, client and server on it, run until the request is done.
#include <stdlib.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/net/https_client.hpp"
#include "support/https_server.hpp"

using namespace glasswatch;
namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {

// RSA key generation dominates setup, so two PKIs serve the whole file: the good one (SANs
// 127.0.0.1 + localhost) and another whose CA the good clients do not trust and whose
// certificate names only "localhost-other".
const test::test_pki& good_pki() {
    static const test::test_pki pki = test::test_pki::generate();
    return pki;
}
const test::test_pki& other_pki() {
    static const test::test_pki pki = test::test_pki::generate({"localhost-other"});
    return pki;
}

struct ca_file {
    std::string path;
    explicit ca_file(const test::test_pki& pki) {
        char tmpl[] = "/tmp/glasswatch-ca-XXXXXX";
        const int fd = ::mkstemp(tmpl);
        REQUIRE(fd >= 0);
        ::close(fd);
        path = tmpl;
        pki.write_ca(path);
    }
    ~ca_file() { std::remove(path.c_str()); }
    ca_file(const ca_file&) = delete;
    ca_file& operator=(const ca_file&) = delete;
};

// Runs one request to completion on `ctx`. ctx.stop() ends the run (a server's accept loop never
// runs out of work); the 10 s cap turns a missing client deadline into a failure, not a hang.
io::http_result run_request(asio::io_context& ctx, io::https_client& client, io::http_request req) {
    std::optional<io::http_result> out;
    bool threw = false;
    auto done = [&ctx, &out, &threw](std::exception_ptr e, io::http_result r) {
        threw = e != nullptr;
        out = std::move(r);
        ctx.stop();
    };
    asio::co_spawn(ctx, client.request(std::move(req)), done);
    ctx.restart();
    ctx.run_for(std::chrono::seconds(10));
    REQUIRE_FALSE(threw);
    REQUIRE(out.has_value());
    return *out;
}

io::https_client_options client_options() {
    io::https_client_options o;
    o.connect_timeout = milliseconds(2000);
    o.request_timeout = milliseconds(2000);
    o.use_proxy_env = false;  // the machine's own proxy settings must not leak into tests
    o.user_agent = "glasswatch-test";
    return o;
}

// A server (handler = `respond`, requests recorded in `seen`) and a client trusting `trusted`.
struct rig {
    asio::io_context ctx;
    std::vector<test::server_request> seen;
    std::function<test::server_response(const test::server_request&)> respond;
    std::unique_ptr<ca_file> ca;
    std::unique_ptr<test::https_server> server;
    std::unique_ptr<io::https_client> client;
    bool tls;

    explicit rig(const test::test_pki& server_pki = good_pki(), bool use_tls = true,
                 std::size_t server_max_body = 8u << 20)
        : tls(use_tls) {
        test::https_server::options o;
        o.tls = use_tls;
        o.cert_pem = server_pki.server_cert_pem;
        o.key_pem = server_pki.server_key_pem;
        o.max_body_bytes = server_max_body;
        auto handler = [this](const test::server_request& req) {
            seen.push_back(req);
            return respond ? respond(req) : test::server_response{};
        };
        server = std::make_unique<test::https_server>(ctx, o, handler);
        make_client(client_options());
    }

    void make_client(io::https_client_options o, const test::test_pki& trusted = good_pki()) {
        client.reset();
        ca = std::make_unique<ca_file>(trusted);
        if (o.ca_file.empty()) o.ca_file = ca->path;
        client = std::make_unique<io::https_client>(ctx.get_executor(), o);
    }

    std::string url(const std::string& path) const {
        return std::string(tls ? "https" : "http") +
               "://127.0.0.1:" + std::to_string(server->port()) + path;
    }

    io::http_result fetch(io::http_request req) {
        return run_request(ctx, *client, std::move(req));
    }
    io::http_result get(const std::string& path) {
        io::http_request req;
        req.url = url(path);
        return fetch(std::move(req));
    }
};

test::server_response reply(int status, std::string body = "{}") {
    test::server_response r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

// Saves and clears the proxy variables; restores them at scope exit.
struct env_guard {
    std::vector<std::pair<std::string, std::optional<std::string>>> saved;
    env_guard() {
        for (const char* n :
             {"https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"}) {
            const char* v = std::getenv(n);
            saved.emplace_back(n, v ? std::optional<std::string>(v) : std::nullopt);
            ::unsetenv(n);
        }
    }
    ~env_guard() {
        for (const auto& [n, v] : saved) {
            if (v)
                ::setenv(n.c_str(), v->c_str(), 1);
            else
                ::unsetenv(n.c_str());
        }
    }
    env_guard(const env_guard&) = delete;
    env_guard& operator=(const env_guard&) = delete;
};

std::uint16_t closed_port() {
    asio::io_context ctx;
    asio::ip::tcp::acceptor a(ctx, {asio::ip::make_address("127.0.0.1"), 0});
    const auto port = a.local_endpoint().port();
    a.close();
    return port;
}

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("parse_url splits https and loopback http URLs and refuses the rest", "[https]") {
    io::url_parts u;
    REQUIRE(io::parse_url("https://Graph.Microsoft.com/v1.0/auditLogs/signIns?$top=5", u));
    CHECK(u.scheme == "https");
    CHECK(u.host == "graph.microsoft.com");
    CHECK(u.port == 443);
    CHECK(u.target == "/v1.0/auditLogs/signIns?$top=5");

    REQUIRE(io::parse_url("HTTP://127.0.0.1:8080", u));
    CHECK(u.scheme == "http");
    CHECK(u.host == "127.0.0.1");
    CHECK(u.port == 8080);
    CHECK(u.target == "/");

    REQUIRE(io::parse_url("http://localhost", u));
    CHECK(u.port == 80);

    REQUIRE(io::parse_url("https://[::1]:8443/x#fragment", u));
    CHECK(u.host == "::1");
    CHECK(u.port == 8443);
    CHECK(u.target == "/x");

    REQUIRE(io::parse_url("https://[2001:DB8::1]/", u));
    CHECK(u.host == "2001:db8::1");
    CHECK(u.port == 443);

    REQUIRE(io::parse_url("https://host.example?x=1", u));
    CHECK(u.target == "/?x=1");

    for (const char* bad :
         {"https://user:pw@host/", "https://graph.microsoft.com@evil.example/", "ftp://host/",
          "https://", "https:///path", "https://host:0/", "https://host:70000/", "https://host:/",
          "https://host:abc/", "graph.microsoft.com/x", "https://[::1/", "https://[not-v6]/",
          "https://ho st/", "https://host/a b", "https://host/\r\nX: y"}) {
        INFO(bad);
        CHECK_FALSE(io::parse_url(bad, u));
    }
}

TEST_CASE("error classes: transient for transport failures only", "[https]") {
    using e = io::http_error;
    for (auto t :
         {e::resolve, e::connect, e::proxy, e::tls_handshake, e::write, e::read, e::timeout})
        CHECK(io::is_transient(t));
    for (auto p : {e::none, e::bad_url, e::token_host_mismatch, e::body_too_large})
        CHECK_FALSE(io::is_transient(p));
    CHECK(io::to_string(e::tls_handshake) == "tls_handshake");
    CHECK(io::to_string(e::body_too_large) == "body_too_large");
}

TEST_CASE("server_request helpers decode the path and query", "[https]") {
    test::server_request r;
    r.target = "/v1.0/users?%24top=5&name=hello%20world&q=a+b&flag";
    r.headers = {{"content-type", "application/json"}};
    CHECK(r.path() == "/v1.0/users");
    CHECK(r.query_param("$top") == "5");
    CHECK(r.query_param("name") == "hello world");
    CHECK(r.query_param("q") == "a b");
    CHECK(r.query_param("flag").empty());
    CHECK(r.query_param("missing").empty());
    CHECK(r.header("Content-Type") == "application/json");
}

TEST_CASE("GET round trip: request headers on the wire / response headers lower-cased", "[https]") {
    rig r;
    r.respond = [](const test::server_request&) {
        auto s = reply(200, R"({"value":[]})");
        s.headers = {{"X-Request-Id", "req-1"}};
        return s;
    };
    io::http_request req;
    req.url = r.url("/v1.0/users?$top=1");
    req.headers = {{"Prefer", "odata.maxpagesize=1"}};
    auto res = r.fetch(req);
    REQUIRE(res.ok());
    CHECK(res.response.status == 200);
    CHECK(res.response.body == R"({"value":[]})");
    CHECK(res.response.header("X-REQUEST-ID") == "req-1");
    bool lower_name = false;
    for (const auto& [k, v] : res.response.headers)
        lower_name = lower_name || (k == "x-request-id" && v == "req-1");
    CHECK(lower_name);
    CHECK(res.response.header("content-type") == "application/json");

    REQUIRE(r.seen.size() == 1);
    const auto& s = r.seen[0];
    CHECK(s.method == "GET");
    CHECK(s.target == "/v1.0/users?$top=1");
    CHECK(s.header("host") == "127.0.0.1:" + std::to_string(r.server->port()));
    CHECK(s.header("user-agent") == "glasswatch-test");
    CHECK(s.header("accept") == "application/json");
    CHECK(s.header("prefer") == "odata.maxpagesize=1");
    CHECK(s.header("authorization").empty());
    CHECK(s.header("content-length").empty());
    CHECK(s.body.empty());
}

TEST_CASE("POST round trip carries the body / Content-Type and Content-Length", "[https]") {
    rig r;
    r.respond = [](const test::server_request&) { return reply(201, R"({"id":"42"})"); };
    io::http_request req;
    req.method = "POST";
    req.url = r.url("/hooks/page");
    req.headers = {{"Content-Type", "application/json"}, {"Accept", "text/plain"}};
    req.body = R"({"alert":"breakglass_signin","n":1})";
    auto res = r.fetch(req);
    REQUIRE(res.ok());
    CHECK(res.response.status == 201);
    CHECK(res.response.body == R"({"id":"42"})");

    REQUIRE(r.seen.size() == 1);
    const auto& s = r.seen[0];
    CHECK(s.method == "POST");
    CHECK(s.target == "/hooks/page");
    CHECK(s.body == req.body);
    CHECK(s.header("content-type") == "application/json");
    CHECK(s.header("content-length") == std::to_string(req.body.size()));
    CHECK(s.header("accept") == "text/plain");  // the caller's Accept replaces the default
}

TEST_CASE("4xx and 5xx are successful exchanges - the caller reads the status", "[https]") {
    rig r;
    r.respond = [](const test::server_request& q) {
        if (q.path() == "/missing") return reply(404, R"({"error":"not found"})");
        auto s = reply(503, "busy");
        s.headers = {{"Retry-After", "7"}};
        return s;
    };
    auto a = r.get("/missing");
    REQUIRE(a.ok());
    CHECK(a.response.status == 404);
    CHECK(a.response.body == R"({"error":"not found"})");
    auto b = r.get("/busy");
    REQUIRE(b.ok());
    CHECK(b.response.status == 503);
    CHECK(b.response.header("retry-after") == "7");
}

TEST_CASE("keep-alive reuses one connection until the server says close", "[https]") {
    rig r;
    bool close_next = false;
    r.respond = [&close_next](const test::server_request&) {
        auto s = reply(200, "ok");
        s.close = close_next;
        return s;
    };
    REQUIRE(r.get("/1").ok());
    REQUIRE(r.get("/2").ok());
    CHECK(r.server->connections_accepted() == 1);
    CHECK(r.client->connections_opened() == 1);

    close_next = true;
    auto closing = r.get("/3");  // answered, then "Connection: close"
    REQUIRE(closing.ok());
    CHECK(closing.response.body == "ok");
    close_next = false;
    REQUIRE(r.get("/4").ok());
    CHECK(r.server->connections_accepted() == 2);
    CHECK(r.client->connections_opened() == 2);

    r.client->close_idle();
    REQUIRE(r.get("/5").ok());
    CHECK(r.client->connections_opened() == 3);
    CHECK(r.seen.size() == 5);
}

TEST_CASE("chunked response bodies are reassembled and keep the connection", "[https]") {
    rig r;
    std::string big;
    for (int i = 0; i < 300; ++i)
        big += "chunk-" + std::to_string(i) + ";";
    r.respond = [&big](const test::server_request&) {
        auto s = reply(200, big);
        s.headers = {{"Transfer-Encoding", "chunked"}};
        return s;
    };
    auto a = r.get("/chunked");
    REQUIRE(a.ok());
    CHECK(a.response.header("transfer-encoding") == "chunked");
    CHECK(a.response.header("content-length").empty());
    CHECK(a.response.body == big);
    REQUIRE(r.get("/chunked").ok());
    CHECK(r.client->connections_opened() == 1);
}

TEST_CASE("plain http works to loopback only", "[https]") {
    rig r(good_pki(), /*use_tls=*/false);
    auto a = r.get("/plain");
    REQUIRE(a.ok());
    CHECK(a.response.status == 200);

    io::http_request by_name;
    by_name.url = "http://localhost:" + std::to_string(r.server->port()) + "/named";
    auto b = r.fetch(by_name);
    REQUIRE(b.ok());
    REQUIRE(r.seen.size() == 2);
    CHECK(r.seen[1].header("host") == "localhost:" + std::to_string(r.server->port()));

    const auto opened = r.client->connections_opened();
    for (const char* url : {"http://graph.microsoft.com/v1.0/", "http://10.0.0.1:8080/",
                            "http://[2001:db8::1]/", "ftp://127.0.0.1/"}) {
        INFO(url);
        io::http_request req;
        req.url = url;
        auto res = r.fetch(req);
        CHECK(res.error == io::http_error::bad_url);
        CHECK_FALSE(res.message.empty());
    }
    CHECK(r.client->connections_opened() == opened);
}

TEST_CASE("a server certificate from an untrusted CA fails the handshake", "[https]") {
    rig r;  // server: good PKI
    r.make_client(client_options(), other_pki());
    auto res = r.get("/");
    CHECK(res.error == io::http_error::tls_verify);
    CHECK(
        contains(res.message, "TLS handshake with 127.0.0.1:" + std::to_string(r.server->port())));
    CHECK(contains(res.message, "certificate verify failed"));
    CHECK(r.seen.empty());
    CHECK(io::is_transient(res.error));

    // And a CA file that does not exist is a clear TLS error, not a crash.
    auto o = client_options();
    o.ca_file = "/nonexistent/glasswatch-ca.pem";
    r.make_client(o);
    auto missing = r.get("/");
    CHECK(missing.error == io::http_error::tls_handshake);
    CHECK(contains(missing.message, "/nonexistent/glasswatch-ca.pem"));
}

TEST_CASE("a certificate for another host name fails the handshake", "[https]") {
    rig r(other_pki());  // SAN: DNS:localhost-other only
    r.make_client(client_options(), other_pki());
    auto res = r.get("/");
    CHECK(res.error == io::http_error::tls_verify);
    CHECK(contains(res.message, "certificate verify failed"));
    CHECK(contains(res.message, "mismatch"));
    CHECK(r.seen.empty());
}

TEST_CASE("a hung server hits request_timeout - a slow one within it is fine", "[https]") {
    rig r;
    auto o = client_options();
    o.request_timeout = milliseconds(300);
    r.make_client(o);
    r.respond = [](const test::server_request& q) {
        test::server_response s = reply(200, "late");
        if (q.path() == "/hang") s.what = test::server_response::fault::hang;
        if (q.path() == "/slow") s.delay = milliseconds(100);
        return s;
    };
    auto t0 = std::chrono::steady_clock::now();
    auto hung = r.get("/hang");
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(hung.error == io::http_error::timeout);
    CHECK(contains(hung.message, "timed out after 300 ms"));
    CHECK(took >= milliseconds(250));
    CHECK(took < milliseconds(2000));

    auto slow = r.get("/slow");
    REQUIRE(slow.ok());
    CHECK(slow.response.body == "late");
}

TEST_CASE("a reset on a fresh connection is a read error", "[https]") {
    rig r;
    r.respond = [](const test::server_request&) {
        test::server_response s;
        s.what = test::server_response::fault::reset;
        return s;
    };
    auto res = r.get("/reset");
    CHECK(res.error == io::http_error::read);
    CHECK(contains(res.message, "read from 127.0.0.1:"));
    CHECK(r.seen.size() == 1);  // fresh connection: no retry
    CHECK(r.client->connections_opened() == 1);
}

TEST_CASE("a reused connection that dies before answering is retried once", "[https]") {
    rig r;
    int calls = 0;
    bool always_reset = false;
    r.respond = [&calls, &always_reset](const test::server_request&) {
        ++calls;
        test::server_response s = reply(200, "fine");
        if (calls == 2 || (always_reset && calls > 3)) s.what = test::server_response::fault::reset;
        return s;
    };
    REQUIRE(r.get("/1").ok());
    auto second = r.get("/2");  // reused connection reset -> retried on a new one
    REQUIRE(second.ok());
    CHECK(second.response.body == "fine");
    CHECK(calls == 3);
    CHECK(r.client->connections_opened() == 2);

    always_reset = true;  // reused connection reset, and the retry too: one retry only
    auto third = r.get("/3");
    CHECK(third.error == io::http_error::read);
    CHECK(calls == 5);
    CHECK(r.client->connections_opened() == 3);
}

TEST_CASE("a POST on a reused connection that dies before answering is never re-sent",
          "[https][paging]") {
    // The server acts on the request, then the connection drops before any byte of the answer:
    // the client cannot know whether it happened, so it must say so instead of sending it again.
    rig r;
    int calls = 0;
    r.respond = [&calls](const test::server_request&) {
        ++calls;
        test::server_response s = reply(201, "created");
        if (calls == 2) s.what = test::server_response::fault::reset;
        return s;
    };
    auto post = [&r](const std::string& path, int* gate_calls) {
        io::http_request req;
        req.method = "POST";
        req.url = r.url(path);
        req.body = "To=%2B14155550100&Body=hello";
        if (gate_calls)
            req.before_send = [gate_calls]() -> asio::awaitable<bool> {
                ++*gate_calls;
                co_return true;
            };
        return run_request(r.ctx, *r.client, std::move(req));
    };
    REQUIRE(post("/Messages.json", nullptr).ok());
    int gate = 0;
    auto second = post("/Messages.json", &gate);  // reused connection: acted on, then reset
    CHECK(second.error == io::http_error::read);
    CHECK(second.ambiguous);  // the caller must look before sending again
    CHECK(calls == 2);        // sent once, not twice
    CHECK(gate == 1);

    // A refusal before anything left is not ambiguous.
    io::http_request bad;
    bad.method = "POST";
    bad.url = "https://127.0.0.1:1/";
    auto refused = run_request(r.ctx, *r.client, std::move(bad));
    CHECK_FALSE(refused.ok());
    CHECK_FALSE(refused.ambiguous);
}

TEST_CASE("an idempotent repeat on a stale connection goes through the caller's gate again",
          "[https][paging]") {
    rig r;
    int calls = 0;
    r.respond = [&calls](const test::server_request&) {
        ++calls;
        test::server_response s = reply(200, "fine");
        if (calls == 2) s.what = test::server_response::fault::reset;
        return s;
    };
    REQUIRE(r.get("/1").ok());
    int gate = 0;
    io::http_request req;
    req.url = r.url("/2");
    req.before_send = [&gate]() -> asio::awaitable<bool> {
        ++gate;
        co_return true;
    };
    auto res = run_request(r.ctx, *r.client, std::move(req));
    REQUIRE(res.ok());
    CHECK(calls == 3);
    CHECK(gate == 2);  // the repeat took its own slot (a rate limiter sees every request)

    // A gate that refuses abandons the request before anything is written.
    io::http_request stopped;
    stopped.url = r.url("/3");
    stopped.before_send = []() -> asio::awaitable<bool> { co_return false; };
    auto c = run_request(r.ctx, *r.client, std::move(stopped));
    CHECK(c.error == io::http_error::cancelled);
    CHECK(calls == 3);
}

TEST_CASE("a response cut off after its headers is a read error", "[https]") {
    rig r;
    r.respond = [](const test::server_request&) {
        test::server_response s = reply(200, std::string(100, 'x'));
        s.what = test::server_response::fault::drop_after_headers;
        return s;
    };
    auto res = r.get("/drop");
    CHECK(res.error == io::http_error::read);
    CHECK(contains(res.message, "closed before a complete response"));
}

TEST_CASE("bodies over max_body_bytes and oversized headers are refused", "[https]") {
    rig r;
    auto o = client_options();
    o.max_body_bytes = 1000;
    r.make_client(o);
    r.respond = [](const test::server_request& q) {
        if (q.path() == "/exact") return reply(200, std::string(1000, 'a'));
        auto s = reply(200, std::string(5000, 'b'));
        if (q.path() == "/chunked") s.headers = {{"Transfer-Encoding", "chunked"}};
        if (q.path() == "/headers") {
            s.body = "{}";
            // 80 KiB of headers in 4 KiB fields (Beast caps one field at 64 KiB).
            for (int i = 0; i < 20; ++i)
                s.headers.emplace_back("X-Pad-" + std::to_string(i), std::string(4096, 'h'));
        }
        return s;
    };
    auto exact = r.get("/exact");
    REQUIRE(exact.ok());
    CHECK(exact.response.body.size() == 1000);

    auto big = r.get("/big");
    CHECK(big.error == io::http_error::body_too_large);
    CHECK(contains(big.message, "1000 bytes"));
    CHECK_FALSE(io::is_transient(big.error));

    auto chunked = r.get("/chunked");
    CHECK(chunked.error == io::http_error::body_too_large);

    auto headers = r.get("/headers");
    CHECK(headers.error == io::http_error::read);
    CHECK(contains(headers.message, "headers"));
}

TEST_CASE("a bearer token goes only to the host it was issued for", "[https]") {
    rig r;
    const std::string token = "eyJ0eXAi.secret-token.value";
    io::http_request elsewhere;
    elsewhere.url = r.url("/v1.0/users");
    elsewhere.bearer_token = token;
    elsewhere.token_host = "graph.microsoft.com";
    auto refused = r.fetch(elsewhere);
    CHECK(refused.error == io::http_error::token_host_mismatch);
    CHECK_FALSE(contains(refused.message, token));
    CHECK_FALSE(io::is_transient(refused.error));
    CHECK(r.seen.empty());
    CHECK(r.server->connections_accepted() == 0);
    CHECK(r.client->connections_opened() == 0);

    io::http_request here = elsewhere;
    here.token_host = "127.0.0.1";
    auto sent = r.fetch(here);
    REQUIRE(sent.ok());
    REQUIRE(r.seen.size() == 1);
    CHECK(r.seen[0].header("authorization") == "Bearer " + token);

    io::http_request injected = here;
    injected.bearer_token = "abc\r\nX-Evil: 1";
    auto bad = r.fetch(injected);
    CHECK(bad.error == io::http_error::bad_url);
    CHECK(r.seen.size() == 1);
}

TEST_CASE("a refused connection is a connect error naming the endpoint", "[https]") {
    rig r;
    const auto port = closed_port();
    io::http_request req;
    req.url = "https://127.0.0.1:" + std::to_string(port) + "/";
    auto res = r.fetch(req);
    CHECK(res.error == io::http_error::connect);
    CHECK(contains(res.message, "connect 127.0.0.1:" + std::to_string(port) + ": "));
    CHECK(contains(res.message, "refused"));
    CHECK(r.client->connections_opened() == 0);
}

TEST_CASE("HTTPS through an explicit CONNECT proxy", "[https]") {
    rig r;
    test::connect_proxy proxy(r.ctx);
    auto o = client_options();
    o.proxy = "http://127.0.0.1:" + std::to_string(proxy.port());
    r.make_client(o);
    r.respond = [](const test::server_request&) { return reply(200, "via proxy"); };
    auto a = r.get("/a");
    REQUIRE(a.ok());
    CHECK(a.response.body == "via proxy");
    REQUIRE(r.get("/b").ok());  // the tunnel is kept alive and reused
    const std::vector<std::string> expected{"127.0.0.1:" + std::to_string(r.server->port())};
    CHECK(proxy.targets() == expected);
    CHECK(r.client->connections_opened() == 1);
    CHECK(r.seen.size() == 2);
}

TEST_CASE("a proxy refusing CONNECT is a proxy error with its status", "[https]") {
    rig r;
    test::connect_proxy proxy(r.ctx, 407);
    auto o = client_options();
    o.proxy = "http://127.0.0.1:" + std::to_string(proxy.port());
    r.make_client(o);
    auto res = r.get("/");
    CHECK(res.error == io::http_error::proxy);
    CHECK(contains(res.message, "407"));
    CHECK(proxy.targets().size() == 1);
    CHECK(r.seen.empty());

    // Unusable proxy settings are proxy errors that do not echo credentials.
    for (const char* setting : {"https://127.0.0.1:3128", "http://user:hunter2@127.0.0.1:1"}) {
        auto bad = client_options();
        bad.proxy = setting;
        r.make_client(bad);
        auto e = r.get("/");
        CHECK(e.error == io::http_error::proxy);
        CHECK_FALSE(contains(e.message, "hunter2"));
    }
}

TEST_CASE("https_proxy / no_proxy from the environment", "[https]") {
    env_guard env;
    rig r;
    test::connect_proxy proxy(r.ctx);
    auto o = client_options();
    o.use_proxy_env = true;
    o.connect_timeout = milliseconds(300);
    r.make_client(o);
    ::setenv("https_proxy", ("http://127.0.0.1:" + std::to_string(proxy.port())).c_str(), 1);
    auto fetch = [&r](const std::string& url) {
        io::http_request req;
        req.url = url;
        return r.fetch(std::move(req));
    };

    // Loopback never goes through the environment's proxy.
    REQUIRE(fetch(r.url("/local")).ok());
    CHECK(proxy.targets().empty());

    // Anything else does (the lab proxy has no DNS, so it answers 502 for names).
    auto named = fetch("https://graph.example.com/v1.0/");
    CHECK(named.error == io::http_error::proxy);
    CHECK(contains(named.message, "502"));
    CHECK(proxy.targets() == std::vector<std::string>{"graph.example.com:443"});

    // no_proxy entries that only look similar do not bypass it.
    ::setenv("no_proxy", "example.org, .other.example.com,raph.example.com,192.0.2.1", 1);
    CHECK(fetch("https://graph.example.com/v1.0/").error == io::http_error::proxy);
    CHECK(proxy.targets().size() == 2);

    // An exact IP entry bypasses it (the direct attempt to TEST-NET fails, not via the proxy);
    // NO_PROXY is honoured when no_proxy is unset, and "*" matches everything.
    for (const char* entry : {"192.0.2.10", "localhost,192.0.2.10:8443", "*"}) {
        INFO(entry);
        ::unsetenv("no_proxy");
        ::setenv("NO_PROXY", entry, 1);
        auto direct = fetch("https://192.0.2.10:8443/");
        CHECK_FALSE(direct.ok());
        CHECK(direct.error != io::http_error::proxy);
        CHECK_FALSE(contains(direct.message, "proxy"));
        CHECK(proxy.targets().size() == 2);
    }

    // use_proxy_env = false ignores the environment altogether.
    ::unsetenv("NO_PROXY");
    auto off = o;
    off.use_proxy_env = false;
    r.make_client(off);
    auto ignored = fetch("https://192.0.2.10:8443/");
    CHECK(ignored.error != io::http_error::proxy);
    CHECK(proxy.targets().size() == 2);
}

TEST_CASE("the test server refuses request bodies over its limit with 413", "[https]") {
    rig r(good_pki(), true, /*server_max_body=*/10);
    io::http_request req;
    req.method = "POST";
    req.url = r.url("/upload");
    req.body = std::string(100, 'z');
    auto res = r.fetch(req);
    REQUIRE(res.ok());
    CHECK(res.response.status == 413);
    CHECK(r.seen.empty());
}

TEST_CASE("server, proxy and client may outlive their io_context", "[https]") {
    // runtime.hpp's thread_pair::finish() destroys the io_contexts before the objects owning
    // clients (sinks) and, in tests, servers. Their sockets must not be touched afterwards
    // (caught by valgrind / GLASSWATCH_SANITIZE builds; here it must at least not crash).
    auto ctx = std::make_unique<asio::io_context>();
    test::https_server::options so;
    so.cert_pem = good_pki().server_cert_pem;
    so.key_pem = good_pki().server_key_pem;
    test::https_server server(*ctx, so, [](const test::server_request&) { return reply(200); });
    test::connect_proxy proxy(*ctx);
    ca_file ca(good_pki());
    auto o = client_options();
    o.ca_file = ca.path;
    o.proxy = "http://127.0.0.1:" + std::to_string(proxy.port());
    io::https_client client(ctx->get_executor(), o);
    io::http_request req;
    req.url = "https://127.0.0.1:" + std::to_string(server.port()) + "/";
    REQUIRE(run_request(*ctx, client, req).ok());  // leaves a pooled connection + a tunnel
    server.stop();                                 // explicit stop, destructor stops again
    ctx.reset();
    CHECK(client.connections_opened() == 1);
    client.close_idle();
    server.stop();
    proxy.stop();
}
