// Throwaway PKI for tests: a CA and one server certificate, generated in memory with the
// OpenSSL 3 EVP APIs. Nothing here is meant to be secure, only to look like a real chain to
// the client (CA:TRUE + keyCertSign on the CA, SANs + serverAuth on the leaf).
#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/https_server.hpp"

namespace glasswatch::test {

namespace {

struct pkey_free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct x509_free {
    void operator()(X509* p) const { X509_free(p); }
};
struct ext_free {
    void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
struct bio_free {
    void operator()(BIO* p) const { BIO_free(p); }
};
struct bn_free {
    void operator()(BIGNUM* p) const { BN_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

[[noreturn]] void fail(const std::string& what) {
    // The OpenSSL error queue says why; keep the first entry, drop the rest.
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    char buf[256] = {};
    if (code != 0) ERR_error_string_n(code, buf, sizeof buf);
    throw std::runtime_error("test_pki: " + what + (code != 0 ? std::string(": ") + buf : ""));
}

void check(int ok, const char* what) {
    if (ok != 1) fail(what);
}

pkey_ptr make_key() {
    pkey_ptr key(EVP_RSA_gen(2048));
    if (!key) fail("RSA key generation");
    return key;
}

void set_serial(X509* cert) {
    // Random 64-bit serials: two PKIs generated in one run must never share a serial, or a
    // verifier could confuse their certificates.
    std::unique_ptr<BIGNUM, bn_free> bn(BN_new());
    if (!bn) fail("BN_new");
    check(BN_rand(bn.get(), 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY), "BN_rand");
    if (!BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert))) fail("serial number");
}

void set_name(X509_NAME* name, const std::string& common_name) {
    check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>("glasswatch tests"), -1,
                                     -1, 0),
          "subject O");
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>(common_name.c_str()),
                                     -1, -1, 0),
          "subject CN");
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    std::unique_ptr<X509_EXTENSION, ext_free> ext(
        X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
    if (!ext) fail("extension " + std::string(OBJ_nid2sn(nid)) + "=" + value);
    check(X509_add_ext(cert, ext.get(), -1), "X509_add_ext");
}

// A certificate for `key`, valid from an hour ago (clock skew) for 30 days. When `issuer` is
// null the certificate is self-signed.
x509_ptr make_cert(EVP_PKEY* key, const std::string& common_name, X509* issuer) {
    x509_ptr cert(X509_new());
    if (!cert) fail("X509_new");
    check(X509_set_version(cert.get(), X509_VERSION_3), "X509_set_version");
    set_serial(cert.get());
    if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600)) fail("notBefore");
    if (!X509_gmtime_adj(X509_getm_notAfter(cert.get()), 30L * 24 * 3600)) fail("notAfter");
    check(X509_set_pubkey(cert.get(), key), "X509_set_pubkey");
    set_name(X509_get_subject_name(cert.get()), common_name);
    X509* signer = issuer ? issuer : cert.get();
    check(X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)), "issuer name");
    return cert;
}

void sign(X509* cert, EVP_PKEY* key) {
    if (X509_sign(cert, key, EVP_sha256()) <= 0) fail("X509_sign");
}

std::string bio_string(BIO* bio) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

std::string cert_pem(X509* cert) {
    std::unique_ptr<BIO, bio_free> bio(BIO_new(BIO_s_mem()));
    if (!bio) fail("BIO_new");
    check(PEM_write_bio_X509(bio.get(), cert), "PEM_write_bio_X509");
    return bio_string(bio.get());
}

std::string key_pem(EVP_PKEY* key) {
    std::unique_ptr<BIO, bio_free> bio(BIO_new(BIO_s_mem()));
    if (!bio) fail("BIO_new");
    check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
          "PEM_write_bio_PrivateKey");
    return bio_string(bio.get());
}

bool is_ip_address(const std::string& s) {
    unsigned char buf[16];
    return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

test_pki test_pki::generate(const std::vector<std::string>& sans, const std::string& common_name) {
    pkey_ptr ca_key = make_key();
    x509_ptr ca = make_cert(ca_key.get(), common_name + " test CA", nullptr);
    add_ext(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE");
    add_ext(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
    sign(ca.get(), ca_key.get());

    pkey_ptr leaf_key = make_key();
    x509_ptr leaf = make_cert(leaf_key.get(), common_name, ca.get());
    add_ext(leaf.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_ext(leaf.get(), ca.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
    add_ext(leaf.get(), ca.get(), NID_ext_key_usage, "serverAuth");
    add_ext(leaf.get(), ca.get(), NID_subject_key_identifier, "hash");
    add_ext(leaf.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
    if (!sans.empty()) {
        std::string alt;
        for (const auto& s : sans) {
            if (!alt.empty()) alt += ',';
            alt += (is_ip_address(s) ? "IP:" : "DNS:") + s;
        }
        add_ext(leaf.get(), ca.get(), NID_subject_alt_name, alt);
    }
    sign(leaf.get(), ca_key.get());

    test_pki out;
    out.ca_cert_pem = cert_pem(ca.get());
    out.ca_key_pem = key_pem(ca_key.get());
    out.server_cert_pem = cert_pem(leaf.get());
    out.server_key_pem = key_pem(leaf_key.get());
    return out;
}

void test_pki::write_ca(const std::string& path) const {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << ca_cert_pem;
    out.close();
    if (!out) throw std::runtime_error("test_pki: cannot write " + path);
}

}  // namespace glasswatch::test
