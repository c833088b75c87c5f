#include "core/evidence/sealing_key.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

#include "core/base/crypto.hpp"

namespace glasswatch::core::evidence {

namespace {

std::string label_with_epoch(std::string_view label, std::int64_t epoch) {
    std::string info(label);
    for (int shift = 56; shift >= 0; shift -= 8)
        info.push_back(static_cast<char>((static_cast<std::uint64_t>(epoch) >> shift) & 0xff));
    return info;
}

// HKDF-Expand only: K_e is already a uniformly random 32-byte key, the PRK HKDF expects.
sealing_key hkdf_expand(const sealing_key& prk, const std::string& info) {
    std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr),
                                                          &EVP_KDF_free);
    if (!kdf) throw std::runtime_error("OpenSSL has no HKDF");
    std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(EVP_KDF_CTX_new(kdf.get()),
                                                                  &EVP_KDF_CTX_free);
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(prk.bytes.data()), prk.bytes.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()),
                                          info.size()),
        OSSL_PARAM_construct_end(),
    };
    sealing_key out;
    if (!ctx || EVP_KDF_derive(ctx.get(), out.bytes.data(), out.bytes.size(), params) != 1)
        throw std::runtime_error("HKDF-Expand failed");
    return out;
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string_view key_view(const sealing_key& k) {
    return {reinterpret_cast<const char*>(k.bytes.data()), k.bytes.size()};
}

}  // namespace

std::optional<sealing_key> random_key() {
    sealing_key k;
    if (RAND_priv_bytes(k.bytes.data(), static_cast<int>(k.bytes.size())) != 1) return std::nullopt;
    return k;
}

sealing_key evolve(const sealing_key& k, std::int64_t next_epoch) {
    return hkdf_expand(k, label_with_epoch("glasswatch evidence v1 evolve", next_epoch));
}

sealing_key key_at(const sealing_key& k0, std::int64_t epoch) {
    sealing_key k = k0;
    for (std::int64_t e = 1; e <= epoch; ++e)
        k = evolve(k, e);
    return k;
}

sealing_key mac_key(const sealing_key& k_e, std::int64_t epoch) {
    return hkdf_expand(k_e, label_with_epoch("glasswatch evidence v1 seal", epoch));
}

std::string seal(const sealing_key& k_e, std::int64_t epoch, std::string_view data) {
    const sealing_key mk = mac_key(k_e, epoch);
    return core::to_hex(hmac_sha256(key_view(mk), data));
}

std::string key_id(const sealing_key& k0) {
    return sha256_hex("glasswatch evidence v1 key id" + std::string(key_view(k0))).substr(0, 16);
}

std::string to_hex(const sealing_key& k) {
    return core::to_hex(key_view(k));
}

std::optional<sealing_key> key_from_hex(std::string_view hex) {
    if (hex.size() != 64) return std::nullopt;
    sealing_key k;
    for (std::size_t i = 0; i < 32; ++i) {
        const int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        k.bytes[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    return k;
}

std::string format_verification_key(const sealing_key& k0) {
    return "gwv1-" + to_hex(k0);
}

std::optional<sealing_key> parse_verification_key(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\n' || text.front() == '\t' ||
                             text.front() == '\r'))
        text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\t' ||
                             text.back() == '\r'))
        text.remove_suffix(1);
    if (text.substr(0, 5) != "gwv1-") return std::nullopt;
    return key_from_hex(text.substr(5));
}

}  // namespace glasswatch::core::evidence
