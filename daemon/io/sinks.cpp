// The HTTP sinks: PagerDuty Events v2, Twilio Messages (with delivery confirmation), and
// signed webhooks. Each turns an outbox row into one or more HTTPS requests and classifies the
// answer (core/sink_payloads); the delivery engine owns retries and bookkeeping.
#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <chrono>
#include <nlohmann/json.hpp>

#include "core/backoff.hpp"
#include "core/graph_query.hpp"
#include "core/json_text.hpp"
#include "core/sink_payloads.hpp"
#include "io/delivery.hpp"
#include "io/https_client.hpp"
#include "io/secrets.hpp"

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

sink_outcome from_answer(const core::sink_answer& a, const http_response& resp, bool confirmed) {
    sink_outcome o;
    switch (a.verdict) {
        case sink_verdict::accepted:
            o.what = confirmed ? sink_outcome::kind::confirmed : sink_outcome::kind::accepted;
            break;
        case sink_verdict::transient:
            o.what = sink_outcome::kind::transient;
            break;
        case sink_verdict::permanent:
            o.what = sink_outcome::kind::permanent;
            break;
    }
    o.error = a.error;
    o.sink_ref = a.ref;
    if (o.what == sink_outcome::kind::transient)
        o.retry_after = core::parse_retry_after(resp.header("retry-after"), wall_now());
    return o;
}

sink_outcome transport_failure(const http_result& r) {
    sink_outcome o;
    o.what = is_transient(r.error) ? sink_outcome::kind::transient : sink_outcome::kind::permanent;
    o.error = std::string(to_string(r.error)) + ": " + r.message;
    return o;
}

// ---- PagerDuty ------------------------------------------------------------------------------

class pagerduty_sink final : public sink {
public:
    pagerduty_sink(runtime& rt, core::sink_config cfg, std::string routing_key)
        : cfg_(std::move(cfg)),
          key_(std::move(routing_key)),
          http_(rt.main().get_executor(), client_options(cfg_)) {}
    const core::sink_config& config() const noexcept override { return cfg_; }

    asio::awaitable<sink_outcome> deliver(const outbox_row& row) override {
        http_request req;
        req.method = "POST";
        req.url = cfg_.url;
        req.headers.push_back({"Content-Type", "application/json"});
        req.body = core::pagerduty_trigger(row.a, key_,
                                           cfg_.source.empty() ? row.a.tenant_id : cfg_.source);
        http_result r = co_await http_.request(std::move(req));
        if (!r.ok()) co_return transport_failure(r);
        // 202 means queued at PagerDuty: final from our side (PagerDuty owns the paging now).
        co_return from_answer(core::classify_pagerduty(r.response.status, r.response.body),
                              r.response, true);
    }

private:
    core::sink_config cfg_;
    std::string key_;  // routing key: a secret, never logged
    https_client http_;
};

// ---- Webhook --------------------------------------------------------------------------------

class webhook_sink final : public sink {
public:
    webhook_sink(runtime& rt, core::sink_config cfg, std::string secret)
        : cfg_(std::move(cfg)),
          secret_(std::move(secret)),
          http_(rt.main().get_executor(), client_options(cfg_)) {}
    const core::sink_config& config() const noexcept override { return cfg_; }

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
        http_result r = co_await http_.request(std::move(req));
        if (!r.ok()) co_return transport_failure(r);
        co_return from_answer(core::classify_webhook(r.response.status, r.response.body),
                              r.response, true);
    }

private:
    core::sink_config cfg_;
    std::string secret_;
    https_client http_;
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

class twilio_sink final : public sink {
public:
    twilio_sink(runtime& rt, core::sink_config cfg, std::string token)
        : rt_(rt),
          cfg_(std::move(cfg)),
          token_(std::move(token)),
          http_(rt.main().get_executor(), client_options(cfg_)) {
        std::string base = cfg_.api_base;
        while (!base.empty() && base.back() == '/')
            base.pop_back();
        messages_url_ = base + "/2010-04-01/Accounts/" + cfg_.account_sid + "/Messages";
        auth_ = core::basic_auth(cfg_.api_key_sid.empty() ? cfg_.account_sid : cfg_.api_key_sid,
                                 token_);
    }
    const core::sink_config& config() const noexcept override { return cfg_; }
    bool confirms_later() const noexcept override { return true; }

    std::chrono::milliseconds burst_window() const noexcept override {
        return std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.burst_window);
    }

    asio::awaitable<sink_outcome> deliver(const outbox_row& row) override {
        sms_progress p = sms_progress::parse(row.sink_ref);
        if (p.text.empty()) p.text = row.a.sms;
        co_return co_await send_to_all(std::move(p), row.alert_id);
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
        const outbox_row* lead = &rows.front();
        sms_progress p;
        for (const auto& r : rows) {
            sms_progress rp = sms_progress::parse(r.sink_ref);
            if (!rp.sent.empty() || !rp.unsure.empty()) {
                lead = &r;
                p = std::move(rp);
                break;
            }
        }
        if (p.text.empty()) p.text = core::sms_burst_text(rows.back().a.sms, rows.size());
        co_return co_await send_to_all(std::move(p), lead->alert_id);
    }

private:
    asio::awaitable<sink_outcome> send_to_all(sms_progress p, std::string alert_id) {
        for (const auto& to : cfg_.to) {
            if (p.sent.count(to)) continue;
            // Per-number pacing: long codes deliver about one message per second.
            co_await pace(to);
            if (auto it = p.unsure.find(to); it != p.unsure.end()) {
                // The last attempt timed out after the request went out: Twilio may have created
                // the message. Look before sending again (Twilio has no idempotency key).
                auto found = co_await find_sent(to, p.text, it->second);
                if (!found.ok) co_return unsure_outcome(p, found.error);
                p.unsure.erase(to);
                if (!found.sid.empty()) {
                    ++duplicates_avoided_;
                    spdlog::info(
                        "sink {}: SMS for {} to a recipient was already created ({}); not "
                        "resending",
                        cfg_.name, alert_id, found.sid);
                    p.sent[to] = found.sid;
                    continue;
                }
            }
            http_request req;
            req.method = "POST";
            req.url = messages_url_ + ".json";
            req.headers.push_back({"Authorization", auth_});
            req.headers.push_back({"Content-Type", "application/x-www-form-urlencoded"});
            req.body = core::twilio_message_form(to, cfg_.from, cfg_.messaging_service_sid, p.text);
            const core::micros attempt_at = wall_now();
            http_result r = co_await http_.request(std::move(req));
            if (!r.ok()) {
                if (r.error == http_error::timeout || r.error == http_error::read) {
                    ++ambiguous_;
                    p.unsure[to] = attempt_at;
                }
                sink_outcome o = transport_failure(r);
                o.sink_ref = p.dump();
                co_return o;
            }
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

public:
    // Delivery confirmation: every recipient's message must reach delivered (or read).
    asio::awaitable<sink_outcome> check(const outbox_row& row) override {
        sms_progress p = sms_progress::parse(row.sink_ref);
        sink_outcome o;
        o.what = sink_outcome::kind::confirmed;
        for (const auto& [to, sid] : p.sent) {
            http_request req;
            req.url = messages_url_ + "/" + sid + ".json";
            req.headers.push_back({"Authorization", auth_});
            http_result r = co_await http_.request(std::move(req));
            if (!r.ok() || r.response.status != 200) {
                o.what = sink_outcome::kind::accepted;  // unknown yet: ask again later
                continue;
            }
            auto st = core::parse_twilio_message(r.response.body);
            if (!st) {
                o.what = sink_outcome::kind::accepted;
                continue;
            }
            if (st->final_bad) {
                o.what = sink_outcome::kind::permanent;
                o.error = "SMS " + sid + " " + st->status +
                          (st->error_code ? " (Twilio " + std::to_string(st->error_code) + ")"
                                          : std::string());
                co_return o;
            }
            if (!st->final_ok) o.what = sink_outcome::kind::accepted;
        }
        co_return o;
    }

private:
    struct find_result {
        bool ok = false;
        std::string sid;
        std::string error;
    };

    asio::awaitable<find_result> find_sent(const std::string& to, const std::string& text,
                                           core::micros since) {
        find_result f;
        http_request req;
        req.url = messages_url_ + ".json?To=" + core::url_encode(to) + "&PageSize=50";
        req.headers.push_back({"Authorization", auth_});
        http_result r = co_await http_.request(std::move(req));
        if (!r.ok() || r.response.status != 200) {
            f.error =
                r.ok() ? "message list: HTTP " + std::to_string(r.response.status) : r.message;
            co_return f;
        }
        f.ok = true;
        if (auto sid = core::twilio_find_sent(r.response.body, text, since)) f.sid = *sid;
        co_return f;
    }

    sink_outcome unsure_outcome(const sms_progress& p, const std::string& error) {
        sink_outcome o;
        o.what = sink_outcome::kind::transient;
        o.error = "cannot check for an earlier SMS: " + error;
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

    runtime& rt_;
    core::sink_config cfg_;
    std::string token_;  // secret
    https_client http_;
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
