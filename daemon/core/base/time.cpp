#include "core/base/time.hpp"

#include <chrono>
#include <cstdio>

namespace glasswatch::core {
namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) noexcept {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) {
        char c = s[pos + i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return true;
}

}  // namespace

std::optional<micros> parse_iso8601(std::string_view s) noexcept {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!digits(s, 0, 4, y) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, mo) ||
        s[7] != '-' || !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' ||
        !digits(s, 17, 2, sec))
        return std::nullopt;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
    std::size_t pos = 19;
    std::int64_t frac_us = 0;
    if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
        ++pos;
        int n = 0;
        std::int64_t scale = 100000;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            if (n < 6) {
                frac_us += (s[pos] - '0') * scale;
                scale /= 10;
            }
            ++pos;
            ++n;
        }
        if (n == 0 || n > 9) return std::nullopt;
    }
    std::int64_t offset_s = 0;
    if (pos < s.size()) {
        char z = s[pos];
        if (z == 'Z' || z == 'z') {
            ++pos;
        } else if (z == '+' || z == '-') {
            int oh = 0, om = 0;
            if (!digits(s, pos + 1, 2, oh)) return std::nullopt;
            std::size_t p = pos + 3;
            if (p < s.size() && s[p] == ':') ++p;
            if (!digits(s, p, 2, om)) return std::nullopt;
            if (oh > 23 || om > 59) return std::nullopt;
            offset_s = (oh * 3600 + om * 60) * (z == '+' ? 1 : -1);
            pos = p + 2;
        } else {
            return std::nullopt;
        }
    }
    if (pos != s.size()) return std::nullopt;
    using namespace std::chrono;
    year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    if (!ymd.ok()) return std::nullopt;
    auto days_since = sys_days{ymd}.time_since_epoch().count();
    std::int64_t secs =
        static_cast<std::int64_t>(days_since) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    return secs * 1000000 + frac_us;
}

std::string format_iso8601(micros t, bool frac) {
    using namespace std::chrono;
    std::int64_t secs = t >= 0 ? t / 1000000 : (t - 999999) / 1000000;
    std::int64_t us = t - secs * 1000000;
    std::int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    std::int64_t rem = secs - days * 86400;
    year_month_day ymd{sys_days{std::chrono::days{days}}};
    char buf[64];
    if (frac)
        std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%06lldZ",
                      static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                      static_cast<unsigned>(ymd.day()), static_cast<long long>(rem / 3600),
                      static_cast<long long>(rem % 3600 / 60), static_cast<long long>(rem % 60),
                      static_cast<long long>(us));
    else
        std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lldZ",
                      static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                      static_cast<unsigned>(ymd.day()), static_cast<long long>(rem / 3600),
                      static_cast<long long>(rem % 3600 / 60), static_cast<long long>(rem % 60));
    return buf;
}

std::optional<std::int64_t> parse_duration_ms(std::string_view s) noexcept {
    if (s.empty()) return std::nullopt;
    std::size_t i = 0;
    std::int64_t v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (v > (INT64_MAX / 10 - 9)) return std::nullopt;
        v = v * 10 + (s[i] - '0');
        ++i;
    }
    if (i == 0) return std::nullopt;
    std::string_view unit = s.substr(i);
    std::int64_t mult = 0;
    if (unit.empty() || unit == "s")
        mult = 1000;
    else if (unit == "ms")
        mult = 1;
    else if (unit == "m")
        mult = 60000;
    else if (unit == "h")
        mult = 3600000;
    else if (unit == "d")
        mult = 86400000;
    else
        return std::nullopt;
    if (v > INT64_MAX / mult) return std::nullopt;
    return v * mult;
}

std::string format_duration(std::int64_t ms) {
    if (ms < 0) return "-" + format_duration(-ms);
    if (ms < 1000) return std::to_string(ms) + "ms";
    std::int64_t s = ms / 1000;
    char buf[64];
    if (s < 60)
        std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
    else if (s < 3600)
        std::snprintf(buf, sizeof buf, "%lldm %02llds", static_cast<long long>(s / 60),
                      static_cast<long long>(s % 60));
    else if (s < 86400)
        std::snprintf(buf, sizeof buf, "%lldh %02lldm", static_cast<long long>(s / 3600),
                      static_cast<long long>(s % 3600 / 60));
    else
        std::snprintf(buf, sizeof buf, "%lldd %lldh", static_cast<long long>(s / 86400),
                      static_cast<long long>(s % 86400 / 3600));
    return buf;
}

micros wall_step_detector::observe(micros wall, micros steady) noexcept {
    const micros step = (wall - last_wall_) - (steady - last_steady_);
    const bool first = !primed_;
    primed_ = true;
    last_wall_ = wall;
    last_steady_ = steady;
    if (first || (step < tolerance_ && step > -tolerance_)) return 0;
    return step;
}

}  // namespace glasswatch::core
