// The one path from a source to durable alerts (invariant 1): route each finding to its sinks,
// commit findings + checkpoints in one store transaction, wake the sink workers. A source
// advances its position only when commit() returned ok.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/alerting/pipeline.hpp"
#include "core/config/config.hpp"
#include "io/store/runtime.hpp"
#include "io/store/store.hpp"

namespace glasswatch::io {

class ingestor {
public:
    ingestor(runtime& rt, const core::config& cfg) : rt_(rt), cfg_(cfg) {}

    boost::asio::awaitable<commit_result> commit(std::vector<core::finding> findings,
                                                 std::vector<checkpoint> checkpoints);

    std::uint64_t alerts_committed() const noexcept { return alerts_; }
    std::uint64_t commit_failures() const noexcept { return failures_; }
    // Since when commits fail (disk full, read-only); 0 while the store is writable.
    core::micros store_failing_since() const noexcept { return failing_since_; }
    const std::string& store_error() const noexcept { return store_error_; }
    const std::map<std::string, std::uint64_t>& alerts_by_rule() const noexcept { return by_rule_; }
    // Called for every newly committed alert (the tripwire's active-use summary).
    void on_new_alert(std::function<void(const core::alert&)> f) { on_new_ = std::move(f); }

private:
    runtime& rt_;
    const core::config& cfg_;
    // main thread
    std::uint64_t alerts_ = 0, failures_ = 0;
    core::micros failing_since_ = 0;
    std::string store_error_;
    std::map<std::string, std::uint64_t> by_rule_;
    std::function<void(const core::alert&)> on_new_;
};

}  // namespace glasswatch::io
