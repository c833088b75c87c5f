// Configuration loader: TOML text -> `config`, collecting every problem instead of stopping at
// the first, so an operator fixes a broken file in one round trip instead of one per error.

#include "core/config/config.hpp"

#include "core/base/time.hpp"
#include "core/config/config_reader.hpp"
#include "core/config/rule_names.hpp"

namespace glasswatch::core {

using namespace config_detail;

namespace {

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
    if (const toml::table* t = root.get_table("evidence")) {
        table_reader r(st.errors, *t, "evidence");
        if (r.get_seconds("head_interval", c.evidence.head_interval) &&
            c.evidence.head_interval.count() > 0 && c.evidence.head_interval.count() < 60)
            r.error_at("head_interval", *r.take("head_interval"),
                       "must be at least 1m (or 0 to turn it off)");
        if (c.evidence.head_interval.count() > 0) {
            const bool routed = std::any_of(c.sinks.begin(), c.sinks.end(), [](const auto& k) {
                return std::find(k.rules.begin(), k.rules.end(), "evidence_head") != k.rules.end();
            });
            if (!routed)
                r.error_at("head_interval", *r.take("head_interval"),
                           "no sink's rules name evidence_head: add it to the rules of the sink "
                           "that should receive the evidence head (a webhook whose history you "
                           "keep)");
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
