#include "core/base/backoff.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>

namespace glasswatch::core {

std::chrono::milliseconds backoff_delay(const backoff_policy& p, int failures, double u,
                                        std::optional<std::chrono::milliseconds> retry_after) {
    if (retry_after) {
        auto ra = std::clamp(*retry_after, std::chrono::milliseconds(0), p.max_retry_after);
        return ra;
    }
    double base = static_cast<double>(p.initial.count()) *
                  std::pow(p.multiplier, std::max(0, std::min(failures, 64) - 1));
    base = std::min(base, static_cast<double>(p.max.count()));
    u = std::clamp(u, 0.0, 1.0);
    double d = base * (p.jitter_low + (p.jitter_high - p.jitter_low) * u);
    d = std::min(d, static_cast<double>(p.max.count()));
    return std::chrono::milliseconds(static_cast<std::int64_t>(d));
}

std::optional<micros> parse_http_date(std::string_view v) {
    // [Day, ]DD Mon YYYY HH:MM:SS (GMT|UTC|+hhmm|-hhmm)
    while (!v.empty() && v.front() == ' ')
        v.remove_prefix(1);
    if (auto comma = v.find(','); comma != std::string_view::npos && comma < 10)
        v.remove_prefix(comma + 1);
    while (!v.empty() && v.front() == ' ')
        v.remove_prefix(1);
    int day = 0, year = 0, h = 0, m = 0, s = 0;
    char mon[4] = {};
    auto num = [&](int& out) {
        auto r = std::from_chars(v.data(), v.data() + v.size(), out);
        if (r.ec != std::errc()) return false;
        v.remove_prefix(static_cast<std::size_t>(r.ptr - v.data()));
        return true;
    };
    auto expect = [&](char c) {
        if (v.empty() || v.front() != c) return false;
        v.remove_prefix(1);
        return true;
    };
    if (!num(day) || !expect(' ') || v.size() < 4) return std::nullopt;
    for (int i = 0; i < 3; ++i)
        mon[i] = v[static_cast<std::size_t>(i)];
    v.remove_prefix(3);
    static constexpr std::string_view months = "JanFebMarAprMayJunJulAugSepOctNovDec";
    auto mi = months.find(std::string_view(mon, 3));
    if (mi == std::string_view::npos || mi % 3 != 0) return std::nullopt;
    if (!expect(' ') || !num(year) || !expect(' ') || !num(h) || !expect(':') || !num(m) ||
        !expect(':') || !num(s))
        return std::nullopt;
    while (!v.empty() && v.front() == ' ')
        v.remove_prefix(1);
    int offset = 0;
    if (v == "GMT" || v == "UTC" || v == "Z" || v.empty()) {
        offset = 0;
    } else if ((v.front() == '+' || v.front() == '-') && v.size() == 5) {
        int hh = (v[1] - '0') * 10 + (v[2] - '0'), mm = (v[3] - '0') * 10 + (v[4] - '0');
        offset = (hh * 3600 + mm * 60) * (v.front() == '+' ? 1 : -1);
    } else {
        return std::nullopt;
    }
    char iso[40];
    std::snprintf(iso, sizeof iso, "%04d-%02d-%02dT%02d:%02d:%02dZ", year,
                  static_cast<int>(mi / 3 + 1), day, h, m, s);
    auto t = parse_iso8601(iso);
    if (!t) return std::nullopt;
    return *t - static_cast<micros>(offset) * 1000000;
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view v, micros now) {
    while (!v.empty() && v.front() == ' ')
        v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ')
        v.remove_suffix(1);
    if (v.empty()) return std::nullopt;
    if ((v.front() >= '0' && v.front() <= '9') || v.front() == '.') {
        double secs = 0;
        auto r = std::from_chars(v.data(), v.data() + v.size(), secs);
        if (r.ec != std::errc() || r.ptr != v.data() + v.size() || !std::isfinite(secs) || secs < 0)
            return std::nullopt;
        secs = std::min(secs, 1e9);
        return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(secs * 1000.0)));
    }
    auto t = parse_http_date(v);
    if (!t) return std::nullopt;
    micros delta = *t - now;
    return std::chrono::milliseconds(delta > 0 ? delta / 1000 : 0);
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::string_view date_header,
                                                           micros local_now) {
    const auto server_now = parse_http_date(date_header);
    return parse_retry_after(value, server_now.value_or(local_now));
}

std::chrono::milliseconds service_gate::on_failure(
    micros now, double u, std::optional<std::chrono::milliseconds> retry_after) {
    failures_ = std::min(failures_ + 1, 64);
    const auto wait = backoff_delay(policy_, failures_, u, retry_after);
    open_at_ = std::max(open_at_, now + static_cast<micros>(wait.count()) * 1000);
    return std::chrono::milliseconds((open_at_ - now) / 1000);
}

}  // namespace glasswatch::core
