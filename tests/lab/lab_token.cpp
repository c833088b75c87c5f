// The Microsoft identity platform token endpoint (v2.0, client credentials; graph.md §3):
// secret or certificate assertion (RS256 + x5t, PS256 + x5t#S256), AADSTS error bodies.
#include "lab/lab_internal.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cmath>
#include <stdexcept>

namespace glasswatch::lab::detail {

struct registered_cert {
    std::shared_ptr<EVP_PKEY> key;
    std::string x5t;       // base64url SHA-1 of the DER certificate
    std::string x5t_s256;  // base64url SHA-256 of the DER certificate
};

namespace {

using nlohmann::json;

constexpr std::string_view jwt_bearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

std::string digest_b64url(const EVP_MD* md, const unsigned char* data, std::size_t n) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data, n, out, &len, md, nullptr) != 1) throw std::runtime_error("digest failed");
    return base64url_encode({reinterpret_cast<const char*>(out), len});
}

std::shared_ptr<registered_cert> parse_cert(const std::string& pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
    if (!bio) throw std::runtime_error("lab: BIO_new_mem_buf failed");
    std::unique_ptr<X509, decltype(&X509_free)> x509(
        PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
    if (!x509) {
        ERR_clear_error();
        throw std::invalid_argument("lab: client_certificates_pem holds an unreadable certificate");
    }
    unsigned char* der = nullptr;
    int der_len = i2d_X509(x509.get(), &der);
    if (der_len <= 0) throw std::runtime_error("lab: i2d_X509 failed");
    auto cert = std::make_shared<registered_cert>();
    cert->x5t = digest_b64url(EVP_sha1(), der, static_cast<std::size_t>(der_len));
    cert->x5t_s256 = digest_b64url(EVP_sha256(), der, static_cast<std::size_t>(der_len));
    OPENSSL_free(der);
    EVP_PKEY* key = X509_get_pubkey(x509.get());
    if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        EVP_PKEY_free(key);
        throw std::invalid_argument("lab: client certificates must carry an RSA key");
    }
    cert->key.reset(key, &EVP_PKEY_free);
    return cert;
}

bool verify_signature(EVP_PKEY* key, bool pss, std::string_view signed_part, std::string_view sig) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (!ctx) return false;
    EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
    bool ok = EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key) == 1;
    if (ok && pss) {
        // PS256 (RFC 7518 §3.5): RSASSA-PSS, SHA-256, MGF1 with SHA-256, salt = hash length.
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1;
    }
    ok = ok &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(signed_part.data()),
                          signed_part.size()) == 1;
    ERR_clear_error();  // a failed verification leaves entries that would confuse later callers
    return ok;
}

std::string random_token() {
    unsigned char bytes[32];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("lab: RAND_bytes failed");
    return base64url_encode({reinterpret_cast<const char*>(bytes), sizeof bytes});
}

// An AADSTS error in the exact shape of graph.md §3.5.
test::server_response aad_error(const token_context& ctx, int status, const char* error, int code,
                                const std::string& text) {
    const std::string trace = ctx.ids.guid(), correlation = ctx.ids.guid();
    const std::string ts = aad_timestamp(ctx.now_us);
    json body = {
        {"error", error},
        {"error_description", "AADSTS" + std::to_string(code) + ": " + text +
                                  "\r\nTrace ID: " + trace + "\r\nCorrelation ID: " + correlation +
                                  "\r\nTimestamp: " + ts},
        {"error_codes", json::array({code})},
        {"timestamp", ts},
        {"trace_id", trace},
        {"correlation_id", correlation},
        {"error_uri", "https://login.microsoftonline.com/error?code=" + std::to_string(code)}};
    test::server_response r;
    r.status = status;
    r.body = body.dump();
    r.content_type = "application/json; charset=utf-8";
    r.headers = {{"Cache-Control", "no-store, no-cache"},
                 {"Pragma", "no-cache"},
                 {"x-ms-request-id", trace}};
    return r;
}

std::string missing_param(const char* name) {
    return std::string("The request body must contain the following parameter: '") + name + "'.";
}

const std::string* find_param(const param_list& params, std::string_view name) {
    for (const auto& [k, v] : params)
        if (k == name) return &v;
    return nullptr;
}

struct assertion_error {
    int code;
    std::string text;
};

}  // namespace

cert_store load_certificates(const std::vector<std::string>& pems) {
    cert_store store;
    for (const auto& pem : pems)
        store.certs.push_back(parse_cert(pem));
    return store;
}

namespace {

// Checks a client assertion the way Entra ID does: the key named by the thumbprint, then the
// signature, then audience, issuer/subject and the validity window.
std::optional<assertion_error> verify_assertion(std::string_view jwt, const token_context& ctx,
                                                const std::string& host,
                                                std::string_view tenant_in_path,
                                                const std::string& client_id) {
    const assertion_error malformed{50027, "JWT token is invalid or malformed."};
    std::size_t d1 = jwt.find('.');
    std::size_t d2 = d1 == std::string_view::npos ? d1 : jwt.find('.', d1 + 1);
    if (d1 == std::string_view::npos || d2 == std::string_view::npos ||
        jwt.find('.', d2 + 1) != std::string_view::npos)
        return malformed;
    auto header_text = base64url_decode(jwt.substr(0, d1));
    auto payload_text = base64url_decode(jwt.substr(d1 + 1, d2 - d1 - 1));
    auto signature = base64url_decode(jwt.substr(d2 + 1));
    if (!header_text || !payload_text || !signature) return malformed;
    json header = json::parse(*header_text, nullptr, false);
    json claims = json::parse(*payload_text, nullptr, false);
    if (!header.is_object() || !claims.is_object()) return malformed;

    std::string alg =
        header.value("alg", json()).is_string() ? header["alg"].get<std::string>() : "";
    if (alg != "RS256" && alg != "PS256")
        return assertion_error{50027,
                               "Invalid JWT token. Unsupported signing algorithm '" + alg + "'."};

    const registered_cert* cert = nullptr;
    std::string thumbprint;
    if (auto it = header.find("x5t#S256"); it != header.end() && it->is_string()) {
        thumbprint = it->get<std::string>();
        for (const auto& c : ctx.certs.certs)
            if (c->x5t_s256 == thumbprint) cert = c.get();
    } else if (auto it1 = header.find("x5t"); it1 != header.end() && it1->is_string()) {
        thumbprint = it1->get<std::string>();
        for (const auto& c : ctx.certs.certs)
            if (c->x5t == thumbprint) cert = c.get();
    }
    if (!cert)
        return assertion_error{
            700027,
            "The certificate with identifier used to sign the client assertion is not "
            "registered on application. [Reason - The key was not found., Thumbprint of key "
            "used by client: '" +
                thumbprint +
                "', Please visit the Azure Portal, Graph "
                "Explorer or directly use MS Graph to see configured keys for app Id '" +
                client_id + "'.]"};
    if (!verify_signature(cert->key.get(), alg == "PS256", jwt.substr(0, d2), *signature))
        return assertion_error{700027, "Client assertion failed signature validation."};

    const std::string expected_aud =
        "https://" + host + "/" + std::string(tenant_in_path) + "/oauth2/v2.0/token";
    auto aud = claims.find("aud");
    if (aud == claims.end() || !aud->is_string() || aud->get<std::string>() != expected_aud)
        return assertion_error{
            700027, "Client assertion audience claim does not match Realm issuer. Expected '" +
                        expected_aud + "'."};
    auto str_claim = [&](const char* name) {
        auto it = claims.find(name);
        return it != claims.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (!iequals(str_claim("iss"), client_id) || !iequals(str_claim("sub"), client_id))
        return assertion_error{
            700021,
            "Client assertion application identifier doesn't match 'client_id' "
            "parameter. Review the documentation at "
            "https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."};
    auto exp = claims.find("exp");
    if (exp == claims.end() || !exp->is_number()) return malformed;
    auto nbf = claims.find("nbf");
    if (nbf != claims.end() && !nbf->is_number()) return malformed;
    const double now_s = static_cast<double>(ctx.now_us) / 1e6;
    const double exp_s = exp->get<double>();
    const double nbf_s = nbf != claims.end() ? nbf->get<double>() : now_s;
    if (exp_s <= now_s || nbf_s > now_s + ctx.opts.assertion_skew_s) {
        auto iso = [](double s) {
            return iso_time(static_cast<std::int64_t>(std::floor(s)) * 1000000, 0);
        };
        return assertion_error{
            700024,
            "Client assertion is not within its valid time range. Current "
            "time: " +
                iso(now_s) + ", assertion valid from " + iso(nbf_s) +
                ", expiry time of assertion " + iso(exp_s) +
                ". Review the documentation at "
                "https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."};
    }
    return std::nullopt;
}

}  // namespace

token_outcome handle_token(const test::server_request& req, std::string_view tenant_in_path,
                           const token_context& ctx) {
    token_outcome out;
    const lab_options& o = ctx.opts;
    auto fail = [&](int status, const char* error, int code, const std::string& text) {
        out.response = aad_error(ctx, status, error, code, text);
        return out;
    };
    if (req.method != "POST")
        return fail(400, "invalid_request", 900561,
                    "The endpoint only accepts POST, OPTIONS requests. Received a " + req.method +
                        " request.");
    if (!iequals(tenant_in_path, o.tenant_id) && !iequals(tenant_in_path, o.tenant_domain))
        return fail(
            400, "invalid_request", 90002,
            "Tenant '" + std::string(tenant_in_path) +
                "' not found. Check to make sure you have the correct tenant ID and are "
                "signing into the correct cloud. Check with your subscription administrator, "
                "this may happen if there are no active subscriptions for the tenant.");
    if (ctx.fault == "hang") {
        out.response.what = test::server_response::fault::hang;
        return out;
    }
    if (ctx.fault == "unavailable")
        return fail(503, "temporarily_unavailable", 90006,
                    "The service is temporarily unavailable. Please try again later.");
    if (ctx.fault == "unavailable_plain") {
        out.response.status = 503;
        out.response.content_type = "text/html";
        out.response.body =
            "<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body><h2>Service "
            "Unavailable</h2><p>HTTP Error 503. The service is unavailable.</p></body></html>";
        return out;
    }

    // A body that is not form-encoded is read as no parameters at all, as Entra ID does.
    const bool form =
        lower(header_of(req, "content-type")).find("application/x-www-form-urlencoded") !=
        std::string::npos;
    const param_list params = form ? parse_params(req.body) : param_list{};
    std::string basic_id, basic_secret;
    bool basic = false;
    if (std::string auth = header_of(req, "authorization");
        auth.size() > 6 && iequals(auth.substr(0, 6), "basic ")) {
        if (auto decoded = base64_decode(auth.substr(6));
            decoded && decoded->find(':') != std::string::npos) {
            // RFC 6749 §2.3.1: both halves are form-urlencoded before base64.
            basic = true;
            basic_id = url_decode(decoded->substr(0, decoded->find(':')), true);
            basic_secret = url_decode(decoded->substr(decoded->find(':') + 1), true);
        }
    }

    const std::string* grant = find_param(params, "grant_type");
    if (!grant) return fail(400, "invalid_request", 900144, missing_param("grant_type"));
    if (*grant != "client_credentials")
        return fail(400, "unsupported_grant_type", 70003,
                    "The app requested an unsupported grant type '" + *grant + "'.");
    const std::string* client_param = find_param(params, "client_id");
    std::string client_id = client_param ? *client_param : basic_id;
    if (client_id.empty()) return fail(400, "invalid_request", 900144, missing_param("client_id"));
    if (!iequals(client_id, o.client_id))
        return fail(400, "unauthorized_client", 700016,
                    "Application with identifier '" + client_id +
                        "' was not found in the directory 'Contoso'. This can happen if the "
                        "application has not been installed by the administrator of the tenant or "
                        "consented to by any user in the tenant. You may have sent your "
                        "authentication request to the wrong tenant.");
    if (ctx.fault == "disabled")
        return fail(
            400, "unauthorized_client", 7000112,
            "Application '" + o.client_id + "'(" + o.client_display_name + ") is disabled.");

    std::string host = header_of(req, "host");
    if (host.empty()) host = o.default_host;
    const std::string* scope = find_param(params, "scope");
    if (!scope) return fail(400, "invalid_request", 900144, missing_param("scope"));
    if (*scope != "https://graph.microsoft.com/.default" &&
        *scope != "https://" + host + "/.default")
        return fail(
            400, "invalid_scope", 70011,
            "The provided request must include a 'scope' input parameter. The provided value "
            "for the input parameter 'scope' is not valid. The scope " +
                *scope + " is not valid.");

    const std::string* secret = find_param(params, "client_secret");
    if (!secret && basic) secret = &basic_secret;
    const std::string* assertion_type = find_param(params, "client_assertion_type");
    const std::string* assertion = find_param(params, "client_assertion");
    if (!secret && !assertion && !assertion_type)
        return fail(401, "invalid_client", 7000218,
                    "The request body must contain the following parameter: 'client_assertion' or "
                    "'client_secret'.");
    if (ctx.fault == "bad_secret")
        return fail(
            401, "invalid_client", 7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is "
            "the client secret value, not the client secret ID, for a secret added to app '" +
                o.client_id + "'.");
    if (ctx.fault == "expired_secret")
        return fail(401, "invalid_client", 7000222,
                    "The provided client secret keys for app '" + o.client_id +
                        "' are expired. Visit the Azure portal to create new keys for your app: "
                        "https://aka.ms/NewClientSecret, or consider using certificate credentials "
                        "for added security: https://aka.ms/certCreds.");
    if (secret && (assertion || assertion_type))
        return fail(400, "invalid_request", 9002313,
                    "Invalid request. Request is malformed or invalid: both client_secret and "
                    "client_assertion were supplied.");
    if (secret) {
        if (o.client_secret.empty() || *secret != o.client_secret)
            return fail(
                401, "invalid_client", 7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                "is the client secret value, not the client secret ID, for a secret added to "
                "app '" +
                    o.client_id + "'.");
    } else {
        if (!assertion_type || *assertion_type != jwt_bearer)
            return fail(400, "invalid_request", 50027,
                        "Invalid JWT token. 'client_assertion_type' must be '" +
                            std::string(jwt_bearer) + "'.");
        if (!assertion || assertion->empty())
            return fail(400, "invalid_request", 900144, missing_param("client_assertion"));
        if (auto err = verify_assertion(*assertion, ctx, host, tenant_in_path, client_id))
            return fail(401, "invalid_client", err->code, err->text);
    }

    out.access_token = random_token();
    out.token = issued_token{o.client_id, ctx.now_us, ctx.ttl_s};
    json body = {{"token_type", "Bearer"},
                 {"expires_in", ctx.ttl_s},
                 {"ext_expires_in", ctx.ttl_s},
                 {"access_token", *out.access_token}};
    out.response.status = 200;
    out.response.body = body.dump();
    out.response.content_type = "application/json; charset=utf-8";
    out.response.headers = {{"Cache-Control", "no-store, no-cache"},
                            {"Pragma", "no-cache"},
                            {"x-ms-request-id", ctx.ids.guid()}};
    return out;
}

}  // namespace glasswatch::lab::detail
