#include "io/ops/monitor.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/alerting/routing.hpp"
#include "core/base/metrics.hpp"
#include "io/ops/process_stats.hpp"

namespace glasswatch::io {

namespace {

constexpr core::micros second = 1000000;
// Delivery records are sealed in batches: none waits longer than this unsealed.
constexpr core::micros evidence_seal_after = 10 * second;

core::micros to_us(std::chrono::seconds s) {
    return static_cast<core::micros>(s.count()) * second;
}

}  // namespace

monitor::monitor(runtime& rt, const core::config& cfg, core::alert_context ctx, ingestor& ingest,
                 delivery_engine& delivery, const core::pipeline& pipeline, monitor_memory& memory)
    : rt_(rt),
      cfg_(cfg),
      ctx_(std::move(ctx)),
      ingest_(ingest),
      delivery_(delivery),
      pipeline_(pipeline),
      mem_(memory),
      started_at_(wall_now()) {
    mem_.tripwire.reconfigure(cfg.tripwire);
    if (mem_.process_started == 0) mem_.process_started = started_at_;
    if (!cfg_.heartbeat.url.empty()) {
        https_client_options ho;
        ho.ca_file = cfg_.heartbeat.ca_file;
        ho.request_timeout =
            std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.heartbeat.timeout);
        ho.connect_timeout = ho.request_timeout;
        heartbeat_http_ = std::make_unique<https_client>(rt_.main().get_executor(), ho);
    }
    ingest_.on_new_alert([this](const core::alert& a) {
        if (!core::has_rule(a, "breakglass_signin") || a.drill) return;
        // Queued, not awaited: the committing source must not wait on it.
        if (auto h = mem_.tripwire.note_breakglass_signin(a.event_time, a.subject_label))
            report(std::move(*h));
    });
}

monitor::~monitor() {
    ingest_.on_new_alert({});
}

void monitor::report(core::health_alert h) {
    reported_.push_back(std::move(h));
    if (timer_) timer_->cancel();
}

void monitor::stop() {
    stopping_ = true;
    if (timer_) timer_->cancel();
}

core::health_snapshot monitor::snapshot() const {
    core::health_snapshot h;
    h.now = wall_now();
    h.started_at = started_at_;
    for (const auto& p : sources_)
        h.sources.push_back(p.snapshot());
    h.store_failing_since = ingest_.store_failing_since();
    h.store_error = ingest_.store_error();
    return h;
}

asio::awaitable<void> monitor::run() {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    timer_ = &timer;
    struct reset {
        asio::steady_timer*& t;
        ~reset() { t = nullptr; }
    } guard{timer_};
    while (!stopping_) {
        co_await tick();
        if (stopping_) break;
        if (!reported_.empty()) continue;  // arrived while the tick was suspended
        timer.expires_after(std::chrono::seconds(1));
        boost::system::error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    // Reported while stopping (an active-use summary from the last commits): still raised.
    while (!reported_.empty()) {
        auto h = std::move(reported_.front());
        reported_.erase(reported_.begin());
        co_await raise(std::move(h));
    }
}

asio::awaitable<void> monitor::tick() {
    const auto now = steady::now();
    last_tick_ = now;
    auto alerts = mem_.tripwire.evaluate(snapshot());
    for (const auto& h : alerts)
        co_await raise(h);
    while (!reported_.empty()) {
        auto h = std::move(reported_.front());
        reported_.erase(reported_.begin());
        co_await raise(std::move(h));
    }

    // Direct sends of store alerts that no sink has accepted yet.
    if (!mem_.direct_pending.empty()) {
        // Taken out first: raise() may append while this loop is suspended.
        auto pending = std::exchange(mem_.direct_pending, {});
        for (const auto& a : pending) {
            auto names = core::route_alert(cfg_.sinks, a);
            if (!co_await delivery_.send_direct(a, names)) mem_.direct_pending.push_back(a);
        }
    }

    // Delivery records wait at most evidence_seal_after unsealed (alerts are sealed at once).
    auto read_outbox = [](store& db) {
        db.seal_if_due(wall_now(), evidence_seal_after);
        return std::make_tuple(db.outbox_depth(), db.oldest_undelivered().value_or(0),
                               db.evidence_anchor());
    };
    auto [depth, oldest, head] = co_await rt_.on_store(std::move(read_outbox));
    outbox_depth_ = depth;
    oldest_undelivered_ = oldest;
    evidence_head_ = head;

    if (now >= next_drill_check_) {
        // Once a minute (sooner only when the configured age is shorter, e.g. in tests).
        next_drill_check_ = now + std::chrono::microseconds(std::min<core::micros>(
                                      60 * second, to_us(cfg_.tripwire.drill_max_age) / 2));
        co_await check_drills();
    }
    if (cfg_.evidence.head_interval.count() > 0 && now >= next_head_ && !evidence_head_.empty() &&
        evidence_head_ != head_sent_) {
        // The head on its own, to the receivers that asked for it (routing: evidence_head only
        // reaches sinks that name it). Its own entry moves the head on: one per interval.
        next_head_ = now + cfg_.evidence.head_interval;
        head_sent_ = evidence_head_;
        core::health_alert h{"evidence_head",
                             core::severity::info,
                             "evidence",
                             evidence_head_,
                             "Evidence head " + evidence_head_ +
                                 ": keep it, it proves the chain up to here was not changed",
                             false};
        co_await raise(std::move(h));
    }
    if (heartbeat_http_ && now >= next_beat_) {
        // A beat held back by the start grace is tried again at the next tick, so the first
        // healthy ping follows the first good poll within a second.
        if (co_await heartbeat()) next_beat_ = now + cfg_.heartbeat.interval;
    }
}

asio::awaitable<void> monitor::raise(core::health_alert h) {
    core::alert a =
        core::make_health_alert(ctx_, h.rule, h.sev, h.subject, h.episode, h.summary, wall_now());
    if (h.recovery)
        spdlog::info("tripwire: {} ({})", h.summary, h.rule);
    else
        spdlog::warn("tripwire: {} ({})", h.summary, h.rule);
    if (h.rule == "store_unwritable") {
        // The outbox lives in the failing store: send it directly, retried every tick.
        auto names = core::route_alert(cfg_.sinks, a);
        if (!co_await delivery_.send_direct(a, names)) mem_.direct_pending.push_back(a);
        co_return;
    }
    std::vector<core::finding> f{core::finding{a, a.detail_json, "health"}};
    std::vector<checkpoint> none;
    commit_result r = co_await ingest_.commit(std::move(f), std::move(none));
    if (!r.ok) {
        // The store is failing right now: do not lose the alert, send it directly.
        auto names = core::route_alert(cfg_.sinks, a);
        if (!co_await delivery_.send_direct(a, names)) mem_.direct_pending.push_back(a);
    }
}

asio::awaitable<void> monitor::check_drills() {
    if (cfg_.tripwire.drill_max_age.count() <= 0) co_return;
    struct account_state {
        std::string id, label;
        std::optional<core::micros> last;
    };
    std::vector<account_state> accounts;
    for (const auto& w : cfg_.watch.accounts)
        accounts.push_back({w.object_id, w.label.empty() ? w.upn : w.label, std::nullopt});
    auto read = [accounts](store& db) mutable {
        for (auto& a : accounts)
            a.last = db.last_successful_drill(a.id);
        return std::make_pair(accounts, db.created_at());
    };
    auto [states, created] = co_await rt_.on_store(std::move(read));
    const core::micros now = wall_now();
    for (const auto& a : states) {
        if (!core::drill_overdue(now, created, a.last, cfg_.tripwire.drill_max_age)) continue;
        // One alert per overdue period: the episode is what the age counts from.
        const core::micros from = a.last.value_or(created);
        core::health_alert h{"drill_overdue",
                             core::severity::warning,
                             a.label.empty() ? a.id : a.label,
                             std::to_string(from),
                             "No successful break-glass drill for " +
                                 (a.label.empty() ? a.id : a.label) + " since " +
                                 core::format_iso8601(from, false) +
                                 " — run `glasswatch drill start` and sign in with it",
                             false};
        co_await raise(h);
    }
}

core::micros monitor::start_grace() const {
    if (cfg_.heartbeat.start_grace.count() > 0) return to_us(cfg_.heartbeat.start_grace);
    return cfg_.graph.enabled ? 2 * to_us(cfg_.graph.poll_interval) : 60 * second;
}

asio::awaitable<bool> monitor::ping(std::string url) {
    http_request req;
    req.url = std::move(url);
    if (!evidence_head_.empty()) {
        // The evidence head leaves the machine with every beat (Healthchecks.io keeps the body
        // of each ping): an auditor's anchor that truncation or rollback cannot take back.
        req.method = "POST";
        req.headers.push_back({"Content-Type", "text/plain"});
        req.body = "evidence_head=" + evidence_head_ + "\n";
    }
    http_result r = co_await heartbeat_http_->request(std::move(req));
    if (r.ok() && r.response.status / 100 == 2) co_return true;
    if (mem_.beat_errors++ % 10 == 0)
        spdlog::warn("heartbeat: the dead-man switch did not answer: {}",
                     r.ok() ? "HTTP " + std::to_string(r.response.status) : r.message);
    co_return false;
}

asio::awaitable<bool> monitor::heartbeat() {
    // Healthy = every source's last poll succeeded, the store is writable and at least one
    // sink acknowledges; otherwise the switch hears "/fail" (or nothing, if the VM is dead).
    std::string base = cfg_.heartbeat.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    if (cfg_.heartbeat.start_ping && !mem_.start_pinged) {
        mem_.start_pinged = true;
        // (A named local: GCC 12 destroys a temporary inside a co_await expression twice.)
        std::string start_url = base + "/start";
        co_await ping(std::move(start_url));
    }
    std::string why;
    bool first_poll_pending = false;
    for (const auto& p : sources_) {
        auto s = p.snapshot();
        if (s.last_success == 0) first_poll_pending = true;
        if (s.failing_since != 0 || s.last_success == 0) why = s.name + " not polling";
    }
    if (ingest_.store_failing_since() != 0) why = "store not writable";
    if (!delivery_.any_sink_reachable()) why = "no sink reachable";
    // Just started: until every source has polled once (or the grace is over) the switch hears
    // nothing at all — not "/fail", which pages someone for every restart, upgrade or reboot.
    if (first_poll_pending && wall_now() - started_at_ < start_grace()) co_return false;
    const bool healthy = why.empty();
    if (healthy != mem_.last_beat_healthy) {
        if (healthy)
            spdlog::info("heartbeat: healthy again, pinging the dead-man switch");
        else
            spdlog::warn("heartbeat: unhealthy ({}), pinging /fail", why);
        mem_.last_beat_healthy = healthy;
    }
    std::string url = healthy ? cfg_.heartbeat.url : base + "/fail";
    if (co_await ping(std::move(url))) (healthy ? mem_.beats_ok : mem_.beats_fail)++;
    co_return true;
}

bool monitor::is_paging_sink(const std::string& name) const {
    for (const auto& s : cfg_.sinks)
        if (s.name == name) return s.kind != core::sink_kind::file;
    return false;
}

bool monitor::live() const {
    return last_tick_ != steady::time_point{} &&
           steady::now() - last_tick_ < std::chrono::seconds(10);
}

readiness monitor::ready() const {
    readiness r;
    for (const auto& c : mem_.tripwire.firing())
        r.reasons.push_back("tripwire: " + c);
    if (ingest_.store_failing_since() != 0)
        r.reasons.push_back("store not writable: " + ingest_.store_error());
    for (const auto& p : sources_) {
        auto s = p.snapshot();
        if (s.last_success == 0) r.reasons.push_back(s.name + ": no successful poll yet");
    }
    if (oldest_undelivered_ != 0 &&
        wall_now() - oldest_undelivered_ > to_us(cfg_.tripwire.outbox_max_age))
        r.reasons.push_back("oldest undelivered alert is older than " +
                            core::format_duration(to_us(cfg_.tripwire.outbox_max_age) / 1000));
    // A paging sink that refuses (a 410, refused credentials, a certificate that fails, SMS that
    // never arrive) is not ready, however well the rest works: the page may not ring.
    for (const auto& e : delivery_.broken()) {
        if (!is_paging_sink(e.sink)) continue;
        r.reasons.push_back("sink " + e.sink + " broken since " +
                            core::format_iso8601(e.opened_at, false) + " (" + e.cause + ")" +
                            (e.holding() ? ", nothing is sent to it: fix it, then `glasswatch "
                                           "outbox retry --sink " +
                                               e.sink + "`"
                                         : ""));
    }
    if (!live()) r.reasons.push_back("main loop not ticking");
    r.ready = r.reasons.empty();
    return r;
}

std::string monitor::metrics_text() const {
    using core::metric_family;
    using core::metric_sample;
    std::vector<metric_family> f;
    auto add = [&f](std::string name, std::string help, std::string type,
                    std::vector<metric_sample> samples) {
        f.push_back({std::move(name), std::move(help), std::move(type), std::move(samples)});
    };
    auto one = [](double v) { return std::vector<metric_sample>{{{}, v}}; };
    const double now_s = static_cast<double>(wall_now()) / second;
    const auto& ps = pipeline_.stats();

    add("glasswatch_up", "1 while the main loop ticks", "gauge", one(live() ? 1 : 0));
    add("glasswatch_build_info", "The running build (always 1)", "gauge",
        {{{{"version", GLASSWATCH_VERSION}}, 1.0}});
    const process_stats proc = read_process_stats();
    auto opt = [&](const char* name, const char* help, const char* type, auto v) {
        if (v) add(name, help, type, one(static_cast<double>(*v)));
    };
    opt("process_start_time_seconds", "Start time of the process (unix time)", "gauge",
        proc.start_time_s);
    opt("process_resident_memory_bytes", "Resident memory size", "gauge", proc.resident_bytes);
    opt("process_virtual_memory_bytes", "Virtual memory size", "gauge", proc.virtual_bytes);
    opt("process_open_fds", "Open file descriptors", "gauge", proc.open_fds);
    opt("process_max_fds", "Maximum number of open file descriptors", "gauge", proc.max_fds);
    opt("process_cpu_seconds_total", "User and system CPU time", "counter", proc.cpu_seconds);
    add("glasswatch_start_time_seconds", "When the daemon started (unix time)", "gauge",
        one(static_cast<double>(mem_.process_started) / second));
    add("glasswatch_bodies_total", "Pages / message bodies read from all sources", "counter",
        one(static_cast<double>(ps.bodies)));
    add("glasswatch_bytes_total", "Bytes read from all sources", "counter",
        one(static_cast<double>(ps.bytes)));
    add("glasswatch_prefilter_hits_total", "Records the prefilter passed to the parser", "counter",
        one(static_cast<double>(ps.candidate_records)));
    add("glasswatch_records_malformed_total", "Records that could not be parsed", "counter",
        one(static_cast<double>(ps.records_malformed)));
    add("glasswatch_bodies_malformed_total",
        "Pages / message bodies that could not be read whole (truncated, too deep, too large)",
        "counter", one(static_cast<double>(ps.bodies_malformed)));
    add("glasswatch_matches_total", "Rule matches", "counter",
        one(static_cast<double>(ps.matches)));
    std::vector<metric_sample> skipped;
    for (const auto& [cat, n] : ps.skipped_by_category)
        skipped.push_back({{{"category", cat}}, static_cast<double>(n)});
    add("glasswatch_records_skipped_total", "Records of categories glasswatch does not handle",
        "counter", skipped);

    std::vector<metric_sample> recs, last_ok, failing, lag, expiry, rejected, polls, requests;
    for (const auto& p : sources_) {
        auto s = p.snapshot();
        recs.push_back({{{"source", s.name}}, static_cast<double>(s.records)});
        if (p.token_expiry) {  // the polling sources
            polls.push_back({{{"source", s.name}}, static_cast<double>(s.polls)});
            requests.push_back({{{"source", s.name}}, static_cast<double>(s.requests)});
        }
        for (const auto& [reason, n] : s.rejected)
            rejected.push_back({{{"source", s.name}, {"reason", reason}}, static_cast<double>(n)});
        last_ok.push_back({{{"source", s.name}}, static_cast<double>(s.last_success) / second});
        failing.push_back({{{"source", s.name}}, s.failing_since != 0 ? 1.0 : 0.0});
        // 0 means "not known" (Graph has no way to tell): absent, not a lag of 0 s.
        if (s.lag > 0) lag.push_back({{{"source", s.name}}, static_cast<double>(s.lag) / second});
        if (p.token_expiry)
            expiry.push_back(
                {{{"source", s.name}}, static_cast<double>(p.token_expiry()) / second});
    }
    add("glasswatch_source_records_total", "Records read per source", "counter", recs);
    add("glasswatch_source_polls_total", "Poll cycles completed per polling source", "counter",
        polls);
    add("glasswatch_source_requests_total",
        "Requests a polling source sent (what the service's rate limit counts)", "counter",
        requests);
    add("glasswatch_source_rejected_total",
        "Input a source refused (oversized, unreadable, off-host or looping nextLink), by reason",
        "counter", rejected);
    add("glasswatch_source_last_success_timestamp_seconds", "Last complete poll per source",
        "gauge", last_ok);
    add("glasswatch_source_failing", "1 while a source is failing", "gauge", failing);
    add("glasswatch_source_lag_seconds",
        "How far a source is behind (no sample while it is not known)", "gauge", lag);
    add("glasswatch_token_expiry_timestamp_seconds", "Expiry of the current access token", "gauge",
        expiry);

    std::vector<metric_sample> by_rule;
    for (const auto& [rule, n] : ingest_.alerts_by_rule())
        by_rule.push_back({{{"rule", rule}}, static_cast<double>(n)});
    add("glasswatch_alerts_total", "Alerts raised, by rule", "counter", by_rule);

    std::vector<metric_sample> del, conf, ret, perm, esc, up;
    for (const auto& name : delivery_.sink_names()) {
        const delivery_stats st = delivery_.stats_of(name);
        metric_sample::labels_t l{{"sink", name}};
        del.push_back({l, static_cast<double>(st.delivered)});
        conf.push_back({l, static_cast<double>(st.confirmed)});
        ret.push_back({l, static_cast<double>(st.retries)});
        perm.push_back({l, static_cast<double>(st.permanent_failures)});
        esc.push_back({l, static_cast<double>(st.escalations)});
        up.push_back({l, st.failing_since == 0 ? 1.0 : 0.0});
    }
    add("glasswatch_sink_deliveries_total", "Alerts a sink acknowledged", "counter", del);
    add("glasswatch_sink_confirmed_total", "Alerts a sink confirmed (SMS delivered)", "counter",
        conf);
    add("glasswatch_sink_retries_total", "Transient delivery failures (retried)", "counter", ret);
    add("glasswatch_sink_failures_total", "Permanent delivery failures", "counter", perm);
    add("glasswatch_sink_escalations_total", "Alerts escalated from this sink", "counter", esc);
    add("glasswatch_sink_up", "0 while a sink's last attempt failed", "gauge", up);
    std::vector<metric_sample> broken;
    for (const auto& name : delivery_.sink_names()) {
        double b = 0;
        for (const auto& e : delivery_.broken())
            b = e.sink == name ? 1.0 : b;
        broken.push_back({{{"sink", name}}, b});
    }
    add("glasswatch_sink_broken",
        "1 while a sink is in a broken episode (refused, gone, TLS verification, undelivered SMS) "
        "until it delivers again",
        "gauge", broken);
    add("glasswatch_ready", "1 while /readyz answers 200", "gauge", one(ready().ready ? 1 : 0));

    add("glasswatch_outbox_depth", "Deliveries not yet acknowledged", "gauge",
        one(static_cast<double>(outbox_depth_)));
    add("glasswatch_outbox_oldest_age_seconds", "Age of the oldest unacknowledged delivery",
        "gauge",
        one(oldest_undelivered_ == 0 ? 0.0
                                     : now_s - static_cast<double>(oldest_undelivered_) / second));
    add("glasswatch_store_commit_failures_total", "Store commits that failed", "counter",
        one(static_cast<double>(ingest_.commit_failures())));
    add("glasswatch_store_writable", "0 while store commits fail", "gauge",
        one(ingest_.store_failing_since() == 0 ? 1.0 : 0.0));
    add("glasswatch_heartbeats_total", "Dead-man switch pings answered", "counter",
        {{{{"result", "ok"}}, static_cast<double>(mem_.beats_ok)},
         {{{"result", "fail"}}, static_cast<double>(mem_.beats_fail)}});
    // Every condition, 0 or 1: an alert rule on `== 1` needs the series to exist before it fires.
    std::vector<std::string> source_names;
    for (const auto& p : sources_)
        source_names.push_back(p.name);
    std::vector<metric_sample> firing;
    for (const auto& c : core::tripwire::condition_keys(source_names))
        firing.push_back({{{"condition", c}}, mem_.tripwire.is_firing(c) ? 1.0 : 0.0});
    add("glasswatch_tripwire_firing", "1 while a tripwire condition fires, per condition", "gauge",
        firing);
    add("glasswatch_config_reloads_total", "Configuration reloads (SIGHUP), by result", "counter",
        {{{{"result", "success"}}, static_cast<double>(mem_.reloads_ok)},
         {{{"result", "failure"}}, static_cast<double>(mem_.reloads_failed)}});
    add("glasswatch_config_last_reload_successful",
        "0 while the last reload was refused (the daemon runs on the configuration before it)",
        "gauge", one(mem_.reload_failing_since == 0 ? 1.0 : 0.0));
    if (mem_.last_reload_at != 0)
        add("glasswatch_config_last_reload_timestamp_seconds", "When the last reload was tried",
            "gauge", one(static_cast<double>(mem_.last_reload_at) / second));
    return core::render_prometheus(f);
}

}  // namespace glasswatch::io
