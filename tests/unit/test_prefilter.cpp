#include <catch2/catch.hpp>

#include <random>

#include "core/detection/matcher.hpp"
#include "core/detection/normalize.hpp"
#include "core/detection/prefilter.hpp"
#include "support/fixtures.hpp"

using namespace glasswatch::core;
using glasswatch::test::read_fixture;

namespace {
const std::string watched = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b";
prefilter make(std::vector<std::string> upns = {}) {
    return prefilter({watched}, upns);
}
}  // namespace

TEST_CASE("prefilter finds watched GUIDs in any case and drops the rest", "[prefilter]") {
    auto p = make();
    CHECK(p.guid_count() == 1);
    CHECK(p.may_match("{\"userId\":\"0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b\"}"));
    CHECK(p.may_match("{\"userId\":\"0B7E3F1A-5C2D-4E8F-9A6B-1C2D3E4F5A6B\"}"));
    CHECK(p.may_match("{\"userId\":\"0b7E3f1A-5c2D-4e8F-9a6B-1c2D3e4F5a6B\"}"));
    CHECK(p.may_match("0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"));  // at both edges of the buffer
    CHECK_FALSE(p.may_match("{\"userId\":\"0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6c\"}"));
    CHECK_FALSE(p.may_match("{\"userId\":\"0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6\"}"));  // truncated
    CHECK_FALSE(p.may_match("{\"t\":\"2024-06-01T00:00:00Z\",\"x\":\"a-b-c-d-e\"}"));
    CHECK_FALSE(p.may_match(""));
    CHECK_FALSE(p.may_match(read_fixture("diag_signins_body.json")));
}

TEST_CASE("prefilter sends id-hiding escapes to the full parse / but not every escape",
          "[prefilter]") {
    auto p = make();
    CHECK(p.may_match(R"({"userId":"0b7e3f1a\u002d5c2d\u002d4e8f\u002d9a6b\u002d1c2d3e4f5a6b"})"));
    CHECK(p.may_match(R"({"userId":"0b7e3f1a\u002D5c2d-4e8f-9a6b-1c2d3e4f5a6b"})"));
    CHECK(p.may_match(R"({"userId":"\u0030b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"})"));
    CHECK(p.may_match(R"({"user\u0049d":"x"})"));  // escaped letter: cannot rule anything out
    // Serializers escape <, >, ', & and non-ASCII routinely: those never hide an id.
    CHECK_FALSE(p.may_match(R"({"ua":"\u003cscript\u003e \u0027 \u0026 caf\u00e9 \"q\" \\ \n"})"));
}

TEST_CASE("prefilter matches watched UPNs case-insensitively as whole tokens", "[prefilter]") {
    auto p = make({"bg1@contoso.onmicrosoft.com"});
    CHECK(p.may_match(R"({"userPrincipalName":"bg1@contoso.onmicrosoft.com"})"));
    CHECK(p.may_match(R"({"userPrincipalName":"BG1@Contoso.OnMicrosoft.com"})"));
    CHECK_FALSE(p.may_match(R"({"userPrincipalName":"xbg1@contoso.onmicrosoft.com"})"));
    CHECK_FALSE(p.may_match(R"({"userPrincipalName":"bg1@contoso.onmicrosoft.com.evil"})"));
    CHECK_FALSE(p.may_match(R"({"mail":"someone@contoso.onmicrosoft.com"})"));
}

// Found by tests/fuzz/fuzz_prefilter: Entra allows an apostrophe in a UPN and System.Text.Json
// writes it as \u0027, which the prefilter took for a harmless escape.
TEST_CASE("prefilter sees a watched UPN behind an escape of any of its characters",
          "[prefilter][fuzz]") {
    auto p = make({"o'brien.bg@contoso.example"});
    CHECK(p.may_match(R"({"userPrincipalName":"o'brien.bg@contoso.example"})"));
    CHECK(p.may_match(R"({"userPrincipalName":"o\u0027brien.bg@contoso.example"})"));
    CHECK(p.may_match(R"({"userPrincipalName":"O\u0027BRIEN.BG@CONTOSO.EXAMPLE"})"));
    // Without such a UPN on the watchlist the escape stays inert (the fast path stays fast).
    CHECK_FALSE(make({"bg1@contoso.example"}).may_match(R"({"ua":"it\u0027s"})"));
}

TEST_CASE("prefilter scales to a thousand watched ids", "[prefilter]") {
    std::vector<std::string> ids;
    std::mt19937_64 rng(7);
    char buf[40];
    for (int i = 0; i < 1000; ++i) {
        auto a = rng(), b = rng();
        std::snprintf(buf, sizeof buf, "%08llx-%04llx-%04llx-%04llx-%012llx",
                      static_cast<unsigned long long>(a >> 32),
                      static_cast<unsigned long long>((a >> 16) & 0xffff),
                      static_cast<unsigned long long>(a & 0xffff),
                      static_cast<unsigned long long>(b >> 48),
                      static_cast<unsigned long long>(b & 0xffffffffffffULL));
        ids.push_back(buf);
    }
    prefilter p(ids, {});
    CHECK(p.guid_count() == 1000);
    for (const auto& id : ids)
        REQUIRE(p.may_match("{\"userId\":\"" + id + "\"}"));
    CHECK_FALSE(p.may_match(read_fixture("graph_signins_page.json")));
}

// Differential property: whenever the full parse + matcher accepts a record, the prefilter must
// have let it through. Records are built from the reference fixtures with the watched id put in
// matching and decoy fields, in random case, with random \u00XX escapes and escaped keys.
TEST_CASE("prefilter never rejects a record the matcher accepts (randomized)",
          "[prefilter][differential]") {
    watchlist_config wc;
    wc.accounts.push_back({watched, "", "bg"});
    wc.groups.push_back("1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9");
    watchlist wl(wc);
    prefilter p(wl.all_guids(), wl.all_upns());
    normalizer n;
    std::mt19937_64 rng(20261123);

    auto mangle_id = [&](std::string id) {
        std::string out;
        for (char c : id) {
            auto r = rng() % 10;
            char x = c;
            if (r < 3 && x >= 'a' && x <= 'f') x = static_cast<char>(x - 'a' + 'A');
            if (r == 9) {
                char esc[8];
                std::snprintf(esc, sizeof esc, (rng() & 1) ? "\\u%04x" : "\\u%04X",
                              static_cast<unsigned>(x));
                out += esc;
            } else {
                out += x;
            }
        }
        return out;
    };
    auto key = [&](const char* k) {
        std::string s(k);
        if (rng() % 8 == 0 && !s.empty()) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(s[0]));
            s = esc + s.substr(1);
        }
        return s;
    };
    const std::string other = "9f8e7d6c-5b4a-4321-8fed-cba987654321";
    int accepted = 0, passed = 0, decoys_seen = 0;
    for (int i = 0; i < 4000; ++i) {
        int where = static_cast<int>(rng() % 7);
        std::string id = (rng() % 4 == 0) ? other : (where == 6 ? wc.groups[0] : watched);
        std::string m = mangle_id(id);
        std::string rec;
        switch (where) {
            case 0:  // interactive sign-in by the id
            case 1:
                rec = "{\"category\":\"" +
                      std::string(where ? "NonInteractiveUserSignInLogs" : "SignInLogs") +
                      "\",\"properties\":{\"id\":\"s" + std::to_string(i) +
                      "\",\"createdDateTime\":\"2025-11-03T14:22:07+00:00\",\"" + key("userId") +
                      "\":\"" + m + "\",\"status\":{\"errorCode\":0}}}";
                break;
            case 2:  // audit initiated by
                rec = "{\"category\":\"AuditLogs\",\"properties\":{\"id\":\"a" + std::to_string(i) +
                      "\",\"activityDateTime\":\"2025-11-03T14:22:07+00:00\","
                      "\"activityDisplayName\":\"Update user\","
                      "\"initiatedBy\":{\"user\":{\"" +
                      key("id") + "\":\"" + m + "\"}},\"targetResources\":[]}}";
                break;
            case 3:  // audit targeting
            case 6:  // ... or targeting the group
                rec = "{\"category\":\"AuditLogs\",\"properties\":{\"id\":\"t" + std::to_string(i) +
                      "\",\"activityDateTime\":\"2025-11-03T14:22:07+00:00\","
                      "\"activityDisplayName\":\"Add member to group\","
                      "\"targetResources\":[{\"" +
                      key("id") + "\":\"" + m + "\",\"type\":\"User\"}]}}";
                break;
            case 4:  // decoy: CA policy id
                rec = "{\"category\":\"SignInLogs\",\"properties\":{\"id\":\"d" +
                      std::to_string(i) +
                      "\",\"createdDateTime\":\"2025-11-03T14:22:07Z\",\"userId\":\"" + other +
                      "\",\"appliedConditionalAccessPolicies\":[{\"id\":\"" + m + "\"}]}}";
                break;
            default:  // decoy: JSON-in-string modified property
                rec = "{\"category\":\"AuditLogs\",\"properties\":{\"id\":\"m" + std::to_string(i) +
                      "\",\"activityDateTime\":\"2025-11-03T14:22:07Z\",\"targetResources\":[{"
                      "\"id\":\"" +
                      other +
                      "\",\"modifiedProperties\":[{\"displayName\":\"Group.ObjectID\",\"newValue\":"
                      "\"\\\"" +
                      m + "\\\"\"}]}]}}";
                break;
        }
        auto r = n.normalize(rec);
        REQUIRE(r.status == normalize_status::ok);
        bool full = !match_event(wl, r.ev).empty();
        bool pre = p.may_match(rec);
        if (full) {
            ++accepted;
            INFO(rec);
            REQUIRE(pre);
        }
        if (pre) ++passed;
        if (pre && !full) ++decoys_seen;
    }
    CHECK(accepted > 1000);
    CHECK(decoys_seen > 100);  // decoys pass the prefilter and are rejected by the matcher
    CHECK(passed >= accepted);
}
