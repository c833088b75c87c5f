// Retry timing: capped exponential back-off with jitter, and Retry-After parsing.
// The jitter source is a parameter so tests are deterministic (no hidden RNG in core).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "core/time.hpp"

namespace glasswatch::core {

struct backoff_policy {
    std::chrono::milliseconds initial{1000};  // first retry delay
    std::chrono::milliseconds max{300000};    // cap (5 min)
    double multiplier = 2.0;
    double jitter_low = 0.8;  // delay *= jitter_low + (jitter_high - jitter_low) * u, u in [0,1)
    double jitter_high = 1.3;
    std::chrono::milliseconds max_retry_after{3600000};  // a server may not park us longer than 1 h
};

// Delay before retry number `failures` (1 = after the first failure). A Retry-After from the
// server wins over the computed back-off (clamped to max_retry_after) so we never retry early.
std::chrono::milliseconds backoff_delay(const backoff_policy& p, int failures, double u,
                                        std::optional<std::chrono::milliseconds> retry_after = {});

// Retry-After header: delta-seconds (integer or fractional, e.g. "2.128") or an HTTP-date
// ("Wed, 21 Oct 2015 07:28:00 GMT"). nullopt when missing or garbage (caller backs off).
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, micros now);

// RFC 1123 / RFC 2822 date ("Mon, 03 Nov 2025 14:25:02 +0000" or "... GMT").
std::optional<micros> parse_http_date(std::string_view value);

}  // namespace glasswatch::core
