// `glasswatch run`: wires config, store, sources and sinks; owns the two threads.
#pragma once

#include <string>

#include "core/config/config.hpp"

namespace glasswatch::app {

// Returns the process exit code. Blocks until SIGTERM/SIGINT (drain, exit 0) or a fatal error.
// SIGHUP re-reads `config_path` and applies it (app/generation.hpp); a refused file keeps the
// running configuration.
int run_daemon(const std::string& config_path, core::config cfg);

}  // namespace glasswatch::app
