// The lab (simulated Entra ID tenant) driven directly through lab_tenant::handle(): no sockets,
// time passed in. These pin the behaviour the daemon's e2e tests rely on: token endpoint
// (secret and certificate assertions, AADSTS bodies), Graph paging/filters/visibility,
// throttling with every Retry-After form, faults, and the demo scenario's break-glass script.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <catch2/catch.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "lab/lab_graph.hpp"

using glasswatch::lab::lab_options;
using glasswatch::lab::lab_tenant;
using glasswatch::test::server_request;
using glasswatch::test::server_response;
using nlohmann::json;
namespace ids = glasswatch::lab::ids;

namespace {

constexpr std::int64_t s_us = 1000000;
constexpr std::int64_t t0 = 1762178400LL * s_us;  // 2025-11-03T14:00:00Z
constexpr const char* host = "127.0.0.1:8443";
constexpr const char* secret = "lab~secret.value_0123";

std::string b64url(const unsigned char* p, std::size_t n) {
    static constexpr char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    unsigned acc = 0;
    int bits = 0;
    for (std::size_t i = 0; i < n; ++i) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += a[(acc >> bits) & 63];
        }
    }
    if (bits > 0) out += a[(acc << (6 - bits)) & 63];
    return out;
}
std::string b64url(const std::string& s) {
    return b64url(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

// A self-signed client certificate and its key, made once (RSA key generation is slow).
struct client_credential {
    std::shared_ptr<EVP_PKEY> key;
    std::string cert_pem;
    std::string x5t, x5t_s256;
};

client_credential make_credential() {
    client_credential c;
    c.key.reset(EVP_RSA_gen(2048), &EVP_PKEY_free);
    REQUIRE(c.key);
    std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), &X509_free);
    X509_set_version(x.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 4242);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), 86400L * 365);
    X509_set_pubkey(x.get(), c.key.get());
    X509_NAME* name = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("glasswatch-test"), -1, -1,
                               0);
    X509_set_issuer_name(x.get(), name);
    REQUIRE(X509_sign(x.get(), c.key.get(), EVP_sha256()) > 0);
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    PEM_write_bio_X509(bio.get(), x.get());
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    c.cert_pem.assign(data, static_cast<std::size_t>(len));
    unsigned char* der = nullptr;
    int der_len = i2d_X509(x.get(), &der);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_Digest(der, static_cast<std::size_t>(der_len), md, &md_len, EVP_sha1(), nullptr);
    c.x5t = b64url(md, md_len);
    EVP_Digest(der, static_cast<std::size_t>(der_len), md, &md_len, EVP_sha256(), nullptr);
    c.x5t_s256 = b64url(md, md_len);
    OPENSSL_free(der);
    return c;
}

const client_credential& registered() {
    static const client_credential c = make_credential();
    return c;
}
const client_credential& unregistered() {
    static const client_credential c = make_credential();
    return c;
}

std::string sign_jwt(const client_credential& c, bool pss, const json& claims, bool use_s256) {
    json header = {{"alg", pss ? "PS256" : "RS256"}, {"typ", "JWT"}};
    if (use_s256)
        header["x5t#S256"] = c.x5t_s256;
    else
        header["x5t"] = c.x5t;
    std::string input = b64url(header.dump()) + "." + b64url(claims.dump());
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_PKEY_CTX* pctx = nullptr;
    REQUIRE(EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, c.key.get()) == 1);
    if (pss) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256());
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
    }
    std::size_t sig_len = 0;
    REQUIRE(EVP_DigestSign(ctx.get(), nullptr, &sig_len,
                           reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()) == 1);
    std::vector<unsigned char> sig(sig_len);
    REQUIRE(EVP_DigestSign(ctx.get(), sig.data(), &sig_len,
                           reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()) == 1);
    return input + "." + b64url(sig.data(), sig_len);
}

json assertion_claims(std::int64_t now_us, const std::string& tenant = ids::tenant.data()) {
    const std::int64_t now_s = now_us / s_us;
    return {{"aud", std::string("https://") + host + "/" + tenant + "/oauth2/v2.0/token"},
            {"iss", std::string(ids::client)},
            {"sub", std::string(ids::client)},
            {"jti", "0d101509-64ff-47ec-948d-6e9ea6bcc5b5"},
            {"nbf", now_s},
            {"iat", now_s},
            {"exp", now_s + 600}};
}

lab_options quiet_options() {
    lab_options o;
    o.client_secret = secret;
    o.client_certificates_pem = {registered().cert_pem};
    o.ingestion_delay_min_s = 0;
    o.ingestion_delay_max_s = 0;
    o.throttle_limit = 0;  // the throttle has tests of its own
    return o;
}

std::string form_encode(const std::string& v) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char ch : v) {
        if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out += static_cast<char>(ch);
        } else {
            out += '%';
            out += hex[ch >> 4];
            out += hex[ch & 15];
        }
    }
    return out;
}

server_request token_request(const std::vector<std::pair<std::string, std::string>>& fields,
                             const std::string& tenant = ids::tenant.data()) {
    server_request r;
    r.method = "POST";
    r.target = "/" + tenant + "/oauth2/v2.0/token";
    r.headers = {{"host", host}, {"content-type", "application/x-www-form-urlencoded"}};
    for (const auto& [k, v] : fields)
        r.body += (r.body.empty() ? "" : "&") + k + "=" + form_encode(v);
    return r;
}

std::vector<std::pair<std::string, std::string>> secret_form(const std::string& s = secret) {
    return {{"client_id", std::string(ids::client)},
            {"scope", "https://graph.microsoft.com/.default"},
            {"client_secret", s},
            {"grant_type", "client_credentials"}};
}

std::vector<std::pair<std::string, std::string>> assertion_form(const std::string& jwt) {
    return {{"client_id", std::string(ids::client)},
            {"scope", "https://graph.microsoft.com/.default"},
            {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
            {"client_assertion", jwt},
            {"grant_type", "client_credentials"}};
}

std::string get_token(lab_tenant& lab, std::int64_t now) {
    server_response r = lab.handle(token_request(secret_form()), now);
    REQUIRE(r.status == 200);
    return json::parse(r.body).at("access_token").get<std::string>();
}

server_request graph_request(const std::string& target, const std::string& token) {
    server_request r;
    r.method = "GET";
    r.target = target;
    r.headers = {{"host", host}, {"accept", "application/json"}};
    if (!token.empty()) r.headers.emplace_back("authorization", "Bearer " + token);
    return r;
}

std::string header(const server_response& r, const std::string& name) {
    for (const auto& [k, v] : r.headers)
        if (k.size() == name.size() &&
            std::equal(k.begin(), k.end(), name.begin(),
                       [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
            return v;
    return {};
}

bool has_header(const server_response& r, const std::string& name) {
    for (const auto& [k, v] : r.headers)
        if (k == name) return true;
    return false;
}

// Percent-encodes a $filter the way the daemon does (every reserved character, space as %20).
std::string enc(const std::string& v) {
    return form_encode(v);
}

void check_aad_error(const server_response& r, int status, const std::string& error, int code) {
    INFO(r.body);
    CHECK(r.status == status);
    json j = json::parse(r.body);
    CHECK(j.at("error") == error);
    CHECK(j.at("error_codes") == json::array({code}));
    const std::string d = j.at("error_description").get<std::string>();
    CHECK(d.rfind("AADSTS" + std::to_string(code) + ": ", 0) == 0);
    CHECK(std::regex_search(
        d, std::regex("\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\n"
                      "Timestamp: \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$")));
    CHECK(std::regex_match(j.at("timestamp").get<std::string>(),
                           std::regex("\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ")));
    CHECK(d.find(j.at("trace_id").get<std::string>()) != std::string::npos);
    CHECK(d.find(j.at("correlation_id").get<std::string>()) != std::string::npos);
    CHECK(j.at("error_uri") ==
          "https://login.microsoftonline.com/error?code=" + std::to_string(code));
}

}  // namespace

namespace {

json graph_json(lab_tenant& lab, const std::string& target, const std::string& token,
                std::int64_t now) {
    server_response r = lab.handle(graph_request(target, token), now);
    INFO(target << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    CHECK_FALSE(header(r, "request-id").empty());
    CHECK_FALSE(header(r, "client-request-id").empty());
    return json::parse(r.body);
}

// Follows nextLinks (which must be absolute URLs on the same host) and returns every record.
std::vector<json> all_pages(lab_tenant& lab, const std::string& target, const std::string& token,
                            std::int64_t now, int* pages = nullptr) {
    std::vector<json> out;
    std::string next = target;
    int n = 0;
    while (!next.empty()) {
        json page = graph_json(lab, next, token, now);
        ++n;
        REQUIRE(n < 100);
        for (auto& v : page.at("value"))
            out.push_back(v);
        next.clear();
        if (page.contains("@odata.nextLink")) {
            std::string link = page["@odata.nextLink"].get<std::string>();
            const std::string prefix = std::string("https://") + host + "/";
            REQUIRE(link.rfind(prefix, 0) == 0);
            next = link.substr(prefix.size() - 1);
        }
    }
    if (pages) *pages = n;
    return out;
}

std::vector<std::string> ids_of(const std::vector<json>& records) {
    std::vector<std::string> out;
    for (const auto& r : records)
        out.push_back(r.at("id").get<std::string>());
    return out;
}

std::string add(lab_tenant& lab, json spec, std::int64_t now) {
    auto r = lab.add_sign_in(spec, now);
    INFO(r.body.dump());
    REQUIRE(r.ok);
    return r.body.at("id").get<std::string>();
}

}  // namespace

TEST_CASE("lab token endpoint: client secret", "[lab]") {
    lab_tenant lab(quiet_options());
    SECTION("a good secret gets a bearer token") {
        server_response r = lab.handle(token_request(secret_form()), t0);
        REQUIRE(r.status == 200);
        json j = json::parse(r.body);
        CHECK(j.at("token_type") == "Bearer");
        CHECK(j.at("expires_in") == 3599);
        CHECK(j.at("ext_expires_in") == 3599);
        CHECK(j.at("access_token").get<std::string>().size() >= 40);
        // The tenant's domain name works in the path as well as its id.
        CHECK(
            lab.handle(token_request(secret_form(), std::string(ids::tenant_domain)), t0).status ==
            200);
        // So does the lab's own host as the scope's resource.
        auto form = secret_form();
        form[1].second = std::string("https://") + host + "/.default";
        CHECK(lab.handle(token_request(form), t0).status == 200);
        CHECK(lab.stats().at("tokens_issued") == 3);
    }
    SECTION("a wrong secret is AADSTS7000215 with the documented body") {
        check_aad_error(lab.handle(token_request(secret_form("nope")), t0), 401, "invalid_client",
                        7000215);
    }
    SECTION("unknown tenant, client, scope, grant") {
        check_aad_error(lab.handle(token_request(secret_form(), "contoso.example"), t0), 400,
                        "invalid_request", 90002);
        auto form = secret_form();
        form[0].second = "00000000-0000-0000-0000-000000000001";
        check_aad_error(lab.handle(token_request(form), t0), 400, "unauthorized_client", 700016);
        form = secret_form();
        form[1].second = "https://graph.microsoft.us/.default";
        check_aad_error(lab.handle(token_request(form), t0), 400, "invalid_scope", 70011);
        form = secret_form();
        form[3].second = "password";
        check_aad_error(lab.handle(token_request(form), t0), 400, "unsupported_grant_type", 70003);
        form = secret_form();
        form.erase(form.begin() + 2);
        check_aad_error(lab.handle(token_request(form), t0), 401, "invalid_client", 7000218);
    }
    SECTION("token faults") {
        REQUIRE(lab.set_faults({{"token", "bad_secret"}}).ok);
        check_aad_error(lab.handle(token_request(secret_form()), t0), 401, "invalid_client",
                        7000215);
        REQUIRE(lab.set_faults({{"token", "expired_secret"}}).ok);
        check_aad_error(lab.handle(token_request(secret_form()), t0), 401, "invalid_client",
                        7000222);
        REQUIRE(lab.set_faults({{"token", "disabled"}}).ok);
        check_aad_error(lab.handle(token_request(secret_form()), t0), 400, "unauthorized_client",
                        7000112);
        REQUIRE(lab.set_faults({{"token", "unavailable"}}).ok);
        check_aad_error(lab.handle(token_request(secret_form()), t0), 503,
                        "temporarily_unavailable", 90006);
        REQUIRE(lab.set_faults({{"token", "unavailable_plain"}}).ok);
        server_response plain = lab.handle(token_request(secret_form()), t0);
        CHECK(plain.status == 503);
        CHECK(plain.content_type == "text/html");
        REQUIRE(lab.set_faults({{"token", "hang"}}).ok);
        CHECK(lab.handle(token_request(secret_form()), t0).what == server_response::fault::hang);
        REQUIRE(lab.set_faults({{"token", "ok"}, {"token_ttl_s", 120}}).ok);
        server_response ok = lab.handle(token_request(secret_form()), t0);
        REQUIRE(ok.status == 200);
        CHECK(json::parse(ok.body).at("expires_in") == 120);
    }
}

TEST_CASE("lab token endpoint: certificate client assertions", "[lab]") {
    lab_tenant lab(quiet_options());
    const auto& cred = registered();
    SECTION("PS256 with x5t#S256 and RS256 with x5t are accepted") {
        for (bool pss : {true, false}) {
            INFO("pss=" << pss);
            server_response r = lab.handle(
                token_request(assertion_form(sign_jwt(cred, pss, assertion_claims(t0), pss))), t0);
            INFO(r.body);
            CHECK(r.status == 200);
        }
        // aud names the tenant the way the path does, so a domain path needs a domain aud.
        const std::string dom(ids::tenant_domain);
        CHECK(lab.handle(token_request(
                             assertion_form(sign_jwt(cred, true, assertion_claims(t0, dom), true)),
                             dom),
                         t0)
                  .status == 200);
    }
    SECTION("a tampered signature is AADSTS700027") {
        std::string jwt = sign_jwt(cred, true, assertion_claims(t0), true);
        jwt[jwt.size() - 5] = jwt[jwt.size() - 5] == 'A' ? 'B' : 'A';
        check_aad_error(lab.handle(token_request(assertion_form(jwt)), t0), 401, "invalid_client",
                        700027);
        // A payload changed after signing fails the same way.
        std::string good = sign_jwt(cred, false, assertion_claims(t0), false);
        json other = assertion_claims(t0);
        other["exp"] = t0 / s_us + 99999;
        std::string forged = good.substr(0, good.find('.') + 1) + b64url(other.dump()) +
                             good.substr(good.rfind('.'));
        check_aad_error(lab.handle(token_request(assertion_form(forged)), t0), 401,
                        "invalid_client", 700027);
    }
    SECTION("an unregistered certificate is AADSTS700027") {
        check_aad_error(lab.handle(token_request(assertion_form(
                                       sign_jwt(unregistered(), true, assertion_claims(t0), true))),
                                   t0),
                        401, "invalid_client", 700027);
    }
    SECTION("an expired or not-yet-valid assertion is AADSTS700024") {
        json c = assertion_claims(t0 - 1200 * s_us);  // exp 10 minutes ago
        check_aad_error(
            lab.handle(token_request(assertion_form(sign_jwt(cred, true, c, true))), t0), 401,
            "invalid_client", 700024);
        json future = assertion_claims(t0 + 900 * s_us);  // nbf beyond the 300 s skew
        check_aad_error(
            lab.handle(token_request(assertion_form(sign_jwt(cred, true, future, true))), t0), 401,
            "invalid_client", 700024);
        json skewed = assertion_claims(t0 + 120 * s_us);  // within the skew
        CHECK(lab.handle(token_request(assertion_form(sign_jwt(cred, true, skewed, true))), t0)
                  .status == 200);
    }
    SECTION("audience and issuer must match") {
        json c = assertion_claims(t0);
        c["aud"] =
            "https://login.microsoftonline.com/" + std::string(ids::tenant) + "/oauth2/v2.0/token";
        check_aad_error(
            lab.handle(token_request(assertion_form(sign_jwt(cred, true, c, true))), t0), 401,
            "invalid_client", 700027);
        c = assertion_claims(t0);
        c["iss"] = "someone-else";
        check_aad_error(
            lab.handle(token_request(assertion_form(sign_jwt(cred, true, c, true))), t0), 401,
            "invalid_client", 700021);
        check_aad_error(lab.handle(token_request(assertion_form("not.a.jwt")), t0), 401,
                        "invalid_client", 50027);
    }
}

TEST_CASE("lab graph: authentication and error bodies", "[lab]") {
    lab_tenant lab(quiet_options());
    const std::string signins = "/v1.0/auditLogs/signIns";
    SECTION("no token, an unknown token, an expired token: 401 InvalidAuthenticationToken") {
        for (const std::string& tok : {std::string(), std::string("made-up")}) {
            server_response r = lab.handle(graph_request(signins, tok), t0);
            CHECK(r.status == 401);
            json e = json::parse(r.body).at("error");
            CHECK(e.at("code") == "InvalidAuthenticationToken");
            CHECK(e.at("innerError").at("request-id") == header(r, "request-id"));
            CHECK(std::regex_match(e.at("innerError").at("date").get<std::string>(),
                                   std::regex("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d")));
        }
        REQUIRE(lab.set_faults({{"token_ttl_s", 60}}).ok);
        const std::string token = get_token(lab, t0);
        CHECK(lab.handle(graph_request(signins, token), t0 + 59 * s_us).status == 200);
        server_response r = lab.handle(graph_request(signins, token), t0 + 60 * s_us);
        CHECK(r.status == 401);
        CHECK(json::parse(r.body).at("error").at("message") ==
              "Access token has expired or is not yet valid.");
        CHECK(lab.stats().at("unauthorized") == 3);
    }
    SECTION("expire_tokens_every_s cuts a token's life short") {
        const std::string token = get_token(lab, t0);
        REQUIRE(lab.set_faults({{"expire_tokens_every_s", 30}}).ok);
        CHECK(lab.handle(graph_request(signins, token), t0 + 29 * s_us).status == 200);
        CHECK(lab.handle(graph_request(signins, token), t0 + 31 * s_us).status == 401);
        CHECK(lab.handle(graph_request(signins, get_token(lab, t0 + 31 * s_us)), t0 + 32 * s_us)
                  .status == 200);
    }
    SECTION("client-request-id is echoed; unknown Graph segments are 400 BadRequest") {
        server_request req = graph_request(signins, get_token(lab, t0));
        req.headers.emplace_back("client-request-id", "5a8edde8-c4d9-444f-9542-3dfa16e3cfe5");
        server_response r = lab.handle(req, t0);
        CHECK(header(r, "client-request-id") == "5a8edde8-c4d9-444f-9542-3dfa16e3cfe5");
        server_response bad = lab.handle(graph_request("/v1.0/auditLogs/nonsense", ""), t0);
        CHECK(bad.status == 400);
        CHECK(json::parse(bad.body).at("error").at("code") == "BadRequest");
    }
}

TEST_CASE("lab graph: snapshot paging over 2500 events", "[lab]") {
    lab_tenant lab(quiet_options());
    const std::string token = get_token(lab, t0);
    std::set<std::string> added;
    for (int i = 0; i < 2500; ++i)
        added.insert(
            add(lab, {{"type", "interactive"}, {"delay_s", 0}, {"created_offset_s", -i}}, t0));
    const std::int64_t now = t0 + s_us;
    const std::string first =
        "/v1.0/auditLogs/signIns?$filter=" + enc("createdDateTime ge 2025-11-03T13:00:00Z") +
        "&$top=1000";
    json p1 = graph_json(lab, first, token, now);
    CHECK(p1.at("@odata.context") ==
          std::string("https://") + host + "/v1.0/$metadata#auditLogs/signIns");
    REQUIRE(p1.at("value").size() == 1000);
    const std::string link = p1.at("@odata.nextLink").get<std::string>();
    CHECK(link.rfind(std::string("https://") + host + "/v1.0/auditLogs/signIns?$filter=", 0) == 0);
    CHECK(link.find("&$top=1000&$skiptoken=") != std::string::npos);

    // Events arriving mid-paging belong to the next poll, not to this snapshot.
    add(lab, {{"delay_s", 0}}, now);
    int pages = 0;
    std::vector<json> records(p1.at("value").begin(), p1.at("value").end());
    for (auto& r : all_pages(lab, link.substr(link.find("/v1.0")), token, now + s_us, &pages))
        records.push_back(r);
    CHECK(pages == 2);
    std::vector<std::string> got = ids_of(records);
    REQUIRE(got.size() == 2500);
    CHECK(std::set<std::string>(got.begin(), got.end()) == added);
    // Newest first.
    for (std::size_t i = 1; i < records.size(); ++i)
        CHECK(records[i - 1].at("createdDateTime").get<std::string>().substr(0, 19) >=
              records[i].at("createdDateTime").get<std::string>().substr(0, 19));
    // $orderby asc reverses; an unknown or expired skiptoken is a 400.
    json asc = graph_json(lab, first + "&$orderby=" + enc("createdDateTime asc"), token, now);
    CHECK(asc.at("value").at(0).at("id") == records.back().at("id"));
    CHECK(
        lab.handle(graph_request("/v1.0/auditLogs/signIns?$skiptoken=bogus", token), now).status ==
        400);
    const std::string later = link.substr(link.find("/v1.0"));
    CHECK(lab.handle(graph_request(later, token), now + 601 * s_us).status == 400);
    CHECK(lab.stats().at("served").size() == 2500);
}

TEST_CASE("lab graph: $filter on signIns", "[lab]") {
    lab_tenant lab(quiet_options());
    const std::int64_t now = t0 + 3600 * s_us;  // 15:00
    const std::string token = get_token(lab, now);
    // One sign-in per minute from 14:00 to 14:59 by random users, plus the break-glass accounts.
    for (int m = 0; m < 60; ++m)
        add(lab, {{"delay_s", 0}, {"created_offset_s", -3600 + 60 * m}}, now);
    const std::string bg1 =
        add(lab, {{"user", "bg1"}, {"delay_s", 0}, {"created_offset_s", -1800}}, now);
    const std::string bg2 =
        add(lab, {{"user", "bg2"}, {"delay_s", 0}, {"created_offset_s", -600}}, now);
    const std::string nonint = add(lab,
                                   {{"user", "bg2"},
                                    {"type", "nonInteractive"},
                                    {"success", false},
                                    {"error_code", 50126},
                                    {"delay_s", 0}},
                                   now);
    const std::string sp = add(lab, {{"type", "servicePrincipal"}, {"delay_s", 0}}, now);
    auto count = [&](const std::string& path, const std::string& filter) {
        return all_pages(lab, path + "?$filter=" + enc(filter), token, now).size();
    };
    const std::string v1 = "/v1.0/auditLogs/signIns", beta = "/beta/auditLogs/signIns";
    SECTION("createdDateTime ge / le windows") {
        CHECK(count(v1, "createdDateTime ge 2025-11-03T14:30:00Z") == 30 + 2);
        CHECK(count(v1,
                    "createdDateTime ge 2025-11-03T14:30:00.5Z and createdDateTime le "
                    "2025-11-03T14:39:59.9999999Z") == 9);
        CHECK(count(v1, "createdDateTime le 2025-11-03T14:00:00Z") == 1);
        CHECK(count(v1, "createdDateTime ge 2025-11-03T16:00:00Z") == 0);
        // No filter: every visible interactive sign-in, nothing else.
        CHECK(all_pages(lab, v1, token, now).size() == 62);
    }
    SECTION("userId eq and or-groups, as the daemon sends them") {
        auto one = all_pages(
            lab, v1 + "?$filter=" + enc("userId eq '" + std::string(ids::bg1) + "'"), token, now);
        REQUIRE(one.size() == 1);
        CHECK(one[0].at("id") == bg1);
        CHECK(one[0].at("userPrincipalName") == std::string(ids::bg1_upn));
        auto both = ids_of(all_pages(
            lab,
            v1 + "?$filter=" +
                enc("createdDateTime ge 2025-11-03T14:00:00Z and (userId eq '" +
                    std::string(ids::bg1) + "' or userId eq '" + std::string(ids::bg2) + "')"),
            token, now));
        CHECK(std::set<std::string>(both.begin(), both.end()) == std::set<std::string>{bg1, bg2});
    }
    SECTION("signInEventTypes is beta-only; v1.0 records carry no beta properties") {
        const std::string f =
            "createdDateTime ge 2025-11-03T14:00:00Z and signInEventTypes/any(t: t eq "
            "'nonInteractiveUser') "
            "and (userId eq '" +
            std::string(ids::bg2) + "')";
        auto r = all_pages(lab, beta + "?$filter=" + enc(f), token, now);
        REQUIRE(r.size() == 1);
        CHECK(r[0].at("id") == nonint);
        CHECK(r[0].at("signInEventTypes") == json::array({"nonInteractiveUser"}));
        CHECK(r[0].at("status").at("errorCode") == 50126);
        CHECK(r[0].at("status").at("failureReason") ==
              "Invalid username or password or Invalid on-premise username or password.");
        CHECK(r[0].at("isInteractive") == false);
        server_response v1r = lab.handle(graph_request(v1 + "?$filter=" + enc(f), token), now);
        CHECK(v1r.status == 400);
        CHECK(json::parse(v1r.body).at("error").at("code") == "Request_UnsupportedQuery");
        auto sps = all_pages(
            lab,
            beta + "?$filter=" +
                enc("signInEventTypes/any(t: t eq 'servicePrincipal' or t eq 'managedIdentity')"),
            token, now);
        REQUIRE(sps.size() == 1);
        CHECK(sps[0].at("id") == sp);
        CHECK_FALSE(sps[0].at("servicePrincipalId").get<std::string>().empty());
        CHECK(sps[0].at("userId") == "");
        // Beta without the lambda lists interactive sign-ins only, with beta properties.
        auto plain = all_pages(lab, beta, token, now);
        CHECK(plain.size() == 62);
        CHECK(plain[0].contains("signInEventTypes"));
        auto v1plain = all_pages(lab, v1, token, now);
        for (const auto& rec : v1plain) {
            CHECK_FALSE(rec.contains("signInEventTypes"));
            CHECK_FALSE(rec.contains("authenticationRequirement"));
            CHECK(rec.contains("appliedConditionalAccessPolicies"));
            CHECK(rec.at("location").contains("geoCoordinates"));
        }
    }
    SECTION("anything else is 400 Request_UnsupportedQuery") {
        for (const std::string f :
             {"createdDateTime gt 2025-11-03T14:00:00Z",
              "createdDateTime ge '2025-11-03T14:00:00Z'", "createdDateTime ge 2025-11-03T14:00:00",
              "startswith(userPrincipalName,'bg')", "userId eq 'a' or userId eq 'b'",
              "userId ne 'a'", "(userId eq 'a' or createdDateTime ge 2025-11-03T14:00:00Z)",
              "initiatedBy/user/id eq 'a'", "signInEventTypes/any(t: t eq 'everything')",
              "createdDateTime ge 2025-11-03T14:00:00Z and", "userId eq 'a' and  and userId eq 'b'",
              "appDisplayName eq 'Azure Portal'"}) {
            INFO(f);
            server_response r = lab.handle(graph_request(beta + "?$filter=" + enc(f), token), now);
            CHECK(r.status == 400);
            CHECK(json::parse(r.body).at("error").at("code") == "Request_UnsupportedQuery");
        }
        CHECK(lab.handle(graph_request(v1 + "?$top=0", token), now).status == 400);
        CHECK(lab.handle(graph_request(v1 + "?$top=1001", token), now).status == 400);
        CHECK(lab.handle(graph_request(v1 + "?$orderby=userId", token), now).status == 400);
        CHECK(lab.stats().at("last_filter").at(beta) == "appDisplayName eq 'Azure Portal'");
    }
}

TEST_CASE("lab graph: directoryAudits filters", "[lab]") {
    lab_tenant lab(quiet_options());
    const std::string token = get_token(lab, t0);
    const std::int64_t now = t0 + 600 * s_us;
    auto audit = [&](json spec) {
        spec["delay_s"] = 0;
        auto r = lab.add_audit(spec, now);
        INFO(r.body.dump());
        REQUIRE(r.ok);
        return r.body.at("id").get<std::string>();
    };
    const std::string reset =
        audit({{"activity", "Reset user password"}, {"actor", "admin"}, {"target", "bg1"}});
    const std::string by_bg2 =
        audit({{"activity", "Add member to role"}, {"actor", "bg2"}, {"target", "user"}});
    const std::string by_app =
        audit({{"activity", "Add member to group"}, {"actor", "app"}, {"target", "user"}});
    for (int i = 0; i < 5; ++i)
        audit({{"activity", "Update user"}, {"actor", "admin"}, {"target", "user"}});
    const std::string path = "/v1.0/auditLogs/directoryAudits";
    auto query = [&](const std::string& f) {
        return ids_of(all_pages(lab, path + "?$filter=" + enc(f), token, now));
    };

    CHECK(query("targetResources/any(t: t/id eq '" + std::string(ids::bg1) + "')") ==
          std::vector<std::string>{reset});
    CHECK(query("initiatedBy/user/id eq '" + std::string(ids::bg2) + "'") ==
          std::vector<std::string>{by_bg2});
    // The daemon's own shape: a time bound and an or-group mixing both forms.
    auto mixed =
        query("activityDateTime ge 2025-11-03T14:00:00Z and (initiatedBy/user/id eq '" +
              std::string(ids::bg1) + "' or initiatedBy/user/id eq '" + std::string(ids::bg2) +
              "' or targetResources/any(t: t/id eq '" + std::string(ids::bg1) +
              "') or targetResources/any(t: t/id eq '" + std::string(ids::bg2) + "'))");
    CHECK(std::set<std::string>(mixed.begin(), mixed.end()) ==
          std::set<std::string>{reset, by_bg2});
    CHECK(query("activityDateTime ge 2025-11-03T14:00:00Z").size() == 8);
    CHECK(query("activityDateTime le 2025-11-03T14:00:00Z").empty());

    json page = graph_json(lab, path, token, now);
    CHECK(page.at("@odata.context") ==
          std::string("https://") + host + "/v1.0/$metadata#auditLogs/directoryAudits");
    json rec;
    for (const auto& r : page.at("value"))
        if (r.at("id") == reset) rec = r;
    REQUIRE(rec.is_object());
    CHECK(rec.at("id").get<std::string>().rfind("Directory_", 0) == 0);
    CHECK(rec.at("activityDisplayName") == "Reset user password");
    CHECK(rec.at("category") == "UserManagement");
    CHECK(rec.at("initiatedBy").at("user").at("id") == std::string(ids::admin));
    CHECK(rec.at("initiatedBy").at("app").is_null());
    CHECK(rec.at("targetResources").at(0).at("userPrincipalName") == std::string(ids::bg1_upn));
    CHECK_FALSE(rec.contains("userAgent"));  // beta only
    for (const auto& r : page.at("value"))
        if (r.at("id") == by_app) CHECK(r.at("initiatedBy").at("user").is_null());
    json beta = graph_json(lab, "/beta/auditLogs/directoryAudits", token, now);
    CHECK(beta.at("value").at(0).contains("userAgent"));

    for (const std::string f :
         {"signInEventTypes/any(t: t eq 'servicePrincipal')", "userId eq 'x'",
          "createdDateTime ge 2025-11-03T14:00:00Z", "targetResources/any(t: t/displayName eq 'x')",
          "targetResources/any(t: startswith(t/displayName,'x'))"}) {
        INFO(f);
        server_response r = lab.handle(graph_request(path + "?$filter=" + enc(f), token), now);
        CHECK(r.status == 400);
        CHECK(json::parse(r.body).at("error").at("code") == "Request_UnsupportedQuery");
    }
}

TEST_CASE("lab graph: ingestion delay / late events / republished duplicates", "[lab]") {
    lab_tenant lab(quiet_options());
    const std::string token = get_token(lab, t0);
    const std::string bg1_filter = "/v1.0/auditLogs/signIns?$filter=" +
                                   enc("createdDateTime ge 2025-11-03T13:00:00Z and (userId eq '" +
                                       std::string(ids::bg1) + "')");
    auto visible = [&](std::int64_t now) { return ids_of(all_pages(lab, bg1_filter, token, now)); };

    auto r = lab.add_sign_in({{"user", "bg1"}, {"delay_s", 5}}, t0);
    REQUIRE(r.ok);
    const std::string id = r.body.at("id");
    CHECK(r.body.at("created") == "2025-11-03T14:00:00.000000Z");
    CHECK(r.body.at("visible_at") == "2025-11-03T14:00:05.000000Z");
    CHECK(visible(t0 + 4 * s_us).empty());
    CHECK(visible(t0 + 5 * s_us) == std::vector<std::string>{id});

    // Created 20 minutes ago, visible only from now on: an old createdDateTime shows up late.
    const std::int64_t now = t0 + 1800 * s_us;
    auto late =
        lab.add_sign_in({{"user", "bg1"}, {"delay_s", 2}, {"created_offset_s", -1200}}, now);
    REQUIRE(late.ok);
    const std::string late_id = late.body.at("id");
    CHECK(late.body.at("created") == "2025-11-03T14:10:00.000000Z");
    CHECK(visible(now + s_us) == std::vector<std::string>{id});
    auto after = all_pages(lab, bg1_filter, token, now + 2 * s_us);
    REQUIRE(after.size() == 2);
    CHECK(after[0].at("id") == late_id);
    CHECK(after[0].at("createdDateTime").get<std::string>().rfind("2025-11-03T14:10:00", 0) == 0);

    // Republished (a revision with more fields): the same id is served again.
    auto rep = lab.republish(
        {{"id", late_id}, {"delay_s", 1}, {"fields", {{"riskState", "atRisk"}}}}, now + 3 * s_us);
    REQUIRE(rep.ok);
    CHECK(rep.body.at("id") == late_id);
    CHECK(visible(now + 3 * s_us).size() == 2);
    auto dup = all_pages(lab, bg1_filter, token, now + 4 * s_us);
    REQUIRE(dup.size() == 3);
    int copies = 0, revised = 0;
    for (const auto& rec : dup) {
        copies += rec.at("id") == late_id;
        revised += rec.at("id") == late_id && rec.at("riskState") == "atRisk";
    }
    CHECK(copies == 2);
    CHECK(revised == 1);
    CHECK(lab.stats().at("served").at(late_id) == 4);  // 1 + 1 before the copy is visible, then 2
    // replace: true leaves only the newest copy.
    REQUIRE(lab.republish({{"id", late_id}, {"delay_s", 0}, {"replace", true}}, now + 5 * s_us).ok);
    CHECK(all_pages(lab, bg1_filter, token, now + 5 * s_us).size() == 2);
    CHECK_FALSE(lab.republish({{"id", "no-such-id"}}, now).ok);
}

TEST_CASE("lab graph: the reports throttle and its Retry-After forms", "[lab]") {
    lab_options o = quiet_options();
    o.throttle_limit = 5;
    o.throttle_window_s = 10;
    lab_tenant lab(o);
    const std::string token = get_token(lab, t0);
    const std::string path = "/v1.0/auditLogs/signIns";
    struct form {
        const char* name;
        const char* pattern;  // "" = no header
    };
    const form forms[] = {
        {"seconds", "^(9|10)$"},
        {"fractional", "^[0-9]+\\.[0-9]+$"},
        {"http-date", "^[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} GMT$"},
        {"missing", ""},
        {"garbage", "^soon$"}};
    std::int64_t now = t0;
    for (const auto& f : forms) {
        INFO(f.name);
        REQUIRE(lab.set_faults({{"retry_after", f.name}}).ok);
        now += 60 * s_us;  // a fresh window
        for (int i = 0; i < 5; ++i)
            CHECK(lab.handle(graph_request(path, token), now + i * 100000).status == 200);
        server_response r = lab.handle(graph_request(path, token), now + 500000);
        REQUIRE(r.status == 429);
        CHECK(json::parse(r.body).at("error").at("code") == "TooManyRequests");
        CHECK(json::parse(r.body).at("error").at("message") == "Too many requests.");
        CHECK_FALSE(header(r, "request-id").empty());
        if (std::string(f.pattern).empty())
            CHECK_FALSE(has_header(r, "Retry-After"));
        else
            CHECK(std::regex_match(header(r, "Retry-After"), std::regex(f.pattern)));
    }
    // Throttled requests count too: a client that keeps retrying stays throttled.
    for (int k = 5; k <= 9; ++k)
        CHECK(lab.handle(graph_request(path, token), now + k * s_us).status == 429);
    CHECK(lab.handle(graph_request(path, token), now + 10 * s_us + 500000).status == 429);
    CHECK(lab.handle(graph_request(path, token), now + 30 * s_us).status == 200);
    json st = lab.stats();
    CHECK(st.at("max_in_10s") == 11);  // every request received counts, throttled or not
    CHECK(st.at("throttled") == 11);

    SECTION("a client that keeps to 5 per 10 s is never throttled and max_in_10s says so") {
        lab.handle(graph_request("/lab/reset_stats", ""), now);  // GET: refused, stats unchanged
        server_request reset;
        reset.method = "POST";
        reset.target = "/lab/reset_stats";
        REQUIRE(lab.handle(reset, now).status == 200);
        std::int64_t t = now + 100 * s_us;
        for (int i = 0; i < 20; ++i, t += 2 * s_us + 10000)
            CHECK(lab.handle(graph_request(path, token), t).status == 200);
        CHECK(lab.stats().at("max_in_10s") == 5);
        CHECK(lab.stats().at("throttled") == 0);
    }
    SECTION("throttle_ratio answers 429 to that share of otherwise good requests") {
        REQUIRE(lab.set_faults({{"throttle_limit", 0}, {"throttle_ratio", 0.9}}).ok);
        int throttled = 0;
        for (int i = 0; i < 100; ++i)
            throttled += lab.handle(graph_request(path, token), now + 100 * s_us).status == 429;
        CHECK(throttled == 90);
    }
}

TEST_CASE("lab graph: paging and status faults", "[lab]") {
    lab_tenant lab(quiet_options());
    const std::string token = get_token(lab, t0);
    for (int i = 0; i < 5; ++i)
        add(lab, {{"delay_s", 0}, {"created_offset_s", -i}}, t0);
    const std::int64_t now = t0 + s_us;
    const std::string path =
        "/v1.0/auditLogs/signIns?$filter=" + enc("createdDateTime ge 2025-11-03T13:00:00Z");
    SECTION("page_size overrides $top") {
        REQUIRE(lab.set_faults({{"page_size", 2}}).ok);
        int pages = 0;
        CHECK(all_pages(lab, path, token, now, &pages).size() == 5);
        CHECK(pages == 3);
    }
    SECTION("next_link_host points nextLinks elsewhere") {
        REQUIRE(lab.set_faults({{"page_size", 2}, {"next_link_host", "graph.evil.example"}}).ok);
        json p = graph_json(lab, path, token, now);
        CHECK(p.at("@odata.nextLink")
                  .get<std::string>()
                  .rfind("https://graph.evil.example/v1.0/auditLogs/signIns?$filter=", 0) == 0);
    }
    SECTION("next_link_loop serves the same page forever") {
        REQUIRE(lab.set_faults({{"next_link_loop", true}}).ok);
        json p = graph_json(lab, path, token, now);
        const std::string link = p.at("@odata.nextLink");
        json again = graph_json(lab, link.substr(link.find("/v1.0")), token, now);
        CHECK(again.at("@odata.nextLink") == link);
        CHECK(again.at("value") == p.at("value"));
    }
    SECTION("empty_first_page: nothing on page one, everything after") {
        REQUIRE(lab.set_faults({{"empty_first_page", true}}).ok);
        json p = graph_json(lab, path, token, now);
        CHECK(p.at("value").empty());
        REQUIRE(p.contains("@odata.nextLink"));
        CHECK(all_pages(lab, path, token, now).size() == 5);
    }
    SECTION("graph_status 503 for a number of requests, with Retry-After") {
        REQUIRE(lab.set_faults({{"graph_status", 503}, {"graph_status_count", 2}}).ok);
        for (int i = 0; i < 2; ++i) {
            server_response r = lab.handle(graph_request(path, token), now);
            CHECK(r.status == 503);
            CHECK(header(r, "Retry-After") == "2");
            CHECK(json::parse(r.body).at("error").at("innerError").contains("request-id"));
        }
        CHECK(lab.handle(graph_request(path, token), now).status == 200);
        REQUIRE(lab.set_faults({{"graph_status", 403}}).ok);
        server_response denied = lab.handle(graph_request(path, token), now);
        CHECK(denied.status == 403);
        CHECK(json::parse(denied.body).at("error").at("code") == "Authorization_RequestDenied");
        lab.reset_faults();
        CHECK(lab.handle(graph_request(path, token), now).status == 200);
    }
    SECTION("graph_transport faults") {
        REQUIRE(lab.set_faults({{"graph_transport", "reset"}, {"graph_transport_count", 1}}).ok);
        CHECK(lab.handle(graph_request(path, token), now).what == server_response::fault::reset);
        CHECK(lab.handle(graph_request(path, token), now).what == server_response::fault::none);
        REQUIRE(lab.set_faults({{"graph_transport", "hang"}}).ok);
        CHECK(lab.handle(graph_request(path, token), now).what == server_response::fault::hang);
    }
    SECTION("bad fault specs change nothing") {
        CHECK_FALSE(lab.set_faults({{"page_size", 2}, {"no_such_fault", 1}}).ok);
        CHECK_FALSE(lab.set_faults({{"page_size", "two"}}).ok);
        CHECK_FALSE(lab.set_faults({{"retry_after", "later"}}).ok);
        CHECK_FALSE(lab.set_faults({{"throttle_ratio", 1.5}}).ok);
        int pages = 0;
        all_pages(lab, path, token, now, &pages);
        CHECK(pages == 1);
    }
}

TEST_CASE("lab control API over handle()", "[lab]") {
    lab_tenant lab(quiet_options());
    auto call = [&](const std::string& method, const std::string& target, const std::string& body) {
        server_request r;
        r.method = method;
        r.target = target;
        r.headers = {{"host", "127.0.0.1:9000"}, {"content-type", "application/json"}};
        r.body = body;
        return lab.handle(r, t0);
    };
    server_response r = call(
        "POST", "/lab/signin",
        R"({"user":"bg2","success":false,"error_code":50126,"type":"nonInteractive","delay_s":0})");
    REQUIRE(r.status == 200);
    json j = json::parse(r.body);
    CHECK(j.at("created") == "2025-11-03T14:00:00.000000Z");
    CHECK(j.at("visible_at") == j.at("created"));
    server_response ev = call("GET", "/lab/events?bodies=1", "");
    REQUIRE(ev.status == 200);
    json events = json::parse(ev.body);
    REQUIRE(events.at("count") == 1);
    const json& body = events.at("events").at(0).at("body");
    CHECK(body.at("id") == j.at("id"));
    CHECK(body.at("userId") == std::string(ids::bg2));
    CHECK(body.at("signInEventTypes") == json::array({"nonInteractiveUser"}));
    CHECK(body.at("status").at("errorCode") == 50126);

    CHECK(call("POST", "/lab/signin",
               R"({"type":"servicePrincipal","fields":{"appDisplayName":"x"}})")
              .status == 200);
    CHECK(call("POST", "/lab/signin", "{not json").status == 400);
    CHECK(call("POST", "/lab/signin", R"({"type":"sideways"})").status == 400);
    CHECK(call("POST", "/lab/signin", R"({"user":"nobody"})").status == 400);
    const std::string audit = R"({"activity":"Reset user password","target":"bg1","delay_s":1,)"
                              R"("actor":"cc474c45-ee95-4669-8e8e-b7658862e5cc"})";
    CHECK(call("POST", "/lab/audit", audit).status == 200);
    CHECK(call("POST", "/lab/republish", R"({"id":"missing"})").status == 404);
    CHECK(call("POST", "/lab/faults", R"({"page_size":3})").status == 200);
    CHECK(call("POST", "/lab/faults", R"({"bogus":3})").status == 400);
    CHECK(lab.stats().at("faults").at("page_size") == 3);
    CHECK(call("POST", "/lab/reset_faults", "").status == 200);
    CHECK(lab.stats().at("faults").at("page_size") == 0);
    CHECK(call("GET", "/lab/nothing", "").status == 404);
    CHECK(json::parse(call("GET", "/lab/stats", "").body).at("events") == 3);
}

TEST_CASE("lab demo scenario: background traffic and the break-glass script", "[lab]") {
    lab_options o = quiet_options();
    o.scenario = "demo";
    o.rate_per_s = 4;
    o.backfill_s = 300;
    o.ingestion_delay_min_s = 2;
    o.ingestion_delay_max_s = 5;
    std::vector<std::string> log;
    o.log = [&](const std::string& line) { log.push_back(line); };
    lab_tenant lab(o);
    lab.tick(t0);
    CHECK(lab.start_us() == t0);
    json before = lab.events(false);
    CHECK(before.at("count").get<int>() > 900);  // 5 minutes of history at 4/s (+ audits)
    CHECK(log.empty());

    for (std::int64_t t = t0; t <= t0 + 45 * s_us; t += 200000)
        lab.tick(t);
    REQUIRE(log.size() == 3);
    json all = lab.events(true);
    int bg1 = 0, bg2 = 0, reset = 0, interactive = 0, noninteractive = 0, sp = 0;
    for (const auto& e : all.at("events")) {
        const json& b = e.at("body");
        if (e.at("kind") == "signIn") {
            const std::string type = e.at("eventType");
            interactive += type == "interactiveUser";
            noninteractive += type == "nonInteractiveUser";
            sp += type == "servicePrincipal" || type == "managedIdentity";
            if (b.at("userId") == std::string(ids::bg1)) {
                ++bg1;
                CHECK(e.at("created") == "2025-11-03T14:00:15.000000Z");
                CHECK(type == "interactiveUser");
                CHECK(b.at("status").at("errorCode") == 0);
            }
            if (b.at("userId") == std::string(ids::bg2)) {
                ++bg2;
                CHECK(e.at("created") == "2025-11-03T14:00:25.000000Z");
                CHECK(type == "nonInteractiveUser");
                CHECK(b.at("status").at("errorCode") == 50126);
            }
        } else if (b.at("activityDisplayName") == "Reset user password") {
            ++reset;
            CHECK(e.at("created") == "2025-11-03T14:00:35.000000Z");
            CHECK(b.at("initiatedBy").at("user").at("id") == std::string(ids::admin));
            CHECK(b.at("targetResources").at(0).at("id") == std::string(ids::bg1));
            const std::string visible = e.at("visible_at");
            CHECK(visible >= "2025-11-03T14:00:37");
            CHECK(visible <= "2025-11-03T14:00:40");
        }
    }
    CHECK(bg1 == 1);
    CHECK(bg2 == 1);
    CHECK(reset == 1);
    // The mix: non-interactive dominates, then interactive, then workload identities.
    CHECK(noninteractive > interactive);
    CHECK(interactive > sp);
    CHECK(sp > 0);

    // The daemon's poll finds the bg1 sign-in once it is visible.
    const std::string token = get_token(lab, t0 + 45 * s_us);
    auto found = all_pages(lab,
                           "/v1.0/auditLogs/signIns?$filter=" +
                               enc("createdDateTime ge 2025-11-03T14:00:00Z and (userId eq '" +
                                   std::string(ids::bg1) + "')"),
                           token, t0 + 45 * s_us);
    CHECK(found.size() == 1);

    // Same seed, same tenant: the script's events get the same ids.
    lab_options o2 = o;
    o2.log = nullptr;
    lab_tenant twin(o2);
    for (std::int64_t t = t0; t <= t0 + 45 * s_us; t += 200000)
        twin.tick(t);
    CHECK(twin.events(false).at("count") == all.at("count"));
    CHECK(twin.events(false).at("events").back().at("id") == all.at("events").back().at("id"));
}
