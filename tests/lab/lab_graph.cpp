// lab_tenant: the simulated tenant's state (events with ingestion delay, snapshots behind
// skiptokens, issued tokens, throttle windows, faults, stats), the dispatch of handle(), the
// Graph list endpoints, the /lab/ control API and the demo scenario.
#include "lab/lab_graph.hpp"

#include "lab/lab_internal.hpp"
#include "lab/lab_posture.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>

namespace glasswatch::lab {

using nlohmann::json;
using namespace detail;

namespace {

constexpr std::int64_t us_per_s = 1000000;
constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();

std::int64_t seconds_to_us(double s) {
    return static_cast<std::int64_t>(std::llround(s * 1e6));
}

// One visibility entry. A republished event is a second entry with the same id: that is how
// Graph's duplicates and revisions look to a poller (graph.md §2.5).
struct event {
    std::string id;
    log_kind kind = log_kind::sign_ins;
    std::uint64_t seq = 0;
    std::int64_t created_us = 0;
    std::int64_t visible_us = 0;
    filter_view view;
    json body;  // beta shape; v1.0 readers get strip_beta(body)
};
using event_ptr = std::shared_ptr<const event>;

// The result of a first-page request, frozen so later pages neither skip nor repeat records
// while new events arrive.
struct snapshot {
    std::vector<event_ptr> items;
    log_kind kind = log_kind::sign_ins;
    std::string path;  // as requested, e.g. "/beta/auditLogs/signIns"
    std::string filter_text, orderby_text;
    int top = 1000;
    std::int64_t expires_us = 0;
    std::string first_target;  // path?query of the request that opened it (next_link_back)
};
struct page_ref {
    std::shared_ptr<snapshot> snap;
    std::size_t offset = 0;
};

struct fault_state {
    std::string token = "ok";
    int token_ttl_s = 0;          // 0 = lab_options::token_ttl_s
    int token_retry_after_s = 0;  // Retry-After on the token endpoint's 503s; 0 = none
    int page_size = 0;
    int graph_status = 0;
    int graph_status_count = 0;
    std::string graph_transport = "none";
    int graph_transport_count = 0;
    double throttle_ratio = 0;
    int throttle_limit = 5;
    double throttle_window_s = 10;
    std::string retry_after = "seconds";
    double expire_tokens_every_s = 0;
    std::string next_link_host;
    bool next_link_loop = false;
    bool next_link_back = false;       // later pages point back to the first page's URL
    int revoke_token_after_pages = 0;  // revoke the bearer token after N mid-query pages
    int record_padding_bytes = 0;      // every served record grows by this many bytes
    bool empty_first_page = false;
    double snapshot_ttl_s = 600;
    double delay_min_s = 2, delay_max_s = 5;

    static fault_state from(const lab_options& o) {
        fault_state f;
        f.throttle_limit = o.throttle_limit;
        f.throttle_window_s = o.throttle_window_s;
        f.snapshot_ttl_s = o.snapshot_ttl_s;
        f.delay_min_s = o.ingestion_delay_min_s;
        f.delay_max_s = o.ingestion_delay_max_s;
        return f;
    }
    json to_json() const {
        return {{"token", token},
                {"token_ttl_s", token_ttl_s},
                {"token_retry_after_s", token_retry_after_s},
                {"page_size", page_size},
                {"graph_status", graph_status},
                {"graph_status_count", graph_status_count},
                {"graph_transport", graph_transport},
                {"graph_transport_count", graph_transport_count},
                {"throttle_ratio", throttle_ratio},
                {"throttle_limit", throttle_limit},
                {"throttle_window_s", throttle_window_s},
                {"retry_after", retry_after},
                {"expire_tokens_every_s", expire_tokens_every_s},
                {"next_link_host", next_link_host},
                {"next_link_loop", next_link_loop},
                {"next_link_back", next_link_back},
                {"revoke_token_after_pages", revoke_token_after_pages},
                {"record_padding_bytes", record_padding_bytes},
                {"empty_first_page", empty_first_page},
                {"snapshot_ttl_s", snapshot_ttl_s},
                {"ingestion_delay_s", json::array({delay_min_s, delay_max_s})}};
    }
};

struct stats_state {
    std::uint64_t graph_requests = 0, token_requests = 0, tokens_issued = 0, throttled = 0,
                  unauthorized = 0, status_faults = 0, transport_faults = 0, control_requests = 0;
    // Requests that arrived before the Retry-After this client was last given had passed
    // (only answers that named a time count: "missing"/"garbage" promise nothing).
    std::uint64_t early_requests = 0, revoked_tokens = 0;
    // Token requests that arrived before the token endpoint's last Retry-After had passed.
    std::uint64_t token_early_requests = 0;
    std::int64_t token_not_before = 0;
    std::size_t max_in_window = 0;
    std::map<std::string, std::uint64_t> by_path;
    std::map<std::string, std::string> last_filter;
    // Sign-in requests per signInEventTypes value asked for ("interactiveUser" for v1.0
    // requests without one), and those not narrowed to any id (userId / servicePrincipalId):
    // what a poll costs, stream by stream.
    std::map<std::string, std::uint64_t> signin_requests_by_type;
    std::uint64_t unfiltered_signin_requests = 0;
    std::map<std::string, std::uint64_t> served;
    std::map<std::string, std::size_t> max_by_client;
};

struct control_answer {
    int status = 200;
    json body;
};

control_answer control_error(int status, std::string why) {
    return {status, json{{"error", std::move(why)}}};
}

std::vector<std::string> split_path(const std::string& path) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < path.size()) {
        std::size_t j = path.find('/', i);
        if (j == std::string::npos) j = path.size();
        if (j > i) out.push_back(path.substr(i, j - i));
        i = j + 1;
    }
    return out;
}

bool looks_like_guid(std::string_view s) {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash != (s[i] == '-')) return false;
        if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
}

std::string json_string(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The properties filters look at, read back from the record itself so that a merge patch
// (control API "fields") changes what a filter matches, exactly like a revised record would.
filter_view view_of(const json& body, log_kind kind, std::int64_t fallback_created) {
    filter_view v;
    const char* time_key = kind == log_kind::sign_ins ? "createdDateTime" : "activityDateTime";
    auto t = parse_iso(json_string(body, time_key));
    v.created_us = t ? *t : fallback_created;
    if (kind == log_kind::sign_ins) {
        v.user_id = json_string(body, "userId");
        v.sp_id = json_string(body, "servicePrincipalId");
        v.event_type = "interactiveUser";
        if (auto it = body.find("signInEventTypes");
            it != body.end() && it->is_array() && !it->empty() && it->front().is_string())
            v.event_type = it->front().get<std::string>();
        return v;
    }
    if (auto it = body.find("initiatedBy"); it != body.end() && it->is_object())
        if (auto u = it->find("user"); u != it->end() && u->is_object())
            v.initiator_id = json_string(*u, "id");
    if (auto it = body.find("targetResources"); it != body.end() && it->is_array())
        for (const auto& t2 : *it)
            if (t2.is_object()) v.target_ids.push_back(json_string(t2, "id"));
    return v;
}

}  // namespace

struct lab_tenant::state {
    lab_options opts;
    directory dir;
    cert_store certs;
    rng gen;  // records and scenario: deterministic from the seed
    rng ids;  // request ids, trace ids, skiptokens
    std::int64_t start = 0;
    std::int64_t now = 0;
    std::deque<event_ptr> events;  // insertion order
    std::uint64_t next_seq = 1;
    std::map<std::string, page_ref> pages;  // skiptoken -> page
    std::map<std::string, issued_token> tokens;
    std::map<std::string, std::deque<std::int64_t>> windows;  // client -> Graph request times
    std::map<std::string, std::int64_t> retry_not_before;     // client -> Retry-After time
    std::set<std::string> revoked;                            // bearer tokens revoked
    std::map<std::string, int> mid_query_pages;               // bearer -> pages with a nextLink
    fault_state faults;
    lab_posture posture;  // the directory objects posture checks read
    stats_state st;
    std::uint64_t ratio_n = 0;
    // demo scenario
    std::int64_t next_signin_us = 0, next_audit_us = 0;
    int script_step = 0;

    explicit state(lab_options o)
        : opts(std::move(o)),
          dir(make_directory(opts)),
          certs(load_certificates(opts.client_certificates_pem)),
          gen(opts.seed),
          ids(opts.seed ^ 0x5deece66dULL),
          faults(fault_state::from(opts)) {
        if (opts.scenario != "demo" && opts.scenario != "quiet")
            throw std::invalid_argument("lab: unknown scenario '" + opts.scenario + "'");
    }

    std::int64_t draw_delay_us() {
        return seconds_to_us(
            gen.uniform(faults.delay_min_s, std::max(faults.delay_min_s, faults.delay_max_s)));
    }

    const person& random_user() { return dir.users[gen.below(dir.users.size())]; }

    static bool is_breakglass(std::string_view id) { return id == ids::bg1 || id == ids::bg2; }

    void log_breakglass(const event& e, const char* what) {
        if (!opts.log) return;
        std::string who;
        bool touches = false;
        if (e.kind == log_kind::sign_ins) {
            touches = is_breakglass(e.view.user_id);
            who = json_string(e.body, "userPrincipalName");
        } else {
            touches = is_breakglass(e.view.initiator_id);
            for (const auto& t : e.view.target_ids)
                touches = touches || is_breakglass(t);
            who = json_string(e.body, "activityDisplayName");
        }
        if (!touches) return;
        std::string line =
            std::string("lab: ") + what + " break-glass " +
            (e.kind == log_kind::sign_ins ? "sign-in " + e.view.event_type : "audit") + " '" + who +
            "'";
        if (e.kind == log_kind::sign_ins && e.body.contains("status") &&
            e.body["status"].is_object())
            line += " errorCode=" + e.body["status"].value("errorCode", json(0)).dump();
        line += " id=" + e.id + " created=" + iso_time(e.created_us) +
                " visible_at=" + iso_time(e.visible_us);
        opts.log(line);
    }

    event_ptr add_event(log_kind kind, json body, std::int64_t created, std::int64_t visible,
                        const char* what) {
        auto e = std::make_shared<event>();
        e->kind = kind;
        e->id = json_string(body, "id");
        e->seq = next_seq++;
        e->view = view_of(body, kind, created);
        e->created_us = e->view.created_us;
        e->visible_us = visible;
        e->body = std::move(body);
        events.push_back(e);
        // Memory cap: forget the oldest entries. Snapshots keep their own references.
        while (events.size() > std::max<std::size_t>(opts.max_events, 1))
            events.pop_front();
        log_breakglass(*e, what);
        if (opts.on_event) opts.on_event(e->body, e->view.event_type, e->visible_us);
        return e;
    }

    json control_reply(const event& e) const {
        return {{"id", e.id},
                {"created", iso_time(e.created_us)},
                {"visible_at", iso_time(e.visible_us)}};
    }

    // ---- scenario ----

    event_ptr gen_sign_in(sign_in_type type, const person* user, bool success, int code,
                          std::int64_t created, std::int64_t visible, const char* what) {
        sign_in_params p;
        p.id = gen.guid();
        p.created_us = created;
        p.type = type;
        p.user = user;
        p.success = success;
        p.error_code = code;
        return add_event(log_kind::sign_ins, make_sign_in(gen, opts, p), created, visible, what);
    }

    void background_sign_in(std::int64_t created, std::int64_t visible) {
        double u = gen.uniform();
        sign_in_type type = u < 0.3    ? sign_in_type::interactive
                            : u < 0.9  ? sign_in_type::non_interactive
                            : u < 0.97 ? sign_in_type::service_principal
                                       : sign_in_type::managed_identity;
        bool success = gen.uniform() < 0.92;
        static constexpr int codes[] = {50126, 50126, 50126, 50140, 50074, 53003, 50053};
        int code = success ? 0 : gen.pick(codes);
        gen_sign_in(type, &random_user(), success, code, created, visible, "scenario");
    }

    void background_audit(std::int64_t created, std::int64_t visible) {
        static constexpr const char* acts[] = {"Update user", "Add member to group",
                                               "Change user password",
                                               "Update StsRefreshTokenValidFrom Timestamp"};
        audit_params p;
        p.activity = gen.pick(acts);
        p.created_us = created;
        if (gen.uniform() < 0.5) p.actor = &dir.admin;
        p.target = &random_user();
        add_event(log_kind::audits, make_audit(gen, opts, p), created, visible, "scenario");
    }

    void begin(std::int64_t t) {
        start = opts.start_us != 0 ? opts.start_us : t;
        if (opts.scenario != "demo") return;
        const double rate = opts.rate_per_s, audit_rate = opts.rate_per_s / 20.0;
        if (opts.backfill_s > 0 && rate > 0) {
            // History: already visible at the start (its ingestion delay has long passed).
            std::int64_t from = start - seconds_to_us(opts.backfill_s);
            for (std::int64_t c = from + seconds_to_us(gen.exponential(rate)); c < start;
                 c += seconds_to_us(gen.exponential(rate)))
                background_sign_in(c, std::min(c + draw_delay_us(), start));
            for (std::int64_t c = from + seconds_to_us(gen.exponential(audit_rate)); c < start;
                 c += seconds_to_us(gen.exponential(audit_rate)))
                background_audit(c, std::min(c + draw_delay_us(), start));
        }
        next_signin_us = rate > 0 ? start + seconds_to_us(gen.exponential(rate)) : never;
        next_audit_us = audit_rate > 0 ? start + seconds_to_us(gen.exponential(audit_rate)) : never;
    }

    void run_scenario(std::int64_t t) {
        if (opts.scenario != "demo") return;
        const double rate = opts.rate_per_s, audit_rate = opts.rate_per_s / 20.0;
        while (next_signin_us <= t) {
            background_sign_in(next_signin_us, next_signin_us + draw_delay_us());
            next_signin_us += std::max<std::int64_t>(1, seconds_to_us(gen.exponential(rate)));
        }
        while (next_audit_us <= t) {
            background_audit(next_audit_us, next_audit_us + draw_delay_us());
            next_audit_us += std::max<std::int64_t>(1, seconds_to_us(gen.exponential(audit_rate)));
        }
        // The break-glass script (the demo's point): +15 s, +25 s, +35 s.
        static constexpr double at_s[] = {15, 25, 35};
        while (script_step < 3 && start + seconds_to_us(at_s[script_step]) <= t) {
            std::int64_t c = start + seconds_to_us(at_s[script_step]);
            if (script_step == 0) {
                gen_sign_in(sign_in_type::interactive, &dir.bg1, true, 0, c, c + draw_delay_us(),
                            "scenario");
            } else if (script_step == 1) {
                gen_sign_in(sign_in_type::non_interactive, &dir.bg2, false, 50126, c,
                            c + draw_delay_us(), "scenario");
            } else {
                audit_params p;
                p.activity = "Reset user password";
                p.created_us = c;
                p.actor = &dir.admin;
                p.target = &dir.bg1;
                add_event(log_kind::audits, make_audit(gen, opts, p), c, c + draw_delay_us(),
                          "scenario");
            }
            ++script_step;
        }
    }

    void advance(std::int64_t t) {
        if (t < now) return;  // time never runs backwards here
        now = t;
        if (start == 0) begin(t);
        run_scenario(t);
        for (auto it = pages.begin(); it != pages.end();) {
            if (it->second.snap->expires_us <= t)
                it = pages.erase(it);
            else
                ++it;
        }
        // Keep expired tokens for an hour: a request with one is still attributed to its client.
        for (auto it = tokens.begin(); it != tokens.end();) {
            if (it->second.issued_us + (it->second.ttl_s + 3600LL) * us_per_s < t)
                it = tokens.erase(it);
            else
                ++it;
        }
    }

    // ---- control API ----

    // Reads an optional number; false (and `why`) when present with the wrong type.
    static bool opt_number(const json& spec, const char* key, std::optional<double>& out,
                           std::string& why) {
        auto it = spec.find(key);
        if (it == spec.end() || it->is_null()) return true;
        if (!it->is_number()) {
            why = std::string("'") + key + "' must be a number";
            return false;
        }
        out = it->get<double>();
        return true;
    }

    // A person named by the control API: "bg1" | "bg2" | "admin" | "user"/omitted (random) | id.
    const person* resolve_person(const json& spec, const char* key, std::string& unknown_id,
                                 std::string& why, bool& ok) {
        ok = true;
        auto it = spec.find(key);
        if (it == spec.end() || it->is_null()) return &random_user();
        if (!it->is_string()) {
            ok = false;
            why = std::string("'") + key + "' must be a string";
            return nullptr;
        }
        const std::string v = it->get<std::string>();
        if (v == "bg1") return &dir.bg1;
        if (v == "bg2") return &dir.bg2;
        if (v == "admin") return &dir.admin;
        if (v == "user" || v.empty()) return &random_user();
        if (const person* p = dir.find(v)) return p;
        if (!looks_like_guid(v)) {
            ok = false;
            why = std::string("'") + key + "' must be bg1, bg2, admin, user or an object id";
            return nullptr;
        }
        unknown_id = lower(v);
        return nullptr;
    }

    // created = now + created_offset_s; visible = now + delay_s (default: a drawn ingestion
    // delay). A negative offset is a late event: old createdDateTime, visible from now on.
    bool timing(const json& spec, std::int64_t t, std::int64_t& created, std::int64_t& visible,
                std::string& why) {
        std::optional<double> delay, offset;
        if (!opt_number(spec, "delay_s", delay, why) ||
            !opt_number(spec, "created_offset_s", offset, why))
            return false;
        if (delay && *delay < 0) {
            why = "'delay_s' must not be negative";
            return false;
        }
        created = t + (offset ? seconds_to_us(*offset) : 0);
        visible = t + (delay ? seconds_to_us(*delay) : draw_delay_us());
        return true;
    }

    static bool fields_of(const json& spec, json& fields, std::string& why) {
        auto it = spec.find("fields");
        if (it == spec.end() || it->is_null()) return true;
        if (!it->is_object()) {
            why = "'fields' must be an object (a JSON merge patch)";
            return false;
        }
        fields = *it;
        return true;
    }

    control_answer sign_in(const json& spec_in, std::int64_t t) {
        const json spec = spec_in.is_null() ? json::object() : spec_in;
        if (!spec.is_object()) return control_error(400, "the body must be a JSON object");
        std::string why;
        sign_in_type type = sign_in_type::interactive;
        if (auto it = spec.find("type"); it != spec.end() && !it->is_null()) {
            auto parsed =
                it->is_string() ? parse_sign_in_type(it->get<std::string>()) : std::nullopt;
            if (!parsed)
                return control_error(400,
                                     "'type' must be interactive, nonInteractive, servicePrincipal "
                                     "or managedIdentity");
            type = *parsed;
        }
        bool success = true;
        int code = 0;
        auto s = spec.find("success");
        if (s != spec.end() && !s->is_null()) {
            if (!s->is_boolean()) return control_error(400, "'success' must be a boolean");
            success = s->get<bool>();
        }
        if (auto c = spec.find("error_code"); c != spec.end() && !c->is_null()) {
            if (!c->is_number_integer())
                return control_error(400, "'error_code' must be an integer");
            code = c->get<int>();
            if (s == spec.end() || s->is_null()) success = code == 0;
        }
        if (success)
            code = 0;
        else if (code == 0)
            code = 50126;
        std::string unknown_id;
        bool ok = true;
        const person* user = resolve_person(spec, "user", unknown_id, why, ok);
        if (!ok) return control_error(400, why);
        person stranger;
        if (!user) {
            stranger.id = unknown_id;
            stranger.upn = "user-" + unknown_id.substr(0, 8) + "@" + opts.tenant_domain;
            stranger.display_name = "User " + unknown_id.substr(0, 8);
            stranger.city = "Seattle";
            stranger.state = "Washington";
            stranger.country = "US";
            stranger.ip = "198.51.100.77";
            stranger.os = "Windows10";
            stranger.browser = "Edge 129.0.2792";
            user = &stranger;
        }
        std::int64_t created = 0, visible = 0;
        json fields;
        if (!timing(spec, t, created, visible, why) || !fields_of(spec, fields, why))
            return control_error(400, why);
        sign_in_params p;
        p.id = gen.guid();
        p.created_us = created;
        p.type = type;
        p.user = user;
        p.success = success;
        p.error_code = code;
        json body = make_sign_in(gen, opts, p);
        if (!fields.is_null()) body.merge_patch(fields);
        if (!body.contains("id") || !body["id"].is_string())
            return control_error(400, "'fields' must keep a string id");
        auto e = add_event(log_kind::sign_ins, std::move(body), created, visible, "control");
        return {200, control_reply(*e)};
    }

    control_answer audit(const json& spec_in, std::int64_t t) {
        const json spec = spec_in.is_null() ? json::object() : spec_in;
        if (!spec.is_object()) return control_error(400, "the body must be a JSON object");
        std::string why;
        audit_params p;
        if (auto it = spec.find("activity"); it != spec.end() && !it->is_null()) {
            if (!it->is_string() || it->get<std::string>().empty())
                return control_error(400, "'activity' must be a non-empty string");
            p.activity = it->get<std::string>();
        }
        if (auto it = spec.find("success"); it != spec.end() && !it->is_null()) {
            if (!it->is_boolean()) return control_error(400, "'success' must be a boolean");
            p.success = it->get<bool>();
        }
        bool ok = true;
        if (auto it = spec.find("actor");
            it != spec.end() && it->is_string() && it->get<std::string>() == "app") {
            p.actor = nullptr;
        } else if (it == spec.end() || it->is_null()) {
            p.actor = &dir.admin;
        } else {
            p.actor = resolve_person(spec, "actor", p.actor_id, why, ok);
            if (!ok) return control_error(400, why);
        }
        p.target = resolve_person(spec, "target", p.target_id, why, ok);
        if (!ok) return control_error(400, why);
        std::int64_t created = 0, visible = 0;
        json fields;
        if (!timing(spec, t, created, visible, why) || !fields_of(spec, fields, why))
            return control_error(400, why);
        p.created_us = created;
        json body = make_audit(gen, opts, p);
        if (!fields.is_null()) body.merge_patch(fields);
        if (!body.contains("id") || !body["id"].is_string())
            return control_error(400, "'fields' must keep a string id");
        auto e = add_event(log_kind::audits, std::move(body), created, visible, "control");
        return {200, control_reply(*e)};
    }

    control_answer republish(const json& spec, std::int64_t t) {
        if (!spec.is_object()) return control_error(400, "the body must be a JSON object");
        std::string id = json_string(spec, "id");
        if (id.empty()) return control_error(400, "'id' (string) is required");
        std::string why;
        std::optional<double> delay;
        json fields;
        if (!opt_number(spec, "delay_s", delay, why) || !fields_of(spec, fields, why))
            return control_error(400, why);
        if (delay && *delay < 0) return control_error(400, "'delay_s' must not be negative");
        bool replace = false;
        if (auto it = spec.find("replace"); it != spec.end() && !it->is_null()) {
            if (!it->is_boolean()) return control_error(400, "'replace' must be a boolean");
            replace = it->get<bool>();
        }
        event_ptr latest;
        for (auto it = events.rbegin(); it != events.rend() && !latest; ++it)
            if ((*it)->id == id) latest = *it;
        if (!latest) return control_error(404, "unknown event id '" + id + "'");
        json body = latest->body;
        if (!fields.is_null()) body.merge_patch(fields);
        body["id"] = id;  // a revision keeps its identity
        if (replace)
            events.erase(std::remove_if(events.begin(), events.end(),
                                        [&](const event_ptr& e) { return e->id == id; }),
                         events.end());
        std::int64_t visible = t + (delay ? seconds_to_us(*delay) : draw_delay_us());
        auto e =
            add_event(latest->kind, std::move(body), latest->created_us, visible, "republished");
        return {200, control_reply(*e)};
    }

    control_answer set_faults(const json& spec) {
        if (!spec.is_object()) return control_error(400, "the body must be a JSON object");
        fault_state f = faults;  // applied only if every key is valid
        auto int_in = [&](const json& v, int lo, int hi, int& out) {
            if (!v.is_number_integer()) return false;
            auto n = v.get<std::int64_t>();
            if (n < lo || n > hi) return false;
            out = static_cast<int>(n);
            return true;
        };
        auto num_in = [&](const json& v, double lo, double hi, double& out) {
            if (!v.is_number()) return false;
            double n = v.get<double>();
            if (!(n >= lo && n <= hi)) return false;
            out = n;
            return true;
        };
        auto one_of = [&](const json& v, std::initializer_list<const char*> allowed,
                          std::string& out) {
            if (!v.is_string()) return false;
            for (const char* a : allowed)
                if (v.get<std::string>() == a) {
                    out = a;
                    return true;
                }
            return false;
        };
        constexpr double big = 1e9;
        bool status_count_given = spec.contains("graph_status_count");
        bool transport_count_given = spec.contains("graph_transport_count");
        for (const auto& [key, v] : spec.items()) {
            bool ok = false;
            if (key == "token")
                ok = one_of(v,
                            {"ok", "bad_secret", "expired_secret", "disabled", "unavailable",
                             "unavailable_plain", "hang"},
                            f.token);
            else if (key == "token_ttl_s")
                ok = int_in(v, 0, 1000000000, f.token_ttl_s);
            else if (key == "token_retry_after_s")
                ok = int_in(v, 0, 3600, f.token_retry_after_s);
            else if (key == "page_size")
                ok = int_in(v, 0, 1000000, f.page_size);
            else if (key == "graph_status")
                ok = int_in(v, 0, 599, f.graph_status) &&
                     (f.graph_status == 0 || f.graph_status >= 100);
            else if (key == "graph_status_count")
                ok = int_in(v, 0, 1000000000, f.graph_status_count);
            else if (key == "graph_transport")
                ok = one_of(v, {"none", "hang", "reset", "drop_after_headers"}, f.graph_transport);
            else if (key == "graph_transport_count")
                ok = int_in(v, 0, 1000000000, f.graph_transport_count);
            else if (key == "throttle_ratio")
                ok = num_in(v, 0, 1, f.throttle_ratio);
            else if (key == "throttle_limit")
                ok = int_in(v, 0, 1000000000, f.throttle_limit);
            else if (key == "throttle_window_s")
                ok = num_in(v, 0.001, big, f.throttle_window_s);
            else if (key == "retry_after")
                ok = one_of(v, {"seconds", "fractional", "http-date", "missing", "garbage"},
                            f.retry_after);
            else if (key == "expire_tokens_every_s")
                ok = num_in(v, 0, big, f.expire_tokens_every_s);
            else if (key == "next_link_host") {
                ok = v.is_string();
                if (ok) f.next_link_host = v.get<std::string>();
            } else if (key == "next_link_loop" || key == "empty_first_page" ||
                       key == "next_link_back") {
                ok = v.is_boolean();
                if (ok)
                    (key == "next_link_loop"   ? f.next_link_loop
                     : key == "next_link_back" ? f.next_link_back
                                               : f.empty_first_page) = v.get<bool>();
            } else if (key == "revoke_token_after_pages")
                ok = int_in(v, 0, 1000000, f.revoke_token_after_pages);
            else if (key == "record_padding_bytes")
                ok = int_in(v, 0, 256 << 20, f.record_padding_bytes);
            else if (key == "snapshot_ttl_s")
                ok = num_in(v, 0.001, big, f.snapshot_ttl_s);
            else if (key == "ingestion_delay_s") {
                double lo = 0, hi = 0;
                if (v.is_number()) {
                    ok = num_in(v, 0, big, lo);
                    hi = lo;
                } else if (v.is_array() && v.size() == 2) {
                    ok = num_in(v[0], 0, big, lo) && num_in(v[1], 0, big, hi) && lo <= hi;
                }
                if (ok) {
                    f.delay_min_s = lo;
                    f.delay_max_s = hi;
                }
            } else {
                return control_error(400, "unknown fault '" + key + "'");
            }
            if (!ok)
                return control_error(400, "invalid value for fault '" + key + "': " + v.dump());
        }
        // A new status/transport without a count lasts until cleared.
        if (spec.contains("graph_status") && !status_count_given) f.graph_status_count = 0;
        if (spec.contains("graph_transport") && !transport_count_given) f.graph_transport_count = 0;
        if (spec.contains("throttle_ratio")) ratio_n = 0;
        faults = f;
        return {200, json{{"faults", faults.to_json()}}};
    }

    json stats_json() const {
        json by_path = json::object(), last = json::object(), served = json::object(),
             clients = json::object();
        std::uint64_t served_total = 0;
        for (const auto& [k, v] : st.by_path)
            by_path[k] = v;
        json by_type = json::object();
        for (const auto& [k, v] : st.signin_requests_by_type)
            by_type[k] = v;
        for (const auto& [k, v] : st.last_filter)
            last[k] = v;
        for (const auto& [k, v] : st.served) {
            served[k] = v;
            served_total += v;
        }
        for (const auto& [k, v] : st.max_by_client)
            clients[k] = v;
        std::size_t visible = 0;
        for (const auto& e : events)
            visible += e->visible_us <= now;
        return {{"graph_requests", st.graph_requests},
                {"token_requests", st.token_requests},
                {"tokens_issued", st.tokens_issued},
                {"throttled", st.throttled},
                {"unauthorized", st.unauthorized},
                {"status_faults", st.status_faults},
                {"transport_faults", st.transport_faults},
                {"early_requests", st.early_requests},
                {"token_early_requests", st.token_early_requests},
                {"revoked_tokens", st.revoked_tokens},
                {"control_requests", st.control_requests},
                {"max_in_10s", st.max_in_window},
                {"max_in_window_by_client", clients},
                {"throttle_window_s", faults.throttle_window_s},
                {"throttle_limit", faults.throttle_limit},
                {"by_path", by_path},
                {"signin_requests_by_type", by_type},
                {"unfiltered_signin_requests", st.unfiltered_signin_requests},
                {"last_filter", last},
                {"served", served},
                {"served_total", served_total},
                {"events", events.size()},
                {"visible_events", visible},
                {"open_skiptokens", pages.size()},
                {"start", start != 0 ? json(iso_time(start)) : json(nullptr)},
                {"now", now != 0 ? json(iso_time(now)) : json(nullptr)},
                {"faults", faults.to_json()}};
    }

    json events_json(bool with_bodies) const {
        json list = json::array();
        for (const auto& e : events) {
            json j = {{"id", e->id},
                      {"seq", e->seq},
                      {"kind", e->kind == log_kind::sign_ins ? "signIn" : "directoryAudit"},
                      {"created", iso_time(e->created_us)},
                      {"visible_at", iso_time(e->visible_us)},
                      {"visible", e->visible_us <= now}};
            if (e->kind == log_kind::sign_ins) {
                j["eventType"] = e->view.event_type;
                j["userId"] = e->view.user_id;
            } else {
                j["activity"] = json_string(e->body, "activityDisplayName");
                j["initiatedBy"] = e->view.initiator_id;
                j["targets"] = e->view.target_ids;
            }
            if (with_bodies) j["body"] = e->body;
            list.push_back(std::move(j));
        }
        return {{"count", events.size()}, {"events", std::move(list)}};
    }

    // ---- Graph ----

    struct graph_ctx {
        std::string request_id, client_request_id;
        std::int64_t now = 0;
    };

    static void graph_headers(test::server_response& r, const graph_ctx& g) {
        r.headers.emplace_back("request-id", g.request_id);
        r.headers.emplace_back("client-request-id", g.client_request_id);
        r.headers.emplace_back(
            "x-ms-ags-diagnostic",
            R"({"ServerInfo":{"DataCenter":"North Europe","Slice":"E","Ring":"4",)"
            R"("ScaleUnit":"002","RoleInstance":"DB1PEPF00075A1C"}})");
        r.headers.emplace_back("Strict-Transport-Security", "max-age=31536000");
        r.headers.emplace_back("Cache-Control", "no-cache");
    }

    static test::server_response graph_error(int status, const std::string& code,
                                             const std::string& message, const graph_ctx& g) {
        test::server_response r;
        r.status = status;
        r.body = json{{"error",
                       {{"code", code},
                        {"message", message},
                        {"innerError",
                         {{"date", graph_error_date(g.now)},
                          {"request-id", g.request_id},
                          {"client-request-id", g.client_request_id}}}}}}
                     .dump();
        r.content_type = "application/json";
        graph_headers(r, g);
        return r;
    }

    // Retry-After in the form the `retry_after` fault asks for; `wait_s` is the honest value.
    // Remembers the time it names for `client`: a request before then counts as early.
    void add_retry_after(test::server_response& r, double wait_s, const std::string& client) {
        wait_s = std::max(wait_s, 0.001);
        const std::string& form = faults.retry_after;
        std::string v;
        std::int64_t not_before = 0;
        if (form == "seconds") {
            const auto secs = static_cast<long long>(std::ceil(wait_s));
            v = std::to_string(secs);
            not_before = now + secs * us_per_s;
        } else if (form == "fractional") {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.3f", std::max(wait_s, 0.5));
            v = buf;
            not_before = now + static_cast<std::int64_t>(std::strtod(buf, nullptr) * 1e6);
        } else if (form == "http-date") {
            // An HTTP-date has whole seconds; round up so the client never comes back early.
            not_before =
                (now / us_per_s + static_cast<std::int64_t>(std::ceil(wait_s)) + 1) * us_per_s;
            v = http_date(not_before);
        } else if (form == "garbage") {
            v = "soon";
        } else {
            return;  // "missing"
        }
        r.headers.emplace_back("Retry-After", v);
        auto& nb = retry_not_before[client];
        nb = std::max(nb, not_before);
    }

    test::server_response status_fault(const graph_ctx& g, const std::string& client) {
        const int status = faults.graph_status;
        test::server_response r;
        switch (status) {
            case 503:
                r = graph_error(503, "serviceNotAvailable",
                                "Service is temporarily unavailable. Please retry later.", g);
                break;
            case 500:
                r = graph_error(500, "UnknownError", "", g);
                break;
            case 502:
                r = graph_error(502, "BadGateway", "Bad gateway.", g);
                break;
            case 504:
                r = graph_error(504, "GatewayTimeout",
                                "The gateway did not receive a timely response.", g);
                break;
            case 429:
                r = graph_error(429, "TooManyRequests", "Too many requests.", g);
                break;
            case 403:
                r = graph_error(403, "Authorization_RequestDenied",
                                "Insufficient privileges to complete the operation.", g);
                break;
            case 401:
                r = graph_error(401, "InvalidAuthenticationToken",
                                "Access token has expired or is not yet valid.", g);
                break;
            case 400:
                r = graph_error(400, "Request_BadRequest", "Invalid request.", g);
                break;
            case 404:
                r = graph_error(404, "Request_ResourceNotFound", "Resource not found.", g);
                break;
            default:
                r = graph_error(status, "UnknownError", "Simulated failure.", g);
                break;
        }
        if (status == 503 || status == 429) add_retry_after(r, 2.0, client);
        if (faults.graph_status_count > 0 && --faults.graph_status_count == 0)
            faults.graph_status = 0;
        ++st.status_faults;
        return r;
    }

    // Records a request in its client's sliding window; returns how many the window holds now.
    std::size_t record_request(const std::string& client, std::int64_t t) {
        auto& w = windows[client];
        w.push_back(t);
        const std::int64_t window_us = seconds_to_us(faults.throttle_window_s);
        while (!w.empty() && w.front() <= t - window_us)
            w.pop_front();
        st.max_in_window = std::max(st.max_in_window, w.size());
        auto& m = st.max_by_client[client];
        m = std::max(m, w.size());
        return w.size();
    }

    // Seconds until the window holds fewer than `limit` requests again.
    double window_wait_s(const std::string& client, std::int64_t t) {
        const auto& w = windows[client];
        const auto limit = static_cast<std::size_t>(std::max(faults.throttle_limit, 1));
        if (w.size() < limit) return 1.0;
        const std::int64_t frees_at = w[w.size() - limit] + seconds_to_us(faults.throttle_window_s);
        return std::max(static_cast<double>(frees_at - t) / 1e6, 0.001);
    }

    std::string next_link(const std::string& host, const snapshot& s,
                          const std::string& token) const {
        std::string link = "https://" +
                           (faults.next_link_host.empty() ? host : faults.next_link_host) + s.path +
                           "?";
        if (!s.filter_text.empty()) link += "$filter=" + graph_query_encode(s.filter_text) + "&";
        if (!s.orderby_text.empty()) link += "$orderby=" + graph_query_encode(s.orderby_text) + "&";
        return link + "$top=" + std::to_string(s.top) + "&$skiptoken=" + token;
    }

    std::string new_page_token(const std::shared_ptr<snapshot>& snap, std::size_t offset) {
        std::string token = ids.base64url_bytes(24);
        pages[token] = page_ref{snap, offset};
        return token;
    }

    // `directory`: a posture endpoint (lab_posture), not an audit-log list: same token and fault
    // handling, but not the reports API throttle.
    test::server_response graph(const test::server_request& req, const std::string& path, bool beta,
                                log_kind kind, std::int64_t t, bool directory = false) {
        ++st.graph_requests;
        ++st.by_path[path];
        graph_ctx g;
        g.now = t;
        g.request_id = ids.guid();
        g.client_request_id = header_of(req, "client-request-id");
        if (g.client_request_id.empty()) g.client_request_id = g.request_id;
        std::string host = header_of(req, "host");
        if (host.empty()) host = opts.default_host;

        // Who is asking: the client the bearer token was issued to (even an expired one).
        std::string auth = header_of(req, "authorization");
        std::string bearer;
        if (auth.size() > 7 && iequals(auth.substr(0, 7), "bearer ")) bearer = auth.substr(7);
        auto tok = bearer.empty() ? tokens.end() : tokens.find(bearer);
        const std::string client = tok != tokens.end() ? tok->second.client_id : "anonymous";
        // Directory reads (posture) are not the reports API: they do not count against its window.
        const std::size_t in_window = directory ? 0 : record_request(client, t);
        if (!directory) {
            auto nb = retry_not_before.find(client);
            if (nb != retry_not_before.end() && t < nb->second) ++st.early_requests;
        }

        for (const auto& [name, value] : parse_params(query_of(req))) {
            if (!iequals(name, "$filter")) continue;
            st.last_filter[path] = value;
            if (kind != log_kind::sign_ins || directory) continue;
            std::string type = "interactiveUser";
            for (const char* tname :
                 {"nonInteractiveUser", "servicePrincipal", "managedIdentity", "interactiveUser"})
                if (value.find(std::string("eq '") + tname + "'") != std::string::npos) {
                    type = tname;
                    break;
                }
            ++st.signin_requests_by_type[type];
            if (value.find("userId eq") == std::string::npos &&
                value.find("servicePrincipalId eq") == std::string::npos)
                ++st.unfiltered_signin_requests;
        }

        if (faults.graph_transport != "none") {
            test::server_response r;
            const std::string& what = faults.graph_transport;
            r.what = what == "hang"    ? test::server_response::fault::hang
                     : what == "reset" ? test::server_response::fault::reset
                                       : test::server_response::fault::drop_after_headers;
            // Something worth truncating: the start of a plausible page.
            r.body = R"({"@odata.context":"https://)" + host + "/" + (beta ? "beta" : "v1.0") +
                     R"(/$metadata#auditLogs/signIns","value":[)" + std::string(4096, ' ') + "]}";
            graph_headers(r, g);
            if (faults.graph_transport_count > 0 && --faults.graph_transport_count == 0)
                faults.graph_transport = "none";
            ++st.transport_faults;
            return r;
        }

        std::string problem;
        if (bearer.empty())
            problem = "Access token is empty.";
        else if (tok == tokens.end())
            problem = "Invalid authentication token.";
        else if (revoked.count(bearer))
            problem = "Access token has been revoked.";
        else {
            const issued_token& it = tok->second;
            std::int64_t expires = it.issued_us + static_cast<std::int64_t>(it.ttl_s) * us_per_s;
            if (faults.expire_tokens_every_s > 0)
                expires =
                    std::min(expires, it.issued_us + seconds_to_us(faults.expire_tokens_every_s));
            if (t >= expires) problem = "Access token has expired or is not yet valid.";
        }
        if (!problem.empty()) {
            ++st.unauthorized;
            auto r = graph_error(401, "InvalidAuthenticationToken", problem, g);
            r.headers.emplace_back(
                "WWW-Authenticate",
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/"
                "oauth2/authorize\", client_id=\"" +
                    std::string(ids::graph_resource) + "\"");
            return r;
        }

        // The reports throttle (graph.md §2.6): throttled requests count against the window too.
        if (!directory && faults.throttle_limit > 0 &&
            in_window > static_cast<std::size_t>(faults.throttle_limit)) {
            ++st.throttled;
            auto r = graph_error(429, "TooManyRequests", "Too many requests.", g);
            add_retry_after(r, window_wait_s(client, t), client);
            return r;
        }
        if (faults.graph_status != 0) return status_fault(g, client);
        if (req.method != "GET")
            return graph_error(
                405, "Request_BadRequest",
                "The request method '" + req.method + "' is not allowed for this resource.", g);
        if (directory) {
            lab_posture::answer a = posture.handle(path, query_of(req), host);
            if (a.status != 200) return graph_error(a.status, a.code, a.message, g);
            test::server_response r;
            r.status = 200;
            r.body = a.body.dump();
            r.content_type = "application/json;odata.metadata=minimal;odata.streaming=true";
            graph_headers(r, g);
            r.headers.emplace_back("OData-Version", "4.0");
            return r;
        }

        std::string code, why;
        auto q = parse_list_query(query_of(req), kind, code, why);
        if (!q) return graph_error(400, code, why, g);
        if (q->filter && q->filter->uses_event_types && !beta)
            return graph_error(
                400, "Request_UnsupportedQuery",
                "Unsupported or invalid query filter clause specified: signInEventTypes is "
                "only supported on the beta endpoint.",
                g);

        // Deterministic extra throttling of otherwise good requests.
        if (faults.throttle_ratio > 0) {
            ++ratio_n;
            const double r1 = std::floor(static_cast<double>(ratio_n) * faults.throttle_ratio);
            const double r0 = std::floor(static_cast<double>(ratio_n - 1) * faults.throttle_ratio);
            if (r1 != r0) {
                ++st.throttled;
                auto r = graph_error(429, "TooManyRequests", "Too many requests.", g);
                add_retry_after(r, 1.0, client);
                return r;
            }
        }

        std::shared_ptr<snapshot> snap;
        std::size_t offset = 0;
        bool first = q->skiptoken.empty();
        if (!first) {
            auto it = pages.find(q->skiptoken);
            if (it == pages.end() || it->second.snap->expires_us <= t ||
                it->second.snap->path != path)
                return graph_error(400, "Request_BadRequest",
                                   "The specified $skiptoken is invalid or has expired.", g);
            snap = it->second.snap;
            offset = it->second.offset;
        } else {
            snap = std::make_shared<snapshot>();
            snap->kind = kind;
            snap->path = path;
            snap->filter_text = q->filter_text;
            snap->orderby_text = q->orderby_text;
            snap->top = q->top;
            snap->expires_us = t + seconds_to_us(faults.snapshot_ttl_s);
            snap->first_target = path + "?" + query_of(req);
            for (const auto& e : events) {
                if (e->kind != kind || e->visible_us > t) continue;
                // Without a signInEventTypes clause only interactive sign-ins are listed (§2.3).
                if (kind == log_kind::sign_ins && !(q->filter && q->filter->uses_event_types) &&
                    e->view.event_type != "interactiveUser")
                    continue;
                if (q->filter && !filter_matches(*q->filter, e->view)) continue;
                snap->items.push_back(e);
            }
            const bool asc = q->ascending;
            std::stable_sort(snap->items.begin(), snap->items.end(),
                             [asc](const event_ptr& a, const event_ptr& b) {
                                 if (a->created_us != b->created_us)
                                     return asc ? a->created_us < b->created_us
                                                : a->created_us > b->created_us;
                                 return asc ? a->seq < b->seq : a->seq > b->seq;
                             });
        }

        const std::size_t page =
            static_cast<std::size_t>(faults.page_size > 0 ? faults.page_size : snap->top);
        std::size_t begin = offset, end = std::min(snap->items.size(), offset + page);
        std::string next;
        if (first && faults.empty_first_page) {
            end = begin;  // an empty first page that still points onwards
            next = new_page_token(snap, 0);
        } else if (faults.next_link_loop) {
            next = first ? new_page_token(snap, 0) : q->skiptoken;
        } else if (end < snap->items.size()) {
            next = new_page_token(snap, end);
        }
        std::string next_url = next.empty() ? std::string() : next_link(host, *snap, next);
        if (faults.next_link_back && !first)
            next_url = "https://" + host + snap->first_target;  // back to where it began
        if (!next_url.empty() && faults.revoke_token_after_pages > 0 &&
            ++mid_query_pages[bearer] >= faults.revoke_token_after_pages) {
            // Revoked between two pages of one query: the next page needs a new token.
            revoked.insert(bearer);
            ++st.revoked_tokens;
        }

        json value = json::array();
        for (std::size_t i = begin; i < end; ++i) {
            const event& e = *snap->items[i];
            value.push_back(beta ? e.body : strip_beta(e.body, kind));
            if (faults.record_padding_bytes > 0)
                value.back()["labPadding"] =
                    std::string(static_cast<std::size_t>(faults.record_padding_bytes), 'x');
            ++st.served[e.id];
        }
        json body;
        body["@odata.context"] = "https://" + host + "/" + (beta ? "beta" : "v1.0") +
                                 "/$metadata#auditLogs/" +
                                 (kind == log_kind::sign_ins ? "signIns" : "directoryAudits");
        if (!next_url.empty()) body["@odata.nextLink"] = next_url;
        body["value"] = std::move(value);
        test::server_response r;
        r.status = 200;
        r.body = body.dump();
        r.content_type =
            "application/"
            "json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-"
            "8";
        graph_headers(r, g);
        r.headers.emplace_back("OData-Version", "4.0");
        return r;
    }

    // ---- dispatch ----

    static test::server_response json_response(int status, const json& body) {
        test::server_response r;
        r.status = status;
        r.body = body.dump();
        r.content_type = "application/json";
        return r;
    }

    test::server_response control(const test::server_request& req, const std::string& path,
                                  std::int64_t t) {
        ++st.control_requests;
        const std::string q = query_of(req);
        auto body_json = [&](json& out) {
            if (req.body.find_first_not_of(" \t\r\n") == std::string::npos) {
                out = json::object();
                return true;
            }
            out = json::parse(req.body, nullptr, false);
            return !out.is_discarded();
        };
        const bool post = req.method == "POST", get = req.method == "GET";
        json spec;
        control_answer a;
        if (post && (path == "/lab/signin" || path == "/lab/audit" || path == "/lab/republish" ||
                     path == "/lab/faults")) {
            if (!body_json(spec))
                return json_response(400, {{"error", "the body is not valid JSON"}});
            if (path == "/lab/signin")
                a = sign_in(spec, t);
            else if (path == "/lab/audit")
                a = audit(spec, t);
            else if (path == "/lab/republish")
                a = republish(spec, t);
            else
                a = set_faults(spec);
            return json_response(a.status, a.body);
        }
        if (post && path == "/lab/reset_faults") {
            faults = fault_state::from(opts);
            ratio_n = 0;
            return json_response(200, {{"faults", faults.to_json()}});
        }
        if (post && path == "/lab/reset_stats") {
            st = stats_state{};
            return json_response(200, {{"ok", true}});
        }
        if (post && path == "/lab/posture") {
            if (!body_json(spec))
                return json_response(400, {{"error", "the body is not valid JSON"}});
            std::string why;
            if (!posture.control(spec, why)) return json_response(400, {{"error", why}});
            return json_response(200, posture.to_json());
        }
        if (get && path == "/lab/posture") return json_response(200, posture.to_json());
        if (get && path == "/lab/stats") return json_response(200, stats_json());
        if (get && path == "/lab/events") {
            bool bodies = false;
            for (const auto& [k, v] : parse_params(q))
                if (k == "bodies") bodies = v == "1" || v == "true";
            return json_response(200, events_json(bodies));
        }
        return json_response(404, {{"error", "no control endpoint " + req.method + " " + path}});
    }

    test::server_response token(const test::server_request& req, const std::string& tenant,
                                std::int64_t t) {
        ++st.token_requests;
        ++st.by_path[path_of(req)];
        if (t < st.token_not_before) ++st.token_early_requests;
        const int ttl = faults.token_ttl_s > 0 ? faults.token_ttl_s : opts.token_ttl_s;
        token_context ctx{opts, certs, faults.token, ttl, t, ids};
        token_outcome out = handle_token(req, tenant, ctx);
        if (out.response.status == 503 && faults.token_retry_after_s > 0) {
            out.response.headers.emplace_back("Retry-After",
                                              std::to_string(faults.token_retry_after_s));
            st.token_not_before =
                t + static_cast<std::int64_t>(faults.token_retry_after_s) * us_per_s;
        }
        if (out.access_token) {
            tokens[*out.access_token] = out.token;
            ++st.tokens_issued;
        }
        return std::move(out.response);
    }

    test::server_response handle(const test::server_request& req, std::int64_t t) {
        advance(t);
        t = std::max(t, now);
        const std::string path = path_of(req);
        if (path == "/lab" || path.rfind("/lab/", 0) == 0) return control(req, path, t);
        const std::vector<std::string> seg = split_path(path);
        if (seg.size() == 4 && seg[1] == "oauth2" && seg[2] == "v2.0" && seg[3] == "token")
            return token(req, url_decode(seg[0], false), t);
        if (!seg.empty() && (seg[0] == "v1.0" || seg[0] == "beta")) {
            const bool beta = seg[0] == "beta";
            if (seg.size() == 3 && iequals(seg[1], "auditLogs") && iequals(seg[2], "signIns"))
                return graph(req, path, beta, log_kind::sign_ins, t);
            if (seg.size() == 3 && iequals(seg[1], "auditLogs") &&
                iequals(seg[2], "directoryAudits"))
                return graph(req, path, beta, log_kind::audits, t);
            if (!beta && lab_posture::owns(path))
                return graph(req, path, beta, log_kind::sign_ins, t, /*directory=*/true);
            graph_ctx g;
            g.now = t;
            g.request_id = ids.guid();
            g.client_request_id = g.request_id;
            std::string last = seg.size() > 1 ? seg.back() : seg[0];
            return graph_error(400, "BadRequest",
                               "Resource not found for the segment '" + last + "'.", g);
        }
        return json_response(
            404, {{"error", {{"code", "NotFound"}, {"message", "No such endpoint: " + path}}}});
    }
};

// ---- lab_tenant -------------------------------------------------------------------------------

lab_tenant::lab_tenant(lab_options opts) : s_(std::make_unique<state>(std::move(opts))) {}

lab_tenant::~lab_tenant() = default;

test::server_response lab_tenant::handle(const test::server_request& req, std::int64_t now_us) {
    try {
        return s_->handle(req, now_us);
    } catch (const std::exception& e) {
        // A bug in the lab must not take the server down; say so in a 500 instead.
        test::server_response r;
        r.status = 500;
        r.body = json{{"error", {{"code", "LabInternalError"}, {"message", e.what()}}}}.dump();
        return r;
    }
}

void lab_tenant::tick(std::int64_t now_us) {
    s_->advance(now_us);
}

namespace {
lab_tenant::control_result to_result(control_answer a) {
    return {a.status == 200, std::move(a.body)};
}
}  // namespace

lab_tenant::control_result lab_tenant::add_sign_in(const nlohmann::json& spec,
                                                   std::int64_t now_us) {
    return to_result(s_->sign_in(spec, std::max(now_us, s_->now)));
}

lab_tenant::control_result lab_tenant::add_audit(const nlohmann::json& spec, std::int64_t now_us) {
    return to_result(s_->audit(spec, std::max(now_us, s_->now)));
}

lab_tenant::control_result lab_tenant::republish(const nlohmann::json& spec, std::int64_t now_us) {
    return to_result(s_->republish(spec, std::max(now_us, s_->now)));
}

lab_tenant::control_result lab_tenant::set_faults(const nlohmann::json& faults) {
    return to_result(s_->set_faults(faults));
}

lab_tenant::control_result lab_tenant::set_posture(const nlohmann::json& spec) {
    std::string why;
    if (!s_->posture.control(spec, why)) return {false, json{{"error", why}}};
    return {true, s_->posture.to_json()};
}

nlohmann::json lab_tenant::posture() const {
    return s_->posture.to_json();
}

void lab_tenant::reset_faults() {
    s_->faults = fault_state::from(s_->opts);
    s_->ratio_n = 0;
}

nlohmann::json lab_tenant::stats() const {
    return s_->stats_json();
}

nlohmann::json lab_tenant::events(bool with_bodies) const {
    return s_->events_json(with_bodies);
}

const lab_options& lab_tenant::options() const noexcept {
    return s_->opts;
}

std::int64_t lab_tenant::start_us() const noexcept {
    return s_->start;
}

}  // namespace glasswatch::lab
