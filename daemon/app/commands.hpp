// CLI sub-commands. Each returns a process exit code (see `glasswatch help`).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/config/config.hpp"

namespace glasswatch::app {

// Where every command looks for its configuration without --config.
inline constexpr const char* default_config_path = "/etc/glasswatch/glasswatch.toml";

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_config = 3;
inline constexpr int exit_store = 4;

int cmd_check_config(const std::vector<std::string>& args);
int cmd_replay(const std::vector<std::string>& args);
int cmd_run(const std::vector<std::string>& args);
int cmd_test_alert(const std::vector<std::string>& args);
int cmd_evidence(const std::vector<std::string>& args);
int cmd_drill(const std::vector<std::string>& args);   // ops_commands.cpp
int cmd_status(const std::vector<std::string>& args);  // ops_commands.cpp
int cmd_posture(const std::vector<std::string>& args);
int cmd_outbox(const std::vector<std::string>& args);  // outbox_commands.cpp

// Permission bits of a file (for the secret-file check), nullopt when it cannot be stat'ed.
std::optional<unsigned> file_mode(const std::string& path);

}  // namespace glasswatch::app
