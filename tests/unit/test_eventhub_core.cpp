// Event Hubs pure logic: connection strings, SAS tokens (the reference test vector), selector
// filters both ways, checkpoints, error classes, the stuck-partition rule.
#include <catch2/catch.hpp>

#include "core/protocol/eventhub.hpp"

using namespace glasswatch::core;

namespace {
constexpr const char* vector_key = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMDAwMDA=";
constexpr const char* vector_resource =
    "sb://contoso-entra.servicebus.windows.net/insights-logs-signinlogs";
constexpr const char* vector_token =
    "SharedAccessSignature "
    "sr=sb%3A%2F%2Fcontoso-entra.servicebus.windows.net%2Finsights-logs-signinlogs&sig="
    "1T5LdFmrHeJMZ%2BRdWxm6whBQiZSvJYtiM8FbbzTIocM%3D&se=1767225600&skn=ListenOnly";
}  // namespace

TEST_CASE("eventhub connection string: every key case-insensitive and the key kept verbatim") {
    std::string err;
    auto c = parse_eventhub_connection_string(
        "endpoint=sb://Contoso-Entra.servicebus.windows.net/;SHAREDACCESSKEYNAME=ListenOnly;"
        "SharedAccessKey=" +
            std::string(vector_key) + ";EntityPath=insights-logs-signinlogs",
        err);
    REQUIRE(c);
    CHECK(c->namespace_host == "contoso-entra.servicebus.windows.net");
    CHECK(c->key_name == "ListenOnly");
    CHECK(c->key == vector_key);
    CHECK(c->entity_path == "insights-logs-signinlogs");
    CHECK_FALSE(c->development_emulator);
    CHECK(eventhub_port(*c, false) == 5671);
    CHECK(eventhub_port(*c, true) == 443);
    CHECK(eventhub_audience(*c, "hub") == "sb://contoso-entra.servicebus.windows.net/hub");
}

TEST_CASE("eventhub connection string: emulator keeps the endpoint port in the audience") {
    std::string err;
    auto c = parse_eventhub_connection_string(
        "Endpoint=sb://localhost:5999;SharedAccessKeyName=k;SharedAccessKey=v;"
        "UseDevelopmentEmulator=true",
        err);
    REQUIRE(c);
    CHECK(c->development_emulator);
    CHECK(eventhub_port(*c, false) == 5999);
    CHECK(eventhub_audience(*c, "h") == "sb://localhost:5999/h");
    auto d = parse_eventhub_connection_string(
        "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=v;"
        "UseDevelopmentEmulator=TRUE",
        err);
    REQUIRE(d);
    CHECK(eventhub_port(*d, false) == 5672);
}

TEST_CASE("eventhub connection string: errors name the problem but never the secret") {
    std::string err;
    CHECK_FALSE(
        parse_eventhub_connection_string("SharedAccessKeyName=k;SharedAccessKey=TOPSECRET", err));
    CHECK(err.find("Endpoint") != std::string::npos);
    CHECK_FALSE(parse_eventhub_connection_string(
        "Endpoint=sb://h/;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET;"
        "SharedAccessSignature=SharedAccessSignature sr=x",
        err));
    CHECK(err.find("TOPSECRET") == std::string::npos);
    CHECK_FALSE(
        parse_eventhub_connection_string("Endpoint=sb://h/;SharedAccessKey=TOPSECRET", err));
    CHECK(err.find("SharedAccessKeyName") != std::string::npos);
    CHECK(err.find("TOPSECRET") == std::string::npos);
    CHECK_FALSE(
        parse_eventhub_connection_string("Endpoint=sb://h:99999/;SharedAccessKeyName=k;"
                                         "SharedAccessKey=TOPSECRET",
                                         err));
    CHECK_FALSE(parse_eventhub_connection_string("Endpoint=sb://h/;SharedAccessKeyName=k", err));
    CHECK_FALSE(parse_eventhub_connection_string(
        "Endpoint=h;SharedAccessKeyName=k;SharedAccessKey=x", err));
}

TEST_CASE("SAS token: reproduces the reference test vector") {
    CHECK(make_sas_token(vector_resource, "ListenOnly", vector_key, 1767225600) == vector_token);
    auto f = parse_sas_token(vector_token);
    REQUIRE(f);
    CHECK(f->resource == vector_resource);
    CHECK(f->signature == "1T5LdFmrHeJMZ+RdWxm6whBQiZSvJYtiM8FbbzTIocM=");
    CHECK(f->expiry == 1767225600);
    CHECK(f->key_name == "ListenOnly");
}

TEST_CASE("SAS token: verified for the audience with the right key before expiry") {
    const std::int64_t now = 1767225600 - 100;
    const std::string aud = std::string(vector_resource) + "/ConsumerGroups/$Default/Partitions/0";
    CHECK(verify_sas_token(vector_token, aud, "ListenOnly", vector_key, now) == sas_verdict::ok);
    CHECK(verify_sas_token(vector_token, aud, "ListenOnly", "another-key", now) ==
          sas_verdict::bad_signature);
    CHECK(verify_sas_token(vector_token, aud, "Other", vector_key, now) ==
          sas_verdict::unknown_key);
    CHECK(verify_sas_token(vector_token, aud, "ListenOnly", vector_key, 1767225600) ==
          sas_verdict::expired);
    CHECK(verify_sas_token(vector_token, "sb://contoso-entra.servicebus.windows.net/other",
                           "ListenOnly", vector_key, now) == sas_verdict::wrong_audience);
    CHECK(verify_sas_token("Bearer x", aud, "ListenOnly", vector_key, now) ==
          sas_verdict::malformed);
    // A lower-case encoding (.NET style) verifies too: the HMAC covers sr as sent.
    const std::string lower_token =
        "SharedAccessSignature sr=sb%3a%2f%2fh%2fhub&sig=" + std::string("placeholder") +
        "&se=10&skn=k";
    CHECK(verify_sas_token(lower_token, "sb://h/hub", "k", "key", 1) == sas_verdict::bad_signature);
}

TEST_CASE("SAS token: renewed at 90 percent of its lifetime") {
    CHECK(sas_renew_at(1000, 4600) == 1000 + 3240);
    CHECK(sas_renew_at(1000, 1000) == 1001);
}

TEST_CASE("selector filter: every start position round-trips") {
    start_position p;
    p.what = start_position::kind::sequence_number;
    p.sequence_number = 42;
    CHECK(selector_expression(p) == "amqp.annotation.x-opt-sequence-number > '42'");
    p.inclusive = true;
    CHECK(selector_expression(p) == "amqp.annotation.x-opt-sequence-number >= '42'");
    start_position o;
    o.what = start_position::kind::offset;
    o.offset = "4294967296";
    CHECK(selector_expression(o) == "amqp.annotation.x-opt-offset > '4294967296'");
    start_position t;
    t.what = start_position::kind::enqueued_time;
    t.enqueued_ms = 1762180080123;
    CHECK(selector_expression(t) == "amqp.annotation.x-opt-enqueued-time > '1762180080123'");
    start_position s;
    s.what = start_position::kind::start_of_stream;
    CHECK(selector_expression(s) == "amqp.annotation.x-opt-offset > '-1'");
    for (const auto& q : {p, o, t, s}) {
        auto back = parse_selector_expression(selector_expression(q));
        REQUIRE(back);
        CHECK(back->what == q.what);
        CHECK(back->inclusive == q.inclusive);
        CHECK(back->sequence_number == q.sequence_number);
        CHECK(back->offset == q.offset);
        CHECK(back->enqueued_ms == q.enqueued_ms);
    }
    CHECK(parse_selector_expression("amqp.annotation.x-opt-offset > '@latest'")->what ==
          start_position::kind::latest);
    CHECK_FALSE(parse_selector_expression("amqp.annotation.x-opt-sequence-number > 42"));
    CHECK_FALSE(parse_selector_expression("amqp.annotation.x-opt-sequence-number < '42'"));
    CHECK_FALSE(parse_selector_expression("amqp.annotation.x-opt-sequence-number > 'x'"));
    CHECK_FALSE(parse_selector_expression("color = 'red'"));
}

TEST_CASE("partition addresses round-trip") {
    CHECK(partition_address("hub", "$Default", "3") == "hub/ConsumerGroups/$Default/Partitions/3");
    auto r = parse_partition_address("hub/consumergroups/glasswatch/partitions/0");
    REQUIRE(r);
    CHECK(r->hub == "hub");
    CHECK(r->group == "glasswatch");
    CHECK(r->partition == "0");
    CHECK_FALSE(parse_partition_address("hub/ConsumerGroups/x"));
    CHECK_FALSE(parse_partition_address("$cbs"));
}

TEST_CASE("checkpoint: encoded with the alerts and resumed after it") {
    eventhub_checkpoint c{41, "8800", 1762180080123};
    auto back = decode_checkpoint(encode_checkpoint(c));
    REQUIRE(back);
    CHECK(back->sequence_number == 41);
    CHECK(back->offset == "8800");
    CHECK(back->enqueued_ms == 1762180080123);
    CHECK(eventhub_checkpoint_key("hub", "2") == "eventhub:hub:2");
    CHECK_FALSE(decode_checkpoint("garbage"));
    CHECK_FALSE(decode_checkpoint("{\"offset\":\"1\"}"));

    auto resume = resume_position(back, 0, std::chrono::seconds(60));
    CHECK(selector_expression(resume) == "amqp.annotation.x-opt-sequence-number > '41'");
    const micros now = 1762180080123000;
    auto first = resume_position(std::nullopt, now, std::chrono::seconds(3600));
    CHECK(first.what == start_position::kind::enqueued_time);
    CHECK(first.enqueued_ms == 1762180080123 - 3600 * 1000);
}

// Found by tests/fuzz/fuzz_amqp_body: an x-opt-offset that is not UTF-8 (Proton does not check
// AMQP strings) made encode_checkpoint throw, and the source stopped at every commit of it.
TEST_CASE("checkpoint: a broker offset that is not UTF-8 is stored, never thrown on") {
    eventhub_checkpoint c;
    message_position p;
    p.sequence_number = 7;
    p.offset = std::string("12\xb4\xff", 4);
    advance(c, p);
    std::string text;
    REQUIRE_NOTHROW(text = encode_checkpoint(c));
    auto back = decode_checkpoint(text);
    REQUIRE(back);
    CHECK(back->sequence_number == 7);
    CHECK(back->offset.rfind("12", 0) == 0);
}

TEST_CASE("checkpoint: advances only to usable and newer positions") {
    eventhub_checkpoint c{41, "8800", 1};
    message_position older;
    older.sequence_number = 40;
    advance(c, older);
    CHECK(c.sequence_number == 41);
    advance(c, message_position{});
    CHECK(c.offset == "8800");
    message_position newer;
    newer.sequence_number = 42;
    newer.enqueued_ms = 5;
    advance(c, newer);
    CHECK(c.sequence_number == 42);
    CHECK(c.offset.empty());
    CHECK(c.enqueued_ms == 5);
}

TEST_CASE("annotations: a delivery needs a sequence number and bodies lose BOM and blanks") {
    message_position p;
    CHECK_FALSE(usable(p));
    p.sequence_number = 0;
    CHECK(usable(p));
    CHECK(trim_body("\xEF\xBB\xBF{\"records\":[]}\r\n ") == "{\"records\":[]}");
}

TEST_CASE("amqp errors: busy, stolen and fatal are told apart") {
    CHECK(classify_amqp_error("amqp:link:detach-forced") == amqp_error_class::transient);
    CHECK(classify_amqp_error("amqp:connection:forced") == amqp_error_class::transient);
    CHECK(classify_amqp_error("com.microsoft:server-busy") == amqp_error_class::busy);
    CHECK(classify_amqp_error("amqp:resource-limit-exceeded") == amqp_error_class::busy);
    CHECK(classify_amqp_error("amqp:link:stolen") == amqp_error_class::stolen);
    // A token that expired on a live link is renewed, not fatal; a position past the end is
    // decided by the attach rule.
    CHECK(classify_amqp_error("amqp:unauthorized-access") == amqp_error_class::unauthorized);
    CHECK(classify_amqp_error("com.microsoft:argument-out-of-range") ==
          amqp_error_class::out_of_range);
    CHECK(classify_amqp_error("com.microsoft:auth-failed") == amqp_error_class::fatal);
    CHECK(classify_amqp_error("amqp:not-found") == amqp_error_class::fatal);
}

TEST_CASE("stuck partition: behind without progress for the threshold") {
    stuck_detector d(10);
    CHECK_FALSE(d.observe(5, 9, 100));  // first look: behind, clock starts
    CHECK_FALSE(d.observe(5, 9, 105));
    CHECK(d.observe(5, 9, 110));  // 10 us behind with no progress
    CHECK(d.stuck());
    CHECK_FALSE(d.observe(7, 9, 111));  // progress clears it
    CHECK_FALSE(d.observe(9, 9, 200));  // caught up
    CHECK_FALSE(d.observe(9, 9, 500));  // quiet partition is not stuck
}

TEST_CASE("attach plan: nothing read yet starts by enqueued time and checks nothing") {
    const auto p =
        plan_attach(std::nullopt, partition_info{}, 10'000'000'000, std::chrono::seconds(60));
    CHECK(p.from.what == start_position::kind::enqueued_time);
    CHECK(p.from.enqueued_ms == 10'000'000 - 60'000);
    CHECK(p.expect_next == -1);
    CHECK_FALSE(p.lost);
}

TEST_CASE("attach plan: after n within the stream asks for > n and expects n + 1") {
    eventhub_checkpoint cp{41, "4100", 1000};
    partition_info info{0, 99, 5000, false};
    const auto p = plan_attach(cp, info, 0, std::chrono::seconds(60));
    CHECK(selector_expression(p.from) == "amqp.annotation.x-opt-sequence-number > '41'");
    CHECK(p.expect_next == 42);
    CHECK(p.last_read_ms == 1000);
    CHECK_FALSE(p.lost);
    // Retention removed 42..59: the first delivery will show it (the window needs its time).
    info.begin_sequence = 60;
    CHECK_FALSE(plan_attach(cp, info, 0, std::chrono::seconds(60)).lost);
    // Without runtime info the plan is the same.
    CHECK(plan_attach(cp, std::nullopt, 0, std::chrono::seconds(60)).expect_next == 42);
}

TEST_CASE("attach plan: everything after n expired - the loss is known before any delivery") {
    eventhub_checkpoint cp{41, "", 1000};
    partition_info info{100, 99, 5000, true};
    const auto p = plan_attach(cp, info, 0, std::chrono::seconds(60));
    REQUIRE(p.lost);
    CHECK(p.lost->why == sequence_gap::cause::retention);
    CHECK(p.lost->first == 42);
    CHECK(p.lost->last == 99);
    CHECK(p.lost->from_ms == 1000);
    CHECK(p.lost->to_ms == 5000);
    CHECK(p.expect_next == 100);
    // Caught up exactly: nothing lost.
    cp.sequence_number = 99;
    CHECK_FALSE(plan_attach(cp, info, 0, std::chrono::seconds(60)).lost);
}

TEST_CASE("attach plan: a checkpoint past the end is a reset read from the beginning") {
    eventhub_checkpoint cp{500, "", 1000};
    partition_info info{0, 10, 5000, false};
    const auto p = plan_attach(cp, info, 0, std::chrono::seconds(60));
    REQUIRE(p.lost);
    CHECK(p.lost->why == sequence_gap::cause::reset);
    CHECK(p.lost->checkpoint == 500);
    CHECK(p.lost->first == 501);
    CHECK(p.lost->last == -1);
    CHECK(p.lost->resumed_at == 0);
    CHECK(selector_expression(p.from) == "amqp.annotation.x-opt-sequence-number >= '0'");
    CHECK(p.expect_next == 0);
    // A re-created hub that never held an event: read from 0 when it does.
    const auto empty = plan_attach(cp, partition_info{0, -1, 0, true}, 0, std::chrono::seconds(60));
    REQUIRE(empty.lost);
    CHECK(empty.lost->resumed_at == 0);
    // Retention moved the beginning on: read from the oldest event left.
    const auto later =
        plan_attach(cp, partition_info{7, 10, 0, false}, 0, std::chrono::seconds(60));
    CHECK(later.lost->resumed_at == 7);
}

TEST_CASE("deliveries: a jump in sequence numbers is a gap with its time window") {
    std::int64_t expect = 5, last_ms = 100;
    message_position p;
    p.sequence_number = 5;
    p.enqueued_ms = 200;
    CHECK_FALSE(observe_delivery(expect, last_ms, p));
    CHECK(expect == 6);
    p.sequence_number = 12;
    p.enqueued_ms = 900;
    auto g = observe_delivery(expect, last_ms, p);
    REQUIRE(g);
    CHECK(g->first == 6);
    CHECK(g->last == 11);
    CHECK(g->from_ms == 200);
    CHECK(g->to_ms == 900);
    CHECK(expect == 13);
    p.sequence_number = 8;  // a repeat (re-delivered): nothing changes
    CHECK_FALSE(observe_delivery(expect, last_ms, p));
    CHECK(expect == 13);
    std::int64_t unknown = -1, ms = 0;  // started by enqueued time: the first one sets the pace
    p.sequence_number = 77;
    CHECK_FALSE(observe_delivery(unknown, ms, p));
    CHECK(unknown == 78);
    CHECK_FALSE(observe_delivery(unknown, ms, message_position{}));
    CHECK(unknown == -1);  // no sequence number: the next one sets the pace, no false gap
    p.sequence_number = 90;
    CHECK_FALSE(observe_delivery(unknown, ms, p));
}

TEST_CASE("stolen: the other owner's epoch from the service's texts") {
    CHECK(stolen_by_epoch("New receiver 'nil' with higher epoch of '9' is created hence current "
                          "receiver 'nil' with epoch '7' is getting disconnected.") == 9);
    CHECK(stolen_by_epoch("At least one receiver for the endpoint is created with epoch of '12', "
                          "and so non-epoch receiver is not allowed.") == 12);
    CHECK(stolen_by_epoch("Receiver 'a' with a higher epoch '3' already exists. Receiver 'b' "
                          "with epoch 1 cannot be created.") == 3);
    CHECK_FALSE(stolen_by_epoch("detached by fault injection"));
    CHECK_FALSE(stolen_by_epoch("higher epoch of 'x'"));
}
