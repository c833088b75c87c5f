#include "io/token_provider.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "core/crypto.hpp"
#include "io/delivery.hpp"
#include "io/secrets.hpp"

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

boost::asio::awaitable<token_result> token_provider::get() {
    token_result r;
    const core::micros now = wall_now();
    if (!token_.empty() && expires_at_ - now > margin_) {
        r.token = token_;
        co_return r;
    }
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
            r.message = a.error;
            co_return r;
        }
        req.body = core::token_request_with_assertion(client_id_, scope_, a.jwt);
    }
    http_result res = co_await http_.request(std::move(req));
    if (!res.ok()) {
        r.failure = last_failure_ = core::token_failure::unreachable;
        r.message = "token endpoint unreachable: " + res.message;
        co_return r;
    }
    core::token_answer ans = core::classify_token_response(res.response.status, res.response.body);
    if (ans.failure != core::token_failure::none) {
        r.failure = last_failure_ = ans.failure;
        r.message = "token refused (" + std::string(core::to_string(ans.failure)) +
                    (ans.aadsts ? ", AADSTS" + std::to_string(ans.aadsts) : std::string()) +
                    "): " + ans.description;
        co_return r;
    }
    last_failure_ = core::token_failure::none;
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
