// The replay input splitter: NDJSON lines and whole documents come out as they went in, and a
// document too large to hold is cut into pages of its own records — every record exactly once,
// whatever the chunking, and the pipeline finds the same alerts as on the whole document.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/alerting/pipeline.hpp"
#include "core/detection/replay_splitter.hpp"
#include "support/fixtures.hpp"

using namespace glasswatch::core;
namespace t = glasswatch::test;
using json = nlohmann::json;

namespace {

std::vector<std::string> split_all(const std::string& input, std::size_t chunk,
                                   replay_splitter::limits lim, replay_splitter* out = nullptr) {
    replay_splitter local(lim);
    replay_splitter& s = out != nullptr ? *out : local;
    std::vector<std::string> docs;
    auto emit = [&docs](std::string_view d) { docs.emplace_back(d); };
    for (std::size_t p = 0; p < input.size(); p += chunk)
        s.feed(std::string_view(input).substr(p, chunk), emit);
    s.finish(emit);
    return docs;
}

// A Graph sign-in record; awkward bytes in its strings (brackets, commas, escaped quotes).
json signin(int i, const char* user) {
    return {{"id", "rec-" + std::to_string(i)},
            {"createdDateTime", "2025-11-03T14:22:07Z"},
            {"userId", user},
            {"userDisplayName", "A \"quoted\" [name], {with} \\ brackets " + std::to_string(i)},
            {"status", {{"errorCode", 0}}},
            {"appliedConditionalAccessPolicies", json::array({{{"id", "x"}, {"result", "n"}}})}};
}

std::string graph_page(int n, int watched_every) {
    json page = {
        {"@odata.context", "https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns"}};
    json value = json::array();
    for (int i = 0; i < n; ++i)
        value.push_back(signin(i, i % watched_every == 0 ? t::adele : t::bruno));
    page["value"] = value;
    page["@odata.nextLink"] = "https://graph.microsoft.com/v1.0/auditLogs/signIns?$skiptoken=z";
    return page.dump(2);  // pretty-printed: not NDJSON
}

std::multiset<std::string> record_ids(const std::vector<std::string>& docs, const char* key) {
    std::multiset<std::string> ids;
    for (const auto& d : docs) {
        const json j = json::parse(d);
        REQUIRE(j.contains(key));
        for (const auto& r : j[key])
            ids.insert(r["id"].get<std::string>());
    }
    return ids;
}

const replay_splitter::limits tiny{2000, 700};

}  // namespace

TEST_CASE("replay splitter: NDJSON lines come out whole, whatever the chunking", "[replay]") {
    const std::string input =
        "\n  \n{\"a\":1}\r\n{\"b\":[1,2,\"x\\ny\"]}\n\n{\"c\":{}}";  // no newline at the end
    for (std::size_t chunk : {1, 2, 3, 7, 64, 4096}) {
        replay_splitter s(tiny);
        auto docs = split_all(input, chunk, tiny, &s);
        CHECK(s.ndjson());
        CHECK(docs ==
              std::vector<std::string>{"{\"a\":1}", "{\"b\":[1,2,\"x\\ny\"]}", "{\"c\":{}}"});
        CHECK(s.documents_cut() == 0);
    }
}

TEST_CASE("replay splitter: one pretty-printed document under the limit comes out whole",
          "[replay]") {
    const std::string doc = graph_page(3, 2);
    REQUIRE(doc.size() < replay_splitter::limits{}.max_document);
    for (std::size_t chunk : {1, 5, 100, 1 << 20}) {
        replay_splitter s;
        auto docs = split_all(doc, chunk, {}, &s);
        CHECK_FALSE(s.ndjson());
        REQUIRE(docs.size() == 1);
        CHECK(docs[0] == doc);
    }
}

TEST_CASE("replay splitter: a document over the limit is cut into pages of its own records",
          "[replay]") {
    const std::string doc = graph_page(200, 7);
    REQUIRE(doc.size() > tiny.max_document * 10);
    std::multiset<std::string> expected;
    for (int i = 0; i < 200; ++i)
        expected.insert("rec-" + std::to_string(i));
    for (std::size_t chunk : {1, 3, 333, 4096, 1 << 20}) {
        replay_splitter s(tiny);
        auto docs = split_all(doc, chunk, tiny, &s);
        CHECK(s.documents_cut() == 1);
        CHECK(s.pieces_raw() == 0);
        CHECK(docs.size() > 10);
        for (const auto& d : docs)
            CHECK(d.size() <= tiny.batch_bytes + 2 * tiny.max_document);
        CHECK(record_ids(docs, "value") == expected);
    }
}

TEST_CASE(
    "replay splitter: an oversized NDJSON line (a diagnostic body) is cut, its neighbours "
    "stay whole",
    "[replay]") {
    json body = {{"records", json::array()}};
    for (int i = 0; i < 100; ++i)
        body["records"].push_back(signin(i, t::bruno));
    const std::string input = "{\"first\":1}\n" + body.dump() + "\n{\"last\":2}\n";
    replay_splitter s(tiny);
    auto docs = split_all(input, 1000, tiny, &s);
    REQUIRE(docs.size() > 3);
    CHECK(docs.front() == "{\"first\":1}");
    CHECK(docs.back() == "{\"last\":2}");
    std::vector<std::string> middle(docs.begin() + 1, docs.end() - 1);
    CHECK(record_ids(middle, "records").size() == 100);
    CHECK(s.documents_cut() == 1);
}

TEST_CASE("replay splitter: a broken or uncuttable large document is passed on in raw pieces",
          "[replay]") {
    // Truncated in the middle of a record: the records read whole are a page, the rest raw.
    std::string doc = graph_page(60, 5);
    doc.resize(doc.size() * 2 / 3);
    replay_splitter s(tiny);
    auto docs = split_all(doc, 512, tiny, &s);
    REQUIRE_FALSE(docs.empty());
    CHECK(s.pieces_raw() >= 1);
    CHECK_FALSE(json::accept(docs.back()));  // the cut-off record, for the fail-closed path
    // A large array at the top level cannot be cut (the pipeline reads objects): raw pieces
    // carrying every byte.
    std::string arr = "[";
    for (int i = 0; i < 300; ++i)
        arr += (i ? "," : "") + signin(i, t::adele).dump();
    arr += "]";
    replay_splitter r(tiny);
    auto raw = split_all(arr, 999, tiny, &r);
    std::string joined;
    for (const auto& d : raw)
        joined += d;
    CHECK(joined == arr);
    CHECK(r.pieces_raw() == raw.size());
}

TEST_CASE("replay splitter: a record larger than the limit is skipped and counted", "[replay]") {
    json body = {{"records", json::array()}};
    body["records"].push_back(signin(1, t::bruno));
    json big = signin(2, t::bruno);
    big["blob"] = std::string(5000, 'x');
    body["records"].push_back(big);
    body["records"].push_back(signin(3, t::bruno));
    replay_splitter s(tiny);
    auto docs = split_all(body.dump(), 100, tiny, &s);
    CHECK(s.records_too_large() == 1);
    CHECK(record_ids(docs, "records") == std::multiset<std::string>{"rec-1", "rec-3"});
}

TEST_CASE(
    "replay splitter: the pipeline finds the same alerts in the cut pages as in the whole "
    "page",
    "[replay]") {
    const std::string doc = graph_page(300, 11);
    body_origin o;
    o.source = "replay";
    o.hint = record_hint::graph_signin;
    o.signin = signin_type::interactive;
    auto ids = [&](const std::vector<std::string>& docs) {
        pipeline pl(t::config_watching({t::adele}));
        std::set<std::string> out;
        for (const auto& d : docs)
            for (const auto& f : pl.process(d, o, 1).findings)
                out.insert(f.a.id);
        return out;
    };
    const auto whole = ids({doc});
    CHECK(whole.size() == 28);  // records 0, 11, ..., 297
    CHECK(ids(split_all(doc, 4096, tiny)) == whole);
}
