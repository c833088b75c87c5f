#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/alerting/alert.hpp"
#include "core/alerting/pipeline.hpp"
#include "support/fixtures.hpp"

using namespace glasswatch::core;
namespace t = glasswatch::test;

TEST_CASE("alert ids are deterministic per tenant / event and rule", "[alert]") {
    auto a = make_alert_id(t::tenant, "93ec3c53-06d7-4be7-b666-895512bbed16", "breakglass_signin");
    CHECK(a.size() == 35);
    CHECK(a.rfind("gw-", 0) == 0);
    CHECK(a == make_alert_id("3D29E181-4B4E-4710-8621-280AAD0BC235",
                             "93ec3c53-06d7-4be7-b666-895512bbed16", "breakglass_signin"));
    CHECK(a != make_alert_id(t::tenant, "93ec3c53-06d7-4be7-b666-895512bbed16",
                             "breakglass_audit_actor"));
    CHECK(a !=
          make_alert_id(t::tenant, "93ec3c53-06d7-4be7-b666-895512bbed17", "breakglass_signin"));
    // Pinned (computed independently: sha256 of "tenant\x1fevent\x1frule", first 128 bits):
    // a change here changes every dedup key at PagerDuty.
    CHECK(a == "gw-23007b83f1f5cd8fef8ea88a105e7979");
}

TEST_CASE("the same sign-in from Graph and from Event Hub yields the same alert id", "[alert]") {
    auto c = t::config_watching({t::adele});
    pipeline p(c);
    auto g = p.process(t::read_fixture("graph_signins_page.json"), {}, 1);
    auto d = p.process(t::read_fixture("diag_signins_body.json"), {}, 2);
    REQUIRE(g.findings.size() == 1);
    REQUIRE(d.findings.size() == 1);
    CHECK(g.findings[0].a.id == d.findings[0].a.id);
}

TEST_CASE("alert texts: one SMS segment / escaped attacker strings / full JSON detail", "[alert]") {
    auto c = t::config_watching({t::adele});
    std::string hostile_ua(10240, 'A');
    hostile_ua.replace(0, 40, "\"quoted\"\n\r\t\x1b[2J\xE2\x80\xAE<script>{|}~^`\\ ");
    nlohmann::json rec =
        nlohmann::json::parse(t::read_fixture("graph_signins_page.json"))["value"][0];
    rec["userAgent"] = hostile_ua;
    rec["appDisplayName"] = "App\nInjected: line";
    rec["location"]["city"] = std::string(300, 'Z');
    pipeline p(c);
    auto out = p.process(rec.dump(), {}, 1);
    REQUIRE(out.findings.size() == 1);
    const alert& a = out.findings[0].a;
    INFO(a.sms);
    CHECK(a.sms.size() <= 160);
    for (char ch : a.sms) {
        CHECK(ch >= 0x20);
        CHECK(ch < 0x7f);
        CHECK(std::string("[]{}|~^`\\").find(ch) == std::string::npos);
    }
    CHECK(a.sms.find("bg-1") != std::string::npos);
    CHECK(a.sms.find("FAIL 53003") != std::string::npos);
    CHECK(a.sms.find("203.0.113.45 NG") != std::string::npos);
    CHECK(a.summary.size() <= 1024);
    CHECK(a.summary.find('\n') == std::string::npos);
    auto d = nlohmann::json::parse(a.detail_json);
    CHECK(d["rule"] == "breakglass_signin");
    CHECK(d["severity"] == "critical");
    CHECK(d["event"]["id"] == "93ec3c53-06d7-4be7-b666-895512bbed16");
    CHECK(d["event"]["result"]["errorCode"] == 53003);
    CHECK(d["event"]["ipAddress"] == "203.0.113.45");
    CHECK(d["event"]["location"]["countryOrRegion"] == "NG");
    CHECK(d["event"]["correlationId"] == "ff51703a-92e1-4adb-9e1f-9e2eb05fe7c9");
    CHECK(d["event"]["conditionalAccessStatus"] == "failure");
    std::string ua = d["event"]["userAgent"];
    CHECK(ua.size() <= 512);
    CHECK(ua.find('\n') == std::string::npos);
    CHECK(ua.find('\x1b') == std::string::npos);
    CHECK(std::string(d["event"]["app"]["displayName"]).find('\n') == std::string::npos);
    CHECK(std::string(d["event"]["location"]["city"]).size() <= 256);
}

TEST_CASE("health alerts get one id per episode", "[alert]") {
    alert_context ctx{t::tenant, "contoso"};
    auto a = make_health_alert(ctx, "source_down", severity::high, "graph", "1700000000",
                               "Graph unreachable", 5);
    auto b = make_health_alert(ctx, "source_down", severity::high, "graph", "1700000000",
                               "Graph unreachable", 9);
    auto c = make_health_alert(ctx, "source_down", severity::high, "graph", "1700000999",
                               "Graph unreachable", 9);
    CHECK(a.id == b.id);
    CHECK(a.id != c.id);
    CHECK(a.sms.size() <= 160);
}
