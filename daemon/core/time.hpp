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

}  // namespace glasswatch::core
