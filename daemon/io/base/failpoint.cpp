#include "io/base/failpoint.hpp"

#include <csignal>
#include <cstdlib>
#include <string>

namespace glasswatch::io::detail {

namespace {

struct armed_point {
    std::string name;
    long nth = 1;
    std::atomic<long> reached{0};

    armed_point() {
        const char* env = std::getenv("GLASSWATCH_FAILPOINT");
        if (env == nullptr || *env == '\0') return;
        std::string spec = env;
        if (auto colon = spec.rfind(':'); colon != std::string::npos) {
            char* end = nullptr;
            nth = std::strtol(spec.c_str() + colon + 1, &end, 10);
            if (end == nullptr || *end != '\0' || nth < 1) nth = 1;
            spec.resize(colon);
        }
        name = std::move(spec);
    }
};

armed_point point;  // initialised before main(), like failpoint_armed below

}  // namespace

std::atomic<bool> failpoint_armed{!point.name.empty()};

void failpoint_reached(std::string_view name) noexcept {
    if (name != point.name) return;
    if (point.reached.fetch_add(1) + 1 == point.nth) std::raise(SIGKILL);
}

}  // namespace glasswatch::io::detail
