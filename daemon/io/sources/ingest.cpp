#include "io/sources/ingest.hpp"

#include <spdlog/spdlog.h>

#include "core/alerting/routing.hpp"
#include "io/base/failpoint.hpp"
#include "io/delivery/delivery.hpp"

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
    // Kept for the callbacks below (the routed copy moves to the store thread).
    std::map<std::string, core::alert> by_id;
    for (const auto& rf : routed)
        by_id.emplace(rf.f.a.id, rf.f.a);
    auto write = [routed = std::move(routed), checkpoints = std::move(checkpoints),
                  now](store& db) { return db.commit(routed, checkpoints, now); };
    commit_result r = co_await rt_.on_store(std::move(write));
    if (!r.ok) {
        ++failures_;
        // Logged on the first failure and every 100th: a full disk must not fill the journal.
        if (failing_since_ == 0 || failures_ % 100 == 0)
            spdlog::error("store: commit failed, source positions stay where they were: {}",
                          r.error);
        if (failing_since_ == 0) failing_since_ = now;
        store_error_ = r.error;
        co_return r;
    }
    if (failing_since_ != 0) {
        spdlog::info("store: writable again after {}",
                     core::format_duration((now - failing_since_) / 1000));
        failing_since_ = 0;
        store_error_.clear();
    }
    // The store labels drill alerts inside the transaction; mirror that on our copies so the
    // callbacks (the active-use summary) see what was committed.
    for (const auto& id : r.drill_alerts)
        if (auto it = by_id.find(id); it != by_id.end()) it->second.drill = true;
    if (!r.new_alerts.empty()) failpoint("after_outbox_commit");
    alerts_ += r.new_alerts.size();
    for (const auto& id : r.new_alerts) {
        spdlog::info("alert {} queued", id);
        if (auto it = by_id.find(id); it != by_id.end()) {
            ++by_rule_[it->second.rule];
            if (on_new_) on_new_(it->second);
        }
    }
    if (!r.new_alerts.empty()) rt_.notify_outbox();
    co_return r;
}

}  // namespace glasswatch::io
