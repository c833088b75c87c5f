// The Event Hub session machine (core/protocol/eventhub_session.hpp), driven through episodes the
// way the Proton driver drives it: events in, actions out, time and jitter injected. Each test
// narrates one episode: a normal start, a token that expires on a live link, a stolen partition,
// fatal and unauthorized errors, a position retention removed, back-off growth and its caps, a
// stuck partition.
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/protocol/eventhub_session.hpp"

using namespace glasswatch::core;
using namespace std::chrono_literals;
using ehs = eventhub_session;

namespace {

constexpr const char* hub = "signins";
constexpr const char* audience = "sb://contoso.servicebus.windows.net/signins";
const std::string key0 = "eventhub:signins:0";
const std::string key1 = "eventhub:signins:1";

template <class T>
std::vector<T> all_of(const ehs::actions& acts) {
    std::vector<T> out;
    for (const auto& a : acts)
        if (const T* t = std::get_if<T>(&a)) out.push_back(*t);
    return out;
}

template <class T>
std::size_t count_of(const ehs::actions& acts) {
    return all_of<T>(acts).size();
}

// The one action of type T (the test fails when there is not exactly one).
template <class T>
T only(const ehs::actions& acts) {
    const auto v = all_of<T>(acts);
    REQUIRE(v.size() == 1);
    return v.front();
}

eventhub_reply ok_reply() {
    eventhub_reply r;
    r.status = 200;
    r.description = "OK";
    return r;
}

eventhub_reply status_reply(std::int64_t status, std::string description) {
    eventhub_reply r;
    r.status = status;
    r.description = std::move(description);
    return r;
}

eventhub_reply hub_reply(std::vector<std::string> ids) {
    eventhub_reply r = ok_reply();
    r.body.emplace().partition_ids = std::move(ids);
    return r;
}

eventhub_reply partition_reply(std::int64_t begin, std::int64_t last, bool empty = false,
                               std::int64_t last_ms = 0) {
    eventhub_reply r = ok_reply();
    auto& p = r.body.emplace().partition;
    p.begin_sequence = begin;
    p.last_sequence = last;
    p.empty = empty;
    p.last_enqueued_ms = last_ms;
    return r;
}

message_position at_sequence(std::int64_t seq, std::int64_t enqueued_ms = 0) {
    message_position p;
    p.sequence_number = seq;
    p.offset = std::to_string(seq * 100);
    if (enqueued_ms) p.enqueued_ms = enqueued_ms;
    return p;
}

// Production figures; jitter u = 0.4 makes the jitter factor exactly 1 (0.8 + 0.5 * 0.4), so the
// back-offs are the bare exponential: 1 s, 2 s, 4 s, ...
eventhub_session_config default_config() {
    eventhub_session_config c;
    c.hubs = {{hub, audience}};
    c.consumer_group = "$Default";
    c.epoch = 7;
    c.credit = 300;
    c.max_message_size = 1u << 20;
    c.start_lookback = 3600s;
    return c;
}

struct episode {
    explicit episode(eventhub_session_config c = default_config()) : cfg(std::move(c)) {
        m = std::make_unique<ehs>(cfg, [this] {
            ++jitter_calls;
            return u;
        });
    }

    void advance(std::chrono::milliseconds d) {
        now.steady += d.count() * 1000;
        now.wall += d.count() * 1000;
    }

    // Dial done, the AMQP open answered.
    ehs::actions open() {
        m->begin_connection(now);
        m->on_amqp_start(now);
        return m->on_connection_open(now);
    }

    // Answers every put_token in `acts` with `reply`.
    ehs::actions answer_tokens(const ehs::actions& acts, const eventhub_reply& reply) {
        ehs::actions out;
        for (const auto& t : all_of<ehs::put_token>(acts))
            for (auto& a : m->on_reply(t.id, reply, now))
                out.push_back(std::move(a));
        return out;
    }

    // The READ of `partition` among `acts`, answered with `reply`.
    ehs::actions answer_read(const ehs::actions& acts, const std::string& partition,
                             const eventhub_reply& reply) {
        for (const auto& r : all_of<ehs::read_partition>(acts))
            if (r.partition == partition) return m->on_reply(r.id, reply, now);
        FAIL("no READ of partition " << partition);
        return {};
    }

    // A whole connection up to running: tokens accepted, the hub lists partitions 0 and 1,
    // each READ answered with `info`, every attach answered. Returns each partition's link.
    std::map<std::string, ehs::link_id> run_to_running(
        const eventhub_reply& info = partition_reply(0, 99)) {
        const auto opened = open();
        const auto after_tokens = answer_tokens(opened, ok_reply());
        const auto reads =
            m->on_reply(only<ehs::read_hub>(after_tokens).id, hub_reply({"0", "1"}), now);
        std::map<std::string, ehs::link_id> links;
        for (const auto& r : all_of<ehs::read_partition>(reads)) {
            const auto attach = only<ehs::attach_partition>(m->on_reply(r.id, info, now));
            links[attach.key] = attach.link;
        }
        for (const auto& [key, link] : links)
            m->on_partition_attached(link, now);
        REQUIRE(m->phase() == connection_phase::running);
        return links;
    }

    eventhub_session_config cfg;
    double u = 0.4;
    int jitter_calls = 0;
    std::unique_ptr<ehs> m;
    eventhub_clock now{5'000'000'000, 1'767'225'600'000'000};  // wall: 2026-01-01T00:00:00Z
};

amqp_condition condition(std::string name, std::string description = {}) {
    return {std::move(name), std::move(description)};
}

}  // namespace

TEST_CASE("eventhub session: a normal start puts tokens, reads the hub, attaches every partition") {
    episode e;
    e.m->on_committed(key0, eventhub_checkpoint{41, "4100", 1767225000000});

    e.m->begin_connection(e.now);
    CHECK(e.m->phase() == connection_phase::connecting);
    e.m->on_amqp_start(e.now);
    CHECK(e.m->phase() == connection_phase::amqp_open);

    // The AMQP open: the $cbs link and one token per hub, for the hub's audience, valid for
    // token_ttl from now (wall clock, whole seconds).
    const auto opened = e.m->on_connection_open(e.now);
    CHECK(e.m->phase() == connection_phase::cbs_auth);
    const auto cbs = only<ehs::open_request_link>(opened);
    CHECK(cbs.node == ehs::request_node::cbs);
    CHECK(cbs.address == "$cbs");
    const auto token = only<ehs::put_token>(opened);
    CHECK(token.hub == hub);
    CHECK(token.audience == audience);
    CHECK(token.expiry_unix_s == 1767225600 + 3600);
    CHECK(e.m->counters().token_puts == 1);
    CHECK(e.m->tokens_waiting() == 1);

    // An answer to nothing we asked changes nothing.
    CHECK(e.m->on_reply(9999, ok_reply(), e.now).empty());

    // Token accepted: $management, then the hub's READ.
    const auto after_token = e.m->on_reply(token.id, ok_reply(), e.now);
    CHECK(e.m->phase() == connection_phase::management);
    CHECK(only<ehs::open_request_link>(after_token).node == ehs::request_node::management);
    const auto read_hub = only<ehs::read_hub>(after_token);
    CHECK(read_hub.hub == hub);

    // The hub's partitions: each is started and its runtime info asked for.
    const auto reads = e.m->on_reply(read_hub.id, hub_reply({"0", "1"}), e.now);
    CHECK(e.m->phase() == connection_phase::receivers);
    CHECK(count_of<ehs::partition_started>(reads) == 2);
    const auto read_partitions = all_of<ehs::read_partition>(reads);
    REQUIRE(read_partitions.size() == 2);
    CHECK(read_partitions[0].partition == "0");
    CHECK(read_partitions[1].partition == "1");

    // Partition 0 resumes after its checkpoint; partition 1 (no checkpoint) from now - lookback.
    const auto p0 = e.m->on_reply(read_partitions[0].id, partition_reply(0, 99), e.now);
    CHECK(only<ehs::partition_read>(p0).last_enqueued == 99);
    const auto a0 = only<ehs::attach_partition>(p0);
    CHECK(a0.key == key0);
    CHECK(a0.address == "signins/ConsumerGroups/$Default/Partitions/0");
    CHECK(a0.name == a0.address);
    CHECK(a0.selector == "amqp.annotation.x-opt-sequence-number > '41'");
    CHECK(a0.epoch == std::optional<std::int64_t>(7));
    CHECK(a0.max_message_size == (1u << 20));
    CHECK(count_of<ehs::events_lost>(p0) == 0);
    const auto a1 = only<ehs::attach_partition>(
        e.m->on_reply(read_partitions[1].id, partition_reply(0, 99), e.now));
    CHECK(a1.selector == "amqp.annotation.x-opt-enqueued-time > '" +
                             std::to_string(1767225600000 - 3600000) + "'");
    CHECK(a0.link != a1.link);

    // Running only once every partition's first attach is answered.
    const auto up0 = e.m->on_partition_attached(a0.link, e.now);
    CHECK(only<ehs::give_credit>(up0).count == 300);
    CHECK(only<ehs::give_credit>(up0).link == a0.link);
    CHECK_FALSE(only<ehs::partition_attached>(up0).again);
    CHECK(count_of<ehs::now_running>(up0) == 0);
    CHECK(e.m->phase() == connection_phase::receivers);
    const auto up1 = e.m->on_partition_attached(a1.link, e.now);
    const auto running = only<ehs::now_running>(up1);
    CHECK(running.receiving == 2);
    CHECK(running.partitions == 2);
    CHECK(running.hubs == 1);
    CHECK(e.m->phase() == connection_phase::running);
    CHECK(e.m->counters().connects == 1);
    CHECK_FALSE(e.m->failure());

    // Nothing is due now; the next duty is the periodic READ (the token renews much later).
    CHECK(e.m->on_tick(e.now).empty());
    CHECK(e.m->next_wake() == e.now.steady + 60'000'000);

    // Deliveries move the gap check along; the live link gets its credit back after a commit.
    const auto note = e.m->on_delivery(a0.link, at_sequence(42));
    REQUIRE(note.partition != nullptr);
    CHECK(note.partition->key == key0);
    CHECK_FALSE(note.gap);
    CHECK(e.m->returns_credit(key0, a0.link));
    CHECK_FALSE(e.m->returns_credit(key0, a1.link));
    CHECK(e.m->on_delivery(999, at_sequence(1)).partition == nullptr);
    CHECK(e.m->too_large((1u << 20) + 1));
    CHECK_FALSE(e.m->too_large(1u << 20));
}

TEST_CASE("eventhub session: SASL PLAIN skips CBS - phase deadlines - SASL mechanisms") {
    SECTION("SASL PLAIN: $management at once, no token ever (nor a renewal)") {
        auto cfg = default_config();
        cfg.sasl_plain = true;
        episode e(cfg);
        const auto opened = e.open();
        CHECK(e.m->phase() == connection_phase::management);
        CHECK(count_of<ehs::put_token>(opened) == 0);
        CHECK(only<ehs::open_request_link>(opened).node == ehs::request_node::management);
        CHECK(count_of<ehs::read_hub>(opened) == 1);
        // A partition refused as unauthorized has no token to renew: it backs off.
        const auto read = e.m->on_reply(only<ehs::read_hub>(opened).id, hub_reply({"0"}), e.now);
        const auto attach =
            only<ehs::attach_partition>(e.answer_read(read, "0", partition_reply(0, 9)));
        const auto refused = e.m->on_link_closed(attach.link, "receiver x",
                                                 condition("amqp:unauthorized-access"), e.now);
        CHECK(count_of<ehs::put_token>(refused) == 0);
        CHECK(only<ehs::partition_failed>(refused).retry_in.has_value());
        REQUIRE(e.m->phase() == connection_phase::running);
        // No token renewal is ever due, so none keeps waking the loop: after two hours the
        // next wake is still ahead (the periodic READ, the partition's retry), never behind.
        e.advance(std::chrono::hours(2));
        e.m->on_tick(e.now);
        CHECK(e.m->next_wake() > e.now.steady);
        CHECK(e.m->next_wake() <= e.now.steady + 60'000'000);
        CHECK(e.m->counters().token_puts == 0);
    }
    SECTION("no progress within phase_timeout fails the connection, once") {
        episode e;
        e.open();
        e.advance(19999ms);
        CHECK(e.m->on_tick(e.now).empty());
        CHECK(e.m->next_wake() == e.now.steady + 1000);
        e.advance(1ms);
        const auto f = only<ehs::fail_connection>(e.m->on_tick(e.now));
        CHECK(f.cls == amqp_error_class::transient);
        CHECK(f.text == "no progress in phase cbs_auth within 20000 ms");
        CHECK(e.m->counters().phase_timeouts == 1);
        // The first cause counts: later failures are not reported again.
        CHECK(e.m->on_connection_closed().empty());
        CHECK(e.m->failure()->text == f.text);
    }
    SECTION("a server that does not offer our mechanism is refused at once, and named") {
        episode e;
        e.m->begin_connection(e.now);
        e.m->on_amqp_start(e.now);
        CHECK(e.m->on_sasl_offered(std::nullopt).empty());  // the frame is not complete yet
        const auto f = only<ehs::fail_connection>(
            e.m->on_sasl_offered(std::vector<std::string>{"PLAIN", "EXTERNAL"}));
        CHECK(f.cls == amqp_error_class::fatal);
        CHECK(f.text ==
              "SASL cannot start; SASL: the server offers [PLAIN EXTERNAL], glasswatch uses "
              "ANONYMOUS (sources.eventhub.sasl = \"anonymous\")");
    }
    SECTION("a phase timeout in amqp_open says what SASL offered") {
        episode e;
        e.m->begin_connection(e.now);
        e.m->on_amqp_start(e.now);
        CHECK(e.m->on_sasl_offered(std::vector<std::string>{"ANONYMOUS"}).empty());
        e.advance(20s);
        const auto f = only<ehs::fail_connection>(e.m->on_tick(e.now));
        CHECK(f.text.find("no progress in phase amqp_open within 20000 ms; SASL: the server "
                          "offers [ANONYMOUS]") == 0);
    }
}

TEST_CASE(
    "eventhub session: a token that expires on a live link is renewed, the link re-attached") {
    episode e;
    auto links = e.run_to_running();
    e.m->on_delivery(links[key0], at_sequence(10));

    // The renewal is due at 90% of (ttl - 1 s) after the AMQP start: not a moment before.
    const micros period = (3600'000'000LL - 1'000'000) * 9 / 10;
    e.advance(std::chrono::milliseconds(period / 1000 - 1));
    CHECK(count_of<ehs::put_token>(e.m->on_tick(e.now)) == 0);
    e.advance(1ms);
    const auto renew = e.m->on_tick(e.now);
    const auto token = only<ehs::put_token>(renew);
    CHECK(token.audience == audience);
    CHECK(token.expiry_unix_s == e.now.wall / 1'000'000 + 3600);
    CHECK(e.m->on_reply(token.id, ok_reply(), e.now).empty());  // the links just go on

    // The service closes partition 0's link: the token expired. Partition 0 waits for a new
    // token (no back-off); partition 1 is untouched; the connection goes on.
    const auto closed = e.m->on_link_closed(
        links[key0], "receiver p0", condition("amqp:unauthorized-access", "expired"), e.now);
    const auto down = only<ehs::partition_failed>(closed);
    CHECK(down.partition == "0");
    CHECK(down.cls == amqp_error_class::unauthorized);
    CHECK_FALSE(down.retry_in);  // a new token first
    const auto put = only<ehs::put_token>(closed);
    CHECK(put.hub == hub);
    CHECK(count_of<ehs::fail_connection>(closed) == 0);
    CHECK(count_of<ehs::close_link>(closed) == 0);
    CHECK(e.m->partitions().at(key0).state == ehs::link_state::token);
    CHECK(e.m->partitions().at(key1).state == ehs::link_state::receiving);

    // The new token is accepted: partition 0 (only) reads its info and attaches again, after
    // the last event read, on a link with a name of its own.
    const auto back = e.m->on_reply(put.id, ok_reply(), e.now);
    const auto read = only<ehs::read_partition>(back);
    CHECK(read.partition == "0");
    const auto attach =
        only<ehs::attach_partition>(e.answer_read(back, "0", partition_reply(0, 99)));
    CHECK(attach.selector == "amqp.annotation.x-opt-sequence-number > '10'");
    CHECK(attach.name == attach.address + "#1");
    const auto up = e.m->on_partition_attached(attach.link, e.now);
    CHECK(only<ehs::partition_attached>(up).again);
    CHECK(e.m->counters().reattaches == 1);
    // The old link gets no credit back; the new one does.
    CHECK_FALSE(e.m->returns_credit(key0, links[key0]));
    CHECK(e.m->returns_credit(key0, attach.link));
}

TEST_CASE(
    "eventhub session: unauthorized twice in a row backs off - an unanswered put-token fails") {
    episode e;
    auto links = e.run_to_running();
    const auto closed = e.m->on_link_closed(links[key0], "receiver p0",
                                            condition("amqp:unauthorized-access"), e.now);
    const auto put = only<ehs::put_token>(closed);

    SECTION("the re-attach after the new token is refused too: a back-off, no third token") {
        const auto back = e.m->on_reply(put.id, ok_reply(), e.now);
        const auto attach =
            only<ehs::attach_partition>(e.answer_read(back, "0", partition_reply(0, 99)));
        const auto again = e.m->on_link_closed(attach.link, "receiver p0",
                                               condition("amqp:unauthorized-access"), e.now);
        CHECK(count_of<ehs::put_token>(again) == 0);
        CHECK(only<ehs::partition_failed>(again).retry_in == std::optional(2000ms));
        CHECK(e.m->partitions().at(key0).state == ehs::link_state::backoff);
        CHECK(e.m->counters().token_puts == 2);
    }
    SECTION("a put-token not answered within phase_timeout ends the connection") {
        e.advance(19999ms);
        CHECK(count_of<ehs::fail_connection>(e.m->on_tick(e.now)) == 0);
        CHECK(e.m->next_wake() == e.now.steady + 1000);
        e.advance(1ms);
        const auto f = only<ehs::fail_connection>(e.m->on_tick(e.now));
        CHECK(f.cls == amqp_error_class::transient);
        CHECK(f.text == "put-token not answered within 20000 ms");
    }
    SECTION("a refused put-token is fatal to the connection: the long back-off") {
        const auto refused = e.m->on_reply(put.id, status_reply(401, "Unauthorized"), e.now);
        const auto f = only<ehs::fail_connection>(refused);
        CHECK(f.cls == amqp_error_class::fatal);
        CHECK(f.text == "put-token for signins refused: status 401 Unauthorized");
        CHECK(e.m->counters().auth_refused == 1);
        CHECK(e.m->on_connection_end().delay == 60000ms);
    }
}

TEST_CASE("eventhub session: a stolen partition backs off alone and is attached again") {
    episode e;
    e.m->on_committed(key1, eventhub_checkpoint{20, "2000", 0});
    const auto opened = e.open();
    const auto after_tokens = e.answer_tokens(opened, ok_reply());
    const auto reads =
        e.m->on_reply(only<ehs::read_hub>(after_tokens).id, hub_reply({"0", "1"}), e.now);
    const auto a0 = only<ehs::attach_partition>(e.answer_read(reads, "0", partition_reply(0, 99)));
    const auto a1 = only<ehs::attach_partition>(e.answer_read(reads, "1", partition_reply(0, 99)));
    e.m->on_partition_attached(a0.link, e.now);

    // Partition 1 is held by another owner from the start: the connection runs all the same.
    const auto stolen = e.m->on_link_closed(
        a1.link, "receiver p1",
        condition("amqp:link:stolen",
                  "New receiver 'x' with higher epoch of '9' is created hence current receiver "
                  "'y' with epoch '7' is getting disconnected."),
        e.now);
    const auto down = only<ehs::partition_failed>(stolen);
    CHECK(down.partition == "1");
    CHECK(down.cls == amqp_error_class::stolen);
    CHECK(down.why.find("held by another receiver (epoch 9): amqp:link:stolen: New receiver") == 0);
    CHECK(down.retry_in == std::optional(1000ms));
    CHECK(count_of<ehs::fail_connection>(stolen) == 0);
    const auto running = only<ehs::now_running>(stolen);
    CHECK(running.receiving == 1);
    CHECK(running.partitions == 2);
    CHECK(e.m->phase() == connection_phase::running);
    CHECK(e.m->counters().stolen == 1);
    CHECK(e.m->counters().partition_failures == 1);

    // Held by another owner counts as failing at once (the tripwire names it).
    const auto outage = e.m->partition_outage();
    REQUIRE(outage);
    CHECK(outage->since == e.now.wall);
    CHECK(outage->why.find("partition 1 of signins not read since 2026-01-01T00:00:00Z: held by "
                           "another receiver (epoch 9)") == 0);

    // Partition 0 reads on, untouched by any of this.
    CHECK(e.m->partitions().at(key0).state == ehs::link_state::receiving);
    CHECK(e.m->partitions().at(key0).link == a0.link);
    CHECK(e.m->on_delivery(a0.link, at_sequence(5)).partition != nullptr);

    // Not before its own back-off is over...
    e.advance(999ms);
    CHECK(e.m->on_tick(e.now).empty());
    CHECK(e.m->next_wake() == e.now.steady + 1000);
    // ... then a fresh READ of partition 1 only, and the attach from its checkpoint.
    e.advance(1ms);
    const auto retry = e.m->on_tick(e.now);
    CHECK(only<ehs::read_partition>(retry).partition == "1");
    CHECK(count_of<ehs::attach_partition>(retry) == 0);
    const auto again =
        only<ehs::attach_partition>(e.answer_read(retry, "1", partition_reply(0, 99)));
    CHECK(again.key == key1);
    CHECK(again.selector == "amqp.annotation.x-opt-sequence-number > '20'");
    CHECK(again.name == again.address + "#1");
    const auto up = e.m->on_partition_attached(again.link, e.now);
    CHECK(only<ehs::partition_attached>(up).again);
    CHECK(count_of<ehs::now_running>(up) == 0);  // it was running already
    CHECK(e.m->counters().reattaches == 1);
    CHECK(e.m->counters().connects == 1);
    CHECK_FALSE(e.m->partition_outage());

    // The stolen link closing late is no partition's link any more: the connection's business.
    const auto late = e.m->on_link_closed(a1.link, "receiver p1", condition({}), e.now);
    CHECK(only<ehs::fail_connection>(late).text == "receiver p1 detached by the service");
}

TEST_CASE("eventhub session: an attach or READ left unanswered fails its partition only") {
    episode e;
    auto links = e.run_to_running();
    e.m->on_link_closed(links[key0], "receiver p0", condition("amqp:link:detach-forced"), e.now);
    e.advance(1000ms);
    const auto read = e.m->on_tick(e.now);
    const auto attach =
        only<ehs::attach_partition>(e.answer_read(read, "0", partition_reply(0, 9)));
    // The attach is never answered: after phase_timeout the link is closed and the partition
    // backs off (its second failure in a row: 2 s); partition 1 and the connection go on.
    e.advance(19999ms);
    CHECK(e.m->on_tick(e.now).empty());
    e.advance(1ms);
    const auto timeout = e.m->on_tick(e.now);
    CHECK(only<ehs::close_link>(timeout).link == attach.link);
    const auto down = only<ehs::partition_failed>(timeout);
    CHECK(down.why == "attach not answered within 20000 ms");
    CHECK(down.retry_in == std::optional(2000ms));
    CHECK(count_of<ehs::fail_connection>(timeout) == 0);
    CHECK(e.m->partitions().at(key1).state == ehs::link_state::receiving);
    // Two failures in a row: the partition now counts as failing.
    CHECK(e.m->partition_outage());
    // The READ of the retry is not answered either.
    e.advance(2000ms);
    CHECK(count_of<ehs::read_partition>(e.m->on_tick(e.now)) == 1);
    e.advance(20000ms);
    CHECK(only<ehs::partition_failed>(e.m->on_tick(e.now)).why ==
          "$management READ not answered within 20000 ms");
}

TEST_CASE("eventhub session: fatal and unauthorized errors, by where they happen") {
    SECTION("a partition refused for a reason an operator must fix: its cap at once") {
        episode e;
        auto links = e.run_to_running();
        const auto gone = e.m->on_link_closed(links[key0], "receiver p0",
                                              condition("amqp:not-found", "no such entity"), e.now);
        const auto down = only<ehs::partition_failed>(gone);
        CHECK(down.cls == amqp_error_class::fatal);
        CHECK(down.retry_in == std::optional(30000ms));  // partition_backoff_max
        CHECK(count_of<ehs::fail_connection>(gone) == 0);
        CHECK(e.m->partition_outage());  // counts as failing at once
        CHECK(e.m->partitions().at(key1).state == ehs::link_state::receiving);
    }
    SECTION("the connection closed as unauthorized: the long back-off") {
        episode e;
        e.run_to_running();
        const auto f = only<ehs::fail_connection>(
            e.m->on_connection_error(condition("amqp:unauthorized-access", "token expired")));
        CHECK(f.cls == amqp_error_class::unauthorized);
        CHECK(f.text ==
              "connection closed by the service: amqp:unauthorized-access: token expired");
        const auto r = e.m->on_connection_end();
        CHECK(r.cls == amqp_error_class::unauthorized);
        CHECK(r.delay == 60000ms);
        CHECK(e.m->phase() == connection_phase::backoff);
        CHECK(e.m->counters().failures == 1);
    }
    SECTION("$cbs detached with an auth failure ends the connection as fatal") {
        episode e;
        e.open();
        const auto f = only<ehs::fail_connection>(e.m->on_link_closed(
            0, "receiver $cbs", condition("com.microsoft:auth-failed", "bad key"), e.now));
        CHECK(f.cls == amqp_error_class::fatal);
        CHECK(f.text == "receiver $cbs detached: com.microsoft:auth-failed: bad key");
    }
    SECTION("SASL refusing the credentials is fatal and counted; a transport failure is not") {
        episode e;
        e.m->begin_connection(e.now);
        e.m->on_amqp_start(e.now);
        const auto f = only<ehs::fail_connection>(e.m->on_transport_error(
            condition("amqp:unauthorized-access", "Authentication failed")));
        CHECK(f.cls == amqp_error_class::fatal);
        CHECK(f.text.find("amqp:unauthorized-access: Authentication failed; SASL: the server sent "
                          "no mechanisms") == 0);
        CHECK(e.m->counters().auth_refused == 1);
        episode t;
        t.run_to_running();
        const auto g = only<ehs::fail_connection>(t.m->on_transport_error(condition(
            "amqp:connection:framing-error", "transport: connection closed by the peer")));
        CHECK(g.cls == amqp_error_class::transient);
        CHECK(g.text == "connection closed by the peer");
        CHECK(t.m->counters().auth_refused == 0);
    }
    SECTION("the hub's READ: 404 is fatal, 500 transient, no partitions fatal") {
        for (const auto& [status, cls] :
             {std::pair{404, amqp_error_class::fatal}, std::pair{401, amqp_error_class::fatal},
              std::pair{500, amqp_error_class::transient}}) {
            episode e;
            const auto after = e.answer_tokens(e.open(), ok_reply());
            const auto f = only<ehs::fail_connection>(
                e.m->on_reply(only<ehs::read_hub>(after).id, status_reply(status, "nope"), e.now));
            CHECK(f.cls == cls);
            CHECK(f.text == "$management READ (hub:signins) failed: status " +
                                std::to_string(status) + " nope");
        }
        episode e;
        const auto after = e.answer_tokens(e.open(), ok_reply());
        const auto f = only<ehs::fail_connection>(
            e.m->on_reply(only<ehs::read_hub>(after).id, hub_reply({}), e.now));
        CHECK(f.cls == amqp_error_class::fatal);
        CHECK(f.text == "the event hub reported no partitions");
    }
    SECTION("a partition READ refused with 401 renews the token, not the connection") {
        episode e;
        const auto after = e.answer_tokens(e.open(), ok_reply());
        const auto reads =
            e.m->on_reply(only<ehs::read_hub>(after).id, hub_reply({"0", "1"}), e.now);
        const auto refused = e.answer_read(reads, "0", status_reply(401, "expired"));
        CHECK(only<ehs::partition_failed>(refused).cls == amqp_error_class::unauthorized);
        CHECK(count_of<ehs::put_token>(refused) == 1);
        CHECK(count_of<ehs::fail_connection>(refused) == 0);
    }
}

TEST_CASE("eventhub session: positions retention removed (out of range) are events_lost") {
    SECTION("the service starts at the oldest event left: the first delivery shows the gap") {
        episode e;
        e.m->on_committed(key0, eventhub_checkpoint{100, "", 1767225000000});
        auto links = e.run_to_running(partition_reply(150, 300));
        const auto first = e.m->on_delivery(links[key0], at_sequence(150, 1767225500000));
        REQUIRE(first.gap);
        CHECK(first.gap->why == sequence_gap::cause::retention);
        CHECK(first.gap->first == 101);
        CHECK(first.gap->last == 149);
        CHECK(first.gap->from_ms == 1767225000000);
        CHECK(first.gap->to_ms == 1767225500000);
        CHECK_FALSE(e.m->on_delivery(links[key0], at_sequence(151)).gap);
    }
    SECTION("argument-out-of-range: that partition backs off; everything expired: lost at once") {
        episode e;
        e.m->on_committed(key0, eventhub_checkpoint{100, "", 1767225000000});
        auto links = e.run_to_running(partition_reply(0, 300));
        const auto refused = e.m->on_link_closed(
            links[key0], "receiver p0",
            condition("com.microsoft:argument-out-of-range", "sequence number out of range"),
            e.now);
        const auto down = only<ehs::partition_failed>(refused);
        CHECK(down.cls == amqp_error_class::out_of_range);
        CHECK(down.retry_in == std::optional(1000ms));
        CHECK(count_of<ehs::fail_connection>(refused) == 0);
        CHECK(e.m->partitions().at(key1).state == ehs::link_state::receiving);
        e.advance(1000ms);
        const auto retry = e.m->on_tick(e.now);
        // Retention removed everything after the checkpoint: no delivery will ever show it.
        const auto attach =
            e.answer_read(retry, "0", partition_reply(301, 300, true, 1767225900000));
        const auto lost = only<ehs::events_lost>(attach);
        CHECK(lost.partition == "0");
        CHECK(lost.gap.why == sequence_gap::cause::retention);
        CHECK(lost.gap.first == 101);
        CHECK(lost.gap.last == 300);
        CHECK(lost.gap.to_ms == 1767225900000);
        const auto a = only<ehs::attach_partition>(attach);
        // The next delivery (301) is what was expected: no second alert for the same loss.
        e.m->on_partition_attached(a.link, e.now);
        CHECK_FALSE(e.m->on_delivery(a.link, at_sequence(301)).gap);
    }
    SECTION("a checkpoint past the end (hub re-created): reset, read from the beginning") {
        episode e;
        e.m->on_committed(key0, eventhub_checkpoint{500, "", 1767225000000});
        const auto after = e.answer_tokens(e.open(), ok_reply());
        const auto reads =
            e.m->on_reply(only<ehs::read_hub>(after).id, hub_reply({"0", "1"}), e.now);
        const auto p0 = e.answer_read(reads, "0", partition_reply(0, 20));
        const auto lost = only<ehs::events_lost>(p0);
        CHECK(lost.gap.why == sequence_gap::cause::reset);
        CHECK(lost.gap.first == 501);
        CHECK(lost.gap.checkpoint == 500);
        CHECK(lost.gap.resumed_at == 0);
        const auto a0 = only<ehs::attach_partition>(p0);
        CHECK(a0.selector == "amqp.annotation.x-opt-sequence-number >= '0'");
        const auto a1 =
            only<ehs::attach_partition>(e.answer_read(reads, "1", partition_reply(0, 20)));
        e.m->on_partition_attached(a1.link, e.now);
        // Detached before anything arrived: the re-attach starts there again (not from the
        // lookback) and raises no second alert.
        const auto down = e.m->on_link_closed(a0.link, "receiver p0",
                                              condition("amqp:link:detach-forced"), e.now);
        REQUIRE(e.m->phase() == connection_phase::running);
        e.advance(only<ehs::partition_failed>(down).retry_in.value());
        const auto retry = e.m->on_tick(e.now);
        const auto again = e.answer_read(retry, "0", partition_reply(0, 20));
        CHECK(count_of<ehs::events_lost>(again) == 0);
        CHECK(only<ehs::attach_partition>(again).selector ==
              "amqp.annotation.x-opt-sequence-number >= '0'");
    }
}

TEST_CASE("eventhub session: back-off grows per failure in a row and stops at its cap") {
    SECTION("one partition: 1, 2, 4, 8, 16 s, then partition_backoff_max (30 s)") {
        episode e;
        auto links = e.run_to_running();
        ehs::link_id link = links[key0];
        std::vector<std::chrono::milliseconds> delays;
        for (int i = 0; i < 7; ++i) {
            const auto down = e.m->on_link_closed(link, "receiver p0",
                                                  condition("amqp:link:detach-forced"), e.now);
            const auto d = only<ehs::partition_failed>(down).retry_in.value();
            delays.push_back(d);
            e.advance(d);
            const auto retry = e.m->on_tick(e.now);
            link =
                only<ehs::attach_partition>(e.answer_read(retry, "0", partition_reply(0, 9))).link;
        }
        CHECK(delays == std::vector<std::chrono::milliseconds>{1000ms, 2000ms, 4000ms, 8000ms,
                                                               16000ms, 30000ms, 30000ms});
        CHECK(e.m->counters().detached == 7);
        // An attach that holds resets the growth.
        e.m->on_partition_attached(link, e.now);
        const auto down =
            e.m->on_link_closed(link, "receiver p0", condition("amqp:link:detach-forced"), e.now);
        CHECK(only<ehs::partition_failed>(down).retry_in == std::optional(1000ms));
    }
    SECTION("server-busy waits at least busy_min; jitter is applied and capped") {
        episode e;
        auto links = e.run_to_running();
        const auto busy = e.m->on_link_closed(links[key0], "receiver p0",
                                              condition("com.microsoft:server-busy"), e.now);
        CHECK(only<ehs::partition_failed>(busy).retry_in == std::optional(4000ms));
        CHECK(e.m->counters().busy == 1);
        e.u = 1.0;  // the largest jitter factor: 1.3
        const int calls = e.jitter_calls;
        const auto jittered = e.m->on_link_closed(links[key1], "receiver p1",
                                                  condition("amqp:link:detach-forced"), e.now);
        CHECK(only<ehs::partition_failed>(jittered).retry_in == std::optional(1300ms));
        CHECK(e.jitter_calls == calls + 1);
    }
    SECTION("the connection: 1 s doubling to reconnect_backoff_max, reset once running") {
        auto cfg = default_config();
        cfg.backoff_max = 10s;
        episode e(cfg);
        std::vector<std::chrono::milliseconds> delays;
        for (int i = 0; i < 6; ++i) {
            e.open();
            e.m->fail(amqp_error_class::transient, "connection closed");
            delays.push_back(e.m->on_connection_end().delay);
        }
        CHECK(delays == std::vector<std::chrono::milliseconds>{1000ms, 2000ms, 4000ms, 8000ms,
                                                               10000ms, 10000ms});
        CHECK(e.m->counters().failures == 6);
        // A partition's cap never exceeds the connection's.
        {
            episode p(cfg);
            auto links = p.run_to_running();
            const auto gone =
                p.m->on_link_closed(links[key0], "receiver p0", condition("amqp:not-found"), p.now);
            CHECK(only<ehs::partition_failed>(gone).retry_in == std::optional(10000ms));
        }
        // Busy: at least busy_min; auth refused: the long back-off, within 4x the cap.
        e.open();
        e.m->on_connection_error(condition("com.microsoft:server-busy"));
        CHECK(e.m->on_connection_end().delay == 10000ms);
        e.run_to_running();  // running resets the growth
        e.m->on_connection_error(condition("com.microsoft:server-busy"));
        CHECK(e.m->on_connection_end().delay == 4000ms);
        e.open();
        e.m->on_connection_error(condition("com.microsoft:auth-failed"));
        CHECK(e.m->on_connection_end().delay == 40000ms);  // min(long_backoff, 4 x 10 s)
    }
}

TEST_CASE("eventhub session: a partition that stops moving is stuck once per episode") {
    episode e;
    e.m->on_committed(key0, eventhub_checkpoint{10, "", 0});
    e.m->on_committed(key1, eventhub_checkpoint{99, "", 0});
    e.run_to_running();
    // The periodic READ every management_interval (60 s): partition 0 is behind (50 > 10) and
    // its committed position does not move; partition 1 is up to date.
    auto read_round = [&e](std::int64_t last0) {
        e.advance(60s);
        const auto reads = e.m->on_tick(e.now);
        REQUIRE(count_of<ehs::read_partition>(reads) == 2);
        ehs::actions out = e.answer_read(reads, "0", partition_reply(0, last0));
        for (auto& a : e.answer_read(reads, "1", partition_reply(0, 99)))
            out.push_back(std::move(a));
        return out;
    };
    // Behind since the first READ (t = 60 s); stuck after stuck_after (300 s) of that.
    for (int i = 0; i < 5; ++i) {
        const auto round = read_round(50);
        CHECK(count_of<ehs::partition_read>(round) == 2);
        CHECK(count_of<ehs::partition_stuck>(round) == 0);
        CHECK(count_of<ehs::fail_connection>(round) == 0);
    }
    const auto stuck_round = read_round(50);
    const auto stuck = only<ehs::partition_stuck>(stuck_round);
    CHECK(stuck.partition == "0");
    CHECK(stuck.committed == 10);
    CHECK(stuck.last_enqueued == 50);
    // Once per episode, the connection is made again (fresh links, fresh credit).
    const auto f = only<ehs::fail_connection>(stuck_round);
    CHECK(f.cls == amqp_error_class::transient);
    CHECK(f.text == "partition 0 of signins is stuck; reconnecting to attach it again");
    CHECK(e.m->on_connection_end().delay == 1000ms);

    // The next connection: still stuck, but the episode was already raised.
    e.run_to_running();
    const auto still = read_round(50);
    CHECK(count_of<ehs::partition_stuck>(still) == 0);
    CHECK(count_of<ehs::fail_connection>(still) == 0);
    // Progress ends the episode.
    e.m->on_committed(key0, eventhub_checkpoint{11, "", 0});
    const auto moves = read_round(50);
    CHECK(only<ehs::partition_moves>(moves).partition == "0");
    CHECK(count_of<ehs::partition_stuck>(moves) == 0);
}

TEST_CASE("eventhub session: a partition not attached is never stuck") {
    // One refusal an operator must fix parks partition 0 for an hour (its cap); meanwhile the
    // periodic READ keeps saying the service holds newer events than were committed.
    auto cfg = default_config();
    cfg.partition_backoff_max = 3600s;
    cfg.backoff_max = 3600s;
    episode e(cfg);
    e.m->on_committed(key0, eventhub_checkpoint{10, "", 0});
    e.m->on_committed(key1, eventhub_checkpoint{99, "", 0});
    auto links = e.run_to_running();
    const auto gone =
        e.m->on_link_closed(links[key0], "receiver p0", condition("amqp:not-found"), e.now);
    CHECK(only<ehs::partition_failed>(gone).retry_in ==
          std::optional<std::chrono::milliseconds>(std::chrono::milliseconds(3600s)));
    // Ten minutes of READs: reported as failing (fatal), never as stuck, no reconnect.
    for (int i = 0; i < 10; ++i) {
        e.advance(60s);
        const auto reads = e.m->on_tick(e.now);
        REQUIRE(count_of<ehs::read_partition>(reads) == 2);
        const auto answer = e.answer_read(reads, "0", partition_reply(0, 50));
        CHECK(only<ehs::partition_read>(answer).last_enqueued == 50);
        CHECK(count_of<ehs::partition_stuck>(answer) == 0);
        CHECK(count_of<ehs::attach_partition>(answer) == 0);  // still backing off
        e.answer_read(reads, "1", partition_reply(0, 99));
        CHECK_FALSE(e.m->failure());
    }
    CHECK(e.m->partitions().at(key0).state == ehs::link_state::backoff);
    CHECK(e.m->partition_outage());
}
