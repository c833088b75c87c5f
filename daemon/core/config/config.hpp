// Configuration model: plain structs with their defaults, filled from one TOML file.
//
// Error policy: load_config() never throws for bad input; it returns every problem it found,
// each naming the key path, the line and what is wrong. Unknown keys are errors (a typo in a
// tripwire's config must not silently disable a rule). Secrets are never stored inline in the
// file: a secret is a `secret_ref` naming a file (systemd credential) or an environment
// variable, and the value is read only by the adapter that needs it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace glasswatch::core {

using seconds = std::chrono::seconds;
using milliseconds = std::chrono::milliseconds;

// Where a secret comes from. Exactly one of file / env is set when `present()`.
struct secret_ref {
    std::string file;  // path, e.g. /run/credentials/glasswatch.service/pd-routing-key
    std::string env;   // environment variable name
    bool present() const noexcept { return !file.empty() || !env.empty(); }
    // Human description that never contains the secret itself: "file /x/y" or "env NAME".
    std::string describe() const;
};

enum class cloud_kind { public_cloud, usgov, usgov_dod, china };

// What a watched object id is. Break-glass accounts are users; a tenant may also watch a service
// principal or a managed identity (an emergency automation identity). It decides which Graph
// sign-in streams need to be read at all (app and managed-identity sign-ins carry no user).
enum class account_type { user, service_principal, managed_identity };

struct watched_account {
    std::string object_id;  // lower-case GUID
    std::string upn;        // lower-case, optional
    std::string label;      // optional, shown in alerts ("bg-admin-1")
    account_type type = account_type::user;
};

struct watchlist_config {
    std::vector<watched_account> accounts;
    std::vector<std::string> groups;       // lower-case GUIDs of the role-assignable group(s)
    std::vector<std::string> ca_policies;  // lower-case GUIDs of CA policies holding the exclusions
};

enum class graph_kind { interactive, non_interactive, service_principal, managed_identity, audit };

struct graph_source_config {
    bool enabled = false;
    std::string
        authority_host;  // default derived from cloud, e.g. https://login.microsoftonline.com
    std::string graph_base_url;      // default derived from cloud, e.g. https://graph.microsoft.com
    std::string client_id;           // application (client) id GUID
    secret_ref client_secret;        // either this ...
    std::string certificate_file;    // ... or certificate (PEM, public) + private key
    secret_ref private_key;          // PEM private key of the certificate
    seconds poll_interval{30};       // default 30 s
    seconds lookback{3600};          // overlap window re-read on every poll, default 1 h
    seconds initial_lookback{3600};  // how far back the very first poll reads, default 1 h
    std::vector<graph_kind> kinds{graph_kind::interactive, graph_kind::non_interactive,
                                  graph_kind::service_principal, graph_kind::managed_identity,
                                  graph_kind::audit};
    bool full_stream = false;  // false: server-side $filter narrowed to watched ids; true: read all
    int max_requests_per_10s = 5;  // documented reports-API limit per app per tenant
    seconds request_timeout{30};
    std::string ca_file;  // optional CA bundle (PEM) instead of the system trust store
    std::string proxy;    // optional http://host:port CONNECT proxy; empty = https_proxy env
    std::uint32_t seen_set_max = 200000;  // bounded dedup set of event ids
};

enum class eventhub_transport { amqps, websocket };
// How the Event Hub connection authenticates: SASL ANONYMOUS + a SAS token put on $cbs (what the
// Azure SDKs do), or SASL PLAIN with the key name and key (the rule applies to the connection).
enum class eventhub_sasl { anonymous_cbs, plain };

struct eventhub_source_config {
    bool enabled = false;
    secret_ref connection_string;  // Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...
    std::vector<std::string> event_hubs;  // hub names; default: EntityPath of the connection string
    std::string consumer_group = "$Default";
    std::string host;  // optional: connect here instead of the Endpoint host (lab, private link)
    // optional: the name the server's certificate must carry when `host` is an IP address or a
    // private endpoint (default: `host` when set, else the namespace host of the Endpoint)
    std::string tls_server_name;
    eventhub_transport transport = eventhub_transport::amqps;
    std::string ca_file;
    std::string proxy;
    seconds start_lookback{3600};       // first start reads from now - this
    std::uint32_t credit = 300;         // AMQP link credit (bounds memory)
    std::optional<std::int64_t> epoch;  // owner level for exclusive receivers
    seconds idle_timeout{60};
    eventhub_sasl sasl = eventhub_sasl::anonymous_cbs;
    // Largest AMQP message accepted, in bytes (advertised on the receiver links). A bigger one is
    // refused unread (counted, logged) and the partition moves past it. Event Hubs caps events
    // at 1 MB; the default leaves room for the service's annotations.
    std::uint64_t max_message_size = 2u << 20;
    // Back-off caps (jittered exponential from 1 s). unset = the built-in defaults.
    //   reconnect_backoff_max  the connection (transport, $cbs/$management, refused put-token);
    //                          default 60 s, 1 s..1 h
    //   partition_backoff_max  one partition's re-attach (stolen, detached, refused): the other
    //                          partitions keep flowing meanwhile; default 30 s, 1 s..1 h
    std::optional<seconds> reconnect_backoff_max, partition_backoff_max;
};

enum class severity { info, warning, high, critical };
std::string_view to_string(severity s) noexcept;
std::optional<severity> parse_severity(std::string_view s) noexcept;

enum class sink_kind { file, pagerduty, twilio, webhook };
std::string_view to_string(sink_kind k) noexcept;

struct sink_config {
    std::string name;  // unique, [a-z0-9_-]+
    sink_kind kind = sink_kind::file;
    std::vector<std::string> rules;  // rule names this sink receives; empty = all
    severity min_severity = severity::info;
    // Escalation: if this sink has not confirmed an alert within escalate_after, also send it
    // through escalate_to (another sink's name). 0 = no escalation.
    seconds escalate_after{0};
    std::string escalate_to;
    seconds request_timeout{15};
    std::string ca_file;

    // file
    std::string path;  // JSON lines, fsynced per alert

    // pagerduty
    std::string url = "https://events.pagerduty.com/v2/enqueue";
    secret_ref routing_key;
    std::string source;  // payload.source, default: the tenant name or id

    // twilio
    std::string api_base = "https://api.twilio.com";
    std::string account_sid;            // AC...
    std::string api_key_sid;            // SK... (optional; username is account_sid when empty)
    secret_ref auth_token;              // auth token or API key secret
    std::string from;                   // E.164 sender, or ...
    std::string messaging_service_sid;  // MG...
    std::vector<std::string> to;        // E.164 recipients
    seconds delivery_timeout{120};      // escalate if not "delivered" within this
    // After an SMS goes out, further alerts within this window are held and sent as one SMS
    // with a count when it closes. The first alert of a burst is never delayed. 0 = off.
    seconds burst_window{60};

    // webhook
    // (url above is shared: for a webhook sink it is required and has no default). A webhook
    // URL is often a credential itself (a Slack hook path): `url_file = PATH` or
    // `url = "env:NAME"` names where it is read; `url` is then filled in when the file is
    // loaded (app/config_file) and printed only redacted.
    secret_ref url_secret;
    secret_ref signing_secret;                                 // whsec_<base64>
    std::vector<std::pair<std::string, std::string>> headers;  // extra headers
    bool slack_format = false;
};

struct tripwire_config {
    seconds source_error_threshold{300};  // source failing this long -> alert
    seconds silence_threshold{1800};      // source up but no events this long -> alert; 0 = off
    seconds lag_threshold{900};           // consumer lag beyond this -> alert
    seconds active_use_window{600};       // several break-glass sign-ins within this -> summary
    int active_use_count = 3;
    seconds drill_max_age{90 * 24 * 3600};  // 0 = no drill-overdue alert
    seconds outbox_max_age{300};            // /readyz fails when the oldest undelivered is older
};

// The evidence chain's head sent out on its own (docs/evidence.md): every `head_interval`, an
// `evidence_head` alert (info) goes to the sinks whose `rules` name evidence_head, and to no
// other. 0 = off (pages and heartbeats carry the head anyway).
struct evidence_config {
    seconds head_interval{0};
};

struct heartbeat_config {
    std::string url;  // empty = disabled; "<url>/fail" is used while unhealthy
    // A ping URL carries the check's secret id: `url_file = PATH` or `url = "env:NAME"` keeps it
    // out of the file; `url` is then filled in at load time (app/config_file).
    secret_ref url_secret;
    seconds interval{60};
    seconds timeout{10};
    std::string ca_file;  // optional CA bundle (PEM) instead of the system trust store
    // After a start, nothing is pinged (neither healthy nor /fail) until every source has had a
    // first good poll or this has passed: a restart, an upgrade or a reboot must not page.
    // 0 = two Graph poll intervals (60 s when Graph is off).
    seconds start_grace{0};
    bool start_ping = false;  // "<url>/start" once at start (Healthchecks' convention)
};

// [posture]: the periodic check that the break-glass setup is still sound (README "Posture
// checks"). Reads Graph with the [sources.graph] app registration.
struct posture_config {
    bool enabled = false;   // default: true when [sources.graph] is enabled
    seconds interval{900};  // between checks, default 15 min
    // Exactly who must be in each watched group (watch.groups); default: the watched accounts.
    std::vector<std::string> group_members;  // lower-case GUIDs
};

struct config {
    // [tenant]
    std::string tenant_id;    // lower-case GUID
    std::string tenant_name;  // label used in alert texts; default: tenant_id
    cloud_kind cloud = cloud_kind::public_cloud;

    watchlist_config watch;
    graph_source_config graph;
    eventhub_source_config eventhub;
    std::vector<sink_config> sinks;
    tripwire_config tripwire;
    heartbeat_config heartbeat;
    evidence_config evidence;
    posture_config posture;

    // [state]
    std::string state_directory = "/var/lib/glasswatch";
    // [admin]
    std::string admin_listen = "127.0.0.1:9464";  // loopback only; "" disables
    // [log]
    std::string log_level = "info";  // trace, debug, info, warn, error
    // [security]
    bool allow_world_readable_secrets = false;
};

struct config_error {
    std::string key;  // dotted path, e.g. "sinks[1].routing_key_file"
    int line = 0;     // 1-based line in the file, 0 when unknown
    std::string message;
};

struct config_result {
    std::optional<config> value;  // set only when errors is empty
    std::vector<config_error> errors;
};

// Parses TOML text. `source_name` is used in messages. Pure: no file or environment access.
config_result parse_config(std::string_view toml_text, std::string_view source_name);

// Formats "FILE:LINE: KEY: MESSAGE".
std::string format_error(const config_error& e, std::string_view source_name);

// Defaults derived from the cloud when authority_host / graph_base_url are empty.
std::string default_authority_host(cloud_kind c);
std::string default_graph_base_url(cloud_kind c);

// Warnings that matter to a SOC, computed from the parsed config. `file_mode` reports the
// permission bits of a file (nullopt when it cannot be read); injected so this stays pure.
struct config_warning {
    std::string key;
    std::string message;
};
using file_mode_fn = std::optional<unsigned> (*)(const std::string& path);
std::vector<config_warning> check_config_warnings(const config& c, file_mode_fn file_mode);

// True when `host` is operated by Microsoft (the out-of-band rule), e.g. *.office.com,
// *.logic.azure.com, *.microsoft.com, *.azure.com, *.windows.net, *.office365.com, ...
bool is_microsoft_operated_host(std::string_view host);

// Checks a URL read from a secret (url_file / env:) once it is known: "" when acceptable, else
// why not — never echoing the URL.
std::string check_alert_endpoint_url(std::string_view url);

// "https://hc-ping.com/…": scheme and host only. Ping and hook URLs carry their credential in
// the path or query, so anything printed or logged shows no more than this.
std::string redact_url(std::string_view url);

// Extracts the lower-cased host from an http(s) URL; empty when the URL is malformed.
std::string url_host(std::string_view url);

}  // namespace glasswatch::core
