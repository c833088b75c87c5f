// Metrics as plain values plus one Prometheus text renderer (no I/O here).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace glasswatch::core {

struct metric_sample {
    using labels_t = std::vector<std::pair<std::string, std::string>>;
    labels_t labels;
    double value = 0;
};

struct metric_family {
    std::string name;  // glasswatch_...
    std::string help;
    std::string type;  // counter | gauge
    std::vector<metric_sample> samples;
};

// Prometheus text exposition format 0.0.4; label values are escaped.
std::string render_prometheus(const std::vector<metric_family>& families);

}  // namespace glasswatch::core
