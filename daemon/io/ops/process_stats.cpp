#include "io/ops/process_stats.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>

namespace glasswatch::io {

namespace {

double clock_seconds(clockid_t id) {
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

process_stats read_process_stats() {
    process_stats s;
    const long ticks = ::sysconf(_SC_CLK_TCK);
    const long page = ::sysconf(_SC_PAGESIZE);
    // /proc/self/stat: the command name (field 2) may hold spaces and parentheses; the fields
    // after the last ')' are plain numbers. utime 14, stime 15, starttime 22, vsize 23, rss 24.
    std::ifstream stat("/proc/self/stat");
    std::string line;
    if (stat && std::getline(stat, line)) {
        const auto close = line.rfind(')');
        if (close != std::string::npos) {
            std::istringstream in(line.substr(close + 2));
            std::string field;
            unsigned long long v[22] = {};
            int i = 3;  // field 3 is the state letter
            while (in >> field && i <= 24) {
                if (i >= 14) v[i - 3] = std::strtoull(field.c_str(), nullptr, 10);
                ++i;
            }
            if (i > 24 && ticks > 0) {
                s.cpu_seconds = static_cast<double>(v[14 - 3] + v[15 - 3]) / ticks;
                // Start time is in ticks since boot: boot time = now - time since boot.
                const double since_boot = clock_seconds(CLOCK_BOOTTIME);
                s.start_time_s = clock_seconds(CLOCK_REALTIME) - since_boot +
                                 static_cast<double>(v[22 - 3]) / ticks;
                s.virtual_bytes = v[23 - 3];
                if (page > 0) s.resident_bytes = v[24 - 3] * static_cast<unsigned long long>(page);
            }
        }
    }
    if (DIR* d = ::opendir("/proc/self/fd")) {
        std::uint64_t n = 0;
        while (const dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') ++n;
        ::closedir(d);
        s.open_fds = n > 0 ? n - 1 : 0;  // not counting the directory's own descriptor
    }
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        s.max_fds = rl.rlim_cur;
    return s;
}

}  // namespace glasswatch::io
