#include "core/detection/normalize.hpp"

#include <simdjson.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <optional>

#include "core/base/json_text.hpp"

namespace glasswatch::core {

namespace dom = simdjson::dom;

namespace od = simdjson::ondemand;

struct normalizer::impl {
    parse_limits limits;
    dom::parser dom_parser;
    od::parser od_parser;
    std::string buffer;  // padded copy of the body being split (spans point into it)
    explicit impl(parse_limits l)
        : limits(l), dom_parser(l.max_body_bytes), od_parser(l.max_body_bytes) {
        // Start small (idle footprint) and let the parser grow up to max_body_bytes; the depth
        // limit survives regrowth and stops hostile 100k-deep nesting cheaply.
        if (od_parser.allocate(64 * 1024, l.max_depth) != simdjson::SUCCESS ||
            dom_parser.allocate(64 * 1024, l.max_depth) != simdjson::SUCCESS) {
            // Allocation failure here is not recoverable later either; parse() will report it.
        }
    }
};

normalizer::normalizer(parse_limits limits) : impl_(std::make_unique<impl>(limits)) {}
normalizer::~normalizer() = default;

namespace {

std::string_view trim(std::string_view s) {
    // A UTF-8 BOM and surrounding whitespace are tolerated on Event Hub bodies.
    if (s.size() >= 3 && s.substr(0, 3) == "\xEF\xBB\xBF") s.remove_prefix(3);
    while (!s.empty() &&
           (s.front() == ' ' || s.front() == '\n' || s.front() == '\r' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' ||
                          s.back() == '\t' || s.back() == '\0'))
        s.remove_suffix(1);
    return s;
}

// ---- DOM helpers: lenient lookups (case-insensitive fallback, number-or-string) ----------

bool find(dom::object o, std::string_view key, dom::element& out) {
    if (o.at_key(key).get(out) == simdjson::SUCCESS) return true;
    for (auto kv : o) {
        if (iequals_ascii(kv.key, key)) {
            out = kv.value;
            return true;
        }
    }
    return false;
}

std::string str(dom::element e) {
    switch (e.type()) {
        case dom::element_type::STRING:
            return std::string(e.get_string().value_unsafe());
        case dom::element_type::INT64:
            return std::to_string(e.get_int64().value_unsafe());
        case dom::element_type::UINT64:
            return std::to_string(e.get_uint64().value_unsafe());
        case dom::element_type::DOUBLE: {
            double d = e.get_double().value_unsafe();
            char buf[32];
            auto r = std::to_chars(buf, buf + sizeof buf, d);
            return std::string(buf, r.ptr);
        }
        case dom::element_type::BOOL:
            return e.get_bool().value_unsafe() ? "true" : "false";
        default:
            return {};
    }
}

std::string get_str(dom::object o, std::string_view key) {
    dom::element e;
    return find(o, key, e) ? str(e) : std::string{};
}

bool get_obj(dom::object o, std::string_view key, dom::object& out) {
    dom::element e;
    return find(o, key, e) && e.get_object().get(out) == simdjson::SUCCESS;
}

bool get_arr(dom::object o, std::string_view key, dom::array& out) {
    dom::element e;
    return find(o, key, e) && e.get_array().get(out) == simdjson::SUCCESS;
}

// Integer from a number or a numeric string ("53003"); nullopt otherwise.
std::optional<std::int64_t> get_int(dom::object o, std::string_view key) {
    dom::element e;
    if (!find(o, key, e)) return std::nullopt;
    switch (e.type()) {
        case dom::element_type::INT64:
            return e.get_int64().value_unsafe();
        case dom::element_type::UINT64: {
            auto v = e.get_uint64().value_unsafe();
            return v > static_cast<std::uint64_t>(INT64_MAX)
                       ? std::nullopt
                       : std::optional<std::int64_t>(static_cast<std::int64_t>(v));
        }
        case dom::element_type::DOUBLE: {
            double d = e.get_double().value_unsafe();
            if (d > -9.2e18 && d < 9.2e18) return static_cast<std::int64_t>(d);
            return std::nullopt;
        }
        case dom::element_type::STRING: {
            auto s = e.get_string().value_unsafe();
            std::int64_t v = 0;
            auto r = std::from_chars(s.data(), s.data() + s.size(), v);
            if (r.ec == std::errc() && r.ptr == s.data() + s.size()) return v;
            return std::nullopt;
        }
        default:
            return std::nullopt;
    }
}

std::optional<bool> get_bool(dom::object o, std::string_view key) {
    dom::element e;
    if (!find(o, key, e)) return std::nullopt;
    if (e.type() == dom::element_type::BOOL) return e.get_bool().value_unsafe();
    if (e.type() == dom::element_type::STRING) {
        auto s = e.get_string().value_unsafe();
        if (iequals_ascii(s, "true")) return true;
        if (iequals_ascii(s, "false")) return false;
    }
    return std::nullopt;
}

std::string id_value(std::string s) {
    // GUID-shaped ids are canonicalised to lower case; other ids (Directory_...) kept as is.
    return is_guid(s) ? to_lower_ascii(s) : s;
}

signin_type signin_from_event_types(dom::object p) {
    dom::array types;
    if (!get_arr(p, "signInEventTypes", types)) return signin_type::none;
    for (auto t : types) {
        std::string_view s;
        if (t.get_string().get(s) != simdjson::SUCCESS) continue;
        if (iequals_ascii(s, "interactiveUser")) return signin_type::interactive;
        if (iequals_ascii(s, "nonInteractiveUser")) return signin_type::non_interactive;
        if (iequals_ascii(s, "servicePrincipal")) return signin_type::service_principal;
        if (iequals_ascii(s, "managedIdentity")) return signin_type::managed_identity;
    }
    return signin_type::none;
}

// Fills a sign-in event from a Graph signIn object (also the `properties` of diagnostic records).
bool fill_signin(dom::object p, event& ev, std::string& error) {
    ev.kind = event_kind::sign_in;
    ev.id = id_value(get_str(p, "id"));
    if (ev.id.empty()) {
        error = "sign-in without id";
        return false;
    }
    std::string created = get_str(p, "createdDateTime");
    if (auto t = parse_iso8601(created))
        ev.time = *t;
    else if (!created.empty()) {
        error = "sign-in createdDateTime is not ISO-8601";
        return false;
    }
    if (ev.signin == signin_type::none) ev.signin = signin_from_event_types(p);
    if (ev.signin == signin_type::none) ev.signin = signin_type::interactive;  // v1.0 default

    std::string user_id = id_value(get_str(p, "userId"));
    std::string sp_id = id_value(get_str(p, "servicePrincipalId"));
    if (ev.signin == signin_type::service_principal || ev.signin == signin_type::managed_identity ||
        (user_id.empty() && !sp_id.empty())) {
        ev.actor.id = sp_id;
        ev.actor.display_name = get_str(p, "servicePrincipalName");
        if (ev.actor.display_name.empty()) ev.actor.display_name = get_str(p, "appDisplayName");
        ev.actor.type = "servicePrincipal";
        ev.actor.app_id = to_lower_ascii(get_str(p, "appId"));
        // A user id can still be present on such rows; keep it visible for matching.
        if (!user_id.empty()) {
            ev.actor.id = user_id;
            ev.actor.type = "user";
        }
    } else {
        ev.actor.id = user_id;
        ev.actor.type = "user";
    }
    ev.actor.upn = to_lower_ascii(get_str(p, "userPrincipalName"));
    if (ev.actor.type == "user") ev.actor.display_name = get_str(p, "userDisplayName");

    dom::object status;
    if (get_obj(p, "status", status)) {
        ev.error_code = get_int(status, "errorCode").value_or(0);
        ev.failure_reason = get_str(status, "failureReason");
    }
    ev.success = ev.error_code == 0;
    ev.activity = "Sign-in";
    ev.correlation_id = to_lower_ascii(get_str(p, "correlationId"));
    ev.ip = get_str(p, "ipAddress");
    dom::object loc;
    if (get_obj(p, "location", loc)) {
        ev.city = get_str(loc, "city");
        ev.state = get_str(loc, "state");
        ev.country = get_str(loc, "countryOrRegion");
    }
    ev.app_id = to_lower_ascii(get_str(p, "appId"));
    ev.app_display_name = get_str(p, "appDisplayName");
    ev.resource_display_name = get_str(p, "resourceDisplayName");
    ev.client_app = get_str(p, "clientAppUsed");
    ev.user_agent = get_str(p, "userAgent");
    ev.ca_status = get_str(p, "conditionalAccessStatus");
    ev.risk_level = get_str(p, "riskLevelDuringSignIn");
    if (ev.risk_level.empty() || ev.risk_level == "none") {
        std::string agg = get_str(p, "riskLevelAggregated");
        if (!agg.empty()) ev.risk_level = agg;
    }
    ev.risk_state = get_str(p, "riskState");
    ev.auth_requirement = get_str(p, "authenticationRequirement");
    ev.is_interactive =
        get_bool(p, "isInteractive").value_or(ev.signin == signin_type::interactive);
    if (ev.tenant_id.empty()) ev.tenant_id = to_lower_ascii(get_str(p, "resourceTenantId"));
    return true;
}

// True when a value (a string, or a number written as one) concerns the probe.
bool value_concerns(dom::element e, const identity_probe& probe) {
    if (e.type() == dom::element_type::STRING) {
        std::string_view v = e.get_string().value_unsafe();
        return !v.empty() && probe.concerns(v);
    }
    std::string v = str(e);
    return !v.empty() && probe.concerns(v);
}

// Every identity value fill_signin()/fill_audit() can hand to the matcher, and more: one pass
// over the keys (any case, duplicates included, so a second "userId" cannot hide behind the
// first), the id / UPN / service principal fields at every level, initiatedBy.user and .app,
// every targetResources element, whatever the record's category says. A superset is safe: a
// false "concerns" only costs the full normalization.
bool object_concerns(dom::object o, const identity_probe& probe, int depth) {
    for (auto kv : o) {
        const std::string_view k = kv.key;
        if (iequals_ascii(k, "id") || iequals_ascii(k, "userId") ||
            iequals_ascii(k, "servicePrincipalId") || iequals_ascii(k, "userPrincipalName")) {
            if (value_concerns(kv.value, probe)) return true;
        } else if (depth < 3 &&
                   (iequals_ascii(k, "properties") || iequals_ascii(k, "initiatedBy") ||
                    iequals_ascii(k, "user") || iequals_ascii(k, "app"))) {
            dom::object sub;
            if (kv.value.get_object().get(sub) == simdjson::SUCCESS &&
                object_concerns(sub, probe, depth + 1))
                return true;
        } else if (depth < 3 && iequals_ascii(k, "targetResources")) {
            dom::array targets;
            if (kv.value.get_array().get(targets) != simdjson::SUCCESS) continue;
            for (auto t : targets) {
                dom::object to;
                if (t.get_object().get(to) == simdjson::SUCCESS &&
                    object_concerns(to, probe, depth + 1))
                    return true;
            }
        }
    }
    return false;
}

identity read_identity(dom::object o) {
    identity who;
    who.id = id_value(get_str(o, "id"));
    who.display_name = get_str(o, "displayName");
    who.upn = to_lower_ascii(get_str(o, "userPrincipalName"));
    who.type = get_str(o, "type");
    who.ip = get_str(o, "ipAddress");
    return who;
}

bool fill_audit(dom::object p, event& ev, std::string& error) {
    ev.kind = event_kind::audit;
    ev.signin = signin_type::none;
    ev.id = get_str(p, "id");
    if (ev.id.empty()) {
        error = "audit record without id";
        return false;
    }
    std::string when = get_str(p, "activityDateTime");
    if (auto t = parse_iso8601(when))
        ev.time = *t;
    else if (!when.empty()) {
        error = "audit activityDateTime is not ISO-8601";
        return false;
    }
    ev.activity = get_str(p, "activityDisplayName");
    ev.audit_category = get_str(p, "category");
    ev.operation_type = get_str(p, "operationType");
    ev.logged_by_service = get_str(p, "loggedByService");
    ev.correlation_id = to_lower_ascii(get_str(p, "correlationId"));

    // result: "success"/"failure"/"timeout", or the integer enum of old samples (0 = success).
    dom::element result;
    if (find(p, "result", result)) {
        if (result.type() == dom::element_type::STRING) {
            std::string r(result.get_string().value_unsafe());
            ev.success = iequals_ascii(r, "success");
            if (!ev.success) ev.failure_reason = r;
        } else if (auto v = get_int(p, "result")) {
            ev.success = *v == 0;
            if (!ev.success) ev.failure_reason = *v == 2 ? "timeout" : "failure";
        }
    }
    std::string reason = get_str(p, "resultReason");
    if (!reason.empty()) ev.failure_reason = reason;

    dom::object initiated;
    if (get_obj(p, "initiatedBy", initiated)) {
        dom::object user, app;
        if (get_obj(initiated, "user", user)) {
            ev.actor = read_identity(user);
            ev.actor.type = "user";
            ev.ip = ev.actor.ip;
        } else if (get_obj(initiated, "app", app)) {
            ev.actor.id = id_value(get_str(app, "servicePrincipalId"));
            ev.actor.app_id = to_lower_ascii(get_str(app, "appId"));
            ev.actor.display_name = get_str(app, "displayName");
            if (ev.actor.display_name.empty())
                ev.actor.display_name = get_str(app, "servicePrincipalName");
            ev.actor.type = "app";
        }
    }
    dom::array targets;
    if (get_arr(p, "targetResources", targets)) {
        for (auto t : targets) {
            dom::object to;
            if (t.get_object().get(to) != simdjson::SUCCESS) continue;
            target_resource tr;
            tr.who = read_identity(to);
            dom::array mods;
            if (get_arr(to, "modifiedProperties", mods)) {
                for (auto m : mods) {
                    dom::object mo;
                    if (m.get_object().get(mo) != simdjson::SUCCESS) continue;
                    tr.modified.push_back({get_str(mo, "displayName"), get_str(mo, "oldValue"),
                                           get_str(mo, "newValue")});
                }
            }
            ev.targets.push_back(std::move(tr));
        }
    }
    ev.user_agent = get_str(p, "userAgent");
    dom::array details;
    if (get_arr(p, "additionalDetails", details)) {
        for (auto d : details) {
            dom::object kv;
            if (d.get_object().get(kv) != simdjson::SUCCESS) continue;
            if (ev.user_agent.empty() && iequals_ascii(get_str(kv, "key"), "User-Agent"))
                ev.user_agent = get_str(kv, "value");
        }
    }
    return true;
}

}  // namespace

bool category_kind(std::string_view c, event_kind& kind, signin_type& type) noexcept {
    kind = event_kind::sign_in;
    if (iequals_ascii(c, "SignInLogs"))
        type = signin_type::interactive;
    else if (iequals_ascii(c, "NonInteractiveUserSignInLogs"))
        type = signin_type::non_interactive;
    else if (iequals_ascii(c, "ServicePrincipalSignInLogs"))
        type = signin_type::service_principal;
    else if (iequals_ascii(c, "ManagedIdentitySignInLogs"))
        type = signin_type::managed_identity;
    else if (iequals_ascii(c, "AuditLogs")) {
        kind = event_kind::audit;
        type = signin_type::none;
    } else {
        return false;
    }
    return true;
}

namespace {

// A small structural scanner that finds the byte spans of the records of a body without
// building a DOM: the bytes of each record are kept exactly as received (evidence), and the
// prefilter can skip records before any of them is parsed. Strings are skipped with their
// escapes; nesting is bounded. The DOM parse of each kept record validates its content.
class span_scanner {
public:
    span_scanner(std::string_view s, std::size_t max_depth) : s_(s), max_depth_(max_depth) {}

    std::size_t pos = 0;
    std::string error;

    void ws() {
        while (pos < s_.size() &&
               (s_[pos] == ' ' || s_[pos] == '\n' || s_[pos] == '\r' || s_[pos] == '\t'))
            ++pos;
    }
    bool eat(char c) {
        ws();
        if (pos < s_.size() && s_[pos] == c) {
            ++pos;
            return true;
        }
        return false;
    }
    bool peek(char c) {
        ws();
        return pos < s_.size() && s_[pos] == c;
    }
    // At a '"': returns the raw span including quotes.
    bool string_span(std::string_view& out) {
        std::size_t b = pos;
        if (pos >= s_.size() || s_[pos] != '"') return fail("expected a string");
        ++pos;
        while (pos < s_.size()) {
            const void* q = std::memchr(s_.data() + pos, '"', s_.size() - pos);
            if (!q) break;
            std::size_t at = static_cast<std::size_t>(static_cast<const char*>(q) - s_.data());
            std::size_t bs = 0;
            while (at - bs > pos - 1 && s_[at - bs - 1] == '\\')
                ++bs;  // count preceding backslashes
            pos = at + 1;
            if (bs % 2 == 0) {
                out = s_.substr(b, pos - b);
                return true;
            }
        }
        return fail("unterminated string");
    }
    // Skips any JSON value, tracking nesting depth.
    bool skip_value() {
        ws();
        if (pos >= s_.size()) return fail("truncated");
        std::size_t depth = 0;
        do {
            ws();
            if (pos >= s_.size()) return fail("truncated");
            char c = s_[pos];
            if (c == '"') {
                std::string_view sv;
                if (!string_span(sv)) return false;
            } else if (c == '{' || c == '[') {
                if (++depth > max_depth_)
                    return fail("nesting deeper than " + std::to_string(max_depth_));
                ++pos;
            } else if (c == '}' || c == ']') {
                if (depth == 0) return fail("unbalanced brackets");
                --depth;
                ++pos;
            } else {
                ++pos;  // scalars, ':' and ',' inside containers
                while (depth == 0 && pos < s_.size() &&
                       std::strchr(",}] \n\r\t", s_[pos]) == nullptr)
                    ++pos;
            }
        } while (depth > 0);
        return true;
    }
    bool fail(std::string why) {
        if (error.empty()) error = std::move(why);
        return false;
    }

private:
    std::string_view s_;
    std::size_t max_depth_;
};

// The first key that appears twice in one object of `e` (at any depth), for the error text:
// the key itself when it is a plain field name, "" otherwise (it may be attacker text). Two
// values for one field make a record ambiguous (a reader taking the first and one taking the
// last could disagree on who signed in), so such a record is refused and fails closed.
// Recursion is bounded by the parser's depth limit.
std::optional<std::string> duplicate_key(dom::element e) {
    dom::array arr;
    if (e.get_array().get(arr) == simdjson::SUCCESS) {
        for (auto v : arr)
            if (auto d = duplicate_key(v)) return d;
        return std::nullopt;
    }
    dom::object obj;
    if (e.get_object().get(obj) != simdjson::SUCCESS) return std::nullopt;
    std::vector<std::string_view> keys;
    for (auto kv : obj) {
        keys.push_back(kv.key);
        if (auto d = duplicate_key(kv.value)) return d;
    }
    std::sort(keys.begin(), keys.end());
    auto it = std::adjacent_find(keys.begin(), keys.end());
    if (it == keys.end()) return std::nullopt;
    const bool plain =
        it->size() <= 64 && std::all_of(it->begin(), it->end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '@';
        });
    return plain ? std::string(*it) : std::string();
}

std::string decode_json_string(std::string_view quoted) {
    nlohmann::json j = nlohmann::json::parse(quoted, nullptr, false);
    return j.is_string() ? j.get<std::string>() : std::string();
}

std::string_view trim_right(std::string_view s) {
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// The fast way to the record spans: simdjson On-Demand indexes the whole body with SIMD once,
// then each record is skipped over by its structural index (object::raw_json), far faster than
// scanning it byte by byte. It is lenient where the scanner is lenient (skipped values are only
// bracket-matched) but strict about UTF-8 and depth for the whole body, so any error here hands
// the body to the scanner, which isolates a bad record instead of failing the whole body.
bool split_on_demand(od::parser& parser, std::string& buffer, std::size_t size, split_result& out) {
    simdjson::padded_string_view padded(buffer.data(), size, buffer.capacity());
    od::document doc;
    od::object top;
    if (parser.iterate(padded).get(doc) != simdjson::SUCCESS ||
        doc.get_object().get(top) != simdjson::SUCCESS)
        return false;
    bool has_array = false;
    for (auto field : top) {
        std::string_view key;
        od::value v;
        od::json_type type;
        if (field.unescaped_key().get(key) != simdjson::SUCCESS ||
            field.value().get(v) != simdjson::SUCCESS || v.type().get(type) != simdjson::SUCCESS)
            return false;
        if ((key == "records" || key == "value") && type == od::json_type::array) {
            out.kind = key == "records" ? body_kind::diagnostic_body : body_kind::graph_page;
            has_array = true;
            od::array arr;
            if (v.get_array().get(arr) != simdjson::SUCCESS) return false;
            for (auto element : arr) {
                od::value e;
                od::json_type et;
                if (element.get(e) != simdjson::SUCCESS || e.type().get(et) != simdjson::SUCCESS)
                    return false;
                std::string_view raw;
                if (et == od::json_type::object) {
                    od::object o;
                    if (e.get_object().get(o) != simdjson::SUCCESS ||
                        o.raw_json().get(raw) != simdjson::SUCCESS)
                        return false;
                    out.records.push_back(trim_right(raw));
                } else {
                    ++out.bad_elements;  // skipped when the iteration moves on
                }
            }
        } else if (key == "@odata.nextLink" && type != od::json_type::string &&
                   type != od::json_type::null) {
            return false;  // the scanner reports it: a reader ignoring it would stop paging
        } else if ((key == "@odata.nextLink" || key == "@odata.context") &&
                   type == od::json_type::string) {
            std::string_view text;
            if (v.get_string().get(text) != simdjson::SUCCESS) return false;
            (key == "@odata.nextLink" ? out.next_link : out.odata_context) = std::string(text);
        }
    }
    // Anything after the top-level object (the next token is not the end of the input) is
    // the scanner's "trailing bytes" error.
    const char* next = nullptr;
    if (doc.current_location().get(next) == simdjson::SUCCESS && next != buffer.data() + size)
        return false;
    if (!has_array) {
        out.kind = body_kind::single_record;
        out.records.push_back(std::string_view(buffer.data(), size));
    }
    return true;
}

}  // namespace

split_result normalizer::split(std::string_view body) {
    split_result out;
    body = trim(body);
    if (body.size() > impl_->limits.max_body_bytes) {
        out.error = "body larger than " + std::to_string(impl_->limits.max_body_bytes) + " bytes";
        return out;
    }
    impl_->buffer.reserve(body.size() + simdjson::SIMDJSON_PADDING);
    impl_->buffer.assign(body.data(), body.size());
    if (split_on_demand(impl_->od_parser, impl_->buffer, body.size(), out)) return out;
    out = split_result{};
    std::string_view s(impl_->buffer);
    span_scanner sc(s, impl_->limits.max_depth);
    if (!sc.eat('{')) {
        out.error = "top-level JSON value is not an object";
        return out;
    }
    bool has_array = false;
    if (!sc.eat('}')) {
        for (;;) {
            sc.ws();
            std::string_view key_raw;
            if (!sc.string_span(key_raw) || !sc.eat(':')) {
                out.error = sc.error.empty() ? "malformed object" : sc.error;
                return out;
            }
            std::string key = key_raw.find('\\') == std::string_view::npos
                                  ? std::string(key_raw.substr(1, key_raw.size() - 2))
                                  : decode_json_string(key_raw);
            if ((key == "records" || key == "value") && sc.peek('[')) {
                out.kind = key == "records" ? body_kind::diagnostic_body : body_kind::graph_page;
                has_array = true;
                sc.eat('[');
                if (!sc.eat(']')) {
                    for (;;) {
                        sc.ws();
                        std::size_t b = sc.pos;
                        bool is_object = sc.peek('{');
                        if (!sc.skip_value()) {
                            out.error = sc.error;
                            return out;
                        }
                        if (is_object)
                            out.records.push_back(s.substr(b, sc.pos - b));
                        else
                            ++out.bad_elements;
                        if (sc.eat(',')) continue;
                        if (sc.eat(']')) break;
                        out.error = "malformed array";
                        return out;
                    }
                }
            } else if (key == "@odata.nextLink" && !sc.peek('"') && !sc.peek('n')) {
                // A reader that ignored it would take this page for the last one.
                out.error = "@odata.nextLink is not a string";
                return out;
            } else if ((key == "@odata.nextLink" || key == "@odata.context") && sc.peek('"')) {
                std::string_view v;
                sc.string_span(v);
                (key == "@odata.nextLink" ? out.next_link : out.odata_context) =
                    decode_json_string(v);
            } else if (!sc.skip_value()) {
                out.error = sc.error;
                return out;
            }
            if (sc.eat(',')) continue;
            if (sc.eat('}')) break;
            out.error = "malformed object";
            return out;
        }
    }
    sc.ws();
    if (sc.pos != s.size()) {
        out.error = "trailing bytes after the JSON value";
        return out;
    }
    if (!has_array) {
        out.kind = body_kind::single_record;
        out.records.push_back(s);
    }
    return out;
}

normalize_result normalizer::normalize(std::string_view raw, record_hint hint,
                                       signin_type signin_hint, const identity_probe* probe) {
    normalize_result r;
    raw = trim(raw);
    if (raw.size() > impl_->limits.max_body_bytes) {
        r.error = "record too large";
        return r;
    }
    dom::element root;
    if (auto ec = impl_->dom_parser.parse(raw.data(), raw.size(), true).get(root)) {
        r.error = std::string("not JSON: ") + simdjson::error_message(ec);
        return r;
    }
    dom::object o;
    if (root.get_object().get(o) != simdjson::SUCCESS) {
        r.error = "record is not an object";
        return r;
    }
    // Before the duplicate-key walk and the event: most candidate records of a busy tenant
    // carry a watched GUID only in an unrelated field (tenant, policy or correlation ids).
    if (probe && !object_concerns(o, *probe, 0)) {
        r.status = normalize_status::not_concerned;
        return r;
    }
    if (auto dup = duplicate_key(root)) {
        r.error = dup->empty() ? "duplicate key" : "duplicate key \"" + *dup + "\"";
        return r;
    }
    event& ev = r.ev;
    dom::object props;
    bool is_diag = hint == record_hint::diagnostic ||
                   (hint == record_hint::any && get_obj(o, "properties", props) &&
                    !get_str(o, "category").empty());
    bool ok = false;
    if (is_diag) {
        ev.format = record_format::diagnostic;
        ev.category = get_str(o, "category");
        event_kind kind{};
        signin_type type{};
        if (!category_kind(ev.category, kind, type)) {
            r.status = normalize_status::skipped_category;
            r.error = ev.category.empty() ? std::string("(no category)") : ev.category;
            return r;
        }
        if (!get_obj(o, "properties", props)) {
            r.error = "diagnostic record without properties object";
            return r;
        }
        ev.tenant_id = to_lower_ascii(get_str(o, "tenantId"));
        if (kind == event_kind::sign_in) {
            ev.signin = type;
            ok = fill_signin(props, ev, r.error);
        } else {
            ok = fill_audit(props, ev, r.error);
        }
        if (ok && ev.time == 0) {
            if (auto t = parse_iso8601(get_str(o, "time"))) ev.time = *t;
        }
        if (ok && ev.ip.empty()) {
            std::string caller = get_str(o, "callerIpAddress");
            if (caller != "<null>") ev.ip = caller;
        }
    } else {
        bool audit = hint == record_hint::graph_audit ||
                     (hint == record_hint::any && !get_str(o, "activityDateTime").empty());
        if (audit) {
            ev.format = record_format::graph_audit;
            ev.category = "directoryAudits";
            ok = fill_audit(o, ev, r.error);
        } else {
            ev.format = record_format::graph_signin;
            ev.category = "signIns";
            ev.signin = signin_hint;
            ok = fill_signin(o, ev, r.error);
        }
    }
    if (ok) {
        ev.raw.assign(raw.data(), raw.size());
        if (ev.time == 0) {
            r.error = "record without a timestamp";
            return r;
        }
        r.status = normalize_status::ok;
    }
    return r;
}

}  // namespace glasswatch::core
