#include <catch2/catch.hpp>

#include "core/backoff.hpp"

using namespace glasswatch::core;
using std::chrono::milliseconds;

TEST_CASE("back-off grows / is capped and jittered deterministically", "[backoff]") {
    backoff_policy p;
    CHECK(backoff_delay(p, 1, 0.0) == milliseconds(800));
    CHECK(backoff_delay(p, 1, 1.0) == milliseconds(1300));
    CHECK(backoff_delay(p, 2, 0.5) == milliseconds(2100));
    CHECK(backoff_delay(p, 3, 0.0) == milliseconds(3200));
    CHECK(backoff_delay(p, 40, 1.0) == p.max);
    CHECK(backoff_delay(p, 1000000, 0.3) <= p.max);
}

TEST_CASE("Retry-After: seconds / fractional / HTTP-date / garbage", "[backoff]") {
    micros now = *parse_iso8601("2015-10-21T07:27:00Z");
    CHECK(parse_retry_after("7", now) == milliseconds(7000));
    CHECK(parse_retry_after("2.128", now) == milliseconds(2128));
    CHECK(parse_retry_after(" 0 ", now) == milliseconds(0));
    CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == milliseconds(60000));
    CHECK(parse_retry_after("Wed, 21 Oct 2015 07:26:00 GMT", now) ==
          milliseconds(0));  // in the past
    CHECK_FALSE(parse_retry_after("", now));
    CHECK_FALSE(parse_retry_after("soon", now));
    CHECK_FALSE(parse_retry_after("-5", now));
    CHECK_FALSE(parse_retry_after("1e400", now));
    CHECK_FALSE(parse_retry_after("NaN", now));
    // A Retry-After wins over the computed back-off but is clamped.
    backoff_policy p;
    CHECK(backoff_delay(p, 1, 0.0, milliseconds(7000)) == milliseconds(7000));
    CHECK(backoff_delay(p, 1, 0.0, milliseconds(99999999)) == p.max_retry_after);
    CHECK(parse_http_date("Mon, 03 Nov 2025 14:25:02 +0000") ==
          parse_iso8601("2025-11-03T14:25:02Z"));
    CHECK(parse_http_date("Mon, 03 Nov 2025 09:25:02 -0500") ==
          parse_iso8601("2025-11-03T14:25:02Z"));
}
