// Logging to stderr via spdlog. Under systemd (JOURNAL_STREAM set) each line carries an
// sd-daemon "<N>" priority prefix and no timestamp, so journald records the right level.
#pragma once

#include <string>

namespace glasswatch::io {

// Returns false when `level` is not a known level name.
bool init_logging(const std::string& level);

}  // namespace glasswatch::io
