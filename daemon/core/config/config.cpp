// Configuration loader: TOML text -> `config`, collecting every problem instead of stopping at
// the first, so an operator fixes a broken file in one round trip instead of one per error.
#include "core/config/config.hpp"

#include "core/base/time.hpp"
#include "core/config/rule_names.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <exception>
#include <limits>
#include <set>
#include <string>
#include <utility>

namespace glasswatch::core {

namespace {

// ---------------------------------------------------------------------------------------------
// Character and string helpers. Hand-written instead of <cctype>/<regex>: <cctype> depends on
// the locale and <regex> is slow to compile and easy to get wrong for anchored matches.

bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}
bool is_lower_alpha(char c) noexcept {
    return c >= 'a' && c <= 'z';
}
bool is_alpha(char c) noexcept {
    return is_lower_alpha(c) || (c >= 'A' && c <= 'Z');
}
bool is_hex(char c) noexcept {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
char to_lower_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = to_lower_char(c);
    return out;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) noexcept {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        if (to_lower_char(s[i]) != to_lower_char(prefix[i])) return false;
    }
    return true;
}

bool is_guid(std::string_view s) noexcept {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool dash_position = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash_position ? s[i] != '-' : !is_hex(s[i])) return false;
    }
    return true;
}

bool is_env_name(std::string_view s) noexcept {
    if (s.empty() || !(is_alpha(s[0]) || s[0] == '_')) return false;
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return is_alpha(c) || is_digit(c) || c == '_'; });
}

bool is_sink_name(std::string_view s) noexcept {
    if (s.empty() || s.size() > 32) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return is_lower_alpha(c) || is_digit(c) || c == '_' || c == '-';
    });
}

// ^\+[1-9][0-9]{6,14}$
bool is_e164(std::string_view s) noexcept {
    if (s.size() < 8 || s.size() > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9') return false;
    return std::all_of(s.begin() + 1, s.end(), is_digit);
}

// Twilio SIDs: two-letter prefix + 32 hex digits.
bool is_twilio_sid(std::string_view s, std::string_view prefix) noexcept {
    if (s.size() != prefix.size() + 32 || s.substr(0, prefix.size()) != prefix) return false;
    return std::all_of(s.begin() + static_cast<std::ptrdiff_t>(prefix.size()), s.end(), is_hex);
}

// RFC 9110 token characters, for header names.
bool is_token(std::string_view s) noexcept {
    if (s.empty()) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return is_alpha(c) || is_digit(c) ||
               std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
}

bool has_control_char(std::string_view s) noexcept {
    return std::any_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

// What Entra accepts as a user principal name: at most 113 characters, one '@', letters, digits
// and ' . - _ ! # ^ ~ before it, a DNS name after it. Anything else could never sign in, and the
// prefilter finds UPNs as tokens of exactly these characters: a UPN outside them would be missed.
bool is_entra_upn(std::string_view s) noexcept {
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
std::size_t edit_distance(std::string_view a, std::string_view b) {
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

bool is_bare_key(std::string_view k) noexcept {
    if (k.empty()) return false;
    return std::all_of(k.begin(), k.end(),
                       [](char c) { return is_alpha(c) || is_digit(c) || c == '_' || c == '-'; });
}

std::string child_path(std::string_view parent, std::string_view key) {
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

std::string index_path(std::string_view parent, std::size_t i) {
    return std::string(parent) + "[" + std::to_string(i) + "]";
}

int line_of(const toml::node& n) noexcept {
    return static_cast<int>(n.source().begin.line);
}

// ---------------------------------------------------------------------------------------------
// Durations: "<int><unit>" with unit ms|s|m|h|d, or a TOML integer meaning seconds.

constexpr std::string_view duration_help =
    "expected <integer><unit> with unit ms, s, m, h or d (e.g. \"500ms\", \"30s\", \"15m\", "
    "\"1h\", \"90d\") or an integer number of seconds";

// Returns milliseconds, or an error message in `why` (the grammar lives in core/time).
std::optional<std::int64_t> parse_duration_text(std::string_view text, std::string& why) {
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

std::string format_duration(seconds s) {
    const auto n = s.count();
    if (n != 0 && n % 86400 == 0) return std::to_string(n / 86400) + "d";
    if (n != 0 && n % 3600 == 0) return std::to_string(n / 3600) + "h";
    if (n != 0 && n % 60 == 0) return std::to_string(n / 60) + "m";
    return std::to_string(n) + "s";
}

// ---------------------------------------------------------------------------------------------
// URLs.

bool is_loopback_host(std::string_view host) noexcept {
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

bool has_userinfo(std::string_view url) noexcept {
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
std::string check_url(std::string_view url, url_policy policy) {
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

constexpr well_known_id well_known_ids[] = {
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
bool read_guid(table_reader& r, std::string_view key, std::string& out) {
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
bool read_url(table_reader& r, std::string_view key, std::string& out, url_policy policy,
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
bool read_url_or_secret(table_reader& r, std::string_view key, std::string& url, secret_ref& secret,
                        url_policy policy, bool allow_empty);

// `key = "env:NAME"` or `key_file = "/path"`. A plain value is an error that never repeats it.
secret_read read_secret(table_reader& r, std::string_view key, secret_ref& out) {
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

bool read_url_or_secret(table_reader& r, std::string_view key, std::string& url, secret_ref& secret,
                        url_policy policy, bool allow_empty) {
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
bool read_enum(table_reader& r, std::string_view key,
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

void parse_tenant(table_reader& root, config& c, parse_state& st) {
    const toml::table* t = root.get_table("tenant");
    if (t == nullptr) {
        if (root.take("tenant") == nullptr) {
            st.errors.push_back(
                {"tenant.id", root.line(), "required: the directory (tenant) id GUID"});
        }
        return;
    }
    table_reader r(st.errors, *t, "tenant");
    if (!read_guid(r, "id", c.tenant_id)) {
        r.error_missing("id", "required: the directory (tenant) id GUID");
    }
    st.tenant_id_valid = !c.tenant_id.empty();
    r.get_string("name", c.tenant_name);
    static constexpr std::array<std::pair<std::string_view, cloud_kind>, 4> clouds{{
        {"public", cloud_kind::public_cloud},
        {"usgov", cloud_kind::usgov},
        {"usgov-dod", cloud_kind::usgov_dod},
        {"china", cloud_kind::china},
    }};
    read_enum(r, "cloud", clouds, c.cloud);
    r.finish();
    if (c.tenant_name.empty()) c.tenant_name = c.tenant_id;
}

void read_guid_list(table_reader& r, std::string_view key, std::vector<std::string>& out,
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

void parse_account(table_reader& r, watched_account& a, parse_state& st) {
    if (read_guid(r, "object_id", a.object_id)) {
        if (const toml::node* n = r.take("object_id"); n != nullptr && !a.object_id.empty()) {
            st.watched_ids.push_back({a.object_id, r.key_path("object_id"), line_of(*n)});
        }
    } else {
        r.error_missing("object_id", "required: the account's object id GUID");
    }
    std::string upn;
    if (r.get_string("upn", upn)) {
        if (!is_entra_upn(upn)) {
            r.error_at("upn", *r.take("upn"),
                       "expected a user principal name with exactly one '@' (user@domain): at "
                       "most 113 characters, letters, digits and ' . - _ ! # ^ ~ before the '@', "
                       "letters, digits, '.' and '-' after it");
        } else {
            a.upn = to_lower(upn);
        }
    }
    r.get_string("label", a.label);
    static constexpr std::array<std::pair<std::string_view, account_type>, 3> types{{
        {"user", account_type::user},
        {"service_principal", account_type::service_principal},
        {"managed_identity", account_type::managed_identity},
    }};
    read_enum(r, "type", types, a.type);
    r.finish();
}

void parse_watch(table_reader& root, config& c, parse_state& st) {
    const toml::table* t = root.get_table("watch");
    if (t == nullptr) {
        if (root.take("watch") == nullptr) {
            st.errors.push_back({"watch.accounts", root.line(),
                                 "at least one watched account is required ([[watch.accounts]])"});
        }
        return;
    }
    table_reader r(st.errors, *t, "watch");
    read_guid_list(r, "groups", c.watch.groups, st);
    read_guid_list(r, "ca_policies", c.watch.ca_policies, st);

    const toml::node* accounts = r.take("accounts");
    const toml::array* arr = accounts != nullptr ? accounts->as_array() : nullptr;
    if (accounts == nullptr) {
        r.error_missing("accounts",
                        "at least one watched account is required ([[watch.accounts]])");
    } else if (arr != nullptr && arr->empty()) {
        r.error_at("accounts", *accounts,
                   "at least one watched account is required ([[watch.accounts]])");
    } else if (arr == nullptr || !arr->is_array_of_tables()) {
        r.error_at("accounts", *accounts, "expected an array of tables ([[watch.accounts]])");
    } else {
        std::set<std::string> seen;
        for (std::size_t i = 0; i < arr->size(); ++i) {
            const toml::table& at = *(*arr)[i].as_table();
            table_reader ar(st.errors, at, index_path("watch.accounts", i));
            watched_account a;
            parse_account(ar, a, st);
            if (!a.object_id.empty() && !seen.insert(a.object_id).second) {
                ar.error_at("object_id", *at.get("object_id"),
                            "duplicate object id: this account is already watched");
                continue;
            }
            c.watch.accounts.push_back(std::move(a));
        }
    }
    r.finish();
}

void parse_graph(table_reader& r, graph_source_config& g, cloud_kind cloud) {
    r.get_bool("enabled", g.enabled);
    read_url(r, "authority_host", g.authority_host, url_policy::https_or_loopback_http, true);
    read_url(r, "graph_base_url", g.graph_base_url, url_policy::https_or_loopback_http, true);
    const bool client_id_given = read_guid(r, "client_id", g.client_id);
    const secret_read secret = read_secret(r, "client_secret", g.client_secret);
    const toml::node* cert_node = r.take("certificate_file");
    if (cert_node != nullptr) {
        if (r.get_string("certificate_file", g.certificate_file) && g.certificate_file.empty()) {
            r.error_at("certificate_file", *cert_node, "must not be empty");
        }
    }
    const secret_read key = read_secret(r, "private_key", g.private_key);
    r.get_seconds("poll_interval", g.poll_interval, seconds{1});
    r.get_seconds("lookback", g.lookback);
    r.get_seconds("initial_lookback", g.initial_lookback);
    r.get_seconds("request_timeout", g.request_timeout, seconds{1});

    std::vector<table_reader::string_item> kinds;
    if (r.get_string_array("kinds", kinds)) {
        static constexpr std::array<std::pair<std::string_view, graph_kind>, 5> names{{
            {"interactive", graph_kind::interactive},
            {"non_interactive", graph_kind::non_interactive},
            {"service_principal", graph_kind::service_principal},
            {"managed_identity", graph_kind::managed_identity},
            {"audit", graph_kind::audit},
        }};
        std::vector<graph_kind> parsed;
        for (const auto& item : kinds) {
            const auto it = std::find_if(names.begin(), names.end(),
                                         [&](const auto& p) { return p.first == item.value; });
            if (it == names.end()) {
                r.errors().push_back({item.path, item.line,
                                      "unknown kind \"" + item.value +
                                          "\" (expected interactive, non_interactive, "
                                          "service_principal, managed_identity or audit)"});
            } else if (std::find(parsed.begin(), parsed.end(), it->second) != parsed.end()) {
                r.errors().push_back({item.path, item.line, "duplicate kind"});
            } else {
                parsed.push_back(it->second);
            }
        }
        const toml::node* kinds_node = r.take("kinds");
        if (kinds_node->as_array()->empty()) {
            r.error_at("kinds", *kinds_node, "must not be empty");
        } else {
            g.kinds = std::move(parsed);
        }
    }
    r.get_bool("full_stream", g.full_stream);
    r.get_int("max_requests_per_10s", g.max_requests_per_10s, 1, 100);
    r.get_string("ca_file", g.ca_file);
    read_url(r, "proxy", g.proxy, url_policy::http_only, true);
    r.get_int("seen_set_max", g.seen_set_max, 1000, 10000000);
    r.finish();

    if (g.authority_host.empty()) g.authority_host = default_authority_host(cloud);
    if (g.graph_base_url.empty()) g.graph_base_url = default_graph_base_url(cloud);
    if (!g.enabled) return;

    if (!client_id_given) {
        r.error_missing("client_id", "required when enabled: the application (client) id");
    }
    const bool cert_given = cert_node != nullptr || key.given;
    if (secret.given && cert_given) {
        r.errors().push_back(
            {r.key_path("client_secret"), secret.line,
             "use either a client secret or certificate_file + private key, not both"});
    } else if (!secret.given && !cert_given) {
        r.error_missing("client_secret",
                        "a credential is required when enabled: client_secret_file = PATH, "
                        "client_secret = \"env:NAME\", or certificate_file + private_key_file");
    } else if (cert_given && cert_node == nullptr) {
        r.error_missing("certificate_file", "required with private_key / private_key_file");
    } else if (cert_given && !key.given) {
        r.error_missing("private_key_file",
                        "required with certificate_file (or private_key = \"env:NAME\")");
    }
}

void parse_eventhub(table_reader& r, eventhub_source_config& e) {
    r.get_bool("enabled", e.enabled);
    const secret_read conn = read_secret(r, "connection_string", e.connection_string);
    std::vector<table_reader::string_item> hubs;
    r.get_string_array("event_hubs", hubs);
    for (const auto& item : hubs) {
        if (item.value.empty() || has_control_char(item.value) ||
            item.value.find('/') != std::string::npos) {
            r.errors().push_back({item.path, item.line, "expected an event hub name"});
        } else if (std::find(e.event_hubs.begin(), e.event_hubs.end(), item.value) !=
                   e.event_hubs.end()) {
            r.errors().push_back({item.path, item.line, "duplicate event hub"});
        } else {
            e.event_hubs.push_back(item.value);
        }
    }
    if (r.get_string("consumer_group", e.consumer_group) && e.consumer_group.empty()) {
        r.error_at("consumer_group", *r.take("consumer_group"), "must not be empty");
        e.consumer_group = "$Default";
    }
    if (r.get_string("host", e.host) && has_control_char(e.host)) {
        r.error_at("host", *r.take("host"), "expected a host name");
    }
    if (r.get_string("tls_server_name", e.tls_server_name) &&
        (e.tls_server_name.empty() || has_control_char(e.tls_server_name) ||
         e.tls_server_name.find_first_of(" /:@") != std::string::npos)) {
        r.error_at("tls_server_name", *r.take("tls_server_name"),
                   "expected a DNS name (the namespace's, e.g. contoso.servicebus.windows.net)");
    }
    static constexpr std::array<std::pair<std::string_view, eventhub_transport>, 2> transports{{
        {"amqps", eventhub_transport::amqps},
        {"websocket", eventhub_transport::websocket},
    }};
    read_enum(r, "transport", transports, e.transport);
    static constexpr std::array<std::pair<std::string_view, eventhub_sasl>, 2> sasls{{
        {"anonymous", eventhub_sasl::anonymous_cbs},
        {"plain", eventhub_sasl::plain},
    }};
    read_enum(r, "sasl", sasls, e.sasl);
    r.get_string("ca_file", e.ca_file);
    read_url(r, "proxy", e.proxy, url_policy::http_only, true);
    r.get_seconds("start_lookback", e.start_lookback);
    r.get_int("credit", e.credit, 1, 10000);
    std::int64_t epoch = 0;
    if (r.get_int("epoch", epoch, 0, std::numeric_limits<std::int64_t>::max())) e.epoch = epoch;
    r.get_seconds("idle_timeout", e.idle_timeout);
    r.get_int("max_message_size", e.max_message_size, 64 * 1024, 256LL << 20);
    for (auto [key, out] : {std::pair{"reconnect_backoff_max", &e.reconnect_backoff_max},
                            std::pair{"partition_backoff_max", &e.partition_backoff_max}}) {
        seconds cap{0};
        if (!r.get_seconds(key, cap, seconds{1})) continue;
        if (cap > seconds{3600}) {
            r.error_at(key, *r.peek(key), "must be at most 1h");
            continue;
        }
        *out = cap;
    }
    r.finish();
    if (e.enabled && !conn.given) {
        r.error_missing("connection_string_file",
                        "required when enabled: connection_string_file = PATH or "
                        "connection_string = \"env:NAME\"");
    }
}

void parse_sources(table_reader& root, config& c, parse_state& st) {
    const toml::table* t = root.get_table("sources");
    if (t == nullptr) {
        c.graph.authority_host = default_authority_host(c.cloud);
        c.graph.graph_base_url = default_graph_base_url(c.cloud);
        return;
    }
    table_reader r(st.errors, *t, "sources");
    if (const toml::table* g = r.get_table("graph")) {
        table_reader gr(st.errors, *g, "sources.graph");
        parse_graph(gr, c.graph, c.cloud);
    } else {
        c.graph.authority_host = default_authority_host(c.cloud);
        c.graph.graph_base_url = default_graph_base_url(c.cloud);
    }
    if (const toml::table* e = r.get_table("eventhub")) {
        table_reader er(st.errors, *e, "sources.eventhub");
        parse_eventhub(er, c.eventhub);
    }
    r.finish();
}

// Type-specific sink keys; a key of another type is reported as such, not as "unknown".
constexpr auto file_sink_keys = std::to_array<std::string_view>({"path"});
constexpr auto pagerduty_sink_keys =
    std::to_array<std::string_view>({"url", "routing_key", "routing_key_file", "source"});
constexpr auto twilio_sink_keys = std::to_array<std::string_view>(
    {"api_base", "account_sid", "api_key_sid", "auth_token", "auth_token_file", "from",
     "messaging_service_sid", "to", "delivery_timeout", "burst_window"});
constexpr auto webhook_sink_keys = std::to_array<std::string_view>(
    {"url", "signing_secret", "signing_secret_file", "headers", "slack_format"});

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& keys, std::string_view key) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
}

std::string sink_kinds_owning(std::string_view key) {
    std::vector<std::string_view> owners;
    if (contains(file_sink_keys, key)) owners.push_back("file");
    if (contains(pagerduty_sink_keys, key)) owners.push_back("pagerduty");
    if (contains(twilio_sink_keys, key)) owners.push_back("twilio");
    if (contains(webhook_sink_keys, key)) owners.push_back("webhook");
    std::string out;
    for (std::size_t i = 0; i < owners.size(); ++i) {
        if (i > 0) out += i + 1 == owners.size() ? " and " : ", ";
        out += owners[i];
    }
    return out;
}

struct sink_side {
    int line = 0;
    int escalate_to_line = 0;
    std::string path;
};

void parse_pagerduty(table_reader& r, sink_config& s) {
    read_url(r, "url", s.url, url_policy::http_or_https, false);
    if (!read_secret(r, "routing_key", s.routing_key).given) {
        r.error_missing("routing_key_file",
                        "required: routing_key_file = PATH or routing_key = \"env:NAME\"");
    }
    r.get_string("source", s.source);
}

void parse_twilio(table_reader& r, sink_config& s) {
    read_url(r, "api_base", s.api_base, url_policy::http_or_https, false);
    if (r.get_string("account_sid", s.account_sid)) {
        if (!is_twilio_sid(s.account_sid, "AC")) {
            r.error_at("account_sid", *r.take("account_sid"),
                       "expected \"AC\" followed by 32 hex digits");
        }
    } else if (r.take("account_sid") == nullptr) {
        r.error_missing("account_sid", "required: the Twilio account SID (AC...)");
    }
    if (r.get_string("api_key_sid", s.api_key_sid) && !is_twilio_sid(s.api_key_sid, "SK")) {
        r.error_at("api_key_sid", *r.take("api_key_sid"),
                   "expected \"SK\" followed by 32 hex digits");
    }
    if (!read_secret(r, "auth_token", s.auth_token).given) {
        r.error_missing("auth_token_file",
                        "required: auth_token_file = PATH or auth_token = \"env:NAME\"");
    }
    const toml::node* from = r.take("from");
    const toml::node* service = r.take("messaging_service_sid");
    if (r.get_string("from", s.from) && !is_e164(s.from)) {
        r.error_at("from", *from, "expected an E.164 number (+ and 7 to 15 digits)");
    }
    if (r.get_string("messaging_service_sid", s.messaging_service_sid) &&
        !is_twilio_sid(s.messaging_service_sid, "MG")) {
        r.error_at("messaging_service_sid", *service, "expected \"MG\" followed by 32 hex digits");
    }
    if (from != nullptr && service != nullptr) {
        r.error_at("messaging_service_sid", *service,
                   "set either from or messaging_service_sid, not both");
    } else if (from == nullptr && service == nullptr) {
        r.error_missing("from", "required: from = \"+E164\" or messaging_service_sid");
    }
    std::vector<table_reader::string_item> to;
    if (r.get_string_array("to", to)) {
        for (const auto& item : to) {
            if (!is_e164(item.value)) {
                r.errors().push_back(
                    {item.path, item.line, "expected an E.164 number (+ and 7 to 15 digits)"});
            } else if (std::find(s.to.begin(), s.to.end(), item.value) != s.to.end()) {
                r.errors().push_back({item.path, item.line, "duplicate recipient"});
            } else {
                s.to.push_back(item.value);
            }
        }
        if (const toml::node* n = r.take("to"); n->as_array()->empty()) {
            r.error_at("to", *n, "at least one recipient is required");
        }
    } else if (r.take("to") == nullptr) {
        r.error_missing("to", "required: an array of E.164 recipients");
    }
    r.get_seconds("delivery_timeout", s.delivery_timeout, seconds{1});
    r.get_seconds("burst_window", s.burst_window);
}

void parse_webhook(table_reader& r, sink_config& s) {
    if (!read_url_or_secret(r, "url", s.url, s.url_secret, url_policy::http_or_https, false)) {
        r.error_missing("url",
                        "required: the webhook endpoint URL (url = \"https://...\", or url_file = "
                        "PATH / url = \"env:NAME\" when the URL itself is a credential)");
    }
    if (!read_secret(r, "signing_secret", s.signing_secret).given) {
        r.error_missing("signing_secret_file",
                        "required: signing_secret_file = PATH or signing_secret = \"env:NAME\"");
    }
    if (const toml::table* h = r.get_table("headers")) {
        // Kept in file order, which is how an operator reads them.
        std::vector<std::pair<const toml::key*, const toml::node*>> entries;
        for (auto&& [k, v] : *h)
            entries.emplace_back(&k, &v);
        std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
            const auto& sa = a.second->source().begin;
            const auto& sb = b.second->source().begin;
            return sa.line != sb.line ? sa.line < sb.line : sa.column < sb.column;
        });
        const std::string base = r.key_path("headers");
        for (const auto& [k, v] : entries) {
            const std::string name(k->str());
            const std::string path = child_path(base, name);
            const std::string lowered = to_lower(name);
            const auto* value = v->as_string();
            if (!is_token(name)) {
                r.errors().push_back({path, line_of(*v), "expected an HTTP header name"});
            } else if (lowered == "host" || lowered == "content-length" ||
                       lowered == "transfer-encoding" || lowered == "connection") {
                r.errors().push_back({path, line_of(*v), "this header is set by glasswatch"});
            } else if (value == nullptr) {
                r.errors().push_back({path, line_of(*v), "expected a string"});
            } else if (has_control_char(value->get())) {
                r.errors().push_back(
                    {path, line_of(*v), "header values must not contain control characters"});
            } else {
                s.headers.emplace_back(name, value->get());
            }
        }
    }
    r.get_bool("slack_format", s.slack_format);
}

void parse_sink(table_reader& r, sink_config& s, sink_side& side, const config& c) {
    side.line = r.line();
    side.path = r.path();
    if (r.get_string("name", s.name)) {
        if (!is_sink_name(s.name)) {
            r.error_at("name", *r.take("name"), "expected 1 to 32 characters of [a-z0-9_-]");
            s.name.clear();
        }
    } else if (r.take("name") == nullptr) {
        r.error_missing("name", "required: a unique sink name ([a-z0-9_-], at most 32)");
    }
    static constexpr std::array<std::pair<std::string_view, sink_kind>, 4> kinds{{
        {"file", sink_kind::file},
        {"pagerduty", sink_kind::pagerduty},
        {"twilio", sink_kind::twilio},
        {"webhook", sink_kind::webhook},
    }};
    const bool kind_known = read_enum(r, "type", kinds, s.kind);
    if (r.take("type") == nullptr) {
        r.error_missing("type", "required: file, pagerduty, twilio or webhook");
    }
    std::vector<table_reader::string_item> rules;
    r.get_string_array("rules", rules);
    for (const auto& item : rules) {
        if (item.value.empty()) {
            r.errors().push_back({item.path, item.line, "expected a rule name"});
            continue;
        }
        // A typo would silently route nothing to this sink: unknown names are errors.
        const auto& known = known_rule_names();
        if (std::find(known.begin(), known.end(), item.value) == known.end()) {
            std::string best;
            std::size_t best_distance = 4;
            for (std::string_view k : known) {
                const std::size_t d = edit_distance(to_lower(item.value), k);
                if (d < best_distance) {
                    best_distance = d;
                    best = std::string(k);
                }
            }
            r.errors().push_back(
                {item.path, item.line,
                 "unknown rule \"" + item.value + "\"" +
                     (best.empty() ? std::string(" (glasswatch help lists the rules)")
                                   : " (did you mean \"" + best + "\"?)")});
            continue;
        }
        s.rules.push_back(item.value);
    }
    std::string severity_text;
    if (r.get_string("min_severity", severity_text)) {
        if (const auto sev = parse_severity(severity_text)) {
            s.min_severity = *sev;
        } else {
            r.error_at("min_severity", *r.take("min_severity"),
                       "unknown value \"" + severity_text +
                           "\" (expected info, warning, high or critical)");
        }
    }
    r.get_seconds("escalate_after", s.escalate_after);
    if (r.get_string("escalate_to", s.escalate_to)) {
        side.escalate_to_line = line_of(*r.take("escalate_to"));
    }
    r.get_seconds("request_timeout", s.request_timeout, seconds{1});
    r.get_string("ca_file", s.ca_file);

    if (!kind_known) {
        // Without a valid type, type-specific keys cannot be judged; only flag real typos.
        for (auto key : file_sink_keys)
            r.mark_known(key);
        for (auto key : pagerduty_sink_keys)
            r.mark_known(key);
        for (auto key : twilio_sink_keys)
            r.mark_known(key);
        for (auto key : webhook_sink_keys)
            r.mark_known(key);
        r.finish();
        return;
    }
    switch (s.kind) {
        case sink_kind::file: {
            const toml::node* path = r.take("path");
            if (r.get_string("path", s.path)) {
                if (s.path.empty()) r.error_at("path", *path, "must not be empty");
            } else if (path == nullptr) {
                r.error_missing("path", "required: the JSON-lines file alerts are appended to");
            }
            break;
        }
        case sink_kind::pagerduty:
            parse_pagerduty(r, s);
            if (s.source.empty()) s.source = c.tenant_name;
            break;
        case sink_kind::twilio:
            parse_twilio(r, s);
            break;
        case sink_kind::webhook:
            parse_webhook(r, s);
            break;
    }
    const std::string type_name(to_string(s.kind));
    for (const auto& [key, node] : r.unread()) {
        const std::string owners = sink_kinds_owning(key);
        if (owners.empty()) continue;
        r.error_at(
            key, *node,
            "\"" + key + "\" is a " + owners + " sink key, not valid on a " + type_name + " sink");
        r.mark_known(key);
    }
    r.finish();
}

void parse_sinks(table_reader& root, config& c, parse_state& st) {
    const toml::node* n = root.take("sinks");
    if (n == nullptr) {
        root.error_missing("sinks", "at least one sink is required ([[sinks]])");
        return;
    }
    const toml::array* arr = n->as_array();
    if (arr != nullptr && arr->empty()) {
        root.error_at("sinks", *n, "at least one sink is required ([[sinks]])");
        return;
    }
    if (arr == nullptr || !arr->is_array_of_tables()) {
        root.error_at("sinks", *n, "expected an array of tables ([[sinks]])");
        return;
    }
    std::vector<sink_side> sides;
    std::vector<sink_config> sinks;
    for (std::size_t i = 0; i < arr->size(); ++i) {
        table_reader r(st.errors, *(*arr)[i].as_table(), index_path("sinks", i));
        sink_config s;
        sink_side side;
        parse_sink(r, s, side, c);
        sinks.push_back(std::move(s));
        sides.push_back(std::move(side));
    }
    // Names must be unique: escalation and metrics refer to sinks by name.
    for (std::size_t i = 0; i < sinks.size(); ++i) {
        if (sinks[i].name.empty()) continue;
        for (std::size_t j = 0; j < i; ++j) {
            if (sinks[j].name == sinks[i].name) {
                const toml::node* name = (*arr)[i].as_table()->get("name");
                st.errors.push_back(
                    {sides[i].path + ".name", line_of(*name),
                     "duplicate sink name \"" + sinks[i].name + "\" (also " + sides[j].path + ")"});
                break;
            }
        }
    }
    for (std::size_t i = 0; i < sinks.size(); ++i) {
        const sink_config& s = sinks[i];
        const std::string key = sides[i].path + ".escalate_to";
        if (s.escalate_after > seconds{0} && s.escalate_to.empty()) {
            st.errors.push_back(
                {key, sides[i].line, "required when escalate_after is above 0: a sink name"});
        } else if (!s.escalate_to.empty()) {
            const int line = sides[i].escalate_to_line;
            const bool exists = std::any_of(sinks.begin(), sinks.end(),
                                            [&](const auto& o) { return o.name == s.escalate_to; });
            if (s.escalate_to == s.name) {
                st.errors.push_back({key, line, "a sink cannot escalate to itself"});
            } else if (!exists) {
                st.errors.push_back({key, line, "no sink named \"" + s.escalate_to + "\""});
            } else if (s.escalate_after == seconds{0}) {
                st.errors.push_back(
                    {key, line, "escalate_to needs escalate_after above 0 (e.g. \"5m\")"});
            }
        }
    }
    c.sinks = std::move(sinks);
}

void parse_tripwire(table_reader& root, config& c, parse_state& st) {
    const toml::table* t = root.get_table("tripwire");
    if (t == nullptr) return;
    table_reader r(st.errors, *t, "tripwire");
    tripwire_config& w = c.tripwire;
    r.get_seconds("source_error_threshold", w.source_error_threshold);
    r.get_seconds("silence_threshold", w.silence_threshold);
    r.get_seconds("lag_threshold", w.lag_threshold);
    r.get_seconds("active_use_window", w.active_use_window, seconds{1});
    r.get_int("active_use_count", w.active_use_count, 1, 1000);
    r.get_seconds("drill_max_age", w.drill_max_age);
    r.get_seconds("outbox_max_age", w.outbox_max_age);
    r.finish();
}

void parse_heartbeat(table_reader& root, config& c, parse_state& st) {
    const toml::table* t = root.get_table("heartbeat");
    if (t == nullptr) return;
    table_reader r(st.errors, *t, "heartbeat");
    read_url_or_secret(r, "url", c.heartbeat.url, c.heartbeat.url_secret, url_policy::http_or_https,
                       true);
    r.get_seconds("interval", c.heartbeat.interval, seconds{1});
    r.get_seconds("timeout", c.heartbeat.timeout, seconds{1});
    r.get_string("ca_file", c.heartbeat.ca_file);
    r.get_seconds("start_grace", c.heartbeat.start_grace);
    r.get_bool("start_ping", c.heartbeat.start_ping);
    r.finish();
}

// After [watch] and [sources]: the defaults derive from both.
void parse_posture(table_reader& root, config& c, parse_state& st) {
    posture_config& p = c.posture;
    p.enabled = c.graph.enabled;
    const toml::table* t = root.get_table("posture");
    if (t != nullptr) {
        table_reader r(st.errors, *t, "posture");
        const bool enabled_given = r.get_bool("enabled", p.enabled);
        if (enabled_given && p.enabled && !c.graph.enabled) {
            r.error_at("enabled", *r.take("enabled"),
                       "posture checks read Microsoft Graph: enable [sources.graph] (its app "
                       "registration needs the permissions listed in README \"Posture checks\")");
        }
        r.get_seconds("interval", p.interval, seconds{1});
        const toml::node* members = r.take("group_members");
        read_guid_list(r, "group_members", p.group_members, st);
        if (members != nullptr && members->is_array() && members->as_array()->empty()) {
            r.error_at("group_members", *members,
                       "must list at least one object id (omit it to expect the watched "
                       "accounts)");
        }
        r.finish();
    }
    if (p.group_members.empty()) {
        for (const auto& a : c.watch.accounts)
            p.group_members.push_back(a.object_id);
    }
}

// "127.x.y.z:port" or "[::1]:port". Host names are refused: "localhost" can resolve elsewhere.
bool is_loopback_listen(std::string_view s) {
    std::string_view host;
    std::string_view port;
    if (s.substr(0, 6) == "[::1]:") {
        host = "::1";
        port = s.substr(6);
    } else {
        const std::size_t colon = s.rfind(':');
        if (colon == std::string_view::npos) return false;
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
        if (host == "localhost" || !is_loopback_host(host)) return false;
    }
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit))
        return false;
    const int number = std::stoi(std::string(port));
    return number >= 1 && number <= 65535;
}

void parse_small_sections(table_reader& root, config& c, parse_state& st) {
    if (const toml::table* t = root.get_table("state")) {
        table_reader r(st.errors, *t, "state");
        if (r.get_string("directory", c.state_directory) && c.state_directory.empty()) {
            r.error_at("directory", *r.take("directory"), "must not be empty");
            c.state_directory = "/var/lib/glasswatch";
        }
        r.finish();
    }
    if (const toml::table* t = root.get_table("admin")) {
        table_reader r(st.errors, *t, "admin");
        if (r.get_string("listen", c.admin_listen) && !c.admin_listen.empty() &&
            !is_loopback_listen(c.admin_listen)) {
            r.error_at("listen", *r.take("listen"),
                       "must be a loopback address:port (127.0.0.1:9464 or [::1]:9464), or \"\" "
                       "to disable: the admin endpoint has no authentication");
        }
        r.finish();
    }
    if (const toml::table* t = root.get_table("log")) {
        table_reader r(st.errors, *t, "log");
        if (r.get_string("level", c.log_level)) {
            static constexpr auto levels =
                std::to_array<std::string_view>({"trace", "debug", "info", "warn", "error"});
            if (!contains(levels, c.log_level)) {
                r.error_at("level", *r.take("level"),
                           "unknown value \"" + c.log_level +
                               "\" (expected trace, debug, info, warn or error)");
            }
        }
        r.finish();
    }
    if (const toml::table* t = root.get_table("security")) {
        table_reader r(st.errors, *t, "security");
        r.get_bool("allow_world_readable_secrets", c.allow_world_readable_secrets);
        r.finish();
    }
}

// The tenant id and first-party ids occur in every record: watching one is a misconfiguration
// that would page on everything (and so, in practice, get the pager muted).
void check_watchlist_ids(config& c, parse_state& st) {
    for (const auto& loc : st.watched_ids) {
        if (st.tenant_id_valid && loc.id == c.tenant_id) {
            st.errors.push_back(
                {loc.path, loc.line,
                 "is the tenant id: watching it would make every record a candidate"});
            continue;
        }
        for (const auto& known : well_known_ids) {
            if (loc.id == known.id) {
                st.errors.push_back({loc.path, loc.line,
                                     "is " + std::string(known.name) +
                                         ", not a break-glass object: watching it would make "
                                         "every record a candidate"});
                break;
            }
        }
    }
}

config_result build(const toml::table& root_table) {
    parse_state st;
    config c;
    table_reader root(st.errors, root_table, "");
    parse_tenant(root, c, st);
    parse_watch(root, c, st);
    parse_sources(root, c, st);
    parse_sinks(root, c, st);
    parse_tripwire(root, c, st);
    parse_heartbeat(root, c, st);
    parse_posture(root, c, st);
    parse_small_sections(root, c, st);
    root.finish();
    check_watchlist_ids(c, st);

    config_result result;
    // File order reads best; ties keep the order in which they were found.
    std::stable_sort(st.errors.begin(), st.errors.end(),
                     [](const config_error& a, const config_error& b) { return a.line < b.line; });
    result.errors = std::move(st.errors);
    if (result.errors.empty()) result.value = std::move(c);
    return result;
}

// ---------------------------------------------------------------------------------------------
// Warnings.

std::string octal_mode(unsigned mode) {
    std::string out = "0000";
    unsigned m = mode & 07777u;
    for (std::size_t i = 4; i-- > 0;) {
        out[i] = static_cast<char>('0' + (m & 7u));
        m >>= 3;
    }
    return out;
}

void check_secret_file(std::vector<config_warning>& out, const std::string& key,
                       const std::string& path, file_mode_fn file_mode) {
    if (path.empty() || file_mode == nullptr) return;
    const std::optional<unsigned> mode = file_mode(path);
    if (!mode || (*mode & 0044u) == 0) return;
    out.push_back({key, "\"" + path + "\" is readable by other users (mode " + octal_mode(*mode) +
                            "): chmod 600 or use LoadCredential="});
}

void check_alert_url(std::vector<config_warning>& out, const std::string& key,
                     const std::string& url) {
    if (url.empty()) return;
    const std::string host = url_host(url);
    if (host.empty()) return;
    if (is_microsoft_operated_host(host)) {
        out.push_back({key, "host \"" + host +
                                "\" is operated by Microsoft: this breaks the out-of-band rule "
                                "(an outage or compromise of the tenant's provider would also "
                                "silence the alert)"});
    }
    if (starts_with_ci(url, "http://") && !is_loopback_host(host)) {
        out.push_back({key, "plain http:// to the non-loopback host \"" + host +
                                "\": alerts travel unencrypted and unauthenticated"});
    }
}

// Domains operated by Microsoft; every subdomain matches too. An alert sent through any of
// them (Teams webhooks, Logic Apps, Power Automate, Outlook, Azure-hosted relays) shares fate
// with the tenant it is warning about.
constexpr std::string_view microsoft_domains[] = {
    // Microsoft and Entra ID
    "microsoft.com",
    "microsoftonline.com",
    "microsoftonline.us",
    "microsoftonline-p.com",
    "onmicrosoft.com",
    "windows.com",
    "microsoft.us",
    "msft.net",
    // Microsoft 365 (Teams incoming webhooks live under office.com)
    "office.com",
    "office365.com",
    "office365.us",
    "office.net",
    "outlook.com",
    "live.com",
    "sharepoint.com",
    "sharepointonline.com",
    "skype.com",
    "msn.com",
    "bing.com",
    // Azure (Logic Apps live under logic.azure.com), national clouds
    "azure.com",
    "azure.net",
    "azure.us",
    "azure-api.net",
    "azure-devices.net",
    "azure-mobile.net",
    "azurewebsites.net",
    "azureedge.net",
    "azurefd.net",
    "azurestaticapps.net",
    "windows.net",
    "cloudapp.net",
    "trafficmanager.net",
    "chinacloudapi.cn",
    "usgovcloudapi.net",
    "visualstudio.com",
    // Power Platform and Dynamics
    "powerplatform.com",
    "powerautomate.com",
    "powerapps.com",
    "dynamics.com",
};

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string secret_ref::describe() const {
    if (!file.empty()) return "file " + file;
    if (!env.empty()) return "env " + env;
    return "none";
}

std::string_view to_string(severity s) noexcept {
    switch (s) {
        case severity::info:
            return "info";
        case severity::warning:
            return "warning";
        case severity::high:
            return "high";
        case severity::critical:
            return "critical";
    }
    return "info";
}

std::optional<severity> parse_severity(std::string_view s) noexcept {
    if (s == "info") return severity::info;
    if (s == "warning") return severity::warning;
    if (s == "high") return severity::high;
    if (s == "critical") return severity::critical;
    return std::nullopt;
}

std::string_view to_string(sink_kind k) noexcept {
    switch (k) {
        case sink_kind::file:
            return "file";
        case sink_kind::pagerduty:
            return "pagerduty";
        case sink_kind::twilio:
            return "twilio";
        case sink_kind::webhook:
            return "webhook";
    }
    return "file";
}

std::string default_authority_host(cloud_kind c) {
    switch (c) {
        case cloud_kind::public_cloud:
            return "https://login.microsoftonline.com";
        case cloud_kind::usgov:
        case cloud_kind::usgov_dod:
            return "https://login.microsoftonline.us";
        case cloud_kind::china:
            return "https://login.chinacloudapi.cn";
    }
    return "https://login.microsoftonline.com";
}

std::string default_graph_base_url(cloud_kind c) {
    switch (c) {
        case cloud_kind::public_cloud:
            return "https://graph.microsoft.com";
        case cloud_kind::usgov:
            return "https://graph.microsoft.us";
        case cloud_kind::usgov_dod:
            return "https://dod-graph.microsoft.us";
        case cloud_kind::china:
            return "https://microsoftgraph.chinacloudapi.cn";
    }
    return "https://graph.microsoft.com";
}

config_result parse_config(std::string_view toml_text, std::string_view source_name) {
    config_result result;
    try {
        const toml::table root = toml::parse(toml_text, source_name);
        return build(root);
    } catch (const toml::parse_error& e) {
        const auto& where = e.source().begin;
        result.errors.push_back({"", static_cast<int>(where.line),
                                 "TOML syntax error: " + std::string(e.description()) +
                                     " (column " + std::to_string(where.column) + ")"});
    } catch (const std::exception& e) {
        // Only allocation failure is expected here; the contract is "never throws".
        result.errors.push_back({"", 0, std::string("cannot load configuration: ") + e.what()});
    }
    return result;
}

std::string format_error(const config_error& e, std::string_view source_name) {
    std::string out(source_name);
    if (e.line > 0) out += ":" + std::to_string(e.line);
    out += ": ";
    if (!e.key.empty()) {
        out += e.key;
        out += ": ";
    }
    out += e.message;
    return out;
}

std::vector<config_warning> check_config_warnings(const config& c, file_mode_fn file_mode) {
    std::vector<config_warning> out;
    if (c.watch.accounts.size() < 2) {
        out.push_back({"watch.accounts",
                       std::to_string(c.watch.accounts.size()) +
                           " account(s) watched: break-glass guidance is at least two accounts"});
    }
    if (!c.graph.enabled && !c.eventhub.enabled) {
        out.push_back({"sources", "no source enabled: only replay will produce alerts"});
    }
    const bool pages = std::any_of(c.sinks.begin(), c.sinks.end(),
                                   [](const sink_config& s) { return s.kind != sink_kind::file; });
    if (!pages)
        out.push_back({"sinks",
                       "no paging sink: alerts only reach local files, nobody is paged; add a "
                       "pagerduty, twilio or webhook sink (out of band)"});
    if (c.heartbeat.url.empty() && !c.heartbeat.url_secret.present())
        out.push_back({"heartbeat.url",
                       "no dead-man switch: if this VM or the daemon dies, nobody is told; set "
                       "[heartbeat] url to an external check that is not hosted by Microsoft"});
    for (std::size_t i = 0; i < c.sinks.size(); ++i) {
        const sink_config& s = c.sinks[i];
        const std::string base = index_path("sinks", i);
        switch (s.kind) {
            case sink_kind::file:
                break;
            case sink_kind::pagerduty:
                check_alert_url(out, base + ".url", s.url);
                check_secret_file(out, base + ".routing_key_file", s.routing_key.file, file_mode);
                break;
            case sink_kind::twilio:
                check_alert_url(out, base + ".api_base", s.api_base);
                check_secret_file(out, base + ".auth_token_file", s.auth_token.file, file_mode);
                if (s.escalate_to.empty())
                    out.push_back(
                        {base + ".escalate_to",
                         "no escalation target: an SMS Twilio reports undelivered, or that is not "
                         "delivered within delivery_timeout (" +
                             std::to_string(s.delivery_timeout.count()) +
                             " s), only raises sink_broken on the other sinks; set escalate_to "
                             "(and escalate_after) to page another sink at once"});
                break;
            case sink_kind::webhook:
                check_alert_url(out, base + ".url", s.url);
                check_secret_file(out, base + ".signing_secret_file", s.signing_secret.file,
                                  file_mode);
                check_secret_file(out, base + ".url_file", s.url_secret.file, file_mode);
                break;
        }
    }
    check_alert_url(out, "heartbeat.url", c.heartbeat.url);
    check_secret_file(out, "heartbeat.url_file", c.heartbeat.url_secret.file, file_mode);
    check_secret_file(out, "sources.graph.client_secret_file", c.graph.client_secret.file,
                      file_mode);
    check_secret_file(out, "sources.graph.private_key_file", c.graph.private_key.file, file_mode);
    check_secret_file(out, "sources.eventhub.connection_string_file",
                      c.eventhub.connection_string.file, file_mode);
    return out;
}

std::string check_alert_endpoint_url(std::string_view url) {
    return check_url(url, url_policy::http_or_https);
}

std::string redact_url(std::string_view url) {
    const std::string host = url_host(url);
    if (host.empty()) return url.empty() ? std::string() : std::string("(not a URL)");
    const auto scheme_end = url.find("://");
    std::string out(url.substr(0, scheme_end + 3));
    // host[:port] as written (lower-cased host, port kept: it tells which receiver)
    const std::string_view rest = url.substr(scheme_end + 3);
    const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    out += to_lower(authority);
    if (authority.size() < rest.size()) out += "/\u2026";
    return out;
}

bool is_microsoft_operated_host(std::string_view host) {
    std::string h = to_lower(host);
    // "hooks.office.com." is the same host as "hooks.office.com".
    if (!h.empty() && h.back() == '.') h.pop_back();
    for (std::string_view d : microsoft_domains) {
        if (h == d) return true;
        if (h.size() > d.size() && h.compare(h.size() - d.size(), d.size(), d) == 0 &&
            h[h.size() - d.size() - 1] == '.') {
            return true;
        }
    }
    return false;
}

std::string url_host(std::string_view url) {
    std::string_view rest;
    if (starts_with_ci(url, "https://")) {
        rest = url.substr(8);
    } else if (starts_with_ci(url, "http://")) {
        rest = url.substr(7);
    } else {
        return {};
    }
    // Backslashes and whitespace make parsers disagree about where the host ends
    // ("http://evil.example\@office.com"); such a URL is malformed here.
    for (char c : url) {
        if (c == '\\' || c == ' ' || has_control_char(std::string_view(&c, 1))) return {};
    }
    std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
        authority.remove_prefix(at + 1);
    }
    std::string_view host;
    std::string_view port;
    bool has_port = false;
    if (!authority.empty() && authority.front() == '[') {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return {};
        host = authority.substr(1, close - 1);
        const std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return {};
            port = after.substr(1);
            has_port = true;
        }
        if (host.find(':') == std::string_view::npos) return {};
        if (!std::all_of(host.begin(), host.end(),
                         [](char c) { return is_hex(c) || c == ':' || c == '.'; })) {
            return {};
        }
    } else {
        const std::size_t colon = authority.find(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            port = authority.substr(colon + 1);
            has_port = true;
        }
        if (!std::all_of(host.begin(), host.end(), [](char c) {
                return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_';
            })) {
            return {};
        }
    }
    if (host.empty()) return {};
    if (has_port) {
        if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit))
            return {};
        const int number = std::stoi(std::string(port));
        if (number < 1 || number > 65535) return {};
    }
    return to_lower(host);
}

}  // namespace glasswatch::core
