// The [tenant], [watch] and [sources.*] sections.
#include "core/config/config_reader.hpp"

#include "core/base/time.hpp"
#include "core/config/rule_names.hpp"

namespace glasswatch::core::config_detail {

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

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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

}  // namespace glasswatch::core::config_detail
