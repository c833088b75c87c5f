#include "app/config_file.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "io/base/secrets.hpp"

namespace glasswatch::app {

namespace {

bool read_whole_file(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return static_cast<bool>(in) || in.eof();
}

// Every secret the configuration names, with its key (URL secrets are read by
// resolve_url_secrets, always).
std::vector<std::pair<std::string, const core::secret_ref*>> secret_refs(const core::config& cfg) {
    std::vector<std::pair<std::string, const core::secret_ref*>> refs;
    if (cfg.graph.enabled) {
        if (cfg.graph.client_secret.present())
            refs.push_back({"sources.graph.client_secret", &cfg.graph.client_secret});
        if (cfg.graph.private_key.present())
            refs.push_back({"sources.graph.private_key", &cfg.graph.private_key});
    }
    if (cfg.eventhub.enabled)
        refs.push_back({"sources.eventhub.connection_string", &cfg.eventhub.connection_string});
    for (std::size_t i = 0; i < cfg.sinks.size(); ++i) {
        const auto& sk = cfg.sinks[i];
        const std::string base = "sinks[" + std::to_string(i) + "].";
        if (sk.routing_key.present()) refs.push_back({base + "routing_key", &sk.routing_key});
        if (sk.auth_token.present()) refs.push_back({base + "auth_token", &sk.auth_token});
        if (sk.signing_secret.present())
            refs.push_back({base + "signing_secret", &sk.signing_secret});
    }
    return refs;
}

bool is_absent_credential(const core::secret_ref& ref) {
    return !ref.file.empty() && ref.file.rfind("/run/credentials/", 0) == 0 &&
           std::getenv("CREDENTIALS_DIRECTORY") == nullptr && ::access(ref.file.c_str(), F_OK) != 0;
}

// URLs that are credentials (url_file / env:) are read now: every command needs the URL, and
// it is checked like a plain one. Errors name the key and the source, never the URL.
void resolve_url_secrets(const std::string& path, core::config& cfg, loaded_config& out) {
    auto resolve = [&](const std::string& key, const core::secret_ref& ref, std::string& url) {
        if (!ref.present()) return;
        if (is_absent_credential(ref)) {
            out.notes.push_back(key + ": " + ref.describe() +
                                " is a systemd credential; it exists only while the unit runs");
            return;
        }
        auto r = io::read_secret(ref, cfg.allow_world_readable_secrets);
        if (!r.value) {
            out.errors.push_back(path + ": " + key + ": " + r.error);
            return;
        }
        std::string value = *r.value;
        while (!value.empty() && (value.back() == '\n' || value.back() == '\r' ||
                                  value.back() == ' ' || value.back() == '\t'))
            value.pop_back();
        if (std::string why = core::check_alert_endpoint_url(value); !why.empty()) {
            out.errors.push_back(path + ": " + key + ": the URL in " + ref.describe() + ": " + why);
            return;
        }
        url = std::move(value);
    };
    resolve("heartbeat.url", cfg.heartbeat.url_secret, cfg.heartbeat.url);
    for (std::size_t i = 0; i < cfg.sinks.size(); ++i)
        resolve("sinks[" + std::to_string(i) + "].url", cfg.sinks[i].url_secret, cfg.sinks[i].url);
}

}  // namespace

loaded_config load_config(const std::string& path, bool check_secrets) {
    loaded_config out;
    std::string text;
    if (!read_whole_file(path, text)) {
        out.errors.push_back(path + ": cannot read configuration file");
        return out;
    }
    auto r = core::parse_config(text, path);
    for (const auto& e : r.errors)
        out.errors.push_back(core::format_error(e, path));
    if (!r.errors.empty()) return out;
    resolve_url_secrets(path, *r.value, out);
    if (!out.errors.empty()) return out;
    if (check_secrets) {
        for (const auto& [key, ref] : secret_refs(*r.value)) {
            if (is_absent_credential(*ref)) {
                out.notes.push_back(
                    key + ": " + ref->describe() +
                    " is a systemd credential; it exists only while the unit runs (check it "
                    "with `systemd-run -P --property=LoadCredential=...` or after `systemctl "
                    "start`)");
                continue;
            }
            auto s = io::read_secret(*ref, r.value->allow_world_readable_secrets);
            if (!s.value) out.errors.push_back(path + ": " + key + ": " + s.error);
        }
        if (!out.errors.empty()) return out;
    }
    out.value = std::move(r.value);
    return out;
}

std::optional<core::config> load_config_file(const std::string& path) {
    auto r = load_config(path, false);
    for (const auto& e : r.errors)
        std::fprintf(stderr, "%s\n", e.c_str());
    if (!r.errors.empty()) {
        std::fprintf(stderr, "%s: %zu error(s); nothing started\n", path.c_str(), r.errors.size());
        return std::nullopt;
    }
    return r.value;
}

}  // namespace glasswatch::app
