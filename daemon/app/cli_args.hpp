// Reading one command's arguments, left to right. Every problem is a usage error (exit 2) that
// names the flag, what it expects and what was given, and points at `glasswatch CMD --help`.
//
//   cli_args cli("test-alert", args);
//   while (cli.more()) {
//       if (cli.value("--config", path) || cli.whole("--wait", 1, 3600, wait_s)) continue;
//       cli.unexpected();
//   }
//   if (cli.failed()) return cli.usage_error();
//
// A matcher returns true when the current argument is its flag (consumed, with its value), even
// when the value was refused: the error is recorded and more() turns false. Values are given as
// `--flag VALUE` or `--flag=VALUE`.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/time.hpp"
#include "core/config/config.hpp"

namespace glasswatch::app {

class cli_args {
public:
    cli_args(std::string command, const std::vector<std::string>& args, std::size_t first = 0);

    bool more() const noexcept { return error_.empty() && pos_ < args_.size(); }
    bool failed() const noexcept { return !error_.empty(); }
    const std::string& error() const noexcept { return error_; }
    // Prints "glasswatch CMD: ERROR (see ...)" to stderr; returns exit code 2.
    int usage_error() const;
    // Records an error of the caller's own (a required flag missing, two that exclude each other).
    void fail(std::string message);

    bool flag(std::string_view name, bool& out);
    bool value(std::string_view name, std::string& out);
    bool whole(std::string_view name, long min, long max, int& out);
    bool whole(std::string_view name, long min, long max, long& out);
    // A duration like 30m, 2h, 90s (the config's syntax), from 1 ms to `max_ms`.
    bool duration(std::string_view name, std::int64_t max_ms, core::micros& out);
    // An ISO-8601 time with zone, or a date YYYY-MM-DD (midnight UTC).
    bool time(std::string_view name, core::micros& out);
    bool choice(std::string_view name, std::initializer_list<std::string_view> allowed,
                std::string& out);
    // A non-flag argument ("-" counts: stdin); only one is taken per call.
    bool positional(std::string& out);
    // The current argument matched nothing: an unknown option or an extra argument.
    void unexpected();

private:
    // When the current argument is `name` (or `name=...`), consumes it and returns its value;
    // nullopt when it is another argument. A missing value records an error.
    std::optional<std::string> take(std::string_view name);

    std::string command_;
    std::vector<std::string> args_;
    std::size_t pos_;
    std::string error_;
};

// An ISO-8601 time with zone, or YYYY-MM-DD taken as midnight UTC.
std::optional<core::micros> parse_cli_time(std::string_view text);

// The watched account an operator named by object id, UPN or label (case-insensitive); nullptr
// when none matches.
const core::watched_account* find_watched_account(const core::config& cfg, std::string_view who);

// "bg-admin-1 (3c9b7a15-...), bg-admin-2 (...)": for "not a watched account" messages.
std::string describe_watched_accounts(const core::config& cfg);

}  // namespace glasswatch::app
