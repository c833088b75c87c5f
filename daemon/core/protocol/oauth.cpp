#include "core/protocol/oauth.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "core/base/crypto.hpp"
#include "core/base/json_field.hpp"
#include "core/base/json_text.hpp"

namespace glasswatch::core {

std::string_view to_string(token_failure f) noexcept {
    switch (f) {
        case token_failure::none:
            return "none";
        case token_failure::bad_secret:
            return "bad_secret";
        case token_failure::expired_credential:
            return "expired_credential";
        case token_failure::bad_certificate:
            return "bad_certificate";
        case token_failure::app_not_found:
            return "app_not_found";
        case token_failure::app_disabled:
            return "app_disabled";
        case token_failure::tenant_not_found:
            return "tenant_not_found";
        case token_failure::consent_missing:
            return "consent_missing";
        case token_failure::invalid_scope:
            return "invalid_scope";
        case token_failure::blocked_by_policy:
            return "blocked_by_policy";
        case token_failure::throttled:
            return "throttled";
        case token_failure::unavailable:
            return "unavailable";
        case token_failure::unreachable:
            return "unreachable";
        case token_failure::malformed_response:
            return "malformed_response";
        case token_failure::other:
            return "other";
    }
    return "?";
}

bool is_transient(token_failure f) noexcept {
    return f == token_failure::throttled || f == token_failure::unavailable ||
           f == token_failure::unreachable || f == token_failure::malformed_response;
}

namespace {

token_failure from_code(std::int64_t c) {
    switch (c) {
        case 7000215:
        case 7000218:
            return token_failure::bad_secret;
        case 7000222:
        case 700024:
            return token_failure::expired_credential;
        case 700027:
        case 50012:
        case 50027:
            return token_failure::bad_certificate;
        case 700016:
            return token_failure::app_not_found;
        case 7000112:
            return token_failure::app_disabled;
        case 90002:
        case 900023:
        case 90038:
            return token_failure::tenant_not_found;
        case 65001:
            return token_failure::consent_missing;
        case 70011:
        case 700022:
        case 700023:
        case 500011:
            return token_failure::invalid_scope;
        case 53003:
            return token_failure::blocked_by_policy;
        case 90055:
        case 50196:
            return token_failure::throttled;
        case 90006:
        case 90033:
        case 50000:
        case 90024:
            return token_failure::unavailable;
        default:
            return token_failure::other;
    }
}

using bio_ptr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using x509_ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using mdctx_ptr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

}  // namespace

token_answer classify_token_response(int status, std::string_view body) {
    token_answer a;
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (status == 200) {
        if (j.is_object() && j.contains("access_token") && j["access_token"].is_string() &&
            !j["access_token"].get<std::string>().empty()) {
            a.access_token = j["access_token"].get<std::string>();
            auto ei = j.value("expires_in", nlohmann::json(3599));
            // expires_in is an integer, but some proxies stringify it.
            if (ei.is_number_integer())
                a.expires_in_s = ei.get<std::int64_t>();
            else if (ei.is_string())
                a.expires_in_s = std::atoll(ei.get<std::string>().c_str());
            if (a.expires_in_s <= 0) a.expires_in_s = 300;
            return a;
        }
        a.failure = token_failure::malformed_response;
        a.description = "HTTP 200 without an access_token";
        return a;
    }
    if (j.is_object()) {
        a.oauth_error = json_string(j, "error");
        if (j.contains("error_codes") && j["error_codes"].is_array() && !j["error_codes"].empty() &&
            j["error_codes"][0].is_number_integer())
            a.aadsts = j["error_codes"][0].get<std::int64_t>();
        std::string d = json_string(j, "error_description");
        a.description = d.substr(0, d.find_first_of("\r\n"));
    }
    if (a.aadsts != 0) {
        a.failure = from_code(a.aadsts);
        if (a.failure != token_failure::other) return a;
    }
    if (status == 429)
        a.failure = token_failure::throttled;
    else if (status >= 500 || a.oauth_error == "temporarily_unavailable")
        a.failure = token_failure::unavailable;
    else if (!j.is_object())
        a.failure = token_failure::malformed_response;
    else if (a.oauth_error == "invalid_scope")
        a.failure = token_failure::invalid_scope;
    else
        a.failure = token_failure::other;
    if (a.description.empty()) a.description = "HTTP " + std::to_string(status);
    return a;
}

std::string token_request_with_secret(std::string_view client_id, std::string_view scope,
                                      std::string_view secret) {
    return "client_id=" + form_encode(client_id) + "&scope=" + form_encode(scope) +
           "&client_secret=" + form_encode(secret) + "&grant_type=client_credentials";
}

std::string token_request_with_assertion(std::string_view client_id, std::string_view scope,
                                         std::string_view assertion) {
    return "client_id=" + form_encode(client_id) + "&scope=" + form_encode(scope) +
           "&client_assertion_type=" +
           form_encode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") +
           "&client_assertion=" + form_encode(assertion) + "&grant_type=client_credentials";
}

assertion_result make_client_assertion(std::string_view cert_pem, std::string_view key_pem,
                                       std::string_view client_id, std::string_view token_url,
                                       micros now, std::string_view jti, assertion_alg alg) {
    assertion_result r;
    bio_ptr cbio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())), BIO_free);
    x509_ptr cert(cbio ? PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr) : nullptr,
                  X509_free);
    if (!cert) {
        r.error = "certificate is not a PEM X.509 certificate";
        return r;
    }
    bio_ptr kbio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), BIO_free);
    pkey_ptr key(kbio ? PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr) : nullptr,
                 EVP_PKEY_free);
    if (!key) {
        r.error = "private key is not a PEM private key (encrypted keys are not supported)";
        return r;
    }
    if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) {
        r.error = "private key is not RSA";
        return r;
    }
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
        r.error = "private key does not belong to the certificate";
        return r;
    }
    unsigned char* der = nullptr;
    int der_len = i2d_X509(cert.get(), &der);
    if (der_len <= 0) {
        r.error = "cannot encode certificate";
        return r;
    }
    std::string der_s(reinterpret_cast<char*>(der), static_cast<std::size_t>(der_len));
    OPENSSL_free(der);

    nlohmann::json header = {{"typ", "JWT"}};
    if (alg == assertion_alg::ps256) {
        auto d = sha256(der_s);
        header["alg"] = "PS256";
        header["x5t#S256"] = base64url_encode({reinterpret_cast<const char*>(d.data()), d.size()});
    } else {
        unsigned char sha1[20];
        EVP_Digest(der_s.data(), der_s.size(), sha1, nullptr, EVP_sha1(), nullptr);
        header["alg"] = "RS256";
        header["x5t"] = base64url_encode({reinterpret_cast<const char*>(sha1), 20});
    }
    const std::int64_t t = now / 1000000;
    nlohmann::json claims = {{"aud", std::string(token_url)},
                             {"iss", std::string(client_id)},
                             {"sub", std::string(client_id)},
                             {"jti", std::string(jti)},
                             {"nbf", t},
                             {"iat", t},
                             {"exp", t + 600}};
    std::string signing_input =
        base64url_encode(header.dump()) + "." + base64url_encode(claims.dump());

    mdctx_ptr ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_PKEY_CTX* pctx = nullptr;
    if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key.get()) != 1) {
        r.error = "cannot initialise signing";
        return r;
    }
    if (alg == assertion_alg::ps256 &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1)) {
        r.error = "cannot configure RSA-PSS";
        return r;
    }
    std::size_t sig_len = 0;
    if (EVP_DigestSign(ctx.get(), nullptr, &sig_len,
                       reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) != 1) {
        r.error = "signing failed";
        return r;
    }
    std::string sig(sig_len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                       reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) != 1) {
        r.error = "signing failed";
        return r;
    }
    sig.resize(sig_len);
    r.jwt = signing_input + "." + base64url_encode(sig);
    return r;
}

}  // namespace glasswatch::core
