// Reading a configuration file the way `run` needs it: parsed, validated and every secret it
// names read once. check-config, run and a reload (SIGHUP) share this one path, so what one
// refuses the others refuse.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/config/config.hpp"

namespace glasswatch::app {

struct loaded_config {
    std::optional<core::config> value;  // set only when errors is empty
    std::vector<std::string> errors;    // "FILE:LINE: KEY: MESSAGE", one per problem
    std::vector<std::string> notes;     // worth saying, not a reason to refuse
};

// Reads and validates `path`. With `check_secrets`, every secret file / env: reference is read
// by the daemon's own reader (existence, mode, readability, an unset variable). A systemd
// credential path (/run/credentials/...) outside the unit is a note, not an error: it exists
// only while the unit runs.
loaded_config load_config(const std::string& path, bool check_secrets);

// The CLI form: prints every error to stderr; nullopt when the file is refused.
std::optional<core::config> load_config_file(const std::string& path);

}  // namespace glasswatch::app
