// The HTTP sinks: PagerDuty Events v2, Twilio Messages (with delivery confirmation), and
// signed webhooks. Each turns an outbox row into one or more HTTPS requests and classifies the
// answer (core/sink_payloads); the delivery engine owns retries and bookkeeping.
#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <chrono>
#include <nlohmann/json.hpp>

#include "core/alerting/sink_payloads.hpp"
#include "core/base/backoff.hpp"
#include "core/base/json_text.hpp"
#include "core/protocol/graph_query.hpp"
#include "io/base/failpoint.hpp"
#include "io/base/secrets.hpp"
#include "io/delivery/delivery.hpp"
#include "io/net/https_client.hpp"

namespace glasswatch::io {

namespace {

using core::sink_verdict;

https_client_options client_options(const core::sink_config& cfg) {
    https_client_options o;
    o.ca_file = cfg.ca_file;
    o.request_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.request_timeout);
    o.connect_timeout = std::min(o.request_timeout, std::chrono::milliseconds(10000));
    o.max_body_bytes = 1u << 20;
    return o;
}

// Consecutive certificate-verification failures after which a sink counts as broken: one can
// be a half-deployed certificate, three in a row (back-off between them) is a wrong CA, a wrong
// host name or an interception proxy, and retrying in silence would hide it.
constexpr int tls_verify_failures_to_break = 3;

// What every HTTP sink shares: its configuration, its client, and the one door every request
// to the service goes through (send), which keeps the service's gate.
class http_sink : public sink {
public:
    http_sink(runtime& rt, core::sink_config cfg)
        : rt_(rt), cfg_(std::move(cfg)), http_(rt.main().get_executor(), client_options(cfg_)) {}
    const core::sink_config& config() const noexcept override { return cfg_; }

protected:
    // Nothing leaves while the service said wait; every answer updates the gate: a 429/503
    // Retry-After (seconds, or an HTTP-date read against the answer's own Date) or a 5xx /
    // transport failure holds every later request, new alerts, status polls and look-ups alike.
    asio::awaitable<http_result> send(http_request req) {
        const core::micros now = steady_micros();
        if (!gate_.is_open(now)) {
            http_result held;
            held.error = http_error::cancelled;
            held.message = "held: " + cfg_.name + " asked to wait another " +
                           core::format_duration((gate_.open_at() - now) / 1000);
            co_return held;
        }
        http_result r = co_await http_.request(std::move(req));
        const core::micros after = steady_micros();
        if (!r.ok()) {
            tls_failures_ = r.error == http_error::tls_verify ? tls_failures_ + 1 : 0;
            if (is_transient(r.error)) gate_.on_failure(after, rt_.jitter(), std::nullopt);
            co_return r;
        }
        tls_failures_ = 0;
        if (core::verdict_for_status(r.response.status) == core::sink_verdict::transient) {
            auto ra = core::parse_retry_after(r.response.header("retry-after"),
                                              r.response.header("date"), wall_now());
            const auto wait = gate_.on_failure(after, rt_.jitter(), ra);
            spdlog::debug("sink {}: HTTP {}{}; every request to it waits {}", cfg_.name,
                          r.response.status, ra ? " with Retry-After" : "",
                          core::format_duration(wait.count()));
        } else {
            gate_.on_answer();
        }
        co_return r;
    }

    // A request that got no answer. Held (never sent) and transport errors are retried; a
    // certificate that keeps failing verification is a broken sink, not a passing fault.
    sink_outcome failure(const http_result& r) const {
        sink_outcome o;
        o.error = std::string(to_string(r.error)) + ": " + r.message;
        if (r.error == http_error::cancelled) {
            o.what = sink_outcome::kind::held;
            o.error = r.message;
        } else if (r.error == http_error::tls_verify &&
                   tls_failures_ >= tls_verify_failures_to_break) {
            o.what = sink_outcome::kind::permanent;
            o.cause = "tls_verify";
            o.holds = true;
            o.error += " (" + std::to_string(tls_failures_) + " attempts in a row)";
        } else {
            o.what = is_transient(r.error) ? sink_outcome::kind::transient
                                           : sink_outcome::kind::permanent;
            if (o.what == sink_outcome::kind::permanent) {
                o.cause = std::string(to_string(r.error));
                o.holds = r.error == http_error::bad_url;  // the configured URL is unusable
            }
        }
        return o;
    }

    // A classified answer; a permanent one names its episode.
    static sink_outcome from_answer(const core::sink_answer& a, const http_response& resp,
                                    bool confirmed) {
        sink_outcome o;
        switch (a.verdict) {
            case sink_verdict::accepted:
                o.what = confirmed ? sink_outcome::kind::confirmed : sink_outcome::kind::accepted;
                break;
            case sink_verdict::transient:
                o.what = sink_outcome::kind::transient;
                break;
            case sink_verdict::permanent: {
                o.what = sink_outcome::kind::permanent;
                core::refusal why = core::refusal_for_status(resp.status);
                o.cause = why.cause;
                o.holds = why.holds;
                break;
            }
        }
        o.error = a.error;
        o.sink_ref = a.ref;
        if (o.what == sink_outcome::kind::transient)
            o.retry_after = core::parse_retry_after(resp.header("retry-after"), resp.header("date"),
                                                    wall_now());
        return o;
    }

    runtime& rt_;
    core::sink_config cfg_;
    https_client http_;
    int tls_failures_ = 0;  // consecutive tls_verify failures
};

// ---- PagerDuty ------------------------------------------------------------------------------

// A lost answer is re-sent: PagerDuty deduplicates on dedup_key (= the alert id).
class pagerduty_sink final : public http_sink {
public:
    pagerduty_sink(runtime& rt, core::sink_config cfg, std::string routing_key)
        : http_sink(rt, std::move(cfg)), key_(std::move(routing_key)) {}

    asio::awaitable<sink_outcome> deliver(const outbox_row& row) override {
        http_request req;
        req.method = "POST";
        req.url = cfg_.url;
        req.headers.push_back({"Content-Type", "application/json"});
        req.body = core::pagerduty_trigger(row.a, key_,
                                           cfg_.source.empty() ? row.a.tenant_id : cfg_.source);
        http_result r = co_await send(std::move(req));
        if (!r.ok()) co_return failure(r);
        // 202 means queued at PagerDuty: final from our side (PagerDuty owns the paging now).
        co_return from_answer(core::classify_pagerduty(r.response.status, r.response.body),
                              r.response, true);
    }

private:
    std::string key_;  // routing key: a secret, never logged
};

// ---- Webhook --------------------------------------------------------------------------------

// A lost answer is re-sent with the same webhook-id (= "msg_" + alert id), the receiver's
// idempotency key.
class webhook_sink final : public http_sink {
public:
    webhook_sink(runtime& rt, core::sink_config cfg, std::string secret)
        : http_sink(rt, std::move(cfg)), secret_(std::move(secret)) {}

    asio::awaitable<sink_outcome> deliver(const outbox_row& row) override {
        http_request req;
        req.method = "POST";
        req.url = cfg_.url;
        req.body = cfg_.slack_format ? core::slack_body(row.a) : core::webhook_body(row.a);
        const std::int64_t ts = wall_now() / 1000000;
        // The alert id is the Standard Webhooks message id: stable across retries, so the
        // receiver can use it as an idempotency key.
        const std::string msg_id = "msg_" + row.a.id;
        req.headers.push_back({"Content-Type", "application/json"});
        req.headers.push_back({"webhook-id", msg_id});
        req.headers.push_back({"webhook-timestamp", std::to_string(ts)});
        req.headers.push_back(
            {"webhook-signature", core::standard_webhook_signature(secret_, msg_id, ts, req.body)});
        req.headers.push_back({"Idempotency-Key", row.a.id});
        for (const auto& h : cfg_.headers)
            req.headers.push_back(h);
        http_result r = co_await send(std::move(req));
        if (!r.ok()) co_return failure(r);
        co_return from_answer(core::classify_webhook(r.response.status, r.response.body),
                              r.response, true);
    }

private:
    std::string secret_;
};

// ---- Twilio ---------------------------------------------------------------------------------

// Progress of one alert across recipients, kept in the outbox row's sink_ref so a retry after a
// partial success does not text anyone twice:
//   {"sent": {"+1555...": "SM..."}, "unsure": {"+1555...": <unix us of the ambiguous attempt>}}
struct sms_progress {
    std::map<std::string, std::string> sent;
    std::map<std::string, core::micros> unsure;
    // The text being sent. Kept so a retry of a grouped SMS sends (and looks for) the same text
    // even when more alerts joined the group meanwhile.
    std::string text;
    static sms_progress parse(const std::string& s) {
        sms_progress p;
        auto j = nlohmann::json::parse(s, nullptr, false);
        if (!j.is_object()) return p;
        if (j.contains("sent") && j["sent"].is_object())
            for (auto& [k, v] : j["sent"].items())
                if (v.is_string()) p.sent[k] = v.get<std::string>();
        if (j.contains("unsure") && j["unsure"].is_object())
            for (auto& [k, v] : j["unsure"].items())
                if (v.is_number_integer()) p.unsure[k] = v.get<core::micros>();
        if (j.contains("text") && j["text"].is_string()) p.text = j["text"].get<std::string>();
        return p;
    }
    std::string dump() const {
        nlohmann::json j = {{"sent", sent}, {"unsure", unsure}};
        // The text only matters once some recipient may have it.
        if (!text.empty() && (!sent.empty() || !unsure.empty())) j["text"] = text;
        return j.dump();
    }
};

// Twilio has no idempotency key: an SMS is never sent again unless it provably did not reach
// Twilio. Before each POST the recipient is marked "unsure" in the row, durably; the mark is
// lifted only by an answer. A row that still carries the mark (a lost answer, a kill -9 mid-send)
// is looked up in the message list before anything is sent to that recipient again.
class twilio_sink final : public http_sink {
public:
    twilio_sink(runtime& rt, core::sink_config cfg, std::string token)
        : http_sink(rt, std::move(cfg)), token_(std::move(token)) {
        std::string base = cfg_.api_base;
        while (!base.empty() && base.back() == '/')
            base.pop_back();
        messages_url_ = base + "/2010-04-01/Accounts/" + cfg_.account_sid + "/Messages";
        auth_ = core::basic_auth(cfg_.api_key_sid.empty() ? cfg_.account_sid : cfg_.api_key_sid,
                                 token_);
    }
    bool confirms_later() const noexcept override { return true; }

    std::chrono::milliseconds burst_window() const noexcept override {
        return std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.burst_window);
    }

    asio::awaitable<sink_outcome> deliver(const outbox_row& row) override {
        sms_progress p = sms_progress::parse(row.sink_ref);
        if (p.text.empty()) p.text = row.a.sms;
        std::vector<std::string> ids(1, row.alert_id);
        co_return co_await send_to_all(std::move(p), std::move(ids));
    }

    std::vector<outbox_row> group_of(const std::vector<outbox_row>& rows) const override {
        for (const auto& r : rows) {
            sms_progress p = sms_progress::parse(r.sink_ref);
            if (p.sent.empty() && p.unsure.empty()) continue;
            std::vector<outbox_row> same;
            for (const auto& o : rows)
                if (o.sink_ref == r.sink_ref) same.push_back(o);
            return same;
        }
        return rows;
    }

    // One SMS for a burst: the count and the latest alert. A row that already carries progress
    // (a grouped send that failed half-way) leads, so its recipients are not texted twice.
    asio::awaitable<sink_outcome> deliver_group(const std::vector<outbox_row>& rows) override {
        sms_progress p;
        for (const auto& r : rows) {
            sms_progress rp = sms_progress::parse(r.sink_ref);
            if (!rp.sent.empty() || !rp.unsure.empty()) {
                p = std::move(rp);
                break;
            }
        }
        if (p.text.empty()) p.text = core::sms_burst_text(rows.back().a.sms, rows.size());
        std::vector<std::string> ids;
        for (const auto& r : rows)
            ids.push_back(r.alert_id);
        co_return co_await send_to_all(std::move(p), std::move(ids));
    }

    // Delivery confirmation: every recipient's message is asked for (one undelivered number
    // does not hide the others'); any failed/undelivered one makes the whole row permanent at
    // once, with Twilio's error code, so the engine escalates without waiting.
    asio::awaitable<sink_outcome> check(const outbox_row& row) override {
        sms_progress p = sms_progress::parse(row.sink_ref);
        sink_outcome o;
        o.what = sink_outcome::kind::confirmed;
        std::string bad;
        for (const auto& [to, sid] : p.sent) {
            http_request req;
            req.url = messages_url_ + "/" + sid + ".json";
            req.headers.push_back({"Authorization", auth_});
            http_result r = co_await send(std::move(req));
            if (!r.ok() || r.response.status != 200) {
                if (o.what == sink_outcome::kind::confirmed) o.what = sink_outcome::kind::accepted;
                continue;  // unknown yet: ask again later
            }
            auto st = core::parse_twilio_message(r.response.body);
            if (!st) {
                if (o.what == sink_outcome::kind::confirmed) o.what = sink_outcome::kind::accepted;
                continue;
            }
            if (st->final_bad) {
                bad += (bad.empty() ? "" : "; ") + std::string("SMS ") + sid + " to " + masked(to) +
                       " " + st->status +
                       (st->error_code ? " (Twilio " + std::to_string(st->error_code) + ")"
                                       : std::string());
                continue;
            }
            if (!st->final_ok && o.what == sink_outcome::kind::confirmed)
                o.what = sink_outcome::kind::accepted;
        }
        if (!bad.empty()) {
            o.what = sink_outcome::kind::permanent;
            o.cause = "sms_undelivered";
            o.error = bad;
        }
        co_return o;
    }

private:
    // A phone number in logs and alerts: enough to tell recipients apart, not the whole number.
    static std::string masked(const std::string& number) {
        return number.size() <= 4 ? number : "..." + number.substr(number.size() - 4);
    }

    // Records the row's progress durably (before a request leaves).
    asio::awaitable<bool> persist(const std::vector<std::string>& ids, const sms_progress& p) {
        auto write = [ids, sink = cfg_.name, ref = p.dump()](store& db) {
            bool ok = true;
            for (const auto& id : ids)
                ok = db.set_sink_ref(id, sink, ref) && ok;
            return ok;
        };
        co_return co_await rt_.on_store(std::move(write));
    }

    asio::awaitable<sink_outcome> send_to_all(sms_progress p, std::vector<std::string> ids) {
        for (const auto& to : cfg_.to) {
            if (p.sent.count(to)) continue;
            // Per-number pacing: long codes deliver about one message per second.
            co_await pace(to);
            if (auto it = p.unsure.find(to); it != p.unsure.end()) {
                // An earlier attempt may have created the message (its answer was lost, or the
                // daemon died while it was in flight). Look before sending again.
                auto found = co_await find_sent(to, p.text, it->second);
                if (!found.ok) co_return unsure_outcome(p, found);
                p.unsure.erase(to);
                if (!found.sid.empty()) {
                    ++duplicates_avoided_;
                    spdlog::info(
                        "sink {}: SMS for {} to {} was already created ({}); not resending",
                        cfg_.name, ids.front(), masked(to), found.sid);
                    p.sent[to] = found.sid;
                    continue;
                }
            }
            // Intent before the request: if we die while it is in flight, the restart looks
            // the message up instead of texting the number a second time.
            p.unsure[to] = wall_now();
            if (!co_await persist(ids, p)) {
                sink_outcome o;
                o.what = sink_outcome::kind::transient;
                o.error = "cannot record the SMS attempt in the store; not sending";
                p.unsure.erase(to);
                o.sink_ref = p.dump();
                co_return o;
            }
            failpoint("after_sms_intent");
            http_request req;
            req.method = "POST";
            req.url = messages_url_ + ".json";
            req.headers.push_back({"Authorization", auth_});
            req.headers.push_back({"Content-Type", "application/x-www-form-urlencoded"});
            req.body = core::twilio_message_form(to, cfg_.from, cfg_.messaging_service_sid, p.text);
            http_result r = co_await send(std::move(req));
            if (!r.ok()) {
                if (r.ambiguous)
                    ++ambiguous_;  // the mark stays: looked up before the next attempt
                else
                    p.unsure.erase(to);  // provably never reached Twilio
                sink_outcome o = failure(r);
                o.sink_ref = p.dump();
                co_return o;
            }
            p.unsure.erase(to);  // an answer: Twilio says what happened
            core::sink_answer a = core::classify_twilio_create(r.response.status, r.response.body);
            if (a.verdict != sink_verdict::accepted) {
                sink_outcome o = from_answer(a, r.response, false);
                o.sink_ref = p.dump();
                co_return o;
            }
            p.sent[to] = a.ref;
        }
        sink_outcome o;
        o.what = sink_outcome::kind::accepted;  // confirmed later by check()
        o.sink_ref = p.dump();
        co_return o;
    }

    struct find_result {
        bool ok = false;
        std::string sid;
        std::string error;
        bool held = false;  // not asked: the service's gate was closed
    };

    asio::awaitable<find_result> find_sent(const std::string& to, const std::string& text,
                                           core::micros since) {
        find_result f;
        http_request req;
        req.url = messages_url_ + ".json?To=" + core::url_encode(to) + "&PageSize=50";
        req.headers.push_back({"Authorization", auth_});
        http_result r = co_await send(std::move(req));
        if (!r.ok() || r.response.status != 200) {
            f.error =
                r.ok() ? "message list: HTTP " + std::to_string(r.response.status) : r.message;
            f.held = r.error == http_error::cancelled;
            co_return f;
        }
        f.ok = true;
        if (auto sid = core::twilio_find_sent(r.response.body, text, since)) f.sid = *sid;
        co_return f;
    }

    sink_outcome unsure_outcome(const sms_progress& p, const find_result& f) {
        sink_outcome o;
        o.what = f.held ? sink_outcome::kind::held : sink_outcome::kind::transient;
        o.error = "cannot check for an earlier SMS: " + f.error;
        o.sink_ref = p.dump();
        return o;
    }

    asio::awaitable<void> pace(const std::string& to) {
        auto now = std::chrono::steady_clock::now();
        auto& last = last_sent_[to];
        if (now - last < std::chrono::seconds(1)) {
            asio::steady_timer t(rt_.main(), last + std::chrono::seconds(1));
            boost::system::error_code ec;
            co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        last = std::chrono::steady_clock::now();
    }

    std::string token_;  // secret
    std::string messages_url_, auth_;
    std::map<std::string, std::chrono::steady_clock::time_point> last_sent_;
    std::uint64_t ambiguous_ = 0, duplicates_avoided_ = 0;
};

}  // namespace

std::unique_ptr<sink> make_http_sink(runtime& rt, const core::sink_config& cfg,
                                     bool allow_world_readable, std::string& error) {
    auto secret = [&](const core::secret_ref& ref, const char* key) -> std::optional<std::string> {
        auto s = read_secret(ref, allow_world_readable);
        if (!s.value) error = std::string(key) + ": " + s.error;
        return s.value;
    };
    switch (cfg.kind) {
        case core::sink_kind::pagerduty: {
            auto key = secret(cfg.routing_key, "routing_key");
            if (!key) return nullptr;
            return std::make_unique<pagerduty_sink>(rt, cfg, std::move(*key));
        }
        case core::sink_kind::webhook: {
            auto key = secret(cfg.signing_secret, "signing_secret");
            if (!key) return nullptr;
            return std::make_unique<webhook_sink>(rt, cfg, std::move(*key));
        }
        case core::sink_kind::twilio: {
            auto key = secret(cfg.auth_token, "auth_token");
            if (!key) return nullptr;
            return std::make_unique<twilio_sink>(rt, cfg, std::move(*key));
        }
        case core::sink_kind::file:
            break;
    }
    error = "not an HTTP sink";
    return nullptr;
}

}  // namespace glasswatch::io
