#include <catch2/catch.hpp>

#include "core/detection/normalize.hpp"
#include "support/fixtures.hpp"

using namespace glasswatch::core;
using glasswatch::test::read_fixture;

namespace {
std::vector<normalize_result> all_records(normalizer& n, const std::string& body,
                                          record_hint hint = record_hint::any,
                                          signin_type st = signin_type::none) {
    auto parts = n.split(body);
    REQUIRE(parts.error.empty());
    std::vector<std::string> copies(parts.records.begin(), parts.records.end());
    std::vector<normalize_result> out;
    for (const auto& r : copies) {
        record_hint h = parts.kind == body_kind::diagnostic_body ? record_hint::diagnostic : hint;
        out.push_back(n.normalize(r, h, st));
    }
    return out;
}
}  // namespace

TEST_CASE("Graph v1.0 signIns page", "[normalize]") {
    normalizer n;
    auto body = read_fixture("graph_signins_page.json");
    auto parts = n.split(body);
    CHECK(parts.kind == body_kind::graph_page);
    CHECK(parts.records.size() == 2);
    CHECK(parts.next_link.find("$skiptoken=5gmIbLooZyjU0x_8PGeaT8Y9gJgZLipC") != std::string::npos);
    auto recs = all_records(n, body);
    REQUIRE(recs.size() == 2);
    const event& e = recs[0].ev;
    REQUIRE(recs[0].status == normalize_status::ok);
    CHECK(e.kind == event_kind::sign_in);
    CHECK(e.format == record_format::graph_signin);
    CHECK(e.signin == signin_type::interactive);
    CHECK(e.id == "93ec3c53-06d7-4be7-b666-895512bbed16");
    CHECK(e.time == *parse_iso8601("2025-11-03T14:22:07.4403211Z"));
    CHECK(e.actor.id == "ccd9080d-14eb-425d-969a-1577f3f3abeb");
    CHECK(e.actor.upn == "adele.vance@contoso.example");
    CHECK(e.actor.display_name == "Adele Vance");
    CHECK_FALSE(e.success);
    CHECK(e.error_code == 53003);
    CHECK(e.failure_reason.find("Conditional Access") != std::string::npos);
    CHECK(e.ip == "203.0.113.45");
    CHECK(e.city == "Lagos");
    CHECK(e.country == "NG");
    CHECK(e.app_display_name == "Azure Portal");
    CHECK(e.client_app == "Browser");
    CHECK(e.ca_status == "failure");
    CHECK(e.risk_level == "medium");
    CHECK(e.risk_state == "atRisk");
    CHECK(e.correlation_id == "ff51703a-92e1-4adb-9e1f-9e2eb05fe7c9");
    CHECK(e.user_agent.rfind("Mozilla/5.0", 0) == 0);
    CHECK(e.raw.find("\"93ec3c53-06d7-4be7-b666-895512bbed16\"") != std::string::npos);
    CHECK(recs[1].ev.success);
    CHECK(recs[1].ev.time == *parse_iso8601("2025-11-03T14:05:51Z"));
}

TEST_CASE("Graph beta service-principal sign-in", "[normalize]") {
    normalizer n;
    auto recs = all_records(n, read_fixture("graph_beta_sp_signins_page.json"),
                            record_hint::graph_signin, signin_type::none);
    REQUIRE(recs.size() == 1);
    const event& e = recs[0].ev;
    CHECK(e.signin == signin_type::service_principal);  // from signInEventTypes
    CHECK(e.actor.id == "ac1b1732-bf51-4dd1-9fcc-801cbaa9c790");
    CHECK(e.actor.type == "servicePrincipal");
    CHECK(e.actor.display_name == "entra-alert-daemon");
    CHECK(e.actor.app_id == "54c9adb7-b364-40fa-a2c3-198e112d508d");
    CHECK(e.success);
}

TEST_CASE("Graph directoryAudits page", "[normalize]") {
    normalizer n;
    auto recs = all_records(n, read_fixture("graph_audits_page.json"));
    REQUIRE(recs.size() == 2);
    const event& a = recs[0].ev;
    REQUIRE(recs[0].status == normalize_status::ok);
    CHECK(a.kind == event_kind::audit);
    CHECK(a.format == record_format::graph_audit);
    CHECK(a.id == "Directory_3027a2e6-8a5a-43ac-901f-3a05255161ec_QX7KD_48210377");
    CHECK(a.activity == "Add member to role");
    CHECK(a.audit_category == "RoleManagement");
    CHECK(a.operation_type == "Assign");
    CHECK(a.actor.id == "cc474c45-ee95-4669-8e8e-b7658862e5cc");
    CHECK(a.actor.upn == "bruno.diaz@contoso.example");
    REQUIRE(a.targets.size() == 2);
    CHECK(a.targets[0].who.id == "ccd9080d-14eb-425d-969a-1577f3f3abeb");
    CHECK(a.targets[0].who.type == "User");
    REQUIRE(a.targets[0].modified.size() == 3);
    CHECK(a.targets[0].modified[0].new_value == "\"Global Administrator\"");
    CHECK(a.user_agent == "Mozilla/5.0 (Windows NT 10.0; Win64; x64)");
    CHECK(a.success);
    const event& b = recs[1].ev;
    CHECK_FALSE(b.success);
    CHECK(b.failure_reason == "Microsoft.Online.Workflows.ObjectAlreadyExistsException");
    CHECK(b.actor.type == "app");
    CHECK(b.actor.id == "ac1b1732-bf51-4dd1-9fcc-801cbaa9c790");
    CHECK(b.targets[0].who.id == "20660f84-11cd-4df4-a61a-637cecf8c343");
}

TEST_CASE("diagnostic-settings sign-in body: offset timestamps / string resultType / SP rows",
          "[normalize]") {
    normalizer n;
    auto recs = all_records(n, read_fixture("diag_signins_body.json"));
    REQUIRE(recs.size() == 2);
    const event& e = recs[0].ev;
    REQUIRE(recs[0].status == normalize_status::ok);
    CHECK(e.format == record_format::diagnostic);
    CHECK(e.category == "SignInLogs");
    CHECK(e.signin == signin_type::interactive);
    CHECK(e.tenant_id == "3d29e181-4b4e-4710-8621-280aad0bc235");
    CHECK(e.time == *parse_iso8601("2025-11-03T14:22:07.4403211Z"));
    CHECK(e.error_code == 53003);
    CHECK(e.actor.id == "ccd9080d-14eb-425d-969a-1577f3f3abeb");
    const event& sp = recs[1].ev;
    REQUIRE(recs[1].status == normalize_status::ok);
    CHECK(sp.category == "ServicePrincipalSignInLogs");
    CHECK(sp.signin == signin_type::service_principal);
    CHECK(sp.actor.id == "ac1b1732-bf51-4dd1-9fcc-801cbaa9c790");  // userId is null on SP rows
    CHECK(sp.success);
}

TEST_CASE("diagnostic-settings audit body", "[normalize]") {
    normalizer n;
    auto recs = all_records(n, read_fixture("diag_audit_body.json"));
    REQUIRE(recs.size() == 1);
    const event& a = recs[0].ev;
    REQUIRE(recs[0].status == normalize_status::ok);
    CHECK(a.kind == event_kind::audit);
    CHECK(a.category == "AuditLogs");
    CHECK(a.audit_category == "RoleManagement");
    CHECK(a.time == *parse_iso8601("2025-11-03T14:11:29.8844572Z"));
    CHECK(a.targets.at(0).who.id == "ccd9080d-14eb-425d-969a-1577f3f3abeb");
    CHECK(a.user_agent == "Mozilla/5.0 (Windows NT 10.0; Win64; x64)");  // from additionalDetails
}

TEST_CASE("format variants: level case / integer audit result / Type key / escaped keys / BOM",
          "[normalize]") {
    normalizer n;
    SECTION("old audit sample: lower-case level, integer result, Type key, -05:00 offset") {
        std::string rec =
            R"({"time":"2025-11-03T14:11:29Z","category":"AuditLogs","level":"Informational",
            "properties":{"id":"Directory_x_1","activityDisplayName":"Reset user password","result":1,
            "activityDateTime":"2025-11-03T09:11:29-05:00","initiatedBy":{},
            "targetResources":[{"id":"CCD9080D-14EB-425D-969A-1577F3F3ABEB","Type":"User"}]}})";
        auto r = n.normalize(rec);
        REQUIRE(r.status == normalize_status::ok);
        CHECK_FALSE(r.ev.success);
        CHECK(r.ev.time == *parse_iso8601("2025-11-03T14:11:29Z"));
        CHECK(r.ev.targets.at(0).who.id == "ccd9080d-14eb-425d-969a-1577f3f3abeb");
        CHECK(r.ev.targets.at(0).who.type == "User");
        CHECK(r.ev.actor.id.empty());
    }
    SECTION("escaped keys and escaped hyphens decode to the same event") {
        std::string rec =
            "{\"category\":\"SignInLogs\",\"Level\":\"4\",\"properties\":{\"id\":\"e1\","
            "\"createdDateTime\":\"2025-11-03T14:22:07Z\",\"user\\u0049d\":"
            "\"ccd9080d\\u002d14eb\\u002d425d\\u002d969a\\u002d1577f3f3abeb\","
            "\"status\":{\"errorCode\":\"50126\"}}}";
        auto r = n.normalize(rec);
        REQUIRE(r.status == normalize_status::ok);
        CHECK(r.ev.actor.id == "ccd9080d-14eb-425d-969a-1577f3f3abeb");
        CHECK(r.ev.error_code == 50126);
        CHECK_FALSE(r.ev.success);
    }
    SECTION("BOM and trailing whitespace around a body") {
        std::string body = "\xEF\xBB\xBF" + read_fixture("diag_audit_body.json") + "\r\n\n";
        auto parts = n.split(body);
        CHECK(parts.error.empty());
        CHECK(parts.records.size() == 1);
    }
    SECTION("categories we do not handle are skipped, not errors") {
        auto r = n.normalize(R"({"category":"RiskyUsers","properties":{"id":"x"}})");
        CHECK(r.status == normalize_status::skipped_category);
        CHECK(r.error == "RiskyUsers");
        r = n.normalize(R"({"category":"ProvisioningLogs","properties":{"id":"x"}})");
        CHECK(r.status == normalize_status::skipped_category);
    }
    SECTION("malformed records are reported, not thrown") {
        CHECK(n.normalize("{\"category\":\"SignInLogs\",").status == normalize_status::malformed);
        CHECK(n.normalize("[1,2]").status == normalize_status::malformed);
        CHECK(
            n.normalize(
                 R"({"category":"SignInLogs","properties":{"createdDateTime":"2025-11-03T14:22:07Z"}})")
                .status == normalize_status::malformed);  // no id
        CHECK(n.normalize(
                   R"({"category":"SignInLogs","properties":{"id":"x","createdDateTime":"soon"}})")
                  .status == normalize_status::malformed);
        CHECK(n.normalize(
                   R"({"category":"SignInLogs","properties":{"id":"x","createdDateTime":1e400}})")
                  .status == normalize_status::malformed);
        CHECK(
            n.normalize(
                 "{\"id\":\"x\",\"createdDateTime\":\"2025-11-03T14:22:07Z\",\"userId\":\"\xff\"}")
                .status == normalize_status::malformed);  // invalid UTF-8
    }
    SECTION("hostile nesting depth is refused cheaply") {
        std::string deep(100000, '[');
        deep += std::string(100000, ']');
        std::string rec = "{\"id\":\"x\",\"a\":" + deep + "}";
        CHECK(n.normalize(rec).status == normalize_status::malformed);
        // split() walks the nesting without recursion (On-Demand skips it by its structural
        // index) and hands the span over; the record's own parse refuses it at max_depth.
        auto parts = n.split("{\"records\":[" + rec + "]}");
        CHECK(parts.error.empty());
        REQUIRE(parts.records.size() == 1);
        CHECK(n.normalize(std::string(parts.records[0])).status == normalize_status::malformed);
    }
    SECTION("split reports non-object elements and malformed bodies") {
        auto parts = n.split(R"({"records":[1,{"category":"AuditLogs"},"x"]})");
        CHECK(parts.records.size() == 1);
        CHECK(parts.bad_elements == 2);
        CHECK_FALSE(n.split(R"({"records":[{"a":1},)").error.empty());
        CHECK_FALSE(n.split("not json").error.empty());
        CHECK(n.split(R"({"category":"AuditLogs","properties":{}})").kind ==
              body_kind::single_record);
    }
}

TEST_CASE("split: the On-Demand fast path and the scanner fallback agree on tricky bodies",
          "[normalize]") {
    normalizer n;
    SECTION("spans are the records exactly, escaped keys and odd spacing included") {
        auto p =
            n.split("{ \"re\\u0063ords\" : [ {\"a\":1} ,\n{\"b\":\"x}\\\"]\"}  ,7 ],\"z\":[1]}");
        CHECK(p.error.empty());
        CHECK(p.kind == body_kind::diagnostic_body);
        REQUIRE(p.records.size() == 2);
        CHECK(p.records[0] == "{\"a\":1}");
        CHECK(p.records[1] == "{\"b\":\"x}\\\"]\"}");
        CHECK(p.bad_elements == 1);
    }
    SECTION("a Graph page keeps its nextLink with escapes decoded") {
        auto p =
            n.split(R"({"@odata.nextLink":"https://g/x?$skiptoken=a\/b","value":[{"id":"1"}]})");
        CHECK(p.kind == body_kind::graph_page);
        CHECK(p.next_link == "https://g/x?$skiptoken=a/b");
        CHECK(p.records.size() == 1);
    }
    SECTION("trailing bytes after the body are an error") {
        auto p = n.split(R"({"records":[{"a":1}]} {"records":[]})");
        CHECK(p.error == "trailing bytes after the JSON value");
    }
    SECTION("invalid UTF-8 in one record does not hide the others") {
        // On-Demand rejects the whole body; the scanner still returns both spans, and only the
        // bad record fails its own parse.
        std::string body = "{\"records\":[{\"a\":\"\xff\xfe\"},{\"id\":\"ok\"}]}";
        auto p = n.split(body);
        CHECK(p.error.empty());
        REQUIRE(p.records.size() == 2);
        const std::string second(p.records[1]);
        CHECK(second == "{\"id\":\"ok\"}");
        CHECK(n.normalize(std::string(p.records[0])).status == normalize_status::malformed);
    }
    SECTION("an object without a records array is one record") {
        auto p = n.split(R"({"id":"x","records":"not an array"})");
        CHECK(p.kind == body_kind::single_record);
        REQUIRE(p.records.size() == 1);
        CHECK(p.records[0] == R"({"id":"x","records":"not an array"})");
    }
    SECTION("a truncated body is malformed") {
        auto p = n.split(R"({"records":[{"a":1},{"b":)");
        CHECK_FALSE(p.error.empty());
    }
}
