// Operator commands: `drill start|report` (the auditor's evidence) and `status` (a human summary
// of the running daemon, read from its loopback admin endpoints).
#include <openssl/rand.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/cli_args.hpp"
#include "app/commands.hpp"
#include "app/config_file.hpp"
#include "core/base/json_text.hpp"
#include "core/base/time.hpp"
#include "io/net/https_client.hpp"
#include "io/store/store.hpp"

namespace glasswatch::app {

namespace {

constexpr const char* default_config = "/etc/glasswatch/glasswatch.toml";

core::micros now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string random_hex(std::size_t bytes) {
    std::vector<unsigned char> b(bytes);
    RAND_bytes(b.data(), static_cast<int>(b.size()));
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned char c : b) {
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return out;
}

std::string when(core::micros t) {
    return t == 0 ? std::string("-") : core::format_iso8601(t, false);
}

std::string after(core::micros from, core::micros t) {
    if (t == 0 || from == 0) return "";
    return " (+" + core::format_duration((t - from) / 1000) + ")";
}

int drill_start(const core::config& cfg, io::store& db, const std::string& account,
                core::micros duration, const std::string& note) {
    const core::watched_account* found = find_watched_account(cfg, account);
    if (!found) {
        std::fprintf(stderr,
                     "glasswatch drill: --account: '%s' is not a watched account; give an object "
                     "id, UPN or label of: %s\n",
                     core::sanitize_line(account, 120).c_str(),
                     describe_watched_accounts(cfg).c_str());
        return exit_usage;
    }
    io::drill d;
    d.id = "drill-" + random_hex(8);
    d.account_id = found->object_id;
    d.account_label = found->label.empty() ? found->upn : found->label;
    d.created_at = now_us();
    d.starts_at = d.created_at;
    d.ends_at = d.starts_at + duration;
    d.note = core::sanitize_line(note, 500);
    if (!db.add_drill(d)) {
        std::fprintf(stderr, "drill: cannot record the drill: %s\n", db.last_error().c_str());
        return exit_store;
    }
    std::printf("drill %s declared for %s (%s) until %s\n", d.id.c_str(), d.account_label.c_str(),
                d.account_id.c_str(), when(d.ends_at).c_str());
    std::printf("sign in with the account now; its alerts are still sent, labelled DRILL.\n");
    std::printf("afterwards: glasswatch drill report\n");
    return exit_ok;
}

int drill_report(io::store& db, core::micros since, bool as_json) {
    auto drills = db.drills_since(since);
    if (drills.empty() && !as_json) {
        std::printf("no drills since %s\n", when(since).c_str());
        return exit_ok;
    }
    for (const auto& d : drills) {
        nlohmann::json j = {{"drillId", d.id},
                            {"account", d.account_id},
                            {"label", d.account_label},
                            {"note", d.note},
                            {"start", when(d.starts_at)},
                            {"end", when(d.ends_at)},
                            {"alerts", nlohmann::json::array()}};
        if (!as_json)
            std::printf("drill %s  %s  %s .. %s  \"%s\"\n", d.id.c_str(), d.account_label.c_str(),
                        when(d.starts_at).c_str(), when(d.ends_at).c_str(), d.note.c_str());
        bool delivered = false;
        for (const auto& id : db.alerts_of_drill(d.id)) {
            auto rows = db.deliveries_of(id);
            if (rows.empty()) continue;
            const core::alert& a = rows.front().a;
            nlohmann::json aj = {{"alertId", id},
                                 {"rule", a.rule},
                                 {"eventTime", when(a.event_time)},
                                 {"observedAt", when(a.observed_at)},
                                 {"sinks", nlohmann::json::array()}};
            if (!as_json)
                std::printf(
                    "  %s %s\n    sign-in / activity at  %s\n    glasswatch saw it at   %s%s\n",
                    a.rule.c_str(), id.c_str(), when(a.event_time).c_str(),
                    when(a.observed_at).c_str(), after(a.event_time, a.observed_at).c_str());
            for (const auto& r : rows) {
                if (r.accepted_at != 0) delivered = true;
                aj["sinks"].push_back({{"sink", r.sink},
                                       {"state", std::string(io::to_string(r.state))},
                                       {"acceptedAt", when(r.accepted_at)},
                                       {"confirmedAt", when(r.confirmed_at)}});
                if (!as_json)
                    std::printf(
                        "    sink %-14s accepted %s%s, confirmed %s%s [%s]\n", r.sink.c_str(),
                        when(r.accepted_at).c_str(), after(a.event_time, r.accepted_at).c_str(),
                        when(r.confirmed_at).c_str(), after(a.event_time, r.confirmed_at).c_str(),
                        std::string(io::to_string(r.state)).c_str());
            }
            j["alerts"].push_back(aj);
        }
        j["result"] = delivered ? "alert delivered" : "no alert delivered";
        if (as_json)
            std::printf("%s\n", j.dump().c_str());
        else
            std::printf("  result: %s\n", delivered
                                              ? "alert delivered (drill passed)"
                                              : "NO ALERT DELIVERED — the tripwire did not fire");
    }
    return exit_ok;
}

}  // namespace

int cmd_drill(const std::vector<std::string>& args) {
    if (args.empty() || (args[0] != "start" && args[0] != "report")) {
        std::fprintf(stderr,
                     "drill: use 'drill start --account ID|UPN [--for 30m] [--note TEXT]' or "
                     "'drill report [--since ISO-8601] [--json]'\n");
        return exit_usage;
    }
    std::string path, account, note;
    core::micros duration = 30LL * 60 * 1000000, since = now_us() - 400LL * 86400 * 1000000;
    bool as_json = false;
    const bool start = args[0] == "start";
    cli_args cli("drill", args, 1);
    while (cli.more()) {
        if (cli.value("--config", path)) continue;
        if (start && (cli.value("--account", account) || cli.value("--note", note) ||
                      cli.duration("--for", 24LL * 3600 * 1000, duration)))
            continue;
        if (!start && (cli.flag("--json", as_json) || cli.time("--since", since))) continue;
        cli.unexpected();
    }
    if (!cli.failed() && start && account.empty())
        cli.fail("drill start needs --account (object id, UPN or label)");
    if (cli.failed()) return cli.usage_error();
    auto cfg = load_config_file(path.empty() ? default_config : path);
    if (!cfg) return exit_config;
    std::string err;
    auto db = io::store::open(cfg->state_directory, err, args[0] == "report");
    if (!db) {
        std::fprintf(stderr, "drill: %s\n", err.c_str());
        return exit_store;
    }
    if (args[0] == "start") return drill_start(*cfg, *db, account, duration, note);
    return drill_report(*db, since, as_json);
}

namespace {

// name{labels} value lines of the Prometheus text format.
std::multimap<std::string, std::pair<std::string, double>> parse_metrics(const std::string& text) {
    std::multimap<std::string, std::pair<std::string, double>> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto sp = line.rfind(' ');
        if (sp == std::string::npos) continue;
        std::string key = line.substr(0, sp), labels;
        if (auto b = key.find('{'); b != std::string::npos) {
            labels = key.substr(b + 1, key.size() - b - 2);
            key.resize(b);
        }
        out.emplace(key, std::make_pair(labels, std::atof(line.c_str() + sp + 1)));
    }
    return out;
}

}  // namespace

int cmd_status(const std::vector<std::string>& args) {
    std::string path;
    cli_args cli("status", args);
    while (cli.more()) {
        if (cli.value("--config", path)) continue;
        cli.unexpected();
    }
    if (cli.failed()) return cli.usage_error();
    auto cfg = load_config_file(path.empty() ? default_config : path);
    if (!cfg) return exit_config;
    if (cfg->admin_listen.empty()) {
        std::fprintf(stderr, "status: [admin] listen is disabled in the config\n");
        return exit_config;
    }
    boost::asio::io_context ctx;
    io::https_client_options ho;
    ho.use_proxy_env = false;
    ho.request_timeout = std::chrono::seconds(5);
    ho.connect_timeout = std::chrono::seconds(5);
    io::https_client http(ctx.get_executor(), ho);
    const std::string base = "http://" + cfg->admin_listen;
    auto get = [&](const std::string& p) {
        io::http_request req;
        req.url = base + p;
        auto fut =
            boost::asio::co_spawn(ctx, http.request(std::move(req)), boost::asio::use_future);
        ctx.restart();
        ctx.run();
        return fut.get();
    };
    auto ready = get("/readyz");
    if (!ready.ok()) {
        std::printf("glasswatch is NOT RUNNING (or not answering on %s): %s\n", base.c_str(),
                    ready.message.c_str());
        return exit_failure;
    }
    auto metrics = get("/metrics");
    const bool is_ready = ready.response.status == 200;
    std::printf("glasswatch at %s: %s\n", base.c_str(), is_ready ? "READY" : "NOT READY");
    if (!is_ready) std::printf("%s", ready.response.body.c_str());
    const auto m = parse_metrics(metrics.ok() ? metrics.response.body : "");
    auto each = [&m](const std::string& name, auto f) {
        auto [b, e] = m.equal_range(name);
        for (auto it = b; it != e; ++it)
            f(it->second.first, it->second.second);
    };
    const core::micros now = now_us();
    std::printf("sources:\n");
    each("glasswatch_source_last_success_timestamp_seconds", [&](const std::string& l, double v) {
        std::printf("  %-28s last good poll %s\n", l.c_str(),
                    v > 0 ? (core::format_duration(static_cast<std::int64_t>(
                                 (static_cast<double>(now) / 1e6 - v) * 1000)) +
                             " ago")
                                .c_str()
                          : "never");
    });
    std::printf("sinks:\n");
    each("glasswatch_sink_deliveries_total", [&](const std::string& l, double v) {
        double up = 1, retries = 0;
        each("glasswatch_sink_up", [&](const std::string& l2, double u) {
            if (l2 == l) up = u;
        });
        each("glasswatch_sink_retries_total", [&](const std::string& l2, double r) {
            if (l2 == l) retries = r;
        });
        std::printf("  %-28s %s, %.0f delivered, %.0f retries\n", l.c_str(),
                    up > 0 ? "up" : "FAILING", v, retries);
    });
    double depth = 0, oldest = 0;
    each("glasswatch_outbox_depth", [&](const std::string&, double v) { depth = v; });
    each("glasswatch_outbox_oldest_age_seconds", [&](const std::string&, double v) { oldest = v; });
    std::printf(
        "outbox: %.0f undelivered%s\n", depth,
        depth > 0 ? (", oldest " + core::format_duration(static_cast<std::int64_t>(oldest * 1000)))
                        .c_str()
                  : "");
    std::printf("alerts:\n");
    each("glasswatch_alerts_total",
         [&](const std::string& l, double v) { std::printf("  %-28s %.0f\n", l.c_str(), v); });
    // Every condition is listed, 0 or 1: only the firing ones are news.
    each("glasswatch_tripwire_firing", [&](const std::string& l, double v) {
        if (v > 0) std::printf("FIRING: %s\n", l.c_str());
    });
    return is_ready ? exit_ok : exit_failure;
}

}  // namespace glasswatch::app
