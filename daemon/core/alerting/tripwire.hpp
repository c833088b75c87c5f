// The tripwire: glasswatch watching its own eyes (pure; time passed in).
//
// A tenant outage looks, from here, like a source that fails or goes quiet — and that is exactly
// when a break-glass account gets used. So the health of every source, of the store and of the
// alert path becomes alerts of their own, sent through the same out-of-band sinks:
//
//   token_failure     the token endpoint refuses or cannot be reached, longer than
//                     source_error_threshold (the AADSTS class says which: an expired secret is
//                     an ops task, "Entra unreachable" may be the outage itself)
//   source_error      Graph / Event Hub failing for longer than source_error_threshold
//   source_silent     a source that works but delivered no record for silence_threshold
//   source_lagging    a consumer behind by more than lag_threshold, or stuck
//   store_unwritable  a commit failed (disk full, read-only): sources stop advancing
//   breakglass_active_use  active_use_count break-glass sign-ins within active_use_window
//
// Every condition is a small state machine (clear -> firing -> clear). Entering "firing" yields
// one alert, leaving it yields one "<rule>_recovered" alert with the same severity (so it reaches
// the same people); the episode (the time the condition started) keeps the ids distinct.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/base/time.hpp"
#include "core/config/config.hpp"
#include "core/protocol/oauth.hpp"

namespace glasswatch::core {

struct source_snapshot {
    std::string name;               // "graph", "eventhub"
    micros last_success = 0;        // last complete poll / receive; 0 = never
    micros failing_since = 0;       // 0 while healthy
    micros last_event_seen = 0;     // last time any record arrived; 0 = none yet
    bool sees_whole_stream = true;  // false: server-side filtered, silence is not measurable
    std::string last_error;
    token_failure token = token_failure::none;  // set when the failure is token acquisition
    micros lag = 0;                             // how far behind the newest event; 0 = unknown
    bool stuck = false;
    std::uint64_t records = 0;                      // records read so far (metrics)
    std::uint64_t polls = 0, requests = 0;          // polling sources: cycles and requests sent
    std::map<std::string, std::uint64_t> rejected;  // input refused, by reason (metrics)
};

struct health_snapshot {
    micros now = 0;
    micros started_at = 0;
    std::vector<source_snapshot> sources;
    micros store_failing_since = 0;
    std::string store_error;
};

struct health_alert {
    std::string rule;
    severity sev = severity::critical;
    std::string subject;  // "graph", "store", an account label
    std::string episode;  // start of the condition (microseconds), unique per incident
    std::string summary;
    bool recovery = false;
};

class tripwire {
public:
    explicit tripwire(tripwire_config cfg) : cfg_(cfg) {}

    // A reload: new thresholds apply from the next evaluation; conditions keep their state.
    void reconfigure(tripwire_config cfg) { cfg_ = cfg; }
    // A reload removed sources: their conditions end without a "recovered" alert (nothing
    // recovered; nobody watches them any more). Returns the firing ones that were dropped.
    std::vector<std::string> keep_sources(const std::vector<std::string>& names);
    // Every condition the tripwire evaluates for these sources ("store/unwritable",
    // "graph/error", ...), firing or not: the metric lists each one with 0 or 1.
    static std::vector<std::string> condition_keys(const std::vector<std::string>& sources);
    bool is_firing(const std::string& key) const;

    std::vector<health_alert> evaluate(const health_snapshot& h);
    // A break-glass sign-in alert was committed; returns the active-use summary when this one
    // completes a burst.
    std::optional<health_alert> note_breakglass_signin(micros at, const std::string& who);

    // Currently firing conditions ("graph/source_error", ...), for /readyz and status.
    std::vector<std::string> firing() const;

private:
    struct condition {
        bool firing = false;
        micros since = 0;
        std::string rule;
        severity sev = severity::critical;
        std::string summary;
    };
    // Drives one condition; appends the alert for a transition.
    void drive(const std::string& key, bool bad, micros since, const std::string& rule,
               severity sev, const std::string& subject, const std::string& summary,
               std::vector<health_alert>& out);

    tripwire_config cfg_;
    std::map<std::string, condition> conditions_;
    // Per source: since when it is up again (0 while failing). The silence clock starts there:
    // no records arrive while a source fails, and that is the error alert's business.
    std::map<std::string, micros> up_since_;
    std::deque<std::pair<micros, std::string>> recent_signins_;
    micros active_use_episode_ = 0;
};

// Drill overdue: no successful drill of an account for max_age (counted from `created_at` of the
// state when there never was one). max_age 0 disables.
bool drill_overdue(micros now, micros created_at, std::optional<micros> last_successful,
                   std::chrono::seconds max_age);

}  // namespace glasswatch::core
