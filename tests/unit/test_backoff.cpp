#include <catch2/catch.hpp>

#include "core/base/backoff.hpp"

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

TEST_CASE("Retry-After as an HTTP-date is read against the answer's own Date",
          "[backoff][paging]") {
    // The VM's clock runs two minutes late; the service says "come back at 07:28:00" and its
    // Date says it is 07:27:00 now: the wait is one minute, not three.
    const micros local = *parse_iso8601("2015-10-21T07:25:00Z");
    CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:27:00 GMT",
                            local) == milliseconds(60000));
    // No (or an unreadable) Date: the local clock is all there is.
    CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", "", local) == milliseconds(180000));
    CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", "yesterday", local) ==
          milliseconds(180000));
    CHECK(parse_retry_after("3", "Wed, 21 Oct 2015 07:27:00 GMT", local) == milliseconds(3000));
}

TEST_CASE("a service gate holds every request after a wait or a failure", "[backoff][paging]") {
    backoff_policy p;
    p.initial = milliseconds(1000);
    p.max = milliseconds(30000);
    service_gate g(p);
    const micros t0 = 1'000'000'000;
    CHECK(g.is_open(t0));
    // Retry-After: 3 closes the gate for everything, for 3 s.
    CHECK(g.on_failure(t0, 0.5, milliseconds(3000)) == milliseconds(3000));
    CHECK_FALSE(g.is_open(t0 + 2'999'000));
    CHECK(g.is_open(t0 + 3'000'000));
    // A shorter wait asked for later never opens it early.
    g.on_failure(t0 + 100'000, 0.5, milliseconds(1000));
    CHECK_FALSE(g.is_open(t0 + 2'999'000));
    // Failures without Retry-After back off exponentially, counted across requests...
    service_gate b(p);
    b.on_failure(t0, 0.0, std::nullopt);  // 1 s * 0.8
    CHECK(b.open_at() == t0 + 800'000);
    b.on_failure(b.open_at(), 0.0, std::nullopt);  // 2 s * 0.8
    CHECK(b.open_at() == t0 + 800'000 + 1'600'000);
    CHECK(b.consecutive_failures() == 2);
    // ...and an answer resets the count (not a gate already closed).
    b.on_answer();
    CHECK(b.consecutive_failures() == 0);
    b.on_failure(b.open_at(), 0.0, std::nullopt);
    CHECK(b.consecutive_failures() == 1);
}
