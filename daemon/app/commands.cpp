#include "app/commands.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <unistd.h>
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_set>

#include "app/cli_args.hpp"
#include "app/config_file.hpp"
#include "app/daemon.hpp"
#include "core/alerting/pipeline.hpp"
#include "core/alerting/routing.hpp"
#include "core/base/json_text.hpp"
#include "core/detection/replay_splitter.hpp"
#include "core/protocol/graph_query.hpp"
#include "io/base/logging.hpp"
#include "io/base/secrets.hpp"
#include "io/delivery/delivery.hpp"
#include "io/sources/posture_checker.hpp"
#include "io/sources/token_provider.hpp"
#include "io/store/runtime.hpp"
#include "io/store/store.hpp"

namespace glasswatch::app {

namespace {

std::string_view kind_names(const core::graph_source_config& g) {
    return g.full_stream ? "full stream" : "server-side filter on watched ids";
}

}  // namespace

std::optional<unsigned> file_mode(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return static_cast<unsigned>(st.st_mode & 07777);
}

int cmd_check_config(const std::vector<std::string>& args) {
    std::string path;
    cli_args cli("check-config", args);
    while (cli.more()) {
        if (cli.value("--config", path) || cli.positional(path)) continue;
        cli.unexpected();
    }
    if (cli.failed()) return cli.usage_error();
    if (path.empty()) path = default_config_path;
    // What `run` would refuse, check-config refuses: the same loader, and every secret read by
    // the reader the daemon uses (existence, mode, readability, an unset environment variable).
    auto loaded = load_config(path, true);
    for (const auto& e : loaded.errors)
        std::fprintf(stderr, "%s\n", e.c_str());
    if (!loaded.value) {
        std::fprintf(stderr, "%s: %zu error(s)\n", path.c_str(), loaded.errors.size());
        return exit_config;
    }
    for (const auto& n : loaded.notes)
        std::printf("note: %s\n", n.c_str());
    const std::optional<core::config>& cfg = loaded.value;

    std::printf("%s: valid\n", path.c_str());
    std::printf("tenant:   %s%s%s\n", cfg->tenant_id.c_str(), cfg->tenant_name.empty() ? "" : " (",
                cfg->tenant_name.empty() ? "" : (cfg->tenant_name + ")").c_str());
    std::printf("watching: %zu account(s), %zu group(s), %zu CA policy(ies)\n",
                cfg->watch.accounts.size(), cfg->watch.groups.size(),
                cfg->watch.ca_policies.size());
    for (const auto& a : cfg->watch.accounts)
        std::printf("  - %s  %s%s\n", a.object_id.c_str(), a.label.c_str(),
                    a.upn.empty() ? "" : (" <" + a.upn + ">").c_str());
    std::printf("sources:\n");
    if (cfg->graph.enabled) {
        std::string base = cfg->graph.graph_base_url.empty()
                               ? core::default_graph_base_url(cfg->cloud)
                               : cfg->graph.graph_base_url;
        std::printf("  - graph: %s, every %llds, lookback %llds, %s, credential: %s\n",
                    base.c_str(), static_cast<long long>(cfg->graph.poll_interval.count()),
                    static_cast<long long>(cfg->graph.lookback.count()),
                    std::string(kind_names(cfg->graph)).c_str(),
                    cfg->graph.client_secret.present()
                        ? ("client secret from " + cfg->graph.client_secret.describe()).c_str()
                        : ("certificate " + cfg->graph.certificate_file).c_str());
        const auto plan = core::plan_streams(cfg->graph, cfg->watch);
        std::string reads;
        for (auto k : plan.read)
            reads += (reads.empty() ? "" : ", ") + std::string(core::stream_name(k));
        std::printf("    reads: %s\n", reads.empty() ? "(nothing)" : reads.c_str());
        for (const auto& [k, why] : plan.skipped)
            std::printf("    not read: %s (%s)\n", std::string(core::stream_name(k)).c_str(),
                        why.c_str());
        if (cfg->graph.full_stream)
            std::printf(
                "    full_stream: every record of every stream is read on every poll, "
                "over the whole lookback: the cost grows with the tenant; the Event Hub "
                "is the path for whole-stream reading at scale\n");
    }
    if (cfg->eventhub.enabled)
        std::printf("  - eventhub: consumer group %s, connection string from %s\n",
                    cfg->eventhub.consumer_group.c_str(),
                    cfg->eventhub.connection_string.describe().c_str());
    if (!cfg->graph.enabled && !cfg->eventhub.enabled) std::printf("  (none)\n");
    std::printf("sinks:\n");
    for (const auto& s : cfg->sinks) {
        // URLs only as scheme and host: a hook path or a ping id is a credential.
        std::string where = s.kind == core::sink_kind::file     ? s.path
                            : s.kind == core::sink_kind::twilio ? core::redact_url(s.api_base)
                                                                : core::redact_url(s.url);
        if (s.url_secret.present())
            where = (where.empty() ? std::string("URL") : where) + " (URL from " +
                    s.url_secret.describe() + ")";
        std::string escalation;
        if (!s.escalate_to.empty())
            escalation = ", escalates to " + s.escalate_to + " after " +
                         core::format_duration(s.escalate_after.count() * 1000);
        std::printf("  - %s (%s) -> %s, min severity %s%s%s\n", s.name.c_str(),
                    std::string(core::to_string(s.kind)).c_str(), where.c_str(),
                    std::string(core::to_string(s.min_severity)).c_str(),
                    s.rules.empty() ? ", all rules" : "", escalation.c_str());
    }
    if (cfg->heartbeat.url.empty() && !cfg->heartbeat.url_secret.present()) {
        std::printf("heartbeat: none (no dead-man switch)\n");
    } else {
        std::string where = core::redact_url(cfg->heartbeat.url);
        if (cfg->heartbeat.url_secret.present())
            where = (where.empty() ? std::string("URL") : where) + " (URL from " +
                    cfg->heartbeat.url_secret.describe() + ")";
        const std::string grace =
            cfg->heartbeat.start_grace.count() > 0
                ? core::format_duration(cfg->heartbeat.start_grace.count() * 1000)
                : std::string("two poll intervals");
        std::printf("heartbeat: %s every %s, /fail while unhealthy, start grace %s%s\n",
                    where.c_str(),
                    core::format_duration(cfg->heartbeat.interval.count() * 1000).c_str(),
                    grace.c_str(), cfg->heartbeat.start_ping ? ", /start at start" : "");
    }
    const auto& tw = cfg->tripwire;
    auto dur_or_off = [](core::seconds s) {
        return s.count() > 0 ? core::format_duration(s.count() * 1000) : std::string("off");
    };
    std::printf(
        "tripwire: source error after %s, silence after %s, lag over %s, active use %d "
        "sign-ins in %s, drill max age %s\n",
        dur_or_off(tw.source_error_threshold).c_str(), dur_or_off(tw.silence_threshold).c_str(),
        dur_or_off(tw.lag_threshold).c_str(), tw.active_use_count,
        dur_or_off(tw.active_use_window).c_str(), dur_or_off(tw.drill_max_age).c_str());
    if (cfg->posture.enabled)
        std::printf(
            "posture:  every %s: %zu account(s), %zu group(s) expecting %zu member(s), "
            "Conditional Access\n",
            core::format_duration(cfg->posture.interval.count() * 1000).c_str(),
            cfg->watch.accounts.size(), cfg->watch.groups.size(),
            cfg->posture.group_members.size());
    else
        std::printf("posture:  disabled\n");
    std::printf("state:    %s\n", cfg->state_directory.c_str());
    std::printf("admin:    %s\n",
                cfg->admin_listen.empty() ? "disabled" : cfg->admin_listen.c_str());
    auto warnings = core::check_config_warnings(*cfg, &file_mode);
    if (cfg->posture.enabled && cfg->watch.groups.empty())
        warnings.push_back({"watch.groups",
                            "no break-glass group watched: the posture checks cannot verify its "
                            "membership, and a Conditional Access exclusion through a group does "
                            "not count as excluding the accounts"});
    if (cfg->graph.enabled && cfg->graph.max_requests_per_10s > 0) {
        // Every stream costs at least one request per poll; the reports API limit stretches the
        // cycle when there are more streams than the interval allows.
        const double min_cycle_s =
            10.0 * static_cast<double>(core::plan_streams(cfg->graph, cfg->watch).read.size()) /
            cfg->graph.max_requests_per_10s;
        if (min_cycle_s > static_cast<double>(cfg->graph.poll_interval.count()))
            warnings.push_back(
                {"sources.graph.poll_interval",
                 "with " + std::to_string(core::plan_streams(cfg->graph, cfg->watch).read.size()) +
                     " streams and " + std::to_string(cfg->graph.max_requests_per_10s) +
                     " requests per 10 s, a poll cycle takes at least " +
                     std::to_string(static_cast<int>(min_cycle_s + 0.5)) + "s"});
    }
    for (const auto& w : warnings)
        std::printf("warning: %s: %s\n", w.key.c_str(), w.message.c_str());
    std::printf("%zu warning(s)\n", warnings.size());
    return exit_ok;
}

int cmd_replay(const std::vector<std::string>& args) {
    std::string config_path, input;
    bool send = false;
    core::body_origin origin;
    std::string format = "auto";
    cli_args cli("replay", args);
    while (cli.more()) {
        if (cli.value("--config", config_path) || cli.flag("--send", send) ||
            cli.choice("--format", {"auto", "graph-signins", "graph-audits", "diagnostic"},
                       format) ||
            cli.positional(input))
            continue;
        cli.unexpected();
    }
    if (!cli.failed() && input.empty()) cli.fail("give an input FILE, or - for stdin");
    if (cli.failed()) return cli.usage_error();
    if (format == "graph-signins")
        origin.hint = core::record_hint::graph_signin;
    else if (format == "graph-audits")
        origin.hint = core::record_hint::graph_audit;
    else if (format == "diagnostic")
        origin.hint = core::record_hint::diagnostic;
    if (config_path.empty()) config_path = default_config_path;
    auto cfg = load_config_file(config_path);
    if (!cfg) return exit_config;
    if (!io::init_logging(cfg->log_level == "info" ? "warn" : cfg->log_level))
        io::init_logging("warn");

    // The input is streamed: read in 4 MiB chunks, cut into documents (core/replay_splitter),
    // each processed and printed as it comes. Memory stays bounded by the largest document the
    // splitter holds (16 MiB), whatever the size of the input.
    int fd = 0;
    if (input != "-") {
        fd = ::open(input.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            std::fprintf(stderr, "replay: cannot read %s: %s\n", input.c_str(),
                         std::strerror(errno));
            return exit_failure;
        }
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    }
    struct closer {
        int fd;
        ~closer() {
            if (fd > 0) ::close(fd);
        }
    } close_input{fd};

    // --send: the same path the daemon takes — durable commits, then the sinks.
    std::string err;
    std::unique_ptr<io::store> db;
    if (send) {
        db = io::store::open(cfg->state_directory, err);
        if (!db) {
            std::fprintf(stderr, "replay: state store: %s\n", err.c_str());
            return exit_store;
        }
    }
    core::pipeline pl(*cfg);
    std::map<std::string, std::size_t> problem_counts;
    const core::micros now = io::wall_now();
    // Alert ids recently printed: the same touch twice in the input (overlapping exported pages)
    // prints once. A window, not a set of all: memory must not grow with the input. (--send
    // needs no window: the store knows every alert id.)
    constexpr std::size_t seen_window = 65536;
    std::unordered_set<std::string> printed;
    std::deque<std::string> printed_order;
    std::size_t alerts_printed = 0;
    std::vector<io::routed_finding> to_commit;
    std::size_t new_alerts = 0, known_alerts = 0;
    bool store_failed = false;
    auto commit = [&]() {
        if (to_commit.empty() || store_failed) return;
        auto res = db->commit(to_commit, {}, now);
        to_commit.clear();
        if (!res.ok) {
            std::fprintf(stderr, "replay: cannot store alerts: %s\n", res.error.c_str());
            store_failed = true;
            return;
        }
        new_alerts += res.new_alerts.size();
        known_alerts += res.duplicates;
    };
    auto on_document = [&](std::string_view doc) {
        auto out = pl.process(doc, origin, now);
        for (auto& p : out.problems) {
            // Logged once per kind of problem; the total is in the summary.
            if (problem_counts[p]++ == 0) spdlog::warn("replay: {}", p);
        }
        for (auto& f : out.findings) {
            if (!printed.insert(f.a.id).second) continue;
            printed_order.push_back(f.a.id);
            if (printed_order.size() > seen_window) {
                printed.erase(printed_order.front());
                printed_order.pop_front();
            }
            ++alerts_printed;
            std::fputs(f.a.detail_json.c_str(), stdout);
            std::fputc('\n', stdout);
            if (send) to_commit.push_back({f, core::route_alert(cfg->sinks, f.a)});
        }
        if (to_commit.size() >= 1000) commit();
    };
    core::replay_splitter splitter;
    std::vector<char> chunk(std::size_t{4} << 20);
    for (;;) {
        const ssize_t n = ::read(fd, chunk.data(), chunk.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            std::fprintf(stderr, "replay: reading %s: %s\n", input == "-" ? "stdin" : input.c_str(),
                         std::strerror(errno));
            return exit_failure;
        }
        if (n == 0) break;
        splitter.feed(std::string_view(chunk.data(), static_cast<std::size_t>(n)), on_document);
    }
    splitter.finish(on_document);
    std::fflush(stdout);
    const auto& st = pl.stats();
    std::size_t problems = 0;
    for (auto& [_, k] : problem_counts)
        problems += k;
    if (splitter.documents_cut() > 0)
        spdlog::warn("replay: {} document(s) over {} MiB read in batches of records{}",
                     splitter.documents_cut(), splitter.limit().max_document >> 20,
                     splitter.records_too_large() > 0
                         ? "; " + std::to_string(splitter.records_too_large()) +
                               " single record(s) over the limit skipped"
                         : std::string());
    std::fprintf(stderr,
                 "replay: %llu bodies, %llu bytes, %llu candidate record(s), %zu alert(s), %zu "
                 "malformed input(s)\n",
                 static_cast<unsigned long long>(st.bodies),
                 static_cast<unsigned long long>(st.bytes),
                 static_cast<unsigned long long>(st.candidate_records), alerts_printed, problems);
    if (!send) return exit_ok;
    commit();
    if (store_failed) return exit_store;
    std::fprintf(stderr, "replay: %zu new alert(s) queued, %zu already known\n", new_alerts,
                 known_alerts);

    namespace asio = boost::asio;
    // Declared first, destroyed last: see the note in app/daemon.cpp about coroutine frames.
    io::thread_pair threads;
    io::runtime rt(threads.main(), threads.store_ctx(), *db);
    std::vector<std::unique_ptr<io::sink>> sinks;
    for (const auto& sc : cfg->sinks) {
        auto s = io::make_sink(rt, sc, cfg->allow_world_readable_secrets, err);
        if (!s) {
            std::fprintf(stderr, "replay: sink %s: %s\n", sc.name.c_str(), err.c_str());
            return exit_config;
        }
        sinks.push_back(std::move(s));
    }
    io::delivery_engine engine(rt, std::move(sinks), pl.context());
    bool drained = false;
    asio::co_spawn(threads.main(), engine.run(), [](std::exception_ptr e) {
        if (e) spdlog::critical("replay: delivery stopped by a bug");
    });
    asio::co_spawn(
        threads.main(),
        [&]() -> asio::awaitable<void> {
            drained = co_await engine.drain(std::chrono::seconds(30));
            engine.stop();  // workers finish, the loop runs out of work
        },
        [](std::exception_ptr e) {
            if (e) spdlog::critical("replay: drain stopped by a bug");
        });
    threads.run_main();
    threads.finish();
    if (!drained) {
        std::fprintf(stderr,
                     "replay: some alerts are still queued (a sink is failing); the daemon will "
                     "retry them\n");
        return exit_failure;
    }
    return exit_ok;
}

int cmd_test_alert(const std::vector<std::string>& args) {
    std::string path, only;
    int wait_s = 60;
    cli_args cli("test-alert", args);
    while (cli.more()) {
        if (cli.value("--config", path) || cli.value("--sink", only) ||
            cli.whole("--wait", 1, 3600, wait_s))
            continue;
        cli.unexpected();
    }
    if (cli.failed()) return cli.usage_error();
    if (path.empty()) path = default_config_path;
    auto cfg = load_config_file(path);
    if (!cfg) return exit_config;
    io::init_logging(cfg->log_level == "info" ? "warn" : cfg->log_level);
    std::vector<std::string> targets;
    for (const auto& sc : cfg->sinks)
        if (only.empty() || sc.name == only) targets.push_back(sc.name);
    if (targets.empty()) {
        std::fprintf(stderr, "test-alert: no sink named '%s'\n", only.c_str());
        return exit_usage;
    }
    std::string err;
    auto db = io::store::open(cfg->state_directory, err);
    if (!db) {
        std::fprintf(stderr, "test-alert: state store: %s\n", err.c_str());
        return exit_store;
    }
    core::alert_context ctx{cfg->tenant_id,
                            cfg->tenant_name.empty() ? cfg->tenant_id : cfg->tenant_name};
    const core::micros now = io::wall_now();
    core::alert a = core::make_health_alert(
        ctx, "test_alert", core::severity::info, "glasswatch", std::to_string(now),
        "TEST ALERT from glasswatch (tenant " + ctx.tenant_name +
            "): the out-of-band path works. No action needed.",
        now);
    std::vector<io::routed_finding> rf{
        {core::finding{a, "{\"test\":true}", "test-alert"}, targets}};
    if (!db->commit(rf, {}, now).ok) {
        std::fprintf(stderr, "test-alert: cannot queue the test alert\n");
        return exit_store;
    }
    namespace asio = boost::asio;
    io::thread_pair threads;
    io::runtime rt(threads.main(), threads.store_ctx(), *db);
    std::vector<std::unique_ptr<io::sink>> sinks;
    for (const auto& sc : cfg->sinks) {
        if (std::find(targets.begin(), targets.end(), sc.name) == targets.end()) continue;
        auto s = io::make_sink(rt, sc, cfg->allow_world_readable_secrets, err);
        if (!s) {
            std::fprintf(stderr, "test-alert: sink %s: %s\n", sc.name.c_str(), err.c_str());
            return exit_config;
        }
        sinks.push_back(std::move(s));
    }
    io::delivery_engine engine(rt, std::move(sinks), ctx);
    asio::co_spawn(threads.main(), engine.run(), [](std::exception_ptr e) {
        if (e) spdlog::critical("test-alert: delivery stopped by a bug");
    });
    const std::string id = a.id;
    auto wait_all = [&]() -> asio::awaitable<void> {
        asio::steady_timer t(threads.main());
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
        while (std::chrono::steady_clock::now() < deadline) {
            auto rows_of = [id](io::store& s) { return s.deliveries_of(id); };
            auto rows = co_await rt.on_store(std::move(rows_of));
            bool settled = true;
            for (const auto& r : rows)
                if (r.state == io::delivery_state::pending ||
                    r.state == io::delivery_state::accepted)
                    settled = false;
            if (settled) break;
            t.expires_after(std::chrono::milliseconds(200));
            boost::system::error_code ec;
            co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        engine.stop();
    };
    asio::co_spawn(threads.main(), wait_all(), [](std::exception_ptr) {});
    threads.run_main();
    threads.finish();
    int failed = 0;
    std::printf("test alert %s\n", id.c_str());
    for (const auto& r : db->deliveries_of(id)) {
        const double accept_s = r.accepted_at ? static_cast<double>(r.accepted_at - now) / 1e6 : -1;
        const double confirm_s =
            r.confirmed_at ? static_cast<double>(r.confirmed_at - now) / 1e6 : -1;
        if (r.state == io::delivery_state::confirmed)
            std::printf("  %-16s confirmed  accepted after %.2fs, confirmed after %.2fs\n",
                        r.sink.c_str(), accept_s, confirm_s);
        else if (r.state == io::delivery_state::accepted)
            std::printf("  %-16s accepted   after %.2fs, not confirmed within %ds\n",
                        r.sink.c_str(), accept_s, wait_s);
        else {
            ++failed;
            std::printf("  %-16s %-10s %s (%d attempt(s))\n", r.sink.c_str(),
                        std::string(io::to_string(r.state)).c_str(),
                        r.last_error.empty() ? "no answer yet" : r.last_error.c_str(), r.attempts);
        }
    }
    return failed ? exit_failure : exit_ok;
}

int cmd_posture(const std::vector<std::string>& args) {
    std::string path;
    bool as_json = false;
    int timeout_s = 120;
    cli_args cli("posture", args);
    while (cli.more()) {
        if (cli.value("--config", path) || cli.flag("--json", as_json) ||
            cli.whole("--timeout", 1, 3600, timeout_s))
            continue;
        cli.unexpected();
    }
    if (cli.failed()) return cli.usage_error();
    if (path.empty()) path = default_config_path;
    auto cfg = load_config_file(path);
    if (!cfg) return exit_config;
    if (!cfg->graph.enabled) {
        std::fprintf(stderr,
                     "posture: the checks read Microsoft Graph; %s has no enabled "
                     "[sources.graph]\n",
                     path.c_str());
        return exit_config;
    }
    io::init_logging(cfg->log_level == "info" ? "warn" : cfg->log_level);
    namespace asio = boost::asio;
    io::thread_pair threads;
    io::https_client_options ho;
    ho.ca_file = cfg->graph.ca_file;
    ho.proxy = cfg->graph.proxy;
    ho.request_timeout = cfg->graph.request_timeout;
    io::https_client http(threads.main().get_executor(), ho);
    std::string err;
    auto tokens = io::token_provider::create(http, *cfg, err);
    if (!tokens) {
        std::fprintf(stderr, "posture: %s\n", err.c_str());
        return exit_config;
    }
    io::posture_checker checker(http, *tokens, *cfg);
    std::vector<core::posture::check_result> results;
    bool done = false, timed_out = false;
    asio::steady_timer* guard_timer = nullptr;
    // Every request has its own deadline; this bounds the whole run (retries included).
    auto guard = [&]() -> asio::awaitable<void> {
        asio::steady_timer g(threads.main());
        guard_timer = &g;
        g.expires_after(std::chrono::seconds(timeout_s));
        boost::system::error_code ec;
        co_await g.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        guard_timer = nullptr;
        if (!done) {
            timed_out = true;
            checker.stop();
        }
    };
    auto once = [&]() -> asio::awaitable<void> {
        asio::steady_timer t(threads.main());
        results = co_await checker.check_once(t);
        done = true;
        if (guard_timer) guard_timer->cancel();
    };
    asio::co_spawn(threads.main(), guard(), [](std::exception_ptr) {});
    asio::co_spawn(threads.main(), once(), [](std::exception_ptr e) {
        if (e) spdlog::critical("posture: stopped by a bug");
    });
    threads.run_main();
    threads.finish();
    if (!done || timed_out) {
        std::fprintf(stderr, "posture: not finished within %ds\n", timeout_s);
        return exit_failure;
    }
    const core::micros now = io::wall_now();
    if (as_json)
        std::printf("%s\n", core::posture::render_json(results, now).c_str());
    else
        std::fputs(core::posture::render_text(results).c_str(), stdout);
    return core::posture::all_pass(results) ? exit_ok : exit_failure;
}

int cmd_run(const std::vector<std::string>& args) {
    std::string path;
    cli_args cli("run", args);
    while (cli.more()) {
        if (cli.value("--config", path)) continue;
        cli.unexpected();
    }
    if (cli.failed()) return cli.usage_error();
    if (path.empty()) path = default_config_path;
    auto cfg = load_config_file(path);
    if (!cfg) return exit_config;
    if (!io::init_logging(cfg->log_level)) {
        std::fprintf(stderr, "%s: log.level: unknown level\n", path.c_str());
        return exit_config;
    }
    return run_daemon(path, std::move(*cfg));
}

}  // namespace glasswatch::app
