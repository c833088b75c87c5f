#include "app/commands.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <unistd.h>
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "app/daemon.hpp"
#include "core/json_text.hpp"
#include "core/pipeline.hpp"
#include "core/routing.hpp"
#include "io/delivery.hpp"
#include "io/logging.hpp"
#include "io/posture_checker.hpp"
#include "io/runtime.hpp"
#include "io/secrets.hpp"
#include "io/store.hpp"
#include "io/token_provider.hpp"

namespace glasswatch::app {

namespace {

constexpr const char* default_config_path = "/etc/glasswatch/glasswatch.toml";

bool read_file(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return true;
}

std::string_view kind_names(const core::graph_source_config& g) {
    return g.full_stream ? "full stream" : "server-side filter on watched ids";
}

}  // namespace

std::optional<unsigned> file_mode(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return static_cast<unsigned>(st.st_mode & 07777);
}

std::optional<core::config> load_config_file(const std::string& path) {
    std::string text;
    if (!read_file(path, text)) {
        std::fprintf(stderr, "%s: cannot read configuration file\n", path.c_str());
        return std::nullopt;
    }
    auto r = core::parse_config(text, path);
    if (!r.errors.empty()) {
        for (const auto& e : r.errors)
            std::fprintf(stderr, "%s\n", core::format_error(e, path).c_str());
        std::fprintf(stderr, "%s: %zu error(s); nothing started\n", path.c_str(), r.errors.size());
        return std::nullopt;
    }
    return r.value;
}

namespace {

// Every secret the configuration names, with its key. A systemd credential path
// (/run/credentials/...) exists only while the unit runs: outside it, a missing one is a note,
// not an error (check-config on the build host, before `systemctl start`).
int check_secrets(const std::string& path, const core::config& cfg) {
    std::vector<std::pair<std::string, const core::secret_ref*>> refs;
    if (cfg.graph.enabled) {
        if (cfg.graph.client_secret.present())
            refs.push_back({"sources.graph.client_secret", &cfg.graph.client_secret});
        if (cfg.graph.private_key.present())
            refs.push_back({"sources.graph.private_key", &cfg.graph.private_key});
    }
    if (cfg.eventhub.enabled)
        refs.push_back({"sources.eventhub.connection_string", &cfg.eventhub.connection_string});
    for (std::size_t i = 0; i < cfg.sinks.size(); ++i) {
        const auto& sk = cfg.sinks[i];
        const std::string base = "sinks[" + std::to_string(i) + "].";
        if (sk.routing_key.present()) refs.push_back({base + "routing_key", &sk.routing_key});
        if (sk.auth_token.present()) refs.push_back({base + "auth_token", &sk.auth_token});
        if (sk.signing_secret.present())
            refs.push_back({base + "signing_secret", &sk.signing_secret});
    }
    const bool under_systemd = std::getenv("CREDENTIALS_DIRECTORY") != nullptr;
    int errors = 0;
    for (const auto& [key, ref] : refs) {
        if (!ref->file.empty() && ref->file.rfind("/run/credentials/", 0) == 0 && !under_systemd &&
            ::access(ref->file.c_str(), F_OK) != 0) {
            std::printf(
                "note: %s: %s is a systemd credential; it exists only while the unit "
                "runs (check it with `systemd-run -P --property=LoadCredential=...` or "
                "after `systemctl start`)\n",
                key.c_str(), ref->describe().c_str());
            continue;
        }
        auto r = io::read_secret(*ref, cfg.allow_world_readable_secrets);
        if (!r.value) {
            std::fprintf(stderr, "%s: %s: %s\n", path.c_str(), key.c_str(), r.error.c_str());
            ++errors;
        }
    }
    return errors == 0 ? exit_ok : exit_config;
}

}  // namespace

int cmd_check_config(const std::vector<std::string>& args) {
    std::string path;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--config" && i + 1 < args.size())
            path = args[++i];
        else if (!args[i].empty() && args[i][0] != '-' && path.empty())
            path = args[i];
        else {
            std::fprintf(stderr, "check-config: unexpected argument '%s'\n", args[i].c_str());
            return exit_usage;
        }
    }
    if (path.empty()) path = default_config_path;
    auto cfg = load_config_file(path);
    if (!cfg) return exit_config;
    // What `run` would refuse, check-config refuses: every secret is read here by the same
    // reader the daemon uses (existence, mode, readability, an unset environment variable).
    if (const int rc = check_secrets(path, *cfg); rc != exit_ok) return rc;

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
    }
    if (cfg->eventhub.enabled)
        std::printf("  - eventhub: consumer group %s, connection string from %s\n",
                    cfg->eventhub.consumer_group.c_str(),
                    cfg->eventhub.connection_string.describe().c_str());
    if (!cfg->graph.enabled && !cfg->eventhub.enabled) std::printf("  (none)\n");
    std::printf("sinks:\n");
    for (const auto& s : cfg->sinks) {
        std::string where = s.kind == core::sink_kind::file     ? s.path
                            : s.kind == core::sink_kind::twilio ? s.api_base
                                                                : s.url;
        std::printf("  - %s (%s) -> %s, min severity %s%s\n", s.name.c_str(),
                    std::string(core::to_string(s.kind)).c_str(), where.c_str(),
                    std::string(core::to_string(s.min_severity)).c_str(),
                    s.rules.empty() ? ", all rules" : "");
    }
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
            10.0 * static_cast<double>(cfg->graph.kinds.size()) / cfg->graph.max_requests_per_10s;
        if (min_cycle_s > static_cast<double>(cfg->graph.poll_interval.count()))
            warnings.push_back({"sources.graph.poll_interval",
                                "with " + std::to_string(cfg->graph.kinds.size()) +
                                    " streams and " +
                                    std::to_string(cfg->graph.max_requests_per_10s) +
                                    " requests per 10 s, a poll cycle takes at least " +
                                    std::to_string(static_cast<int>(min_cycle_s + 0.5)) + "s"});
    }
    for (const auto& w : warnings)
        std::printf("warning: %s: %s\n", w.key.c_str(), w.message.c_str());
    std::printf("%zu warning(s)\n", warnings.size());
    return exit_ok;
}

namespace {

// Replay input: one JSON document (a Graph page, a diagnostic body, one record) or NDJSON.
std::vector<std::string_view> split_input(const std::string& text) {
    std::vector<std::string_view> docs;
    std::string_view all(text);
    auto first_nl = all.find('\n');
    bool ndjson = false;
    if (first_nl != std::string_view::npos) {
        std::string_view first = all.substr(0, first_nl);
        ndjson = nlohmann::json::accept(first);
    }
    if (!ndjson) {
        docs.push_back(all);
        return docs;
    }
    std::size_t pos = 0;
    while (pos < all.size()) {
        auto nl = all.find('\n', pos);
        if (nl == std::string_view::npos) nl = all.size();
        std::string_view line = all.substr(pos, nl - pos);
        if (line.find_first_not_of(" \t\r") != std::string_view::npos) docs.push_back(line);
        pos = nl + 1;
    }
    return docs;
}

}  // namespace

int cmd_replay(const std::vector<std::string>& args) {
    std::string config_path, input;
    bool send = false;
    core::body_origin origin;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        if (a == "--config" && i + 1 < args.size())
            config_path = args[++i];
        else if (a == "--send")
            send = true;
        else if (a == "--format" && i + 1 < args.size()) {
            const auto& f = args[++i];
            if (f == "graph-signins")
                origin.hint = core::record_hint::graph_signin;
            else if (f == "graph-audits")
                origin.hint = core::record_hint::graph_audit;
            else if (f == "diagnostic")
                origin.hint = core::record_hint::diagnostic;
            else if (f != "auto") {
                std::fprintf(stderr, "replay: unknown --format '%s'\n", f.c_str());
                return exit_usage;
            }
        } else if (input.empty() && (a == "-" || (!a.empty() && a[0] != '-')))
            input = a;
        else {
            std::fprintf(stderr, "replay: unexpected argument '%s'\n", a.c_str());
            return exit_usage;
        }
    }
    if (input.empty()) {
        std::fprintf(stderr, "replay: give an input FILE or - for stdin\n");
        return exit_usage;
    }
    if (config_path.empty()) config_path = default_config_path;
    auto cfg = load_config_file(config_path);
    if (!cfg) return exit_config;
    if (!io::init_logging(cfg->log_level == "info" ? "warn" : cfg->log_level))
        io::init_logging("warn");

    std::string text;
    if (input == "-") {
        text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else if (!read_file(input, text)) {
        std::fprintf(stderr, "replay: cannot read %s\n", input.c_str());
        return exit_failure;
    }

    core::pipeline pl(*cfg);
    std::vector<core::finding> all;
    std::map<std::string, std::size_t> problem_counts;
    const core::micros now = io::wall_now();
    for (auto doc : split_input(text)) {
        auto out = pl.process(doc, origin, now);
        for (auto& p : out.problems) {
            // Logged once per kind of problem; the total is in the summary.
            if (problem_counts[p]++ == 0) spdlog::warn("replay: {}", p);
        }
        for (auto& f : out.findings)
            all.push_back(std::move(f));
    }
    std::set<std::string> printed;
    for (const auto& f : all) {
        if (!printed.insert(f.a.id).second) continue;  // same alert twice in the input
        std::fputs(f.a.detail_json.c_str(), stdout);
        std::fputc('\n', stdout);
    }
    std::fflush(stdout);
    const auto& st = pl.stats();
    std::size_t problems = 0;
    for (auto& [_, n] : problem_counts)
        problems += n;
    std::fprintf(stderr,
                 "replay: %llu bodies, %llu bytes, %llu candidate record(s), %zu alert(s), %zu "
                 "malformed input(s)\n",
                 static_cast<unsigned long long>(st.bodies),
                 static_cast<unsigned long long>(st.bytes),
                 static_cast<unsigned long long>(st.candidate_records), printed.size(), problems);
    if (!send) return exit_ok;

    // --send: the same path the daemon takes — one durable commit, then the sinks.
    std::string err;
    auto db = io::store::open(cfg->state_directory, err);
    if (!db) {
        std::fprintf(stderr, "replay: state store: %s\n", err.c_str());
        return exit_store;
    }
    std::vector<io::routed_finding> routed;
    for (auto& f : all)
        routed.push_back({f, core::route_alert(cfg->sinks, f.a)});
    auto res = db->commit(routed, {}, now);
    if (!res.ok) {
        std::fprintf(stderr, "replay: cannot store alerts: %s\n", res.error.c_str());
        return exit_store;
    }
    std::fprintf(stderr, "replay: %zu new alert(s) queued, %zu already known\n",
                 res.new_alerts.size(), res.duplicates);

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
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--config" && i + 1 < args.size())
            path = args[++i];
        else if (args[i] == "--sink" && i + 1 < args.size())
            only = args[++i];
        else if (args[i] == "--wait" && i + 1 < args.size())
            wait_s = std::atoi(args[++i].c_str());
        else {
            std::fprintf(stderr, "test-alert: unexpected argument '%s'\n", args[i].c_str());
            return exit_usage;
        }
    }
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

int cmd_evidence(const std::vector<std::string>& args) {
    if (args.empty() || (args[0] != "verify" && args[0] != "export")) {
        std::fprintf(stderr,
                     "evidence: use 'evidence verify' or 'evidence export --since ISO-8601 "
                     "[--account ID]'\n");
        return exit_usage;
    }
    const std::string what = args[0];
    std::string path, account;
    core::micros since = 0;
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--config" && i + 1 < args.size())
            path = args[++i];
        else if (args[i] == "--account" && i + 1 < args.size())
            account = core::to_lower_ascii(args[++i]);
        else if (args[i] == "--since" && i + 1 < args.size()) {
            auto t = core::parse_iso8601(args[++i]);
            if (!t) {
                std::fprintf(stderr, "evidence: --since: not an ISO-8601 time: %s\n",
                             args[i].c_str());
                return exit_usage;
            }
            since = *t;
        } else {
            std::fprintf(stderr, "evidence: unexpected argument '%s'\n", args[i].c_str());
            return exit_usage;
        }
    }
    if (path.empty()) path = default_config_path;
    auto cfg = load_config_file(path);
    if (!cfg) return exit_config;
    std::string err;
    auto db = io::store::open(cfg->state_directory, err, /*read_only=*/true);
    if (!db) {
        std::fprintf(stderr, "evidence: %s\n", err.c_str());
        return exit_store;
    }
    if (what == "verify") {
        auto rep = db->verify_chain();
        if (rep.ok) {
            std::printf("evidence chain intact: %lld row(s)\n", static_cast<long long>(rep.rows));
            return exit_ok;
        }
        std::printf("evidence chain BROKEN at row %lld: %s\n",
                    static_cast<long long>(rep.first_bad_seq), rep.problem.c_str());
        return exit_failure;
    }
    // export: one JSON line per evidence row: the raw record, its alert and delivery history.
    for (const auto& row : db->evidence_since(since)) {
        auto alert = db->get_alert(row.alert_id);
        if (!account.empty() && (!alert || alert->subject_id != account)) continue;
        nlohmann::json line;
        line["seq"] = row.seq;
        line["recordedAt"] = core::format_iso8601(row.recorded_at);
        line["source"] = row.source;
        line["hash"] = row.hash;
        line["prevHash"] = row.prev_hash;
        auto raw = nlohmann::json::parse(row.raw, nullptr, false);
        if (raw.is_discarded())
            line["rawText"] = row.raw;
        else
            line["raw"] = raw;
        if (alert) {
            auto detail = nlohmann::json::parse(alert->detail_json, nullptr, false);
            line["alert"] = detail.is_discarded() ? nlohmann::json(alert->summary) : detail;
        }
        nlohmann::json deliveries = nlohmann::json::array();
        for (const auto& d : db->deliveries_of(row.alert_id)) {
            nlohmann::json dj = {{"sink", d.sink},
                                 {"state", std::string(io::to_string(d.state))},
                                 {"attempts", d.attempts}};
            if (d.accepted_at) dj["acceptedAt"] = core::format_iso8601(d.accepted_at);
            if (d.confirmed_at) dj["confirmedAt"] = core::format_iso8601(d.confirmed_at);
            if (!d.last_error.empty()) dj["lastError"] = d.last_error;
            deliveries.push_back(std::move(dj));
        }
        line["deliveries"] = std::move(deliveries);
        std::puts(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    }
    return exit_ok;
}

int cmd_posture(const std::vector<std::string>& args) {
    std::string path;
    bool as_json = false;
    int timeout_s = 120;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--config" && i + 1 < args.size())
            path = args[++i];
        else if (args[i] == "--json")
            as_json = true;
        else if (args[i] == "--timeout" && i + 1 < args.size() &&
                 std::atoi(args[i + 1].c_str()) > 0)
            timeout_s = std::atoi(args[++i].c_str());
        else {
            std::fprintf(stderr, "posture: unexpected argument '%s'\n", args[i].c_str());
            return exit_usage;
        }
    }
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
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--config" && i + 1 < args.size())
            path = args[++i];
        else {
            std::fprintf(stderr, "run: unexpected argument '%s'\n", args[i].c_str());
            return exit_usage;
        }
    }
    if (path.empty()) path = default_config_path;
    auto cfg = load_config_file(path);
    if (!cfg) return exit_config;
    if (!io::init_logging(cfg->log_level)) {
        std::fprintf(stderr, "%s: log.level: unknown level\n", path.c_str());
        return exit_config;
    }
    return run_daemon(*cfg);
}

}  // namespace glasswatch::app
