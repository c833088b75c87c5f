#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/alerting/pipeline.hpp"
#include "core/alerting/sink_payloads.hpp"
#include "support/fixtures.hpp"

using namespace glasswatch::core;
namespace t = glasswatch::test;
using json = nlohmann::json;

namespace {
alert sample_alert(std::string ua = "Mozilla/5.0") {
    auto c = t::config_watching({t::adele});
    json rec = json::parse(t::read_fixture("graph_signins_page.json"))["value"][0];
    rec["userAgent"] = ua;
    pipeline p(c);
    auto out = p.process(rec.dump(), {}, 1762180000000000);
    REQUIRE(out.findings.size() == 1);
    return out.findings[0].a;
}
}  // namespace

TEST_CASE("PagerDuty trigger: dedup key = alert id / severity / limits", "[sinks][pagerduty]") {
    alert a = sample_alert();
    auto j = json::parse(pagerduty_trigger(a, "e93facc04764012d7bfb002500d5d1a6", "contoso"));
    CHECK(j["routing_key"] == "e93facc04764012d7bfb002500d5d1a6");
    CHECK(j["event_action"] == "trigger");
    CHECK(j["dedup_key"] == a.id);
    CHECK(j["payload"]["severity"] == "critical");
    CHECK(j["payload"]["source"] == "contoso");
    CHECK(j["payload"]["component"] == "entra-id");
    CHECK(j["payload"]["group"] == "break-glass");
    CHECK(j["payload"]["class"] == "breakglass_signin");
    CHECK(j["payload"]["summary"].get<std::string>().size() <= 1024);
    CHECK(j["payload"]["custom_details"]["alertId"] == a.id);
    CHECK(j["payload"]["custom_details"]["event"]["ipAddress"] == "203.0.113.45");
    CHECK(pagerduty_severity(severity::high) == "error");

    // A 10 KB hostile user agent with quotes, newlines and control characters stays contained.
    std::string ua(10240, 'x');
    ua.replace(0, 30, "\"}\n\r\x01<b>{\"evil\":1}\\u0000");
    auto big = json::parse(pagerduty_trigger(sample_alert(ua), "k", "s"));
    std::string ua_out = big["payload"]["custom_details"]["event"]["userAgent"];
    CHECK(ua_out.size() <= 512);
    CHECK(ua_out.find('\n') == std::string::npos);
    CHECK(ua_out.find('\x01') == std::string::npos);

    alert huge = a;
    huge.detail_json = json{{"blob", std::string(600 * 1024, 'a')}}.dump();
    auto body = pagerduty_trigger(huge, "k", "s");
    CHECK(body.size() <= pagerduty_max_body);
    CHECK(json::parse(body)["payload"]["custom_details"]["alertId"] == a.id);
}

TEST_CASE("PagerDuty answers", "[sinks][pagerduty]") {
    auto ok = classify_pagerduty(
        202, R"({"status":"success","message":"Event processed","dedup_key":"gw-1"})");
    CHECK(ok.verdict == sink_verdict::accepted);
    CHECK(ok.ref == "gw-1");
    auto bad = classify_pagerduty(
        400,
        R"({"status":"invalid event","message":"Event object is invalid","errors":["'routing_key' is invalid"]})");
    CHECK(bad.verdict == sink_verdict::permanent);
    CHECK(bad.error.find("'routing_key' is invalid") != std::string::npos);
    CHECK(classify_pagerduty(429, "").verdict == sink_verdict::transient);
    CHECK(classify_pagerduty(502, "<html>").verdict == sink_verdict::transient);
}

// Found by tests/fuzz/fuzz_http_response: a field of another type than documented (a proxy's
// answer, an API change) threw nlohmann's type_error out of the classifier and stopped the sink
// worker. It must read as a missing field.
TEST_CASE("Sink answers with fields of the wrong type are classified, never thrown",
          "[sinks][fuzz]") {
    auto pd = classify_pagerduty(400, R"({"status":1,"message":{"x":2},"errors":[3,"bad"]})");
    CHECK(pd.verdict == sink_verdict::permanent);
    CHECK(pd.error == "HTTP 400:  ; bad");
    CHECK(classify_pagerduty(202, R"({"dedup_key":5})").ref.empty());
    auto tw = classify_twilio_create(201, R"({"sid":"SM1","status":7})");
    CHECK(tw.verdict == sink_verdict::accepted);
    CHECK(tw.state.empty());
    CHECK(classify_twilio_create(400, R"({"code":21211,"message":null})").error ==
          "HTTP 400 (Twilio 21211): ");
    CHECK_FALSE(twilio_find_sent(R"({"messages":[{"sid":"SM1","body":1},{"body":"GW x",)"
                                 R"("date_created":[]}]})",
                                 "GW x", 0));
}

TEST_CASE("Twilio message form / auth and answers", "[sinks][twilio]") {
    CHECK(twilio_message_form("+14155550123", "", "MG5a8edde8c4d9444f95423dfa16e3cfe5",
                              "ALERT: x@y (NG)") ==
          "To=%2B14155550123&MessagingServiceSid=MG5a8edde8c4d9444f95423dfa16e3cfe5&Body=ALERT%3A+"
          "x%40y+%28NG%29");
    CHECK(twilio_message_form("+14155550123", "+15005550006", "", "hi") ==
          "To=%2B14155550123&From=%2B15005550006&Body=hi");
    CHECK(basic_auth("AC1", "tok") == "Basic QUMxOnRvaw==");
    auto created =
        classify_twilio_create(201, R"({"sid":"SMe1d4","status":"queued","error_code":null})");
    CHECK(created.verdict == sink_verdict::accepted);
    CHECK(created.ref == "SMe1d4");
    CHECK(created.state == "queued");
    auto denied = classify_twilio_create(
        401,
        R"({"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401})");
    CHECK(denied.verdict == sink_verdict::permanent);
    CHECK(denied.error == "HTTP 401 (Twilio 20003): Authenticate");
    CHECK(
        classify_twilio_create(429, R"({"code":20429,"message":"Too Many Requests","status":429})")
            .verdict == sink_verdict::transient);
    CHECK(classify_twilio_create(201, "{}").verdict == sink_verdict::transient);
    auto st = parse_twilio_message(R"({"sid":"SM1","status":"delivered","error_code":null})");
    REQUIRE(st);
    CHECK(st->final_ok);
    auto undelivered =
        parse_twilio_message(R"({"sid":"SM1","status":"undelivered","error_code":30003})");
    CHECK(undelivered->final_bad);
    CHECK(undelivered->error_code == 30003);
    micros since = *parse_iso8601("2025-11-03T14:25:00Z");
    std::string list =
        R"({"messages":[{"sid":"SMold","body":"GW x","date_created":"Mon, 03 Nov 2025 13:00:00 +0000"},
        {"sid":"SMnew","body":"GW x","date_created":"Mon, 03 Nov 2025 14:25:02 +0000"}]})";
    CHECK(twilio_find_sent(list, "GW x", since) == std::optional<std::string>("SMnew"));
    CHECK_FALSE(twilio_find_sent(list, "GW y", since));
}

TEST_CASE("Standard Webhooks signature matches the reference vector", "[sinks][webhook]") {
    CHECK(standard_webhook_signature(
              "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
              R"({"test": 2432232314})") == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    alert a = sample_alert();
    auto body = json::parse(webhook_body(a));
    CHECK(body["type"] == "glasswatch.alert.breakglass_signin");
    CHECK(body["data"]["alertId"] == a.id);
    a.summary = "<@here> & <script>";
    auto slack = json::parse(slack_body(a));
    std::string text = slack["text"];
    CHECK(text.find("&lt;@here&gt; &amp; &lt;script&gt;") != std::string::npos);
    CHECK(text.find('<') == std::string::npos);
    CHECK(classify_webhook(204, "").verdict == sink_verdict::accepted);
    CHECK(classify_webhook(410, "channel_is_archived").verdict == sink_verdict::permanent);
    CHECK(classify_webhook(429, "").verdict == sink_verdict::transient);
    CHECK(classify_webhook(408, "").verdict == sink_verdict::transient);
}

TEST_CASE("SMS burst gate: first alert at once / burst held and grouped", "[sinks][twilio]") {
    using namespace std::chrono_literals;
    using kind = sms_burst_gate::plan::kind;
    const auto t0 = sms_burst_gate::clock::time_point{} + 1000s;
    sms_burst_gate gate(60s);

    CHECK(gate.next(t0, 0).what == kind::nothing);
    // A burst of five arrives at once: the oldest goes now, alone.
    CHECK(gate.next(t0, 5).what == kind::single);
    gate.accepted(t0);
    // The other four (and later arrivals) wait for the window to close.
    auto p = gate.next(t0 + 1s, 4);
    CHECK(p.what == kind::wait);
    CHECK(p.wake == t0 + 60s);
    CHECK(gate.next(t0 + 59s, 9).what == kind::wait);
    // Window closed with alerts held: one grouped SMS, which opens the next window.
    CHECK(gate.next(t0 + 60s, 9).what == kind::group);
    gate.accepted(t0 + 61s);
    CHECK(gate.next(t0 + 100s, 2).what == kind::wait);
    CHECK(gate.next(t0 + 121s, 2).what == kind::group);
    gate.accepted(t0 + 121s);
    // The burst ends: a window closes with nothing held ...
    CHECK(gate.next(t0 + 181s, 0).what == kind::nothing);
    // ... so the next alert is never delayed.
    CHECK(gate.next(t0 + 300s, 1).what == kind::single);
}

TEST_CASE("SMS burst gate: a failing send holds nothing back and zero disables",
          "[sinks][twilio]") {
    using namespace std::chrono_literals;
    using kind = sms_burst_gate::plan::kind;
    const auto t0 = sms_burst_gate::clock::time_point{} + 1000s;
    sms_burst_gate gate(60s);
    CHECK(gate.next(t0, 3).what == kind::single);  // not accepted (sink down): no window opens
    CHECK(gate.next(t0 + 1s, 3).what == kind::single);

    sms_burst_gate off(0s);
    off.accepted(t0);
    CHECK(off.next(t0 + 1s, 4).what == kind::single);
}

TEST_CASE("SMS burst text: count first and one segment", "[sinks][twilio]") {
    const std::string latest =
        "GW CRIT break-glass bg-admin-1 sign-in success 203.0.113.7 (Berlin, DE) Microsoft Teams "
        "14:02Z #a1b2c3";
    const std::string t = sms_burst_text(latest, 17);
    CHECK(t.rfind("GW x17 alerts since last SMS, latest: CRIT break-glass bg-admin-1", 0) == 0);
    CHECK(t.size() <= 160);
    CHECK(sms_burst_text("GW " + std::string(400, 'z'), 3).size() <= 160);
}

TEST_CASE("permanent refusals: which ones hold the sink", "[sinks][paging]") {
    using glasswatch::core::refusal_for_status;
    for (int st : {401, 403, 404, 410}) {
        INFO(st);
        CHECK(refusal_for_status(st).holds);
        CHECK(refusal_for_status(st).cause == "http_" + std::to_string(st));
    }
    for (int st : {400, 413, 422}) {
        INFO(st);
        CHECK_FALSE(refusal_for_status(st).holds);
    }
}
