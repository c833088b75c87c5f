#include "app/generation.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

namespace glasswatch::app {

namespace asio = boost::asio;

generation::generation(io::runtime& rt, core::config cfg)
    : rt_(rt),
      cfg_(std::move(cfg)),
      actx_{cfg_.tenant_id, cfg_.tenant_name.empty() ? cfg_.tenant_id : cfg_.tenant_name},
      pipeline_(cfg_),
      ingest_(rt, cfg_) {}

generation::~generation() = default;

std::unique_ptr<generation> generation::build(io::runtime& rt, core::config cfg,
                                              io::monitor_memory& memory, std::string& error) {
    std::unique_ptr<generation> g(new generation(rt, std::move(cfg)));
    const core::config& c = g->cfg_;
    std::vector<std::unique_ptr<io::sink>> sinks;
    for (const auto& sc : c.sinks) {
        std::string err;
        auto s = io::make_sink(rt, sc, c.allow_world_readable_secrets, err);
        if (!s) {
            error = "sink " + sc.name + ": " + err;
            return nullptr;
        }
        sinks.push_back(std::move(s));
    }
    g->delivery_ = std::make_unique<io::delivery_engine>(rt, std::move(sinks), g->actx_);

    // Sources. Each one hands raw pages/bodies to the pipeline and commits through `ingest`.
    if (c.graph.enabled) {
        io::https_client_options ho;
        ho.ca_file = c.graph.ca_file;
        ho.proxy = c.graph.proxy;
        ho.request_timeout = c.graph.request_timeout;
        ho.max_body_bytes = 64u << 20;  // a 1000-record sign-in page is a few MB
        g->graph_http_ = std::make_unique<io::https_client>(rt.main().get_executor(), ho);
        g->tokens_ = io::token_provider::create(*g->graph_http_, c, error);
        if (!g->tokens_) return nullptr;
        g->graph_ = std::make_unique<io::graph_poller>(rt, *g->graph_http_, *g->tokens_,
                                                       g->pipeline_, g->ingest_, c);
    }
    if (c.eventhub.enabled) {
        g->eventhub_ = std::make_unique<io::eventhub_source>(rt, g->pipeline_, g->ingest_, c);
        if (!g->eventhub_->ok()) {
            error = g->eventhub_->error();
            return nullptr;
        }
    }
    // Posture checks share the Graph client and token, not the poller's request budget.
    if (c.posture.enabled && g->tokens_)
        g->posture_ = std::make_unique<io::posture_checker>(*g->graph_http_, *g->tokens_, c);

    // The tripwire, heartbeat, drills and the admin endpoints' view of the daemon.
    g->monitor_ = std::make_unique<io::monitor>(rt, c, g->actx_, g->ingest_, *g->delivery_,
                                                g->pipeline_, memory);
    if (g->graph_) {
        const bool whole = c.graph.full_stream;
        io::graph_poller* gp = g->graph_.get();
        io::token_provider* t = g->tokens_.get();
        g->monitor_->add_source({"graph",
                                 [gp, whole] {
                                     const io::source_health& h = gp->health();
                                     core::source_snapshot s;
                                     s.name = "graph";
                                     s.last_success = h.last_success;
                                     s.failing_since = h.failing_since;
                                     s.last_event_seen = h.last_event_seen;
                                     s.sees_whole_stream = whole;
                                     s.last_error = h.last_error;
                                     s.token = h.token;
                                     s.records = h.records;
                                     s.rejected = h.rejected;
                                     s.polls = h.polls;
                                     s.requests = h.requests;
                                     return s;
                                 },
                                 [t] { return t->expires_at(); }});
    }
    if (g->eventhub_) {
        io::eventhub_source* e = g->eventhub_.get();
        g->monitor_->add_source({"eventhub",
                                 [e] {
                                     const io::eventhub_health& h = e->health();
                                     core::source_snapshot s;
                                     s.name = "eventhub";
                                     s.last_success = h.common.last_success;
                                     s.failing_since = h.common.failing_since;
                                     s.last_event_seen = h.common.last_event_seen;
                                     // every record of the categories streamed
                                     s.sees_whole_stream = true;
                                     s.last_error = h.common.last_error;
                                     s.stuck = h.stuck_partitions() > 0;
                                     s.records = h.messages;
                                     s.rejected = h.common.rejected;
                                     return s;
                                 },
                                 {}});
    }
    return g;
}

std::vector<std::string> generation::source_names() const {
    std::vector<std::string> n;
    if (graph_) n.push_back("graph");
    if (eventhub_) n.push_back("eventhub");
    return n;
}

void generation::start(ended_fn ended, std::function<void()> all_done) {
    all_done_ = std::move(all_done);
    running_ = 2 + (graph_ ? 1 : 0) + (eventhub_ ? 1 : 0) + (posture_ ? 1 : 0);
    auto end = [this, ended](const char* what) {
        return [this, ended, what](std::exception_ptr e) {
            ended(what, e);
            // Posted: the caller may destroy this generation, which must not happen while
            // co_spawn's completion is still on the stack.
            if (--running_ == 0) asio::post(rt_.main(), [f = all_done_] { f(); });
        };
    };
    asio::io_context& ctx = rt_.main();
    asio::co_spawn(ctx, delivery_->run(), end("delivery"));
    if (graph_) asio::co_spawn(ctx, graph_->run(), end("graph poller"));
    asio::co_spawn(ctx, monitor_->run(), end("monitor"));
    if (posture_) asio::co_spawn(ctx, posture_->run(rt_, ingest_), end("posture checker"));
    if (eventhub_) asio::co_spawn(ctx, eventhub_->run(), end("eventhub source"));
}

void generation::stop() {
    if (graph_) graph_->stop();
    if (posture_) posture_->stop();
    if (eventhub_) eventhub_->stop();
    delivery_->stop();
    monitor_->stop();
}

}  // namespace glasswatch::app
