// The evidence sealing key on disk: `<state>/evidence.key` holds the current epoch's key and
// nothing older (core/evidence/sealing_key.hpp). Each evolution overwrites the old file's bytes,
// then renames the new one over it, so the previous epoch's key is gone from the file system
// (not from backups or snapshots of the VM's disk: docs/evidence.md).
//
// The verification key (K_0) is written once, to `<state>/evidence-verification.key` (0400), for
// the operator to move off the machine; `glasswatch evidence init` prints it and deletes the file.
// Neither file's content ever reaches a log.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/evidence/sealing_key.hpp"

namespace glasswatch::io {

struct sealing_key_file {
    std::string key_id;  // of K_0: which verification key this lineage belongs to
    std::int64_t epoch = 0;
    core::evidence::sealing_key key;  // K_epoch
};

std::string sealing_key_path(const std::string& state_dir);
std::string verification_key_path(const std::string& state_dir);

// nullopt + error (naming the file, never its content) when missing, unreadable or malformed.
std::optional<sealing_key_file> read_sealing_key(const std::string& path, std::string& error);
// Replaces the file atomically (mode 0600), first overwriting the old key's bytes in place.
bool write_sealing_key(const std::string& path, const sealing_key_file& k, std::string& error);
// Creates the verification key file (0400, refused if it exists).
bool write_verification_key(const std::string& path, const core::evidence::sealing_key& k0,
                            std::string& error);

}  // namespace glasswatch::io
