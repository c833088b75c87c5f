#include "app/daemon.hpp"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <thread>

#include "app/commands.hpp"
#include "core/pipeline.hpp"
#include "io/admin_server.hpp"
#include "io/delivery.hpp"
#include "io/eventhub_source.hpp"
#include "io/graph_poller.hpp"
#include "io/https_client.hpp"
#include "io/ingest.hpp"
#include "io/monitor.hpp"
#include "io/posture_checker.hpp"
#include "io/runtime.hpp"
#include "io/store.hpp"
#include "io/token_provider.hpp"

namespace glasswatch::app {

namespace asio = boost::asio;

namespace {

void log_exception(const char* what, std::exception_ptr e) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        spdlog::critical("{} stopped by a bug: {}", what, x.what());
    }
}

}  // namespace

int run_daemon(const core::config& cfg) {
    std::string err;
    auto db = io::store::open(cfg.state_directory, err);
    if (!db) {
        spdlog::critical("state store: {}", err);
        return exit_store;
    }
    // Two daemons on one state would both page every alert and fight over the checkpoints.
    auto lock = io::state_lock::acquire(cfg.state_directory, err);
    if (!lock) {
        spdlog::critical("state store: {}", err);
        return exit_store;
    }
    spdlog::info("glasswatch {} starting: tenant {}, {} account(s) watched, {} sink(s), state {}",
                 GLASSWATCH_VERSION, cfg.tenant_name.empty() ? cfg.tenant_id : cfg.tenant_name,
                 cfg.watch.accounts.size(), cfg.sinks.size(), db->path());

    // The contexts are owned by `threads`, declared before everything whose address a coroutine
    // frame may hold, and torn down explicitly (threads.finish()) before those are destroyed.
    io::thread_pair threads;
    asio::io_context& main_ctx = threads.main();
    io::runtime rt(main_ctx, threads.store_ctx(), *db);
    core::alert_context actx{cfg.tenant_id,
                             cfg.tenant_name.empty() ? cfg.tenant_id : cfg.tenant_name};

    std::vector<std::unique_ptr<io::sink>> sinks;
    for (const auto& sc : cfg.sinks) {
        auto s = io::make_sink(rt, sc, cfg.allow_world_readable_secrets, err);
        if (!s) {
            spdlog::critical("sink {}: {}", sc.name, err);
            return exit_config;
        }
        sinks.push_back(std::move(s));
    }
    io::delivery_engine delivery(rt, std::move(sinks), actx);

    // Sources. Each one hands raw pages/bodies to the pipeline and commits through `ingest`.
    core::pipeline pipeline(cfg);
    io::ingestor ingest(rt, cfg);
    std::unique_ptr<io::https_client> graph_http;
    std::unique_ptr<io::token_provider> tokens;
    std::unique_ptr<io::graph_poller> graph;
    if (cfg.graph.enabled) {
        io::https_client_options ho;
        ho.ca_file = cfg.graph.ca_file;
        ho.proxy = cfg.graph.proxy;
        ho.request_timeout = cfg.graph.request_timeout;
        ho.max_body_bytes = 64u << 20;  // a 1000-record sign-in page is a few MB
        graph_http = std::make_unique<io::https_client>(main_ctx.get_executor(), ho);
        tokens = io::token_provider::create(*graph_http, cfg, err);
        if (!tokens) {
            spdlog::critical("{}", err);
            return exit_config;
        }
        graph = std::make_unique<io::graph_poller>(rt, *graph_http, *tokens, pipeline, ingest, cfg);
    }
    std::unique_ptr<io::eventhub_source> eventhub;
    if (cfg.eventhub.enabled) {
        eventhub = std::make_unique<io::eventhub_source>(rt, pipeline, ingest, cfg);
        if (!eventhub->ok()) {
            spdlog::critical("{}", eventhub->error());
            return exit_config;
        }
    }
    // Posture checks share the Graph client and token, not the poller's request budget.
    std::unique_ptr<io::posture_checker> posture;
    if (cfg.posture.enabled && tokens)
        posture = std::make_unique<io::posture_checker>(*graph_http, *tokens, cfg);

    // The tripwire, heartbeat, drills and the admin endpoints' view of the daemon.
    io::monitor mon(rt, cfg, actx, ingest, delivery, pipeline);
    if (graph) {
        const bool whole = cfg.graph.full_stream;
        io::graph_poller* g = graph.get();
        io::token_provider* t = tokens.get();
        mon.add_source({"graph",
                        [g, whole] {
                            const io::source_health& h = g->health();
                            core::source_snapshot s;
                            s.name = "graph";
                            s.last_success = h.last_success;
                            s.failing_since = h.failing_since;
                            s.last_event_seen = h.last_event_seen;
                            s.sees_whole_stream = whole;
                            s.last_error = h.last_error;
                            s.token = h.token;
                            s.records = h.records;
                            s.rejected = h.rejected;
                            return s;
                        },
                        [t] { return t->expires_at(); }});
    }
    if (eventhub) {
        io::eventhub_source* e = eventhub.get();
        mon.add_source({"eventhub",
                        [e] {
                            const io::eventhub_health& h = e->health();
                            core::source_snapshot s;
                            s.name = "eventhub";
                            s.last_success = h.common.last_success;
                            s.failing_since = h.common.failing_since;
                            s.last_event_seen = h.common.last_event_seen;
                            s.sees_whole_stream = true;  // every record of the categories streamed
                            s.last_error = h.common.last_error;
                            s.stuck = h.stuck_partitions() > 0;
                            s.records = h.messages;
                            s.rejected = h.common.rejected;
                            return s;
                        },
                        {}});
    }

    // Stopping means draining: stop intake, let in-flight deliveries finish (bounded by the
    // grace period), then leave the loop. Rows not yet acknowledged stay pending in the outbox
    // and go out after the restart (at-least-once). A clean stop ends with no coroutine left
    // suspended, so nothing outlives what it points at.
    bool stopping = false;
    bool died_by_bug = false;
    {
        // io objects in this scope are destroyed while main_ctx still exists.
        asio::steady_timer grace(main_ctx);
        asio::signal_set signals(main_ctx, SIGTERM, SIGINT);
        asio::steady_timer watchdog(main_ctx);
        std::unique_ptr<io::admin_server> admin;
        if (!cfg.admin_listen.empty()) {
            admin = io::admin_server::open(
                main_ctx, cfg.admin_listen,
                [&mon](const std::string& path) {
                    io::admin_answer a;
                    if (path == "/healthz") {
                        a.status = mon.live() ? 200 : 503;
                        a.body = mon.live() ? "ok\n" : "main loop not ticking\n";
                    } else if (path == "/readyz") {
                        auto r = mon.ready();
                        a.status = r.ready ? 200 : 503;
                        a.body = r.ready ? "ready\n" : "";
                        for (const auto& why : r.reasons)
                            a.body += why + "\n";
                    } else if (path == "/metrics") {
                        a.content_type = "text/plain; version=0.0.4; charset=utf-8";
                        a.body = mon.metrics_text();
                    } else {
                        a.status = 404;
                        a.body = "not found: /healthz /readyz /metrics\n";
                    }
                    return a;
                },
                err);
            if (!admin) {
                spdlog::critical("{}", err);
                return exit_config;
            }
            spdlog::info("admin endpoints on http://{}/ (healthz, readyz, metrics)",
                         cfg.admin_listen);
        }
        int running = 2 + (graph ? 1 : 0) + (eventhub ? 1 : 0) + (posture ? 1 : 0) +
                      (admin ? 1 : 0);  // delivery, monitor (+ sources, posture, admin)
        auto finished = [&](const char* what, std::exception_ptr e) {
            log_exception(what, e);
            if (e && !died_by_bug && !stopping) {
                // A component stopped by a bug: a daemon without it must not look healthy.
                // Drain like SIGTERM and exit non-zero so systemd restarts it.
                died_by_bug = true;
                ::raise(SIGTERM);
            }
            if (--running == 0) {
                grace.cancel();
                signals.cancel();
                watchdog.cancel();
            }
        };
        signals.async_wait([&](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            spdlog::info("signal {}: draining (stop intake, finish in-flight deliveries)", sig);
            sd_notify(0, "STOPPING=1");
            stopping = true;
            if (graph) graph->stop();
            if (posture) posture->stop();
            if (eventhub) eventhub->stop();
            delivery.stop();
            mon.stop();
            if (admin) admin->stop();
            grace.expires_after(std::chrono::seconds(10));
            grace.async_wait([&](const boost::system::error_code& gec) {
                if (gec) return;
                // A sink hangs beyond the grace period: leave without unwinding the loop.
                // Everything acknowledged is durable; the rest is retried after the restart.
                spdlog::warn("drain grace period over; pending deliveries resume after restart");
                spdlog::default_logger()->flush();
                std::_Exit(died_by_bug ? exit_failure : exit_ok);
            });
        });
        asio::co_spawn(main_ctx, delivery.run(),
                       [&](std::exception_ptr e) { finished("delivery", e); });
        if (graph)
            asio::co_spawn(main_ctx, graph->run(),
                           [&](std::exception_ptr e) { finished("graph poller", e); });
        asio::co_spawn(main_ctx, mon.run(), [&](std::exception_ptr e) { finished("monitor", e); });
        if (admin)
            asio::co_spawn(main_ctx, admin->run(),
                           [&](std::exception_ptr e) { finished("admin server", e); });
        if (posture)
            asio::co_spawn(main_ctx, posture->run(rt, ingest),
                           [&](std::exception_ptr e) { finished("posture checker", e); });
        if (eventhub)
            asio::co_spawn(main_ctx, eventhub->run(),
                           [&](std::exception_ptr e) { finished("eventhub source", e); });

        // The systemd watchdog is pinged from this loop at half its interval: a wedged loop
        // stops the pings and systemd restarts the service.
        std::uint64_t wd_usec = 0;
        std::function<void()> ping;
        if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
            ping = [&] {
                sd_notify(0, "WATCHDOG=1");
                // Test hook: a file that wedges the loop, to prove the pings stop.
                if (const char* wedge = std::getenv("GLASSWATCH_TEST_WEDGE_FILE");
                    wedge && ::access(wedge, F_OK) == 0) {
                    spdlog::warn("test hook: wedging the main loop");
                    for (;;)
                        std::this_thread::sleep_for(std::chrono::seconds(1));
                }
                watchdog.expires_after(std::chrono::microseconds(wd_usec / 2));
                watchdog.async_wait([&](const boost::system::error_code& ec) {
                    if (!ec) ping();
                });
            };
            ping();
        }

        sd_notify(0, "READY=1\nSTATUS=watching");
        spdlog::info("ready");
        threads.run_main();
    }
    threads.finish();
    spdlog::info("stopped{}", stopping ? " cleanly" : "");
    return died_by_bug ? exit_failure : exit_ok;
}

}  // namespace glasswatch::app
