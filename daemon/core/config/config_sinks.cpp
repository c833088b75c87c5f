// The [[sinks]] section: every sink type, its keys and its credentials.
#include "core/config/config_reader.hpp"

#include "core/base/time.hpp"
#include "core/config/rule_names.hpp"

namespace glasswatch::core::config_detail {

namespace {

// Type-specific sink keys; a key of another type is reported as such, not as "unknown".
constexpr auto file_sink_keys = std::to_array<std::string_view>({"path"});
constexpr auto pagerduty_sink_keys =
    std::to_array<std::string_view>({"url", "routing_key", "routing_key_file", "source"});
constexpr auto twilio_sink_keys = std::to_array<std::string_view>(
    {"api_base", "account_sid", "api_key_sid", "auth_token", "auth_token_file", "from",
     "messaging_service_sid", "to", "delivery_timeout", "burst_window"});
constexpr auto webhook_sink_keys = std::to_array<std::string_view>(
    {"url", "signing_secret", "signing_secret_file", "headers", "slack_format"});

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

}  // namespace

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

}  // namespace glasswatch::core::config_detail
