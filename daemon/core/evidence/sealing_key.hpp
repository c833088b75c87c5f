// Forward-secure sealing keys for the evidence chain (docs/evidence.md has the scheme and its
// threat model). Pure computation over OpenSSL's HKDF and HMAC; no I/O.
//
// K_0 is drawn at random once and shown to the operator as the verification key, to be kept off
// the machine. The key of epoch e+1 is a one-way step from the key of epoch e; the store keeps only
// the current epoch's key and overwrites it when the epoch closes. Whoever takes the machine later
// holds K_e and can compute every key after it, never one before it: entries sealed in a closed
// epoch cannot be re-sealed. Whoever holds K_0 (the auditor) derives every key and checks every
// seal.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace glasswatch::core::evidence {

struct sealing_key {
    std::array<std::uint8_t, 32> bytes{};
    bool operator==(const sealing_key&) const = default;
};

// A fresh random K_0 (OpenSSL's CSPRNG). nullopt when the generator fails.
std::optional<sealing_key> random_key();

// K_{e+1} from K_e: HKDF-Expand(PRK = K_e, info = "glasswatch evidence v1 evolve" || e+1, 32).
sealing_key evolve(const sealing_key& k, std::int64_t next_epoch);
// K_e from K_0 (e steps of evolve()).
sealing_key key_at(const sealing_key& k0, std::int64_t epoch);
// The MAC key of an epoch: HKDF-Expand(K_e, "glasswatch evidence v1 seal" || e, 32). The epoch
// key itself never keys a MAC, so a MAC never gives away material for the next step.
sealing_key mac_key(const sealing_key& k_e, std::int64_t epoch);
// HMAC-SHA-256 of `data` under the epoch's MAC key, as 64 lower-case hex digits.
std::string seal(const sealing_key& k_e, std::int64_t epoch, std::string_view data);

// A short public name of K_0 (16 hex of SHA-256 over a label and K_0): which verification key a
// chain belongs to, without revealing it.
std::string key_id(const sealing_key& k0);

// The verification key as the operator writes it down: "gwv1-" and 64 hex digits.
std::string format_verification_key(const sealing_key& k0);
// Accepts the format above (surrounding whitespace ignored); nullopt otherwise.
std::optional<sealing_key> parse_verification_key(std::string_view text);

// 64 hex digits <-> key (the key file keeps the current epoch's key this way).
std::string to_hex(const sealing_key& k);
std::optional<sealing_key> key_from_hex(std::string_view hex);

}  // namespace glasswatch::core::evidence
