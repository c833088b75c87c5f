// Component tests: the delivery engine with the real PagerDuty, Twilio and webhook sinks,
// against the lab's receivers (which validate auth, fields and signatures like the services).
#include <unistd.h>
#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "component/sink_fixture.hpp"

using namespace glasswatch;
namespace asio = boost::asio;
using json = nlohmann::json;
using namespace std::chrono_literals;
using test::sink_fixture;

TEST_CASE("PagerDuty / Twilio and webhook sinks deliver with the exact wire format", "[sinks]") {
    sink_fixture fx;
    fx.add(core::sink_kind::pagerduty, "pd", fx.port_);
    fx.add(core::sink_kind::twilio, "sms", fx.port_);
    fx.add(core::sink_kind::webhook, "hook", fx.port_);
    std::string err;
    auto db = io::store::open((fx.dir / "state").string(), err);
    REQUIRE(db);
    auto findings = fx.alerts(3);
    bool ok = fx.run(
        *db, findings,
        [](io::store& s) {
            return s.outbox_depth() == 0 &&
                   s.count_in_state("sms", io::delivery_state::accepted) == 0;
        },
        15s);
    CHECK(ok);
    auto rec = fx.receivers.recorded();
    CHECK(rec["rejected"] == 0);
    REQUIRE(rec["pagerduty"].size() == 3);
    std::set<std::string> ids;
    for (const auto& f : findings)
        ids.insert(f.a.id);
    for (auto& e : rec["pagerduty"]) {
        CHECK(ids.count(e["dedup_key"].get<std::string>()) == 1);
        CHECK(e["payload"]["severity"] == "critical");
        CHECK(e["payload"]["source"] == "contoso");
    }
    REQUIRE(rec["twilio"].size() == 6);  // 3 alerts x 2 recipients
    for (auto& m : rec["twilio"])
        CHECK(m["body"].get<std::string>().size() <= 160);
    REQUIRE(rec["webhook"].size() == 3);
    for (auto& h : rec["webhook"]) {
        CHECK(h["headers"]["x-tenant"] == "contoso");
        CHECK(ids.count(h["headers"]["idempotency-key"].get<std::string>()) == 1);
        CHECK(h["body"]["type"] == "glasswatch.alert.breakglass_signin");
    }
    for (const auto& f : findings)
        for (const auto& r : db->deliveries_of(f.a.id)) {
            INFO(r.sink << " " << to_string(r.state) << " " << r.last_error);
            CHECK(r.state == io::delivery_state::confirmed);  // SMS confirmed by status polling
        }
}

TEST_CASE("transient failures are retried / honouring Retry-After - nothing is lost", "[sinks]") {
    sink_fixture fx;
    fx.add(core::sink_kind::pagerduty, "pd", fx.port_);
    fx.add(core::sink_kind::webhook, "hook", fx.port_);
    std::string err;
    REQUIRE(fx.receivers.set_faults(
        json::parse(R"({"pagerduty":{"status":429,"count":3,"retry_after":"1"},
        "webhook":{"status":503,"count":4}})"),
        err));
    auto db = io::store::open((fx.dir / "state").string(), err);
    auto findings = fx.alerts(2);
    auto t0 = std::chrono::steady_clock::now();
    CHECK(fx.run(
        *db, findings, [](io::store& s) { return s.outbox_depth() == 0; }, 20s));
    auto took = std::chrono::steady_clock::now() - t0;
    auto rec = fx.receivers.recorded();
    CHECK(rec["pagerduty"].size() == 2);
    CHECK(rec["webhook"].size() == 2);
    CHECK(took >= 1s);  // the 429's Retry-After: 1 was honoured
    for (const auto& f : findings)
        for (const auto& r : db->deliveries_of(f.a.id))
            CHECK(r.state == io::delivery_state::confirmed);
}

TEST_CASE("a permanent refusal stops the row and raises sink_broken on the other sinks",
          "[sinks]") {
    sink_fixture fx;
    ::setenv("GW_TEST_PD_KEY", "00000000000000000000000000000000", 1);  // wrong routing key
    fx.add(core::sink_kind::pagerduty, "pd", fx.port_);
    fx.add(core::sink_kind::webhook, "hook", fx.port_);
    std::string err;
    auto db = io::store::open((fx.dir / "state").string(), err);
    auto findings = fx.alerts(1);
    // Done when the webhook has both the alert and the sink_broken alert: the outbox is briefly
    // empty between PagerDuty's refusal and the sink_broken commit.
    CHECK(fx.run(
        *db, findings,
        [](io::store& s) {
            return s.outbox_depth() == 0 &&
                   s.count_in_state("hook", io::delivery_state::confirmed) >= 2;
        },
        10s));
    auto rows = db->deliveries_of(findings[0].a.id);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].sink == "hook");
    CHECK(rows[1].state == io::delivery_state::failed);
    CHECK(rows[1].last_error.find("routing_key") != std::string::npos);  // PagerDuty's own text
    auto rec = fx.receivers.recorded();
    bool broken_seen = false;
    for (auto& h : rec["webhook"])
        if (h["body"]["type"] == "glasswatch.alert.sink_broken") broken_seen = true;
    CHECK(broken_seen);
}

TEST_CASE("Twilio: wrong credentials are permanent - an undelivered SMS escalates",
          "[sinks][twilio]") {
    SECTION("401 Authenticate") {
        sink_fixture fx;
        ::setenv("GW_TEST_TWILIO_TOKEN", "wrong", 1);
        fx.add(core::sink_kind::twilio, "sms", fx.port_);
        fx.add(core::sink_kind::webhook, "hook", fx.port_);
        std::string err;
        auto db = io::store::open((fx.dir / "state").string(), err);
        auto findings = fx.alerts(1);
        CHECK(fx.run(
            *db, findings, [](io::store& s) { return s.outbox_depth() == 0; }, 10s));
        for (const auto& r : db->deliveries_of(findings[0].a.id))
            if (r.sink == "sms") {
                CHECK(r.state == io::delivery_state::failed);
                CHECK(r.last_error == "HTTP 401 (Twilio 20003): Authenticate");
            }
    }
    SECTION("undelivered -> escalation to PagerDuty") {
        sink_fixture fx;
        auto& sms = fx.add(core::sink_kind::twilio, "sms", fx.port_);
        sms.escalate_after = 1s;
        sms.escalate_to = "pd";
        sms.rules = {"breakglass_signin"};
        auto& pd = fx.add(core::sink_kind::pagerduty, "pd", fx.port_);
        pd.rules = {"nothing_routes_here"};
        pd.min_severity = core::severity::critical;
        std::string err;
        REQUIRE(fx.receivers.set_faults(json::parse(R"({"twilio_delivery":"undelivered"})"), err));
        auto db = io::store::open((fx.dir / "state").string(), err);
        auto findings = fx.alerts(1);
        CHECK(fx.run(
            *db, findings,
            [&](io::store& s) {
                // Escalated to PagerDuty (not confirmed by SMS within 1 s) and the SMS itself
                // reported undelivered by the status polling.
                bool escalated = false, sms_failed = false;
                for (const auto& r : s.deliveries_of(findings[0].a.id)) {
                    if (r.sink == "pd" && r.state == io::delivery_state::confirmed)
                        escalated = true;
                    if (r.sink == "sms" && r.state == io::delivery_state::failed) sms_failed = true;
                }
                return escalated && sms_failed;
            },
            15s));
        auto rows = db->deliveries_of(findings[0].a.id);
        REQUIRE(rows.size() == 2);
        for (const auto& r : rows)
            if (r.sink == "sms") {
                CHECK(r.state == io::delivery_state::failed);
                CHECK(r.last_error.find("undelivered") != std::string::npos);
            }
        CHECK(fx.receivers.recorded()["pagerduty"].size() == 1);
    }
}

TEST_CASE("Twilio: a lost answer is checked against the message list before resending",
          "[sinks][twilio]") {
    sink_fixture fx;
    auto& sms = fx.add(core::sink_kind::twilio, "sms", fx.port_);
    sms.to = {"+14155550100"};
    std::string err;
    REQUIRE(fx.receivers.set_faults(
        json::parse(R"({"twilio":{"transport":"accept_then_drop","count":1}})"), err));
    auto db = io::store::open((fx.dir / "state").string(), err);
    auto findings = fx.alerts(1);
    CHECK(fx.run(
        *db, findings,
        [](io::store& s) {
            return s.outbox_depth() == 0 &&
                   s.count_in_state("sms", io::delivery_state::accepted) == 0;
        },
        15s));
    CHECK(fx.receivers.recorded()["twilio"].size() == 1);  // created once, not twice
}

TEST_CASE("hostile strings are escaped and truncated in every sink's payload", "[sinks]") {
    sink_fixture fx;
    fx.add(core::sink_kind::pagerduty, "pd", fx.port_);
    fx.add(core::sink_kind::twilio, "sms", fx.port_);
    fx.add(core::sink_kind::webhook, "hook", fx.port_);
    std::string ua(10240, 'A');
    ua.replace(0, 60, "\"quoted\"\n\r\x07\x1b[2J</script><b>\xE2\x80\xAE{{evil}}\\");
    std::string err;
    auto db = io::store::open((fx.dir / "state").string(), err);
    CHECK(fx.run(
        *db, fx.alerts(1, ua), [](io::store& s) { return s.outbox_depth() == 0; }, 10s));
    auto rec = fx.receivers.recorded();
    CHECK(rec["rejected"] == 0);
    std::string pd_ua = rec["pagerduty"][0]["payload"]["custom_details"]["event"]["userAgent"];
    CHECK(pd_ua.size() <= 512);
    CHECK(pd_ua.find_first_of("\n\r\x07\x1b") == std::string::npos);
    std::string hook_ua = rec["webhook"][0]["body"]["data"]["event"]["userAgent"];
    CHECK(hook_ua == pd_ua);
    for (auto& m : rec["twilio"]) {
        std::string body = m["body"];
        CHECK(body.size() <= 160);
        CHECK(body.find_first_of("\n\r\x07\x1b{}") == std::string::npos);
    }
}

TEST_CASE("Twilio: a burst becomes one SMS now plus one grouped SMS with the count",
          "[sinks][twilio]") {
    sink_fixture fx;
    auto& sms = fx.add(core::sink_kind::twilio, "sms", fx.port_);
    sms.to = {"+14155550100"};
    sms.burst_window = 2s;
    std::string err;
    auto db = io::store::open((fx.dir / "state").string(), err);
    auto findings = fx.alerts(6);
    CHECK(fx.run(
        *db, findings,
        [](io::store& s) {
            return s.outbox_depth() == 0 &&
                   s.count_in_state("sms", io::delivery_state::accepted) == 0;
        },
        20s));
    auto texts = fx.receivers.recorded()["twilio"];
    REQUIRE(texts.size() == 2);
    // The first alert of the burst went alone, with its own text: it was not held back.
    CHECK(texts[0]["body"] == findings[0].a.sms);
    // The other five waited for the window to close and went as one SMS with the count.
    const std::string grouped = texts[1]["body"];
    CHECK(grouped.rfind("GW x5 alerts since last SMS, latest: ", 0) == 0);
    CHECK(grouped.size() <= 160);
    CHECK(texts[1]["created_us"].get<std::int64_t>() - texts[0]["created_us"].get<std::int64_t>() >=
          2000000);
    // Every alert is accounted for: all six rows confirmed by the status polling.
    for (const auto& f : findings)
        for (const auto& r : db->deliveries_of(f.a.id))
            CHECK(r.state == io::delivery_state::confirmed);
}

TEST_CASE("a receiver that does not speak TLS is retried until it is fixed - nothing is lost",
          "[sinks]") {
    // (A certificate that fails verification is different: after three attempts in a row the
    // sink counts as broken — test_paging.cpp.)
    using tls_fault = test::https_server::tls_fault;
    for (auto fault : {tls_fault::not_tls}) {
        sink_fixture fx;
        fx.add(core::sink_kind::pagerduty, "pd", fx.port_);
        fx.add(core::sink_kind::twilio, "sms", fx.port_);
        fx.add(core::sink_kind::webhook, "hook", fx.port_);
        fx.tls_fault = fault;
        fx.tls_fault_for = 1500ms;
        std::string err;
        auto db = io::store::open((fx.dir / "state").string(), err);
        auto findings = fx.alerts(2);
        CHECK(fx.run(
            *db, findings,
            [](io::store& s) {
                return s.outbox_depth() == 0 &&
                       s.count_in_state("sms", io::delivery_state::accepted) == 0;
            },
            20s));
        auto rec = fx.receivers.recorded();
        CHECK(rec["pagerduty"].size() == 2);
        CHECK(rec["webhook"].size() == 2);
        CHECK(rec["twilio"].size() == 4);
        for (const auto& f : findings)
            for (const auto& r : db->deliveries_of(f.a.id)) {
                INFO(r.sink << " " << r.last_error);
                CHECK(r.state == io::delivery_state::confirmed);
                CHECK(r.attempts >= 1);  // the handshake failures were retried, not dropped
            }
    }
}
