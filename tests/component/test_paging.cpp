// Paging you can trust: the delivery path between "alert committed" and "a phone rang", over
// time and under the services' worst behaviour. Each test scripts an episode against the lab's
// receivers (a reset after the service acted, a 429 with Retry-After, a 410, an undelivered SMS,
// a certificate that does not verify) and checks what went over the wire, request by request.
#include <fstream>
#include <map>
#include <sstream>

#include "component/sink_fixture.hpp"

using namespace glasswatch;
using json = nlohmann::json;
using namespace std::chrono_literals;
using test::sink_fixture;

namespace {

// Every request one service of the receivers saw, in order.
std::vector<json> requests_to(const json& recorded, const std::string& service) {
    std::vector<json> out;
    for (const auto& e : recorded["log"])
        if (e["service"] == service) out.push_back(e);
    return out;
}

int count_class(const json& recorded, const std::string& rule) {
    int n = 0;
    for (const auto& e : recorded["pagerduty"])
        n += e["payload"].value("class", "") == rule ? 1 : 0;
    return n;
}

std::string read_file(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::size_t occurrences(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1))
        ++n;
    return n;
}

}  // namespace

TEST_CASE("paging: a POST reset after the service acted on it is never re-sent blindly",
          "[sinks][paging]") {
    sink_fixture fx;
    auto& sms = fx.add(core::sink_kind::twilio, "sms", fx.port_);
    sms.to = {"+14155550100"};
    fx.add(core::sink_kind::pagerduty, "pd", fx.port_);
    // The second create of each service goes out on the kept-alive connection of the first; the
    // service records it and resets the connection before any byte of the answer.
    std::string err;
    REQUIRE(fx.receivers.set_faults(
        json::parse(R"({"twilio":{"transport":"accept_then_drop","count":1,"skip":1},
                        "pagerduty":{"transport":"accept_then_drop","count":1,"skip":1}})"),
        err));
    auto db = io::store::open((fx.dir / "state").string(), err);
    REQUIRE(db);
    auto findings = fx.alerts(2);
    CHECK(fx.run(
        *db, findings,
        [](io::store& s) {
            return s.outbox_depth() == 0 &&
                   s.count_in_state("sms", io::delivery_state::accepted) == 0;
        },
        20s));
    auto rec = fx.receivers.recorded();
    INFO(rec["log"].dump());
    // One SMS per alert per number: the ambiguous create was looked up, not repeated.
    REQUIRE(rec["twilio"].size() == 2);
    CHECK(rec["twilio"][0]["body"] != rec["twilio"][1]["body"]);
    bool looked_up = false;
    for (const auto& r : requests_to(rec, "twilio"))
        looked_up = looked_up || (r["method"] == "GET" &&
                                  r["path"].get<std::string>().ends_with("/Messages.json"));
    CHECK(looked_up);
    // PagerDuty: one incident per alert. The lost answer came back to the sink (two attempts
    // on the row), which re-sent the same dedup_key, as PagerDuty expects.
    CHECK(rec["pagerduty_incidents"].size() == 2);
    int pd_attempts = 0;
    for (const auto& f : findings)
        for (const auto& r : db->deliveries_of(f.a.id))
            if (r.sink == "pd") {
                CHECK(r.state == io::delivery_state::confirmed);
                pd_attempts = std::max(pd_attempts, r.attempts);
            }
    CHECK(pd_attempts == 2);
}

TEST_CASE("paging: a 429 Retry-After holds every request to that service", "[sinks][paging]") {
    sink_fixture fx;
    auto& sms = fx.add(core::sink_kind::twilio, "sms", fx.port_);
    sms.to = {"+14155550100"};
    std::string err;
    // The first alert goes out; the second is answered 429 with Retry-After: 3. The third alert,
    // the retries and the status polls of the first SMS must all wait those 3 s.
    REQUIRE(fx.receivers.set_faults(
        json::parse(R"({"twilio":{"status":429,"retry_after":"3","count":1,"skip":1}})"), err));
    auto db = io::store::open((fx.dir / "state").string(), err);
    REQUIRE(db);
    auto findings = fx.alerts(3);
    CHECK(fx.run(
        *db, findings,
        [](io::store& s) {
            return s.outbox_depth() == 0 &&
                   s.count_in_state("sms", io::delivery_state::accepted) == 0;
        },
        30s));
    auto rec = fx.receivers.recorded();
    auto log = requests_to(rec, "twilio");
    INFO(json(log).dump());
    std::optional<std::int64_t> throttled_at;
    int throttled = 0, after = 0;
    for (const auto& r : log) {
        if (r["status"] == 429) {
            ++throttled;
            throttled_at = r["at_us"].get<std::int64_t>();
            continue;
        }
        if (!throttled_at) continue;
        ++after;
        CHECK(r["at_us"].get<std::int64_t>() - *throttled_at >= 3000000);
    }
    CHECK(throttled == 1);
    CHECK(after >= 3);  // the held create, the third alert, the status polls
    CHECK(rec["twilio"].size() == 3);
}

TEST_CASE(
    "paging: 410 Gone is one episode - no further request, rows kept, re-queued by the "
    "operator",
    "[sinks][paging]") {
    sink_fixture fx;
    fx.add(core::sink_kind::webhook, "hook", fx.port_);
    fx.add(core::sink_kind::pagerduty, "pd", fx.port_);
    std::string err;
    REQUIRE(fx.receivers.set_faults(json::parse(R"({"webhook":{"status":410}})"), err));
    const std::string state = (fx.dir / "state").string();
    auto findings = fx.alerts(3);
    {
        auto db = io::store::open(state, err);
        REQUIRE(db);
        CHECK(fx.run(
            *db, findings,
            [](io::store& s) { return s.count_in_state("pd", io::delivery_state::confirmed) >= 4; },
            15s));
    }
    auto rec = fx.receivers.recorded();
    CHECK(requests_to(rec, "webhook").size() == 1);  // the 410, and nothing after it
    CHECK(count_class(rec, "sink_broken") == 1);
    {
        auto db = io::store::open(state, err);
        CHECK(db->count_in_state("hook", io::delivery_state::failed) == 1);
        CHECK(db->count_in_state("hook", io::delivery_state::pending) == 2);  // held, kept
        auto open = db->open_episodes("hook");
        REQUIRE(open.size() == 1);
        CHECK(open[0].cause == "http_410");
        CHECK(open[0].holds);
    }
    {
        // A restart with the same configuration neither pages again nor knocks on the dead URL.
        auto db = io::store::open(state, err);
        fx.run(
            *db, {}, [](io::store&) { return false; }, 2s);
    }
    rec = fx.receivers.recorded();
    CHECK(requests_to(rec, "webhook").size() == 1);
    CHECK(count_class(rec, "sink_broken") == 1);

    // The receiver is back; the operator re-queues (from another process: its own connection).
    REQUIRE(fx.receivers.set_faults(json::parse(R"({"webhook":{"status":0}})"), err));
    {
        auto cli = io::store::open(state, err);
        auto r = cli->requeue("hook", {}, io::wall_now(), "test operator");
        CHECK(r.ok);
        CHECK(r.rows == 1);
        CHECK(r.sinks == std::vector<std::string>{"hook"});
    }
    {
        auto db = io::store::open(state, err);
        CHECK(fx.run(
            *db, {},
            [](io::store& s) {
                return s.count_in_state("hook", io::delivery_state::confirmed) >= 3 &&
                       s.outbox_depth() == 0;
            },
            15s));
        CHECK(db->open_episodes("hook").empty());
        CHECK(db->verify_evidence({}).ok);  // the operator's action is chained as evidence
    }
    rec = fx.receivers.recorded();
    CHECK(rec["webhook_ids"].size() >= 3);
    for (const auto& f : findings)
        CHECK(rec["webhook_ids"].contains("msg_" + f.a.id));
    CHECK(count_class(rec, "sink_broken_recovered") == 1);
    CHECK(count_class(rec, "sink_broken") == 1);
}

TEST_CASE("paging: an undelivered SMS escalates at once and every recipient is polled",
          "[sinks][paging][twilio]") {
    sink_fixture fx;
    auto& sms = fx.add(core::sink_kind::twilio, "sms", fx.port_);
    sms.escalate_after = 60s;  // the timed escalation must not be what fires
    sms.escalate_to = "pd";
    sms.rules = {"breakglass_signin"};
    auto& pd = fx.add(core::sink_kind::pagerduty, "pd", fx.port_);
    pd.rules = {"nothing_routes_here"};
    pd.min_severity = core::severity::critical;
    std::string err;
    // The first number is unreachable; the second one's outcome must still be asked for.
    REQUIRE(fx.receivers.set_faults(
        json::parse(R"({"twilio_delivery_to":{"+14155550100":"undelivered"}})"), err));
    auto db = io::store::open((fx.dir / "state").string(), err);
    auto findings = fx.alerts(1);
    const std::string id = findings[0].a.id;
    CHECK(fx.run(
        *db, findings,
        [&](io::store& s) {
            for (const auto& r : s.deliveries_of(id))
                if (r.sink == "pd" && r.state == io::delivery_state::confirmed) return true;
            return false;
        },
        15s));
    io::outbox_row sms_row, pd_row;
    for (const auto& r : db->deliveries_of(id))
        (r.sink == "sms" ? sms_row : pd_row) = r;
    CHECK(sms_row.state == io::delivery_state::failed);
    CHECK(sms_row.last_error.find("...0100 undelivered (Twilio 30003)") != std::string::npos);
    REQUIRE(pd_row.created_at > 0);
    CHECK(pd_row.created_at - sms_row.accepted_at <= 5000000);  // escalated within 5 s
    // Both messages were polled: one unreachable number does not hide the other's outcome.
    auto rec = fx.receivers.recorded();
    std::set<std::string> polled;
    for (const auto& r : requests_to(rec, "twilio"))
        if (r["method"] == "GET") polled.insert(r["path"].get<std::string>());
    for (const auto& m : rec["twilio"])
        CHECK(polled.count("/2010-04-01/Accounts/" + fx.receivers.options().twilio_account_sid +
                           "/Messages/" + m["sid"].get<std::string>() + ".json") == 1);
    CHECK(rec["pagerduty"].size() == 1);
}

TEST_CASE("paging: an SMS not delivered within delivery_timeout escalates",
          "[sinks][paging][twilio]") {
    sink_fixture fx;
    auto& sms = fx.add(core::sink_kind::twilio, "sms", fx.port_);
    sms.to = {"+14155550100"};
    sms.delivery_timeout = 2s;
    sms.escalate_after = 60s;
    sms.escalate_to = "pd";
    sms.rules = {"breakglass_signin"};
    auto& pd = fx.add(core::sink_kind::pagerduty, "pd", fx.port_);
    pd.rules = {"nothing_routes_here"};
    pd.min_severity = core::severity::critical;
    std::string err;
    REQUIRE(fx.receivers.set_faults(json::parse(R"({"twilio_delivery":"stuck"})"), err));
    auto db = io::store::open((fx.dir / "state").string(), err);
    auto findings = fx.alerts(1);
    const std::string id = findings[0].a.id;
    CHECK(fx.run(
        *db, findings,
        [&](io::store& s) {
            for (const auto& r : s.deliveries_of(id))
                if (r.sink == "pd" && r.state == io::delivery_state::confirmed) return true;
            return false;
        },
        15s));
    for (const auto& r : db->deliveries_of(id))
        if (r.sink == "sms") {
            CHECK(r.state == io::delivery_state::failed);
            CHECK(r.last_error.find("not delivered within 2s") != std::string::npos);
        }
}

TEST_CASE("paging: a certificate that fails verification breaks the sink after 3 attempts",
          "[sinks][paging]") {
    auto check_broken = [](sink_fixture& fx, const std::string& why) {
        fx.add(core::sink_kind::pagerduty, "pd", fx.port_);
        fx.add(core::sink_kind::file, "log", fx.port_);
        std::string err;
        auto db = io::store::open((fx.dir / "state").string(), err);
        auto findings = fx.alerts(2);
        CHECK(fx.run(
            *db, findings,
            [](io::store& s) {
                return s.count_in_state("log", io::delivery_state::confirmed) >= 3;
            },
            15s));
        int failed = 0;
        for (const auto& f : findings)
            for (const auto& r : db->deliveries_of(f.a.id))
                if (r.sink == "pd") {
                    INFO(r.last_error);
                    if (r.state == io::delivery_state::failed) {
                        ++failed;
                        CHECK(r.attempts <= 3);
                        CHECK(r.last_error.find(why) != std::string::npos);
                    } else {
                        CHECK(r.state == io::delivery_state::pending);  // held, kept
                    }
                }
        CHECK(failed == 1);
        auto open = db->open_episodes("pd");
        REQUIRE(open.size() == 1);
        CHECK(open[0].cause == "tls_verify");
        const std::string lines = read_file((fx.dir / "log.jsonl").string());
        CHECK(occurrences(lines, "\"rule\":\"sink_broken\"") == 1);
    };
    SECTION("a certificate from a CA the sink does not trust") {
        sink_fixture fx;
        fx.tls_fault = test::https_server::tls_fault::untrusted_certificate;
        fx.tls_fault_for = 3600s;
        check_broken(fx, "certificate verify failed");
    }
    SECTION("a trusted certificate for another host name") {
        sink_fixture fx({"localhost"});  // the sinks dial 127.0.0.1
        check_broken(fx, "certificate verify failed");
    }
}
