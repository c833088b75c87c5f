#include "io/base/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace glasswatch::io {

namespace {

// "<N>" sd-daemon(3) priority prefix, so journald stores the right level.
class sd_priority_flag final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&,
                spdlog::memory_buf_t& dest) override {
        const char* p = "<6>";
        switch (msg.level) {
            case spdlog::level::trace:
            case spdlog::level::debug:
                p = "<7>";
                break;
            case spdlog::level::info:
                p = "<6>";
                break;
            case spdlog::level::warn:
                p = "<4>";
                break;
            case spdlog::level::err:
                p = "<3>";
                break;
            case spdlog::level::critical:
                p = "<2>";
                break;
            default:
                break;
        }
        dest.append(p, p + 3);
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<sd_priority_flag>();
    }
};

}  // namespace

bool init_logging(const std::string& level) {
    auto lvl = spdlog::level::from_str(level);
    if (lvl == spdlog::level::off && level != "off") return false;
    auto logger = spdlog::get("glasswatch");
    if (!logger) logger = spdlog::stderr_logger_st("glasswatch");
    spdlog::set_default_logger(logger);
    spdlog::set_level(lvl);
    if (std::getenv("JOURNAL_STREAM") != nullptr) {
        auto f = std::make_unique<spdlog::pattern_formatter>();
        f->add_flag<sd_priority_flag>('*').set_pattern("%*%v");
        logger->set_formatter(std::move(f));
    } else {
        logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
            "%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc));
    }
    spdlog::flush_on(spdlog::level::trace);  // stderr is unbuffered for a daemon's log
    return true;
}

}  // namespace glasswatch::io
