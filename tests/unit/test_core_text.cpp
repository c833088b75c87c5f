#include <catch2/catch.hpp>

#include "core/base/crypto.hpp"
#include "core/base/json_text.hpp"
#include "core/base/time.hpp"

using namespace glasswatch::core;

TEST_CASE("ISO-8601 forms Entra emits all parse to the same instant", "[time]") {
    auto z7 = parse_iso8601("2025-11-03T14:22:07.4403211Z");
    REQUIRE(z7);
    CHECK(*parse_iso8601("2025-11-03T14:22:07.4403211+00:00") == *z7);
    CHECK(*parse_iso8601("2025-11-03T09:22:07.4403211-05:00") == *z7);
    CHECK(*parse_iso8601("2025-11-03T14:22:07.440321Z") == *z7);
    CHECK(*parse_iso8601("2025-11-03T14:22:07Z") == *z7 - 440321);
    CHECK(*parse_iso8601("2025-11-03 14:22:07Z") == *z7 - 440321);
    CHECK(*parse_iso8601("1970-01-01T00:00:00Z") == 0);
    CHECK(format_iso8601(*z7) == "2025-11-03T14:22:07.440321Z");
    CHECK(format_iso8601(*z7, false) == "2025-11-03T14:22:07Z");
    for (const char* bad :
         {"", "2025-11-03", "2025-13-03T14:22:07Z", "2025-11-03T14:22:07+5", "2025-02-30T00:00:00Z",
          "2025-11-03T14:22:07.Z", "2025-11-03T14:22:07Zjunk", "yesterday"})
        CHECK_FALSE(parse_iso8601(bad));
}

TEST_CASE("duration strings parse to milliseconds", "[time]") {
    CHECK(parse_duration_ms("500ms") == 500);
    CHECK(parse_duration_ms("30s") == 30000);
    CHECK(parse_duration_ms("15m") == 900000);
    CHECK(parse_duration_ms("1h") == 3600000);
    CHECK(parse_duration_ms("90d") == 90LL * 86400000);
    CHECK(parse_duration_ms("45") == 45000);
    CHECK_FALSE(parse_duration_ms("-1s"));
    CHECK_FALSE(parse_duration_ms("1w"));
    CHECK_FALSE(parse_duration_ms(""));
    CHECK(format_duration(61000) == "1m 01s");
}

TEST_CASE("sanitize_line neutralises control and bidi characters and cuts at a boundary",
          "[text]") {
    CHECK(sanitize_line("plain", 100) == "plain");
    CHECK(sanitize_line("a\nb\rc\x1b[31m", 100) == "a?b?c?[31m");
    CHECK(sanitize_line("evil\xE2\x80\xAEtxt.exe", 100) == "evil?txt.exe");  // U+202E
    CHECK(sanitize_line("bad \xFF\xFE utf8", 100) == "bad ?? utf8");
    std::string long_ua(10000, 'x');
    auto cut = sanitize_line(long_ua, 64);
    CHECK(cut.size() == 64);
    CHECK(cut.substr(61) == "...");
    // Never splits a multi-byte character.
    std::string accents;
    for (int i = 0; i < 50; ++i)
        accents += "\xC3\xA9";  // é
    auto c2 = sanitize_line(accents, 20);
    CHECK(c2.size() <= 20);
    CHECK(c2.substr(c2.size() - 3) == "...");
    CHECK((c2.size() - 3) % 2 == 0);
}

TEST_CASE("to_gsm7 keeps one SMS segment", "[text]") {
    CHECK(to_gsm7("GW CRIT bg-1 sign-in OK", 160) == "GW CRIT bg-1 sign-in OK");
    CHECK(to_gsm7("{x}[y]|z^~`\\", 160) == "(x)(y)/z'-'/");
    CHECK(to_gsm7("caf\xC3\xA9 \xF0\x9F\x98\x80", 160) == "caf? ?");
    std::string big(400, 'a');
    auto s = to_gsm7(big, 160);
    CHECK(s.size() == 160);
    CHECK(s.substr(158) == "..");
}

TEST_CASE("crypto helpers match published vectors", "[crypto]") {
    // Standard Webhooks reference vector (alert-sinks.md §8.1).
    std::string key;
    REQUIRE(base64_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key));
    auto sig = base64_encode(
        hmac_sha256(key, "msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\": 2432232314}"));
    CHECK(sig == "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    // GitHub vector.
    CHECK(to_hex(hmac_sha256("It's a Secret to Everybody", "Hello, World!")) ==
          "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(base64url_encode("\xfb\xff") == "-_8");
    std::string out;
    CHECK_FALSE(base64_decode("abc", out));
    REQUIRE(base64_decode("YWI=", out));
    CHECK(out == "ab");
    CHECK(constant_time_equal("abc", "abc"));
    CHECK_FALSE(constant_time_equal("abc", "abd"));
    CHECK(is_guid("CCD9080D-14eb-425d-969a-1577f3f3abeb"));
    CHECK_FALSE(is_guid("ccd9080d14eb425d969a1577f3f3abeb"));
}
