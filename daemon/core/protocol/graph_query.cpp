#include "core/protocol/graph_query.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/base/json_text.hpp"

namespace glasswatch::core {

std::string_view stream_name(graph_kind k) noexcept {
    switch (k) {
        case graph_kind::interactive:
            return "interactive";
        case graph_kind::non_interactive:
            return "non_interactive";
        case graph_kind::service_principal:
            return "service_principal";
        case graph_kind::managed_identity:
            return "managed_identity";
        case graph_kind::audit:
            return "audit";
    }
    return "?";
}

std::string checkpoint_key(graph_kind k) {
    return "graph:" + std::string(stream_name(k));
}

signin_type signin_of(graph_kind k) noexcept {
    switch (k) {
        case graph_kind::interactive:
            return signin_type::interactive;
        case graph_kind::non_interactive:
            return signin_type::non_interactive;
        case graph_kind::service_principal:
            return signin_type::service_principal;
        case graph_kind::managed_identity:
            return signin_type::managed_identity;
        case graph_kind::audit:
            return signin_type::none;
    }
    return signin_type::none;
}

std::string build_poll_url(std::string_view graph_base, graph_kind k, micros from,
                           const watchlist& wl, bool full_stream, int top) {
    std::string base(graph_base);
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    // Whole seconds, rounded down: Graph compares with ge, so nothing is skipped.
    std::string since = format_iso8601(from - ((from % 1000000) + 1000000) % 1000000, false);
    std::string filter;
    std::string path;
    if (k == graph_kind::audit) {
        path = "/v1.0/auditLogs/directoryAudits";
        filter = "activityDateTime ge " + since;
        if (!full_stream) {
            std::vector<std::string> ids = wl.all_guids();
            std::string any;
            for (const auto& a : wl.accounts()) {
                if (!any.empty()) any += " or ";
                any += "initiatedBy/user/id eq '" + a.object_id + "'";
            }
            for (const auto& id : ids) {
                if (!any.empty()) any += " or ";
                any += "targetResources/any(t: t/id eq '" + id + "')";
            }
            if (!any.empty()) filter += " and (" + any + ")";
        }
    } else {
        const char* type = nullptr;
        switch (k) {
            case graph_kind::non_interactive:
                type = "nonInteractiveUser";
                break;
            case graph_kind::service_principal:
                type = "servicePrincipal";
                break;
            case graph_kind::managed_identity:
                type = "managedIdentity";
                break;
            default:
                break;
        }
        path = type ? "/beta/auditLogs/signIns" : "/v1.0/auditLogs/signIns";
        filter = "createdDateTime ge " + since;
        if (type) filter += std::string(" and signInEventTypes/any(t: t eq '") + type + "')";
        const bool user_stream = k == graph_kind::interactive || k == graph_kind::non_interactive;
        const account_type wanted = k == graph_kind::service_principal
                                        ? account_type::service_principal
                                        : account_type::managed_identity;
        std::string any;
        for (const auto& a : wl.accounts()) {
            if (user_stream) {
                // A user's sign-ins: every watched account that is not an app identity.
                if (a.type != account_type::user) continue;
                if (!any.empty()) any += " or ";
                any += "userId eq '" + a.object_id + "'";
            } else if (a.type == wanted) {
                if (!any.empty()) any += " or ";
                any += "servicePrincipalId eq '" + a.object_id + "'";
            }
        }
        if (!full_stream && !any.empty()) filter += " and (" + any + ")";
    }
    std::string url = base + path + "?$filter=" + url_encode(filter);
    if (top > 0) url += "&$top=" + std::to_string(top);
    return url;
}

stream_plan plan_streams(const graph_source_config& g, const watchlist_config& w) {
    stream_plan p;
    auto watches = [&w](account_type t) {
        for (const auto& a : w.accounts)
            if (a.type == t) return true;
        return false;
    };
    for (graph_kind k : g.kinds) {
        if (!g.full_stream) {
            if (k == graph_kind::service_principal && !watches(account_type::service_principal)) {
                p.skipped.emplace_back(k, "no watched account has type = \"service_principal\"");
                continue;
            }
            if (k == graph_kind::managed_identity && !watches(account_type::managed_identity)) {
                p.skipped.emplace_back(k, "no watched account has type = \"managed_identity\"");
                continue;
            }
            if ((k == graph_kind::interactive || k == graph_kind::non_interactive) &&
                !watches(account_type::user)) {
                p.skipped.emplace_back(k, "no watched account has type = \"user\"");
                continue;
            }
        }
        p.read.push_back(k);
    }
    return p;
}

int smaller_page_top(int top) noexcept {
    if (top == 1) return 0;
    const int from = top > 0 ? top : 1000;
    return std::max(from / 4, 1);
}

namespace {

// "scheme://host:port" with the default port made explicit and the host lower-cased.
std::string origin_of(std::string_view url) {
    auto sep = url.find("://");
    if (sep == std::string_view::npos) return {};
    std::string scheme = to_lower_ascii(url.substr(0, sep));
    std::string_view rest = url.substr(sep + 3);
    auto end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, end);
    if (authority.find('@') != std::string_view::npos) return {};  // userinfo: refuse
    std::string host(authority), port;
    if (!host.empty() && host.front() == '[') {
        auto close = host.find(']');
        if (close == std::string::npos) return {};
        if (close + 1 < host.size() && host[close + 1] == ':') port = host.substr(close + 2);
        host = host.substr(0, close + 1);
    } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
        port = host.substr(colon + 1);
        host = host.substr(0, colon);
    }
    if (port.empty()) port = scheme == "https" ? "443" : scheme == "http" ? "80" : "";
    if (host.empty() || port.empty()) return {};
    return scheme + "://" + to_lower_ascii(host) + ":" + port;
}

}  // namespace

bool same_origin(std::string_view url, std::string_view base) {
    std::string a = origin_of(url), b = origin_of(base);
    return !a.empty() && a == b;
}

micros poll_cursor(micros local_started, std::optional<micros> server_date) {
    if (!server_date || *server_date <= 0) return local_started;
    return *server_date - 1000000;
}

void graph_cursor::prune(micros horizon, std::size_t max_entries) {
    for (auto it = seen.begin(); it != seen.end();) {
        if (it->second < horizon)
            it = seen.erase(it);
        else
            ++it;
    }
    if (seen.size() <= max_entries) return;
    std::vector<std::pair<micros, std::string>> by_age;
    for (auto& [id, t] : seen)
        by_age.emplace_back(t, id);
    std::sort(by_age.begin(), by_age.end());
    for (std::size_t i = 0; i < by_age.size() - max_entries; ++i)
        seen.erase(by_age[i].second);
}

std::string graph_cursor::to_json() const {
    nlohmann::json j;
    j["v"] = 1;
    j["cursor"] = cursor;
    nlohmann::json s = nlohmann::json::object();
    for (auto& [id, t] : seen)
        s[id] = t;
    j["seen"] = std::move(s);
    return j.dump();
}

std::optional<graph_cursor> graph_cursor::from_json(std::string_view text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object() || j.value("v", 0) != 1 || !j.contains("cursor") ||
        !j["cursor"].is_number_integer())
        return std::nullopt;
    graph_cursor c;
    c.cursor = j["cursor"].get<micros>();
    if (j.contains("seen") && j["seen"].is_object())
        for (auto& [id, t] : j["seen"].items())
            if (t.is_number_integer()) c.seen[id] = t.get<micros>();
    return c;
}

void rate_limiter::expire(micros now) {
    while (!sent_.empty() && sent_.front() <= now - window_)
        sent_.pop_front();
}

micros rate_limiter::next_allowed(micros now) {
    expire(now);
    // Even spacing (window / max) rather than bursts: with several streams per poll, a burst
    // would serve the first streams and starve the last one for a whole window.
    micros at = now;
    if (!sent_.empty()) at = std::max(at, sent_.back() + window_ / max_);
    // The service counts arrivals, and two requests sent a window apart can arrive closer
    // together (a slow first hop, a faster second): leave a margin.
    if (static_cast<int>(sent_.size()) >= max_)
        at = std::max(
            at, sent_[sent_.size() - static_cast<std::size_t>(max_)] + window_ + rate_limit_margin);
    return at;
}

void rate_limiter::record(micros at) {
    sent_.push_back(at);
}

int rate_limiter::in_window(micros now) {
    expire(now);
    return static_cast<int>(sent_.size());
}

}  // namespace glasswatch::core
