#include "app/cli_args.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "core/base/json_text.hpp"

namespace glasswatch::app {

cli_args::cli_args(std::string command, const std::vector<std::string>& args, std::size_t first)
    : command_(std::move(command)), args_(args), pos_(first) {}

int cli_args::usage_error() const {
    std::fprintf(stderr, "glasswatch %s: %s (see: glasswatch %s --help)\n", command_.c_str(),
                 error_.c_str(), command_.c_str());
    return 2;
}

void cli_args::fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
}

std::optional<std::string> cli_args::take(std::string_view name) {
    const std::string& a = args_[pos_];
    if (a == name) {
        if (pos_ + 1 >= args_.size()) {
            fail(std::string(name) + " needs a value");
            ++pos_;
            return std::string();
        }
        pos_ += 2;
        return args_[pos_ - 1];
    }
    if (a.size() > name.size() && a.compare(0, name.size(), name) == 0 && a[name.size()] == '=') {
        ++pos_;
        return a.substr(name.size() + 1);
    }
    return std::nullopt;
}

bool cli_args::flag(std::string_view name, bool& out) {
    const std::string& a = args_[pos_];
    if (a == name) {
        out = true;
        ++pos_;
        return true;
    }
    if (a.size() > name.size() && a.compare(0, name.size(), name) == 0 && a[name.size()] == '=') {
        fail(std::string(name) + " takes no value");
        ++pos_;
        return true;
    }
    return false;
}

bool cli_args::value(std::string_view name, std::string& out) {
    auto v = take(name);
    if (!v) return false;
    if (failed()) return true;
    if (v->empty()) {
        fail(std::string(name) + " needs a value");
        return true;
    }
    out = std::move(*v);
    return true;
}

bool cli_args::whole(std::string_view name, long min, long max, long& out) {
    auto v = take(name);
    if (!v) return false;
    if (failed()) return true;
    char* end = nullptr;
    errno = 0;
    const long n = std::strtol(v->c_str(), &end, 10);
    if (v->empty() || *end != '\0' || errno != 0 || n < min || n > max) {
        fail(std::string(name) + ": expected a whole number from " + std::to_string(min) + " to " +
             std::to_string(max) + ", got '" + core::sanitize_line(*v, 40) + "'");
        return true;
    }
    out = n;
    return true;
}

bool cli_args::whole(std::string_view name, long min, long max, int& out) {
    long n = out;
    const bool matched = whole(name, min, max, n);
    if (matched && !failed()) out = static_cast<int>(n);
    return matched;
}

bool cli_args::duration(std::string_view name, std::int64_t max_ms, core::micros& out) {
    auto v = take(name);
    if (!v) return false;
    if (failed()) return true;
    auto ms = core::parse_duration_ms(*v);
    if (!ms || *ms <= 0 || *ms > max_ms) {
        fail(std::string(name) + ": expected a duration like 30m (unit ms, s, m, h or d) up to " +
             core::format_duration(max_ms) + ", got '" + core::sanitize_line(*v, 40) + "'");
        return true;
    }
    out = *ms * 1000;
    return true;
}

bool cli_args::time(std::string_view name, core::micros& out) {
    auto v = take(name);
    if (!v) return false;
    if (failed()) return true;
    auto t = parse_cli_time(*v);
    if (!t) {
        fail(std::string(name) +
             ": expected a date YYYY-MM-DD (UTC) or an ISO-8601 time with zone "
             "(2026-03-01T08:00:00Z), got '" +
             core::sanitize_line(*v, 40) + "'");
        return true;
    }
    out = *t;
    return true;
}

bool cli_args::choice(std::string_view name, std::initializer_list<std::string_view> allowed,
                      std::string& out) {
    auto v = take(name);
    if (!v) return false;
    if (failed()) return true;
    for (auto a : allowed)
        if (*v == a) {
            out = *v;
            return true;
        }
    std::string list;
    for (auto a : allowed)
        list += (list.empty() ? "" : ", ") + std::string(a);
    fail(std::string(name) + ": expected one of " + list + ", got '" + core::sanitize_line(*v, 40) +
         "'");
    return true;
}

bool cli_args::positional(std::string& out) {
    const std::string& a = args_[pos_];
    if (!out.empty() || a.empty() || (a[0] == '-' && a != "-")) return false;
    out = a;
    ++pos_;
    return true;
}

void cli_args::unexpected() {
    const std::string& a = args_[pos_];
    if (!a.empty() && a[0] == '-' && a != "-")
        fail("unknown option '" + core::sanitize_line(a, 60) + "'");
    else
        fail("unexpected argument '" + core::sanitize_line(a, 60) + "'");
    ++pos_;
}

std::optional<core::micros> parse_cli_time(std::string_view text) {
    if (auto t = core::parse_iso8601(text)) return t;
    // YYYY-MM-DD: the start of that day, UTC (what a date means in an audit request).
    if (text.size() == 10 && text[4] == '-' && text[7] == '-')
        return core::parse_iso8601(std::string(text) + "T00:00:00Z");
    return std::nullopt;
}

const core::watched_account* find_watched_account(const core::config& cfg, std::string_view who) {
    const std::string key = core::to_lower_ascii(who);
    for (const auto& w : cfg.watch.accounts)
        if (w.object_id == key || (!w.upn.empty() && core::to_lower_ascii(w.upn) == key) ||
            (!w.label.empty() && core::to_lower_ascii(w.label) == key))
            return &w;
    return nullptr;
}

std::string describe_watched_accounts(const core::config& cfg) {
    std::string out;
    for (const auto& w : cfg.watch.accounts) {
        if (!out.empty()) out += ", ";
        out += (w.label.empty() ? (w.upn.empty() ? w.object_id : w.upn) : w.label);
        if (!w.label.empty() || !w.upn.empty()) out += " (" + w.object_id + ")";
    }
    return out;
}

}  // namespace glasswatch::app
