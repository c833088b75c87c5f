// Timestamps: microseconds since the Unix epoch, UTC. Parsing accepts every form Entra emits
// (Z or numeric offset, 0..7 fractional digits, Twilio's RFC 2822 is elsewhere).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace glasswatch::core {

using micros = std::int64_t;  // microseconds since 1970-01-01T00:00:00Z

// ISO-8601 / RFC 3339: "2025-11-03T14:22:07.4403211Z", "...+00:00", "...-05:00",
// also a space instead of 'T' and no zone (taken as UTC). nullopt when malformed.
std::optional<micros> parse_iso8601(std::string_view s) noexcept;

// "2025-11-03T14:22:07.440321Z" (6 fractional digits) or without fraction when `frac` is false.
std::string format_iso8601(micros t, bool frac = true);

// Parses "30s", "15m", "1h", "90d", "500ms" or a bare number of seconds into milliseconds.
std::optional<std::int64_t> parse_duration_ms(std::string_view s) noexcept;

// "1h 02m", "45s", "3d 4h": for humans.
std::string format_duration(std::int64_t ms);

// Steps of the wall clock (an NTP step after a bad RTC, an operator's `date -s`, a VM restored
// from a snapshot). Fed readings of the wall clock and of a steady clock taken together, it
// reports how far the wall clock moved beyond what the steady clock says elapsed since the
// previous reading. NTP slewing (at most 500 ppm) stays far below `tolerance`. A suspended VM
// looks like a forward step (its steady clock stops); that is what it is to a wall-time schedule.
class wall_step_detector {
public:
    explicit wall_step_detector(micros tolerance = 2000000) : tolerance_(tolerance) {}
    // The step since the previous reading (> 0: the wall clock jumped forward), 0 when there
    // was none beyond `tolerance` or this is the first reading.
    micros observe(micros wall, micros steady) noexcept;

private:
    micros tolerance_;
    micros last_wall_ = 0, last_steady_ = 0;
    bool primed_ = false;
};

}  // namespace glasswatch::core
