// One generation of the daemon's components, built from one configuration: sinks and the
// delivery engine, the pipeline and ingest, the sources, the posture checker and the monitor.
//
// A reload (SIGHUP) builds the next generation first (secrets read, sinks and token provider
// constructed: everything that can refuse does so before anything stops), then stops this one
// (intake first, in-flight deliveries finish within their own deadlines) and starts the next on
// the same store, threads, lock and admin endpoint. Everything a generation has acknowledged is
// durable (outbox, checkpoints, episodes, posture state), so the switch is a restart without
// the process exit; what the tripwire knows is kept in the daemon's monitor_memory.
//
// Thread: main thread only. A generation is destroyed only after every component it started
// has finished (all_done ran): no coroutine frame outlives what it points at.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/alerting/alert.hpp"
#include "core/alerting/pipeline.hpp"
#include "core/config/config.hpp"
#include "io/delivery/delivery.hpp"
#include "io/net/https_client.hpp"
#include "io/ops/monitor.hpp"
#include "io/sources/eventhub_source.hpp"
#include "io/sources/graph_poller.hpp"
#include "io/sources/ingest.hpp"
#include "io/sources/posture_checker.hpp"
#include "io/sources/token_provider.hpp"
#include "io/store/runtime.hpp"

namespace glasswatch::app {

class generation {
public:
    // Builds every component of `cfg`; nothing runs yet. nullptr and `error` (naming the part)
    // when one cannot be built: a secret that cannot be read, a key that does not parse.
    static std::unique_ptr<generation> build(io::runtime& rt, core::config cfg,
                                             io::monitor_memory& memory, std::string& error);
    ~generation();
    generation(const generation&) = delete;
    generation& operator=(const generation&) = delete;

    // Called once per component when it ends; `e` is set when a bug stopped it.
    using ended_fn = std::function<void(const char* what, std::exception_ptr e)>;
    // Starts every component; `all_done` runs (posted, not inline) when the last one ended.
    void start(ended_fn ended, std::function<void()> all_done);
    // Stop intake, let in-flight deliveries finish; all_done follows.
    void stop();

    const core::config& config() const noexcept { return cfg_; }
    io::monitor& monitor() noexcept { return *monitor_; }
    // The sources this generation reads ("graph", "eventhub"), for the tripwire.
    std::vector<std::string> source_names() const;

private:
    generation(io::runtime& rt, core::config cfg);

    io::runtime& rt_;
    const core::config cfg_;  // first: every component below holds a reference to it
    core::alert_context actx_;
    core::pipeline pipeline_;
    io::ingestor ingest_;
    std::unique_ptr<io::delivery_engine> delivery_;
    std::unique_ptr<io::https_client> graph_http_;
    std::unique_ptr<io::token_provider> tokens_;
    std::unique_ptr<io::graph_poller> graph_;
    std::unique_ptr<io::eventhub_source> eventhub_;
    std::unique_ptr<io::posture_checker> posture_;
    std::unique_ptr<io::monitor> monitor_;
    int running_ = 0;
    std::function<void()> all_done_;
};

}  // namespace glasswatch::app
