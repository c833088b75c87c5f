#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/base/crypto.hpp"
#include "core/protocol/graph_query.hpp"
#include "core/protocol/oauth.hpp"
#include "support/fixtures.hpp"

using namespace glasswatch::core;
namespace t = glasswatch::test;

namespace {
std::string b64url_decode(std::string s) {
    for (char& c : s)
        c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (s.size() % 4)
        s += '=';
    std::string out;
    REQUIRE(base64_decode(s, out));
    return out;
}
std::string url_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}
}  // namespace

TEST_CASE("token endpoint answers are classified by AADSTS code / not by text", "[oauth]") {
    auto ok = classify_token_response(
        200,
        R"({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"abc"})");
    CHECK(ok.failure == token_failure::none);
    CHECK(ok.access_token == "abc");
    CHECK(ok.expires_in_s == 3599);
    auto bad = classify_token_response(
        401,
        R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]})");
    CHECK(bad.failure == token_failure::bad_secret);
    CHECK(bad.aadsts == 7000215);
    CHECK(bad.description == "AADSTS7000215: Invalid client secret provided.");
    CHECK_FALSE(is_transient(bad.failure));
    CHECK(classify_token_response(401, R"({"error":"invalid_client","error_codes":[7000222]})")
              .failure == token_failure::expired_credential);
    CHECK(classify_token_response(400, R"({"error":"unauthorized_client","error_codes":[7000112]})")
              .failure == token_failure::app_disabled);
    CHECK(classify_token_response(400, R"({"error":"invalid_request","error_codes":[90002]})")
              .failure == token_failure::tenant_not_found);
    CHECK(classify_token_response(400, R"({"error":"unauthorized_client","error_codes":[700016]})")
              .failure == token_failure::app_not_found);
    CHECK(classify_token_response(401, R"({"error":"invalid_client","error_codes":[700027]})")
              .failure == token_failure::bad_certificate);
    auto busy = classify_token_response(503, "<html>busy</html>");
    CHECK(busy.failure == token_failure::unavailable);
    CHECK(is_transient(busy.failure));
    CHECK(classify_token_response(429, "").failure == token_failure::throttled);
    CHECK(
        classify_token_response(400, R"({"error":"temporarily_unavailable","error_codes":[90006]})")
            .failure == token_failure::unavailable);
    CHECK(classify_token_response(200, R"({"token_type":"Bearer"})").failure ==
          token_failure::malformed_response);
    CHECK(
        classify_token_response(400, R"({"error":"invalid_grant","error_codes":[123]})").failure ==
        token_failure::other);
}

// Found by tests/fuzz/fuzz_http_response: a Graph-style error object where the token endpoint
// has a string (a proxy or a wrong authority_host) threw nlohmann's type_error.
TEST_CASE("token endpoint answers with fields of the wrong type are classified", "[oauth][fuzz]") {
    auto a = classify_token_response(
        400, R"({"error":{"code":"BadRequest","message":"x"},"error_description":7})");
    CHECK(a.oauth_error.empty());
    CHECK(a.description == "HTTP 400");
    CHECK(a.failure == token_failure::other);
}

TEST_CASE("token request bodies are form-encoded", "[oauth]") {
    CHECK(token_request_with_secret("54c9", "https://graph.microsoft.com/.default", "a+b/c=d&e") ==
          "client_id=54c9&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&client_secret=a%2Bb%"
          "2Fc%3Dd%26e&grant_type=client_credentials");
    auto b = token_request_with_assertion("54c9", "s", "x.y.z");
    CHECK(b.find("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-"
                 "bearer") != std::string::npos);
    CHECK(b.find("&client_assertion=x.y.z&") != std::string::npos);
}

TEST_CASE("certificate client assertions are signed JWTs that verify", "[oauth]") {
    std::string cert = t::read_fixture("test-client-cert.pem"),
                key = t::read_fixture("test-client-key.pem");
    const micros now = 1762179600LL * 1000000;
    const std::string aud =
        "https://login.microsoftonline.com/3d29e181-4b4e-4710-8621-280aad0bc235/oauth2/v2.0/token";
    for (auto alg : {assertion_alg::ps256, assertion_alg::rs256}) {
        auto a = make_client_assertion(cert, key, "54c9adb7-b364-40fa-a2c3-198e112d508d", aud, now,
                                       "jti-1", alg);
        REQUIRE(a.error.empty());
        auto d1 = a.jwt.find('.'), d2 = a.jwt.rfind('.');
        REQUIRE(d1 != d2);
        auto header = nlohmann::json::parse(b64url_decode(a.jwt.substr(0, d1)));
        auto claims = nlohmann::json::parse(b64url_decode(a.jwt.substr(d1 + 1, d2 - d1 - 1)));
        CHECK(header["typ"] == "JWT");
        CHECK(claims["aud"] == aud);
        CHECK(claims["iss"] == "54c9adb7-b364-40fa-a2c3-198e112d508d");
        CHECK(claims["sub"] == claims["iss"]);
        CHECK(claims["jti"] == "jti-1");
        CHECK(claims["nbf"] == 1762179600);
        CHECK(claims["exp"] == 1762179600 + 600);
        // Verify the signature with the certificate's public key.
        BIO* bio = BIO_new_mem_buf(cert.data(), static_cast<int>(cert.size()));
        X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
        BIO_free(bio);
        REQUIRE(x);
        EVP_PKEY* pub = X509_get_pubkey(x);
        unsigned char* der = nullptr;
        int der_len = i2d_X509(x, &der);
        std::string der_s(reinterpret_cast<char*>(der), static_cast<std::size_t>(der_len));
        OPENSSL_free(der);
        if (alg == assertion_alg::ps256) {
            CHECK(header["alg"] == "PS256");
            auto d = sha256(der_s);
            CHECK(header["x5t#S256"] ==
                  base64url_encode({reinterpret_cast<const char*>(d.data()), d.size()}));
        } else {
            CHECK(header["alg"] == "RS256");
            CHECK(header.contains("x5t"));
        }
        std::string input = a.jwt.substr(0, d2), sig = b64url_decode(a.jwt.substr(d2 + 1));
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX* pctx = nullptr;
        REQUIRE(EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), nullptr, pub) == 1);
        if (alg == assertion_alg::ps256) {
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
        }
        CHECK(EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                               reinterpret_cast<const unsigned char*>(input.data()),
                               input.size()) == 1);
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(pub);
        X509_free(x);
    }
    CHECK_FALSE(make_client_assertion("junk", key, "c", aud, now, "j").error.empty());
    CHECK_FALSE(make_client_assertion(cert, "junk", "c", aud, now, "j").error.empty());
}

TEST_CASE(
    "poll URLs: v1.0 for interactive / beta + event type for the rest / narrowed to watched ids",
    "[graph]") {
    watchlist_config wc;
    wc.accounts.push_back({"0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b", "", "bg1"});
    wc.accounts.push_back({"5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f", "", "bg2"});
    wc.groups.push_back("20660f84-11cd-4df4-a61a-637cecf8c343");
    watchlist wl(wc);
    micros from = *parse_iso8601("2025-11-03T14:00:00.75Z");
    auto u =
        build_poll_url("https://graph.microsoft.com/", graph_kind::interactive, from, wl, false);
    CHECK(u.rfind("https://graph.microsoft.com/v1.0/auditLogs/signIns?$filter=", 0) == 0);
    CHECK(url_decode(u.substr(u.find('=') + 1)) ==
          "createdDateTime ge 2025-11-03T14:00:00Z and (userId eq "
          "'0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b' or "
          "userId eq '5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f')");
    CHECK(u.find(' ') == std::string::npos);
    auto ni =
        build_poll_url("https://graph.microsoft.com", graph_kind::non_interactive, from, wl, false);
    CHECK(ni.find("/beta/auditLogs/signIns?") != std::string::npos);
    CHECK(
        url_decode(ni).find("signInEventTypes/any(t: t eq 'nonInteractiveUser') and (userId eq") !=
        std::string::npos);
    auto sp = build_poll_url("https://graph.microsoft.com", graph_kind::service_principal, from, wl,
                             false);
    CHECK(url_decode(sp).find("userId") == std::string::npos);  // users are not app identities
    CHECK(url_decode(sp).find("t eq 'servicePrincipal'") != std::string::npos);
    auto au = url_decode(
        build_poll_url("https://graph.microsoft.com", graph_kind::audit, from, wl, false));
    CHECK(au.find("/v1.0/auditLogs/directoryAudits?$filter=activityDateTime ge "
                  "2025-11-03T14:00:00Z and (") != std::string::npos);
    CHECK(au.find("initiatedBy/user/id eq '0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b'") !=
          std::string::npos);
    CHECK(au.find("targetResources/any(t: t/id eq '20660f84-11cd-4df4-a61a-637cecf8c343')") !=
          std::string::npos);
    auto full = url_decode(
        build_poll_url("https://graph.microsoft.com", graph_kind::interactive, from, wl, true));
    CHECK(full.find("userId") == std::string::npos);
}

TEST_CASE(
    "streams: app and managed-identity sign-ins are read only for a watched app identity, "
    "and then filtered to it",
    "[graph]") {
    graph_source_config g;  // default kinds: all five
    watchlist_config users;
    users.accounts.push_back({"0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b", "", "bg1"});
    auto p = plan_streams(g, users);
    CHECK(p.read == std::vector<graph_kind>{graph_kind::interactive, graph_kind::non_interactive,
                                            graph_kind::audit});
    REQUIRE(p.skipped.size() == 2);
    CHECK(p.skipped[0].first == graph_kind::service_principal);
    CHECK(p.skipped[0].second.find("service_principal") != std::string::npos);
    CHECK(p.skipped[1].first == graph_kind::managed_identity);

    watchlist_config mixed = users;
    watched_account app{"ac1b1732-bf51-4dd1-9fcc-801cbaa9c790", "", "break-glass-app"};
    app.type = account_type::service_principal;
    mixed.accounts.push_back(app);
    p = plan_streams(g, mixed);
    CHECK(p.read.size() == 4);  // + service principals; managed identities still skipped
    CHECK(p.skipped.size() == 1);
    watchlist wl(mixed);
    micros from = *parse_iso8601("2025-11-03T14:00:00Z");
    auto sp = url_decode(build_poll_url("https://graph.microsoft.com",
                                        graph_kind::service_principal, from, wl, false));
    CHECK(sp.find("t eq 'servicePrincipal') and (servicePrincipalId eq "
                  "'ac1b1732-bf51-4dd1-9fcc-801cbaa9c790')") != std::string::npos);
    auto ui = url_decode(
        build_poll_url("https://graph.microsoft.com", graph_kind::interactive, from, wl, false));
    CHECK(ui.find("userId eq '0b7e3f1a") != std::string::npos);
    CHECK(ui.find("ac1b1732") == std::string::npos);  // an app identity never signs in as a user

    // full_stream reads every configured stream, unfiltered (silence detection, at a cost).
    g.full_stream = true;
    CHECK(plan_streams(g, users).read.size() == 5);
    CHECK(plan_streams(g, users).skipped.empty());
    // Only an app identity watched: no user stream to read.
    watchlist_config apps;
    apps.accounts.push_back(app);
    g.full_stream = false;
    p = plan_streams(g, apps);
    CHECK(p.read == std::vector<graph_kind>{graph_kind::service_principal, graph_kind::audit});
}

TEST_CASE("nextLinks must stay on the Graph origin", "[graph]") {
    CHECK(same_origin("https://graph.microsoft.com/v1.0/x?$skiptoken=1",
                      "https://graph.microsoft.com"));
    CHECK(same_origin("https://GRAPH.microsoft.com:443/v1.0/x", "https://graph.microsoft.com"));
    CHECK(same_origin("https://127.0.0.1:4431/v1.0/x", "https://127.0.0.1:4431"));
    CHECK_FALSE(same_origin("https://127.0.0.1:4432/v1.0/x", "https://127.0.0.1:4431"));
    CHECK_FALSE(same_origin("https://evil.example/v1.0/x", "https://graph.microsoft.com"));
    CHECK_FALSE(same_origin("http://graph.microsoft.com/v1.0/x", "https://graph.microsoft.com"));
    CHECK_FALSE(
        same_origin("https://graph.microsoft.com@evil.example/x", "https://graph.microsoft.com"));
    CHECK_FALSE(
        same_origin("https://graph.microsoft.com.evil.example/x", "https://graph.microsoft.com"));
    CHECK_FALSE(same_origin("/v1.0/relative", "https://graph.microsoft.com"));
}

TEST_CASE("the cursor checkpoint round-trips and its seen-set stays bounded", "[graph]") {
    graph_cursor c;
    c.cursor = 1700000000000000;
    for (int i = 0; i < 10; ++i)
        c.remember("id" + std::to_string(i), 1000 + i);
    auto back = graph_cursor::from_json(c.to_json());
    REQUIRE(back);
    CHECK(back->cursor == c.cursor);
    CHECK(back->seen == c.seen);
    back->prune(1005, 100);
    CHECK(back->seen.size() == 5);
    CHECK(back->seen_before("id9"));
    CHECK_FALSE(back->seen_before("id0"));
    back->prune(0, 2);
    CHECK(back->seen.size() == 2);
    CHECK(back->seen_before("id9"));
    CHECK(back->seen_before("id8"));
    CHECK_FALSE(graph_cursor::from_json("{}"));
    CHECK_FALSE(graph_cursor::from_json("not json"));
}

TEST_CASE("the rate limiter never lets more than N requests into any window", "[graph]") {
    rate_limiter lim(5, 10'000'000);
    micros now = 0;
    std::vector<micros> sent;
    for (int i = 0; i < 40; ++i) {
        micros at = lim.next_allowed(now);
        if (at > now) now = at;
        lim.record(now);
        sent.push_back(now);
        now += 100'000;  // the request itself takes 100 ms
    }
    for (std::size_t i = 5; i < sent.size(); ++i)
        CHECK(sent[i] - sent[i - 5] >= 10'000'000 + 100'000);  // with a margin of >= 100 ms
    // Evenly spaced: every stream of a poll gets its turn within one window, none is starved.
    for (std::size_t i = 1; i < sent.size(); ++i)
        CHECK(sent[i] - sent[i - 1] >= 2'000'000);
    CHECK(sent[0] == 0);
    CHECK(sent[39] - sent[0] < 40 * 2'100'000);
}
