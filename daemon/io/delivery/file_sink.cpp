#include "io/delivery/file_sink.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace glasswatch::io {

delivery_outcome deliver_to_file(const std::string& path, const outbox_row& row) {
    delivery_outcome out;
    nlohmann::json line = nlohmann::json::parse(row.a.detail_json, nullptr, false);
    if (line.is_discarded()) line = nlohmann::json::object();
    line["alertId"] = row.a.id;
    line["sms"] = row.a.sms;
    line["sink"] = row.sink;
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";

    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        out.error = "open " + path + ": " + std::strerror(errno);
        out.permanent = errno == EISDIR;
        return out;
    }
    // On a failed write the file is cut back to where it was, so a retry after ENOSPC does not
    // leave half a line in front of the full one.
    struct stat st {};
    const off_t start = ::fstat(fd, &st) == 0 ? st.st_size : -1;
    // A kill or power loss in the middle of an earlier append can leave a line without its
    // newline (that alert was never marked delivered, so it is written again in full). Without a
    // separator the next line would be glued to the fragment and both would be unreadable.
    if (start > 0) {
        char last = '\n';
        if (::pread(fd, &last, 1, start - 1) == 1 && last != '\n') text.insert(0, 1, '\n');
    }
    const char* p = text.data();
    std::size_t left = text.size();
    while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            out.error = "write " + path + ": " + std::strerror(errno);
            if (start >= 0 && ::ftruncate(fd, start) != 0) out.error += " (and cannot truncate)";
            ::close(fd);
            return out;
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        out.error = "fsync " + path + ": " + std::strerror(errno);
        ::close(fd);
        return out;
    }
    ::close(fd);
    out.ok = true;
    return out;
}

}  // namespace glasswatch::io
