// The Event Hub component-test fixture: a lab tenant for records, the lab's Event Hubs emulator
// on loopback (AMQPS with a throwaway CA, or AMQP over WebSockets, optionally through an HTTP
// CONNECT proxy), the real store, and the source under test started and stopped by a scenario
// coroutine on the main thread. Shared by test_eventhub.cpp and test_source_faults_eventhub.cpp.
#pragma once

#include <unistd.h>
#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "core/protocol/eventhub.hpp"
#include "io/sources/eventhub_source.hpp"
#include "io/sources/ingest.hpp"
#include "io/store/runtime.hpp"
#include "lab/lab_eventhub.hpp"
#include "lab/lab_graph.hpp"
#include "support/https_server.hpp"

namespace glasswatch::test {

namespace asio = boost::asio;
using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* hub_name = "insights-logs-entra";
constexpr const char* sas_key = "bGFiLWtleS1mb3ItdGhlLWV2ZW50LWh1Yi1lbXVsYXRvcg==";

struct eh_env;
using predicate = std::function<bool()>;

struct eh_fixture {
    std::filesystem::path dir;
    test::test_pki pki = test::test_pki::generate();
    std::unique_ptr<lab::lab_tenant> lab;
    std::vector<std::pair<json, std::string>> created;  // records from the lab, in order
    core::config cfg;
    io::eventhub_tuning tuning;
    lab::eventhub_options hub_opts;
    // The connection string's pieces; the file is written once the emulator's port is known.
    std::string key_name = "ListenOnly", key = sas_key, signature;
    std::string ns_host = "eh-lab.servicebus.example";
    bool use_websocket = false, use_proxy = false;
    bool expired_signature = false;  // a SharedAccessSignature that expired a minute ago
    int proxy_refuse = 0;
    std::vector<std::string> proxy_targets;
    json final_stats;

    eh_fixture() {
        char tmpl[] = "/tmp/glasswatch-eventhub-XXXXXX";
        dir = ::mkdtemp(tmpl);
        pki.write_ca((dir / "ca.pem").string());
        lab::lab_options lo;
        lo.ingestion_delay_min_s = 0;
        lo.ingestion_delay_max_s = 0;
        lo.on_event = [this](const json& r, const std::string& type, std::int64_t) {
            created.emplace_back(r, type);
        };
        lab = std::make_unique<lab::lab_tenant>(lo);
        cfg.tenant_id = std::string(lab::ids::tenant);
        cfg.tenant_name = "contoso";
        cfg.watch.accounts.push_back({std::string(lab::ids::bg1), "", "bg1"});
        cfg.watch.accounts.push_back({std::string(lab::ids::bg2), "", "bg2"});
        cfg.eventhub.enabled = true;
        cfg.eventhub.connection_string.file = (dir / "connection-string").string();
        cfg.eventhub.ca_file = (dir / "ca.pem").string();
        cfg.eventhub.credit = 50;
        cfg.eventhub.idle_timeout = 5s;
        cfg.state_directory = (dir / "state").string();
        core::sink_config s;
        s.name = "file";
        s.path = "/dev/null";
        cfg.sinks.push_back(s);
        tuning.phase_timeout = 3s;
        tuning.backoff_initial = 50ms;
        tuning.backoff_max = 300ms;
        tuning.busy_min = 200ms;
        tuning.long_backoff = 300ms;
        tuning.management_interval = 200ms;
        tuning.stuck_after = 600ms;
        hub_opts.key = sas_key;
        hub_opts.cert_pem = pki.server_cert_pem;
        hub_opts.key_pem = pki.server_key_pem;
    }
    ~eh_fixture() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }

    // One Graph-shaped record from the lab's generator, as a diagnostic-settings body.
    std::string body(const json& spec, std::string* id = nullptr) {
        const auto before = created.size();
        auto r = spec.contains("activity") ? lab->add_audit(spec, io::wall_now())
                                           : lab->add_sign_in(spec, io::wall_now());
        REQUIRE(r.ok);
        if (id) *id = r.body["id"].get<std::string>();
        std::vector<json> records;
        for (std::size_t i = before; i < created.size(); ++i)
            records.push_back(
                lab::to_diagnostic_record(created[i].first, created[i].second, cfg.tenant_id));
        return lab::diagnostic_body(records);
    }

    void write_connection_string(std::uint16_t port) {
        if (expired_signature) {
            const std::string audience =
                "sb://" + ns_host + ":" + std::to_string(port) + "/" + hub_name;
            signature =
                core::make_sas_token(audience, key_name, key, io::wall_now() / 1000000 - 60);
        }
        std::string cs = "Endpoint=sb://" + ns_host + ":" + std::to_string(port) +
                         "/;SharedAccessKeyName=" + key_name + ";";
        cs += signature.empty() ? "SharedAccessKey=" + key : "SharedAccessSignature=" + signature;
        cs += ";EntityPath=" + std::string(hub_name);
        std::ofstream(cfg.eventhub.connection_string.file) << cs << "\n";
        std::filesystem::permissions(
            cfg.eventhub.connection_string.file,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    }

    template <class Scenario>
    void run(Scenario scenario);
};

// What a scenario sees: the emulator, the store, and the source it may start and stop.
struct eh_env {
    eh_fixture& fx;
    io::thread_pair& threads;
    io::runtime& rt;
    lab::eventhub_emulator& hub;
    std::unique_ptr<core::pipeline> pipeline;
    std::unique_ptr<io::ingestor> ingest;
    std::unique_ptr<io::eventhub_source> source;
    bool running = false;
    std::vector<io::eventhub_health> past;  // health of sources already stopped

    void start_source() {
        pipeline = std::make_unique<core::pipeline>(fx.cfg);
        ingest = std::make_unique<io::ingestor>(rt, fx.cfg);
        source = std::make_unique<io::eventhub_source>(rt, *pipeline, *ingest, fx.cfg, fx.tuning);
        INFO(source->error());
        REQUIRE(source->ok());
        running = true;
        asio::co_spawn(threads.main(), source->run(), [this](std::exception_ptr e) {
            running = false;
            CHECK_FALSE(e);
        });
    }

    asio::awaitable<bool> wait(const predicate& done, std::chrono::milliseconds limit) {
        asio::steady_timer t(threads.main());
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done()) {
            if (std::chrono::steady_clock::now() >= deadline) co_return false;
            t.expires_after(20ms);
            boost::system::error_code ec;
            co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        co_return true;
    }

    asio::awaitable<void> stop_source() {
        if (!source) co_return;
        source->stop();
        predicate stopped = [this] { return !running; };
        const bool ok = co_await wait(stopped, 10s);
        CHECK(ok);
        past.push_back(source->health());
    }

    const io::eventhub_health& health() const { return source->health(); }
    // Messages processed by every source of this scenario so far.
    std::uint64_t messages_total() const {
        std::uint64_t n = running && source ? source->health().messages : 0;
        for (const auto& h : past)
            n += h.messages;
        return n;
    }

    // Event ids with an alert in the store.
    asio::awaitable<std::set<std::string>> alerted() {
        auto read = [](io::store& s) {
            std::set<std::string> ids;
            for (const auto& row : s.pending_all())
                ids.insert(row.a.event_id);
            return ids;
        };
        co_return co_await rt.on_store(std::move(read));
    }

    asio::awaitable<std::optional<core::eventhub_checkpoint>> checkpoint(int partition) {
        const std::string key = core::eventhub_checkpoint_key(hub_name, std::to_string(partition));
        auto read = [key](io::store& s) { return s.load_checkpoint(key); };
        auto text = co_await rt.on_store(std::move(read));
        if (!text) co_return std::nullopt;
        co_return core::decode_checkpoint(*text);
    }

    // Waits until every id in `ids` has an alert.
    asio::awaitable<bool> wait_alerted(const std::set<std::string>& ids,
                                       std::chrono::milliseconds limit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        asio::steady_timer t(threads.main());
        while (std::chrono::steady_clock::now() < deadline) {
            const std::set<std::string> got = co_await alerted();
            bool all = true;
            for (const auto& id : ids)
                all = all && got.count(id) > 0;
            if (all) co_return true;
            t.expires_after(30ms);
            boost::system::error_code ec;
            co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        co_return false;
    }
};

template <class Scenario>
void eh_fixture::run(Scenario scenario) {
    std::string err;
    auto db = io::store::open(cfg.state_directory, err);
    REQUIRE(db);
    std::exception_ptr failure;
    {
        io::thread_pair threads;
        io::runtime rt(threads.main(), threads.store_ctx(), *db);
        lab::eventhub_emulator hub(threads.main(), hub_opts);
        std::unique_ptr<test::connect_proxy> proxy;
        if (use_proxy) {
            proxy = std::make_unique<test::connect_proxy>(threads.main(), proxy_refuse);
            cfg.eventhub.proxy = "http://127.0.0.1:" + std::to_string(proxy->port());
        }
        const std::uint16_t port = use_websocket ? hub.websocket_port() : hub.amqps_port();
        write_connection_string(port);
        cfg.eventhub.host = "127.0.0.1:" + std::to_string(port);
        cfg.eventhub.transport =
            use_websocket ? core::eventhub_transport::websocket : core::eventhub_transport::amqps;
        eh_env env{*this, threads, rt, hub, nullptr, nullptr, nullptr, false, {}};
        auto finished = [&](std::exception_ptr e) {
            failure = e;
            if (env.source) env.source->stop();
            final_stats = hub.stats();
            if (proxy) {
                proxy_targets = proxy->targets();
                proxy->stop();
            }
            hub.stop();
        };
        asio::co_spawn(threads.main(), scenario(env), std::move(finished));
        threads.run_main();
        threads.finish();
    }
    if (failure) std::rethrow_exception(failure);
}

}  // namespace glasswatch::test
