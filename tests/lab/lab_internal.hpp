// Private to the lab: declarations shared by lab_graph.cpp, lab_token.cpp, lab_filter.cpp and
// lab_records.cpp. Nothing here is part of the lab's contract (that is lab_graph.hpp).
#pragma once

#include "lab/lab_graph.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace glasswatch::lab::detail {

// ---- time -------------------------------------------------------------------------------------
// All times are microseconds since the Unix epoch (UTC).

// "2025-11-03T14:22:07.123456Z"; `fraction_digits` 0..7 (7 = 100 ns ticks, the last digit
// taken from `extra_tick`). With `trim` trailing zeros of the fraction are dropped, as Graph
// does, so readers see every width from 0 to 7 digits.
std::string iso_time(std::int64_t us, int fraction_digits = 6, bool trim = false,
                     int extra_tick = 0);
std::string aad_timestamp(std::int64_t us);     // "2025-11-03 14:20:01Z"
std::string graph_error_date(std::int64_t us);  // "2025-11-03T14:30:12"
std::string http_date(std::int64_t us);         // "Mon, 03 Nov 2025 14:30:12 GMT"
// Strict ISO-8601 UTC: YYYY-MM-DDTHH:MM:SS[.f{1,7}]Z. Digits beyond microseconds truncate.
std::optional<std::int64_t> parse_iso(std::string_view s);

// ---- deterministic randomness ----------------------------------------------------------------
// splitmix64: small, fast, reproducible across platforms (std:: distributions are not).
class rng {
public:
    explicit rng(std::uint64_t seed = 1) : s_(seed) {}
    std::uint64_t next();
    double uniform();                            // [0, 1)
    double uniform(double lo, double hi);        // [lo, hi)
    std::size_t below(std::size_t n);            // [0, n), n > 0
    double exponential(double rate);             // mean 1/rate
    std::string guid();                          // lower-case 8-4-4-4-12, version 4
    std::string base64url_bytes(std::size_t n);  // n random bytes, base64url
    template <class T, std::size_t N>
    const T& pick(const T (&items)[N]) {
        return items[below(N)];
    }

private:
    std::uint64_t s_;
};

// ---- encoding ---------------------------------------------------------------------------------
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);
std::optional<std::string> base64_decode(std::string_view text);  // standard alphabet, padded
// Percent-decoding; `plus_is_space` for form bodies and query strings.
std::string url_decode(std::string_view s, bool plus_is_space);
// Graph's nextLink style: space as '+', reserved characters as lower-case %xx, and the
// characters Graph leaves alone in filters ( ) / kept literal.
std::string graph_query_encode(std::string_view s);
// name=value pairs of a query string or form body, decoded, in order.
using param_list = std::vector<std::pair<std::string, std::string>>;
param_list parse_params(std::string_view s);
std::string lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);

// ---- request helpers (our own: the lab must not depend on the server's implementation) ------
std::string header_of(const test::server_request& req, std::string_view name);
std::string path_of(const test::server_request& req);   // target up to '?'
std::string query_of(const test::server_request& req);  // raw text after '?', "" if none

// ---- $filter --------------------------------------------------------------------------------
enum class log_kind { sign_ins, audits };

// One atom of a filter. A parsed filter is a conjunction of clauses; each clause is a
// disjunction of atoms (an or-group has several, a plain comparison one).
struct filter_atom {
    enum class what {
        time_ge,       // createdDateTime / activityDateTime ge
        time_le,       // ... le
        user_id,       // signIns: userId eq
        sp_id,         // signIns: servicePrincipalId eq
        event_type,    // signIns: signInEventTypes/any(t: t eq '...')
        initiator_id,  // audits: initiatedBy/user/id eq
        target_id,     // audits: targetResources/any(t: t/id eq '...')
    } kind;
    std::int64_t time_us = 0;
    std::string value;
};
using filter_clause = std::vector<filter_atom>;

struct parsed_filter {
    std::vector<filter_clause> clauses;
    bool uses_event_types = false;  // a signInEventTypes/any() clause is present
};

// Parses a decoded $filter strictly; on failure returns nullopt and sets `why` to a message
// for the Request_UnsupportedQuery body.
std::optional<parsed_filter> parse_filter(std::string_view text, log_kind kind, std::string& why);

// The properties of an event that filters look at.
struct filter_view {
    std::int64_t created_us = 0;
    std::string user_id;
    std::string sp_id;       // servicePrincipalId; empty on user sign-ins (Graph sends "")
    std::string event_type;  // "interactiveUser", ...; empty for audits
    std::string initiator_id;
    std::vector<std::string> target_ids;
};
bool filter_matches(const parsed_filter& f, const filter_view& v);

// Query options of a Graph list request after validation.
struct list_query {
    std::string filter_text;  // decoded, "" when absent
    std::optional<parsed_filter> filter;
    int top = 1000;
    bool top_given = false;
    bool ascending = false;
    std::string orderby_text;  // as given, "" when absent
    std::string skiptoken;     // "" when absent
};
// Validates the raw query string of a Graph list request. On error sets `code` (Graph error
// code) and `why` and returns nullopt.
std::optional<list_query> parse_list_query(std::string_view raw_query, log_kind kind,
                                           std::string& code, std::string& why);

// ---- records ----------------------------------------------------------------------------------
struct person {
    std::string id, upn, display_name;
    std::string city, state, country, ip;
    double latitude = 0, longitude = 0;
    std::string device_id, device_name, os, browser;
};

// The simulated directory: break-glass accounts, the admin, ordinary users (deterministic
// from the seed), applications and service principals that sign in.
struct directory {
    std::vector<person> users;  // ordinary users
    person bg1, bg2, admin;
    const person* find(std::string_view id) const;
};
directory make_directory(const lab_options& opts);

enum class sign_in_type { interactive, non_interactive, service_principal, managed_identity };
const char* event_type_name(sign_in_type t);                         // "interactiveUser", ...
std::optional<sign_in_type> parse_sign_in_type(std::string_view s);  // control API names

struct sign_in_params {
    std::string id;
    std::int64_t created_us = 0;
    sign_in_type type = sign_in_type::interactive;
    const person* user = nullptr;  // user kinds
    bool success = true;
    int error_code = 0;
};
// A beta-shaped signIn record (v1.0 readers get it through strip_beta()).
nlohmann::json make_sign_in(rng& r, const lab_options& opts, const sign_in_params& p);

struct audit_params {
    std::string activity = "Update user";
    std::int64_t created_us = 0;
    const person* actor = nullptr;  // nullptr = an application initiated it
    std::string actor_id;           // when actor is unknown to the directory
    const person* target = nullptr;
    std::string target_id;
    bool success = true;
};
nlohmann::json make_audit(rng& r, const lab_options& opts, const audit_params& p);

// The record as the v1.0 endpoint shows it: beta-only properties removed.
nlohmann::json strip_beta(const nlohmann::json& record, log_kind kind);
std::string failure_reason(int error_code);

// ---- token endpoint ---------------------------------------------------------------------------
struct issued_token {
    std::string client_id;
    std::int64_t issued_us = 0;
    int ttl_s = 0;
};

struct registered_cert;  // parsed certificate + thumbprints (lab_token.cpp)
struct cert_store {
    std::vector<std::shared_ptr<registered_cert>> certs;
};
cert_store load_certificates(const std::vector<std::string>& pems);  // throws on bad PEM

struct token_context {
    const lab_options& opts;
    const cert_store& certs;
    const std::string& fault;  // "ok", "bad_secret", ...
    int ttl_s;
    std::int64_t now_us;
    rng& ids;
};
struct token_outcome {
    test::server_response response;
    std::optional<std::string> access_token;  // set when a token was issued
    issued_token token;
};
token_outcome handle_token(const test::server_request& req, std::string_view tenant_in_path,
                           const token_context& ctx);

}  // namespace glasswatch::lab::detail
