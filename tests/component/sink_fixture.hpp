// The sink component-test fixture: the delivery engine with the real PagerDuty, Twilio, webhook
// and file sinks against the lab's receivers (which validate auth, fields and signatures like
// the services and fail like them on demand), on 127.0.0.1 with a throwaway PKI. Shared by
// test_sinks.cpp and test_paging.cpp.
#pragma once

#include <unistd.h>
#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/alerting/pipeline.hpp"
#include "core/alerting/routing.hpp"
#include "io/delivery/delivery.hpp"
#include "io/store/runtime.hpp"
#include "io/store/store.hpp"
#include "lab/lab_sinks.hpp"
#include "support/fixtures.hpp"
#include "support/https_server.hpp"

namespace glasswatch::test {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using json = nlohmann::json;

struct sink_fixture {
    std::filesystem::path dir;
    test::test_pki pki;
    lab::sink_receivers receivers;
    std::string ca_path;
    core::config cfg;

    // `sans`: the names the receivers' certificate carries (the sinks dial 127.0.0.1).
    explicit sink_fixture(const std::vector<std::string>& sans = {"127.0.0.1", "localhost"})
        : pki(test::test_pki::generate(sans)) {
        char tmpl[] = "/tmp/glasswatch-sinks-XXXXXX";
        dir = ::mkdtemp(tmpl);
        ca_path = (dir / "ca.pem").string();
        pki.write_ca(ca_path);
        ::setenv("GW_TEST_PD_KEY", receivers.options().pagerduty_routing_key.c_str(), 1);
        ::setenv("GW_TEST_TWILIO_TOKEN", receivers.options().twilio_auth_token.c_str(), 1);
        ::setenv("GW_TEST_WEBHOOK_SECRET", receivers.options().webhook_secret.c_str(), 1);
        cfg = test::config_watching({test::adele});
        cfg.sinks.clear();
    }
    ~sink_fixture() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    core::sink_config& add(core::sink_kind kind, const std::string& name, std::uint16_t port) {
        core::sink_config s;
        s.name = name;
        s.kind = kind;
        s.ca_file = ca_path;
        s.request_timeout = 2s;
        const std::string base = "https://127.0.0.1:" + std::to_string(port);
        if (kind == core::sink_kind::pagerduty) {
            s.url = base + "/v2/enqueue";
            s.routing_key.env = "GW_TEST_PD_KEY";
            s.source = "contoso";
        } else if (kind == core::sink_kind::twilio) {
            s.api_base = base;
            s.account_sid = receivers.options().twilio_account_sid;
            s.auth_token.env = "GW_TEST_TWILIO_TOKEN";
            s.from = "+15005550006";
            s.to = {"+14155550100", "+14155550101"};
            s.burst_window = 0s;  // grouping has its own test
        } else if (kind == core::sink_kind::file) {
            s.path = (dir / (name + ".jsonl")).string();
        } else {
            s.url = base + "/hooks/soc";
            s.signing_secret.env = "GW_TEST_WEBHOOK_SECRET";
            s.headers = {{"X-Tenant", "contoso"}};
        }
        cfg.sinks.push_back(s);
        return cfg.sinks.back();
    }
    std::vector<core::finding> alerts(int n, const std::string& ua = "Mozilla/5.0") {
        core::pipeline p(cfg);
        std::vector<core::finding> out;
        for (int i = 0; i < n; ++i) {
            json rec = json::parse(test::read_fixture("graph_signins_page.json"))["value"][0];
            rec["id"] = "evt-" + std::to_string(i);
            rec["userAgent"] = ua;
            for (auto& f : p.process(rec.dump(), {}, 1762180000000000 + i).findings)
                out.push_back(f);
        }
        return out;
    }

    // Runs the engine until `done(receivers, store)` holds or `limit` passes; returns whether it
    // held.
    bool run(io::store& db, const std::vector<core::finding>& findings,
             std::function<bool(io::store&)> done, std::chrono::milliseconds limit,
             core::backoff_policy policy = fast()) {
        std::vector<io::routed_finding> routed;
        for (const auto& f : findings)
            routed.push_back({f, core::route_alert(cfg.sinks, f.a)});
        if (!routed.empty()) REQUIRE(db.commit(routed, {}, io::wall_now()).ok);
        io::thread_pair threads;
        io::runtime rt(threads.main(), threads.store_ctx(), db);
        std::vector<std::unique_ptr<io::sink>> sinks;
        for (const auto& sc : cfg.sinks) {
            std::string err;
            auto s = io::make_sink(rt, sc, false, err);
            INFO(err);
            REQUIRE(s);
            sinks.push_back(std::move(s));
        }
        io::delivery_engine engine(rt, std::move(sinks), {test::tenant, "contoso"}, policy);
        engine_ = &engine;
        test::https_server::options so;
        so.cert_pem = pki.server_cert_pem;
        so.key_pem = pki.server_key_pem;
        so.port = port_;
        test::https_server server(threads.main(), so, [this](const test::server_request& r) {
            return receivers.handle(r, io::wall_now());
        });
        bool held = false;
        server.set_tls_fault(tls_fault);
        // Reset before threads.finish(): an io object must not outlive its io_context.
        std::optional<asio::steady_timer> tls_recovery(std::in_place, threads.main(),
                                                       tls_fault_for);
        tls_recovery->async_wait([&](const boost::system::error_code&) {
            server.set_tls_fault(test::https_server::tls_fault::none);
        });
        asio::co_spawn(threads.main(), engine.run(), [](std::exception_ptr) {});
        auto watch = [&]() -> asio::awaitable<void> {
            asio::steady_timer t(threads.main());
            auto deadline = std::chrono::steady_clock::now() + limit;
            const auto started = std::chrono::steady_clock::now();
            while (std::chrono::steady_clock::now() < deadline) {
                t.expires_after(50ms);
                boost::system::error_code ec;
                co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                if (on_tick)
                    on_tick(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started));
                auto check = [&done](io::store& s) { return done(s); };
                if (co_await rt.on_store(std::move(check))) {
                    held = true;
                    break;
                }
            }
            engine.stop();
            server.stop();
            if (tls_recovery) tls_recovery->cancel();
        };
        asio::co_spawn(threads.main(), watch(), [](std::exception_ptr) {});
        threads.run_main();
        tls_recovery.reset();
        threads.finish();
        engine_ = nullptr;
        return held;
    }
    static core::backoff_policy fast() {
        core::backoff_policy p;
        p.initial = 50ms;
        p.max = 200ms;
        return p;
    }
    // Called every 50 ms of a run on the main thread (the receivers' thread), with the time
    // since the run started: faults that change over an episode.
    std::function<void(std::chrono::milliseconds)> on_tick;
    // The engine of the last run, while it runs (main thread): tests read broken().
    // A TLS fault on the receivers' port for the first tls_fault_for of a run.
    test::https_server::tls_fault tls_fault = test::https_server::tls_fault::none;
    std::chrono::milliseconds tls_fault_for{0};
    io::delivery_engine* engine_ = nullptr;
    // The receivers' server listens on a port chosen before the sinks are configured.
    std::uint16_t port_ = pick_port();
    static std::uint16_t pick_port() {
        asio::io_context ctx;
        asio::ip::tcp::acceptor a(ctx, {asio::ip::make_address("127.0.0.1"), 0});
        return a.local_endpoint().port();
    }
};

}  // namespace glasswatch::test
