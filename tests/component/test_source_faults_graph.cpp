// Source faults and hostile input, Microsoft Graph side: the poller (real HTTPS client, token
// provider, pipeline and store) against the lab with the faults the service has and the input
// an attacker or a broken proxy could send. Each scenario prints one FIGURE line; the figures
// are kept in tests/component/SOURCE_FAULTS.md.
//
// Figures: missed (watched events never alerted), rate-limit violations (requests the lab saw
// before the Retry-After it handed out had passed, and the most requests in any 10 s window),
// the rejection counters of the poller (health().rejected) and the pipeline, log lines.
#include <atomic>
#include <string>

#include "component/graph_fixture.hpp"
#include "component/source_faults_support.hpp"

using namespace glasswatch;
namespace asio = boost::asio;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

using test::alerted;
using test::figure;
using test::log_capture;
using test::poller_fixture;

std::size_t alerts_of(io::store& s, const std::string& rule) {
    std::size_t n = 0;
    for (const auto& row : s.pending_all())
        n += row.a.rule == rule ? 1 : 0;
    return n;
}

std::size_t missed(poller_fixture& fx, const std::vector<std::string>& ids) {
    std::string err;
    auto db = io::store::open(fx.cfg.state_directory, err);
    REQUIRE(db);
    std::size_t n = 0;
    for (const auto& id : ids)
        n += alerted(*db, {id}) ? 0 : 1;
    return n;
}

std::string rejected_text(const io::source_health& h) {
    std::string out;
    for (const auto& [reason, n] : h.rejected)
        out += " rejected." + reason + "=" + std::to_string(n);
    return out;
}

}  // namespace

TEST_CASE("source faults: graph tokens that expire every few seconds and die early",
          "[source_faults][graph]") {
    // The 60 s expiry of the brief, scaled 1:20 to fit CI: tokens are issued for 3 s (renewed at
    // 80% of that) and the lab already refuses them after 2 s, so some requests meet an expired
    // token mid-paging. Watched events become visible one a second over 12 s.
    poller_fixture fx;
    fx.cfg.graph.kinds = {core::graph_kind::interactive};
    std::vector<std::string> ids;
    for (int i = 0; i < 12; ++i)
        ids.push_back(
            fx.control("signin", {{"user", i % 2 ? "bg1" : "bg2"}, {"delay_s", i}})["id"]);
    fx.control("faults", {{"token_ttl_s", 3}, {"expire_tokens_every_s", 2}, {"page_size", 1}});
    const bool held = fx.run([&](io::store& s) { return alerted(s, ids); }, 40s);
    auto st = fx.lab->stats();
    INFO(st.dump());
    const auto miss = missed(fx, ids);
    figure("graph token expiry (ttl 3 s, refused after 2 s)",
           "missed=" + std::to_string(miss) + " tokens=" + std::to_string(fx.tokens_fetched) +
               " unauthorized=" + std::to_string(fx.health.unauthorized) +
               " requests=" + std::to_string(fx.health.requests) +
               " early_requests=" + std::to_string(st["early_requests"].get<int>()) +
               " max_in_10s=" + std::to_string(st["max_in_10s"].get<int>()));
    CHECK(held);
    CHECK(miss == 0);
    CHECK(fx.tokens_fetched >= 4);
    CHECK(st["max_in_10s"].get<int>() <= 50);
}

TEST_CASE("source faults: graph token revoked between the pages of one query",
          "[source_faults][graph]") {
    poller_fixture fx;
    fx.cfg.graph.kinds = {core::graph_kind::interactive};
    std::vector<std::string> ids;
    for (int i = 0; i < 6; ++i)
        ids.push_back(fx.control("signin", {{"user", "bg1"}})["id"]);
    // Every token reads one page with a nextLink, then it is revoked: the next page answers 401.
    fx.control("faults", {{"revoke_token_after_pages", 1}, {"page_size", 1}});
    const bool held = fx.run([&](io::store& s) { return alerted(s, ids); }, 20s);
    auto st = fx.lab->stats();
    INFO(st.dump());
    const auto miss = missed(fx, ids);
    figure("graph 401 mid-page (token revoked after each page)",
           "missed=" + std::to_string(miss) +
               " revoked=" + std::to_string(st["revoked_tokens"].get<int>()) +
               " unauthorized=" + std::to_string(fx.health.unauthorized) + " tokens=" +
               std::to_string(fx.tokens_fetched) + " pages=" + std::to_string(fx.health.pages) +
               " failing=" + (fx.health.failing_since ? "yes" : "no"));
    CHECK(held);
    CHECK(miss == 0);
    CHECK(st["revoked_tokens"].get<int>() >= 5);
    CHECK(fx.health.unauthorized >= 5);  // each answered by a renewal and the same page again
    CHECK(fx.health.failing_since == 0);
}

TEST_CASE("source faults: graph 429 on 90 percent of requests - never early and nothing missed",
          "[source_faults][graph]") {
    // 20 requests per 10 s on both sides; nine requests in ten answered 429 + Retry-After: 1.
    poller_fixture fx(20);
    fx.cfg.graph.kinds = {core::graph_kind::interactive};
    std::vector<std::string> ids;
    for (int i = 0; i < 8; ++i)
        ids.push_back(fx.control("signin", {{"user", i % 2 ? "bg1" : "bg2"}})["id"]);
    // Four pages: about forty requests, thirty-six of them throttled.
    fx.control("faults", {{"throttle_ratio", 0.9}, {"retry_after", "seconds"}, {"page_size", 2}});
    const bool held = fx.run([&](io::store& s) { return alerted(s, ids); }, 90s);
    auto st = fx.lab->stats();
    INFO(st.dump());
    const auto miss = missed(fx, ids);
    const int early = st["early_requests"].get<int>();
    const int max10 = st["max_in_10s"].get<int>();
    figure("graph 429 on 90% of requests (Retry-After 1 s, limit 20/10 s)",
           "missed=" + std::to_string(miss) + " early_requests=" + std::to_string(early) +
               " max_in_10s=" + std::to_string(max10) +
               " throttled=" + std::to_string(st["throttled"].get<int>()) +
               " requests=" + std::to_string(st["graph_requests"].get<int>()));
    CHECK(held);
    CHECK(miss == 0);
    CHECK(early == 0);   // never back before the Retry-After it was given
    CHECK(max10 <= 20);  // never over the rate limit
    CHECK(st["throttled"].get<int>() >= 27);
}

TEST_CASE("source faults: graph 50 MB page within the body limit is read whole",
          "[source_faults][graph][hostile]") {
    poller_fixture fx;
    fx.cfg.graph.kinds = {core::graph_kind::interactive};
    fx.cfg.graph.full_stream = true;  // every record is served, watched or not
    fx.max_body_bytes = 64u << 20;    // the daemon's Graph limit
    std::vector<std::string> ids;
    for (int i = 0; i < 49; ++i)
        fx.control("signin", {{"user", "admin"}});
    ids.push_back(fx.control("signin", {{"user", "bg1"}, {"created_offset_s", -600}})["id"]);
    fx.control("faults", {{"record_padding_bytes", 1 << 20}});  // 50 records of 1 MiB
    test::reset_peak_rss();
    const long before = test::current_rss_kib();
    const bool held = fx.run([&](io::store& s) { return alerted(s, ids); }, 30s);
    const long peak = test::peak_rss_kib();
    figure("graph 50 MB page (limit 64 MiB)",
           "missed=" + std::to_string(missed(fx, ids)) +
               " peak_rss_growth_mib=" + std::to_string((peak - before) / 1024) +
               " (lab + client + parser in one process)" + rejected_text(fx.health));
    CHECK(held);
    CHECK(fx.health.rejected.empty());
}

TEST_CASE("source faults: graph pages above the body limit are asked for again smaller",
          "[source_faults][graph][hostile]") {
    log_capture logs;
    poller_fixture fx;
    fx.cfg.graph.kinds = {core::graph_kind::interactive};
    fx.cfg.graph.full_stream = true;
    fx.max_body_bytes = 16u << 20;
    std::vector<std::string> ids;
    for (int i = 0; i < 49; ++i)
        fx.control("signin", {{"user", "admin"}});
    ids.push_back(fx.control("signin", {{"user", "bg2"}, {"created_offset_s", -600}})["id"]);
    fx.control("faults", {{"record_padding_bytes", 1 << 20}});
    const bool held = fx.run([&](io::store& s) { return alerted(s, ids); }, 40s);
    const auto lines = logs.count("a page was larger than the body limit");
    figure("graph 50 MB page (limit 16 MiB)",
           "missed=" + std::to_string(missed(fx, ids)) + rejected_text(fx.health) + " log_lines=" +
               std::to_string(lines) + " failing=" + (fx.health.failing_since ? "yes" : "no"));
    CHECK(held);
    CHECK(fx.health.rejected["body_too_large"] >= 1);
    CHECK(lines == fx.health.rejected["body_too_large"]);  // one per $top step, not per poll
    CHECK(lines <= 4);
}

TEST_CASE("source faults: graph nextLink loops are refused and the cursor is kept",
          "[source_faults][graph][hostile]") {
    for (const char* loop : {"next_link_loop", "next_link_back"}) {
        DYNAMIC_SECTION(loop) {
            log_capture logs;
            poller_fixture fx;
            fx.cfg.graph.kinds = {core::graph_kind::interactive};
            std::vector<std::string> ids;
            for (int i = 0; i < 3; ++i)
                ids.push_back(fx.control("signin", {{"user", "bg1"}})["id"]);
            fx.control("faults", {{"page_size", 1}, {loop, true}});
            fx.run([&](io::store&) { return false; }, 5s);
            const auto lines = logs.count("@odata.nextLink loops");
            figure(std::string("graph nextLink loop (") + loop + ")",
                   "polls_refused=" + std::to_string(fx.health.rejected["next_link_loop"]) +
                       " log_lines=" + std::to_string(lines) +
                       " pages=" + std::to_string(fx.health.pages) +
                       " failing=" + (fx.health.failing_since ? "yes" : "no"));
            CHECK(fx.health.rejected["next_link_loop"] >= 2);  // every poll refuses it
            CHECK(lines == 1);                                 // logged once
            CHECK(fx.health.failing_since != 0);               // the tripwire sees it
            CHECK(fx.health.last_success == 0);                // the cursor never moved
        }
    }
}

TEST_CASE("source faults: graph nextLink to another host never gets the token",
          "[source_faults][graph][hostile]") {
    log_capture logs;
    poller_fixture fx;
    fx.cfg.graph.kinds = {core::graph_kind::interactive};
    fx.decoy = true;  // every nextLink names a live HTTPS server on another port
    for (int i = 0; i < 3; ++i)
        fx.control("signin", {{"user", "bg1"}});
    fx.control("faults", {{"page_size", 1}});
    fx.run([&](io::store&) { return false; }, 5s);
    const auto lines = logs.count("refused an @odata.nextLink to another host");
    figure("graph off-host nextLink", "decoy_requests=" + std::to_string(fx.decoy_requests) +
                                          rejected_text(fx.health) +
                                          " log_lines=" + std::to_string(lines));
    CHECK(fx.decoy_requests == 0);
    CHECK(fx.health.rejected["next_link_off_host"] >= 2);
    CHECK(lines == 1);
}

namespace {

// Hostile page bodies: the lab's answer to the first list requests is replaced.
struct hostile_page {
    const char* name;
    std::function<std::string(const std::string& page)> make;
    bool page_level;  // the page as a whole is unreadable (poll fails, cursor kept)
    std::size_t min_malformed = 2000;  // records refused over the two hostile pages
};

std::string watched_record(const std::string& id, const std::string& extra) {
    return R"({"id":")" + id + R"(","createdDateTime":")" +
           core::format_iso8601(io::wall_now(), false) + R"(","userId":")" +
           std::string(lab::ids::bg1) + R"(")" + extra + "}";
}

std::string flood(const std::string& extra) {
    std::string recs;
    for (int i = 0; i < 1000; ++i)
        recs += (i ? "," : "") + watched_record("hostile-" + std::to_string(i), extra);
    return R"({"value":[)" + recs + "]}";
}

}  // namespace

TEST_CASE("source faults: graph hostile pages are counted - logged once - never crash",
          "[source_faults][graph][hostile]") {
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    const std::vector<hostile_page> cases = {
        {"truncated page", [](const std::string& p) { return p.substr(0, p.size() / 2); }, true},
        // The split walks the nesting without recursion; the record (it names a watched
        // account) is refused by its own parse at the depth limit and fails closed.
        {"100k-deep nesting",
         [&deep](const std::string&) {
             return R"({"value":[)" + watched_record("deep", ",\"x\":" + deep) + "]}";
         },
         false, 2},
        {"nextLink not a string",
         [](const std::string&) { return std::string(R"({"@odata.nextLink":7,"value":[]})"); },
         true},
        {"1000 records with invalid UTF-8",
         [](const std::string&) { return flood(",\"userAgent\":\"\xff\xfe\""); }, false},
        {"1000 records with NUL bytes",
         [](const std::string&) { return flood(std::string(",\"userAgent\":\"a\0b\"", 18)); },
         false},
        {"1000 records with 1e400", [](const std::string&) { return flood(",\"x\":1e400"); },
         false},
        {"1000 records with duplicate keys",
         [](const std::string&) { return flood(",\"userId\":\"someone-else\""); }, false},
        {"1000 records without id",
         [](const std::string&) {
             std::string recs;
             for (int i = 0; i < 1000; ++i)
                 recs += std::string(i ? "," : "") +
                         R"({"createdDateTime":"2025-11-03T14:22:07Z","userId":")" +
                         std::string(lab::ids::bg1) + R"(","n":)" + std::to_string(i) + "}";
             return R"({"value":[)" + recs + "]}";
         },
         false},
    };
    for (const auto& hc : cases) {
        DYNAMIC_SECTION(hc.name) {
            log_capture logs;
            poller_fixture fx;
            fx.cfg.graph.kinds = {core::graph_kind::interactive};
            std::vector<std::string> ids;
            ids.push_back(fx.control("signin", {{"user", "bg1"}})["id"]);
            auto hostile = std::make_shared<std::atomic<int>>(2);  // the first 2 list pages
            fx.tamper = [hostile, &hc](const test::server_request& r, test::server_response& a) {
                if (r.target.find("auditLogs") == std::string::npos || a.status != 200) return;
                if (hostile->fetch_sub(1) > 0) a.body = hc.make(a.body);
            };
            std::size_t candidates = 0;
            const bool held = fx.run(
                [&](io::store& s) {
                    candidates = alerts_of(s, "unparsed_candidate");
                    return alerted(s, ids) && hostile->load() <= 0;
                },
                20s);
            const auto lines =
                logs.count("malformed input(s)") + logs.count("is not readable JSON");
            figure("graph hostile page: " + std::string(hc.name),
                   "missed=" + std::to_string(missed(fx, ids)) +
                       " records_malformed=" + std::to_string(fx.pipeline_stats.records_malformed) +
                       " bodies_malformed=" + std::to_string(fx.pipeline_stats.bodies_malformed) +
                       rejected_text(fx.health) + " unparsed_candidate_alerts=" +
                       std::to_string(candidates) + " log_lines=" + std::to_string(lines));
            CHECK(held);  // the real page is read once the hostile ones stop: nothing missed
            if (hc.page_level) {
                CHECK(fx.health.rejected["page_malformed"] == 2);
                CHECK(logs.count("is not readable JSON") == 1);  // the one line about it
                CHECK(logs.count("malformed input(s)") == 0);
            } else {
                CHECK(fx.pipeline_stats.records_malformed >= hc.min_malformed);
                CHECK(fx.health.rejected.empty());
                CHECK(candidates >= 1);  // watched id in an unreadable record: fails closed
                CHECK(logs.count("malformed input(s)") == 1);
            }
        }
    }
}

// The brief's figure at full scale: 60 s tokens for 150 s. Not in CI (hidden tag); run with
// `component_tests "[.soak]"`.
TEST_CASE("source faults: graph tokens that expire every 60 s (soak)", "[.soak][graph]") {
    poller_fixture fx;
    fx.cfg.graph.kinds = {core::graph_kind::interactive};
    std::vector<std::string> ids;
    for (int i = 0; i < 30; ++i)
        ids.push_back(fx.control("signin", {{"user", "bg1"}, {"delay_s", i * 5}})["id"]);
    fx.control("faults", {{"token_ttl_s", 60}, {"expire_tokens_every_s", 55}, {"page_size", 2}});
    const bool held = fx.run([&](io::store& s) { return alerted(s, ids); }, 200s);
    auto st = fx.lab->stats();
    figure("graph token expiry soak (ttl 60 s, refused after 55 s, 150 s)",
           "missed=" + std::to_string(missed(fx, ids)) +
               " tokens=" + std::to_string(fx.tokens_fetched) +
               " unauthorized=" + std::to_string(fx.health.unauthorized) +
               " early_requests=" + std::to_string(st["early_requests"].get<int>()));
    CHECK(held);
}

TEST_CASE(
    "source faults: graph connections dropped after the request - the limit still holds on "
    "the wire",
    "[source_faults][graph][paging]") {
    // Every third Graph request is processed (it counts in the service's window) and then its
    // kept-alive connection is reset before the answer. The client may repeat such a GET on a
    // fresh connection, but only through the poller's limiter: never a sixth request in 10 s.
    poller_fixture fx(5);
    fx.cfg.graph.kinds = {core::graph_kind::interactive, core::graph_kind::audit};
    std::vector<std::string> ids;
    for (int i = 0; i < 4; ++i)
        ids.push_back(fx.control("signin", {{"user", "bg1"}, {"delay_s", 2 * i}})["id"]);
    int graph_requests = 0;
    fx.tamper = [&graph_requests](const test::server_request& r, test::server_response& answer) {
        if (r.target.find("/auditLogs/") == std::string::npos) return;
        if (++graph_requests % 3 == 0) answer.what = test::server_response::fault::reset;
    };
    // Long enough for several 10 s windows at the limit: the poller asks for more than 5 per 10 s.
    const bool held =
        fx.run([&](io::store& s) { return alerted(s, ids) && graph_requests >= 14; }, 45s);
    auto st = fx.lab->stats();
    INFO(st.dump());
    const int max10 = st["max_in_10s"].get<int>();
    figure("graph connections reset after the request (every 3rd), limit 5/10 s",
           "missed=" + std::to_string(missed(fx, ids)) + " max_in_10s=" + std::to_string(max10) +
               " requests=" + std::to_string(st["graph_requests"].get<int>()) +
               " resets=" + std::to_string(graph_requests / 3));
    CHECK(held);
    CHECK(max10 <= 5);
}

TEST_CASE("source faults: graph streams that fail by turns never add up to a source error",
          "[source_faults][graph]") {
    // Two streams; in every poll cycle one of them is refused (403) and the other one succeeds,
    // taking turns. Each stream recovers every other cycle: no stream is down for longer than a
    // cycle, so the failure clock (source_error after 5 min in production) must never run long.
    poller_fixture fx;
    fx.cfg.graph.kinds = {core::graph_kind::interactive, core::graph_kind::audit};
    std::map<std::string, int> calls;
    fx.tamper = [&calls](const test::server_request& r, test::server_response& answer) {
        const bool audit = r.target.find("/directoryAudits") != std::string::npos;
        if (r.target.find("/auditLogs/") == std::string::npos) return;
        const int n = ++calls[audit ? "audit" : "signins"];
        if ((n % 2 == 0) == audit) {
            answer.status = 403;
            answer.what = test::server_response::fault::none;
            answer.body = R"({"error":{"code":"Authorization_RequestDenied","message":"lab"}})";
        }
    };
    core::micros longest = 0;
    fx.observe = [&longest](const io::source_health& h) {
        if (h.failing_since != 0) longest = std::max(longest, io::wall_now() - h.failing_since);
    };
    const auto t0 = std::chrono::steady_clock::now();
    fx.run([&](io::store&) { return std::chrono::steady_clock::now() - t0 > 9s; }, 20s);
    figure("graph streams failing by turns (403, 2 streams, 9 s)",
           "longest_failing_s=" + std::to_string(longest / 1000000.0) +
               " signins_requests=" + std::to_string(calls["signins"]) +
               " audit_requests=" + std::to_string(calls["audit"]));
    CHECK(calls["signins"] >= 4);
    CHECK(calls["audit"] >= 4);
    // Each stream's clock restarts when it recovers: never much more than one cycle (1 s poll
    // plus the back-off after a failed cycle), never the whole run.
    CHECK(longest < 5000000);
}

TEST_CASE("source faults: graph token endpoint 503 with Retry-After - nobody asks again early",
          "[source_faults][graph]") {
    // Three streams share one token; the token endpoint answers 503 + Retry-After: 5 twice, then
    // recovers. Not one token request may arrive before the Retry-After it was given.
    poller_fixture fx;
    fx.cfg.graph.kinds = {core::graph_kind::interactive, core::graph_kind::non_interactive,
                          core::graph_kind::audit};
    std::vector<std::string> ids{fx.control("signin", {{"user", "bg1"}})["id"]};
    fx.control("faults", {{"token", "unavailable"}, {"token_retry_after_s", 5}});
    int refused = 0;
    fx.tamper = [&](const test::server_request& r, test::server_response& answer) {
        if (r.target.find("/oauth2/") == std::string::npos || answer.status != 503) return;
        if (++refused == 2) fx.lab->set_faults({{"token", "ok"}});  // the next one is issued
    };
    const bool held = fx.run([&](io::store& s) { return alerted(s, ids); }, 30s);
    auto st = fx.lab->stats();
    INFO(st.dump());
    figure("graph token endpoint 503 + Retry-After 5 s (3 streams)",
           "token_requests=" + std::to_string(st["token_requests"].get<int>()) +
               " token_early_requests=" + std::to_string(st["token_early_requests"].get<int>()));
    CHECK(held);
    CHECK(refused == 2);
    CHECK(st["token_early_requests"].get<int>() == 0);
    CHECK(st["token_requests"].get<int>() == 3);
}

TEST_CASE("source faults: graph token renewal fails while the cached token is still valid",
          "[source_faults][graph]") {
    // Tokens live 8 s and are renewed from 6.4 s on. The endpoint breaks right after the first
    // token: polls between 6.4 s and 8 s must go on with the cached token, not fail.
    poller_fixture fx;
    fx.cfg.graph.kinds = {core::graph_kind::interactive};
    fx.control("faults", {{"token_ttl_s", 8}});
    fx.tamper = [&fx](const test::server_request& r, test::server_response& answer) {
        if (r.target.find("/oauth2/") != std::string::npos && answer.status == 200)
            fx.lab->set_faults({{"token", "unavailable"}});
    };
    core::micros failing_at_end = -1;
    std::uint64_t renew_attempts = 0;
    const auto t0 = std::chrono::steady_clock::now();
    fx.observe = [&](const io::source_health& h) {
        if (std::chrono::steady_clock::now() - t0 < 7400ms) failing_at_end = h.failing_since;
    };
    fx.run([&](io::store&) { return std::chrono::steady_clock::now() - t0 > 7500ms; }, 20s);
    auto st = fx.lab->stats();
    renew_attempts = st["token_requests"].get<std::uint64_t>();
    INFO(st.dump());
    CHECK(renew_attempts >= 2);  // the renewal was tried (and refused)
    CHECK(failing_at_end == 0);  // yet no poll failed while the token was still good
    CHECK(fx.health.polls >= 6);
}
