// Wall-clock steps: the detector and the Graph poll cursor that must not trust the local clock.
#include <catch2/catch.hpp>

#include "core/base/backoff.hpp"
#include "core/base/time.hpp"
#include "core/protocol/graph_query.hpp"

using namespace glasswatch::core;

namespace {
constexpr micros s = 1000000;
constexpr micros hour = 3600 * s;
constexpr micros day = 24 * hour;
}  // namespace

TEST_CASE("wall_step_detector reports steps of the wall clock and nothing else", "[clock]") {
    wall_step_detector d;
    const micros w0 = 1762180000 * s, s0 = 500 * s;
    CHECK(d.observe(w0, s0) == 0);  // the first reading only primes
    SECTION("both clocks advance together: no step") {
        CHECK(d.observe(w0 + 10 * s, s0 + 10 * s) == 0);
        CHECK(d.observe(w0 + 70 * s, s0 + 70 * s) == 0);
    }
    SECTION("NTP slewing (500 ppm over ten minutes) is no step") {
        CHECK(d.observe(w0 + 600 * s + 300000, s0 + 600 * s) == 0);
    }
    SECTION("forward and backward steps of an hour and a day") {
        CHECK(d.observe(w0 + 1 * s + hour, s0 + 1 * s) == hour);
        CHECK(d.observe(w0 + 2 * s, s0 + 2 * s) == -hour);
        CHECK(d.observe(w0 + 3 * s + day, s0 + 3 * s) == day);
        CHECK(d.observe(w0 + 4 * s, s0 + 4 * s) == -day);
        CHECK(d.observe(w0 + 5 * s, s0 + 5 * s) == 0);  // steady again afterwards
    }
    SECTION("a step below the tolerance is ignored") {
        CHECK(d.observe(w0 + 1 * s + 1500000, s0 + 1 * s) == 0);
        CHECK(d.observe(w0 + 3 * s, s0 + 2 * s) == 0);  // -0.5 s, from the last reading
    }
}

TEST_CASE("the Graph cursor follows the server's Date, not the local clock", "[clock][graph]") {
    const micros server = 1762180000 * s;
    const auto date = parse_http_date("Mon, 03 Nov 2025 14:26:40 GMT");
    REQUIRE(date);
    SECTION("a local clock a day ahead does not move the window past unread events") {
        const micros cursor = poll_cursor(*date + day, date);
        CHECK(cursor == *date - 1 * s);
        // An event the tenant creates right after this poll is inside the next window.
        const micros lookback = 600 * s;
        CHECK(cursor - lookback < *date + 2 * s);
    }
    SECTION("a local clock set back a day does not widen the window by a day") {
        CHECK(poll_cursor(*date - day, date) == *date - 1 * s);
    }
    SECTION("no (or an unusable) Date header: the local clock at the poll's start") {
        CHECK(poll_cursor(server, std::nullopt) == server);
        CHECK(poll_cursor(server, micros{0}) == server);
    }
}
