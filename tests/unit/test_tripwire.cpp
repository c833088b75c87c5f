// The tripwire's state machines: each condition alerts once when it starts, once when it ends.
#include <catch2/catch.hpp>

#include "core/alerting/tripwire.hpp"

using namespace glasswatch::core;

namespace {

constexpr micros s(std::int64_t n) {
    return n * 1000000;
}

tripwire_config cfg() {
    tripwire_config c;
    c.source_error_threshold = std::chrono::seconds(300);
    c.silence_threshold = std::chrono::seconds(900);
    c.lag_threshold = std::chrono::seconds(600);
    c.active_use_window = std::chrono::seconds(600);
    c.active_use_count = 3;
    return c;
}

health_snapshot at(micros now, source_snapshot src) {
    health_snapshot h;
    h.now = now;
    h.started_at = s(1000);
    h.sources.push_back(std::move(src));
    return h;
}

source_snapshot healthy(micros now) {
    source_snapshot g;
    g.name = "graph";
    g.last_success = now;
    g.last_event_seen = now;
    return g;
}

}  // namespace

TEST_CASE("tripwire: token failure alerts after the threshold with its AADSTS class and recovers",
          "[tripwire]") {
    tripwire t(cfg());
    source_snapshot g = healthy(s(2000));
    g.failing_since = s(2000);
    g.token = token_failure::expired_credential;
    g.last_error = "AADSTS7000222: the client secret expired";
    CHECK(t.evaluate(at(s(2299), g)).empty());  // not yet: under the threshold
    auto a = t.evaluate(at(s(2300), g));
    REQUIRE(a.size() == 1);
    CHECK(a[0].rule == "token_failure");
    CHECK(a[0].sev == severity::critical);
    CHECK(a[0].summary.find("expired") != std::string::npos);
    CHECK(a[0].episode == std::to_string(s(2000)));
    CHECK(t.evaluate(at(s(2400), g)).empty());  // still failing: no second alert
    CHECK(t.firing() == std::vector<std::string>{"graph/error"});

    source_snapshot ok = healthy(s(2500));
    auto r = t.evaluate(at(s(2500), ok));
    REQUIRE(r.size() == 1);
    CHECK(r[0].rule == "token_failure_recovered");
    CHECK(r[0].recovery);
    CHECK(r[0].episode == a[0].episode);
    CHECK(t.firing().empty());
}

TEST_CASE("tripwire: Entra unreachable is told apart from a bad credential", "[tripwire]") {
    tripwire t(cfg());
    source_snapshot g = healthy(s(2000));
    g.failing_since = s(2000);
    g.token = token_failure::unreachable;
    auto a = t.evaluate(at(s(2400), g));
    REQUIRE(a.size() == 1);
    CHECK(a[0].summary.find("Entra may be unreachable") != std::string::npos);

    tripwire t2(cfg());
    g.token = token_failure::none;
    g.last_error = "HTTP 503";
    auto b = t2.evaluate(at(s(2400), g));
    REQUIRE(b.size() == 1);
    CHECK(b[0].rule == "source_error");
}

TEST_CASE("tripwire: silence only for a source that is up and sees the whole stream",
          "[tripwire]") {
    tripwire t(cfg());
    source_snapshot g = healthy(s(5000));
    g.last_event_seen = s(4000);
    auto a = t.evaluate(at(s(4899), g));
    CHECK(a.empty());
    a = t.evaluate(at(s(4900), g));
    REQUIRE(a.size() == 1);
    CHECK(a[0].rule == "source_silent");
    CHECK(a[0].sev == severity::high);
    g.last_event_seen = s(4950);
    a = t.evaluate(at(s(4950), g));
    REQUIRE(a.size() == 1);
    CHECK(a[0].rule == "source_silent_recovered");

    // Server-side filtered Graph: an empty page is the normal case, not silence.
    tripwire t2(cfg());
    g.sees_whole_stream = false;
    g.last_event_seen = 0;
    CHECK(t2.evaluate(at(s(90000), g)).empty());
}

TEST_CASE("tripwire: a failing store silences the source alerts it causes", "[tripwire]") {
    tripwire t(cfg());
    source_snapshot g = healthy(s(2000));
    g.failing_since = s(2000);
    g.last_error = "store not writable: disk full";
    health_snapshot h = at(s(3000), g);
    h.store_failing_since = s(2001);
    h.store_error = "database or disk is full";
    auto a = t.evaluate(h);
    REQUIRE(a.size() == 1);
    CHECK(a[0].rule == "store_unwritable");
    h.store_failing_since = 0;
    h.sources[0] = healthy(s(3100));
    h.now = s(3100);
    a = t.evaluate(h);
    REQUIRE(a.size() == 1);
    CHECK(a[0].rule == "store_unwritable_recovered");
}

TEST_CASE("tripwire: lag and stuck consumers", "[tripwire]") {
    tripwire t(cfg());
    source_snapshot e = healthy(s(2000));
    e.name = "eventhub";
    e.lag = s(601);
    auto a = t.evaluate(at(s(2000), e));
    REQUIRE(a.size() == 1);
    CHECK(a[0].rule == "source_lagging");
    e.lag = s(10);
    e.stuck = true;
    CHECK(t.evaluate(at(s(2001), e)).empty());  // still bad (now stuck): same episode
    e.stuck = false;
    CHECK(t.evaluate(at(s(2002), e)).size() == 1);
}

TEST_CASE("tripwire: several break-glass sign-ins within minutes are summarised once",
          "[tripwire]") {
    tripwire t(cfg());
    CHECK_FALSE(t.note_breakglass_signin(s(1000), "bg-admin-1"));
    CHECK_FALSE(t.note_breakglass_signin(s(1100), "bg-admin-2"));
    auto a = t.note_breakglass_signin(s(1200), "bg-admin-1");
    REQUIRE(a);
    CHECK(a->rule == "breakglass_active_use");
    CHECK(a->summary.find("3 sign-ins") != std::string::npos);
    CHECK(a->summary.find("bg-admin-1, bg-admin-2") != std::string::npos);
    CHECK_FALSE(t.note_breakglass_signin(s(1300), "bg-admin-1"));  // same burst
    // Much later: a new burst is a new summary.
    CHECK_FALSE(t.note_breakglass_signin(s(9000), "bg-admin-1"));
    CHECK_FALSE(t.note_breakglass_signin(s(9001), "bg-admin-1"));
    CHECK(t.note_breakglass_signin(s(9002), "bg-admin-1"));
}

TEST_CASE("drill overdue counts from the last successful drill or the state's creation",
          "[tripwire]") {
    const auto ninety = std::chrono::seconds(90 * 86400);
    CHECK_FALSE(drill_overdue(s(100 * 86400), s(50 * 86400), std::nullopt, ninety));
    CHECK(drill_overdue(s(141 * 86400), s(50 * 86400), std::nullopt, ninety));
    CHECK_FALSE(drill_overdue(s(141 * 86400), s(50 * 86400), s(100 * 86400), ninety));
    CHECK(drill_overdue(s(191 * 86400), s(50 * 86400), s(100 * 86400), ninety));
    CHECK_FALSE(drill_overdue(s(999 * 86400), s(1), std::nullopt, std::chrono::seconds(0)));
}

TEST_CASE("tripwire: the silence clock restarts when a failing source comes back", "[tripwire]") {
    tripwire t(cfg());
    source_snapshot g = healthy(s(2000));
    g.failing_since = s(2000);
    g.last_event_seen = s(1990);
    t.evaluate(at(s(2100), g));  // failing: the error alert's business, not silence
    g.failing_since = 0;
    g.last_success = s(3000);
    auto a = t.evaluate(at(s(3000), g));  // back, but no record for 1010 s
    for (const auto& x : a)
        CHECK(x.rule != "source_silent");
    CHECK(t.evaluate(at(s(3899), g)).empty());
    a = t.evaluate(at(s(3900), g));
    REQUIRE(a.size() == 1);
    CHECK(a[0].rule == "source_silent");
}

TEST_CASE("tripwire: a failing store freezes source conditions instead of recovering them",
          "[tripwire]") {
    tripwire t(cfg());
    source_snapshot g = healthy(s(2000));
    g.failing_since = s(2000);
    g.last_error = "HTTP 503";
    REQUIRE(t.evaluate(at(s(2400), g)).size() == 1);  // source_error
    health_snapshot h = at(s(2500), g);
    h.store_failing_since = s(2450);
    h.store_error = "disk full";
    auto a = t.evaluate(h);
    REQUIRE(a.size() == 1);
    CHECK(a[0].rule == "store_unwritable");  // and no false source_error_recovered
    CHECK(t.firing().size() == 2);
}

TEST_CASE("tripwire: active use counts sign-in times so a caught-up backlog is no burst",
          "[tripwire]") {
    tripwire t(cfg());
    // Read together after an outage, but an hour apart when they happened.
    CHECK_FALSE(t.note_breakglass_signin(s(1000), "bg-admin-1"));
    CHECK_FALSE(t.note_breakglass_signin(s(4600), "bg-admin-1"));
    CHECK_FALSE(t.note_breakglass_signin(s(8200), "bg-admin-1"));
    // Late and out of order, but within ten minutes of the last one: a burst.
    CHECK_FALSE(t.note_breakglass_signin(s(8600), "bg-admin-2"));
    auto a = t.note_breakglass_signin(s(8300), "bg-admin-2");
    REQUIRE(a);
    CHECK(a->summary.find("3 sign-ins") != std::string::npos);
}

TEST_CASE(
    "tripwire: a source rebuilt by a reload has no verdict until it polls: firing "
    "conditions neither recover nor fire again",
    "[tripwire][reload]") {
    tripwire t(cfg());
    source_snapshot g = healthy(s(2000));
    g.failing_since = s(2000);
    g.last_error = "HTTP 503";
    REQUIRE(t.evaluate(at(s(2300), g)).size() == 1);  // source_error fires
    source_snapshot e = healthy(s(2300));
    e.name = "eventhub";
    e.lag = s(700);
    REQUIRE(t.evaluate(at(s(2301), e)).size() == 1);  // source_lagging fires

    // The reload: new thresholds, fresh sources that have not polled yet.
    tripwire_config c = cfg();
    c.source_error_threshold = std::chrono::seconds(60);
    t.reconfigure(c);
    source_snapshot fresh_g;
    fresh_g.name = "graph";
    source_snapshot fresh_e;
    fresh_e.name = "eventhub";
    CHECK(t.evaluate(at(s(2302), fresh_g)).empty());  // no false "recovered"
    CHECK(t.evaluate(at(s(2303), fresh_e)).empty());
    CHECK(t.is_firing("graph/error"));
    CHECK(t.is_firing("eventhub/lag"));

    // Still failing after the reload: the same episode, no second page.
    fresh_g.failing_since = s(2310);
    CHECK(t.evaluate(at(s(2400), fresh_g)).empty());
    // It polls: one recovery, with the first episode.
    auto r = t.evaluate(at(s(2401), healthy(s(2401))));
    REQUIRE(r.size() == 1);
    CHECK(r[0].rule == "source_error_recovered");
    CHECK(r[0].episode == std::to_string(s(2000)));

    // A reload that drops the Event Hub ends its conditions without an alert.
    auto dropped = t.keep_sources({"graph"});
    CHECK(dropped == std::vector<std::string>{"eventhub/lag"});
    CHECK_FALSE(t.is_firing("eventhub/lag"));
    CHECK(t.firing().empty());
}

TEST_CASE("tripwire: every condition has a key for the 0/1 metric", "[tripwire]") {
    CHECK(tripwire::condition_keys({"graph", "eventhub"}) ==
          std::vector<std::string>{"store/unwritable", "graph/error", "graph/silent", "graph/lag",
                                   "eventhub/error", "eventhub/silent", "eventhub/lag"});
    tripwire t(cfg());
    CHECK_FALSE(t.is_firing("graph/error"));
}
