#include "core/alerting/routing.hpp"

#include <algorithm>

namespace glasswatch::core {

std::vector<std::string> route_alert(const std::vector<sink_config>& sinks, const alert& a,
                                     bool* fell_back) {
    std::vector<std::string> out;
    if (has_rule(a, "evidence_head")) {
        // The evidence head is for the receivers that asked for it by name, never a page.
        for (const auto& s : sinks)
            if (std::find(s.rules.begin(), s.rules.end(), "evidence_head") != s.rules.end())
                out.push_back(s.name);
        if (fell_back) *fell_back = false;
        return out;
    }
    for (const auto& s : sinks) {
        if (a.sev < s.min_severity) continue;
        // An alert naming several rules goes to the union of the rules' sinks.
        const bool wanted =
            s.rules.empty() || std::any_of(s.rules.begin(), s.rules.end(),
                                           [&a](const std::string& r) { return has_rule(a, r); });
        if (!wanted) continue;
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
