// The Graph poller component-test fixture: the lab (token endpoint + Graph) behind the in-process
// HTTPS server with a throwaway CA, the real HTTPS client, token provider, pipeline and store,
// and the poller run until a store predicate holds. Shared by test_graph_poller.cpp and
// test_source_faults_graph.cpp.
#pragma once

#include <unistd.h>
#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "io/sources/graph_poller.hpp"
#include "io/sources/ingest.hpp"
#include "io/store/runtime.hpp"
#include "lab/lab_graph.hpp"
#include "support/fixtures.hpp"
#include "support/https_server.hpp"

namespace glasswatch::test {

namespace asio = boost::asio;
using json = nlohmann::json;
using namespace std::chrono_literals;

struct poller_fixture {
    std::filesystem::path dir;
    test::test_pki pki = test::test_pki::generate();
    std::unique_ptr<lab::lab_tenant> lab;
    core::config cfg;
    io::source_health health;
    core::pipeline_stats pipeline_stats;
    std::uint64_t tokens_fetched = 0;
    std::size_t max_body_bytes = 16u << 20;  // the HTTPS client's body limit
    // Sees the poller's health every 100 ms of a run (main thread); optional.
    std::function<void(const io::source_health&)> observe;
    // Rewrites the lab's answer to a Graph request (hostile pages); optional.
    std::function<void(const test::server_request&, test::server_response&)> tamper;
    // A second HTTPS server on another port that every @odata.nextLink names (next_link_host):
    // the bearer token must never reach it. decoy_requests counts what it received anyway.
    bool decoy = false;
    std::uint64_t decoy_requests = 0;

    explicit poller_fixture(int lab_throttle = 50) {
        char tmpl[] = "/tmp/glasswatch-poller-XXXXXX";
        dir = ::mkdtemp(tmpl);
        pki.write_ca((dir / "ca.pem").string());
        std::ofstream(dir / "secret") << "lab-secret-value";
        std::filesystem::permissions(dir / "secret", std::filesystem::perms::owner_read |
                                                         std::filesystem::perms::owner_write);
        lab::lab_options lo;
        lo.client_secret = "lab-secret-value";
        lo.throttle_limit = lab_throttle;
        lo.ingestion_delay_min_s = 0;
        lo.ingestion_delay_max_s = 0;
        lab = std::make_unique<lab::lab_tenant>(lo);
        cfg.tenant_id = std::string(lab::ids::tenant);
        cfg.tenant_name = "contoso";
        cfg.watch.accounts.push_back({std::string(lab::ids::bg1), "", "bg1"});
        cfg.watch.accounts.push_back({std::string(lab::ids::bg2), "", "bg2"});
        cfg.graph.enabled = true;
        cfg.graph.client_id = std::string(lab::ids::client);
        cfg.graph.client_secret.file = (dir / "secret").string();
        cfg.graph.ca_file = (dir / "ca.pem").string();
        cfg.graph.poll_interval = 1s;
        cfg.graph.kinds = {core::graph_kind::interactive, core::graph_kind::audit};
        cfg.graph.max_requests_per_10s = lab_throttle;
        cfg.graph.request_timeout = 3s;
        cfg.state_directory = (dir / "state").string();
        core::sink_config s;
        s.name = "file";
        s.path = "/dev/null";
        cfg.sinks.push_back(s);
    }
    ~poller_fixture() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    json control(const std::string& what, const json& body) {
        if (what == "signin") return lab->add_sign_in(body, io::wall_now()).body;
        if (what == "audit") return lab->add_audit(body, io::wall_now()).body;
        if (what == "faults") return lab->set_faults(body).body;
        return {};
    }
    // Runs the poller until `done(store)` or `limit`; returns whether it held.
    bool run(std::function<bool(io::store&)> done, std::chrono::milliseconds limit) {
        std::string err;
        auto db = io::store::open(cfg.state_directory, err);
        REQUIRE(db);
        io::thread_pair threads;
        test::https_server::options so;
        so.cert_pem = pki.server_cert_pem;
        so.key_pem = pki.server_key_pem;
        test::https_server server(threads.main(), so, [this](const test::server_request& r) {
            auto answer = lab->handle(r, io::wall_now());
            if (tamper && r.target.rfind("/lab/", 0) != 0) tamper(r, answer);
            return answer;
        });
        std::unique_ptr<test::https_server> decoy_server;
        if (decoy) {
            decoy_server = std::make_unique<test::https_server>(
                threads.main(), so, [this](const test::server_request&) {
                    ++decoy_requests;
                    test::server_response r;
                    r.status = 200;
                    r.body = R"({"value":[]})";
                    return r;
                });
            lab->set_faults(
                {{"next_link_host", "127.0.0.1:" + std::to_string(decoy_server->port())}});
        }
        const std::string base = "https://127.0.0.1:" + std::to_string(server.port());
        cfg.graph.authority_host = base;
        cfg.graph.graph_base_url = base;
        io::runtime rt(threads.main(), threads.store_ctx(), *db);
        io::https_client_options ho;
        ho.ca_file = cfg.graph.ca_file;
        ho.use_proxy_env = false;
        ho.max_body_bytes = max_body_bytes;
        io::https_client http(threads.main().get_executor(), ho);
        auto tokens = io::token_provider::create(http, cfg, err);
        INFO(err);
        REQUIRE(tokens);
        core::pipeline pipeline(cfg);
        io::ingestor ingest(rt, cfg);
        io::graph_poller poller(rt, http, *tokens, pipeline, ingest, cfg);
        bool held = false;
        asio::co_spawn(threads.main(), poller.run(), [](std::exception_ptr) {});
        auto watch = [&]() -> asio::awaitable<void> {
            asio::steady_timer t(threads.main());
            auto deadline = std::chrono::steady_clock::now() + limit;
            while (std::chrono::steady_clock::now() < deadline) {
                t.expires_after(100ms);
                boost::system::error_code ec;
                co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                if (observe) observe(poller.health());
                auto check = [&done](io::store& s) { return done(s); };
                if (co_await rt.on_store(std::move(check))) {
                    held = true;
                    break;
                }
            }
            poller.stop();
            server.stop();
            if (decoy_server) decoy_server->stop();
        };
        asio::co_spawn(threads.main(), watch(), [](std::exception_ptr) {});
        threads.run_main();
        threads.finish();
        health = poller.health();
        pipeline_stats = pipeline.stats();
        tokens_fetched = tokens->tokens_fetched();
        return held;
    }
};

// Alerts in the store for these event ids (any rule).
inline bool alerted(io::store& s, const std::vector<std::string>& event_ids) {
    for (const auto& id : event_ids) {
        bool found = false;
        for (const auto& row : s.pending_all())
            if (row.a.event_id == id) found = true;
        if (!found) return false;
    }
    return true;
}

}  // namespace glasswatch::test
