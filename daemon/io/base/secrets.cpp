#include "io/base/secrets.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace glasswatch::io {

secret_result read_secret(const core::secret_ref& ref, bool allow_world_readable) {
    secret_result r;
    if (!ref.env.empty()) {
        const char* v = std::getenv(ref.env.c_str());
        if (v == nullptr || *v == '\0') {
            r.error = "secret from env " + ref.env + " is not set";
            return r;
        }
        r.value = std::string(v);
        return r;
    }
    if (ref.file.empty()) {
        r.error = "no secret configured";
        return r;
    }
    struct stat st {};
    if (::stat(ref.file.c_str(), &st) != 0) {
        r.error = "secret file " + ref.file + ": " + std::strerror(errno);
        return r;
    }
    if ((st.st_mode & 077) != 0 && !allow_world_readable) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        r.error = "secret file " + ref.file + " is readable by other users (mode " + mode +
                  "): chmod 600 it or use systemd LoadCredential= (override: [security] "
                  "allow_world_readable_secrets = true)";
        return r;
    }
    std::ifstream in(ref.file, std::ios::binary);
    if (!in) {
        r.error = "secret file " + ref.file + ": cannot read";
        return r;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string v = ss.str();
    if (!v.empty() && v.back() == '\n') v.pop_back();
    if (!v.empty() && v.back() == '\r') v.pop_back();
    if (v.empty()) {
        r.error = "secret file " + ref.file + " is empty";
        return r;
    }
    r.value = std::move(v);
    return r;
}

}  // namespace glasswatch::io
