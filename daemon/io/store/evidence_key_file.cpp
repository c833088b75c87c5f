#include "io/store/evidence_key_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

namespace glasswatch::io {

namespace {

constexpr std::string_view format_line = "format glasswatch-evidence-key/1";

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

std::string dir_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool fsync_dir(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}

// Overwrites the bytes of a replaced key file through a descriptor opened before the rename, so
// the old key does not linger in its freed blocks any longer than the file system keeps them
// anyway. After the rename: a crash before it leaves the old key whole, never a zeroed file.
void scrub(int fd) {
    if (fd < 0) return;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < 65536) {
        const std::string zeros(static_cast<std::size_t>(st.st_size), '\0');
        if (write_all(fd, zeros)) ::fsync(fd);
    }
    ::close(fd);
}

std::string errno_text() {
    return std::strerror(errno);
}

}  // namespace

std::string sealing_key_path(const std::string& state_dir) {
    return state_dir + "/evidence.key";
}

std::string verification_key_path(const std::string& state_dir) {
    return state_dir + "/evidence-verification.key";
}

std::optional<sealing_key_file> read_sealing_key(const std::string& path, std::string& error) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        error = path + ": " + (errno == ENOENT ? std::string("missing") : errno_text());
        return std::nullopt;
    }
    std::string text;
    char buf[1024];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0 && text.size() < 8192)
        text.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    sealing_key_file k;
    bool format = false, have_epoch = false, have_key = false;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string::npos) eol = text.size();
        const std::string_view line(text.data() + pos, eol - pos);
        pos = eol + 1;
        if (line.empty() || line.front() == '#') continue;
        if (line == format_line) {
            format = true;
        } else if (line.substr(0, 7) == "key_id ") {
            k.key_id = std::string(line.substr(7));
        } else if (line.substr(0, 6) == "epoch ") {
            k.epoch = 0;
            have_epoch = line.size() > 6;
            for (char c : line.substr(6)) {
                if (c < '0' || c > '9' || k.epoch > (INT64_MAX - 9) / 10) {
                    have_epoch = false;
                    break;
                }
                k.epoch = k.epoch * 10 + (c - '0');
            }
        } else if (line.substr(0, 4) == "key ") {
            if (auto key = core::evidence::key_from_hex(line.substr(4))) {
                k.key = *key;
                have_key = true;
            }
        }
    }
    if (!format || !have_epoch || !have_key || k.key_id.size() != 16) {
        error = path + ": not a glasswatch evidence key file (damaged?)";
        return std::nullopt;
    }
    return k;
}

bool write_sealing_key(const std::string& path, const sealing_key_file& k, std::string& error) {
    const std::string text =
        "# glasswatch evidence sealing key: the current epoch's key only (docs/evidence.md).\n"
        "# Keep it on this machine; an auditor needs the verification key instead.\n" +
        std::string(format_line) + "\nkey_id " + k.key_id + "\nepoch " + std::to_string(k.epoch) +
        "\nkey " + core::evidence::to_hex(k.key) + "\n";
    const std::string tmp = path + ".new";
    ::unlink(tmp.c_str());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        error = tmp + ": " + errno_text();
        return false;
    }
    const bool written = write_all(fd, text) && ::fsync(fd) == 0;
    ::close(fd);
    if (!written) {
        error = tmp + ": " + errno_text();
        ::unlink(tmp.c_str());
        return false;
    }
    const int old_fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        error = path + ": " + errno_text();
        ::unlink(tmp.c_str());
        if (old_fd >= 0) ::close(old_fd);
        return false;
    }
    const bool synced = fsync_dir(dir_of(path));
    if (synced)
        scrub(old_fd);
    else if (old_fd >= 0)
        ::close(old_fd);
    if (!synced) {
        error = dir_of(path) + ": fsync: " + errno_text();
        return false;
    }
    return true;
}

bool write_verification_key(const std::string& path, const core::evidence::sealing_key& k0,
                            std::string& error) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
    if (fd < 0) {
        error = path + ": " + errno_text();
        return false;
    }
    const std::string text =
        "# glasswatch evidence verification key (key id " + core::evidence::key_id(k0) +
        ").\n# Copy it off this machine to where your auditors keep records, then delete this "
        "file:\n# whoever holds it can check every seal, and could forge them.\n" +
        core::evidence::format_verification_key(k0) + "\n";
    const bool ok = write_all(fd, text) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) error = path + ": " + errno_text();
    return ok && fsync_dir(dir_of(path));
}

}  // namespace glasswatch::io
