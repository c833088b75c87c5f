// Which sinks receive an alert: each sink's rule list and minimum severity (pure).
#pragma once

#include <string>
#include <vector>

#include "core/alerting/alert.hpp"
#include "core/config/config.hpp"

namespace glasswatch::core {

// Names of the sinks that should deliver `a`. Never empty when sinks exist: an alert no sink
// routes would be silently lost, so it falls back to every sink (and the caller logs it).
std::vector<std::string> route_alert(const std::vector<sink_config>& sinks, const alert& a,
                                     bool* fell_back = nullptr);

}  // namespace glasswatch::core
