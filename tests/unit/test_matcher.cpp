#include <catch2/catch.hpp>

#include <cctype>
#include <sstream>

#include "core/alerting/pipeline.hpp"
#include "core/alerting/routing.hpp"
#include "core/base/json_text.hpp"
#include "core/detection/matcher.hpp"
#include "core/detection/normalize.hpp"
#include "core/detection/watchlist.hpp"
#include "support/fixtures.hpp"

using namespace glasswatch::core;
namespace t = glasswatch::test;

namespace {
std::vector<std::string> rules_fired(const config& c, const std::string& body) {
    pipeline p(c);
    auto out = p.process(body, body_origin{}, 1);
    std::vector<std::string> r;
    for (auto& f : out.findings)
        r.insert(r.end(), f.a.rules.begin(), f.a.rules.end());
    return r;
}
using V = std::vector<std::string>;
}  // namespace

TEST_CASE("sign-in by a watched account alerts on failure and success / every source format",
          "[matcher]") {
    auto c = t::config_watching({t::adele});
    CHECK(rules_fired(c, t::read_fixture("graph_signins_page.json")) == V{"breakglass_signin"});
    CHECK(rules_fired(c, t::read_fixture("diag_signins_body.json")) == V{"breakglass_signin"});
    auto c2 = t::config_watching({t::bruno});  // Bruno's sign-in succeeded
    CHECK(rules_fired(c2, t::read_fixture("graph_signins_page.json")) == V{"breakglass_signin"});
}

TEST_CASE("sign-in matched by UPN when the id is absent", "[matcher]") {
    config c = t::config_watching({"0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b"});
    c.watch.accounts[0].upn = "bg1@contoso.example";
    std::string rec = R"({"id":"x1","createdDateTime":"2025-11-03T14:22:07Z","userId":"",
        "userPrincipalName":"BG1@contoso.example","status":{"errorCode":50034}})";
    CHECK(rules_fired(c, rec) == V{"breakglass_signin"});
}

TEST_CASE("service-principal sign-ins are matched on the SP id", "[matcher]") {
    auto c = t::config_watching({t::sp_daemon});
    CHECK(rules_fired(c, t::read_fixture("graph_beta_sp_signins_page.json")) ==
          V{"breakglass_signin"});
}

TEST_CASE("audit rules: actor / target / group and CA policy", "[matcher]") {
    SECTION("initiated by a watched account") {
        CHECK(rules_fired(t::config_watching({t::bruno}),
                          t::read_fixture("graph_audits_page.json")) ==
              V{"breakglass_audit_actor"});
    }
    SECTION("targeting a watched account (role assignment: critical)") {
        pipeline p(t::config_watching({t::adele}));
        auto out = p.process(t::read_fixture("diag_audit_body.json"), {}, 1);
        REQUIRE(out.findings.size() == 1);
        CHECK(out.findings[0].a.rule == "breakglass_audit_target");
        CHECK(out.findings[0].a.sev == severity::critical);
    }
    SECTION("a change to the watched group") {
        CHECK(rules_fired(t::config_watching({t::adele}, {t::finance_group}),
                          t::read_fixture("graph_audits_page.json")) ==
              V{"breakglass_audit_target", "watched_group_change"});
    }
    SECTION("a change to a watched CA policy") {
        std::string rec =
            std::string(R"({"id":"Directory_p_1","activityDateTime":"2025-11-03T14:22:07Z",
            "activityDisplayName":"Update conditional access policy","category":"Policy",
            "initiatedBy":{"user":{"id":")") +
            t::bruno + R"("}},
            "targetResources":[{"id":")" +
            t::ca_block + R"(","type":"Policy","modifiedProperties":[]}]})";
        CHECK(rules_fired(t::config_watching({t::adele}, {}, {t::ca_block}), rec) ==
              V{"ca_policy_change"});
    }
    SECTION("a non-sensitive change to the account is high, not critical") {
        std::string rec =
            std::string(R"({"id":"Directory_q","activityDateTime":"2025-11-03T14:22:07Z",
            "activityDisplayName":"Update StsRefreshTokenValidFrom Timestamp",
            "targetResources":[{"id":")") +
            t::adele + R"("}]})";
        pipeline p(t::config_watching({t::adele}));
        auto out = p.process(rec, {}, 1);
        REQUIRE(out.findings.size() == 1);
        CHECK(out.findings[0].a.sev == severity::high);
    }
}

TEST_CASE("one touch is one alert: an account acting on itself names both rules",
          "[matcher][pipeline]") {
    // "User registered security info": the break-glass account is both initiator and target.
    std::string rec =
        std::string(R"({"id":"Directory_self_1","activityDateTime":"2025-11-03T14:22:07Z",
        "activityDisplayName":"User registered security info","category":"UserManagement",
        "initiatedBy":{"user":{"id":")") +
        t::adele + R"("}},"targetResources":[{"id":")" + t::adele +
        R"(","type":"User","modifiedProperties":[]}]})";
    const auto cfg = t::config_watching({t::adele});
    pipeline p(cfg);
    auto out = p.process(rec, {}, 1);
    REQUIRE(out.findings.size() == 1);  // one page, not two
    const alert& a = out.findings[0].a;
    CHECK(a.rules == V{"breakglass_audit_actor", "breakglass_audit_target"});
    CHECK(a.rule == "breakglass_audit_actor");
    CHECK(a.sev == severity::critical);
    CHECK(a.summary.find("breakglass_audit_target") != std::string::npos);
    CHECK(
        a.detail_json.find("\"rules\":[\"breakglass_audit_actor\",\"breakglass_audit_target\"]") !=
        std::string::npos);
    // The id is the one a single-rule alert for the primary rule always had: stable across
    // sources, restarts and the upgrade that merged the rules.
    CHECK(a.id == make_alert_id(t::tenant, "Directory_self_1", "breakglass_audit_actor"));
    // The same event from the other source format (diagnostic settings) is the same alert.
    std::string diag =
        R"({"records":[{"category":"AuditLogs","operationName":"User registered security info","properties":)" +
        rec + "}]}";
    pipeline p2(cfg);
    auto out2 = p2.process(diag, {}, 1);
    REQUIRE(out2.findings.size() == 1);
    CHECK(out2.findings[0].a.id == a.id);
    CHECK(out2.findings[0].a.rules == a.rules);

    // Routed to the union of the rules' sinks: a sink for either rule gets it, once.
    config routed = cfg;
    sink_config actor_only, target_only, signin_only;
    actor_only.name = "actor";
    actor_only.rules = {"breakglass_audit_actor"};
    target_only.name = "target";
    target_only.rules = {"breakglass_audit_target"};
    signin_only.name = "signin";
    signin_only.rules = {"breakglass_signin"};
    routed.sinks = {actor_only, target_only, signin_only};
    CHECK(route_alert(routed.sinks, a) == V{"actor", "target"});

    // The evidence head is never a page: it reaches only the sinks that name evidence_head, and
    // with none it goes nowhere (no fallback to every sink).
    sink_config catch_all, heads;
    catch_all.name = "everything";
    heads.name = "heads";
    heads.rules = {"evidence_head"};
    alert head = make_health_alert({"t", "t"}, "evidence_head", severity::info, "evidence",
                                   "12:0123456789abcdef", "Evidence head", 1);
    CHECK(route_alert({catch_all, heads}, head) == V{"heads"});
    bool fell_back = true;
    CHECK(route_alert({catch_all}, head, &fell_back).empty());
    CHECK_FALSE(fell_back);
}

TEST_CASE("near misses: a watched id in an unrelated field never alerts", "[matcher]") {
    SECTION("as an applied CA policy id of someone else's sign-in") {
        CHECK(rules_fired(t::config_watching({t::ca_block}),
                          t::read_fixture("graph_signins_page.json"))
                  .empty());
    }
    SECTION("inside additionalDetails") {
        std::string rec =
            std::string(R"({"id":"Directory_d","activityDateTime":"2025-11-03T14:22:07Z",
            "activityDisplayName":"Update user","initiatedBy":{"user":{"id":")") +
            t::bruno + R"("}},
            "targetResources":[],"additionalDetails":[{"key":"oid","value":")" +
            t::adele + R"("}]})";
        CHECK(rules_fired(t::config_watching({t::adele}), rec).empty());
    }
    SECTION("inside JSON-in-string modifiedProperties") {
        std::string rec =
            std::string(R"({"id":"Directory_m","activityDateTime":"2025-11-03T14:22:07Z",
            "activityDisplayName":"Add member to group","targetResources":[{"id":")") +
            t::finance_group +
            R"(","modifiedProperties":[{"displayName":"Group.ObjectID","newValue":"\")" + t::adele +
            R"(\""}]}]})";
        CHECK(rules_fired(t::config_watching({t::adele}), rec).empty());
    }
    SECTION("as a correlation id, the tenant or a resource id") {
        auto body = t::read_fixture("diag_signins_body.json");
        CHECK(rules_fired(t::config_watching({"ff51703a-92e1-4adb-9e1f-9e2eb05fe7c9"}), body)
                  .empty());
        CHECK(rules_fired(t::config_watching({"797f4846-ba00-4fd7-ba43-dac1f8f63013"}), body)
                  .empty());
    }
    SECTION("the decoy mentions are confirmed per record, not per body") {
        // One body: a decoy record for the watched id plus an unrelated sign-in.
        std::string body =
            std::string(R"({"records":[{"category":"SignInLogs","properties":{"id":"d1",
            "createdDateTime":"2025-11-03T14:22:07Z","userId":")") +
            t::bruno + R"(","appliedConditionalAccessPolicies":[{"id":")" + t::adele + R"("}]}},
            {"category":"SignInLogs","properties":{"id":"d2","createdDateTime":"2025-11-03T14:22:08Z","userId":")" +
            t::bruno + R"("}}]})";
        CHECK(rules_fired(t::config_watching({t::adele}), body).empty());
    }
}

TEST_CASE("pipeline counts what it skips and fails closed on unreadable candidates",
          "[matcher][pipeline]") {
    auto c = t::config_watching({t::adele});
    pipeline p(c);
    std::string body =
        std::string(R"({"records":[{"category":"RiskyUsers","properties":{"userId":")") + t::adele +
        R"("}},{"category":"SignInLogs","properties":{"id":"k","createdDateTime":"garbage","userId":")" +
        t::adele + R"("}}]})";
    auto out = p.process(body, {}, 5);
    CHECK(p.stats().skipped_by_category.at("RiskyUsers") == 1);
    CHECK(p.stats().records_malformed == 1);
    REQUIRE(out.findings.size() == 1);
    CHECK(out.findings[0].a.rule == "unparsed_candidate");
    CHECK(out.findings[0].raw.find("garbage") != std::string::npos);
    // A truncated body that mentions a watched id pages too.
    auto out2 = p.process(
        std::string(R"({"records":[{"category":"SignInLogs","properties":{"userId":")") + t::adele,
        {}, 5);
    REQUIRE(out2.findings.size() == 1);
    CHECK(out2.findings[0].a.rule == "unparsed_candidate");
    // Non-candidate garbage is not even parsed.
    auto out3 = p.process("{{{ not json", {}, 5);
    CHECK(out3.findings.empty());
    CHECK(out3.problems.empty());
}

TEST_CASE("drills label alerts for the drilled account inside the window", "[matcher][pipeline]") {
    auto c = t::config_watching({t::adele, t::bruno});
    pipeline p(c);
    auto t0 = *parse_iso8601("2025-11-03T14:00:00Z");
    p.set_drills({{"drill-1", t::adele, t0, t0 + 3600LL * 1000000}});
    auto out = p.process(t::read_fixture("graph_signins_page.json"), {}, 1);
    REQUIRE(out.findings.size() == 2);
    for (auto& f : out.findings) {
        if (f.a.subject_id == t::adele) {
            CHECK(f.a.drill);
            CHECK(f.a.sms.rfind("DRILL ", 0) == 0);
            CHECK(f.a.detail_json.find("\"drill\":true") != std::string::npos);
        } else {
            CHECK_FALSE(f.a.drill);
        }
    }
}

namespace {
// Every GUID and every address-shaped token in `s` (the values a watchlist could name).
std::vector<std::string> identity_tokens(const std::string& s) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i + 36 <= s.size(); ++i)
        if (is_guid(std::string_view(s).substr(i, 36))) out.push_back(s.substr(i, 36));
    for (std::size_t at = s.find('@'); at != std::string::npos; at = s.find('@', at + 1)) {
        std::size_t b = at, e = at + 1;
        while (b > 0 && (std::isalnum(static_cast<unsigned char>(s[b - 1])) || s[b - 1] == '.' ||
                         s[b - 1] == '_' || s[b - 1] == '-'))
            --b;
        while (e < s.size() &&
               (std::isalnum(static_cast<unsigned char>(s[e])) || s[e] == '.' || s[e] == '-'))
            ++e;
        if (b < at && e > at + 1) out.push_back(s.substr(b, e - b));
    }
    return out;
}
}  // namespace

TEST_CASE("the identity probe never dismisses a record the matcher would alert on",
          "[matcher][pipeline]") {
    // Differential over every record of every fixture: for each GUID or UPN the record contains,
    // watched as an account, a group or a CA policy, the pipeline (which asks the probe first)
    // must raise exactly the rules that normalizing fully and matching raise.
    std::vector<std::string> bodies;
    for (const char* f :
         {"graph_signins_page.json", "graph_beta_sp_signins_page.json", "graph_audits_page.json",
          "diag_signins_body.json", "diag_audit_body.json"})
        bodies.push_back(t::read_fixture(f));
    std::istringstream demo(t::read_fixture("demo-stream.ndjson"));
    for (std::string line; std::getline(demo, line) && bodies.size() < 400;)
        if (!line.empty()) bodies.push_back(line);

    std::size_t compared = 0, dismissed = 0, alerted = 0;
    normalizer full;
    for (const auto& body : bodies) {
        auto parts = full.split(body);
        const std::vector<std::string> records(parts.records.begin(), parts.records.end());
        const record_hint hint =
            parts.kind == body_kind::diagnostic_body ? record_hint::diagnostic : record_hint::any;
        for (const auto& rec : records) {
            for (const auto& tok : identity_tokens(rec)) {
                const std::string id = tok;
                for (int as = 0; as < (is_guid(id) ? 3 : 1); ++as) {
                    config c = as == 0   ? t::config_watching({})
                               : as == 1 ? t::config_watching({}, {id.c_str()})
                                         : t::config_watching({}, {}, {id.c_str()});
                    if (as == 0)
                        c.watch.accounts.push_back({is_guid(id)
                                                        ? to_lower_ascii(id)
                                                        : "00000000-0000-4000-8000-000000000001",
                                                    is_guid(id) ? "" : to_lower_ascii(id), "bg"});
                    watchlist wl(c.watch);
                    normalize_result r = full.normalize(rec, hint);
                    std::vector<std::string> want;
                    if (r.status == normalize_status::ok)
                        for (auto& m : match_event(wl, r.ev))
                            want.push_back(m.rule);
                    if (r.status == normalize_status::malformed)
                        want.push_back("unparsed_candidate");
                    pipeline p(c);
                    const std::string one =
                        hint == record_hint::diagnostic ? R"({"records":[)" + rec + "]}" : rec;
                    auto out = p.process(one, body_origin{}, 1);
                    std::vector<std::string> got;
                    for (auto& f : out.findings)
                        got.push_back(f.a.rule);
                    INFO("token " << id << " watched as " << as << " in " << rec.substr(0, 200));
                    CHECK(got == want);
                    ++compared;
                    dismissed += p.stats().not_concerned;
                    alerted += !want.empty();
                }
            }
        }
    }
    // The comparison must have exercised both outcomes many times.
    CHECK(compared > 1000);
    CHECK(dismissed > 100);
    CHECK(alerted > 50);
}

TEST_CASE("a duplicate identity key cannot hide a watched id from the probe",
          "[matcher][pipeline]") {
    // The first "userId" is someone else; a reader taking the last would see the break-glass
    // account. The probe sees every occurrence, so the record reaches the duplicate-key check
    // and fails closed instead of being dismissed.
    auto c = t::config_watching({t::adele});
    const std::string body =
        std::string(R"({"records":[{"category":"SignInLogs","tenantId":")") + t::tenant +
        R"(","properties":{"id":"dup","createdDateTime":"2025-11-03T14:22:07Z","userId":")" +
        t::bruno + R"(","userId":")" + t::adele + R"("}}]})";
    const auto rules = rules_fired(c, body);
    REQUIRE(rules.size() == 1);
    CHECK(rules[0] == "unparsed_candidate");
    pipeline p(c);
    p.process(body, {}, 1);
    CHECK(p.stats().not_concerned == 0);
}
