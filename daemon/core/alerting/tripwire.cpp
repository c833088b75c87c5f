#include "core/alerting/tripwire.hpp"

#include <algorithm>

#include "core/base/json_text.hpp"

namespace glasswatch::core {

namespace {

constexpr micros to_us(std::chrono::seconds s) {
    return static_cast<micros>(s.count()) * 1000000;
}

std::string for_how_long(micros us) {
    return format_duration(us / 1000);
}

}  // namespace

void tripwire::drive(const std::string& key, bool bad, micros since, const std::string& rule,
                     severity sev, const std::string& subject, const std::string& summary,
                     std::vector<health_alert>& out) {
    condition& c = conditions_[key];
    if (bad && !c.firing) {
        c.firing = true;
        c.since = since;
        c.rule = rule;
        c.sev = sev;
        c.summary = summary;
        out.push_back({rule, sev, subject, std::to_string(since), summary, false});
    } else if (!bad && c.firing) {
        c.firing = false;
        out.push_back({c.rule + "_recovered", c.sev, subject, std::to_string(c.since),
                       "Recovered: " + c.summary, true});
    }
}

std::vector<health_alert> tripwire::evaluate(const health_snapshot& h) {
    std::vector<health_alert> out;
    const bool store_failing = h.store_failing_since != 0;
    drive("store/unwritable", store_failing, h.store_failing_since, "store_unwritable",
          severity::critical, "store",
          "glasswatch cannot write its state (" + sanitize_line(h.store_error, 200) +
              "); sources are paused until it can — alerts may be missed",
          out);

    for (const auto& s : h.sources) {
        // Never polled and not failing: no verdict yet (just started, or rebuilt by a reload).
        // Conditions carried over from before the reload stay as they are until the source
        // says something: clearing them would page a recovery that did not happen.
        if (s.last_success == 0 && s.failing_since == 0 && !s.stuck) continue;
        // Source errors. While the store is failing the sources fail too (they cannot commit);
        // the store alert says it better, so they wait.
        const bool failing_long =
            s.failing_since != 0 && h.now - s.failing_since >= to_us(cfg_.source_error_threshold);
        const bool token = s.token != token_failure::none;
        std::string why;
        if (token) {
            why = "cannot get a token from Entra (" + std::string(to_string(s.token)) + ")";
            if (is_transient(s.token)) why += " — Entra may be unreachable or down";
        } else {
            why = "source failing";
        }
        // A failure that changes its nature (token -> Graph) stays one condition: the first
        // rule and text are kept until it recovers. While the store fails the condition is
        // frozen, not cleared: a "recovered" then would be false.
        if (!store_failing)
            drive(s.name + "/error", failing_long, s.failing_since,
                  token ? "token_failure" : "source_error", severity::critical, s.name,
                  "glasswatch " + s.name + ": " + why + " for " +
                      for_how_long(h.now - s.failing_since) + ": " +
                      sanitize_line(s.last_error, 300),
                  out);

        // Silence: up, sees the whole stream, and nothing arrived for silence_threshold.
        // Absent: never seen failing (the clock starts at started_at); 0: failing now.
        micros up_since = 0;
        if (s.failing_since != 0) {
            up_since_[s.name] = 0;
        } else if (auto it = up_since_.find(s.name); it != up_since_.end()) {
            if (it->second == 0) it->second = h.now;
            up_since = it->second;
        }
        // Frozen while the source fails: no records is then the error's business, and clearing
        // would announce a recovery that did not happen.
        if (cfg_.silence_threshold.count() > 0 && s.sees_whole_stream && s.failing_since == 0) {
            const micros quiet_from = std::max({s.last_event_seen, h.started_at, up_since});
            const bool up = s.failing_since == 0 && s.last_success != 0;
            const bool silent = up && h.now - quiet_from >= to_us(cfg_.silence_threshold);
            drive(s.name + "/silent", silent, quiet_from, "source_silent", severity::high, s.name,
                  "glasswatch " + s.name +
                      " works but has delivered no sign-in or audit record for " +
                      for_how_long(h.now - quiet_from) +
                      " — a tenant outage or a broken diagnostic setting looks like this",
                  out);
        }

        const bool lagging =
            s.stuck || (cfg_.lag_threshold.count() > 0 && s.lag > to_us(cfg_.lag_threshold));
        drive(s.name + "/lag", lagging, h.now, "source_lagging", severity::high, s.name,
              "glasswatch " + s.name +
                  (s.stuck ? " is stuck: the hub has newer events than it reads"
                           : " is behind by " + for_how_long(s.lag)),
              out);
    }
    return out;
}

std::optional<health_alert> tripwire::note_breakglass_signin(micros at, const std::string& who) {
    const micros window = to_us(cfg_.active_use_window);
    // Sign-in times, not arrival times: a backlog read after an outage is not a burst. Late
    // events arrive out of order, so keep the window sorted.
    auto pos = std::upper_bound(
        recent_signins_.begin(), recent_signins_.end(), at,
        [](micros t, const std::pair<micros, std::string>& e) { return t < e.first; });
    recent_signins_.insert(pos, {at, who});
    while (recent_signins_.back().first - recent_signins_.front().first > window)
        recent_signins_.pop_front();
    if (cfg_.active_use_count <= 0 ||
        recent_signins_.size() < static_cast<std::size_t>(cfg_.active_use_count))
        return std::nullopt;
    // One summary per burst: a new one only after the window emptied in between.
    if (active_use_episode_ != 0 && recent_signins_.front().first - active_use_episode_ <= window)
        return std::nullopt;
    active_use_episode_ = recent_signins_.front().first;
    std::string accounts;
    for (const auto& [t, w] : recent_signins_)
        if (accounts.find(w) == std::string::npos) accounts += (accounts.empty() ? "" : ", ") + w;
    return health_alert{"breakglass_active_use",
                        severity::critical,
                        "breakglass",
                        std::to_string(active_use_episode_),
                        "Break-glass in active use: " + std::to_string(recent_signins_.size()) +
                            " sign-ins within " + for_how_long(window) + " (" +
                            sanitize_line(accounts, 200) + ") — possible tenant outage",
                        false};
}

std::vector<std::string> tripwire::keep_sources(const std::vector<std::string>& names) {
    std::vector<std::string> dropped;
    auto kept = [&names](const std::string& source) {
        return std::find(names.begin(), names.end(), source) != names.end();
    };
    for (auto it = conditions_.begin(); it != conditions_.end();) {
        const auto slash = it->first.find('/');
        const std::string source = it->first.substr(0, slash);
        if (source != "store" && !kept(source)) {
            if (it->second.firing) dropped.push_back(it->first);
            it = conditions_.erase(it);
        } else {
            ++it;
        }
    }
    std::erase_if(up_since_, [&kept](const auto& e) { return !kept(e.first); });
    return dropped;
}

std::vector<std::string> tripwire::condition_keys(const std::vector<std::string>& sources) {
    std::vector<std::string> keys{"store/unwritable"};
    for (const auto& s : sources)
        for (const char* c : {"/error", "/silent", "/lag"})
            keys.push_back(s + c);
    return keys;
}

bool tripwire::is_firing(const std::string& key) const {
    auto it = conditions_.find(key);
    return it != conditions_.end() && it->second.firing;
}

std::vector<std::string> tripwire::firing() const {
    std::vector<std::string> out;
    for (const auto& [k, c] : conditions_)
        if (c.firing) out.push_back(k);
    return out;
}

bool drill_overdue(micros now, micros created_at, std::optional<micros> last_successful,
                   std::chrono::seconds max_age) {
    if (max_age.count() <= 0) return false;
    const micros from = last_successful ? *last_successful : created_at;
    return from != 0 && now - from > to_us(max_age);
}

}  // namespace glasswatch::core
