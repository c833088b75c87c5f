#include "core/routing.hpp"

#include <algorithm>

namespace glasswatch::core {

std::vector<std::string> route_alert(const std::vector<sink_config>& sinks, const alert& a,
                                     bool* fell_back) {
    std::vector<std::string> out;
    for (const auto& s : sinks) {
        if (a.sev < s.min_severity) continue;
        if (!s.rules.empty() && std::find(s.rules.begin(), s.rules.end(), a.rule) == s.rules.end())
            continue;
        out.push_back(s.name);
    }
    if (fell_back) *fell_back = false;
    if (out.empty()) {
        for (const auto& s : sinks)
            out.push_back(s.name);
        if (fell_back) *fell_back = !out.empty();
    }
    return out;
}

}  // namespace glasswatch::core
