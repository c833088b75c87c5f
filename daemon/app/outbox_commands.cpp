// `outbox list` and `outbox retry`: what waits for which sink, and the operator's re-queue of
// rows a sink refused (after the sink was fixed). Both go through the store, so they work next
// to a running daemon (SQLite locking); a re-queue is logged and chained as evidence, and the
// running daemon picks it up within a second.
#include <unistd.h>

#include <pwd.h>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>

#include "app/cli_args.hpp"
#include "app/commands.hpp"
#include "app/config_file.hpp"
#include "core/base/json_text.hpp"
#include "core/base/time.hpp"
#include "io/store/store.hpp"

namespace glasswatch::app {

namespace {

constexpr const char* default_config = "/etc/glasswatch/glasswatch.toml";
constexpr const char* outbox_usage =
    "outbox: use 'outbox list [--sink S] [--state pending|accepted|confirmed|failed] [--limit N] "
    "[--json]' or 'outbox retry --sink S | --alert ID' [--config FILE]\n";

core::micros now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string when(core::micros t) {
    return t == 0 ? std::string("-") : core::format_iso8601(t, false);
}

// Who re-queued: the login behind sudo when there is one, else the process's user.
std::string operator_name() {
    if (const char* s = std::getenv("SUDO_USER"); s && *s) return core::sanitize_line(s, 64);
    if (const passwd* pw = ::getpwuid(::geteuid())) return core::sanitize_line(pw->pw_name, 64);
    return "uid " + std::to_string(::geteuid());
}

std::optional<io::delivery_state> parse_state(const std::string& s) {
    if (s == "pending") return io::delivery_state::pending;
    if (s == "accepted") return io::delivery_state::accepted;
    if (s == "confirmed") return io::delivery_state::confirmed;
    if (s == "failed") return io::delivery_state::failed;
    return std::nullopt;
}

int list(io::store& db, const std::string& sink, std::optional<io::delivery_state> state, int limit,
         bool as_json) {
    auto rows = db.list_outbox(sink, state, limit);
    for (const auto& e : db.open_episodes(sink)) {
        if (as_json) {
            std::printf("%s\n", nlohmann::json{{"episode", e.cause},
                                               {"sink", e.sink},
                                               {"since", when(e.opened_at)},
                                               {"holding", e.holding()},
                                               {"detail", e.detail}}
                                    .dump()
                                    .c_str());
        } else {
            std::printf("sink %s BROKEN since %s (%s)%s: %s\n", e.sink.c_str(),
                        when(e.opened_at).c_str(), e.cause.c_str(),
                        e.holding() ? ", nothing is sent to it" : "", e.detail.c_str());
        }
    }
    if (!as_json && rows.empty()) std::printf("no rows\n");
    for (const auto& r : rows) {
        if (as_json) {
            std::printf("%s\n", nlohmann::json{{"alertId", r.alert_id},
                                               {"sink", r.sink},
                                               {"state", std::string(io::to_string(r.state))},
                                               {"rules", r.a.rules},
                                               {"severity", std::string(to_string(r.a.sev))},
                                               {"attempts", r.attempts},
                                               {"createdAt", when(r.created_at)},
                                               {"nextAttemptAt", when(r.next_attempt_at)},
                                               {"acceptedAt", when(r.accepted_at)},
                                               {"confirmedAt", when(r.confirmed_at)},
                                               {"lastError", r.last_error}}
                                    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                                    .c_str());
            continue;
        }
        std::printf("%s  %-12s %-9s %-8s attempts %d  created %s%s%s\n", r.alert_id.c_str(),
                    r.sink.c_str(), std::string(io::to_string(r.state)).c_str(),
                    std::string(to_string(r.a.sev)).c_str(), r.attempts, when(r.created_at).c_str(),
                    r.last_error.empty() ? "" : "\n    last error: ", r.last_error.c_str());
    }
    return exit_ok;
}

}  // namespace

int cmd_outbox(const std::vector<std::string>& args) {
    if (args.empty() || (args[0] != "list" && args[0] != "retry")) {
        std::fputs(outbox_usage, stderr);
        return exit_usage;
    }
    std::string path, sink, alert;
    std::optional<io::delivery_state> state;
    int limit = 100;
    bool as_json = false;
    std::string state_name;
    const bool listing = args[0] == "list";
    cli_args cli("outbox", args, 1);
    while (cli.more()) {
        if (cli.value("--config", path) || cli.value("--sink", sink)) continue;
        if (!listing && cli.value("--alert", alert)) continue;
        if (listing &&
            (cli.choice("--state", {"pending", "accepted", "confirmed", "failed"}, state_name) ||
             cli.whole("--limit", 1, 100000, limit) || cli.flag("--json", as_json)))
            continue;
        cli.unexpected();
    }
    if (!cli.failed() && !listing && sink.empty() == alert.empty())
        cli.fail("outbox retry needs exactly one of --sink S or --alert ID");
    if (cli.failed()) return cli.usage_error();
    if (!state_name.empty()) state = parse_state(state_name);
    auto cfg = load_config_file(path.empty() ? default_config : path);
    if (!cfg) return exit_config;
    if (!sink.empty()) {
        bool known = false;
        for (const auto& s : cfg->sinks)
            known = known || s.name == sink;
        if (!known) {
            std::fprintf(stderr, "outbox: no sink named '%s' in the configuration\n", sink.c_str());
            return exit_usage;
        }
    }
    std::string err;
    auto db = io::store::open(cfg->state_directory, err, args[0] == "list");
    if (!db) {
        std::fprintf(stderr, "outbox: %s\n", err.c_str());
        return exit_store;
    }
    if (args[0] == "list") return list(*db, sink, state, limit, as_json);

    const std::string who = operator_name();
    auto r = db->requeue(sink, alert, now_us(), who);
    if (!r.ok) {
        std::fprintf(stderr, "outbox retry: %s\n", r.error.c_str());
        return exit_store;
    }
    std::printf(
        "re-queued %lld failed row(s)%s%s; recorded as evidence (by %s)\n",
        static_cast<long long>(r.rows), r.sinks.empty() ? "" : "; released sink ",
        [&] {
            std::string s;
            for (const auto& n : r.sinks)
                s += (s.empty() ? "" : ", ") + n;
            return s;
        }()
            .c_str(),
        who.c_str());
    if (r.rows == 0 && r.sinks.empty())
        std::printf("(nothing was waiting: no failed row and no broken sink matched)\n");
    return exit_ok;
}

}  // namespace glasswatch::app
