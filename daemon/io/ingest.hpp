// The one path from a source to durable alerts (invariant 1): route each finding to its sinks,
// commit findings + checkpoints in one store transaction, wake the sink workers. A source
// advances its position only when commit() returned ok.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <vector>

#include "core/config.hpp"
#include "core/pipeline.hpp"
#include "io/runtime.hpp"
#include "io/store.hpp"

namespace glasswatch::io {

class ingestor {
public:
    ingestor(runtime& rt, const core::config& cfg) : rt_(rt), cfg_(cfg) {}

    boost::asio::awaitable<commit_result> commit(std::vector<core::finding> findings,
                                                 std::vector<checkpoint> checkpoints);

    std::uint64_t alerts_committed() const noexcept { return alerts_; }
    std::uint64_t commit_failures() const noexcept { return failures_; }

private:
    runtime& rt_;
    const core::config& cfg_;
    std::uint64_t alerts_ = 0, failures_ = 0;  // main thread
};

}  // namespace glasswatch::io
