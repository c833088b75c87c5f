// Test helpers shared by the unit and component layers (no I/O beyond reading fixtures).
#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "core/config/config.hpp"

namespace glasswatch::test {

inline std::string read_fixture(const std::string& name) {
    std::ifstream in(std::string(GLASSWATCH_FIXTURES) + "/" + name, std::ios::binary);
    if (!in) throw std::runtime_error("missing fixture " + name);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Ids from the reference fixtures (made-up tenant "contoso").
inline constexpr const char* tenant = "3d29e181-4b4e-4710-8621-280aad0bc235";
inline constexpr const char* adele =
    "ccd9080d-14eb-425d-969a-1577f3f3abeb";  // signs in, target of role add
inline constexpr const char* bruno = "cc474c45-ee95-4669-8e8e-b7658862e5cc";  // initiates audit
inline constexpr const char* finance_group = "20660f84-11cd-4df4-a61a-637cecf8c343";
inline constexpr const char* ca_block =
    "8e27ae8f-7b5f-420a-bbc7-fdcdc89d5dfb";  // applied CA policy
inline constexpr const char* sp_daemon = "ac1b1732-bf51-4dd1-9fcc-801cbaa9c790";

inline core::config config_watching(std::initializer_list<const char*> accounts,
                                    std::initializer_list<const char*> groups = {},
                                    std::initializer_list<const char*> policies = {}) {
    core::config c;
    c.tenant_id = tenant;
    c.tenant_name = "contoso";
    int i = 0;
    for (const char* a : accounts)
        c.watch.accounts.push_back({a, "", "bg-" + std::to_string(++i)});
    for (const char* g : groups)
        c.watch.groups.push_back(g);
    for (const char* p : policies)
        c.watch.ca_policies.push_back(p);
    core::sink_config s;
    s.name = "file";
    s.path = "/dev/null";
    c.sinks.push_back(s);
    return c;
}

}  // namespace glasswatch::test
