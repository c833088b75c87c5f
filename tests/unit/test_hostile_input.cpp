// Hostile input against the core (invariant 7): every case is rejected or handled with a counter
// and a content-free reason, never a crash, never an unbounded allocation, and a rejected record
// that mentions a watched identifier still pages (fail closed: unparsed_candidate).
//
// The figures these tests stand for are in tests/component/SOURCE_FAULTS.md.
#include <catch2/catch.hpp>

#include <string>

#include "core/alerting/pipeline.hpp"
#include "core/base/json_text.hpp"
#include "core/base/log_gate.hpp"
#include "core/detection/normalize.hpp"
#include "core/protocol/oauth.hpp"
#include "support/fixtures.hpp"

using namespace glasswatch::core;
namespace t = glasswatch::test;

namespace {

// A Graph signIn record for `user` with `extra` spliced in before the closing brace.
std::string signin(const std::string& id, const std::string& user, const std::string& extra = {}) {
    return R"({"id":")" + id + R"(","createdDateTime":"2025-11-03T14:22:07Z","userId":")" + user +
           R"(","status":{"errorCode":0})" + extra + "}";
}

std::string page(const std::string& records, const std::string& next_link = {}) {
    std::string p =
        R"({"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns",)";
    if (!next_link.empty()) p += R"("@odata.nextLink":")" + next_link + R"(",)";
    return p + R"("value":[)" + records + "]}";
}

body_origin graph_signins() {
    body_origin o;
    o.source = "graph";
    o.hint = record_hint::graph_signin;
    o.signin = signin_type::interactive;
    return o;
}

std::vector<std::string> rules_of(const process_output& out) {
    std::vector<std::string> r;
    for (const auto& f : out.findings)
        r.push_back(f.a.rule);
    return r;
}

using V = std::vector<std::string>;

const std::string next = "https://graph.microsoft.com/v1.0/auditLogs/signIns?$skiptoken=abc";

}  // namespace

TEST_CASE("hostile: 100k-deep nesting is refused by depth / in a body and in a record",
          "[hostile]") {
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    normalizer n;
    // In a record: the DOM parser stops at the depth limit (no recursion, no crash).
    auto r = n.normalize(signin("d1", t::adele, ",\"x\":" + deep), record_hint::graph_signin);
    CHECK(r.status == normalize_status::malformed);
    CHECK(r.error.find("not JSON") != std::string::npos);
    // In a body: split() walks it without recursion (On-Demand skips the span by its
    // structural index) and the record's own parse refuses it at the depth limit.
    auto parts = n.split(page(signin("d2", t::adele, ",\"x\":" + deep)));
    CHECK(parts.error.empty());
    REQUIRE(parts.records.size() == 1);
    CHECK(n.normalize(std::string(parts.records[0]), record_hint::graph_signin).status ==
          normalize_status::malformed);
    // Objects too, and a deep value at the top level.
    std::string objs;
    for (int i = 0; i < 100000; ++i)
        objs += "{\"a\":";
    objs += "1" + std::string(100000, '}');
    auto top = n.split(objs);
    CHECK((!top.error.empty() || top.kind == body_kind::single_record));
    CHECK(n.normalize(objs).status == normalize_status::malformed);

    // Through the pipeline: counted, and the candidate body pages (fail closed).
    pipeline p(t::config_watching({t::adele}));
    auto out = p.process(page(signin("d3", t::adele, ",\"x\":" + deep)), graph_signins(), 1);
    CHECK(rules_of(out) == V{"unparsed_candidate"});
    CHECK(p.stats().records_malformed == 1);
    // The token endpoint's answer is parsed with nlohmann (iterative parser, iterative destroy).
    auto ans = classify_token_response(200, "{\"access_token\":" + deep + "}");
    CHECK(ans.failure != token_failure::none);
}

TEST_CASE("hostile: invalid UTF-8 and NUL bytes", "[hostile]") {
    normalizer n;
    // Invalid UTF-8 inside a string: simdjson validates UTF-8, the record is malformed.
    auto r = n.normalize(signin("u1", t::adele, ",\"userAgent\":\"a\xff\xfe b\""),
                         record_hint::graph_signin);
    CHECK(r.status == normalize_status::malformed);
    // Overlong encoding and a lone surrogate escape.
    CHECK(n.normalize(signin("u2", t::adele, ",\"userAgent\":\"\xc0\xaf\""),
                      record_hint::graph_signin)
              .status == normalize_status::malformed);
    auto lone =
        n.normalize(signin("u3", t::adele, R"(,"userAgent":"\ud800")"), record_hint::graph_signin);
    CHECK(lone.status == normalize_status::malformed);
    // A raw NUL inside a string is an unescaped control character: malformed.
    std::string raw_nul = signin("u4", t::adele, ",\"userAgent\":\"a");
    raw_nul.pop_back();
    raw_nul += std::string("\0b\"}", 4);
    CHECK(n.normalize(raw_nul, record_hint::graph_signin).status == normalize_status::malformed);
    // An escaped NUL is valid JSON: kept in the event, and no sink ever sees it raw.
    auto esc = n.normalize(signin("u5", t::adele, R"(,"userDisplayName":"Eve\u0000Admin")"),
                           record_hint::graph_signin);
    REQUIRE(esc.status == normalize_status::ok);
    CHECK(esc.ev.actor.display_name == std::string("Eve\0Admin", 9));
    CHECK(sanitize_line(esc.ev.actor.display_name, 100) == "Eve?Admin");
    // A NUL between records breaks the body, not the process.
    std::string body =
        page(signin("u6", t::adele) + std::string("\0", 1) + "," + signin("u7", t::bruno));
    CHECK_FALSE(n.split(body).error.empty());

    pipeline p(t::config_watching({t::adele}));
    auto out =
        p.process(page(signin("u8", t::adele, ",\"userAgent\":\"\xff\"")), graph_signins(), 1);
    CHECK(rules_of(out) == V{"unparsed_candidate"});
    CHECK(p.stats().records_malformed == 1);
    CHECK(out.body_error.empty());  // the page itself was readable
}

TEST_CASE("hostile: numbers out of range", "[hostile]") {
    normalizer n;
    for (const char* num : {"1e400", "-1e400", "123456789012345678901234567890"}) {
        DYNAMIC_SECTION(num) {
            auto r = n.normalize(signin("n1", t::adele, std::string(",\"durationMs\":") + num),
                                 record_hint::graph_signin);
            // Either refused (out of range for a double) or read; never a crash or a wrong id.
            if (r.status == normalize_status::ok)
                CHECK(r.ev.id == "n1");
            else
                CHECK(r.error.find("not JSON") != std::string::npos);
        }
    }
    // An error code no int64 holds reads as "no code"; the sign-in is still an event.
    auto r = n.normalize(R"({"id":"n2","createdDateTime":"2025-11-03T14:22:07Z","userId":")" +
                             std::string(t::adele) + R"(","status":{"errorCode":1e300}})",
                         record_hint::graph_signin);
    REQUIRE(r.status == normalize_status::ok);
    CHECK(r.ev.id == "n2");
    pipeline p(t::config_watching({t::adele}));
    auto out = p.process(page(signin("n3", t::adele, ",\"durationMs\":1e400")), graph_signins(), 1);
    CHECK(out.findings.size() == 1);  // alerted one way or the other
}

TEST_CASE("hostile: duplicate keys make a record ambiguous and it fails closed", "[hostile]") {
    normalizer n;
    // The watched id in the second of two userId keys: a reader that takes the first would miss
    // the break-glass sign-in, one that takes the last would not. Refuse to guess.
    std::string rec = R"({"id":"k1","createdDateTime":"2025-11-03T14:22:07Z","userId":")" +
                      std::string(t::bruno) + R"(","userId":")" + t::adele + R"("})";
    auto r = n.normalize(rec, record_hint::graph_signin);
    CHECK(r.status == normalize_status::malformed);
    CHECK(r.error == "duplicate key \"userId\"");
    // Nested objects too (status.errorCode decides success vs failure).
    auto r2 = n.normalize(signin("k2", t::adele, R"(,"location":{"city":"A","city":"B"})"),
                          record_hint::graph_signin);
    CHECK(r2.status == normalize_status::malformed);
    // Diagnostic records: the envelope and the properties.
    auto r3 =
        n.normalize(R"({"category":"SignInLogs","category":"AuditLogs","properties":{"id":"k3"}})");
    CHECK(r3.status == normalize_status::malformed);

    pipeline p(t::config_watching({t::adele}));
    auto out = p.process(page(rec), graph_signins(), 1);
    CHECK(rules_of(out) == V{"unparsed_candidate"});
    CHECK(p.stats().records_malformed == 1);
}

TEST_CASE("hostile: wrong types and missing ids", "[hostile]") {
    normalizer n;
    // id of the wrong type / missing: refused (an alert needs a stable event id).
    CHECK(n.normalize(R"({"id":{},"createdDateTime":"2025-11-03T14:22:07Z","userId":"u"})",
                      record_hint::graph_signin)
              .error == "sign-in without id");
    CHECK(n.normalize(R"({"createdDateTime":"2025-11-03T14:22:07Z","userId":"u"})",
                      record_hint::graph_signin)
              .error == "sign-in without id");
    CHECK(n.normalize(R"({"activityDateTime":"2025-11-03T14:22:07Z"})", record_hint::graph_audit)
              .error == "audit record without id");
    CHECK(n.normalize(R"({"id":"x","createdDateTime":12,"userId":"u"})", record_hint::graph_signin)
              .error == "sign-in createdDateTime is not ISO-8601");
    // Containers of the wrong type are ignored field by field; the record still reads.
    auto r = n.normalize(R"({"id":"w1","createdDateTime":"2025-11-03T14:22:07Z","userId":")" +
                             std::string(t::adele) +
                             R"(","location":"Lagos","status":[1],"signInEventTypes":7})",
                         record_hint::graph_signin);
    REQUIRE(r.status == normalize_status::ok);
    CHECK(r.ev.city.empty());
    auto a =
        n.normalize(R"({"id":"w2","activityDateTime":"2025-11-03T14:22:07Z","targetResources":"x",)"
                    R"("initiatedBy":[],"result":{}})",
                    record_hint::graph_audit);
    REQUIRE(a.status == normalize_status::ok);
    CHECK(a.ev.targets.empty());
    CHECK(n.normalize(R"({"category":"SignInLogs","properties":[]})", record_hint::diagnostic)
              .error == "diagnostic record without properties object");
    // "value" that is not an array, elements that are not objects.
    auto parts = n.split(R"({"value":[1,"x",null,{"id":"a"}]})");
    CHECK(parts.bad_elements == 3);
    CHECK(parts.records.size() == 1);
    // An @odata.nextLink that is not a string: the page cannot say where it goes on, so it is
    // malformed (a reader that ignored it would stop paging and skip the rest of the window).
    auto bad_link = n.split(R"({"@odata.nextLink":42,"value":[]})");
    CHECK(bad_link.error == "@odata.nextLink is not a string");

    pipeline p(t::config_watching({t::adele}));
    auto out = p.process(page(R"({"createdDateTime":"2025-11-03T14:22:07Z","userId":")" +
                              std::string(t::adele) + R"("})"),
                         graph_signins(), 1);
    CHECK(rules_of(out) == V{"unparsed_candidate"});
}

TEST_CASE("hostile: 50 MB bodies / within the limit read / above it refused with bounded evidence",
          "[hostile]") {
    // 50 MB of ordinary records with one break-glass sign-in at the end.
    std::string filler =
        signin("f", t::bruno, ",\"userAgent\":\"" + std::string(1 << 20, 'a') + "\"");
    std::string records;
    while (records.size() < 50u << 20)
        records += filler + ",";
    records += signin("watched-1", t::adele);
    const std::string body = page(records);
    REQUIRE(body.size() > 50u << 20);
    {
        pipeline p(t::config_watching({t::adele}));  // default limit: 64 MiB
        auto out = p.process(body, graph_signins(), 1);
        CHECK(rules_of(out) == V{"breakglass_signin"});
        CHECK(out.body_error.empty());
    }
    {
        parse_limits small;
        small.max_body_bytes = 16u << 20;
        pipeline p(t::config_watching({t::adele}), small);
        auto out = p.process(body, graph_signins(), 1);
        CHECK(out.body_error.find("body larger than") != std::string::npos);
        CHECK(p.stats().bodies_malformed == 1);
        REQUIRE(rules_of(out) == V{"unparsed_candidate"});
        // The evidence of an unreadable body is bounded; its digest covers every byte.
        CHECK(out.findings[0].raw.size() <= max_evidence_bytes);
        CHECK(out.findings[0].a.detail_json.find(std::to_string(body.size())) != std::string::npos);
    }
}

TEST_CASE("hostile: a page that mentions nobody still says where the next page is", "[hostile]") {
    // The prefilter skips the records, but the paging must go on: the break-glass sign-in may be
    // on the next page (full_stream and the service-principal streams are not narrowed by id).
    pipeline p(t::config_watching({t::adele}));
    auto out = p.process(page(signin("o1", t::bruno), next), graph_signins(), 1);
    CHECK(out.findings.empty());
    CHECK(out.next_link == next);
    CHECK(out.body_error.empty());
    // A malformed page is reported as such even when it mentions nobody (the poller keeps its
    // cursor instead of treating a half-read page as the last one).
    auto bad = p.process(page(signin("o2", t::bruno), next).substr(0, 200), graph_signins(), 1);
    CHECK_FALSE(bad.body_error.empty());
    CHECK(bad.findings.empty());
    // Event Hub bodies that mention nobody are still skipped unparsed (the fast path).
    body_origin eh;
    eh.source = "eventhub";
    eh.hint = record_hint::diagnostic;
    auto skipped = p.process("{{{ not json", eh, 1);
    CHECK(skipped.body_error.empty());
    CHECK(skipped.problems.empty());
}

TEST_CASE("hostile: a flood of bad records is one log line per period", "[hostile]") {
    log_gate gate(60LL * 1000000);
    std::uint64_t lines = 0, reported = 0;
    for (int i = 0; i < 100000; ++i) {
        const micros now = 1000000LL * (i / 1000);  // 1000 bad records a second for 100 s
        if (auto n = gate.note(now)) {
            ++lines;
            reported += n;
        }
    }
    CHECK(lines == 2);  // the first at once, one summary a minute later
    CHECK(reported == 60001);
    CHECK(gate.suppressed() == 100000 - 60001);
    // A quiet period lets the next one through at once, with the count of the suppressed.
    CHECK(gate.note(1000LL * 1000000) == 100000 - 60001 + 1);
}

TEST_CASE("hostile: token endpoint errors with fields of the wrong type", "[hostile]") {
    // A proxy or a broken endpoint: no exception escapes (json::value() throws on a type
    // mismatch), the answer is classified by its status.
    auto a =
        classify_token_response(400, R"({"error":5,"error_description":["x"],"error_codes":"y"})");
    CHECK(a.failure == token_failure::other);
    CHECK(a.oauth_error.empty());
    auto b = classify_token_response(503, R"({"error":{"nested":true}})");
    CHECK(b.failure == token_failure::unavailable);
    auto c = classify_token_response(200, R"({"access_token":"t","expires_in":[1]})");
    CHECK(c.failure == token_failure::none);
    CHECK(c.expires_in_s == 300);
}
