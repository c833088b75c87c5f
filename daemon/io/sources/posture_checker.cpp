#include "io/sources/posture_checker.hpp"

#include <nlohmann/json.hpp>

#include <spdlog/spdlog.h>

#include <boost/asio/this_coro.hpp>
#include <set>

#include "core/base/json_text.hpp"
#include "io/store/runtime.hpp"

namespace glasswatch::io {

namespace asio = boost::asio;
namespace posture = core::posture;
using posture::fetch_outcome;
using posture::fetch_state;

namespace {

constexpr int max_pages = 1000;  // a bound on one collection read
// Directory reads are not the reports API: Graph allows far more than 5 per 10 s, but a
// posture check is small (4 requests per account + 1 per group + 1): 100 per 10 s, evenly
// spaced, keeps it to about a second and far below the directory throttling limits.
constexpr int posture_requests_per_10s = 100;

fetch_outcome outcome_of(const graph_fetch_result& r) {
    if (r.ok) return {fetch_state::ok, ""};
    if (r.stopped) return {fetch_state::failed, "stopped"};
    // A 403 is a missing permission only as Authorization_RequestDenied; the PIM endpoints of a
    // tenant without an Entra ID P2 licence refuse with other codes (no PIM: not a permission).
    if (r.status == 403 && (r.graph_code.empty() || r.graph_code == "Authorization_RequestDenied"))
        return {fetch_state::denied, r.error};
    if (r.status == 404) return {fetch_state::not_found, r.error};
    return {fetch_state::failed, r.error};
}

}  // namespace

std::string posture_user_url(std::string_view base, std::string_view id) {
    return std::string(base) + "/v1.0/users/" + core::url_encode(id) +
           "?$select=id,userPrincipalName,accountEnabled,onPremisesSyncEnabled";
}

std::string posture_role_url(std::string_view base, std::string_view collection,
                             std::string_view id) {
    return std::string(base) + "/v1.0/roleManagement/directory/" + std::string(collection) +
           "?$filter=" + core::url_encode("principalId eq '" + std::string(id) + "'");
}

std::string posture_members_url(std::string_view base, std::string_view group_id) {
    return std::string(base) + "/v1.0/groups/" + core::url_encode(group_id) + "/members?$select=id";
}

std::string posture_ca_url(std::string_view base) {
    return std::string(base) + "/v1.0/identity/conditionalAccess/policies";
}

posture_checker::posture_checker(https_client& http, token_provider& tokens,
                                 const core::config& cfg)
    : cfg_(cfg),
      graph_(http, tokens,
             cfg.graph.graph_base_url.empty() ? core::default_graph_base_url(cfg.cloud)
                                              : cfg.graph.graph_base_url,
             posture_requests_per_10s),
      ctx_{cfg.tenant_id, cfg.tenant_name.empty() ? cfg.tenant_id : cfg.tenant_name} {}

void posture_checker::stop() {
    graph_.stop();
}

asio::awaitable<fetch_outcome> posture_checker::read_one(std::string url, std::string& body) {
    graph_fetch_result r = co_await graph_.get(url);
    if (r.ok) body = std::move(r.body);
    co_return outcome_of(r);
}

asio::awaitable<fetch_outcome> posture_checker::read_pages(std::string url, page_parser parse) {
    std::set<std::string> visited;
    for (int page = 0; !url.empty(); ++page) {
        if (page >= max_pages || !visited.insert(url).second)
            co_return fetch_outcome{fetch_state::failed, "@odata.nextLink loops or never ends"};
        graph_fetch_result r = co_await graph_.get(url);
        if (!r.ok) co_return outcome_of(r);
        std::string next, error;
        if (!parse(r.body, next, error)) co_return fetch_outcome{fetch_state::failed, error};
        // The bearer token goes to the Graph host only (invariant 7).
        if (!next.empty() && !core::same_origin(next, graph_.base()))
            co_return fetch_outcome{fetch_state::failed,
                                    "refused an @odata.nextLink to another host"};
        url = std::move(next);
    }
    co_return fetch_outcome{fetch_state::ok, ""};
}

asio::awaitable<posture::posture_input> posture_checker::gather() {
    posture::posture_input in;
    const std::string& base = graph_.base();
    for (const auto& acct : cfg_.watch.accounts) {
        if (graph_.stopping()) break;
        posture::account_input a;
        a.account = acct;
        std::string body;
        a.user.fetch = co_await read_one(posture_user_url(base, acct.object_id), body);
        if (a.user.fetch.state == fetch_state::ok) {
            std::string error;
            if (!posture::parse_user(body, a.user, error))
                a.user.fetch = {fetch_state::failed, error};
        }
        struct role_read {
            const char* collection;
            fetch_outcome* outcome;
            std::vector<posture::role_assignment>* into;
        };
        const role_read reads[] = {
            {"roleAssignments", &a.roles.active_fetch, &a.roles.active},
            {"roleAssignmentSchedules", &a.roles.schedule_fetch, &a.roles.schedules},
            {"roleEligibilitySchedules", &a.roles.eligible_fetch, &a.roles.eligible}};
        for (const auto& rr : reads) {
            auto* into = rr.into;
            page_parser parse = [into](const std::string& b, std::string& next, std::string& e) {
                return posture::parse_role_page(b, *into, next, e);
            };
            *rr.outcome =
                co_await read_pages(posture_role_url(base, rr.collection, acct.object_id), parse);
        }
        in.accounts.push_back(std::move(a));
    }
    for (const auto& gid : cfg_.watch.groups) {
        if (graph_.stopping()) break;
        posture::group_info g;
        g.id = gid;
        auto* into = &g.members;
        page_parser parse = [into](const std::string& b, std::string& next, std::string& e) {
            return posture::parse_members_page(b, *into, next, e);
        };
        g.fetch = co_await read_pages(posture_members_url(base, gid), parse);
        in.groups.push_back(std::move(g));
    }
    in.expected_members = cfg_.posture.group_members;
    auto* policies = &in.ca.policies;
    page_parser parse_ca = [policies](const std::string& b, std::string& next, std::string& e) {
        return posture::parse_ca_page(b, *policies, next, e);
    };
    in.ca.fetch = co_await read_pages(posture_ca_url(base), parse_ca);
    co_return in;
}

asio::awaitable<std::vector<posture::check_result>> posture_checker::check_once(
    asio::steady_timer& timer) {
    graph_.attach(&timer);
    struct forget {
        graph_fetcher& g;
        ~forget() { g.attach(nullptr); }
    } forget_timer{graph_};
    posture::posture_input in = co_await gather();
    co_return posture::evaluate(in);
}

asio::awaitable<void> posture_checker::run(runtime& rt, ingestor& ingest) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    posture::posture_state state;
    auto load = [](store& db) { return db.load_checkpoint(checkpoint_name); };
    std::optional<std::string> saved = co_await rt.on_store(std::move(load));
    if (saved) {
        if (auto s = posture::posture_state::from_json(*saved))
            state = std::move(*s);
        else
            spdlog::warn("posture: saved state unreadable; every failure alerts as new");
    }
    spdlog::info("posture: checking {} account(s), {} group(s) and Conditional Access every {}",
                 cfg_.watch.accounts.size(), cfg_.watch.groups.size(),
                 core::format_duration(cfg_.posture.interval.count() * 1000));
    while (!graph_.stopping()) {
        std::vector<posture::check_result> results = co_await check_once(timer);
        if (graph_.stopping()) break;
        const core::micros now = wall_now();
        posture::diff_result d = posture::diff(state, results, now);
        std::vector<core::finding> findings;
        for (auto& a : posture::posture_alerts(ctx_, d.changes, now)) {
            std::string raw = a.detail_json;
            findings.push_back(core::finding{std::move(a), std::move(raw), "posture"});
        }
        // Labels and problems carry names from the tenant (policy displayName): one clean line.
        for (const auto& c : d.changes)
            spdlog::warn(
                "posture: {} {} {}: {}", posture::to_string(c.kind), c.result.check,
                core::sanitize_line(c.result.label, 200),
                core::sanitize_line(
                    c.kind == posture::change_kind::fixed ? "was: " + c.previous : c.result.problem,
                    600));
        const std::size_t count = findings.size();
        std::vector<checkpoint> cps{checkpoint{checkpoint_name, d.next.to_json()}};
        commit_result cr = co_await ingest.commit(std::move(findings), std::move(cps));
        health_.passing = health_.failing = health_.cannot_check = 0;
        for (const auto& r : results)
            ++(r.st == posture::status::ok     ? health_.passing
               : r.st == posture::status::fail ? health_.failing
                                               : health_.cannot_check);
        ++health_.checks;
        if (cr.ok) {
            // Only a durable state moves on: a failed commit is diffed again next time.
            state = std::move(d.next);
            health_.alerts += count;
            health_.last_check = now;
            health_.last_error.clear();
        } else {
            health_.last_error = "store not writable: " + cr.error;
        }
        spdlog::info("posture: {} failing, {} cannot be checked, {} passing", health_.failing,
                     health_.cannot_check, health_.passing);
        if (cr.ok && (count > 0 || health_.checks == 1)) {
            // The result as evidence: the first check, and each one that changed something.
            nlohmann::json failing = nlohmann::json::array();
            for (const auto& r : results)
                if (r.st != posture::status::ok)
                    failing.push_back(
                        {{"check", r.check},
                         {"label", r.label},
                         {"status", r.st == posture::status::fail ? "fail" : "cannot_check"}});
            nlohmann::json body = {{"passing", health_.passing},
                                   {"failing", health_.failing},
                                   {"cannot_check", health_.cannot_check},
                                   {"changes", count},
                                   {"not_passing", failing}};
            auto record = [text =
                               body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                           now](store& db) {
                return db.record(core::evidence::kinds::posture, "posture", text, now);
            };
            if (!co_await rt.on_store(std::move(record)))
                spdlog::warn("posture: the result could not be chained as evidence");
        }
        graph_.attach(&timer);  // check_once() detached it
        const bool more = co_await graph_.sleep_for(cfg_.posture.interval);
        graph_.attach(nullptr);
        if (!more) break;
    }
    spdlog::info("posture: stopped");
}

}  // namespace glasswatch::io
