// Retry timing: capped exponential back-off with jitter, and Retry-After parsing.
// The jitter source is a parameter so tests are deterministic (no hidden RNG in core).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "core/base/time.hpp"

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

// Retry-After measured against the answer's own Date header when it has one (an HTTP-date is the
// server's clock, not ours: a VM whose clock runs 2 minutes late must not wait 2 minutes more),
// else against `local_now`.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::string_view date_header,
                                                           micros local_now);

// The back-off state of one remote service, shared by everything sent to it (invariant 8): a
// 429/503 Retry-After, or the capped exponential back-off after 5xx and transport failures,
// holds every request to that service (new alerts, retries, status polls, look-ups), not only
// the one that failed. Pure: times are steady-clock microseconds, jitter is passed in.
class service_gate {
public:
    explicit service_gate(backoff_policy p = {}) : policy_(p) {}
    void set_policy(const backoff_policy& p) noexcept { policy_ = p; }

    bool is_open(micros now) const noexcept { return now >= open_at_; }
    micros open_at() const noexcept { return open_at_; }
    int consecutive_failures() const noexcept { return failures_; }

    // The service answered something that says nothing about its load (2xx, a 4xx refusal).
    void on_answer() noexcept { failures_ = 0; }
    // The service said wait (Retry-After) or failed (5xx, transport error, 429 without
    // Retry-After). Returns how long everything now waits from `now`.
    std::chrono::milliseconds on_failure(micros now, double u,
                                         std::optional<std::chrono::milliseconds> retry_after);

private:
    backoff_policy policy_;
    micros open_at_ = 0;
    int failures_ = 0;
};

// RFC 1123 / RFC 2822 date ("Mon, 03 Nov 2025 14:25:02 +0000" or "... GMT").
std::optional<micros> parse_http_date(std::string_view value);

}  // namespace glasswatch::core
