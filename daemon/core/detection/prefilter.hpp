// Fast path: decides from raw bytes whether a record can possibly concern a watched identifier.
//
// Contract (checked by the differential tests and fuzzer): if the confirming matcher would accept
// a record, may_match() returns true for its bytes. It is allowed to say true for records that
// do not match (decoys, ids in unrelated fields) — the matcher confirms on the parsed record.
//
// How: one SIMD pass looks for '-', '@' and '\\'. At a '-' that is the first hyphen of a
// GUID-shaped token, the 128-bit value is looked up in a small open-addressing table (case does
// not matter: hex is decoded). At an '@' the surrounding UPN-shaped token is lower-cased and
// looked up. A "\\u00XX" escape that decodes to a character that can occur in an id or UPN
// (letter, digit, '-', '.', '@', '_') makes the record a candidate, because the literal id
// might be hidden behind it, and so does one of a character some watched UPN holds (an
// apostrophe, which System.Text.Json writes as \u0027); other escapes (<, >, non-ASCII, and ' when
// no watched UPN has one) are common and harmless.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace glasswatch::core {

class prefilter {
public:
    prefilter(const std::vector<std::string>& guids, const std::vector<std::string>& upns);

    bool may_match(std::string_view bytes) const noexcept;

    std::size_t guid_count() const noexcept { return guid_count_; }

private:
    struct key128 {
        std::uint64_t hi = 0, lo = 0;
    };
    bool lookup_guid(const char* first_hex) const noexcept;  // 36 bytes available
    bool check_hyphen(const char* base, std::size_t n, std::size_t pos) const noexcept;
    bool check_at(const char* base, std::size_t n, std::size_t pos) const noexcept;
    bool check_escape(const char* base, std::size_t n, std::size_t pos) const noexcept;
    bool check(const char* base, std::size_t n, std::size_t pos) const noexcept;
    bool scan_scalar(const char* p, std::size_t n, std::size_t from) const noexcept;
    bool scan_sse2(const char* p, std::size_t n) const noexcept;
    bool scan_avx2(const char* p, std::size_t n) const noexcept;

    // 64 Kbit bitmap of a hash of each watched GUID's first 8 characters (case-folded): rejects
    // almost every unwatched GUID with one load, before the 32-digit decode and table probe.
    std::vector<std::uint64_t> prefix_bits_;
    std::vector<key128> table_;  // open addressing; empty slot = {0,0} (the nil GUID is refused)
    std::uint64_t mask_ = 0;
    std::size_t guid_count_ = 0;
    std::unordered_set<std::string> upns_;
    bool escape_hides_[256] = {};  // a "\u00XX" escape of this character makes a candidate
    bool want_at_ = false;
    bool use_avx2_ = false;
};

}  // namespace glasswatch::core
