#include "lab/lab_sinks.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>

namespace glasswatch::lab {

using json = nlohmann::json;
using test::server_request;
using test::server_response;

namespace {

std::string header_of(const server_request& r, std::string_view name) {
    for (const auto& [k, v] : r.headers) {
        if (k.size() != name.size()) continue;
        bool eq = true;
        for (std::size_t i = 0; i < k.size(); ++i)
            if (std::tolower(static_cast<unsigned char>(k[i])) !=
                std::tolower(static_cast<unsigned char>(name[i])))
                eq = false;
        if (eq) return v;
    }
    return {};
}

std::string url_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+')
            out += ' ';
        else if (s[i] == '%' && i + 2 < s.size()) {
            out += static_cast<char>(
                std::strtol(std::string(s.substr(i + 1, 2)).c_str(), nullptr, 16));
            i += 2;
        } else
            out += s[i];
    }
    return out;
}

std::map<std::string, std::string> parse_form(std::string_view body) {
    std::map<std::string, std::string> out;
    std::size_t pos = 0;
    while (pos <= body.size()) {
        auto amp = body.find('&', pos);
        if (amp == std::string_view::npos) amp = body.size();
        auto kv = body.substr(pos, amp - pos);
        auto eq = kv.find('=');
        if (!kv.empty())
            out[url_decode(kv.substr(0, eq))] =
                eq == std::string_view::npos ? "" : url_decode(kv.substr(eq + 1));
        pos = amp + 1;
    }
    return out;
}

std::string b64(const unsigned char* p, std::size_t n) {
    std::string out(4 * ((n + 2) / 3) + 1, '\0');
    int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p, static_cast<int>(n));
    out.resize(static_cast<std::size_t>(len));
    return out;
}

bool b64_decode(std::string_view in, std::string& out) {
    if (in.size() % 4) return false;
    out.assign(in.size() / 4 * 3 + 1, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    if (n < 0) return false;
    std::size_t len = static_cast<std::size_t>(n);
    if (!in.empty() && in.back() == '=') --len;
    if (in.size() > 1 && in[in.size() - 2] == '=') --len;
    out.resize(len);
    return true;
}

server_response json_response(int status, const json& body) {
    server_response r;
    r.status = status;
    r.body = body.dump();
    return r;
}

std::string rfc2822(std::int64_t us) {
    std::time_t t = static_cast<std::time_t>(us / 1000000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return buf;
}

std::string twilio_error(int code, const std::string& msg) {
    return json{{"code", code},
                {"message", msg},
                {"more_info", "https://www.twilio.com/docs/errors/" + std::to_string(code)}}
        .dump();
}

}  // namespace

sink_receivers::sink_receivers(sink_receiver_options opts) : opts_(std::move(opts)) {}

bool sink_receivers::owns(const std::string& path) {
    return path == "/v2/enqueue" || path.rfind("/2010-04-01/", 0) == 0 ||
           path.rfind("/hooks/", 0) == 0 || path.rfind("/ping/", 0) == 0 || path == "/lab/sinks" ||
           path == "/lab/sink_faults" || path == "/lab/sinks_reset";
}

bool sink_receivers::take_fault(fault& f, server_response& out, bool accepted) {
    if (!f.active()) return false;
    // Before the request is validated and recorded every fault but accept_then_drop applies;
    // after it, only accept_then_drop (each request meets the fault once, so `skip` counts it
    // once).
    if ((f.transport == "accept_then_drop") != accepted) return false;
    if (f.skip > 0) {
        --f.skip;
        return false;
    }
    if (f.status != 0) {
        out.status = f.status;
        if (!f.retry_after.empty()) out.headers.push_back({"Retry-After", f.retry_after});
        out.body = json{{"status", "error"},
                        {"message", "lab fault"},
                        {"errors", json::array({"injected"})}}
                       .dump();
    }
    if (f.transport == "hang")
        out.what = server_response::fault::hang;
    else if (f.transport == "reset" || f.transport == "accept_then_drop")
        out.what = server_response::fault::reset;
    if (f.remaining > 0 && --f.remaining == 0) f = fault{};
    return true;
}

server_response sink_receivers::handle(const server_request& req, std::int64_t now) {
    ++requests_;
    std::string path = req.target.substr(0, req.target.find('?'));
    if (path == "/lab/sinks") return json_response(200, recorded());
    if (path == "/lab/sinks_reset") {
        reset();
        return json_response(200, json::object());
    }
    if (path == "/lab/sink_faults") {
        std::string err;
        auto j = json::parse(req.body, nullptr, false);
        if (j.is_discarded() || !set_faults(j, err))
            return json_response(400, json{{"error", err.empty() ? "bad JSON" : err}});
        return json_response(200, json::object());
    }
    if (path == "/v2/enqueue") {
        server_response r = pagerduty(req, now);
        log("pagerduty", req, r, now);
        return r;
    }
    if (path.rfind("/2010-04-01/", 0) == 0) {
        server_response r = twilio(req, now);
        log("twilio", req, r, now);
        return r;
    }
    if (path.rfind("/ping/", 0) == 0) {
        // A Healthchecks.io-style dead-man switch: /ping/<uuid> = alive, /ping/<uuid>/fail =
        // alive but unhealthy. Any method; the answer is a plain "OK".
        const std::string rest = path.substr(6);
        const bool fail = rest.size() > 5 && rest.compare(rest.size() - 5, 5, "/fail") == 0;
        pings_.push_back({{"check", fail ? rest.substr(0, rest.size() - 5) : rest},
                          {"fail", fail},
                          {"body", req.body},
                          {"at_us", now}});
        server_response out;
        out.content_type = "text/plain";
        out.body = "OK";
        return out;
    }
    server_response r = webhook(req, now);
    log("webhook", req, r, now);
    return r;
}

void sink_receivers::log(const char* service, const server_request& req, const server_response& r,
                         std::int64_t now) {
    const bool answered = r.what == server_response::fault::none;
    log_.push_back({{"service", service},
                    {"method", req.method},
                    {"path", req.target.substr(0, req.target.find('?'))},
                    {"status", answered ? r.status : 0},
                    {"at_us", now}});
}

server_response sink_receivers::pagerduty(const server_request& req, std::int64_t now) {
    server_response out;
    auto bad = [&](std::string status, std::string message, std::string error) {
        ++rejected_;
        return json_response(
            400, json{{"status", status}, {"message", message}, {"errors", json::array({error})}});
    };
    if (req.method != "POST")
        return json_response(405, json{{"status", "error"}, {"message", "method not allowed"}});
    if (!pd_fault_.transport.empty() && pd_fault_.transport != "accept_then_drop" &&
        take_fault(pd_fault_, out, false))
        return out;
    if (pd_fault_.status != 0 && take_fault(pd_fault_, out, false)) return out;
    if (req.body.size() > 512 * 1024)
        return bad("Request too large", "Payload exceeds 512KB", "payload too large");
    auto j = json::parse(req.body, nullptr, false);
    if (!j.is_object())
        return bad("Unrecognized object", "Event object is invalid", "JSON parse error");
    if (!j.contains("routing_key") || !j["routing_key"].is_string() ||
        j["routing_key"].get<std::string>().size() != 32)
        return bad("invalid event", "Event object is invalid",
                   "'routing_key' is missing or invalid (must be 32 characters)");
    if (j["routing_key"] != opts_.pagerduty_routing_key)
        return bad("invalid event", "Event object is invalid",
                   "'routing_key' does not match an integration");
    std::string action = j.value("event_action", "");
    if (action != "trigger" && action != "acknowledge" && action != "resolve")
        return bad("invalid event", "Event object is invalid", "'event_action' is invalid");
    std::string dedup = j.value("dedup_key", "");
    if (dedup.size() > 255)
        return bad("invalid event", "Event object is invalid", "'dedup_key' is longer than 255");
    if (action == "trigger") {
        if (!j.contains("payload") || !j["payload"].is_object())
            return bad("invalid event", "Event object is invalid", "'payload' is missing");
        auto& p = j["payload"];
        if (!p.contains("summary") || !p["summary"].is_string() ||
            p["summary"].get<std::string>().empty())
            return bad("invalid event", "Event object is invalid", "'payload.summary' is missing");
        if (p["summary"].get<std::string>().size() > 1024)
            return bad("invalid event", "Event object is invalid",
                       "'payload.summary' is longer than 1024");
        if (!p.contains("source") || !p["source"].is_string() ||
            p["source"].get<std::string>().empty())
            return bad("invalid event", "Event object is invalid", "'payload.source' is missing");
        std::string sev = p.value("severity", "");
        if (sev != "critical" && sev != "error" && sev != "warning" && sev != "info")
            return bad(
                "invalid event", "Event object is invalid",
                "'payload.severity' is invalid (must be one of: critical, error, warning, info)");
        if (dedup.empty()) dedup = "pd-" + std::to_string(now);
    } else if (dedup.empty()) {
        return bad("invalid event", "Event object is invalid",
                   "'dedup_key' is required for " + action);
    }
    j["received_at_us"] = now;
    pd_events_.push_back(j);
    if (action == "trigger") ++pd_incidents_[dedup];
    if (take_fault(pd_fault_, out, true)) return out;  // accept_then_drop
    return json_response(
        202, json{{"status", "success"}, {"message", "Event processed"}, {"dedup_key", dedup}});
}

json sink_receivers::sms_resource(const sms& m, std::int64_t now) const {
    double age = static_cast<double>(now - m.created_us) / 1e6;
    std::string status = "queued";
    json error_code = nullptr;
    auto per = twilio_delivery_to_.find(m.to);
    const std::string& outcome = per != twilio_delivery_to_.end() ? per->second : twilio_delivery_;
    if (outcome == "stuck")
        status = "queued";
    else if (age >= opts_.sms_delivered_after_s) {
        // The carrier's verdict: 30003 unreachable handset, 30006 landline or unreachable carrier.
        status = outcome == "undelivered" || outcome == "failed" ? outcome : "delivered";
        if (status == "undelivered") error_code = 30003;
        if (status == "failed") error_code = 30006;
    } else if (age >= opts_.sms_sent_after_s) {
        status = "sent";
    }
    std::string base = "/2010-04-01/Accounts/" + opts_.twilio_account_sid + "/Messages/" + m.sid;
    return json{{"account_sid", opts_.twilio_account_sid},
                {"api_version", "2010-04-01"},
                {"body", m.body},
                {"date_created", rfc2822(m.created_us)},
                {"date_sent", status == "queued" ? json(nullptr) : json(rfc2822(m.created_us))},
                {"date_updated", rfc2822(now)},
                {"direction", "outbound-api"},
                {"error_code", error_code},
                {"error_message", nullptr},
                {"from", m.from.empty() ? json(nullptr) : json(m.from)},
                {"messaging_service_sid", m.service.empty() ? json(nullptr) : json(m.service)},
                {"num_media", "0"},
                {"num_segments", "1"},
                {"price", nullptr},
                {"price_unit", nullptr},
                {"sid", m.sid},
                {"status", status},
                {"subresource_uris", {{"media", base + "/Media.json"}}},
                {"to", m.to},
                {"uri", base + ".json"}};
}

server_response sink_receivers::twilio(const server_request& req, std::int64_t now) {
    server_response out;
    const std::string path = req.target.substr(0, req.target.find('?'));
    const std::string prefix = "/2010-04-01/Accounts/" + opts_.twilio_account_sid + "/Messages";
    auto err = [&](int status, int code, const std::string& msg) {
        ++rejected_;
        server_response r;
        r.status = status;
        json j = json::parse(twilio_error(code, msg));
        j["status"] = status;
        r.body = j.dump();
        return r;
    };
    if (path.rfind(prefix, 0) != 0) return err(404, 20404, "The requested resource was not found");
    // HTTP Basic: Account SID (or an API key SID) and the auth token / key secret.
    std::string auth = header_of(req, "authorization"), decoded;
    bool authed = auth.rfind("Basic ", 0) == 0 && b64_decode(auth.substr(6), decoded) &&
                  decoded.substr(decoded.find(':') + 1) == opts_.twilio_auth_token &&
                  (decoded.rfind("AC", 0) == 0 || decoded.rfind("SK", 0) == 0);
    if (!authed) return err(401, 20003, "Authenticate");
    if (req.method == "GET") {
        std::string rest = path.substr(prefix.size());
        if (rest == ".json") {
            std::string to;
            auto q = req.target.find("To=");
            if (q != std::string::npos)
                to = url_decode(req.target.substr(q + 3, req.target.find('&', q) - q - 3));
            // Newest first, one page of PageSize (default 50, at most 1000) as Twilio serves it:
            // an older message is not on the first page.
            std::size_t page_size = 50;
            if (auto p = req.target.find("PageSize="); p != std::string::npos)
                page_size = std::clamp<std::size_t>(
                    static_cast<std::size_t>(std::atol(req.target.c_str() + p + 9)), 1, 1000);
            json list = json::array();
            for (auto it = sms_.rbegin(); it != sms_.rend() && list.size() < page_size; ++it)
                if (to.empty() || it->to == to) list.push_back(sms_resource(*it, now));
            return json_response(
                200,
                json{{"messages", list}, {"page", 0}, {"page_size", static_cast<int>(page_size)}});
        }
        for (const auto& m : sms_)
            if (rest == "/" + m.sid + ".json") return json_response(200, sms_resource(m, now));
        return err(404, 20404, "The requested resource " + path + " was not found");
    }
    if (path != prefix + ".json" || req.method != "POST")
        return err(405, 20004, "Method not allowed");
    if (tw_fault_.active() && tw_fault_.transport != "accept_then_drop" &&
        take_fault(tw_fault_, out, false)) {
        if (out.status == 429) out.body = twilio_error(20429, "Too Many Requests");
        return out;
    }
    auto form = parse_form(req.body);
    if (form["To"].empty()) return err(400, 21604, "A 'To' phone number is required.");
    if (form["To"].size() < 8 || form["To"][0] != '+')
        return err(400, 21211, "The 'To' number " + form["To"] + " is not a valid phone number.");
    if (form["From"].empty() && form["MessagingServiceSid"].empty())
        return err(400, 21603, "A 'From' phone number is required.");
    if (form["Body"].empty()) return err(400, 21602, "Message body is required.");
    if (form["Body"].size() > 1600)
        return err(400, 21617, "The concatenated message body exceeds the 1600 character limit.");
    static std::mt19937_64 rng(42);
    char sid[40];
    std::snprintf(sid, sizeof sid, "SM%016llx%016llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng()));
    sms m{sid, form["To"], form["From"], form["MessagingServiceSid"], form["Body"], now};
    sms_.push_back(m);
    if (take_fault(tw_fault_, out, true)) return out;  // accept_then_drop
    return json_response(201, sms_resource(m, now));
}

server_response sink_receivers::webhook(const server_request& req, std::int64_t now) {
    server_response out;
    if (req.method != "POST") return json_response(405, json{{"error", "method not allowed"}});
    if (wh_fault_.active() && wh_fault_.transport != "accept_then_drop" &&
        take_fault(wh_fault_, out, false))
        return out;
    const std::string id = header_of(req, "webhook-id"), ts = header_of(req, "webhook-timestamp"),
                      sigs = header_of(req, "webhook-signature");
    auto reject = [&](const std::string& why) {
        ++rejected_;
        server_response r;
        r.status = 401;
        r.body = json{{"error", why}}.dump();
        return r;
    };
    if (id.empty() || ts.empty() || sigs.empty())
        return reject("missing webhook-id/timestamp/signature");
    long long t = std::atoll(ts.c_str());
    if (std::llabs(t - now / 1000000) > 300)
        return reject("timestamp outside the 5 minute tolerance");
    std::string key, secret = opts_.webhook_secret;
    if (secret.rfind("whsec_", 0) == 0) secret = secret.substr(6);
    if (!b64_decode(secret, key)) key = opts_.webhook_secret;
    std::string content = id + "." + ts + "." + req.body;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &mac_len);
    const std::string expected = "v1," + b64(mac, mac_len);
    bool ok = false;
    std::size_t pos = 0;
    while (pos < sigs.size()) {  // space-separated list, any v1 entry may match
        auto sp = sigs.find(' ', pos);
        std::string one = sigs.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos);
        if (one.size() == expected.size() &&
            CRYPTO_memcmp(one.data(), expected.data(), one.size()) == 0)
            ok = true;
        if (sp == std::string::npos) break;
        pos = sp + 1;
    }
    if (!ok) return reject("no matching signature");
    auto body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return reject("body is not JSON");
    json rec = {{"path", req.target},
                {"id", id},
                {"timestamp", t},
                {"body", body},
                {"received_at_us", now}};
    json hdrs = json::object();
    for (const auto& [k, v] : req.headers)
        if (k.rfind("x-", 0) == 0 || k == "idempotency-key") hdrs[k] = v;
    rec["headers"] = hdrs;
    hooks_.push_back(rec);
    ++hook_ids_[id];
    if (take_fault(wh_fault_, out, true)) return out;
    server_response r;
    r.status = 204;
    r.content_type.clear();
    return r;
}

bool sink_receivers::set_faults(const json& f, std::string& error) {
    if (!f.is_object()) {
        error = "expected an object";
        return false;
    }
    for (auto& [k, v] : f.items()) {
        fault* target = k == "pagerduty" ? &pd_fault_
                        : k == "twilio"  ? &tw_fault_
                        : k == "webhook" ? &wh_fault_
                                         : nullptr;
        if (k == "twilio_delivery") {
            if (!v.is_string()) {
                error = "twilio_delivery: expected a string";
                return false;
            }
            twilio_delivery_ = v.get<std::string>();
            continue;
        }
        if (k == "twilio_delivery_to") {
            if (!v.is_object()) {
                error = "twilio_delivery_to: expected an object of number -> outcome";
                return false;
            }
            twilio_delivery_to_.clear();
            for (auto& [number, outcome] : v.items()) {
                if (!outcome.is_string()) {
                    error = "twilio_delivery_to: expected strings";
                    return false;
                }
                twilio_delivery_to_[number] = outcome.get<std::string>();
            }
            continue;
        }
        if (k == "tls") {
            // Applies to the whole receivers port (TLS is negotiated before any path is known).
            const std::string t = v.is_string() ? v.get<std::string>() : "";
            if (t == "none")
                tls_fault_ = test::https_server::tls_fault::none;
            else if (t == "untrusted_certificate")
                tls_fault_ = test::https_server::tls_fault::untrusted_certificate;
            else if (t == "not_tls")
                tls_fault_ = test::https_server::tls_fault::not_tls;
            else {
                error = "tls: expected \"none\", \"untrusted_certificate\" or \"not_tls\"";
                return false;
            }
            continue;
        }
        if (!target || !v.is_object()) {
            error = "unknown fault key " + k;
            return false;
        }
        fault nf;
        nf.status = v.value("status", 0);
        nf.remaining = v.value("count", 0);
        nf.skip = v.value("skip", 0);
        nf.retry_after = v.value("retry_after", "");
        nf.transport = v.value("transport", "");
        *target = nf;
    }
    return true;
}

void sink_receivers::reset() {
    pd_fault_ = tw_fault_ = wh_fault_ = fault{};
    tls_fault_ = test::https_server::tls_fault::none;
    twilio_delivery_ = "delivered";
    twilio_delivery_to_.clear();
    log_ = json::array();
    pd_events_ = json::array();
    pd_incidents_.clear();
    sms_.clear();
    hooks_ = json::array();
    hook_ids_.clear();
    pings_ = json::array();
    rejected_ = requests_ = 0;
}

json sink_receivers::recorded() const {
    json texts = json::array();
    for (const auto& m : sms_)
        texts.push_back(
            {{"sid", m.sid}, {"to", m.to}, {"body", m.body}, {"created_us", m.created_us}});
    json incidents = json::object();
    for (const auto& [k, n] : pd_incidents_)
        incidents[k] = n;
    json ids = json::object();
    for (const auto& [k, n] : hook_ids_)
        ids[k] = n;
    return json{{"pagerduty", pd_events_},
                {"pagerduty_incidents", incidents},
                {"twilio", texts},
                {"webhook", hooks_},
                {"webhook_ids", ids},
                {"pings", pings_},
                {"rejected", rejected_},
                {"requests", requests_},
                {"log", log_}};
}

}  // namespace glasswatch::lab
