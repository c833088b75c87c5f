#include "io/ingest.hpp"

#include <spdlog/spdlog.h>

#include "core/routing.hpp"
#include "io/delivery.hpp"

namespace glasswatch::io {

boost::asio::awaitable<commit_result> ingestor::commit(std::vector<core::finding> findings,
                                                       std::vector<checkpoint> checkpoints) {
    std::vector<routed_finding> routed;
    routed.reserve(findings.size());
    for (auto& f : findings) {
        bool fell_back = false;
        auto sinks = core::route_alert(cfg_.sinks, f.a, &fell_back);
        if (fell_back)
            spdlog::warn("alert {} ({}, {}) matches no sink's routing; sending it to every sink",
                         f.a.id, f.a.rule, core::to_string(f.a.sev));
        routed.push_back({std::move(f), std::move(sinks)});
    }
    const core::micros now = wall_now();
    auto write = [routed = std::move(routed), checkpoints = std::move(checkpoints),
                  now](store& db) { return db.commit(routed, checkpoints, now); };
    commit_result r = co_await rt_.on_store(std::move(write));
    if (!r.ok) {
        ++failures_;
        spdlog::error("store: commit failed, source positions stay where they were: {}", r.error);
        co_return r;
    }
    alerts_ += r.new_alerts.size();
    for (const auto& id : r.new_alerts)
        spdlog::info("alert {} queued", id);
    if (!r.new_alerts.empty()) rt_.notify_outbox();
    co_return r;
}

}  // namespace glasswatch::io
