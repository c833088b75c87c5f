// Hashes, MACs and encodings over OpenSSL's libcrypto (pure computation, no I/O).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace glasswatch::core {

using sha256_digest = std::array<std::uint8_t, 32>;

sha256_digest sha256(std::string_view data);
std::string sha256_hex(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);  // raw 32 bytes
std::string hmac_sha1(std::string_view key, std::string_view data);    // raw 20 bytes
std::string to_hex(std::string_view bytes);
std::string base64_encode(std::string_view bytes);
std::string base64url_encode(std::string_view bytes);  // no padding
// Returns false on malformed input (whitespace is not accepted).
bool base64_decode(std::string_view text, std::string& out);
// Constant-time comparison for MACs.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace glasswatch::core
