// One log line per period for a condition that can repeat per record (a flood of malformed
// records, oversized messages): the first occurrence is reported at once, later ones are counted
// and reported together at most once per `period`. Pure: the caller passes `now`.
//
// Thread: owned by one thread (the source that logs).
#pragma once

#include <cstdint>

#include "core/base/time.hpp"

namespace glasswatch::core {

class log_gate {
public:
    explicit log_gate(micros period) : period_(period) {}

    // Notes `n` occurrences at `now`. Returns how many occurrences the caller's line should
    // report (these plus the ones suppressed since the last line), or 0: stay quiet.
    std::uint64_t note(micros now, std::uint64_t n = 1) {
        pending_ += n;
        if (logged_ && now - last_ < period_) return 0;
        logged_ = true;
        last_ = now;
        const std::uint64_t out = pending_;
        pending_ = 0;
        return out;
    }
    // Occurrences counted but not reported yet.
    std::uint64_t suppressed() const noexcept { return pending_; }

private:
    micros period_;
    micros last_ = 0;
    bool logged_ = false;
    std::uint64_t pending_ = 0;
};

}  // namespace glasswatch::core
