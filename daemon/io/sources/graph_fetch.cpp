#include "io/sources/graph_fetch.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "io/store/runtime.hpp"

namespace glasswatch::io {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr int max_attempts_per_request = 12;  // throttling/5xx retries before giving up

// Graph's error.code, read without a full parse (the body may be anything).
std::string graph_error_code(const std::string& body) {
    auto pos = body.find("\"code\"");
    if (pos == std::string::npos) return {};
    auto colon = body.find(':', pos);
    if (colon == std::string::npos) return {};
    auto q1 = body.find('"', colon + 1);
    auto q2 = q1 == std::string::npos ? q1 : body.find('"', q1 + 1);
    if (q2 == std::string::npos) return {};
    return body.substr(q1 + 1, std::min<std::size_t>(q2 - q1 - 1, 80));
}

}  // namespace

graph_fetcher::graph_fetcher(https_client& http, token_provider& tokens, std::string base,
                             int max_requests_per_10s)
    : http_(http),
      tokens_(tokens),
      base_(std::move(base)),
      limiter_(max_requests_per_10s, 10LL * 1000000) {
    while (!base_.empty() && base_.back() == '/')
        base_.pop_back();
    url_parts u;
    if (parse_url(base_, u)) host_ = u.host;
    backoff_.initial = 2s;
    backoff_.max = 120s;
}

void graph_fetcher::stop() {
    stopping_ = true;
    if (timer_) timer_->cancel();
}

asio::awaitable<bool> graph_fetcher::sleep_for(std::chrono::milliseconds d) {
    if (stopping_ || !timer_) co_return false;
    timer_->expires_after(d);
    boost::system::error_code ec;
    co_await timer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return !stopping_;
}

asio::awaitable<graph_fetch_result> graph_fetcher::get(const std::string& url) {
    graph_fetch_result r;
    bool renewed = false;
    auto jitter = [this] { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); };
    for (int attempt = 1; attempt <= max_attempts_per_request; ++attempt) {
        if (stopping_) {
            r.stopped = true;
            co_return r;
        }
        token_result tok = co_await tokens_.get();
        counters_.token = tok.failure;
        if (!tok.ok()) {
            r.error = tok.message;
            co_return r;
        }
        http_request req;
        req.url = url;
        req.bearer_token = tok.token;
        req.token_host = host_;
        req.headers.push_back({"Accept", "application/json"});
        // Every request on the wire takes a slot, the client's repeat of a GET on a stale
        // pooled connection included: never more than the limit in any 10 s window.
        req.before_send = [this]() -> asio::awaitable<bool> {
            // Pacing runs on the steady clock: after the wall clock is set back a day, the
            // newest request would otherwise lie a day in the future and the limiter would wait.
            const core::micros now = steady_micros();
            const core::micros at = limiter_.next_allowed(now);
            if (at > now && !co_await sleep_for(std::chrono::milliseconds((at - now) / 1000 + 1)))
                co_return false;
            limiter_.record(steady_micros());
            ++counters_.requests;
            co_return true;
        };
        http_result res = co_await http_.request(std::move(req));
        if (res.error == http_error::cancelled) {
            r.stopped = true;
            co_return r;
        }
        if (!res.ok()) {
            r.status = 0;
            r.error = std::string(to_string(res.error)) + ": " + res.message;
            if (res.error == http_error::body_too_large) {
                r.too_large = true;
                ++counters_.too_large;
            }
            if (!is_transient(res.error)) co_return r;
            if (!co_await sleep_for(core::backoff_delay(backoff_, attempt, jitter()))) {
                r.stopped = true;
                co_return r;
            }
            continue;
        }
        const int status = res.response.status;
        r.status = status;
        if (status == 200) {
            r.ok = true;
            r.error.clear();
            r.graph_code.clear();
            r.body = std::move(res.response.body);
            r.server_date = core::parse_http_date(res.response.header("date"));
            co_return r;
        }
        if (status == 401 && !renewed) {
            // Expired or revoked mid-stream: one renewal, then the same request again.
            ++counters_.unauthorized;
            renewed = true;
            tokens_.invalidate();
            continue;
        }
        r.graph_code = graph_error_code(res.response.body);
        r.error =
            "HTTP " + std::to_string(status) + (r.graph_code.empty() ? "" : " " + r.graph_code);
        if (status == 429 || status == 503 || status == 500 || status == 502 || status == 504 ||
            status == 408) {
            if (status == 429) ++counters_.throttled;
            // An HTTP-date is the service's clock: measured against its Date, not ours.
            auto ra = core::parse_retry_after(res.response.header("retry-after"),
                                              res.response.header("date"), wall_now());
            auto delay = core::backoff_delay(backoff_, attempt, jitter(), ra);
            spdlog::debug("graph: {} on {}, retrying in {}", r.error, url.substr(0, url.find('?')),
                          core::format_duration(delay.count()));
            if (!co_await sleep_for(delay)) {
                r.stopped = true;
                co_return r;
            }
            continue;
        }
        // 400/403/404...: retrying the same request cannot help (permission, license, query).
        co_return r;
    }
    co_return r;
}

}  // namespace glasswatch::io
