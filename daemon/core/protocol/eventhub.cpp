#include "core/protocol/eventhub.hpp"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/base/crypto.hpp"
#include "core/base/json_text.hpp"

namespace glasswatch::core {

namespace {

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() &&
           (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
        s.remove_prefix(1);
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
        s.remove_suffix(1);
    return s;
}

template <class T>
bool parse_int(std::string_view s, T& out) noexcept {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Percent-decoding ('+' stays '+': SAS fields are url-encoded, not form-encoded).
std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) return std::nullopt;
        int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

}  // namespace

// ---- connection string ------------------------------------------------------------------------

std::optional<eventhub_connection> parse_eventhub_connection_string(std::string_view text,
                                                                    std::string& error) {
    eventhub_connection c;
    std::string endpoint;
    bool have_key = false, have_sig = false;
    text = trim(text);
    while (!text.empty()) {
        const auto semi = text.find(';');
        std::string_view pair = trim(text.substr(0, semi));
        text = semi == std::string_view::npos ? std::string_view{} : text.substr(semi + 1);
        if (pair.empty()) continue;
        const auto eq = pair.find('=');
        if (eq == std::string_view::npos) {
            error = "connection string: a part without '=' (expected Key=Value pairs)";
            return std::nullopt;
        }
        const std::string key = to_lower_ascii(trim(pair.substr(0, eq)));
        // Values keep everything after the first '=' (base64 keys end in '=').
        const std::string_view value = trim(pair.substr(eq + 1));
        if (key == "endpoint") {
            endpoint = std::string(value);
        } else if (key == "sharedaccesskeyname") {
            c.key_name = std::string(value);
        } else if (key == "sharedaccesskey") {
            c.key = std::string(value);
            have_key = !value.empty();
        } else if (key == "sharedaccesssignature") {
            c.signature = std::string(value);
            have_sig = !value.empty();
        } else if (key == "entitypath") {
            c.entity_path = std::string(value);
        } else if (key == "usedevelopmentemulator") {
            c.development_emulator = iequals_ascii(value, "true");
        }
    }
    if (endpoint.empty()) {
        error = "connection string: Endpoint is missing";
        return std::nullopt;
    }
    std::string_view ep = endpoint;
    const auto scheme_end = ep.find("://");
    if (scheme_end == std::string_view::npos) {
        error =
            "connection string: Endpoint must look like sb://<namespace>.servicebus.windows.net/";
        return std::nullopt;
    }
    ep.remove_prefix(scheme_end + 3);
    ep = ep.substr(0, ep.find('/'));
    const auto colon = ep.rfind(':');
    std::string_view host = ep;
    if (colon != std::string_view::npos) {
        host = ep.substr(0, colon);
        if (!parse_int(ep.substr(colon + 1), c.port) || c.port == 0) {
            error = "connection string: Endpoint has a bad port";
            return std::nullopt;
        }
    }
    if (host.empty()) {
        error = "connection string: Endpoint has no host";
        return std::nullopt;
    }
    c.namespace_host = to_lower_ascii(host);
    if (have_key && have_sig) {
        error = "connection string: give SharedAccessKey or SharedAccessSignature, not both";
        return std::nullopt;
    }
    if (!have_key && !have_sig) {
        error = "connection string: SharedAccessKey (or SharedAccessSignature) is missing";
        return std::nullopt;
    }
    if (have_key && c.key_name.empty()) {
        error = "connection string: SharedAccessKeyName is missing";
        return std::nullopt;
    }
    return c;
}

std::uint16_t eventhub_port(const eventhub_connection& c, bool websocket) {
    if (c.port != 0) return c.port;
    if (websocket) return 443;
    return c.development_emulator ? 5672 : 5671;
}

std::string eventhub_audience(const eventhub_connection& c, std::string_view hub) {
    std::string a = "sb://" + c.namespace_host;
    if (c.port != 0) a += ":" + std::to_string(c.port);
    a += "/";
    a += hub;
    return a;
}

// ---- SAS --------------------------------------------------------------------------------------

std::string make_sas_token(std::string_view resource_uri, std::string_view key_name,
                           std::string_view key, std::int64_t expiry_unix_s) {
    const std::string sr = url_encode(resource_uri);
    const std::string se = std::to_string(expiry_unix_s);
    // The key is used as its UTF-8 text, not base64-decoded (reference §5.2).
    const std::string sig = base64_encode(hmac_sha256(key, sr + "\n" + se));
    return "SharedAccessSignature sr=" + sr + "&sig=" + url_encode(sig) + "&se=" + se +
           "&skn=" + url_encode(key_name);
}

std::optional<sas_fields> parse_sas_token(std::string_view token) {
    constexpr std::string_view prefix = "SharedAccessSignature ";
    if (token.substr(0, prefix.size()) != prefix) return std::nullopt;
    token.remove_prefix(prefix.size());
    sas_fields f;
    bool sr = false, sig = false, se = false, skn = false;
    while (!token.empty()) {
        const auto amp = token.find('&');
        std::string_view part = token.substr(0, amp);
        token = amp == std::string_view::npos ? std::string_view{} : token.substr(amp + 1);
        const auto eq = part.find('=');
        if (eq == std::string_view::npos) return std::nullopt;
        std::string_view k = part.substr(0, eq), v = part.substr(eq + 1);
        auto decoded = percent_decode(v);
        if (!decoded) return std::nullopt;
        if (k == "sr") {
            f.sr_encoded = std::string(v);
            f.resource = *decoded;
            sr = true;
        } else if (k == "sig") {
            f.signature = *decoded;
            sig = true;
        } else if (k == "se") {
            if (!parse_int(std::string_view(*decoded), f.expiry)) return std::nullopt;
            se = true;
        } else if (k == "skn") {
            f.key_name = *decoded;
            skn = true;
        }
    }
    if (!(sr && sig && se && skn)) return std::nullopt;
    return f;
}

std::string_view to_string(sas_verdict v) noexcept {
    switch (v) {
        case sas_verdict::ok:
            return "ok";
        case sas_verdict::malformed:
            return "malformed token";
        case sas_verdict::unknown_key:
            return "unknown key name";
        case sas_verdict::bad_signature:
            return "signature does not match";
        case sas_verdict::expired:
            return "token expired";
        case sas_verdict::wrong_audience:
            return "token not valid for this entity";
    }
    return "?";
}

sas_verdict verify_sas_token(std::string_view token, std::string_view audience,
                             std::string_view key_name, std::string_view key,
                             std::int64_t now_unix_s) {
    auto f = parse_sas_token(token);
    if (!f) return sas_verdict::malformed;
    if (f->key_name != key_name) return sas_verdict::unknown_key;
    // HMAC over sr exactly as it appears in the token, whatever encoding style the client used.
    const std::string expected =
        base64_encode(hmac_sha256(key, f->sr_encoded + "\n" + std::to_string(f->expiry)));
    if (!constant_time_equal(expected, f->signature)) return sas_verdict::bad_signature;
    if (f->expiry <= now_unix_s) return sas_verdict::expired;
    // Valid for any resource the token's URI is a prefix of (case-insensitive, as hosts are).
    const std::string res = to_lower_ascii(f->resource), aud = to_lower_ascii(audience);
    if (aud.compare(0, res.size(), res) != 0) return sas_verdict::wrong_audience;
    return sas_verdict::ok;
}

std::int64_t sas_renew_at(std::int64_t issued_unix_s, std::int64_t expiry_unix_s) {
    const std::int64_t life = std::max<std::int64_t>(expiry_unix_s - issued_unix_s, 0);
    return issued_unix_s + std::max<std::int64_t>(life * 9 / 10, 1);
}

// ---- positions --------------------------------------------------------------------------------

namespace {
constexpr std::string_view seq_field = "amqp.annotation.x-opt-sequence-number";
constexpr std::string_view offset_field = "amqp.annotation.x-opt-offset";
constexpr std::string_view time_field = "amqp.annotation.x-opt-enqueued-time";
}  // namespace

std::string selector_expression(const start_position& p) {
    const std::string op = p.inclusive ? " >= '" : " > '";
    switch (p.what) {
        case start_position::kind::sequence_number:
            return std::string(seq_field) + op + std::to_string(p.sequence_number) + "'";
        case start_position::kind::offset:
            return std::string(offset_field) + op + p.offset + "'";
        case start_position::kind::enqueued_time:
            return std::string(time_field) + op + std::to_string(p.enqueued_ms) + "'";
        case start_position::kind::start_of_stream:
            return std::string(offset_field) + " > '-1'";
        case start_position::kind::latest:
            return std::string(offset_field) + " > '@latest'";
    }
    return {};
}

std::optional<start_position> parse_selector_expression(std::string_view expr) {
    expr = trim(expr);
    start_position p;
    std::string_view field;
    for (auto f : {seq_field, offset_field, time_field}) {
        if (expr.substr(0, f.size()) == f) field = f;
    }
    if (field.empty()) return std::nullopt;
    expr = trim(expr.substr(field.size()));
    if (expr.substr(0, 2) == ">=") {
        p.inclusive = true;
        expr.remove_prefix(2);
    } else if (expr.substr(0, 1) == ">") {
        expr.remove_prefix(1);
    } else {
        return std::nullopt;
    }
    expr = trim(expr);
    if (expr.size() < 2 || expr.front() != '\'' || expr.back() != '\'') return std::nullopt;
    const std::string_view v = expr.substr(1, expr.size() - 2);
    if (field == seq_field) {
        p.what = start_position::kind::sequence_number;
        if (!parse_int(v, p.sequence_number)) return std::nullopt;
    } else if (field == time_field) {
        p.what = start_position::kind::enqueued_time;
        if (!parse_int(v, p.enqueued_ms)) return std::nullopt;
    } else if (v == "-1") {
        p.what = start_position::kind::start_of_stream;
    } else if (v == "@latest") {
        p.what = start_position::kind::latest;
    } else {
        p.what = start_position::kind::offset;
        if (v.empty()) return std::nullopt;
        p.offset = std::string(v);
    }
    return p;
}

std::string partition_address(std::string_view hub, std::string_view group,
                              std::string_view partition) {
    return std::string(hub) + "/ConsumerGroups/" + std::string(group) + "/Partitions/" +
           std::string(partition);
}

std::optional<partition_ref> parse_partition_address(std::string_view address) {
    std::vector<std::string_view> parts;
    while (true) {
        const auto slash = address.find('/');
        parts.push_back(address.substr(0, slash));
        if (slash == std::string_view::npos) break;
        address.remove_prefix(slash + 1);
    }
    if (parts.size() != 5 || !iequals_ascii(parts[1], "ConsumerGroups") ||
        !iequals_ascii(parts[3], "Partitions") || parts[0].empty() || parts[2].empty() ||
        parts[4].empty())
        return std::nullopt;
    return partition_ref{std::string(parts[0]), std::string(parts[2]), std::string(parts[4])};
}

std::string eventhub_checkpoint_key(std::string_view hub, std::string_view partition) {
    return "eventhub:" + std::string(hub) + ":" + std::string(partition);
}

std::string encode_checkpoint(const eventhub_checkpoint& c) {
    nlohmann::json j = {{"sequence_number", c.sequence_number},
                        {"offset", c.offset},
                        {"enqueued_ms", c.enqueued_ms}};
    // The offset is the broker's text and only informational (resume_position() uses the
    // sequence number): bytes that are not UTF-8 are replaced rather than thrown on, which would
    // stop the source at every commit of that message.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<eventhub_checkpoint> decode_checkpoint(std::string_view text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    auto seq = j.find("sequence_number");
    if (seq == j.end() || !seq->is_number_integer()) return std::nullopt;
    eventhub_checkpoint c;
    c.sequence_number = seq->get<std::int64_t>();
    if (c.sequence_number < -1) return std::nullopt;
    if (auto o = j.find("offset"); o != j.end() && o->is_string()) c.offset = o->get<std::string>();
    if (auto t = j.find("enqueued_ms"); t != j.end() && t->is_number_integer())
        c.enqueued_ms = t->get<std::int64_t>();
    return c;
}

start_position resume_position(const std::optional<eventhub_checkpoint>& saved, micros now,
                               std::chrono::seconds lookback) {
    start_position p;
    if (saved && saved->sequence_number >= 0) {
        p.what = start_position::kind::sequence_number;
        p.sequence_number = saved->sequence_number;
        return p;
    }
    p.what = start_position::kind::enqueued_time;
    p.enqueued_ms =
        now / 1000 - std::chrono::duration_cast<std::chrono::milliseconds>(lookback).count();
    return p;
}

bool usable(const message_position& p) noexcept {
    return p.sequence_number.has_value() && *p.sequence_number >= 0;
}

void advance(eventhub_checkpoint& cp, const message_position& p) {
    if (!usable(p) || *p.sequence_number < cp.sequence_number) return;
    cp.sequence_number = *p.sequence_number;
    cp.offset = p.offset.value_or("");
    cp.enqueued_ms = p.enqueued_ms.value_or(0);
}

std::string_view to_string(sequence_gap::cause c) noexcept {
    return c == sequence_gap::cause::reset ? "reset" : "retention";
}

attach_plan plan_attach(const std::optional<eventhub_checkpoint>& after,
                        const std::optional<partition_info>& info, micros now,
                        std::chrono::seconds lookback) {
    attach_plan plan;
    plan.from = resume_position(after, now, lookback);
    if (!after || after->sequence_number < 0) return plan;  // by enqueued time: nothing to check
    const std::int64_t n = after->sequence_number;
    plan.expect_next = n + 1;
    plan.last_read_ms = after->enqueued_ms;
    if (!info) return plan;  // no runtime info: the first delivery still tells
    if (n > info->last_sequence) {
        // Past the end: this is not the stream the checkpoint was taken in.
        sequence_gap g;
        g.why = sequence_gap::cause::reset;
        g.first = n + 1;
        g.from_ms = after->enqueued_ms;
        g.checkpoint = n;
        g.resumed_at = info->empty ? info->last_sequence + 1 : info->begin_sequence;
        plan.lost = g;
        plan.from = start_position{};
        plan.from.what = start_position::kind::sequence_number;
        plan.from.sequence_number = g.resumed_at;
        plan.from.inclusive = true;
        plan.expect_next = g.resumed_at;
        plan.last_read_ms = 0;
        return plan;
    }
    // Retention removed everything after n: no delivery will come to show it, say it now.
    const bool gone = info->empty || info->begin_sequence > info->last_sequence;
    if (gone && info->last_sequence > n) {
        sequence_gap g;
        g.first = n + 1;
        g.last = info->last_sequence;
        g.from_ms = after->enqueued_ms;
        g.to_ms = info->last_enqueued_ms;
        plan.lost = g;
        plan.expect_next = info->last_sequence + 1;
    }
    return plan;
}

std::optional<sequence_gap> observe_delivery(std::int64_t& expect_next, std::int64_t& last_read_ms,
                                             const message_position& p) {
    if (!usable(p)) {
        // Without a sequence number nothing can be said about this one or the next: the next
        // usable delivery sets the pace again (never a false alarm).
        expect_next = -1;
        return std::nullopt;
    }
    const std::int64_t seq = *p.sequence_number;
    std::optional<sequence_gap> gap;
    if (expect_next >= 0 && seq < expect_next) return std::nullopt;  // a repeat
    if (expect_next >= 0 && seq > expect_next) {
        sequence_gap g;
        g.first = expect_next;
        g.last = seq - 1;
        g.from_ms = last_read_ms;
        g.to_ms = p.enqueued_ms.value_or(0);
        gap = g;
    }
    expect_next = seq + 1;
    last_read_ms = p.enqueued_ms.value_or(0);
    return gap;
}

std::optional<std::int64_t> stolen_by_epoch(std::string_view d) {
    // The service's texts: "New receiver 'x' with higher epoch of '9' is created ...", "At least
    // one receiver for the endpoint is created with epoch of '9' ...", "Receiver 'x' with a
    // higher epoch '9' already exists ...".
    for (std::string_view marker : {"higher epoch of '", "with epoch of '", "higher epoch '"}) {
        const auto at = d.find(marker);
        if (at == std::string_view::npos) continue;
        std::string_view rest = d.substr(at + marker.size());
        const auto end = rest.find('\'');
        std::int64_t v = 0;
        if (end != std::string_view::npos && parse_int(rest.substr(0, end), v)) return v;
    }
    return std::nullopt;
}

std::string_view trim_body(std::string_view body) noexcept {
    if (body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);
    return trim(body);
}

// ---- error policy -----------------------------------------------------------------------------

amqp_error_class classify_amqp_error(std::string_view c) noexcept {
    if (c == "com.microsoft:server-busy" || c == "amqp:resource-limit-exceeded")
        return amqp_error_class::busy;
    if (c == "amqp:link:stolen") return amqp_error_class::stolen;
    if (c == "amqp:unauthorized-access") return amqp_error_class::unauthorized;
    if (c == "com.microsoft:argument-out-of-range") return amqp_error_class::out_of_range;
    if (c == "com.microsoft:auth-failed" || c == "amqp:not-found" ||
        c == "com.microsoft:entity-disabled" || c == "com.microsoft:argument-error" ||
        c == "com.microsoft:precondition-failed")
        return amqp_error_class::fatal;
    return amqp_error_class::transient;  // detach-forced, connection:forced, timeouts, transport
}

std::string_view to_string(amqp_error_class c) noexcept {
    switch (c) {
        case amqp_error_class::transient:
            return "transient";
        case amqp_error_class::busy:
            return "busy";
        case amqp_error_class::stolen:
            return "stolen";
        case amqp_error_class::fatal:
            return "fatal";
        case amqp_error_class::unauthorized:
            return "unauthorized";
        case amqp_error_class::out_of_range:
            return "out of range";
    }
    return "?";
}

// ---- stuck partitions -------------------------------------------------------------------------

bool stuck_detector::observe(std::int64_t committed, std::int64_t last_enqueued, micros now) {
    if (committed != last_committed_) {
        // Progress (or the first observation) restarts the clock.
        last_committed_ = committed;
        behind_since_ = last_enqueued > committed ? now : 0;
        stuck_ = false;
        return false;
    }
    if (last_enqueued <= committed) {
        behind_since_ = 0;
        stuck_ = false;
        return false;
    }
    if (behind_since_ == 0) behind_since_ = now;
    stuck_ = now - behind_since_ >= after_;
    return stuck_;
}

}  // namespace glasswatch::core
