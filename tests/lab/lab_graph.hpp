// The lab: a simulated Entra ID tenant that speaks the wire formats of the Microsoft identity
// platform token endpoint (client credentials, secret or certificate assertion) and of the
// Microsoft Graph audit-log list endpoints (signIns v1.0/beta, directoryAudits), including the
// ugly parts: ingestion delay and late events, duplicates, snapshot paging with opaque
// skiptokens, strict $filter parsing, the 5-requests-per-10-s reports throttle, AADSTS and Graph
// error bodies. See shared/reference/graph.md for the facts it imitates.
//
// lab_tenant is a pure request handler: bytes in, bytes out, time passed in (microseconds since
// the Unix epoch), no sockets, no clock, no threads. lab_main.cpp wires it to real servers; the
// component tests drive it directly. It is not thread-safe: call it from one thread.
//
// Besides token + Graph, handle() serves a control API under /lab/ (JSON bodies):
//   POST /lab/signin     {"user":"bg1"|"bg2"|"admin"|"<guid>", "success":true, "error_code":50126,
//                         "type":"interactive"|"nonInteractive"|"servicePrincipal"|"managedIdentity",
//                         "delay_s":N, "created_offset_s":-1200, "fields":{...merge patch...}}
//   POST /lab/audit      {"activity":"Reset user password","actor":"admin"|"<guid>"|"app",
//                         "target":"bg1"|"<guid>", "delay_s":N, "created_offset_s":N}
//   POST /lab/republish  {"id":"...", "fields":{...}, "delay_s":N, "replace":false}
//   POST /lab/faults     any of the keys listed at lab_tenant::set_faults
//   POST /lab/posture    break / fix the directory posture checks read (see lab_posture.hpp)
//   GET  /lab/posture
//   POST /lab/reset_faults, POST /lab/reset_stats
//   GET  /lab/stats, GET /lab/events[?bodies=1]
// Every answer is {"id":...} or a JSON document; errors are {"error":"<why>"} with 400/404.
// lab_main serves /lab/ on a separate plain-HTTP loopback port and refuses it on the TLS port.
#pragma once

#include "support/https_server.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace glasswatch::lab {

// Well-known identities of the simulated tenant (made up; stable so configs can name them).
namespace ids {
inline constexpr std::string_view tenant = "3d29e181-4b4e-4710-8621-280aad0bc235";
inline constexpr std::string_view tenant_domain = "contoso.onmicrosoft.com";
inline constexpr std::string_view client = "54c9adb7-b364-40fa-a2c3-198e112d508d";
inline constexpr std::string_view bg1 = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b";
inline constexpr std::string_view bg1_upn = "bg1@contoso.onmicrosoft.com";
inline constexpr std::string_view bg2 = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f";
inline constexpr std::string_view bg2_upn = "bg2@contoso.onmicrosoft.com";
inline constexpr std::string_view admin = "cc474c45-ee95-4669-8e8e-b7658862e5cc";
inline constexpr std::string_view admin_upn = "bruno.diaz@contoso.onmicrosoft.com";
inline constexpr std::string_view graph_resource = "00000003-0000-0000-c000-000000000000";
}  // namespace ids

struct lab_options {
    std::string tenant_id{ids::tenant};
    std::string tenant_domain{ids::tenant_domain};  // also accepted as {tenant} in the token path
    std::string client_id{ids::client};
    std::string client_display_name = "glasswatch";
    // Registered credentials. An empty secret means no secret is registered (every secret is
    // then rejected with AADSTS7000215). Certificates are PEM; their public keys verify client
    // assertions, their SHA-1/SHA-256 thumbprints are what x5t / x5t#S256 must name.
    std::string client_secret;
    std::vector<std::string> client_certificates_pem;

    std::string scenario = "quiet";  // "demo": background traffic + break-glass script; "quiet"
    double rate_per_s = 2.0;         // demo: ordinary sign-ins per second (Poisson arrivals)
    double backfill_s = 0;           // demo: history generated before the start, already visible
    // Ingestion delay: visible_at = created + uniform[min, max] seconds (graph.md §2.5).
    double ingestion_delay_min_s = 2.0;
    double ingestion_delay_max_s = 5.0;

    int token_ttl_s = 3599;           // expires_in of issued tokens
    int throttle_limit = 5;           // Graph requests per window per client_id; 0 = off
    double throttle_window_s = 10.0;  // sliding window
    double snapshot_ttl_s = 600.0;    // how long a $skiptoken stays valid
    double assertion_skew_s = 300.0;  // nbf may lie this far in the future
    std::size_t max_events = 50000;   // oldest events are forgotten beyond this (memory cap)

    int user_count = 200;  // ordinary users, deterministic from `seed`
    std::uint64_t seed = 1;
    std::int64_t start_us = 0;               // scenario start; 0 = the first tick()/handle() time
    std::string default_host = "127.0.0.1";  // used when a request carries no Host header

    // One line per event that touches a break-glass account (scenario or control API), for the
    // lab's stderr. Optional.
    std::function<void(const std::string&)> log;

    // Called for every event the lab creates (scenario or control API) with its Graph record
    // (beta shape), the sign-in event type ("interactiveUser", ...; "" for audits) and when it
    // becomes visible. The Event Hub emulator publishes through this. Optional.
    std::function<void(const nlohmann::json& record, const std::string& event_type,
                       std::int64_t visible_us)>
        on_event;
};

class lab_tenant {
public:
    explicit lab_tenant(lab_options opts);
    ~lab_tenant();
    lab_tenant(const lab_tenant&) = delete;
    lab_tenant& operator=(const lab_tenant&) = delete;

    // Token endpoint, Graph endpoints and the /lab/ control API. Never throws for bad input:
    // every malformed request gets the error response the real service (or the control API)
    // would give. Calls tick(now_us) first.
    test::server_response handle(const test::server_request& req, std::int64_t now_us);

    // Advances the scenario: generates every event scheduled at or before now_us, expires old
    // skiptokens. Idempotent for a given time; time never runs backwards here (earlier values are
    // ignored).
    void tick(std::int64_t now_us);

    // The control API as C++ calls (same semantics and JSON as POST /lab/...). Each returns the
    // response document; on bad input {"error": "..."} and `ok` false.
    struct control_result {
        bool ok = true;
        nlohmann::json body;
    };
    control_result add_sign_in(const nlohmann::json& spec, std::int64_t now_us);
    control_result add_audit(const nlohmann::json& spec, std::int64_t now_us);
    control_result republish(const nlohmann::json& spec, std::int64_t now_us);
    // Keys: token ("ok"|"bad_secret"|"expired_secret"|"disabled"|"unavailable"|
    // "unavailable_plain"|"hang"), token_ttl_s, token_retry_after_s (Retry-After on the token
    // endpoint's 503s; stats() counts token_early_requests), page_size (0 = $top only),
    // graph_status (0 = off, e.g. 503/500/403) + graph_status_count (0 = until cleared),
    // graph_transport
    // ("none"|"hang"|"reset"|"drop_after_headers") + graph_transport_count, throttle_ratio (0..1),
    // throttle_limit, throttle_window_s, retry_after ("seconds"|"fractional"|"http-date"|
    // "missing"|"garbage"), expire_tokens_every_s (0 = off), next_link_host ("" = off),
    // next_link_loop, next_link_back (later pages link back to the first page's URL),
    // revoke_token_after_pages (N: the bearer token is revoked after it read N pages that had a
    // nextLink, i.e. between pages of one query; 0 = off), record_padding_bytes (every served
    // record carries a "labPadding" string this long: huge pages), empty_first_page,
    // snapshot_ttl_s, ingestion_delay_s (number or [min,max]).
    // stats() counts early_requests: requests from a client that arrived before the Retry-After
    // it was last handed (seconds, fractional or HTTP-date) had passed.
    // Unknown keys or wrong types are rejected and nothing is changed.
    control_result set_faults(const nlohmann::json& faults);
    void reset_faults();
    // POST /lab/posture: the posture endpoints' state (lab_posture.hpp). GET /lab/posture.
    control_result set_posture(const nlohmann::json& spec);
    nlohmann::json posture() const;
    nlohmann::json stats() const;
    nlohmann::json events(bool with_bodies) const;

    const lab_options& options() const noexcept;
    std::int64_t start_us() const noexcept;  // 0 until the first tick()/handle()

private:
    struct state;
    std::unique_ptr<state> s_;
};

}  // namespace glasswatch::lab
