// The `file` sink: one JSON object per line, fsynced before the outbox row is marked delivered.
// Useful as an audit trail next to the paging sinks, and as the sink of the demo and the tests.
#pragma once

#include <string>

#include "io/store/store.hpp"

namespace glasswatch::io {

struct delivery_outcome {
    bool ok = false;
    bool permanent = false;  // retrying cannot help (e.g. a directory where the file should be)
    std::string error;
};

// Appends the alert's JSON line (detail + delivery metadata) to `path`, fsync'd. Blocking.
delivery_outcome deliver_to_file(const std::string& path, const outbox_row& row);

}  // namespace glasswatch::io
