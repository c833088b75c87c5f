// Reads secrets named by a secret_ref (file or environment). The value never goes to a log:
// errors describe the reference ("file /run/credentials/...", "env NAME"), not the content.
#pragma once

#include <optional>
#include <string>

#include "core/config/config.hpp"

namespace glasswatch::io {

struct secret_result {
    std::optional<std::string> value;
    std::string error;
};

// A file readable by group/other is refused unless `allow_world_readable` (invariant 6).
// One trailing newline is stripped (echo > file).
secret_result read_secret(const core::secret_ref& ref, bool allow_world_readable);

}  // namespace glasswatch::io
