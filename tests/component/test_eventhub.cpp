// Component tests: the Event Hub source (io/eventhub_source) against the lab's Event Hubs
// emulator (lab/lab_eventhub) over real sockets on loopback: AMQPS with a throwaway CA,
// AMQP over WebSockets, an HTTP CONNECT proxy. Records come from the lab's record generator in
// diagnostic-settings form; alerts and checkpoints go through the real store.
//
// Each test is a scenario coroutine on the main thread (the source and the emulator share it,
// as the daemon's sources share its loop); waits poll the observable state with a deadline.
#include <proton/annotation_key.hpp>
#include <proton/binary.hpp>
#include <proton/message.hpp>
#include <proton/symbol.hpp>

#include "component/eventhub_fixture.hpp"
#include "io/sources/eventhub_message.hpp"

using namespace glasswatch;
namespace asio = boost::asio;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

using test::eh_env;
using test::eh_fixture;
using test::hub_name;
using test::predicate;
using test::sas_key;

// ---- scenarios ----------------------------------------------------------------------------------

asio::awaitable<void> sas_accepted(eh_env& e) {
    auto& fx = e.fx;
    std::set<std::string> watched;
    std::string id;
    for (int i = 0; i < 10; ++i)
        e.hub.publish(fx.body({{"user", "admin"}}));
    e.hub.publish(fx.body({{"user", "bg1"}, {"type", "interactive"}}, &id), 0);
    watched.insert(id);
    e.hub.publish(fx.body({{"user", "bg2"},
                           {"success", false},
                           {"error_code", 50126},
                           {"type", "nonInteractive"}},
                          &id),
                  1);
    watched.insert(id);
    e.hub.publish(fx.body({{"activity", "Reset user password"}, {"target", "bg1"}}, &id));
    watched.insert(id);
    e.start_source();
    const bool ok = co_await e.wait_alerted(watched, 10s);
    CHECK(ok);
    predicate all_read = [&e] { return e.messages_total() >= 13; };
    {
        const bool held = co_await e.wait(all_read, 5s);
        CHECK(held);
    }
    // Exactly the watched events raised alerts; checkpoints cover the last message per partition.
    const auto got = co_await e.alerted();
    CHECK(got == watched);
    for (int p = 0; p < 2; ++p) {
        auto cp = co_await e.checkpoint(p);
        REQUIRE(cp);
        CHECK(cp->sequence_number == e.hub.events(p).back().sequence_number);
        CHECK(cp->offset == e.hub.events(p).back().offset);
    }
    CHECK(e.health().phase == io::connection_phase::running);
    CHECK(e.health().partitions.size() == 2);
    co_await e.stop_source();
}

}  // namespace

TEST_CASE("eventhub: SAS token accepted - break-glass records alerted with checkpoints",
          "[eventhub]") {
    eh_fixture fx;
    fx.run(sas_accepted);
    INFO(fx.final_stats.dump());
    CHECK(fx.final_stats["tokens_accepted"].get<int>() >= 1);
    CHECK(fx.final_stats["tokens_refused"].get<int>() == 0);
    CHECK(fx.final_stats["receivers_attached"].get<int>() >= 0);
    // The AMQP hostname is the namespace, not the address we connected to.
    CHECK(fx.final_stats["hostnames"][0] == fx.ns_host);
    // First start: both partitions read from now - start_lookback by enqueued time.
    for (const auto& f : fx.final_stats["filters"])
        CHECK(f["expression"].get<std::string>().rfind("amqp.annotation.x-opt-enqueued-time > '",
                                                       0) == 0);
}

namespace {}  // namespace

namespace {

// A refused token: no receiver is ever attached, the failure is classified at once, and
// neither the key nor a token appears in what the source reports.
asio::awaitable<void> token_refused(eh_env& e) {
    e.hub.publish(e.fx.body({{"user", "bg1"}}));
    e.start_source();
    predicate refused = [&e] { return e.health().auth_refused >= 2; };
    {
        const bool held = co_await e.wait(refused, 10s);
        CHECK(held);
    }
    CHECK(e.health().connects == 0);
    CHECK(e.health().common.failing_since != 0);
    CHECK(e.health().common.last_error.find("refused") != std::string::npos);
    CHECK(e.health().common.last_error.find(sas_key) == std::string::npos);
    CHECK(e.health().common.last_error.find("SharedAccessSignature") == std::string::npos);
    const auto none = co_await e.alerted();
    CHECK(none.empty());
    co_await e.stop_source();
}

}  // namespace

TEST_CASE("eventhub: a token signed with the wrong key is refused", "[eventhub]") {
    eh_fixture fx;
    fx.key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMDA=";
    fx.run(token_refused);
    INFO(fx.final_stats.dump());
    CHECK(fx.final_stats["tokens_accepted"].get<int>() == 0);
    CHECK(fx.final_stats["token_verdicts"][0] == "signature does not match");
    CHECK(fx.final_stats["attaches"].get<int>() == 0);
}

TEST_CASE("eventhub: an expired SharedAccessSignature is refused", "[eventhub]") {
    eh_fixture fx;
    fx.expired_signature = true;
    fx.run(token_refused);
    INFO(fx.final_stats.dump());
    CHECK(fx.final_stats["tokens_accepted"].get<int>() == 0);
    CHECK(fx.final_stats["token_verdicts"][0] == "token expired");
}

namespace {

// Publishes `n` bodies (every `watch_every`-th a bg1 sign-in) and returns the watched ids.
std::set<std::string> publish_many(eh_env& e, int n, int watch_every = 5) {
    std::set<std::string> ids;
    for (int i = 0; i < n; ++i) {
        std::string id;
        const bool watched = watch_every > 0 && i % watch_every == 0;
        e.hub.publish(e.fx.body({{"user", watched ? "bg1" : "admin"}}, &id));
        if (watched) ids.insert(id);
    }
    return ids;
}

std::size_t published(eh_env& e) {
    return e.hub.events(0).size() + e.hub.events(1).size();
}

// Resume after a restart: the second source starts after the first one's checkpoints, so the
// two together read every message exactly once.
asio::awaitable<void> resume_after_restart(eh_env& e) {
    auto ids = publish_many(e, 40);
    e.start_source();
    predicate first = [&e] { return e.messages_total() == 40; };
    {
        const bool held = co_await e.wait(first, 10s);
        CHECK(held);
    }
    {
        const bool held = co_await e.wait_alerted(ids, 5s);
        CHECK(held);
    }
    co_await e.stop_source();
    const auto cp0 = co_await e.checkpoint(0);
    const auto cp1 = co_await e.checkpoint(1);
    REQUIRE(cp0);
    REQUIRE(cp1);
    // While the daemon is down, more events arrive.
    auto more = publish_many(e, 30);
    e.start_source();
    predicate all = [&e] { return e.messages_total() >= 70; };
    {
        const bool held = co_await e.wait(all, 10s);
        CHECK(held);
    }
    {
        const bool held = co_await e.wait_alerted(more, 5s);
        CHECK(held);
    }
    co_await e.stop_source();
    CHECK(e.messages_total() == published(e));  // zero gaps, zero duplicates
    const std::string expected0 =
        "amqp.annotation.x-opt-sequence-number > '" + std::to_string(cp0->sequence_number) + "'";
    const std::string expected1 =
        "amqp.annotation.x-opt-sequence-number > '" + std::to_string(cp1->sequence_number) + "'";
    const auto st = e.hub.stats();
    std::set<std::string> exprs;
    for (const auto& f : st["filters"])
        exprs.insert(f["expression"].get<std::string>());
    CHECK(exprs.count(expected0) == 1);
    CHECK(exprs.count(expected1) == 1);
    const auto all_alerts = co_await e.alerted();
    CHECK(all_alerts.size() == ids.size() + more.size());
}

}  // namespace

TEST_CASE("eventhub: resume from the checkpoint after a restart - zero gaps and zero duplicates",
          "[eventhub]") {
    eh_fixture fx;
    fx.run(resume_after_restart);
}

namespace {

// First start: only events enqueued after now - start_lookback are read.
asio::awaitable<void> first_start(eh_env& e) {
    const std::int64_t now_ms = io::wall_now() / 1000;
    std::string old_id, new_id;
    e.hub.publish(e.fx.body({{"user", "bg1"}}, &old_id), 0, now_ms - 3 * 3600 * 1000);
    e.hub.publish(e.fx.body({{"user", "admin"}}), 0, now_ms - 2 * 3600 * 1000);
    e.hub.publish(e.fx.body({{"user", "bg2"}}, &new_id), 0, now_ms - 30 * 60 * 1000);
    e.hub.publish(e.fx.body({{"user", "admin"}}), 1, now_ms - 10 * 60 * 1000);
    e.start_source();
    std::set<std::string> want{new_id};
    {
        const bool held = co_await e.wait_alerted(want, 10s);
        CHECK(held);
    }
    predicate two = [&e] { return e.messages_total() >= 2; };
    {
        const bool held = co_await e.wait(two, 5s);
        CHECK(held);
    }
    co_await e.stop_source();
    CHECK(e.messages_total() == 2);
    const auto got = co_await e.alerted();
    CHECK(got.count(old_id) == 0);
    CHECK(got.count(new_id) == 1);
}

}  // namespace

TEST_CASE("eventhub: first start reads from now minus start_lookback by enqueued time",
          "[eventhub]") {
    eh_fixture fx;
    fx.cfg.eventhub.start_lookback = std::chrono::seconds(3600);
    fx.run(first_start);
    const std::int64_t now_ms = io::wall_now() / 1000;
    for (const auto& f : fx.final_stats["filters"]) {
        auto pos = core::parse_selector_expression(f["expression"].get<std::string>());
        REQUIRE(pos);
        CHECK(pos->what == core::start_position::kind::enqueued_time);
        CHECK(std::llabs(pos->enqueued_ms - (now_ms - 3600 * 1000)) < 60 * 1000);
    }
}

namespace {

// A fault in the middle of the stream: the source reconnects (after a back-off) and resumes
// from its last commit. Every message is read; duplicates are bounded by what was delivered
// but not yet committed when the fault hit, and none of them pages twice.
asio::awaitable<void> reconnect_after(eh_env& e, const std::string& fault) {
    auto ids = publish_many(e, 20);
    e.start_source();
    predicate first = [&e] { return e.messages_total() >= 20; };
    {
        const bool held = co_await e.wait(first, 10s);
        CHECK(held);
    }
    const auto connects = e.health().connects;
    const auto reattaches = e.health().reattaches;
    if (fault == "drop") e.hub.drop_connections();
    if (fault == "detach") e.hub.detach_links("amqp:link:detach-forced");
    if (fault == "steal") e.hub.detach_links("amqp:link:stolen");
    if (fault == "busy") {
        e.hub.busy_attaches(2);
        e.hub.drop_connections();
    }
    // A link fault is its partition's: the links attach again on the same connection.
    const bool link_fault = fault == "detach" || fault == "steal";
    predicate back = [&e, connects, reattaches, link_fault] {
        if (link_fault)
            return e.health().reattaches >= reattaches + 2 && e.health().all_attached() &&
                   e.health().connects == connects;
        return e.health().connects > connects && e.health().phase == io::connection_phase::running;
    };
    {
        const bool held = co_await e.wait(back, 10s);
        CHECK(held);
    }
    auto more = publish_many(e, 20);
    ids.insert(more.begin(), more.end());
    {
        const bool held = co_await e.wait_alerted(ids, 10s);
        CHECK(held);
    }
    predicate all = [&e] { return e.messages_total() >= 40; };
    {
        const bool held = co_await e.wait(all, 10s);
        CHECK(held);
    }
    CHECK((link_fault ? e.health().partition_failures : e.health().failures) >= 1);
    if (fault == "detach") CHECK(e.health().detached >= 1);
    if (fault == "steal") CHECK(e.health().stolen >= 1);
    if (fault == "busy") CHECK(e.health().busy >= 1);
    CHECK(e.health().common.failing_since == 0);  // recovered
    co_await e.stop_source();
    // Everything committed before the fault was not read again.
    CHECK(e.messages_total() <= published(e) + e.fx.cfg.eventhub.credit * 2);
    const auto all_alerts = co_await e.alerted();
    CHECK(all_alerts.size() == ids.size());
}

asio::awaitable<void> after_drop(eh_env& e) {
    co_await reconnect_after(e, "drop");
}
asio::awaitable<void> after_detach(eh_env& e) {
    co_await reconnect_after(e, "detach");
}
asio::awaitable<void> after_steal(eh_env& e) {
    co_await reconnect_after(e, "steal");
}
asio::awaitable<void> after_busy(eh_env& e) {
    co_await reconnect_after(e, "busy");
}

}  // namespace

TEST_CASE("eventhub: reconnects after a connection drop", "[eventhub]") {
    eh_fixture fx;
    fx.run(after_drop);
    CHECK(fx.final_stats["connections"].get<int>() >= 2);
}

TEST_CASE("eventhub: reconnects after a forced link detach", "[eventhub]") {
    eh_fixture fx;
    fx.run(after_detach);
}

TEST_CASE("eventhub: reconnects after the link is stolen by an epoch receiver", "[eventhub]") {
    eh_fixture fx;
    fx.cfg.eventhub.epoch = 7;
    fx.run(after_steal);
    INFO(fx.final_stats.dump());
    // The epoch went out as the com.microsoft:epoch link property.
    for (const auto& f : fx.final_stats["filters"])
        CHECK(f["epoch"].get<std::int64_t>() == 7);
}

TEST_CASE("eventhub: server-busy on attach backs off and recovers", "[eventhub]") {
    eh_fixture fx;
    fx.run(after_busy);
    CHECK(fx.final_stats["attaches_refused"].get<int>() >= 1);
}

namespace {

// The service detaches a quiet link after its idle timeout; the source re-attaches and the
// next event still arrives.
asio::awaitable<void> idle_detach(eh_env& e) {
    e.start_source();
    predicate detached = [&e] { return e.health().detached >= 1; };
    {
        const bool held = co_await e.wait(detached, 10s);
        CHECK(held);
    }
    predicate back = [&e] { return e.health().phase == io::connection_phase::running; };
    {
        const bool held = co_await e.wait(back, 10s);
        CHECK(held);
    }
    std::string id;
    e.hub.publish(e.fx.body({{"user", "bg2"}}, &id));
    std::set<std::string> want{id};
    {
        const bool held = co_await e.wait_alerted(want, 10s);
        CHECK(held);
    }
    co_await e.stop_source();
}

}  // namespace

TEST_CASE("eventhub: an idle link detached by the service is re-attached", "[eventhub]") {
    eh_fixture fx;
    fx.hub_opts.link_idle_timeout = 300ms;
    fx.run(idle_detach);
}

namespace {

asio::awaitable<void> simple_stream(eh_env& e) {
    auto ids = publish_many(e, 12, 3);
    e.start_source();
    {
        const bool held = co_await e.wait_alerted(ids, 10s);
        CHECK(held);
    }
    predicate all = [&e] { return e.messages_total() >= 12; };
    {
        const bool held = co_await e.wait(all, 5s);
        CHECK(held);
    }
    co_await e.stop_source();
    CHECK(e.messages_total() == 12);
}

}  // namespace

TEST_CASE("eventhub: AMQP over WebSockets (AMQPWSB10)", "[eventhub]") {
    eh_fixture fx;
    fx.use_websocket = true;
    fx.run(simple_stream);
    CHECK(fx.final_stats["tokens_accepted"].get<int>() >= 1);
}

TEST_CASE("eventhub: AMQP over WebSockets through an HTTP CONNECT proxy", "[eventhub]") {
    eh_fixture fx;
    fx.use_websocket = true;
    fx.use_proxy = true;
    fx.run(simple_stream);
    REQUIRE_FALSE(fx.proxy_targets.empty());
    CHECK(fx.proxy_targets.front().rfind("127.0.0.1:", 0) == 0);
}

TEST_CASE("eventhub: AMQPS through an HTTP CONNECT proxy", "[eventhub]") {
    eh_fixture fx;
    fx.use_proxy = true;
    fx.run(simple_stream);
    REQUIRE_FALSE(fx.proxy_targets.empty());
}

namespace {

asio::awaitable<void> proxy_refused(eh_env& e) {
    e.start_source();
    predicate failed = [&e] { return e.health().failures >= 2; };
    {
        const bool held = co_await e.wait(failed, 10s);
        CHECK(held);
    }
    CHECK(e.health().common.last_error.find("refused CONNECT") != std::string::npos);
    co_await e.stop_source();
}

}  // namespace

TEST_CASE("eventhub: a proxy refusing CONNECT is reported", "[eventhub]") {
    eh_fixture fx;
    fx.use_proxy = true;
    fx.proxy_refuse = 403;
    fx.run(proxy_refused);
    CHECK(fx.final_stats["connections"].get<int>() == 0);
}

namespace {

// A partition that stops delivering while the service keeps accepting events is reported as
// stuck (health + log), and clears once it moves again.
asio::awaitable<void> stuck_partition(eh_env& e) {
    e.start_source();
    predicate up = [&e] { return e.health().phase == io::connection_phase::running; };
    {
        const bool held = co_await e.wait(up, 10s);
        CHECK(held);
    }
    e.hub.stall(0, true);
    for (int i = 0; i < 3; ++i)
        e.hub.publish(e.fx.body({{"user", "admin"}}), 0);
    e.hub.publish(e.fx.body({{"user", "admin"}}), 1);
    predicate stuck = [&e] { return e.health().stuck_partitions() == 1; };
    {
        const bool held = co_await e.wait(stuck, 10s);
        CHECK(held);
    }
    for (const auto& p : e.health().partitions) {
        CHECK(p.stuck == (p.partition == "0"));
        if (p.partition == "0") CHECK(p.last_enqueued_sequence == 2);
    }
    e.hub.stall(0, false);
    predicate moving = [&e] { return e.health().stuck_partitions() == 0; };
    {
        const bool held = co_await e.wait(moving, 10s);
        CHECK(held);
    }
    CHECK(e.messages_total() == 4);
    co_await e.stop_source();
}

}  // namespace

TEST_CASE("eventhub: a stuck partition is reported", "[eventhub]") {
    eh_fixture fx;
    fx.run(stuck_partition);
}

namespace {

// Throughput and the credit bound: 2000 messages drained with credit 100.
asio::awaitable<void> drain(eh_env& e) {
    publish_many(e, 2000, 0);
    const auto t0 = std::chrono::steady_clock::now();
    e.start_source();
    predicate all = [&e] { return e.messages_total() >= 2000; };
    {
        const bool held = co_await e.wait(all, 60s);
        CHECK(held);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("eventhub drain: 2000 messages in %.2f s (%.0f msg/s, %llu batches)\n", s, 2000 / s,
                static_cast<unsigned long long>(e.health().batches));
    CHECK(e.health().max_uncommitted <= 200);
    co_await e.stop_source();
    CHECK(e.messages_total() == 2000);
}

}  // namespace

TEST_CASE("eventhub: drains a backlog in batches bounded by credit", "[eventhub]") {
    eh_fixture fx;
    fx.cfg.eventhub.credit = 100;
    fx.run(drain);
    // Credit is given back only after a commit, so the consumer never holds more than
    // credit (100) per partition uncommitted (checked above). On the broker side a delivery
    // may still count as unaccepted for one more round, because Proton writes the flow frame
    // before the dispositions of the same flush: at most 2 x credit per partition.
    CHECK(fx.final_stats["deliveries"].get<int>() == 2000);
    CHECK(fx.final_stats["max_unaccepted"].get<int>() <= 400);
}

namespace {

// sasl = "plain" never falls back to ANONYMOUS: against a broker that does not offer PLAIN the
// connection fails in SASL at once (not after a phase timeout) with an error naming what the
// server offered, and is retried; no token is put and the key is not in the error.
asio::awaitable<void> plain_refused(eh_env& e) {
    e.hub.control({{"sasl_mechanisms", "MSSBCBS ANONYMOUS EXTERNAL"}});
    e.start_source();
    predicate failed = [&e] { return e.health().failures >= 2; };
    {
        const bool held = co_await e.wait(failed, 10s);
        CHECK(held);
    }
    INFO(e.health().common.last_error);
    CHECK(e.health().common.last_error.find("[MSSBCBS ANONYMOUS EXTERNAL]") != std::string::npos);
    CHECK(e.health().common.last_error.find("sources.eventhub.sasl") != std::string::npos);
    CHECK(e.health().phase_timeouts == 0);
    CHECK(e.health().connects == 0);
    CHECK(e.health().token_puts == 0);
    CHECK(e.health().common.last_error.find(sas_key) == std::string::npos);
    co_await e.stop_source();
}

}  // namespace

TEST_CASE("eventhub: SASL PLAIN is offered alone and never falls back", "[eventhub]") {
    eh_fixture fx;
    fx.cfg.eventhub.sasl = core::eventhub_sasl::plain;
    fx.run(plain_refused);
    CHECK(fx.final_stats["tokens_accepted"].get<int>() == 0);
    CHECK(fx.final_stats["sasl_plain"].get<int>() == 0);
    CHECK(fx.final_stats["attaches"].get<int>() == 0);
}

namespace {

// A broker that stops answering (no frames, not even heartbeats) with the socket still open:
// the source's idle timeout notices, and it reconnects to a fresh connection.
asio::awaitable<void> silent_peer(eh_env& e) {
    auto ids = publish_many(e, 5, 5);
    e.start_source();
    {
        const bool held = co_await e.wait_alerted(ids, 10s);
        CHECK(held);
    }
    const auto connects = e.health().connects;
    e.hub.freeze_connections();
    predicate back = [&e, connects] { return e.health().connects > connects; };
    {
        const bool held = co_await e.wait(back, 15s);
        CHECK(held);
    }
    auto more = publish_many(e, 5, 5);
    {
        const bool held = co_await e.wait_alerted(more, 10s);
        CHECK(held);
    }
    co_await e.stop_source();
    INFO(e.past.back().common.last_error);
    CHECK(e.past.back().failures >= 1);
}

}  // namespace

TEST_CASE("eventhub: a silent broker is detected by the idle timeout", "[eventhub]") {
    eh_fixture fx;
    fx.cfg.eventhub.idle_timeout = 1s;
    fx.run(silent_peer);
}

namespace {

// Tokens are put again before they expire, on the same connection, without disturbing the
// receivers.
asio::awaitable<void> token_renewal(eh_env& e) {
    e.start_source();
    predicate renewed = [&e] { return e.health().token_puts >= 3; };
    {
        const bool held = co_await e.wait(renewed, 15s);
        CHECK(held);
    }
    std::string id;
    e.hub.publish(e.fx.body({{"user", "bg1"}}, &id));
    std::set<std::string> want{id};
    {
        const bool held = co_await e.wait_alerted(want, 10s);
        CHECK(held);
    }
    CHECK(e.health().connects == 1);
    CHECK(e.health().failures == 0);
    co_await e.stop_source();
}

}  // namespace

TEST_CASE("eventhub: the SAS token is renewed before it expires on the same connection",
          "[eventhub]") {
    eh_fixture fx;
    fx.tuning.token_ttl = 2s;  // renewed every 1.8 s
    fx.run(token_renewal);
    CHECK(fx.final_stats["tokens_accepted"].get<int>() >= 3);
    CHECK(fx.final_stats["connections"].get<int>() == 1);
}

// Found by tests/fuzz/fuzz_amqp_body: a message-annotations section that is not a map (here a
// short) made Proton throw out of the message handler; Proton swallowed it, so the message was
// dropped uncounted and its credit never returned. Its body must still be read.
TEST_CASE("eventhub: a message whose annotations are not a map still yields its body",
          "[eventhub][fuzz]") {
    const std::string body = R"({"records":[]})";
    std::string wire("\x00\x53\x72\x61\x64\x6e", 6);  // message-annotations: short
    wire += std::string("\x00\x53\x75\xa0", 4) + char(body.size()) + body;  // data section
    proton::message m;
    m.decode(std::vector<char>(wire.begin(), wire.end()));
    io::eventhub_message em;
    REQUIRE_NOTHROW(em = io::read_eventhub_message(m));
    CHECK(em.body_ok);
    CHECK(em.body == body);
    CHECK_FALSE(core::usable(em.pos));
}

TEST_CASE("eventhub: message bodies are read whole from data sections and strings", "[eventhub]") {
    // Every byte value, a size above one AMQP frame, and the annotations that come with it.
    std::string body(300 * 1024, '\0');
    for (std::size_t i = 0; i < body.size(); ++i)
        body[i] = static_cast<char>(i * 131 % 256);
    proton::message m;
    m.body(proton::binary(body.begin(), body.end()));
    m.message_annotations().put(proton::annotation_key(proton::symbol("x-opt-sequence-number")),
                                std::int64_t{42});
    std::vector<char> wire;
    m.encode(wire);
    proton::message got;
    got.decode(wire);
    io::eventhub_message em = io::read_eventhub_message(got);
    CHECK(em.body_ok);
    CHECK(em.body.size() == body.size());
    CHECK(em.body == body);
    CHECK(em.pos.sequence_number == 42);

    proton::message text;
    text.body(std::string(R"({"records":[]})"));
    em = io::read_eventhub_message(text);
    CHECK(em.body_ok);
    CHECK(em.body == R"({"records":[]})");

    proton::message neither;
    neither.body(std::int64_t{7});
    em = io::read_eventhub_message(neither);
    CHECK_FALSE(em.body_ok);
}

namespace {

// Dialled by IP address, verified by the namespace's name (a private endpoint).
asio::awaitable<void> by_ip_verified_by_name(eh_env& e) {
    std::string id;
    e.hub.publish(e.fx.body({{"user", "bg1"}, {"type", "interactive"}}, &id), 0);
    e.start_source();
    // (A named local: GCC 12 cannot take a braced temporary inside co_await.)
    std::set<std::string> watched{id};
    const bool ok = co_await e.wait_alerted(watched, 10s);
    CHECK(ok);
}

// The same certificate without tls_server_name: the IP is not in it, the handshake fails and
// the error says why.
asio::awaitable<void> by_ip_unverifiable(eh_env& e) {
    e.start_source();
    predicate failed = [&e] {
        return e.health().common.last_error.find("certificate verify failed") != std::string::npos;
    };
    const bool seen = co_await e.wait(failed, 10s);
    INFO(e.health().common.last_error);
    CHECK(seen);
}

}  // namespace

TEST_CASE("eventhub: tls_server_name - dial an IP, verify the namespace's certificate",
          "[eventhub][tls]") {
    for (bool named : {true, false}) {
        DYNAMIC_SECTION((named ? "with" : "without") << " tls_server_name") {
            eh_fixture fx;
            // A certificate for the namespace only, as the service presents behind a private IP.
            fx.pki = test::test_pki::generate({fx.ns_host});
            fx.pki.write_ca((fx.dir / "ca.pem").string());
            fx.hub_opts.cert_pem = fx.pki.server_cert_pem;
            fx.hub_opts.key_pem = fx.pki.server_key_pem;
            if (named) fx.cfg.eventhub.tls_server_name = fx.ns_host;
            fx.run(named ? by_ip_verified_by_name : by_ip_unverifiable);
        }
    }
}
