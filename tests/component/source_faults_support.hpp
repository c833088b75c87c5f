// Helpers of the source-fault tests (test_source_faults_*.cpp): what the daemon logged, how much
// memory it peaked at, and one FIGURE line per scenario for tests/component/SOURCE_FAULTS.md.
#pragma once

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace glasswatch::test {

// Captures every line logged while it lives (on top of the usual output).
class log_capture {
public:
    log_capture() : sink_(std::make_shared<sink>()) {
        spdlog::default_logger()->sinks().push_back(sink_);
    }
    ~log_capture() {
        auto& sinks = spdlog::default_logger()->sinks();
        std::erase(sinks, sink_);
    }
    log_capture(const log_capture&) = delete;
    log_capture& operator=(const log_capture&) = delete;

    // Lines that contain `text`.
    std::size_t count(const std::string& text) const {
        std::lock_guard<std::mutex> lock(sink_->lines_mutex);
        std::size_t n = 0;
        for (const auto& l : sink_->lines)
            n += l.find(text) != std::string::npos ? 1 : 0;
        return n;
    }
    // The first line that contains `text`, or "".
    std::string first(const std::string& text) const {
        std::lock_guard<std::mutex> lock(sink_->lines_mutex);
        for (const auto& l : sink_->lines)
            if (l.find(text) != std::string::npos) return l;
        return {};
    }

private:
    struct sink final : spdlog::sinks::base_sink<std::mutex> {
        std::mutex lines_mutex;
        std::vector<std::string> lines;
        void sink_it_(const spdlog::details::log_msg& msg) override {
            std::lock_guard<std::mutex> lock(lines_mutex);
            lines.emplace_back(msg.payload.data(), msg.payload.size());
        }
        void flush_() override {}
    };
    std::shared_ptr<sink> sink_;
};

// Peak resident set size of this process (VmHWM), and a reset of it (Linux clear_refs 5), so a
// scenario can report the most memory it made the process hold.
inline long status_kib(const std::string& field) {  // "VmHWM:", "VmRSS:"
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(field, 0) == 0) return std::stol(line.substr(field.size()));
    return -1;
}
inline long peak_rss_kib() {
    return status_kib("VmHWM:");
}
inline long current_rss_kib() {
    return status_kib("VmRSS:");
}
inline void reset_peak_rss() {
    std::ofstream("/proc/self/clear_refs") << "5";
}

// "FIGURE <scenario>: key=value ..." on stdout (the CI log keeps it; SOURCE_FAULTS.md quotes it).
inline void figure(const std::string& scenario, const std::string& values) {
    std::printf("FIGURE %s: %s\n", scenario.c_str(), values.c_str());
    std::fflush(stdout);
}

}  // namespace glasswatch::test
