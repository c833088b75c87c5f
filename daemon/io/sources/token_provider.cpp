#include "io/sources/token_provider.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fstream>
#include <random>
#include <sstream>

#include "core/base/backoff.hpp"
#include "core/base/crypto.hpp"
#include "io/base/secrets.hpp"
#include "io/store/runtime.hpp"

namespace glasswatch::io {

namespace {

// Renew this long before expiry, so a token never expires in the middle of a paging run.
constexpr core::micros renew_margin = 5LL * 60 * 1000000;

std::string random_guid() {
    std::random_device rd;
    std::uniform_int_distribution<unsigned> d(0, 15);
    static constexpr char hex[] = "0123456789abcdef";
    std::string s = "xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx";
    for (char& c : s)
        if (c == 'x') c = hex[d(rd)];
    return s;
}

std::string scope_for(core::cloud_kind c) {
    return core::default_graph_base_url(c) + "/.default";
}

}  // namespace

std::unique_ptr<token_provider> token_provider::create(https_client& http, const core::config& cfg,
                                                       std::string& error) {
    std::unique_ptr<token_provider> p(new token_provider(http));
    const auto& g = cfg.graph;
    p->client_id_ = g.client_id;
    p->scope_ = scope_for(cfg.cloud);
    std::string authority =
        g.authority_host.empty() ? core::default_authority_host(cfg.cloud) : g.authority_host;
    while (!authority.empty() && authority.back() == '/')
        authority.pop_back();
    p->token_url_ = authority + "/" + cfg.tenant_id + "/oauth2/v2.0/token";
    if (g.client_secret.present()) {
        auto s = read_secret(g.client_secret, cfg.allow_world_readable_secrets);
        if (!s.value) {
            error = "sources.graph.client_secret: " + s.error;
            return nullptr;
        }
        p->secret_ = std::move(*s.value);
    } else {
        std::ifstream in(g.certificate_file);
        if (!in) {
            error = "sources.graph.certificate_file: cannot read " + g.certificate_file;
            return nullptr;
        }
        std::ostringstream ss;
        ss << in.rdbuf();
        p->cert_pem_ = ss.str();
        auto k = read_secret(g.private_key, cfg.allow_world_readable_secrets);
        if (!k.value) {
            error = "sources.graph.private_key: " + k.error;
            return nullptr;
        }
        p->key_pem_ = std::move(*k.value);
        // Fail at start-up, not at the first poll, when the pair is unusable.
        auto probe = core::make_client_assertion(p->cert_pem_, p->key_pem_, p->client_id_,
                                                 p->token_url_, wall_now(), "probe");
        if (probe.jwt.empty()) {
            error = "sources.graph certificate: " + probe.error;
            return nullptr;
        }
    }
    return p;
}

token_result token_provider::from_cache_or(token_result failed) const {
    // A token with less than this left is of no use to a paging run that starts now: 30 s, or a
    // quarter of the renewal margin for short-lived tokens.
    const core::micros still_useful = std::min<core::micros>(30LL * 1000000, margin_ / 4);
    if (!token_.empty() && expires_at_ - wall_now() > still_useful) {
        token_result r;
        r.token = token_;
        return r;
    }
    return failed;
}

boost::asio::awaitable<token_result> token_provider::get() {
    if (!token_.empty() && expires_at_ - wall_now() > margin_) {
        token_result r;
        r.token = token_;
        co_return r;
    }
    if (renewing_) {
        // One renewal in flight: wait for its outcome instead of asking again.
        boost::asio::steady_timer wake(co_await boost::asio::this_coro::executor,
                                       boost::asio::steady_timer::time_point::max());
        waiters_.push_back(&wake);
        boost::system::error_code ec;
        co_await wake.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
        std::erase(waiters_, &wake);
        token_result failed;
        failed.failure = last_failure_ == core::token_failure::none
                             ? core::token_failure::unreachable
                             : last_failure_;
        failed.message = last_message_;
        co_return from_cache_or(failed);
    }
    if (const core::micros now = steady_micros(); now < not_before_) {
        // The endpoint said wait (or keeps failing): nobody asks it before then.
        token_result held;
        held.failure = last_failure_ == core::token_failure::none ? core::token_failure::throttled
                                                                  : last_failure_;
        held.message =
            "the token endpoint asked to wait another " +
            core::format_duration((not_before_ - now) / 1000) +
            (last_message_.empty() ? std::string() : " (last answer: " + last_message_ + ")");
        co_return from_cache_or(held);
    }
    renewing_ = true;
    token_result r = co_await renew();
    renewing_ = false;
    for (auto* w : waiters_)
        w->cancel();
    if (!r.ok()) {
        ++renewal_failures_;
        token_result cached = from_cache_or(r);
        if (cached.ok())
            spdlog::warn(
                "graph: token renewal failed ({}); using the cached token until it "
                "nears expiry in {}",
                r.message, core::format_duration((expires_at_ - wall_now()) / 1000));
        co_return cached;
    }
    co_return r;
}

boost::asio::awaitable<token_result> token_provider::renew() {
    token_result r;
    const core::micros now = wall_now();
    http_request req;
    req.method = "POST";
    // A token request changes nothing at the server: repeating it on a fresh connection is safe.
    req.safe_to_repeat = true;
    req.url = token_url_;
    req.headers.push_back({"Content-Type", "application/x-www-form-urlencoded"});
    if (!secret_.empty()) {
        req.body = core::token_request_with_secret(client_id_, scope_, secret_);
    } else {
        auto a = core::make_client_assertion(cert_pem_, key_pem_, client_id_, token_url_, now,
                                             random_guid());
        if (a.jwt.empty()) {
            r.failure = last_failure_ = core::token_failure::bad_certificate;
            r.message = last_message_ = a.error;
            co_return r;
        }
        req.body = core::token_request_with_assertion(client_id_, scope_, a.jwt);
    }
    // After a failure without Retry-After: 1 s, 2 s, 4 s ... at most a minute between renewals.
    core::backoff_policy backoff;
    backoff.initial = std::chrono::seconds(1);
    backoff.max = std::chrono::seconds(60);
    auto hold = [&](std::optional<std::chrono::milliseconds> retry_after) {
        failures_ = std::min(failures_ + 1, 64);
        const auto wait = core::backoff_delay(backoff, failures_, 0.5, retry_after);
        not_before_ = steady_micros() + static_cast<core::micros>(wait.count()) * 1000;
    };
    http_result res = co_await http_.request(std::move(req));
    if (!res.ok()) {
        r.failure = last_failure_ = core::token_failure::unreachable;
        r.message = last_message_ = "token endpoint unreachable: " + res.message;
        hold(std::nullopt);
        co_return r;
    }
    core::token_answer ans = core::classify_token_response(res.response.status, res.response.body);
    if (ans.failure != core::token_failure::none) {
        r.failure = last_failure_ = ans.failure;
        r.message = last_message_ =
            "token refused (" + std::string(core::to_string(ans.failure)) +
            (ans.aadsts ? ", AADSTS" + std::to_string(ans.aadsts) : std::string()) +
            "): " + ans.description;
        hold(core::parse_retry_after(res.response.header("retry-after"),
                                     res.response.header("date"), wall_now()));
        co_return r;
    }
    failures_ = 0;
    not_before_ = 0;
    last_failure_ = core::token_failure::none;
    last_message_.clear();
    token_ = ans.access_token;
    expires_at_ = now + ans.expires_in_s * 1000000;
    // Short-lived tokens (tests, some proxies) renew at 80% of their life instead.
    margin_ = std::min(renew_margin, ans.expires_in_s * 1000000 / 5);
    ++fetched_;
    spdlog::debug("graph: new access token, valid {}s", ans.expires_in_s);
    r.token = token_;
    co_return r;
}

}  // namespace glasswatch::io
