// Text hygiene for attacker-controlled strings (userAgent, displayName, location...):
// every sink gets a version that cannot break its format or the reader's terminal.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace glasswatch::core {

std::string to_lower_ascii(std::string_view s);
bool iequals_ascii(std::string_view a, std::string_view b) noexcept;

// 8-4-4-4-12 hex digits, either case.
bool is_guid(std::string_view s) noexcept;

// Percent-encoding of a URL query value (RFC 3986 unreserved characters kept, space -> %20).
std::string url_encode(std::string_view v);
// application/x-www-form-urlencoded encoding of one value (as url_encode, but space -> '+').
std::string form_encode(std::string_view v);

// One printable line: control characters (C0, DEL, C1), line/paragraph separators and bidi
// overrides become '?', invalid UTF-8 becomes '?', and the result is cut at a UTF-8 boundary
// to at most `max_bytes` bytes, ending in "..." when cut.
std::string sanitize_line(std::string_view s, std::size_t max_bytes);

// Maps text onto the GSM 03.38 basic character set so an SMS stays in one 160-char segment:
// ASCII characters outside the basic table are replaced by look-alikes, everything else by '?'.
// The result has at most `max_chars` characters, ending in ".." when cut.
std::string to_gsm7(std::string_view s, std::size_t max_chars);

}  // namespace glasswatch::core
