// OAuth 2.0 client credentials against the Microsoft identity platform: the pure parts.
// Building the token request body, the JWT client assertion for certificate credentials
// (graph.md §3.3), and classifying the token endpoint's answers (AADSTS codes, §3.5).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/time.hpp"

namespace glasswatch::core {

// What went wrong when a token could not be obtained. The tripwire distinguishes "our
// credential is bad" (a human must fix the app registration) from "Entra is unreachable"
// (which may be the outage we exist to notice).
enum class token_failure {
    none,
    bad_secret,  // AADSTS7000215 / 7000218: wrong secret (or the secret id instead of value)
    expired_credential,  // AADSTS7000222: client secret expired; 700024: assertion outside its
                         // validity
    bad_certificate,     // AADSTS700027 / 50012 / 50027: assertion signature / JWT invalid
    app_not_found,       // AADSTS700016: wrong client id, or not consented in this tenant
    app_disabled,        // AADSTS7000112
    tenant_not_found,    // AADSTS90002 / 900023 / 90038 (wrong tenant, or wrong national cloud)
    consent_missing,     // AADSTS65001
    invalid_scope,       // AADSTS70011 / 700022 / 700023 / 500011
    blocked_by_policy,   // AADSTS53003: blocked by Conditional Access for workload identities
    throttled,           // AADSTS90055 / 50196, HTTP 429
    unavailable,         // AADSTS90006 / 90033 / 50000 / 90024, temporarily_unavailable, 5xx
    unreachable,         // transport: resolve/connect/TLS/timeout — Entra cannot be reached
    malformed_response,  // 200 without a usable token, or an unparseable error body
    other,               // any other refusal
};
std::string_view to_string(token_failure f) noexcept;
// Retrying (with back-off) can help: throttled, unavailable, unreachable, malformed_response.
bool is_transient(token_failure f) noexcept;

struct token_answer {
    token_failure failure = token_failure::none;
    std::string access_token;  // when failure == none
    std::int64_t expires_in_s = 0;
    std::int64_t aadsts = 0;  // first error code, 0 when none
    std::string oauth_error;  // "invalid_client", ...
    std::string description;  // first line of error_description (no secrets in it)
};

// Classifies a token endpoint HTTP response (status + JSON body).
token_answer classify_token_response(int http_status, std::string_view body);

// Form body for the client-secret flow.
std::string token_request_with_secret(std::string_view client_id, std::string_view scope,
                                      std::string_view secret);
// Form body for the certificate flow (the assertion is built by make_client_assertion).
std::string token_request_with_assertion(std::string_view client_id, std::string_view scope,
                                         std::string_view assertion);

enum class assertion_alg { ps256, rs256 };

struct assertion_result {
    std::string jwt;    // compact JWS when ok
    std::string error;  // why not (bad PEM, key does not match the certificate, ...)
};

// Signs a client assertion: header {alg, typ, x5t#S256 (PS256) or x5t (RS256)}, claims
// {aud = token endpoint URL, iss = sub = client_id, jti, nbf = iat = now, exp = now + 10 min}.
assertion_result make_client_assertion(std::string_view cert_pem, std::string_view key_pem,
                                       std::string_view client_id, std::string_view token_url,
                                       micros now, std::string_view jti,
                                       assertion_alg alg = assertion_alg::ps256);

}  // namespace glasswatch::core
