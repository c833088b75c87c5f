// Posture checks over Microsoft Graph: the thin I/O around core/posture.
//
// check_once(): reads, with the shared Graph fetch discipline (pacing, token renewal, 429/5xx
// retries, same-origin nextLinks only), per watched account the user object and its role
// assignments / assignment schedules / eligibility schedules, the members of each watched
// group and the Conditional Access policies; hands everything to core::posture::evaluate.
// A 403 makes only the checks behind that endpoint "cannot check: missing permission X".
//
// run(): every posture.interval, check_once(), diff against the last state, and commit the
// resulting alerts together with the new state (checkpoint row "posture") in one store
// transaction, so "what changed since the last check" survives restarts and an alert is never
// lost between the two.
//
// Thread: main thread only. The wait timer is a local of run()'s / check_once()'s caller frame.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <string>
#include <vector>

#include "core/alerting/posture.hpp"
#include "core/config/config.hpp"
#include "io/sources/graph_fetch.hpp"
#include "io/sources/ingest.hpp"

namespace glasswatch::io {

struct posture_health {
    core::micros last_check = 0;  // wall time of the last complete check
    std::uint64_t checks = 0;
    std::size_t failing = 0, cannot_check = 0, passing = 0;
    std::uint64_t alerts = 0;  // posture alerts committed
    std::string last_error;    // last commit / state problem, "" when fine
};

class posture_checker {
public:
    posture_checker(https_client& http, token_provider& tokens, const core::config& cfg);

    // One full check. Needs a timer for the fetcher's waits: run() attaches its own; a caller of
    // check_once() alone (the `posture` command, tests) passes one from its frame.
    boost::asio::awaitable<std::vector<core::posture::check_result>> check_once(
        boost::asio::steady_timer& timer);

    // The periodic check; commits alerts + state through `ingest`, reads the state with `rt`.
    boost::asio::awaitable<void> run(runtime& rt, ingestor& ingest);
    void stop();

    const posture_health& health() const noexcept { return health_; }
    const graph_fetch_counters& counters() const noexcept { return graph_.counters(); }

    static constexpr const char* checkpoint_name = "posture";

private:
    // Reads every page of a collection; `parse(body, next_link, error)` consumes one page.
    using page_parser = std::function<bool(const std::string&, std::string&, std::string&)>;
    boost::asio::awaitable<core::posture::fetch_outcome> read_pages(std::string url,
                                                                    page_parser parse);
    boost::asio::awaitable<core::posture::fetch_outcome> read_one(std::string url,
                                                                  std::string& body);
    boost::asio::awaitable<core::posture::posture_input> gather();

    const core::config& cfg_;
    graph_fetcher graph_;
    core::alert_context ctx_;
    posture_health health_;
};

// Graph URLs of the posture endpoints (exposed for the lab tests).
std::string posture_user_url(std::string_view base, std::string_view id);
std::string posture_role_url(std::string_view base, std::string_view collection,
                             std::string_view id);  // roleAssignments, ...Schedules
std::string posture_members_url(std::string_view base, std::string_view group_id);
std::string posture_ca_url(std::string_view base);

}  // namespace glasswatch::io
