// Component tests, issue 16 (Event Hub part): sources that never go blind in silence.
//
// Against the lab's emulator, which does what the service does at the edges: retention removes
// the oldest events (a receiver asking for an expired position silently starts at the oldest one
// left), a hub deleted and created again refuses a sequence number past its end
// (com.microsoft:argument-out-of-range), a receiver with a higher epoch takes a partition
// (amqp:link:stolen, with the service's texts naming the epochs), an expired CBS token closes the
// hub's links (amqp:unauthorized-access), and SASL offers "MSSBCBS PLAIN ANONYMOUS EXTERNAL".
//
// The back-offs here are the production ones where the old behaviour hid behind the fixture's
// short test back-offs (a stolen or unauthorised link cost the whole connection >= 60 s).
#include <chrono>
#include <string>
#include <vector>

#include "component/eventhub_fixture.hpp"
#include "core/alerting/tripwire.hpp"

using namespace glasswatch;
namespace asio = boost::asio;
using json = nlohmann::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

using test::eh_env;
using test::eh_fixture;
using test::hub_name;
using test::predicate;

// `n` bodies on `partition`, every one a watched sign-in; their event ids.
std::set<std::string> publish_watched(eh_env& e, int n, int partition) {
    std::set<std::string> ids;
    for (int i = 0; i < n; ++i) {
        std::string id;
        e.hub.publish(e.fx.body({{"user", i % 2 ? "bg1" : "bg2"}}, &id), partition);
        ids.insert(id);
    }
    return ids;
}

asio::awaitable<std::vector<core::alert>> alerts_of(eh_env& e, std::string rule) {
    auto read = [rule](io::store& s) {
        std::vector<core::alert> out;
        for (const auto& row : s.pending_all())
            if (row.a.rule == rule) out.push_back(row.a);
        return out;
    };
    co_return co_await e.rt.on_store(std::move(read));
}

json details_of(const core::alert& a) {
    const json d = json::parse(a.detail_json, nullptr, false);
    return d.is_object() && d.contains("details") ? d["details"] : json::object();
}

// Waits until `count` events_lost alerts exist; returns them.
asio::awaitable<std::vector<core::alert>> wait_events_lost(eh_env& e, std::size_t count,
                                                           std::chrono::milliseconds limit) {
    const auto deadline = steady::now() + limit;
    asio::steady_timer t(e.threads.main());
    std::vector<core::alert> got;
    while (steady::now() < deadline) {
        got = co_await alerts_of(e, "events_lost");
        if (got.size() >= count) break;
        t.expires_after(50ms);
        boost::system::error_code ec;
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return got;
}

void production_backoffs(eh_fixture& fx) {
    const io::eventhub_tuning prod;
    fx.tuning.backoff_initial = prod.backoff_initial;
    fx.tuning.backoff_max = prod.backoff_max;
    fx.tuning.busy_min = prod.busy_min;
    fx.tuning.long_backoff = prod.long_backoff;
}

// ---- 1. retention -----------------------------------------------------------------------------

// Stopped while retention removed events: partition 0 loses 5..11 (12..14 are still there),
// partition 1 loses everything after its checkpoint (1..3, nothing left to read). Both are one
// critical events_lost alert naming hub, partition, range and window; what is left is read.
asio::awaitable<void> truncated_while_stopped(eh_env& e) {
    auto first = publish_watched(e, 5, 0);
    auto first1 = publish_watched(e, 1, 1);
    first.insert(first1.begin(), first1.end());
    e.start_source();
    {
        const bool held = co_await e.wait_alerted(first, 10s);
        CHECK(held);
    }
    predicate all = [&e] { return e.messages_total() >= 6; };
    {
        const bool held = co_await e.wait(all, 5s);
        CHECK(held);
    }
    co_await e.stop_source();
    const auto cp0 = co_await e.checkpoint(0);
    REQUIRE(cp0);
    REQUIRE(cp0->sequence_number == 4);

    // While stopped: 10 more on partition 0 (5..14), 3 on partition 1 (1..3); retention keeps
    // 12.. on partition 0 and nothing on partition 1.
    publish_watched(e, 7, 0);              // 5..11: lost
    auto kept = publish_watched(e, 3, 0);  // 12..14: read
    publish_watched(e, 3, 1);              // 1..3: lost, the partition is empty
    e.hub.control({{"truncate", {{"partition", 0}, {"before", 12}}}});
    e.hub.control({{"truncate", {{"partition", 1}, {"before", 4}}}});

    e.start_source();
    {
        const bool held = co_await e.wait_alerted(kept, 10s);
        CHECK(held);
    }
    auto lost = co_await wait_events_lost(e, 2, 10s);
    REQUIRE(lost.size() == 2);
    std::map<std::string, json> by_partition;
    for (const auto& a : lost) {
        INFO(a.summary);
        CHECK(a.sev == core::severity::critical);
        const json d = details_of(a);
        by_partition[d.value("partition", "?")] = d;
        CHECK(d["hub"] == hub_name);
        CHECK(a.summary.find(hub_name) != std::string::npos);
        CHECK(a.summary.find("sign-in logs") != std::string::npos);  // what the SOC must do
    }
    REQUIRE(by_partition.count("0") == 1);
    REQUIRE(by_partition.count("1") == 1);
    CHECK(by_partition["0"]["first_missing_sequence"] == 5);
    CHECK(by_partition["0"]["last_missing_sequence"] == 11);
    CHECK(by_partition["0"]["missing_events"] == 7);
    CHECK(by_partition["0"]["cause"] == "retention");
    // The window: from the last event read before (4) to the first one read after (12).
    CHECK_FALSE(by_partition["0"]["window_from"].get<std::string>().empty());
    CHECK_FALSE(by_partition["0"]["window_to"].get<std::string>().empty());
    CHECK(by_partition["1"]["first_missing_sequence"] == 1);
    CHECK(by_partition["1"]["last_missing_sequence"] == 3);
    for (const auto& a : lost) {
        const json d = details_of(a);
        const std::string range = std::to_string(d["first_missing_sequence"].get<std::int64_t>()) +
                                  "-" +
                                  std::to_string(d["last_missing_sequence"].get<std::int64_t>());
        CHECK(a.summary.find(range) != std::string::npos);
    }
    // The checkpoint moved past the gap only with the alert (same transaction), and reading
    // goes on: the next event on partition 1 is read.
    auto later = publish_watched(e, 1, 1);
    {
        const bool held = co_await e.wait_alerted(later, 10s);
        CHECK(held);
    }
    const auto cp = co_await e.checkpoint(0);
    REQUIRE(cp);
    CHECK(cp->sequence_number == 14);
    co_await e.stop_source();
    // A restart does not page the same loss again.
    e.start_source();
    auto again = publish_watched(e, 1, 0);
    {
        const bool held = co_await e.wait_alerted(again, 10s);
        CHECK(held);
    }
    co_await e.stop_source();
    CHECK((co_await alerts_of(e, "events_lost")).size() == 2);
}

// ---- 5. checkpoint past the end ---------------------------------------------------------------

// The hub is deleted and created again while the daemon is stopped: the saved checkpoints (9)
// are past the new partitions' end. One events_lost alert per partition (cause "reset"), then
// the documented rule: read the partition from its beginning.
asio::awaitable<void> recreated_hub(eh_env& e) {
    auto first = publish_watched(e, 10, 0);
    auto first1 = publish_watched(e, 10, 1);
    first.insert(first1.begin(), first1.end());
    e.start_source();
    {
        const bool held = co_await e.wait_alerted(first, 10s);
        CHECK(held);
    }
    predicate all = [&e] { return e.messages_total() >= 20; };
    {
        const bool held = co_await e.wait(all, 5s);
        CHECK(held);
    }
    co_await e.stop_source();
    e.hub.control({{"recreate", true}});
    auto fresh = publish_watched(e, 3, 0);
    auto fresh1 = publish_watched(e, 3, 1);
    fresh.insert(fresh1.begin(), fresh1.end());
    const auto t0 = steady::now();
    e.start_source();
    {
        const bool held = co_await e.wait_alerted(fresh, 10s);
        CHECK(held);
    }
    std::printf("FIGURE eventhub recreated hub: events of the new hub alerted %.2f s after start\n",
                std::chrono::duration<double>(steady::now() - t0).count());
    auto lost = co_await wait_events_lost(e, 2, 5s);
    REQUIRE(lost.size() == 2);
    for (const auto& a : lost) {
        INFO(a.summary);
        const json d = details_of(a);
        CHECK(d["cause"] == "reset");
        CHECK(d["checkpoint_sequence"] == 9);
        CHECK(d["first_missing_sequence"] == 10);
        CHECK(d["resumed_at_sequence"] == 0);
        CHECK(a.summary.find("sign-in logs") != std::string::npos);
    }
    for (int p = 0; p < 2; ++p) {
        const auto cp = co_await e.checkpoint(p);
        REQUIRE(cp);
        CHECK(cp->sequence_number == 2);
    }
    co_await e.stop_source();
    // Never an endless retry: every attach after the reset was accepted.
    CHECK(e.hub.stats()["out_of_range"].get<int>() <= 2);
}

// ---- 2. partitions fail alone -----------------------------------------------------------------

// Partition 0 is taken by a receiver with a higher epoch for 5 s: partition 1 keeps flowing
// (alerted within 15 s, in fact at once), partition 0 re-attaches on its own back-off once the
// other owner has gone, and the connection is never made again.
asio::awaitable<void> stolen_for_five_seconds(eh_env& e) {
    auto first = publish_watched(e, 2, 0);
    auto first1 = publish_watched(e, 2, 1);
    first.insert(first1.begin(), first1.end());
    e.start_source();
    {
        const bool held = co_await e.wait_alerted(first, 10s);
        CHECK(held);
    }
    const auto connects = e.health().connects;
    e.hub.control({{"hold", {{"partition", 0}, {"epoch", 9}, {"seconds", 5}}}});
    const auto t0 = steady::now();
    auto during = publish_watched(e, 3, 1);
    {
        const bool held = co_await e.wait_alerted(during, 15s);
        CHECK(held);
    }
    const double other_s = std::chrono::duration<double>(steady::now() - t0).count();
    auto p0 = publish_watched(e, 2, 0);
    {
        const bool held = co_await e.wait_alerted(p0, 15s);
        CHECK(held);
    }
    const double own_s = std::chrono::duration<double>(steady::now() - t0).count();
    std::printf(
        "FIGURE eventhub partition 0 stolen for 5 s: partition 1 alerted after %.2f s, partition "
        "0 after %.2f s\n",
        other_s, own_s);
    CHECK(other_s < 15);
    CHECK(own_s < 15);
    CHECK(e.health().connects == connects);
    CHECK(e.health().stolen >= 1);
    co_await e.stop_source();
}

// Held by another owner past source_error_threshold: the source's health names the partition
// and the other epoch, and the tripwire turns that into source_error (and its recovery).
asio::awaitable<void> held_past_threshold(eh_env& e) {
    auto first = publish_watched(e, 1, 0);
    e.start_source();
    {
        const bool held = co_await e.wait_alerted(first, 10s);
        CHECK(held);
    }
    e.hub.control({{"hold", {{"partition", 0}, {"epoch", 12}, {"seconds", 3}}}});
    predicate failing = [&e] { return e.health().common.failing_since != 0; };
    {
        const bool held = co_await e.wait(failing, 5s);
        CHECK(held);
    }
    // Partition 1 is not affected meanwhile.
    auto p1 = publish_watched(e, 1, 1);
    {
        const bool held = co_await e.wait_alerted(p1, 5s);
        CHECK(held);
    }
    const auto& h = e.health();
    INFO(h.common.last_error);
    CHECK(h.common.last_error.find("partition 0") != std::string::npos);
    CHECK(h.common.last_error.find("epoch 12") != std::string::npos);
    core::tripwire_config tc;
    tc.source_error_threshold = std::chrono::seconds(1);
    core::tripwire tw(tc);
    auto snap = [&e] {
        core::health_snapshot s;
        s.now = io::wall_now();
        core::source_snapshot src;
        src.name = "eventhub";
        src.last_success = e.health().common.last_success;
        src.failing_since = e.health().common.failing_since;
        src.last_error = e.health().common.last_error;
        s.sources.push_back(src);
        return s;
    };
    asio::steady_timer t(e.threads.main());
    t.expires_after(1200ms);
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    auto fired = tw.evaluate(snap());
    REQUIRE(fired.size() == 1);
    CHECK(fired[0].rule == "source_error");
    CHECK(fired[0].summary.find("partition 0") != std::string::npos);
    predicate recovered = [&e] { return e.health().common.failing_since == 0; };
    {
        const bool held = co_await e.wait(recovered, 15s);
        CHECK(held);
    }
    auto after = tw.evaluate(snap());
    REQUIRE(after.size() == 1);
    CHECK(after[0].rule == "source_error_recovered");
    co_await e.stop_source();
}

// ---- 3. tokens renew, not fail ----------------------------------------------------------------

// Every CBS token expires on the live links (the service closes them with
// amqp:unauthorized-access): the source puts a new token and re-attaches at once.
asio::awaitable<void> token_expires(eh_env& e) {
    auto first = publish_watched(e, 1, 0);
    e.start_source();
    {
        const bool held = co_await e.wait_alerted(first, 10s);
        CHECK(held);
    }
    const auto connects = e.health().connects;
    e.hub.control({{"expire_tokens", true}});
    const auto t0 = steady::now();
    auto right_after = publish_watched(e, 2, 0);
    auto right_after1 = publish_watched(e, 2, 1);
    right_after.insert(right_after1.begin(), right_after1.end());
    {
        const bool held = co_await e.wait_alerted(right_after, 15s);
        CHECK(held);
    }
    const double s = std::chrono::duration<double>(steady::now() - t0).count();
    std::printf("FIGURE eventhub token expired on live links: alerted again after %.2f s\n", s);
    CHECK(s < 15);
    CHECK(e.health().connects == connects);
    co_await e.stop_source();
    CHECK(e.hub.stats()["tokens_expired"].get<int>() >= 2);
}

// ---- 4. SASL PLAIN over the daemon's own TLS ----------------------------------------------------

asio::awaitable<void> plain_over_amqps(eh_env& e) {
    auto ids = publish_watched(e, 2, 0);
    e.start_source();
    {
        const bool held = co_await e.wait_alerted(ids, 10s);
        CHECK(held);
    }
    CHECK(e.health().token_puts == 0);
    co_await e.stop_source();
}

}  // namespace

TEST_CASE("eventhub gaps: retention while stopped raises events_lost naming the range",
          "[eventhub][gaps]") {
    eh_fixture fx;
    fx.run(truncated_while_stopped);
}

TEST_CASE("eventhub gaps: a checkpoint past the end (hub re-created) alerts, then reading resumes",
          "[eventhub][gaps]") {
    eh_fixture fx;
    fx.run(recreated_hub);
}

TEST_CASE("eventhub gaps: partition 0 stolen for 5 s - the other partitions alerted within 15 s",
          "[eventhub][gaps]") {
    eh_fixture fx;
    fx.cfg.eventhub.epoch = 7;
    production_backoffs(fx);
    fx.run(stolen_for_five_seconds);
}

TEST_CASE("eventhub gaps: a partition held by another owner is a source error naming it",
          "[eventhub][gaps]") {
    eh_fixture fx;
    fx.run(held_past_threshold);
}

TEST_CASE("eventhub gaps: an expired CBS token renews and re-attaches - alerted within 15 s",
          "[eventhub][gaps]") {
    eh_fixture fx;
    production_backoffs(fx);
    fx.run(token_expires);
    CHECK(fx.final_stats["connections"].get<int>() == 1);
}

TEST_CASE("eventhub gaps: SASL PLAIN over AMQPS connects and alerts", "[eventhub][gaps]") {
    eh_fixture fx;
    fx.cfg.eventhub.sasl = core::eventhub_sasl::plain;
    fx.run(plain_over_amqps);
    INFO(fx.final_stats.dump());
    CHECK(fx.final_stats["sasl_plain"].get<int>() >= 1);
    CHECK(fx.final_stats["tokens_accepted"].get<int>() == 0);
}

namespace {

// A refused SASL PLAIN (wrong key) is an error at once naming what the server offered, never a
// phase timeout, and never the key.
asio::awaitable<void> plain_wrong_key(eh_env& e) {
    e.start_source();
    predicate failed = [&e] { return e.health().failures >= 2; };
    {
        const bool held = co_await e.wait(failed, 10s);
        CHECK(held);
    }
    const auto& h = e.health();
    INFO(h.common.last_error);
    CHECK(h.common.last_error.find("[MSSBCBS PLAIN ANONYMOUS EXTERNAL]") != std::string::npos);
    CHECK(h.common.last_error.find(e.fx.key) == std::string::npos);
    CHECK(h.phase_timeouts == 0);
    CHECK(h.connects == 0);
    CHECK(h.auth_refused >= 1);
    co_await e.stop_source();
}

}  // namespace

TEST_CASE("eventhub gaps: a refused SASL PLAIN names the offered mechanisms and never the key",
          "[eventhub][gaps]") {
    eh_fixture fx;
    fx.cfg.eventhub.sasl = core::eventhub_sasl::plain;
    fx.key = "d3Jvbmcta2V5LWZvci10aGUtZXZlbnQtaHViLWVtdWxhdG9y";
    fx.run(plain_wrong_key);
    CHECK(fx.final_stats["sasl_refused"].get<int>() >= 1);
    CHECK(fx.final_stats["sasl_plain"].get<int>() == 0);
}
