// The process's own figures for /metrics, under the names every Prometheus user knows from the
// client libraries' process collector: start time, resident memory, open and maximum file
// descriptors. Read from /proc/self only (the unit's ProcSubset=pid hides the rest of /proc).
#pragma once

#include <cstdint>
#include <optional>

namespace glasswatch::io {

struct process_stats {
    std::optional<double> start_time_s;  // unix time
    std::optional<std::uint64_t> resident_bytes;
    std::optional<std::uint64_t> virtual_bytes;
    std::optional<std::uint64_t> open_fds;
    std::optional<std::uint64_t> max_fds;
    std::optional<double> cpu_seconds;  // user + system
};

process_stats read_process_stats();

}  // namespace glasswatch::io
