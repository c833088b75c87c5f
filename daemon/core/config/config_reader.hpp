// How a section parser reads TOML (internal to daemon/core/config): the table reader that
// records every key asked for, the value checks (ids, names, URLs, durations, secrets) and the
// parse state the cross-checks need. Shared by the section parsers in config_*.cpp.
#pragma once

#include "core/base/time.hpp"
#include "core/config/config.hpp"

#include <toml++/toml.h>

#include <toml++/toml.h>
#include <algorithm>
#include <array>
#include <charconv>
#include <exception>
#include <limits>
#include <set>
#include <string>
#include <utility>

namespace glasswatch::core::config_detail {

// ---------------------------------------------------------------------------------------------
// Character and string helpers. Hand-written instead of <cctype>/<regex>: <cctype> depends on
// the locale and <regex> is slow to compile and easy to get wrong for anchored matches.

inline bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}
inline bool is_lower_alpha(char c) noexcept {
    return c >= 'a' && c <= 'z';
}
inline bool is_alpha(char c) noexcept {
    return is_lower_alpha(c) || (c >= 'A' && c <= 'Z');
}
inline bool is_hex(char c) noexcept {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
inline char to_lower_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string to_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = to_lower_char(c);
    return out;
}

inline bool starts_with_ci(std::string_view s, std::string_view prefix) noexcept {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        if (to_lower_char(s[i]) != to_lower_char(prefix[i])) return false;
    }
    return true;
}

inline bool is_guid(std::string_view s) noexcept {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool dash_position = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash_position ? s[i] != '-' : !is_hex(s[i])) return false;
    }
    return true;
}

inline bool is_env_name(std::string_view s) noexcept {
    if (s.empty() || !(is_alpha(s[0]) || s[0] == '_')) return false;
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return is_alpha(c) || is_digit(c) || c == '_'; });
}

inline bool is_sink_name(std::string_view s) noexcept {
    if (s.empty() || s.size() > 32) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return is_lower_alpha(c) || is_digit(c) || c == '_' || c == '-';
    });
}

// ^\+[1-9][0-9]{6,14}$
inline bool is_e164(std::string_view s) noexcept {
    if (s.size() < 8 || s.size() > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9') return false;
    return std::all_of(s.begin() + 1, s.end(), is_digit);
}

// Twilio SIDs: two-letter prefix + 32 hex digits.
inline bool is_twilio_sid(std::string_view s, std::string_view prefix) noexcept {
    if (s.size() != prefix.size() + 32 || s.substr(0, prefix.size()) != prefix) return false;
    return std::all_of(s.begin() + static_cast<std::ptrdiff_t>(prefix.size()), s.end(), is_hex);
}

// RFC 9110 token characters, for header names.
inline bool is_token(std::string_view s) noexcept {
    if (s.empty()) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return is_alpha(c) || is_digit(c) ||
               std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
}

inline bool has_control_char(std::string_view s) noexcept {
    return std::any_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

// What Entra accepts as a user principal name: at most 113 characters, one '@', letters, digits
// and ' . - _ ! # ^ ~ before it, a DNS name after it. Anything else could never sign in, and the
// prefilter finds UPNs as tokens of exactly these characters: a UPN outside them would be missed.
inline bool is_entra_upn(std::string_view s) noexcept {
    const std::size_t at = s.find('@');
    if (at == 0 || at == std::string_view::npos || at + 1 == s.size() || s.size() > 113)
        return false;
    const auto user_char = [](char c) {
        return is_alpha(c) || is_digit(c) ||
               std::string_view("'.-_!#^~").find(c) != std::string_view::npos;
    };
    const auto domain_char = [](char c) {
        return is_alpha(c) || is_digit(c) || c == '.' || c == '-';
    };
    return std::all_of(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(at), user_char) &&
           std::all_of(s.begin() + static_cast<std::ptrdiff_t>(at) + 1, s.end(), domain_char);
}

// Optimal string alignment distance (Levenshtein plus adjacent transpositions): "pol_interval"
// and "poll_inetrval" are both one typo away from "poll_interval".
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
    const std::size_t n = a.size();
    const std::size_t m = b.size();
    std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
    for (std::size_t i = 0; i <= n; ++i)
        d[i][0] = i;
    for (std::size_t j = 0; j <= m; ++j)
        d[0][j] = j;
    for (std::size_t i = 1; i <= n; ++i) {
        for (std::size_t j = 1; j <= m; ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        }
    }
    return d[n][m];
}

// ---------------------------------------------------------------------------------------------
// Key paths: "sinks[1].routing_key_file". Keys that are not bare TOML keys are quoted so the
// path can be pasted back into the file.

inline bool is_bare_key(std::string_view k) noexcept {
    if (k.empty()) return false;
    return std::all_of(k.begin(), k.end(),
                       [](char c) { return is_alpha(c) || is_digit(c) || c == '_' || c == '-'; });
}

inline std::string child_path(std::string_view parent, std::string_view key) {
    std::string out(parent);
    if (!out.empty()) out += '.';
    if (is_bare_key(key)) {
        out += key;
    } else {
        out += '"';
        for (char c : key) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out;
}

inline std::string index_path(std::string_view parent, std::size_t i) {
    return std::string(parent) + "[" + std::to_string(i) + "]";
}

inline int line_of(const toml::node& n) noexcept {
    return static_cast<int>(n.source().begin.line);
}

// ---------------------------------------------------------------------------------------------
// Durations: "<int><unit>" with unit ms|s|m|h|d, or a TOML integer meaning seconds.

inline constexpr std::string_view duration_help =
    "expected <integer><unit> with unit ms, s, m, h or d (e.g. \"500ms\", \"30s\", \"15m\", "
    "\"1h\", \"90d\") or an integer number of seconds";

// Returns milliseconds, or an error message in `why` (the grammar lives in core/time).
inline std::optional<std::int64_t> parse_duration_text(std::string_view text, std::string& why) {
    if (!text.empty() && text.front() == '-') {
        why = "must not be negative";
        return std::nullopt;
    }
    // A quoted number without a unit is ambiguous (seconds? ms?): only the TOML integer form
    // means seconds.
    const auto unit_at = text.find_first_not_of("0123456789");
    if (unit_at != std::string_view::npos && unit_at > 0)
        if (auto ms = parse_duration_ms(text)) return ms;
    const std::string_view unit = unit_at == std::string_view::npos ? "" : text.substr(unit_at);
    const bool known_unit =
        unit == "ms" || unit == "s" || unit == "m" || unit == "h" || unit == "d";
    why = known_unit && unit_at > 0
              ? "duration is too large"
              : "bad duration \"" + std::string(text) + "\": " + std::string(duration_help);
    return std::nullopt;
}

inline std::string format_duration(seconds s) {
    const auto n = s.count();
    if (n != 0 && n % 86400 == 0) return std::to_string(n / 86400) + "d";
    if (n != 0 && n % 3600 == 0) return std::to_string(n / 3600) + "h";
    if (n != 0 && n % 60 == 0) return std::to_string(n / 60) + "m";
    return std::to_string(n) + "s";
}

// ---------------------------------------------------------------------------------------------
// URLs.

inline bool is_loopback_host(std::string_view host) noexcept {
    if (host == "localhost" || host == "::1") return true;
    // 127.0.0.0/8, dotted quad.
    if (host.substr(0, 4) != "127.") return false;
    int octets = 0;
    std::size_t pos = 0;
    while (pos <= host.size()) {
        const std::size_t dot = std::min(host.find('.', pos), host.size());
        const std::string_view part = host.substr(pos, dot - pos);
        if (part.empty() || part.size() > 3 || !std::all_of(part.begin(), part.end(), is_digit))
            return false;
        if (std::stoi(std::string(part)) > 255) return false;
        ++octets;
        pos = dot + 1;
    }
    return octets == 4;
}

inline bool has_userinfo(std::string_view url) noexcept {
    const std::size_t scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) return false;
    const std::string_view rest = url.substr(scheme_end + 3);
    const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    return authority.find('@') != std::string_view::npos;
}

enum class url_policy {
    https_or_loopback_http,  // identity endpoints: a token must never travel in clear text
    http_or_https,           // alert endpoints: plain http is only a warning (lab receivers)
    http_only,               // CONNECT proxies
};

// Returns an error message, or "" when the URL is acceptable. Never echoes the URL: a pasted
// URL may carry credentials.
inline std::string check_url(std::string_view url, url_policy policy) {
    const bool is_https = starts_with_ci(url, "https://");
    const bool is_http = starts_with_ci(url, "http://");
    const std::string host = url_host(url);
    std::string expected;
    switch (policy) {
        case url_policy::https_or_loopback_http:
            expected = "expected an https:// URL (http:// only to 127.0.0.1, localhost or [::1])";
            break;
        case url_policy::http_or_https:
            expected = "expected an https:// or http:// URL";
            break;
        case url_policy::http_only:
            expected = "expected an http://host:port proxy URL";
            break;
    }
    if ((!is_https && !is_http) || host.empty()) return expected;
    if (has_userinfo(url)) {
        return "URLs must not carry credentials (user:password@): secrets are never inline";
    }
    if (policy == url_policy::https_or_loopback_http && is_http && !is_loopback_host(host)) {
        return expected;
    }
    if (policy == url_policy::http_only && !is_http) return expected;
    return {};
}

// ---------------------------------------------------------------------------------------------
// Well-known ids that must never be on the watchlist: they appear in (nearly) every record, so
// watching them would turn the whole stream into candidates and bury the real break-glass alert.

struct well_known_id {
    std::string_view id;
    std::string_view name;
};

inline constexpr well_known_id well_known_ids[] = {
    {"00000003-0000-0000-c000-000000000000", "the Microsoft Graph application id"},
    {"00000002-0000-0000-c000-000000000000", "the Azure AD Graph application id"},
    {"00000002-0000-0ff1-ce00-000000000000", "the Exchange Online application id"},
    {"00000003-0000-0ff1-ce00-000000000000", "the SharePoint Online application id"},
    {"00000004-0000-0ff1-ce00-000000000000", "the Skype for Business Online application id"},
    {"00000006-0000-0ff1-ce00-000000000000", "the Microsoft Office 365 Portal application id"},
    {"0000000a-0000-0000-c000-000000000000", "the Microsoft Intune application id"},
    {"0000000c-0000-0000-c000-000000000000", "the Microsoft App Access Panel application id"},
    {"c44b4083-3bb0-49c1-b47d-974e53cbdf3c", "the Azure Portal application id"},
    {"d3590ed6-52b3-4102-aeff-aad2292ab01c", "the Microsoft Office application id"},
    {"797f4846-ba00-4fd7-ba43-dac1f8f63013", "the Azure Service Management application id"},
    {"1b730954-1685-4b74-9bfd-dac224a7b894", "the Azure AD PowerShell application id"},
    {"04b07795-8ddb-461a-bbee-02f9e1bf7b46", "the Azure CLI application id"},
    {"1950a258-227b-4e31-a9cf-717495945fc2", "the Azure PowerShell application id"},
    {"14d82eec-204b-4c2f-b7e8-296a70dab67e", "the Microsoft Graph PowerShell application id"},
    {"1fec8e78-bce4-4aaf-ab1b-5451cc387264", "the Microsoft Teams application id"},
    {"cc15fd57-2c6c-4117-a88c-83b1d56b4bbe", "the Microsoft Teams Services application id"},
    {"c5393580-f805-4401-95e8-94b7a6ef2fc2", "the Office 365 Management APIs application id"},
    {"29d9ed98-a469-4536-ade2-f981bc1d605e", "the Microsoft Authentication Broker application id"},
    {"27922004-5251-4030-b22d-91ecd9a37ea4", "the Outlook Mobile application id"},
    {"872cd9fa-d31f-45e0-9eab-6e460a02d1f1", "the Visual Studio application id"},
    {"cfa8b339-82a2-471a-a3c9-0fc0be7a4093", "the Azure Key Vault application id"},
    {"38aa3b87-a06d-4817-b275-7a316988d93b", "the Windows Sign In application id"},
    {"19db86c3-b2b9-44cc-b339-36da233a3be2", "the My Sign-Ins application id"},
    {"2793995e-0a7d-40d7-bd35-6968ba142197", "the My Apps application id"},
    {"8c59ead7-d703-4a27-9e55-c96a0054c8d2", "the My Profile application id"},
    {"ecd6b820-32c2-49b6-98a6-444530e5a77a", "the Microsoft Edge application id"},
    {"00000000-0000-0000-0000-000000000000", "the nil GUID"},
    {"f8cdef31-a31e-4b4a-93e4-5f571e91255a", "the Microsoft Services tenant id"},
    {"62e90394-69f5-4237-9190-012177145e10", "the Global Administrator role template id"},
};

// ---------------------------------------------------------------------------------------------
// Reading one TOML table. Every key a parser asks for is recorded as known, so `finish()` can
// report the keys nobody asked for, with a suggestion from the known ones.

class table_reader {
public:
    table_reader(std::vector<config_error>& errors, const toml::table& table, std::string path)
        : errors_(errors), table_(table), path_(std::move(path)) {}

    const std::string& path() const noexcept { return path_; }
    int line() const noexcept { return line_of(table_); }
    std::string key_path(std::string_view key) const { return child_path(path_, key); }

    void error_at(std::string_view key, const toml::node& node, std::string message) {
        errors_.push_back({key_path(key), line_of(node), std::move(message)});
    }
    // For a missing key: the line of the table that should have held it.
    void error_missing(std::string_view key, std::string message) {
        errors_.push_back({key_path(key), line(), std::move(message)});
    }
    std::vector<config_error>& errors() noexcept { return errors_; }

    // Marks `key` as known and returns its node, or nullptr when absent.
    const toml::node* take(std::string_view key) {
        known_.emplace_back(key);
        return table_.get(key);
    }
    // Looks without taking (the key is still reported unknown unless taken).
    const toml::node* peek(std::string_view key) const { return table_.get(key); }
    bool is_known(std::string_view key) const {
        return std::find(known_.begin(), known_.end(), key) != known_.end();
    }
    void mark_known(std::string_view key) { known_.emplace_back(key); }

    // Keys present in the table that no parser asked for yet.
    std::vector<std::pair<std::string, const toml::node*>> unread() const {
        std::vector<std::pair<std::string, const toml::node*>> out;
        for (auto&& [k, v] : table_) {
            if (!is_known(k.str())) out.emplace_back(std::string(k.str()), &v);
        }
        return out;
    }

    void finish() {
        for (const auto& [key, node] : unread()) {
            std::string message = "unknown key";
            const std::string hint = suggest(key);
            if (!hint.empty()) message += " (did you mean \"" + hint + "\"?)";
            error_at(key, *node, std::move(message));
        }
    }

    // ---- typed getters: report a type error and return false when the value is unusable.

    bool get_string(std::string_view key, std::string& out) {
        const toml::node* n = take(key);
        if (n == nullptr) return false;
        const auto* s = n->as_string();
        if (s == nullptr) {
            error_at(key, *n, "expected a string");
            return false;
        }
        out = s->get();
        return true;
    }

    bool get_bool(std::string_view key, bool& out) {
        const toml::node* n = take(key);
        if (n == nullptr) return false;
        const auto* b = n->as_boolean();
        if (b == nullptr) {
            error_at(key, *n, "expected a boolean (true or false)");
            return false;
        }
        out = b->get();
        return true;
    }

    template <typename T>
    bool get_int(std::string_view key, T& out, std::int64_t min, std::int64_t max) {
        const toml::node* n = take(key);
        if (n == nullptr) return false;
        const auto* i = n->as_integer();
        if (i == nullptr) {
            error_at(key, *n, "expected an integer");
            return false;
        }
        const std::int64_t v = i->get();
        if (v < min || v > max) {
            error_at(key, *n,
                     "must be between " + std::to_string(min) + " and " + std::to_string(max));
            return false;
        }
        out = static_cast<T>(v);
        return true;
    }

    bool get_seconds(std::string_view key, seconds& out, seconds min = seconds{0}) {
        const toml::node* n = take(key);
        if (n == nullptr) return false;
        std::int64_t ms = 0;
        if (const auto* i = n->as_integer()) {
            const std::int64_t v = i->get();
            if (v < 0) {
                error_at(key, *n, "must not be negative");
                return false;
            }
            if (v > std::numeric_limits<std::int64_t>::max() / 1000) {
                error_at(key, *n, "duration is too large");
                return false;
            }
            ms = v * 1000;
        } else if (const auto* s = n->as_string()) {
            std::string why;
            const auto parsed = parse_duration_text(s->get(), why);
            if (!parsed) {
                error_at(key, *n, why);
                return false;
            }
            ms = *parsed;
        } else {
            error_at(key, *n, "expected a duration: " + std::string(duration_help));
            return false;
        }
        // Second-granularity fields round down: "1500ms" is 1 s.
        const seconds value{ms / 1000};
        if (value < min) {
            error_at(key, *n, "must be at least " + format_duration(min));
            return false;
        }
        out = value;
        return true;
    }

    struct string_item {
        std::string value;
        std::string path;
        int line = 0;
    };

    // Array of strings. Bad elements are reported and skipped; returns false only when the
    // key is absent or not an array.
    bool get_string_array(std::string_view key, std::vector<string_item>& out) {
        const toml::node* n = take(key);
        if (n == nullptr) return false;
        const auto* arr = n->as_array();
        if (arr == nullptr) {
            error_at(key, *n, "expected an array of strings");
            return false;
        }
        const std::string base = key_path(key);
        for (std::size_t i = 0; i < arr->size(); ++i) {
            const toml::node& el = (*arr)[i];
            if (const auto* s = el.as_string()) {
                out.push_back({s->get(), index_path(base, i), line_of(el)});
            } else {
                errors_.push_back(
                    {index_path(base, i), line_of(el), "expected an array of strings"});
            }
        }
        return true;
    }

    // Sub-table; an error when present with another type.
    const toml::table* get_table(std::string_view key) {
        const toml::node* n = take(key);
        if (n == nullptr) return nullptr;
        const auto* t = n->as_table();
        if (t == nullptr) error_at(key, *n, "expected a table");
        return t;
    }

private:
    std::string suggest(std::string_view key) const {
        const std::string lowered = to_lower(key);
        std::string best;
        std::size_t best_distance = 3;
        for (const auto& candidate : known_) {
            const std::size_t d = edit_distance(lowered, candidate);
            // Distance must also be below the candidate length, or "xy" would suggest "to".
            if (d < best_distance && d < candidate.size()) {
                best_distance = d;
                best = candidate;
            }
        }
        return best;
    }

    std::vector<config_error>& errors_;
    const toml::table& table_;
    std::string path_;
    std::vector<std::string> known_;
};

// Reads a GUID; returns whether the key was given at all (valid or not).
inline bool read_guid(table_reader& r, std::string_view key, std::string& out) {
    const toml::node* n = r.take(key);
    if (n == nullptr) return false;
    const auto* s = n->as_string();
    if (s == nullptr) {
        r.error_at(key, *n, "expected a string (a GUID)");
    } else if (!is_guid(s->get())) {
        r.error_at(key, *n, "expected a GUID (8-4-4-4-12 hex digits)");
    } else {
        out = to_lower(s->get());
    }
    return true;
}

// Reads an optional URL under `policy`; returns whether the key was given.
inline bool read_url(table_reader& r, std::string_view key, std::string& out, url_policy policy,
                     bool allow_empty) {
    const toml::node* n = r.take(key);
    if (n == nullptr) return false;
    const auto* s = n->as_string();
    if (s == nullptr) {
        r.error_at(key, *n, "expected a string (a URL)");
        return true;
    }
    if (s->get().empty() && allow_empty) {
        out.clear();
        return true;
    }
    if (std::string why = check_url(s->get(), policy); !why.empty()) {
        r.error_at(key, *n, std::move(why));
        return true;
    }
    out = s->get();
    return true;
}

struct secret_read {
    bool given = false;  // either key present, valid or not: suppresses "required" noise
    int line = 0;
};

// A URL that may be a secret: `key = "https://..."` (plain), `key = "env:NAME"` or
// `key_file = "/path"`. Returns whether any form was given.
inline bool read_url_or_secret(table_reader& r, std::string_view key, std::string& url,
                               secret_ref& secret, url_policy policy, bool allow_empty);

// `key = "env:NAME"` or `key_file = "/path"`. A plain value is an error that never repeats it.
inline secret_read read_secret(table_reader& r, std::string_view key, secret_ref& out) {
    const std::string file_key = std::string(key) + "_file";
    const toml::node* inline_node = r.take(key);
    const toml::node* file_node = r.take(file_key);
    secret_read result;
    secret_ref ref;
    if (inline_node != nullptr) {
        result.given = true;
        result.line = line_of(*inline_node);
        const auto* s = inline_node->as_string();
        constexpr std::string_view env_prefix = "env:";
        if (s == nullptr) {
            r.error_at(key, *inline_node, "expected a string (\"env:NAME\")");
        } else if (s->get().substr(0, env_prefix.size()) != env_prefix) {
            r.error_at(key, *inline_node,
                       "secrets are never inline: use " + file_key +
                           " = PATH (systemd credential) or " + std::string(key) +
                           " = \"env:NAME\"");
        } else if (const std::string name = s->get().substr(env_prefix.size());
                   !is_env_name(name)) {
            r.error_at(key, *inline_node,
                       "bad environment variable name after \"env:\" (expected "
                       "[A-Za-z_][A-Za-z0-9_]*)");
        } else {
            ref.env = name;
        }
    }
    if (file_node != nullptr) {
        result.given = true;
        result.line = line_of(*file_node);
        const auto* s = file_node->as_string();
        if (s == nullptr) {
            r.error_at(file_key, *file_node, "expected a string (a file path)");
        } else if (s->get().empty()) {
            r.error_at(file_key, *file_node, "must not be empty");
        } else {
            ref.file = s->get();
        }
    }
    if (inline_node != nullptr && file_node != nullptr) {
        r.error_at(file_key, *file_node,
                   "set either " + std::string(key) + " or " + file_key + ", not both");
        return result;
    }
    out = ref;
    return result;
}

inline bool read_url_or_secret(table_reader& r, std::string_view key, std::string& url,
                               secret_ref& secret, url_policy policy, bool allow_empty) {
    const toml::node* n = r.peek(key);
    const auto* str = n != nullptr ? n->as_string() : nullptr;
    const bool env_form = str != nullptr && str->get().rfind("env:", 0) == 0;
    // With url_file present, a plain url next to it is refused by read_secret ("not both").
    if (env_form || r.peek(std::string(key) + "_file") != nullptr) {
        url.clear();  // no default URL stands in for one still to be read
        return read_secret(r, key, secret).given;
    }
    return read_url(r, key, url, policy, allow_empty);
}

// Enum lookup by name; reports the accepted names on failure.
template <typename E, std::size_t N>
inline bool read_enum(table_reader& r, std::string_view key,
                      const std::array<std::pair<std::string_view, E>, N>& names, E& out) {
    std::string text;
    if (!r.get_string(key, text)) return false;
    for (const auto& [name, value] : names) {
        if (text == name) {
            out = value;
            return true;
        }
    }
    std::string expected;
    for (std::size_t i = 0; i < N; ++i) {
        if (i > 0) expected += i + 1 == N ? " or " : ", ";
        expected += names[i].first;
    }
    r.error_at(key, *r.take(key), "unknown value \"" + text + "\" (expected " + expected + ")");
    return false;
}

// ---------------------------------------------------------------------------------------------
// Section parsers. Each records the side information the cross-checks need (paths and lines).

struct id_location {
    std::string id;
    std::string path;
    int line = 0;
};

struct parse_state {
    std::vector<config_error> errors;
    std::vector<id_location> watched_ids;  // accounts, groups and ca_policies
    bool tenant_id_valid = false;
};

inline void read_guid_list(table_reader& r, std::string_view key, std::vector<std::string>& out,
                           parse_state& st) {
    std::vector<table_reader::string_item> items;
    r.get_string_array(key, items);
    std::set<std::string> seen;
    for (const auto& item : items) {
        if (!is_guid(item.value)) {
            st.errors.push_back({item.path, item.line, "expected a GUID (8-4-4-4-12 hex digits)"});
            continue;
        }
        std::string id = to_lower(item.value);
        if (!seen.insert(id).second) {
            st.errors.push_back({item.path, item.line, "duplicate id"});
            continue;
        }
        st.watched_ids.push_back({id, item.path, item.line});
        out.push_back(std::move(id));
    }
}

template <std::size_t N>
inline bool contains(const std::array<std::string_view, N>& keys, std::string_view key) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// The section parsers, one file per part of the configuration.
void parse_tenant(table_reader& root, config& c, parse_state& st);
void parse_watch(table_reader& root, config& c, parse_state& st);
void parse_sources(table_reader& root, config& c, parse_state& st);
void parse_sinks(table_reader& root, config& c, parse_state& st);

}  // namespace glasswatch::core::config_detail
