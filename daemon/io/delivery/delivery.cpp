#include "io/delivery/delivery.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <nlohmann/json.hpp>

#include "core/alerting/routing.hpp"
#include "core/alerting/sink_payloads.hpp"
#include "core/base/crypto.hpp"
#include "io/base/failpoint.hpp"
#include "io/delivery/file_sink.hpp"

namespace glasswatch::io {

namespace {

// Note: every rt_.on_store() call below takes a named lambda, never a temporary one: GCC 12
// destroys the captures of a temporary inside a co_await full-expression twice.

class file_sink final : public sink {
public:
    file_sink(runtime& rt, core::sink_config cfg) : rt_(rt), cfg_(std::move(cfg)) {}
    const core::sink_config& config() const noexcept override { return cfg_; }
    asio::awaitable<sink_outcome> deliver(const outbox_row& row) override {
        // Disk writes run on the store thread: the main loop never blocks on fsync.
        std::string path = cfg_.path;
        auto write_line = [path, row](store&) { return deliver_to_file(path, row); };
        auto r = co_await rt_.on_store(std::move(write_line));
        sink_outcome o;
        o.what =
            r.ok ? sink_outcome::kind::confirmed
                 : (r.permanent ? sink_outcome::kind::permanent : sink_outcome::kind::transient);
        o.error = r.error;
        co_return o;
    }

private:
    runtime& rt_;
    core::sink_config cfg_;
};

}  // namespace

asio::awaitable<sink_outcome> sink::deliver_group(const std::vector<outbox_row>& rows) {
    co_return co_await deliver(rows.front());
}

asio::awaitable<sink_outcome> sink::check(const outbox_row&) {
    sink_outcome o;
    o.what = sink_outcome::kind::confirmed;
    co_return o;
}

std::unique_ptr<sink> make_sink(runtime& rt, const core::sink_config& cfg,
                                bool allow_world_readable, std::string& error) {
    if (cfg.kind == core::sink_kind::file) return std::make_unique<file_sink>(rt, cfg);
    return make_http_sink(rt, cfg, allow_world_readable, error);
}

std::string sink_fingerprint(const core::sink_config& c) {
    std::string m = std::string(core::to_string(c.kind)) + "\n" + c.url + "\n" + c.api_base + "\n" +
                    c.account_sid + "\n" + c.api_key_sid + "\n" + c.from + "\n" +
                    c.messaging_service_sid + "\n" + c.ca_file + "\n" + c.path + "\n" +
                    c.routing_key.describe() + "\n" + c.auth_token.describe() + "\n" +
                    c.signing_secret.describe();
    for (const auto& t : c.to)
        m += "\n" + t;
    return core::sha256_hex(m).substr(0, 16);
}

delivery_engine::delivery_engine(runtime& rt, std::vector<std::unique_ptr<sink>> sinks,
                                 core::alert_context ctx, core::backoff_policy policy)
    : rt_(rt), sinks_(std::move(sinks)), ctx_(std::move(ctx)), policy_(policy) {
    for (auto& s : sinks_)
        s->gate().set_policy(policy_);
}

void delivery_engine::stop() {
    stopping_ = true;
    rt_.notify_outbox();
}

asio::awaitable<void> delivery_engine::run() {
    co_await load_episodes();
    // Workers are independent: one slow or broken sink never delays another.
    auto ex = co_await asio::this_coro::executor;
    int running = static_cast<int>(sinks_.size());
    asio::steady_timer done(ex, std::chrono::steady_clock::time_point::max());
    for (auto& s : sinks_) {
        asio::co_spawn(
            ex, worker(*s), [&running, &done, name = s->config().name](std::exception_ptr e) {
                if (e) {
                    try {
                        std::rethrow_exception(e);
                    } catch (const std::exception& x) {
                        spdlog::critical("sink {}: worker stopped by a bug: {}", name, x.what());
                    }
                }
                if (--running == 0) done.cancel();
            });
    }
    if (running > 0) {
        boost::system::error_code ec;
        co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

asio::awaitable<void> delivery_engine::load_episodes() {
    // Episodes survive restarts: a restart neither re-pages a known broken sink nor sends to a
    // gone one. A holding episode whose sink configuration has changed since is over: its
    // failed rows are re-queued for the new configuration.
    auto read = [](store& db) { return db.open_episodes(); };
    auto open = co_await rt_.on_store(std::move(read));
    for (auto& e : open) {
        auto it = std::find_if(sinks_.begin(), sinks_.end(),
                               [&](const auto& s) { return s->config().name == e.sink; });
        if (it == sinks_.end()) continue;  // a sink no longer configured: its rows wait as they are
        const std::string fp = sink_fingerprint((*it)->config());
        if (e.holding() && e.config_fp != fp) {
            const core::micros now = wall_now();
            auto requeue = [sink = e.sink, now](store& db) {
                return db.requeue(sink, {}, now, "configuration change");
            };
            auto r = co_await rt_.on_store(std::move(requeue));
            spdlog::warn(
                "sink {}: its configuration changed since it broke ({}); re-queued {} failed "
                "row(s) and sending again",
                e.sink, e.cause, r.rows);
            e.released_at = now;
            e.released_by = "configuration change";
        } else if (e.holding()) {
            spdlog::warn(
                "sink {}: still broken since {} ({}: {}); nothing is sent to it until its "
                "configuration changes or `glasswatch outbox retry --sink {}`",
                e.sink, core::format_iso8601(e.opened_at, false), e.cause, e.detail, e.sink);
        }
        episodes_[e.sink].push_back(e);
    }
}

asio::awaitable<void> delivery_engine::sleep_until(asio::steady_timer& t,
                                                   std::chrono::steady_clock::time_point when) {
    t.expires_at(when);
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<bool> delivery_engine::held_by_episode(sink& s) {
    const std::string name = s.config().name;
    if (!holding(name)) co_return false;
    auto read = [name](store& db) { return db.open_episodes(name); };
    auto open = co_await rt_.on_store(std::move(read));
    const bool holds =
        std::any_of(open.begin(), open.end(), [](const sink_episode& e) { return e.holding(); });
    if (!holds) {
        for (auto& cached : episodes_[name])
            for (const auto& e : open)
                if (e.cause == cached.cause && e.opened_at == cached.opened_at) cached = e;
        spdlog::warn("sink {}: released by an operator; sending again", name);
    }
    co_return holds;
}

asio::awaitable<void> delivery_engine::worker(sink& s) {
    const std::string name = s.config().name;
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer sleeper(ex);
    rt_.add_sleeper(&sleeper);
    struct unregister {
        runtime& rt;
        asio::steady_timer* t;
        ~unregister() { rt.remove_sleeper(t); }
    } guard{rt_, &sleeper};
    core::sms_burst_gate gate(s.burst_window());
    const bool grouping = s.burst_window().count() > 0;
    // A grouped SMS counts every alert held in its window, so it reads them all at once.
    const int batch = grouping ? 1000 : 16;
    core::wall_step_detector clock;
    using steady = std::chrono::steady_clock;

    while (!stopping_) {
        const core::micros now = wall_now();
        if (const core::micros step = clock.observe(now, steady_micros()); step != 0)
            co_await follow_clock_step(name, step, now);
        // A holding episode (gone, refused credentials, untrusted certificate): nothing goes to
        // the sink; its rows wait, and escalation from it still runs (it sends nothing here).
        if (co_await held_by_episode(s)) {
            if (!s.config().escalate_to.empty() && s.config().escalate_after.count() > 0)
                co_await escalate_from(s);
            co_await sleep_until(sleeper, steady::now() + std::chrono::seconds(1));
            continue;
        }
        // The service said wait (Retry-After) or is backing off: nothing of any kind is sent.
        if (const core::micros open_at = s.gate().open_at(), t = steady_micros(); open_at > t) {
            co_await sleep_until(sleeper, steady::now() + std::chrono::microseconds(open_at - t));
            continue;
        }
        auto fetch_due = [name, now, batch](store& db) { return db.due(name, now, batch); };
        auto rows = co_await rt_.on_store(std::move(fetch_due));
        auto wake = steady::now() + std::chrono::seconds(1);
        bool more = !grouping && rows.size() == static_cast<std::size_t>(batch);
        if (grouping) {
            auto plan = gate.next(steady::now(), rows.size());
            using kind = core::sms_burst_gate::plan::kind;
            if (plan.what == kind::single || plan.what == kind::group) {
                std::vector<outbox_row> send;
                if (plan.what == kind::single)
                    send.push_back(rows.front());
                else
                    send = s.group_of(rows);
                auto t0 = steady::now();
                failpoint("before_sink_send");
                sink_outcome o;
                if (send.size() == 1)
                    o = co_await s.deliver(send.front());
                else
                    o = co_await s.deliver_group(send);
                auto took =
                    std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0);
                co_await record_outcome(s, send, o, took);
                if (o.what == sink_outcome::kind::accepted ||
                    o.what == sink_outcome::kind::confirmed)
                    gate.accepted(steady::now());
                more = true;  // the rest of the burst: held (wait) or due again
            } else if (plan.what == kind::wait) {
                wake = std::min(wake, plan.wake);
            }
        } else {
            for (const auto& row : rows) {
                if (stopping_) break;
                auto t0 = steady::now();
                failpoint("before_sink_send");
                sink_outcome o = co_await s.deliver(row);
                auto took =
                    std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0);
                std::vector<outbox_row> one{row};
                co_await record_outcome(s, one, o, took);
                // The service said wait, or the sink broke: the rest of the batch waits too.
                if (!s.gate().is_open(steady_micros()) || holding(name)) {
                    more = true;
                    break;
                }
            }
        }
        if (stopping_) break;
        if (s.confirms_later() && s.gate().is_open(steady_micros())) co_await confirm_accepted(s);
        if (!s.config().escalate_to.empty() && s.config().escalate_after.count() > 0)
            co_await escalate_from(s);
        if (stopping_) break;
        if (more) continue;  // more may be due
        // Sleep until a commit wakes us, or poll again in a second for retries coming due.
        co_await sleep_until(sleeper, wake);
    }
}

asio::awaitable<void> delivery_engine::follow_clock_step(const std::string& name, core::micros step,
                                                         core::micros now) {
    // Retries are scheduled in wall time (they survive restarts). Set back, the clock would
    // hold them for the length of the step: they keep their remaining wait instead. Forward,
    // they only come due early, once; they are left alone, because a row committed since the
    // step (scheduled on the new clock) cannot be told from one waiting on the old clock.
    if (step > 0) {
        spdlog::warn(
            "sink {}: the wall clock jumped forward {}; waiting retries may run early once", name,
            core::format_duration(step / 1000));
        co_return;
    }
    auto shift = [name, step, now](store& db) { return db.shift_schedule(name, step, now); };
    const std::int64_t moved = co_await rt_.on_store(std::move(shift));
    spdlog::warn("sink {}: the wall clock jumped back {}; {} waiting retr{} rescheduled with it",
                 name, core::format_duration(-step / 1000), moved, moved == 1 ? "y" : "ies");
}

asio::awaitable<void> delivery_engine::record_outcome(sink& s, const std::vector<outbox_row>& rows,
                                                      const sink_outcome& o,
                                                      std::chrono::milliseconds took) {
    const std::string name = s.config().name;
    const core::micros at = wall_now();
    auto& st = stats_[name];
    const outbox_row& lead = rows.front();
    int attempts = 0;
    for (const auto& r : rows)
        attempts = std::max(attempts, r.attempts);
    switch (o.what) {
        case sink_outcome::kind::accepted:
        case sink_outcome::kind::confirmed: {
            failpoint("after_sink_ack");
            bool confirmed = o.what == sink_outcome::kind::confirmed;
            auto record_accept = [rows, at, o, confirmed](store& db) {
                for (const auto& row : rows)
                    db.mark_accepted(row.alert_id, row.sink, at, o.sink_ref, confirmed);
            };
            co_await rt_.on_store(std::move(record_accept));
            st.delivered += rows.size();
            st.last_ok = at;
            st.failing_since = 0;
            if (rows.size() > 1) {
                ++st.grouped_messages;
                st.grouped_alerts += rows.size();
                spdlog::info(
                    "sink {}: delivered {} alerts as one message (burst; latest {}, {} ms)", name,
                    rows.size(), rows.back().alert_id, took.count());
            } else {
                spdlog::info("sink {}: delivered {} ({}, {} ms, attempt {})", name, lead.alert_id,
                             lead.a.rule, took.count(), lead.attempts + 1);
            }
            co_await end_episodes(s);
            break;
        }
        case sink_outcome::kind::held:
            // Not sent: the row stays due and leaves when the service's gate opens.
            ++st.held;
            break;
        case sink_outcome::kind::transient: {
            auto delay = core::backoff_delay(policy_, attempts + 1, rt_.jitter(), o.retry_after);
            // Never before the service's own gate opens (it may wait longer than this row).
            const auto gate_wait = std::chrono::milliseconds(
                std::max<core::micros>(0, s.gate().open_at() - steady_micros()) / 1000);
            delay = std::max(delay, gate_wait);
            core::micros next =
                at + std::chrono::duration_cast<std::chrono::microseconds>(delay).count();
            auto record_retry = [rows, next, o](store& db) {
                for (const auto& row : rows)
                    db.mark_retry(row.alert_id, row.sink, next, o.error, o.sink_ref);
            };
            co_await rt_.on_store(std::move(record_retry));
            st.retries += rows.size();
            if (st.failing_since == 0) st.failing_since = at;
            st.last_error = o.error;
            // First failure at warn, then every 10th: a dead sink must not flood the journal.
            if (attempts % 10 == 0)
                spdlog::warn("sink {}: delivery of {}{} failed (attempt {}): {}; retrying in {}",
                             name, lead.alert_id,
                             rows.size() > 1 ? " and " + std::to_string(rows.size() - 1) + " more"
                                             : std::string(),
                             attempts + 1, o.error, core::format_duration(delay.count()));
            break;
        }
        case sink_outcome::kind::permanent: {
            auto record_failure = [rows, at, o](store& db) {
                for (const auto& row : rows)
                    db.mark_failed(row.alert_id, row.sink, at, o.error);
            };
            co_await rt_.on_store(std::move(record_failure));
            st.permanent_failures += rows.size();
            if (st.failing_since == 0) st.failing_since = at;
            st.last_error = o.error;
            spdlog::error(
                "sink {}: permanent failure delivering {}{}: {}; the row is kept (failed): "
                "`glasswatch outbox retry --alert {}` re-queues it",
                name, lead.alert_id,
                rows.size() > 1 ? " and " + std::to_string(rows.size() - 1) + " more"
                                : std::string(),
                o.error, lead.alert_id);
            co_await open_episode(s, lead, o);
            break;
        }
    }
}

asio::awaitable<void> delivery_engine::confirm_accepted(sink& s) {
    const std::string name = s.config().name;
    auto fetch_accepted = [name](store& db) { return db.awaiting_confirmation(name, 32); };
    auto rows = co_await rt_.on_store(std::move(fetch_accepted));
    const auto now_steady = std::chrono::steady_clock::now();
    const core::micros timeout_us =
        std::chrono::duration_cast<std::chrono::microseconds>(s.config().delivery_timeout).count();
    // The alerts of a grouped SMS share one message: ask about it once per pass.
    std::map<std::string, sink_outcome> answered;
    for (const auto& row : rows) {
        if (stopping_ || !s.gate().is_open(steady_micros())) co_return;
        auto& last = last_check_[row.alert_id + "|" + name];
        auto known = answered.find(row.sink_ref);
        if (known == answered.end() && now_steady - last < std::chrono::seconds(2))
            continue;  // poll each message every 2 s
        last = now_steady;
        sink_outcome o;
        if (known != answered.end())
            o = known->second;
        else {
            o = co_await s.check(row);
            answered[row.sink_ref] = o;
        }
        const core::micros at = wall_now();
        if (o.what == sink_outcome::kind::accepted && timeout_us > 0 &&
            at - row.accepted_at > timeout_us) {
            // Accepted, never delivered: a phone that is off, a carrier filter. Not silence:
            // the alert goes on through the escalation target now.
            o.what = sink_outcome::kind::permanent;
            o.cause = "sms_not_delivered";
            o.error = "not delivered within " +
                      core::format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                s.config().delivery_timeout)
                                                .count()) +
                      (o.error.empty() ? std::string() : " (" + o.error + ")");
        }
        if (o.what == sink_outcome::kind::confirmed) {
            auto record = [row, at](store& db) { db.mark_confirmed(row.alert_id, row.sink, at); };
            co_await rt_.on_store(std::move(record));
            ++stats_[name].confirmed;
            last_check_.erase(row.alert_id + "|" + name);
            spdlog::info("sink {}: {} confirmed ({} after acceptance)", name, row.alert_id,
                         core::format_duration((at - row.accepted_at) / 1000));
        } else if (o.what == sink_outcome::kind::permanent) {
            auto record = [row, at, o](store& db) {
                db.mark_failed(row.alert_id, row.sink, at, o.error);
            };
            co_await rt_.on_store(std::move(record));
            last_check_.erase(row.alert_id + "|" + name);
            spdlog::error("sink {}: {} was accepted but not delivered: {}", name, row.alert_id,
                          o.error);
            co_await escalate_now(s, row, o);
        }
    }
}

asio::awaitable<void> delivery_engine::escalate_now(sink& s, const outbox_row& row,
                                                    const sink_outcome& o) {
    const std::string from = s.config().name, to = s.config().escalate_to;
    if (to.empty()) {
        // Nobody to escalate to: the SOC must still learn that the texts do not arrive.
        co_await open_episode(s, row, o);
        co_return;
    }
    const core::micros now = wall_now();
    auto add = [id = row.alert_id, to, now](store& db) { return db.add_outbox(id, to, now); };
    co_await rt_.on_store(std::move(add));
    ++stats_[from].escalations;
    spdlog::warn("sink {}: {} {}; escalating to sink {} now", from, row.alert_id, o.error, to);
    rt_.notify_outbox();
}

asio::awaitable<void> delivery_engine::escalate_from(sink& s) {
    // If this sink has not confirmed an alert within escalate_after, the alert also goes out
    // through escalate_to (a row for that sink is added once; delivery is then the usual path).
    const std::string from = s.config().name, to = s.config().escalate_to;
    const core::micros cutoff =
        wall_now() -
        std::chrono::duration_cast<std::chrono::microseconds>(s.config().escalate_after).count();
    const core::micros now = wall_now();
    auto add = [from, to, cutoff, now](store& db) {
        auto ids = db.unconfirmed_without(from, to, cutoff);
        for (const auto& id : ids)
            db.add_outbox(id, to, now);
        return ids;
    };
    auto escalated = co_await rt_.on_store(std::move(add));
    for (const auto& id : escalated) {
        ++stats_[from].escalations;
        spdlog::warn("sink {}: {} not confirmed within {}; escalating to sink {}", from, id,
                     core::format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(
                                               s.config().escalate_after)
                                               .count()),
                     to);
    }
    if (!escalated.empty()) rt_.notify_outbox();
}

std::vector<std::string> delivery_engine::other_sinks(const std::string& name) const {
    std::vector<std::string> others;
    for (const auto& s : sinks_)
        if (s->config().name != name) others.push_back(s->config().name);
    return others;
}

asio::awaitable<void> delivery_engine::queue_health_alert(const core::alert& a,
                                                          std::vector<std::string> to) {
    const core::micros now = wall_now();
    std::vector<routed_finding> f{{core::finding{a, a.detail_json, "health"}, std::move(to)}};
    auto queue_alert = [f, now](store& db) { return db.commit(f, {}, now); };
    auto res = co_await rt_.on_store(std::move(queue_alert));
    if (!res.ok) spdlog::error("cannot queue {} alert: {}", a.rule, res.error);
    rt_.notify_outbox();
}

asio::awaitable<void> delivery_engine::open_episode(sink& s, const outbox_row& row,
                                                    const sink_outcome& o) {
    const std::string name = s.config().name;
    const std::string cause = o.cause.empty() ? "refused" : o.cause;
    auto& open = episodes_[name];
    auto known = std::find_if(open.begin(), open.end(), [&](const sink_episode& e) {
        return e.cause == cause && e.closed_at == 0;
    });
    if (known != open.end()) {
        // The same episode: no second page. Released and failing again: it holds again.
        if (o.holds && known->released_at != 0) {
            known->released_at = 0;
            known->released_by.clear();
            known->holds = true;
            auto rehold = [name, cause](store& db) { return db.rehold_episode(name, cause); };
            co_await rt_.on_store(std::move(rehold));
            spdlog::error("sink {}: still broken after the re-queue ({}); holding again", name,
                          o.error);
        }
        co_return;
    }
    // sink_broken alerts about sink_broken alerts would chain without end: such a row fails
    // alone (its episode is the one already paged).
    if (row.a.rule == "sink_broken") co_return;
    const core::micros now = wall_now();
    sink_episode e;
    e.sink = name;
    e.cause = cause;
    e.opened_at = now;
    e.holds = o.holds;
    e.detail = o.error;
    e.config_fp = sink_fingerprint(s.config());
    const std::string what =
        o.holds ? "nothing more is sent to it until its configuration changes or `glasswatch "
                  "outbox retry --sink " +
                      name + "`"
                : "alerts it refuses are kept: `glasswatch outbox retry --sink " + name +
                      "` re-queues them";
    core::alert a = core::make_health_alert(
        ctx_, "sink_broken", core::severity::critical, name, cause + "/" + std::to_string(now),
        "Alert sink '" + name + "' is broken (" + o.error + "); alert " + row.alert_id + " (" +
            row.a.rule + ") could not be sent through it; " + what,
        now,
        nlohmann::json{
            {"sink", name}, {"cause", cause}, {"holds", o.holds}, {"alert", row.alert_id}}
            .dump());
    e.alert_id = a.id;
    open.push_back(e);
    auto record = [e](store& db) { return db.open_episode(e); };
    co_await rt_.on_store(std::move(record));
    spdlog::error("sink {}: broken ({}): {}; {}", name, cause, o.error, what);
    auto others = other_sinks(name);
    if (others.empty()) {
        spdlog::critical("sink {} is broken and there is no other sink to report it through", name);
        co_return;
    }
    co_await queue_health_alert(a, std::move(others));
}

asio::awaitable<void> delivery_engine::end_episodes(sink& s) {
    const std::string name = s.config().name;
    auto it = episodes_.find(name);
    if (it == episodes_.end() || it->second.empty()) co_return;
    auto ended = std::exchange(it->second, {});
    const core::micros now = wall_now();
    auto close = [name, now](store& db) { return db.close_episodes(name, now, "delivered"); };
    co_await rt_.on_store(std::move(close));
    for (const auto& e : ended) {
        spdlog::info("sink {}: delivers again; episode {} since {} is over", name, e.cause,
                     core::format_iso8601(e.opened_at, false));
        core::alert a = core::make_health_alert(
            ctx_, "sink_broken_recovered", core::severity::info, name,
            e.cause + "/" + std::to_string(e.opened_at),
            "Alert sink '" + name + "' delivers again (it was broken since " +
                core::format_iso8601(e.opened_at, false) + ": " + e.detail + ")",
            now,
            nlohmann::json{{"sink", name}, {"cause", e.cause}, {"brokenAlert", e.alert_id}}.dump());
        auto to = other_sinks(name);
        to.push_back(name);
        co_await queue_health_alert(a, std::move(to));
    }
}

bool delivery_engine::holding(const std::string& sink) const {
    auto it = episodes_.find(sink);
    if (it == episodes_.end()) return false;
    return std::any_of(it->second.begin(), it->second.end(),
                       [](const sink_episode& e) { return e.holding(); });
}

std::vector<sink_episode> delivery_engine::broken() const {
    std::vector<sink_episode> out;
    for (const auto& [name, list] : episodes_)
        out.insert(out.end(), list.begin(), list.end());
    return out;
}

asio::awaitable<bool> delivery_engine::drain(std::chrono::milliseconds timeout) {
    auto ex = co_await asio::this_coro::executor;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    asio::steady_timer t(ex);
    for (;;) {
        auto count_pending = [](store& db) { return db.outbox_depth(); };
        auto depth = co_await rt_.on_store(std::move(count_pending));
        if (depth == 0) co_return true;
        if (std::chrono::steady_clock::now() >= deadline) co_return false;
        t.expires_after(std::chrono::milliseconds(50));
        boost::system::error_code ec;
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

std::vector<std::string> delivery_engine::sink_names() const {
    std::vector<std::string> out;
    for (const auto& s : sinks_)
        out.push_back(s->config().name);
    return out;
}

bool delivery_engine::any_sink_reachable() const {
    // A local file pages nobody: when there are out-of-band sinks, only they count.
    bool any_remote = false;
    for (const auto& s : sinks_)
        any_remote = any_remote || s->config().kind != core::sink_kind::file;
    for (const auto& s : sinks_) {
        if (any_remote && s->config().kind == core::sink_kind::file) continue;
        auto it = stats_.find(s->config().name);
        if (it == stats_.end() || it->second.failing_since == 0) return true;
    }
    return sinks_.empty();
}

asio::awaitable<bool> delivery_engine::send_direct(const core::alert& a,
                                                   std::vector<std::string> names) {
    bool any = false;
    outbox_row row;
    row.alert_id = a.id;
    row.a = a;
    row.created_at = wall_now();
    for (auto& s : sinks_) {
        if (std::find(names.begin(), names.end(), s->config().name) == names.end()) continue;
        if (holding(s->config().name)) continue;  // gone / refused credentials: not this way
        row.sink = s->config().name;
        sink_outcome o = co_await s->deliver(row);
        if (o.what == sink_outcome::kind::accepted || o.what == sink_outcome::kind::confirmed) {
            any = true;
            spdlog::info("sink {}: delivered {} directly (the store cannot queue it)",
                         s->config().name, a.id);
        } else {
            spdlog::warn("sink {}: direct delivery of {} failed: {}", s->config().name, a.id,
                         o.error);
        }
    }
    co_return any;
}

}  // namespace glasswatch::io
