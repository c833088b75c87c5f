#include "io/sources/graph_poller.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <set>

#include "io/store/runtime.hpp"

namespace glasswatch::io {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {
constexpr int max_pages_per_poll = 10000;  // a bound on one paging run
}  // namespace

graph_poller::graph_poller(runtime& rt, https_client& http, token_provider& tokens,
                           core::pipeline& pipeline, ingestor& ingest, const core::config& cfg)
    : rt_(rt),
      pipeline_(pipeline),
      ingest_(ingest),
      cfg_(cfg),
      graph_(http, tokens,
             cfg.graph.graph_base_url.empty() ? core::default_graph_base_url(cfg.cloud)
                                              : cfg.graph.graph_base_url,
             cfg.graph.max_requests_per_10s) {
    backoff_.initial = 2s;
    backoff_.max = 120s;
    plan_ = core::plan_streams(cfg.graph, cfg.watch);
}

void graph_poller::stop() {
    graph_.stop();
}

void graph_poller::fail(const std::string& error) {
    if (error != health_.last_error) spdlog::warn("graph: {}", error);
    health_.last_error = error;
}

void graph_poller::settle(core::graph_kind kind, bool ok) {
    core::micros& since = stream_failing_since_[kind];
    const std::string name(core::stream_name(kind));
    if (ok) {
        if (since != 0) spdlog::info("graph: stream {} recovered", name);
        since = 0;
        stream_error_.erase(kind);
    } else {
        if (since == 0) since = wall_now();
        stream_error_[kind] = health_.last_error;
    }
    // The source is failing since its longest continuous failure of one stream.
    core::micros earliest = 0;
    std::string why;
    for (const auto& [k, t] : stream_failing_since_)
        if (t != 0 && (earliest == 0 || t < earliest)) {
            earliest = t;
            why = stream_error_[k];
        }
    if (earliest == 0 && health_.failing_since != 0) spdlog::info("graph: polling recovered");
    health_.failing_since = earliest;
    health_.last_error = why;
}

asio::awaitable<void> graph_poller::run() {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    graph_.attach(&timer);
    struct forget {
        graph_fetcher& g;
        ~forget() { g.attach(nullptr); }
    } forget_timer{graph_};
    if (!loaded_) {
        auto load = [](store& db) { return db.load_checkpoints("graph:"); };
        auto saved = co_await rt_.on_store(std::move(load));
        for (auto kind : plan_.read) {
            for (const auto& c : saved) {
                if (c.source != core::checkpoint_key(kind)) continue;
                if (auto cur = core::graph_cursor::from_json(c.position))
                    cursors_[kind] = std::move(*cur);
                else
                    spdlog::warn(
                        "graph: checkpoint {} unreadable; starting from the initial lookback",
                        c.source);
            }
        }
        loaded_ = true;
    }
    std::string streams;
    for (auto kind : plan_.read)
        streams += (streams.empty() ? "" : ", ") + std::string(core::stream_name(kind));
    spdlog::info("graph: polling {} every {}s ({} stream(s): {}; lookback {}s{})", graph_.base(),
                 cfg_.graph.poll_interval.count(), plan_.read.size(), streams,
                 cfg_.graph.lookback.count(),
                 cfg_.graph.full_stream ? ", full stream" : ", filtered to the watched ids");
    for (const auto& [kind, why] : plan_.skipped)
        spdlog::info("graph: not reading {} sign-ins: {}", core::stream_name(kind), why);
    int failures = 0;
    while (!graph_.stopping()) {
        const core::micros cycle_started = steady_micros();
        // Nothing to read for these watched accounts is not a failure of the source.
        bool any_ok = plan_.read.empty();
        for (auto kind : plan_.read) {
            if (graph_.stopping()) break;
            const bool ok = co_await poll_stream(kind);
            if (graph_.stopping()) break;
            settle(kind, ok);
            any_ok = any_ok || ok;
        }
        if (graph_.stopping()) break;
        ++health_.polls;
        // poll_interval is the period of the cycles, not a pause after each: a cycle that took
        // 3 s of a 30 s interval starts the next one 27 s later (the limiter still paces every
        // request), so an event waits at most one interval for the poll that reads it.
        const auto took = std::chrono::milliseconds((steady_micros() - cycle_started) / 1000);
        std::chrono::milliseconds wait = std::max(
            std::chrono::milliseconds(0),
            std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.graph.poll_interval) - took);
        if (any_ok) {
            health_.last_success = wall_now();
            failures = 0;
        } else {
            // Nothing answered: back off. (One stream refused while the others are read is
            // that stream's problem; the others keep their pace.)
            ++failures;
            wait = std::max(wait, core::backoff_delay(backoff_, failures, rt_.jitter()));
        }
        if (!co_await graph_.sleep_for(wait)) break;
    }
    spdlog::info("graph: stopped");
}

asio::awaitable<bool> graph_poller::poll_stream(core::graph_kind kind) {
    core::graph_cursor& cur = cursors_[kind];
    const core::micros started = wall_now();
    const core::micros lookback = cfg_.graph.lookback.count() * 1000000LL;
    const core::micros from = cur.cursor == 0
                                  ? started - cfg_.graph.initial_lookback.count() * 1000000LL
                                  : cur.cursor - lookback;
    int& top = page_top_[kind];
    std::string url = core::build_poll_url(graph_.base(), kind, from, pipeline_.watched(),
                                           cfg_.graph.full_stream, top);
    const std::string stream = "graph " + std::string(core::stream_name(kind));
    core::body_origin origin;
    origin.source = "graph";
    origin.hint = kind == core::graph_kind::audit ? core::record_hint::graph_audit
                                                  : core::record_hint::graph_signin;
    origin.signin = core::signin_of(kind);

    std::set<std::string> visited;
    core::micros ended = started;  // the server's time of the first page (core::poll_cursor)
    for (int page = 0; !url.empty(); ++page) {
        if (page >= max_pages_per_poll) {
            ++health_.rejected["too_many_pages"];
            fail(stream + ": more than " + std::to_string(max_pages_per_poll) +
                 " pages in one poll; cursor kept");
            co_return false;
        }
        if (!visited.insert(url).second) {
            ++health_.rejected["next_link_loop"];
            fail(stream + ": @odata.nextLink loops back to a page already read; cursor kept");
            co_return false;
        }
        graph_fetch_result page_res = co_await fetch(url);
        if (page_res.stopped) co_return false;
        if (page_res.too_large) {
            ++health_.rejected["body_too_large"];
            const int smaller = core::smaller_page_top(top);
            if (smaller == 0) {
                fail(stream + ": a single record is larger than the body limit (" + page_res.error +
                     "); cursor kept");
                co_return false;
            }
            // Start the window again with smaller pages (findings already committed are in
            // the seen-set and cost nothing the second time).
            spdlog::warn(
                "{}: a page was larger than the body limit; asking for $top={} from now on", stream,
                smaller);
            top = smaller;
            url = core::build_poll_url(graph_.base(), kind, from, pipeline_.watched(),
                                       cfg_.graph.full_stream, top);
            visited.clear();
            page = -1;
            continue;
        }
        if (!page_res.ok) {
            fail(stream + ": " + page_res.error);
            co_return false;
        }
        ++health_.pages;
        if (page == 0) ended = core::poll_cursor(started, page_res.server_date);
        core::process_output out = pipeline_.process(page_res.body, origin, wall_now());
        // A flood of malformed records is one line a minute (counted in the metrics always); an
        // unreadable page is reported once by fail() below.
        if (!out.problems.empty() && out.body_error.empty()) {
            if (auto n = problem_log_.note(wall_now(), out.problems.size()))
                spdlog::warn("{}: {} malformed input(s) since the last report, latest: {}", stream,
                             n, out.problems.back());
        }
        // Silence detection only needs "this page carried records", not a parse of each one.
        if (page_res.body.find("\"id\"") != std::string::npos) health_.last_event_seen = wall_now();
        health_.records += out.records;
        // Only findings not already committed in an earlier window go to the store.
        std::vector<core::finding> fresh;
        for (auto& f : out.findings)
            if (!cur.seen_before(f.a.event_id + "|" + f.a.rule)) fresh.push_back(std::move(f));
        if (!fresh.empty()) {
            std::vector<std::pair<std::string, core::micros>> keys;
            for (const auto& f : fresh)
                keys.emplace_back(f.a.event_id + "|" + f.a.rule, f.a.event_time);
            std::vector<checkpoint> no_checkpoint;  // findings alone: the cursor stays put
            commit_result cr = co_await ingest_.commit(std::move(fresh), std::move(no_checkpoint));
            if (!cr.ok) {
                fail("store not writable: " + cr.error);
                co_return false;
            }
            // Remembered only once durable: a failed commit must be read again next time.
            for (auto& [k, t] : keys)
                cur.remember(k, t);
        }
        if (!out.body_error.empty()) {
            // Half a page: what follows the fault, the nextLink included, may be missing.
            ++health_.rejected["page_malformed"];
            fail(stream + ": a page is not readable JSON (" + out.body_error + "); cursor kept");
            co_return false;
        }
        url.clear();
        if (!out.next_link.empty()) {
            if (!core::same_origin(out.next_link, graph_.base())) {
                ++health_.refused_next_links;
                ++health_.rejected["next_link_off_host"];
                fail(
                    stream +
                    ": refused an @odata.nextLink to another host (the bearer token never leaves " +
                    graph_.host() + "); cursor kept");
                co_return false;
            }
            url = out.next_link;
        }
    }
    // Every page read and every finding durable: advance the cursor (and prune the seen-set to
    // what the next overlap window can still return).
    cur.cursor = ended;
    cur.prune(ended - lookback - 3600LL * 1000000, cfg_.graph.seen_set_max);
    // (Arguments are named locals: GCC 12 rejects braced temporaries inside co_await.)
    std::vector<core::finding> none;
    std::vector<checkpoint> advance{checkpoint{core::checkpoint_key(kind), cur.to_json()}};
    commit_result cr = co_await ingest_.commit(std::move(none), std::move(advance));
    if (!cr.ok) {
        fail("store not writable: " + cr.error);
        co_return false;
    }
    co_return true;
}

asio::awaitable<graph_fetch_result> graph_poller::fetch(const std::string& url) {
    graph_fetch_result r = co_await graph_.get(url);
    const graph_fetch_counters& c = graph_.counters();
    health_.requests = c.requests;
    health_.throttled = c.throttled;
    health_.unauthorized = c.unauthorized;
    health_.token = c.token;
    co_return r;
}

}  // namespace glasswatch::io
