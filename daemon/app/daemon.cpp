#include "app/daemon.hpp"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "app/commands.hpp"
#include "app/config_file.hpp"
#include "app/generation.hpp"
#include "io/base/logging.hpp"
#include "io/ops/admin_server.hpp"
#include "io/store/evidence_key_file.hpp"
#include "io/store/runtime.hpp"
#include "io/store/store.hpp"

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

io::admin_answer answer_admin(io::monitor* mon, const std::string& path) {
    io::admin_answer a;
    if (path == "/healthz") {
        // Between two generations the loop that answers is the loop that ticks.
        const bool live = mon == nullptr || mon->live();
        a.status = live ? 200 : 503;
        a.body = live ? "ok\n" : "main loop not ticking\n";
    } else if (path == "/readyz") {
        if (mon == nullptr) {
            a.status = 503;
            a.body = "reloading the configuration\n";
            return a;
        }
        auto r = mon->ready();
        a.status = r.ready ? 200 : 503;
        a.body = r.ready ? "ready\n" : "";
        for (const auto& why : r.reasons)
            a.body += why + "\n";
    } else if (path == "/metrics" && mon != nullptr) {
        a.content_type = "text/plain; version=0.0.4; charset=utf-8";
        a.body = mon->metrics_text();
    } else if (path == "/metrics") {
        a.status = 503;
        a.body = "reloading the configuration\n";
    } else {
        a.status = 404;
        a.body = "not found: /healthz /readyz /metrics\n";
    }
    return a;
}

// What a reload does not apply: the process holds them (the store and its lock, the listening
// socket). The new file's values are replaced by the running ones and the operator is told.
void keep_restart_only_keys(const core::config& running, core::config& next) {
    auto keep = [](const char* key, const std::string& kept, std::string& changed) {
        if (changed == kept) return;
        spdlog::warn(
            "reload: {} changed to '{}': applies at the next restart; the daemon keeps '{}'", key,
            changed, kept);
        changed = kept;
    };
    keep("state.directory", running.state_directory, next.state_directory);
    keep("admin.listen", running.admin_listen, next.admin_listen);
}

void log_reload_summary(const core::config& before, const core::config& after) {
    spdlog::info(
        "reload applied: {} -> {} account(s), {} -> {} group(s), {} -> {} CA "
        "policy(ies), {} -> {} sink(s), graph {}, eventhub {}",
        before.watch.accounts.size(), after.watch.accounts.size(), before.watch.groups.size(),
        after.watch.groups.size(), before.watch.ca_policies.size(), after.watch.ca_policies.size(),
        before.sinks.size(), after.sinks.size(), after.graph.enabled ? "on" : "off",
        after.eventhub.enabled ? "on" : "off");
}

// Rows queued for a sink no longer configured wait in the outbox as they are (never dropped):
// they go out when a sink of that name is configured again. Said at every start and reload.
asio::awaitable<void> warn_orphaned_rows(io::runtime* rt, std::vector<std::string> configured) {
    auto count = [](io::store& db) { return db.pending_by_sink(); };
    const auto pending = co_await rt->on_store(std::move(count));
    for (const auto& [sink, n] : pending) {
        if (std::find(configured.begin(), configured.end(), sink) != configured.end()) continue;
        spdlog::warn(
            "outbox: {} alert(s) wait for sink '{}', which is not configured: they "
            "stay queued and go out when a sink named '{}' is configured again "
            "(`glasswatch outbox list --sink {}` shows them)",
            n, sink, sink, sink);
    }
}

// The process around the generations: store, lock, threads, admin endpoint, signals.
class daemon_host {
public:
    daemon_host(std::string config_path, io::thread_pair& threads, io::runtime& rt, io::store& db,
                io::monitor_memory& mem)
        : path_(std::move(config_path)),
          threads_(threads),
          rt_(rt),
          db_(db),
          mem_(mem),
          signals_(rt.main(), SIGTERM, SIGINT, SIGHUP),
          grace_(rt.main()),
          watchdog_(rt.main()) {}

    int run(std::unique_ptr<generation> first) {
        current_ = std::move(first);
        const core::config& cfg = current_->config();
        if (!cfg.admin_listen.empty()) {
            std::string err;
            admin_ = io::admin_server::open(
                rt_.main(), cfg.admin_listen,
                [this](const std::string& path) { return answer_admin(current_mon_, path); }, err);
            if (!admin_) {
                spdlog::critical("{}", err);
                return exit_config;
            }
            spdlog::info("admin endpoints on http://{}/ (healthz, readyz, metrics)",
                         cfg.admin_listen);
            asio::co_spawn(rt_.main(), admin_->run(), [this](std::exception_ptr e) {
                log_exception("admin server", e);
                admin_running_ = false;
                maybe_finish();
            });
            admin_running_ = true;
        }
        start_current();
        wait_signal();
        start_watchdog();
        sd_notify(0, "READY=1\nSTATUS=watching");
        spdlog::info("ready");
        threads_.run_main();
        return died_by_bug_ ? exit_failure : exit_ok;
    }

    bool stopping() const noexcept { return stopping_; }

    // io objects of the host are destroyed while main_ctx still exists.
    ~daemon_host() = default;

private:
    void start_current() {
        current_mon_ = &current_->monitor();
        std::vector<std::string> names;
        for (const auto& sc : current_->config().sinks)
            names.push_back(sc.name);
        asio::co_spawn(rt_.main(), warn_orphaned_rows(&rt_, std::move(names)), asio::detached);
        const auto dropped = mem_.tripwire.keep_sources(current_->source_names());
        for (const auto& c : dropped)
            spdlog::warn(
                "reload: tripwire condition {} ends unresolved: its source is no "
                "longer configured",
                c);
        generation* g = current_.get();
        g->start([this](const char* what, std::exception_ptr e) { component_ended(what, e); },
                 [this, g] { generation_done(g); });
    }

    void component_ended(const char* what, std::exception_ptr e) {
        log_exception(what, e);
        if (e && !died_by_bug_ && !stopping_) {
            // A component stopped by a bug: a daemon without it must not look healthy.
            // Drain like SIGTERM and exit non-zero so systemd restarts it.
            died_by_bug_ = true;
            ::raise(SIGTERM);
        }
    }

    void generation_done(generation* g) {
        if (g != current_.get()) return;
        if (next_ && !stopping_) {
            // The reload's switch: the old generation has drained; the new one starts.
            log_reload_summary(current_->config(), next_->config());
            record_reload(current_->config(), next_->config());
            if (!io::init_logging(next_->config().log_level))
                spdlog::warn("reload: log.level '{}' unknown; the level is unchanged",
                             next_->config().log_level);
            current_mon_ = nullptr;
            current_ = std::move(next_);
            start_current();
            reload_succeeded();
            if (std::exchange(reload_again_, false)) reload();
            return;
        }
        current_mon_ = nullptr;
        next_.reset();
        current_.reset();
        maybe_finish();
    }

    void maybe_finish() {
        if (current_ || admin_running_) return;
        grace_.cancel();
        signals_.cancel();
        watchdog_.cancel();
    }

    void wait_signal() {
        signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                if (!stopping_) reload();
                wait_signal();
                return;
            }
            drain(sig);
        });
    }

    void drain(int sig) {
        spdlog::info("signal {}: draining (stop intake, finish in-flight deliveries)", sig);
        sd_notify(0, "STOPPING=1");
        stopping_ = true;
        next_.reset();  // a reload half-way is abandoned: the new generation never started
        if (current_) current_->stop();
        if (admin_) admin_->stop();
        grace_.expires_after(std::chrono::seconds(10));
        grace_.async_wait([this](const boost::system::error_code& gec) {
            if (gec) return;
            // A sink hangs beyond the grace period: leave without unwinding the loop.
            // Everything acknowledged is durable; the rest is retried after the restart.
            spdlog::warn("drain grace period over; pending deliveries resume after restart");
            spdlog::default_logger()->flush();
            std::_Exit(died_by_bug_ ? exit_failure : exit_ok);
        });
    }

    // SIGHUP: read and validate the file the daemon was started with, build the next generation
    // (everything that can refuse refuses here, while the running one keeps watching), then
    // switch. A refused file changes nothing but the log, a metric and one warning alert.
    void reload() {
        if (next_) {
            reload_again_ = true;  // a second SIGHUP during a switch: read the file once more
            return;
        }
        sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
        spdlog::info("SIGHUP: reloading {}", path_);
        mem_.last_reload_at = io::wall_now();
        auto loaded = load_config(path_, true);
        for (const auto& n : loaded.notes)
            spdlog::info("reload: note: {}", n);
        if (!loaded.value) {
            reload_refused(loaded.errors);
            return;
        }
        keep_restart_only_keys(current_->config(), *loaded.value);
        std::string err;
        auto next = generation::build(rt_, std::move(*loaded.value), mem_, err);
        if (!next) {
            reload_refused({path_ + ": " + err});
            return;
        }
        next_ = std::move(next);
        current_->stop();  // generation_done() switches once it has drained
    }

    void reload_refused(const std::vector<std::string>& errors) {
        for (const auto& e : errors)
            spdlog::error("reload: {}", e);
        spdlog::error(
            "reload refused ({} problem(s)): still running on the configuration "
            "loaded before; fix {} and send SIGHUP again",
            errors.size(), path_);
        ++mem_.reloads_failed;
        if (mem_.reload_failing_since == 0) mem_.reload_failing_since = mem_.last_reload_at;
        std::string first = errors.empty() ? std::string("unreadable") : errors.front();
        current_->monitor().report(
            {"config_reload_failed", core::severity::warning, path_,
             std::to_string(mem_.reload_failing_since),
             "glasswatch refused a configuration reload and keeps running on the previous "
             "configuration: " +
                 first +
                 (errors.size() > 1 ? " (and " + std::to_string(errors.size() - 1) + " more)"
                                    : std::string()),
             false});
        sd_notify(0, "READY=1\nSTATUS=watching (last reload refused)");
    }

    // A reload is evidence: what was watched before and after, chained on the store thread.
    void record_reload(const core::config& before, const core::config& after) {
        nlohmann::json body = {
            {"config", path_},
            {"accounts", {before.watch.accounts.size(), after.watch.accounts.size()}},
            {"groups", {before.watch.groups.size(), after.watch.groups.size()}},
            {"ca_policies", {before.watch.ca_policies.size(), after.watch.ca_policies.size()}},
            {"sinks", {before.sinks.size(), after.sinks.size()}}};
        io::store* db = &db_;
        boost::asio::post(
            threads_.store_ctx(),
            [db, text = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)] {
                if (!db->record(core::evidence::kinds::reload, "configuration", text,
                                io::wall_now()))
                    spdlog::error("evidence: cannot record the reload: {}", db->last_error());
            });
    }

    void reload_succeeded() {
        ++mem_.reloads_ok;
        if (mem_.reload_failing_since != 0) {
            current_->monitor().report({"config_reload_failed_recovered", core::severity::warning,
                                        path_, std::to_string(mem_.reload_failing_since),
                                        "Recovered: the configuration reloads again", true});
            mem_.reload_failing_since = 0;
        }
        sd_notify(0, "READY=1\nSTATUS=watching");
    }

    void start_watchdog() {
        // The systemd watchdog is pinged from this loop at half its interval: a wedged loop
        // stops the pings and systemd restarts the service.
        std::uint64_t usec = 0;
        if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
        watchdog_usec_ = usec;
        ping_watchdog();
    }

    void ping_watchdog() {
        sd_notify(0, "WATCHDOG=1");
        // Test hook: a file that wedges the loop, to prove the pings stop.
        if (const char* wedge = std::getenv("GLASSWATCH_TEST_WEDGE_FILE");
            wedge && ::access(wedge, F_OK) == 0) {
            spdlog::warn("test hook: wedging the main loop");
            for (;;)
                std::this_thread::sleep_for(std::chrono::seconds(1));
        }
        watchdog_.expires_after(std::chrono::microseconds(watchdog_usec_ / 2));
        watchdog_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec) ping_watchdog();
        });
    }

    std::string path_;
    io::thread_pair& threads_;
    io::runtime& rt_;
    io::store& db_;
    io::monitor_memory& mem_;
    asio::signal_set signals_;
    asio::steady_timer grace_;
    asio::steady_timer watchdog_;
    std::uint64_t watchdog_usec_ = 0;
    std::unique_ptr<io::admin_server> admin_;
    bool admin_running_ = false;
    std::unique_ptr<generation> current_;
    std::unique_ptr<generation> next_;  // built by a reload, started when current_ has drained
    io::monitor* current_mon_ = nullptr;
    bool stopping_ = false;
    bool died_by_bug_ = false;
    bool reload_again_ = false;
};

}  // namespace

int run_daemon(const std::string& config_path, core::config cfg) {
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
    if (auto ev = db->evidence(); ev && ev->verification_key_on_host)
        spdlog::warn(
            "evidence: the verification key (key id {}) is still in {}: copy it off this "
            "machine for your auditors and delete it here; whoever reads it can re-seal evidence",
            ev->key_id, io::verification_key_path(cfg.state_directory));
    spdlog::info("glasswatch {} starting: tenant {}, {} account(s) watched, {} sink(s), state {}",
                 GLASSWATCH_VERSION, cfg.tenant_name.empty() ? cfg.tenant_id : cfg.tenant_name,
                 cfg.watch.accounts.size(), cfg.sinks.size(), db->path());

    // The contexts are owned by `threads`, declared before everything whose address a coroutine
    // frame may hold, and torn down explicitly (threads.finish()) before those are destroyed.
    io::thread_pair threads;
    io::runtime rt(threads.main(), threads.store_ctx(), *db);
    io::monitor_memory mem(cfg.tripwire);
    auto first = generation::build(rt, std::move(cfg), mem, err);
    if (!first) {
        spdlog::critical("{}", err);
        return exit_config;
    }
    int rc = exit_ok;
    bool clean = false;
    {
        daemon_host host(config_path, threads, rt, *db, mem);
        rc = host.run(std::move(first));
        clean = host.stopping();
        // A generation left (an error before the loop ran) is destroyed with the host, before
        // the contexts: its coroutines never started.
    }
    threads.finish();
    // The store thread is gone: this thread owns the store now. The chain ends with a seal, so
    // nothing recorded before the stop can be rewritten by whoever holds the machine next.
    if (!db->seal_if_due(io::wall_now(), 0))
        spdlog::error("evidence: cannot seal at stop: {}", db->last_error());
    spdlog::info("stopped{}", clean ? " cleanly" : "");
    return rc;
}

}  // namespace glasswatch::app
