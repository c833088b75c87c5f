// Lenient field reads from JSON that came over the network (sink answers, token endpoint, Graph).
// nlohmann's j.value(key, default) throws type_error when the key is there with another type: an
// answer like {"status": 1} from a sink or a proxy in front of it must read as "no status", never
// stop the worker that asked.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace glasswatch::core {

// The string at `key` of `j`; "" when `j` is not an object or the field is missing or not a string.
inline std::string json_string(const nlohmann::json& j, const char* key) {
    if (!j.is_object()) return {};
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace glasswatch::core
