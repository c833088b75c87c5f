// `glasswatch run`: wires config, store, sources and sinks; owns the two threads.
#pragma once

#include "core/config.hpp"

namespace glasswatch::app {

// Returns the process exit code. Blocks until SIGTERM/SIGINT (drain, exit 0) or a fatal error.
int run_daemon(const core::config& cfg);

}  // namespace glasswatch::app
