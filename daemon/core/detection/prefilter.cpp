#include "core/detection/prefilter.hpp"

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GLASSWATCH_X86 1
#endif

namespace glasswatch::core {
namespace {

// Hex value of a character, or 0xFF.
struct hex_table {
    unsigned char v[256];
    constexpr hex_table() : v{} {
        for (int i = 0; i < 256; ++i)
            v[i] = 0xFF;
        for (int i = 0; i < 10; ++i)
            v['0' + i] = static_cast<unsigned char>(i);
        for (int i = 0; i < 6; ++i) {
            v['a' + i] = static_cast<unsigned char>(10 + i);
            v['A' + i] = static_cast<unsigned char>(10 + i);
        }
    }
};
constexpr hex_table hex{};

// Characters that may appear in a UPN token (RFC 5322 atext, '.', and any non-ASCII byte).
struct upn_table {
    bool v[256];
    constexpr upn_table() : v{} {
        for (int c = 0; c < 256; ++c) {
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c >= 0x80;
            for (char x : std::string_view("!#$%&'*+-/=?^_`{|}~."))
                ok = ok || c == x;
            v[c] = ok;
        }
    }
};
constexpr upn_table upn_chars{};

inline std::uint64_t mix(std::uint64_t hi, std::uint64_t lo) noexcept {
    std::uint64_t x = hi * 0x9E3779B97F4A7C15ULL ^ lo;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 29;
    return x;
}

// Decodes a 36-char GUID at p (shape already checked for hyphens) into hi/lo; false if not hex.
inline bool decode_guid(const char* p, std::uint64_t& hi, std::uint64_t& lo) noexcept {
    static constexpr int idx[32] = {0,  1,  2,  3,  4,  5,  6,  7,  9,  10, 11, 12, 14, 15, 16, 17,
                                    19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35};
    std::uint64_t h = 0, l = 0;
    unsigned bad = 0;
    for (int i = 0; i < 16; ++i) {
        unsigned char d = hex.v[static_cast<unsigned char>(p[idx[i]])];
        bad |= d;
        h = (h << 4) | (d & 0xF);
    }
    for (int i = 16; i < 32; ++i) {
        unsigned char d = hex.v[static_cast<unsigned char>(p[idx[i]])];
        bad |= d;
        l = (l << 4) | (d & 0xF);
    }
    if (bad & 0xF0) return false;
    hi = h;
    lo = l;
    return true;
}

// Hash of the first 8 characters of a GUID, case-insensitive for hex digits ('A'|0x20 == 'a';
// digits already have the 0x20 bit), 16 bits.
inline unsigned prefix_hash(const char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    v |= 0x2020202020202020ULL;
    return static_cast<unsigned>((v * 0x9E3779B97F4A7C15ULL) >> 48);
}

}  // namespace

prefilter::prefilter(const std::vector<std::string>& guids, const std::vector<std::string>& upns) {
    std::size_t cap = 16;
    while (cap < guids.size() * 4)
        cap <<= 1;
    table_.assign(cap, key128{});
    prefix_bits_.assign(65536 / 64, 0);
    mask_ = cap - 1;
    for (const auto& g : guids) {
        if (g.size() != 36) continue;
        std::uint64_t hi = 0, lo = 0;
        if (!decode_guid(g.data(), hi, lo) || (hi == 0 && lo == 0)) continue;
        const unsigned h = prefix_hash(g.data());
        prefix_bits_[h >> 6] |= 1ULL << (h & 63);
        std::uint64_t slot = mix(hi, lo) & mask_;
        while (table_[slot].hi != 0 || table_[slot].lo != 0) {
            if (table_[slot].hi == hi && table_[slot].lo == lo) break;
            slot = (slot + 1) & mask_;
        }
        if (table_[slot].hi == 0 && table_[slot].lo == 0) ++guid_count_;
        table_[slot] = {hi, lo};
    }
    for (const auto& u : upns) {
        std::string l(u);
        for (char& c : l)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (!l.empty()) upns_.insert(std::move(l));
    }
    want_at_ = !upns_.empty();
    for (unsigned c = 0; c < 128; ++c) {
        escape_hides_[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                           (c >= 'A' && c <= 'Z') || c == '-' || c == '.' || c == '@' || c == '_';
    }
    for (const auto& u : upns_)
        for (char c : u)
            escape_hides_[static_cast<unsigned char>(c)] = true;
#if GLASSWATCH_X86
    use_avx2_ = __builtin_cpu_supports("avx2");
#endif
}

bool prefilter::lookup_guid(const char* p) const noexcept {
    std::uint64_t hi = 0, lo = 0;
    if (!decode_guid(p, hi, lo)) return false;
    std::uint64_t slot = mix(hi, lo) & mask_;
    for (;;) {
        const key128& k = table_[slot];
        if (k.hi == hi && k.lo == lo) return !(hi == 0 && lo == 0);
        if (k.hi == 0 && k.lo == 0) return false;
        slot = (slot + 1) & mask_;
    }
}

// `pos` is a '-'. It is a candidate first hyphen of a GUID when the 8 bytes before it and the
// hyphens at +5, +10, +15 fit; the hex check happens in decode_guid.
bool prefilter::check_hyphen(const char* base, std::size_t n, std::size_t pos) const noexcept {
    if (pos < 8 || pos + 28 > n) return false;
    const char* g = base + pos - 8;
    if (g[13] != '-' || g[18] != '-' || g[23] != '-') return false;
    const unsigned h = prefix_hash(g);
    if ((prefix_bits_[h >> 6] & (1ULL << (h & 63))) == 0) return false;
    return lookup_guid(g);
}

bool prefilter::check_at(const char* base, std::size_t n, std::size_t pos) const noexcept {
    std::size_t b = pos, e = pos + 1;
    while (b > 0 && upn_chars.v[static_cast<unsigned char>(base[b - 1])])
        --b;
    while (e < n && upn_chars.v[static_cast<unsigned char>(base[e])])
        ++e;
    if (b == pos || e == pos + 1 || e - b > 256) return false;
    std::string token(base + b, e - b);
    for (char& c : token)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return upns_.count(token) != 0;
}

bool prefilter::check_escape(const char* base, std::size_t n, std::size_t pos) const noexcept {
    // "\u00XX" where XX is an id/UPN character. Anything else (\" \\ \n, \u003c, \u00e9) is inert.
    if (pos + 6 > n || base[pos + 1] != 'u' || base[pos + 2] != '0' || base[pos + 3] != '0')
        return false;
    unsigned char h1 = hex.v[static_cast<unsigned char>(base[pos + 4])];
    unsigned char h2 = hex.v[static_cast<unsigned char>(base[pos + 5])];
    if ((h1 | h2) & 0xF0) return false;
    return escape_hides_[h1 * 16u + h2];
}

inline bool prefilter::check(const char* base, std::size_t n, std::size_t pos) const noexcept {
    switch (base[pos]) {
        case '-':
            return check_hyphen(base, n, pos);
        case '@':
            return want_at_ && check_at(base, n, pos);
        case '\\':
            return check_escape(base, n, pos);
        default:
            return false;
    }
}

bool prefilter::scan_scalar(const char* p, std::size_t n, std::size_t from) const noexcept {
    for (std::size_t i = from; i < n; ++i) {
        char c = p[i];
        if ((c == '-' || c == '@' || c == '\\') && check(p, n, i)) return true;
    }
    return false;
}

#if GLASSWATCH_X86
bool prefilter::scan_sse2(const char* p, std::size_t n) const noexcept {
    const __m128i dash = _mm_set1_epi8('-'), at = _mm_set1_epi8('@'), bs = _mm_set1_epi8('\\');
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, dash), _mm_cmpeq_epi8(v, bs)),
                                 _mm_cmpeq_epi8(v, at));
        unsigned bits = static_cast<unsigned>(_mm_movemask_epi8(m));
        while (bits) {
            std::size_t pos = i + static_cast<std::size_t>(__builtin_ctz(bits));
            if (check(p, n, pos)) return true;
            bits &= bits - 1;
        }
    }
    return scan_scalar(p, n, i);
}

namespace {
__attribute__((target("avx2"))) inline std::uint64_t bits(__m256i m) noexcept {
    return static_cast<std::uint64_t>(static_cast<std::uint32_t>(_mm256_movemask_epi8(m)));
}

// Bit i of `dash` is set when p[i] is '-', of `other` when p[i] is '\\' or (with UPNs) '@';
// 64 bytes at p.
__attribute__((target("avx2"))) inline void masks64(const char* p, __m256i at, std::uint64_t& dash,
                                                    std::uint64_t& other) noexcept {
    const __m256i minus = _mm256_set1_epi8('-'), bs = _mm256_set1_epi8('\\');
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    dash = bits(_mm256_cmpeq_epi8(a, minus)) | bits(_mm256_cmpeq_epi8(b, minus)) << 32;
    other = bits(_mm256_or_si256(_mm256_cmpeq_epi8(a, bs), _mm256_cmpeq_epi8(a, at))) |
            bits(_mm256_or_si256(_mm256_cmpeq_epi8(b, bs), _mm256_cmpeq_epi8(b, at))) << 32;
}
}  // namespace

// 64 bytes a step. A GUID's first hyphen is the only '-' followed by hyphens 5, 10 and 15
// bytes later: shifting the hyphen mask (with the next block's bits carried in) leaves just
// those positions, so dates, resource paths and the other three hyphens of every GUID in the
// stream never reach check_hyphen().
__attribute__((target("avx2"))) bool prefilter::scan_avx2(const char* p,
                                                          std::size_t n) const noexcept {
    // Without watched UPNs an '@' needs no look: compare against '\\' twice instead.
    const __m256i at = _mm256_set1_epi8(want_at_ ? '@' : '\\');
    std::size_t i = 0;
    if (n >= 128) {
        std::uint64_t dash = 0, other = 0, next_dash = 0, next_other = 0;
        masks64(p, at, dash, other);
        for (; i + 128 <= n; i += 64) {
            masks64(p + i + 64, at, next_dash, next_other);
            const std::uint64_t first = dash & (dash >> 5 | next_dash << 59) &
                                        (dash >> 10 | next_dash << 54) &
                                        (dash >> 15 | next_dash << 49);
            for (std::uint64_t bits = first | other; bits; bits &= bits - 1)
                if (check(p, n, i + static_cast<std::size_t>(__builtin_ctzll(bits)))) return true;
            dash = next_dash;
            other = next_other;
        }
    }
    return scan_scalar(p, n, i);
}
#else
bool prefilter::scan_sse2(const char* p, std::size_t n) const noexcept {
    return scan_scalar(p, n, 0);
}
bool prefilter::scan_avx2(const char* p, std::size_t n) const noexcept {
    return scan_scalar(p, n, 0);
}
#endif

bool prefilter::may_match(std::string_view bytes) const noexcept {
    if (guid_count_ == 0 && upns_.empty()) return false;
    return use_avx2_ ? scan_avx2(bytes.data(), bytes.size())
                     : scan_sse2(bytes.data(), bytes.size());
}

}  // namespace glasswatch::core
