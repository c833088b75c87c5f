#include "io/sources/eventhub_source.hpp"

#include <spdlog/spdlog.h>
#include <proton/connection_options.hpp>
#include <proton/duration.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "core/base/crypto.hpp"
#include "core/detection/matcher.hpp"
#include "io/base/secrets.hpp"
#include "io/net/net_dial.hpp"
#include "io/sources/eventhub_session_driver.hpp"

namespace glasswatch::io {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// The machine's steady time as a timer's time point (`never`: no deadline at all).
steady::time_point steady_at(core::micros t) {
    if (t == core::eventhub_session::never) return steady::time_point::max();
    return steady::time_point(
        std::chrono::duration_cast<steady::duration>(std::chrono::microseconds(t)));
}

// Hands every completed read to `after` once the pump has taken its bytes in (fed the engine,
// dispatched): the one moment a delivery that is still arriving can be looked at. Proton
// buffers a multi-frame message without any limit of its own.
class watched_stream final : public byte_stream {
public:
    // `head` (optional) sees the connection's first bytes as they arrive: the SASL exchange.
    watched_stream(std::unique_ptr<byte_stream> inner, std::function<void()> after,
                   std::function<void(std::string_view)> head = {})
        : inner_(std::move(inner)), after_(std::move(after)), head_(std::move(head)) {}
    void async_read_some(boost::asio::mutable_buffer b, handler h) override {
        // `this` lives as long as the pump, which `h` keeps alive.
        inner_->async_read_some(
            b, [this, b, h = std::move(h)](const boost::system::error_code& ec, std::size_t n) {
                if (!ec && head_ && seen_ < 1024) {
                    seen_ += n;
                    head_(std::string_view(static_cast<const char*>(b.data()), n));
                }
                h(ec, n);
                if (!ec) after_();
            });
    }
    void async_write(boost::asio::const_buffer b, handler h) override {
        inner_->async_write(b, std::move(h));
    }
    void close() override { inner_->close(); }

private:
    std::unique_ptr<byte_stream> inner_;
    std::function<void()> after_;
    std::function<void(std::string_view)> head_;
    std::size_t seen_ = 0;
};

}  // namespace

bool eventhub_health::all_attached() const {
    if (partitions.empty()) return false;
    for (const auto& p : partitions)
        if (!p.attached) return false;
    return true;
}

std::size_t eventhub_health::stuck_partitions() const {
    std::size_t n = 0;
    for (const auto& p : partitions)
        n += p.stuck ? 1 : 0;
    return n;
}

// ---- the source -------------------------------------------------------------------------------

eventhub_source::eventhub_source(runtime& rt, core::pipeline& pipeline, ingestor& ingest,
                                 const core::config& cfg, eventhub_tuning tuning)
    : rt_(rt), pipeline_(pipeline), ingest_(ingest), cfg_(cfg), ec_(cfg.eventhub), tuning_(tuning) {
    if (ec_.sasl == core::eventhub_sasl::plain) tuning_.sasl_plain = true;
    if (ec_.reconnect_backoff_max) tuning_.backoff_max = *ec_.reconnect_backoff_max;
    if (ec_.partition_backoff_max) tuning_.partition_backoff_max = *ec_.partition_backoff_max;
    secret_result sec = read_secret(ec_.connection_string, cfg.allow_world_readable_secrets);
    if (!sec.value) {
        error_ = "eventhub connection string: " + sec.error;
        return;
    }
    std::string err;
    auto parsed = core::parse_eventhub_connection_string(*sec.value, err);
    if (!parsed) {
        error_ = "eventhub " + err;
        return;
    }
    conn_ = std::move(*parsed);
    hubs_ = ec_.event_hubs;
    if (hubs_.empty() && !conn_.entity_path.empty()) hubs_.push_back(conn_.entity_path);
    if (hubs_.empty()) {
        error_ =
            "eventhub: no event hub named (event_hubs, or EntityPath in the connection string)";
        return;
    }
    if (tuning_.sasl_plain && !conn_.signature.empty()) {
        error_ = "eventhub: SASL PLAIN needs SharedAccessKey, not SharedAccessSignature";
        return;
    }
    if (!conn_.development_emulator) {
        tls_ = make_tls_client_context(ec_.ca_file, err);
        if (!err.empty()) {
            error_ = "eventhub: " + err;
            return;
        }
    }
    core::eventhub_session_config mc;
    for (const auto& hub : hubs_)
        mc.hubs.push_back({hub, core::eventhub_audience(conn_, hub)});
    mc.consumer_group = ec_.consumer_group;
    mc.epoch = ec_.epoch;
    mc.credit = ec_.credit;
    mc.max_message_size = ec_.max_message_size;
    mc.start_lookback = ec_.start_lookback;
    mc.sasl_plain = tuning_.sasl_plain;
    mc.phase_timeout = tuning_.phase_timeout;
    mc.token_ttl = tuning_.token_ttl;
    mc.management_interval = tuning_.management_interval;
    mc.stuck_after = tuning_.stuck_after;
    mc.backoff_initial = tuning_.backoff_initial;
    mc.backoff_max = tuning_.backoff_max;
    mc.busy_min = tuning_.busy_min;
    mc.long_backoff = tuning_.long_backoff;
    mc.partition_backoff_max = tuning_.partition_backoff_max;
    runtime* rt_ptr = &rt_;
    machine_ = std::make_unique<core::eventhub_session>(std::move(mc),
                                                        [rt_ptr] { return rt_ptr->jitter(); });
}

eventhub_source::~eventhub_source() = default;

void eventhub_source::notify() {
    signalled_ = true;
    if (timer_) timer_->cancel();
}

void eventhub_source::stop() {
    stopping_ = true;
    notify();
}

void eventhub_source::drop_connection() {
    drop_requested_ = true;
    notify();
}

void eventhub_source::fail(const std::string& error, core::amqp_error_class cls) {
    perform(session_, machine_->fail(cls, error));
}

eventhub_partition_health& eventhub_source::partition_health(const std::string& hub,
                                                             const std::string& p) {
    for (auto& ph : health_.partitions)
        if (ph.hub == hub && ph.partition == p) return ph;
    eventhub_partition_health ph;
    ph.hub = hub;
    ph.partition = p;
    ph.committed_sequence = machine_->committed_sequence(core::eventhub_checkpoint_key(hub, p));
    health_.partitions.push_back(ph);
    return health_.partitions.back();
}

core::finding eventhub_source::gap_finding(const std::string& hub, const std::string& partition,
                                           const core::sequence_gap& g, core::micros now) {
    // Critical, and evidence like any alert: watched events may be among the lost ones, and
    // only the tenant's own sign-in and audit logs can still say.
    auto iso = [](std::int64_t ms) {
        return ms > 0 ? core::format_iso8601(ms * 1000, false) : std::string();
    };
    const bool reset = g.why == core::sequence_gap::cause::reset;
    const std::string from = g.from_ms > 0 ? iso(g.from_ms) : "an unknown time";
    const std::string to = g.to_ms > 0 ? iso(g.to_ms) : "now";
    const std::string range =
        std::to_string(g.first) + "-" + (g.last >= 0 ? std::to_string(g.last) : std::string("?"));
    std::string summary;
    if (reset) {
        summary = "Event Hub " + hub + " partition " + partition + ": the saved checkpoint (" +
                  std::to_string(g.checkpoint) +
                  ") is past the partition's end - the hub was deleted and created again or "
                  "reset; events after sequence " +
                  std::to_string(g.checkpoint) + " of the old hub (" + range +
                  ") may be lost; reading restarts at sequence " + std::to_string(g.resumed_at) +
                  ". Check the Entra sign-in logs and audit logs from " + from + " to " + to +
                  " for break-glass activity";
    } else {
        summary = "Event Hub " + hub + " partition " + partition + ": events " + range + " (" +
                  std::to_string(g.last - g.first + 1) +
                  ") expired unread (retention); watched events may be among them. Check the "
                  "Entra sign-in logs and audit logs from " +
                  from + " to " + to + " for break-glass activity";
    }
    nlohmann::json d = {{"source", "eventhub"},
                        {"hub", hub},
                        {"partition", partition},
                        {"cause", std::string(core::to_string(g.why))},
                        {"first_missing_sequence", g.first},
                        {"window_from", iso(g.from_ms)},
                        {"window_to", iso(g.to_ms)}};
    if (g.last >= 0) {
        d["last_missing_sequence"] = g.last;
        d["missing_events"] = g.last - g.first + 1;
    }
    if (reset) {
        d["checkpoint_sequence"] = g.checkpoint;
        d["resumed_at_sequence"] = g.resumed_at;
    }
    // One episode per loss: a restart that sees the same loss again does not page again.
    const std::string episode = hub + "/" + partition + "/" + std::string(core::to_string(g.why)) +
                                "/" + std::to_string(reset ? g.checkpoint : g.first);
    core::alert a = core::make_health_alert(
        pipeline_.context(), "events_lost", core::severity::critical, "eventhub",
        core::sha256_hex(episode).substr(0, 32), summary, now, d.dump());
    spdlog::error("eventhub: {}", summary);
    ++health_.gaps;
    return {std::move(a), d.dump(), "eventhub"};
}

namespace {
// Parses "host[:port]" (the `host` override).
void split_host(const std::string& text, std::string& host, std::uint16_t& port) {
    host = text;
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(']') != std::string::npos) return;
    try {
        const int p = std::stoi(text.substr(colon + 1));
        if (p > 0 && p < 65536) {
            host = text.substr(0, colon);
            port = static_cast<std::uint16_t>(p);
        }
    } catch (const std::exception&) {
    }
}
}  // namespace

asio::awaitable<void> eventhub_source::run() {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer_ = &timer;
    struct forget {
        asio::steady_timer*& t;
        ~forget() { t = nullptr; }
    } forget_timer{timer_};
    if (!ok()) {
        spdlog::error("{}", error_);
        co_return;
    }
    if (!loaded_) {
        auto load = [](store& db) { return db.load_checkpoints("eventhub:"); };
        auto saved = co_await rt_.on_store(std::move(load));
        for (const auto& c : saved) {
            if (auto cp = core::decode_checkpoint(c.position))
                machine_->on_committed(c.source, *cp);
            else
                spdlog::warn(
                    "eventhub: checkpoint {} unreadable; that partition starts from the "
                    "lookback",
                    c.source);
        }
        loaded_ = true;
    }
    spdlog::info("eventhub: {} hub(s) on {} over {}{}, consumer group {}", hubs_.size(),
                 ec_.host.empty() ? conn_.namespace_host : ec_.host,
                 conn_.development_emulator ? "plain AMQP (development emulator)"
                 : ec_.transport == core::eventhub_transport::websocket ? "AMQP over WebSockets"
                                                                        : "AMQPS",
                 ec_.proxy.empty() ? "" : " via proxy", ec_.consumer_group);
    while (!stopping_) {
        drop_requested_ = false;
        co_await connect_once();
        if (stopping_) break;
        const core::eventhub_session::reconnect again = machine_->on_connection_end();
        if (health_.common.failing_since == 0) health_.common.failing_since = wall_now();
        health_.common.last_error = again.text;
        spdlog::warn("eventhub: {} ({}); reconnecting in {}", again.text,
                     core::to_string(again.cls), core::format_duration(again.delay.count()));
        sync_health();
        const auto until = steady::now() + again.delay;
        while (!stopping_ && steady::now() < until)
            co_await wait_until(until);
    }
    machine_->on_stopped();
    sync_health();
    spdlog::info("eventhub: stopped");
}

asio::awaitable<void> eventhub_source::wait_until(steady::time_point tp) {
    if (signalled_ || !timer_) {
        signalled_ = false;
        co_return;
    }
    timer_->expires_at(tp);
    boost::system::error_code ec;
    co_await timer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    signalled_ = false;
}

struct eventhub_source::batch {
    std::vector<session::pending_message> messages;
    std::vector<core::finding> findings;
    std::map<std::string, core::eventhub_checkpoint> advance;
    bool done = false;  // the store answered (result)
    commit_result result;
};

void eventhub_source::raise_gap(const std::string& hub, const std::string& partition,
                                const core::sequence_gap& g) {
    // Known before any delivery (runtime info): committed with the next batch, before anything
    // read after it.
    if (!open_) open_ = std::make_shared<batch>();
    open_->findings.push_back(gap_finding(hub, partition, g, wall_now()));
    notify();
}

asio::awaitable<void> eventhub_source::connect_once() {
    auto ex = co_await asio::this_coro::executor;
    machine_->begin_connection(eventhub_now());
    sync_health();
    dial_options o;
    o.host = conn_.namespace_host;
    o.port = eventhub_port(conn_, ec_.transport == core::eventhub_transport::websocket);
    if (!ec_.host.empty()) split_host(ec_.host, o.host, o.port);
    o.tls_name = ec_.tls_server_name;
    o.tls = !conn_.development_emulator;
    o.tls_context = tls_.get();
    o.websocket = ec_.transport == core::eventhub_transport::websocket;
    o.proxy = ec_.proxy;
    o.phase_timeout = tuning_.phase_timeout;
    std::function<void(const char*)> on_phase = [this](const char* p) {
        const std::string_view ph = p;
        if (ph == "tls") machine_->on_transport_phase(connection_phase::tls, eventhub_now());
        if (ph == "websocket")
            machine_->on_transport_phase(connection_phase::ws_upgrade, eventhub_now());
        sync_health();
    };
    dial_result dr = co_await dial(ex, std::move(o), std::move(on_phase));
    if (!dr.stream) {
        perform(nullptr, machine_->on_dial_failed(dr.error, dr.timed_out));
        co_return;
    }
    if (stopping_) co_return;

    machine_->on_amqp_start(eventhub_now());
    sync_health();
    auto owned = std::make_unique<session>(*this);
    session* s = owned.get();
    std::function<void()> after_read = [this, s] {
        // Only while `s` is the live session (a read of an old connection may still complete).
        if (session_ != s || !s->refuse_oversized()) return;
        if (auto p = pump_.lock(); p && !p->finished()) p->wake();  // the disposition goes out
    };
    std::function<void(std::string_view)> on_head = [this, s](std::string_view bytes) {
        if (session_ == s && machine_->phase() == connection_phase::amqp_open) s->on_head(bytes);
    };
    auto watched = std::make_unique<watched_stream>(std::move(dr.stream), std::move(after_read),
                                                    std::move(on_head));
    auto pump = std::make_shared<amqp_pump>(ex, std::move(watched), std::move(owned), "glasswatch");
    session_ = s;
    pump_ = pump;
    proton::connection_options co;
    co.handler(*s);
    co.container_id("glasswatch");
    co.virtual_host(conn_.namespace_host);  // AMQP open hostname: the namespace
    co.idle_timeout(proton::duration(
        std::chrono::duration_cast<std::chrono::milliseconds>(ec_.idle_timeout).count()));
    co.max_frame_size(1u << 20);
    co.sasl_enabled(true);
    // Always explicit: Proton's default SASL picks EXTERNAL first, which Azure offers.
    if (tuning_.sasl_plain) {
        co.user(conn_.key_name).password(conn_.key).sasl_allowed_mechs("PLAIN");
        // Proton sends PLAIN only over a transport it encrypts itself; ours does TLS in its own
        // layer (AMQPS, WebSockets over TLS), so Proton must be told PLAIN is fine here. The
        // development emulator is plain TCP by definition (loopback, no real key).
        co.sasl_allow_insecure_mechs(true);
    } else {
        co.sasl_allowed_mechs("ANONYMOUS");
    }
    pump->driver().connect(co);
    auto finished = std::make_shared<std::string>();
    auto on_done = [this, finished](const std::string& why) {
        *finished = why.empty() ? "connection closed" : why;
        notify();
    };
    pump->start(std::move(on_done));

    bool store_refused = false;
    while (!stopping_ && !drop_requested_ && !machine_->failure() && finished->empty()) {
        // Timed duties first (the phase deadline; partitions whose own back-off is over attach
        // again; token renewal; the periodic READ): a backlog that never lets the batches run
        // dry must not starve them.
        auto due = machine_->on_tick(eventhub_now());
        if (!due.empty()) {
            perform(s, std::move(due));
            pump->wake();  // what they sent goes out now
        }
        if (machine_->failure()) break;
        // The source's health follows the partitions while the connection runs.
        if (machine_->phase() == connection_phase::running) update_partition_health();
        if (inflight_ && inflight_->done) {
            if (!finish_commit(s)) {
                store_refused = true;
                break;
            }
            continue;
        }
        if (open_ && !inflight_) {
            start_commit();
            continue;
        }
        if (!s->pending.empty() && (!open_ || open_->messages.size() < tuning_.max_batch)) {
            // A few messages at a time, then the socket gets its turn: reading, TLS and AMQP
            // framing go on while the pipeline and the store work.
            process_pending(s, 16);
            co_await asio::post(ex, asio::use_awaitable);
            continue;
        }
        co_await wait_until(steady_at(machine_->next_wake()));
    }
    // A commit under way is waited for, so its checkpoints count. The open batch was processed
    // whole, so it is committed too (a stop or a lost connection need not read it again), unless
    // the store has just refused a commit: then the next connection re-reads it from the last
    // durable position.
    if (!store_refused) store_refused = !co_await settle_inflight(s);
    if (open_ && !store_refused) {
        start_commit();
        co_await settle_inflight(s);
    }
    open_.reset();
    if (drop_requested_) fail("connection dropped on request", core::amqp_error_class::transient);
    if (!finished->empty()) fail(*finished, core::amqp_error_class::transient);
    session_ = nullptr;
    for (auto& p : health_.partitions)
        p.attached = false;
    pump_.reset();
    if (!pump->finished()) pump->abort(stopping_ ? "stopping" : "reconnecting");
}

core::finding eventhub_source::refused_message_finding(const std::string& key,
                                                       const core::message_position& pos,
                                                       std::uint64_t size, const std::string& head,
                                                       core::micros now) const {
    // Fail closed: what the message held is unknown, and it may be the break-glass sign-in.
    // The id is the message's place in the stream, so a re-read never pages twice.
    const std::string seq = pos.sequence_number ? std::to_string(*pos.sequence_number) : "?";
    const std::string where = key + " sequence " + seq;
    nlohmann::json d = {{"reason", "message larger than max_message_size"},
                        {"source", "eventhub"},
                        {"partition", key},
                        {"sequence_number", seq},
                        {"bytes_at_least", size},
                        {"max_message_size", ec_.max_message_size},
                        {"evidence_bytes", head.size()}};
    core::alert a = core::make_health_alert(
        pipeline_.context(), core::rules::unparsed_candidate, core::severity::high, "eventhub",
        core::sha256_hex(where).substr(0, 32),
        "Event Hub message at " + where + " is larger than max_message_size (" +
            std::to_string(ec_.max_message_size) +
            " bytes) and was skipped unread; it may hold watched events",
        now, d.dump());
    return {std::move(a), head, "eventhub"};
}

std::size_t eventhub_source::uncommitted() const {
    return (open_ ? open_->messages.size() : 0) + (inflight_ ? inflight_->messages.size() : 0);
}

void eventhub_source::process_pending(session* s, std::size_t max_messages) {
    if (!open_) open_ = std::make_shared<batch>();
    batch& b = *open_;
    const std::size_t n =
        std::min({s->pending.size(), max_messages, tuning_.max_batch - b.messages.size()});
    const core::micros now = wall_now();
    core::body_origin origin;
    origin.source = "eventhub";
    origin.hint = core::record_hint::diagnostic;
    for (std::size_t i = 0; i < n; ++i) {
        b.messages.push_back(std::move(s->pending.front()));
        s->pending.pop_front();
        auto& m = b.messages.back();
        // Events lost just before this one: the alert goes in the same transaction as the
        // checkpoint that moves past them (invariant 1), so the loss is never silent.
        if (m.gap) b.findings.push_back(gap_finding(m.hub, m.partition, *m.gap, now));
        ++health_.messages;
        ++partition_health(m.hub, m.partition).messages;
        if (m.too_large) {
            ++health_.common.rejected["message_too_large"];
            if (auto count = too_large_log_.note(now))
                spdlog::warn(
                    "eventhub {}: {} message(s) larger than max_message_size ({} bytes) refused "
                    "unread since the last report, latest at sequence {} ({}+ bytes)",
                    m.key, count, ec_.max_message_size,
                    m.pos.sequence_number ? std::to_string(*m.pos.sequence_number) : "?", m.size);
            b.findings.push_back(refused_message_finding(m.key, m.pos, m.size, m.body, now));
        } else if (!m.body_ok) {
            ++health_.bad_bodies;
            ++health_.common.rejected["message_without_body"];
            if (auto count = no_body_log_.note(now))
                spdlog::warn("eventhub {}: {} message(s) without a data or string body skipped",
                             m.key, count);
        } else {
            core::process_output out = pipeline_.process(core::trim_body(m.body), origin, now);
            // A flood of malformed records is one line a minute (counted in the metrics always).
            if (!out.problems.empty()) {
                if (auto count = problem_log_.note(now, out.problems.size()))
                    spdlog::warn(
                        "eventhub {}: {} malformed input(s) since the last report, latest: {}",
                        m.key, count, out.problems.back());
            }
            health_.common.records += out.records;
            health_.common.last_event_seen = now;
            for (auto& f : out.findings)
                b.findings.push_back(std::move(f));
        }
        // The body is not needed any more; the delivery stays until it is accepted.
        std::string().swap(m.body);
        if (core::usable(m.pos)) core::advance(b.advance[m.key], m.pos);
    }
}

void eventhub_source::start_commit() {
    inflight_ = std::move(open_);
    std::shared_ptr<batch> b = inflight_;
    std::vector<checkpoint> checkpoints;
    for (const auto& [key, cp] : b->advance)
        checkpoints.push_back(checkpoint{key, core::encode_checkpoint(cp)});
    auto commit = [](ingestor& ingest, std::shared_ptr<batch> which,
                     std::vector<checkpoint> positions) -> asio::awaitable<void> {
        which->result = co_await ingest.commit(std::move(which->findings), std::move(positions));
    };
    auto done = [this, b](std::exception_ptr e) {
        if (e) {
            b->result = commit_result{};
            b->result.error = "the commit ended with an exception";
        }
        b->done = true;
        notify();
    };
    asio::co_spawn(rt_.main().get_executor(), commit(ingest_, b, std::move(checkpoints)),
                   std::move(done));
}

bool eventhub_source::finish_commit(session* s) {
    std::shared_ptr<batch> b = std::move(inflight_);
    if (!b->result.ok) {
        ++health_.commit_failures;
        // Nothing advanced: the reconnect re-reads this batch from the last durable position.
        fail("store not writable: " + b->result.error, core::amqp_error_class::transient);
        return false;
    }
    ++health_.batches;
    health_.common.last_success = wall_now();
    const auto& parts = machine_->partitions();
    for (const auto& [key, cp] : b->advance) {
        machine_->on_committed(key, cp);
        if (auto it = parts.find(key); session_ != nullptr && it != parts.end())
            partition_health(it->second.hub, it->second.id).committed_sequence = cp.sequence_number;
    }
    // Durable: only now accept the deliveries and give the credit back (bounded memory).
    auto pump = pump_.lock();
    if (pump && !pump->finished() && session_ == s) {
        std::map<std::string, std::uint32_t> credit;
        for (auto& m : b->messages) {
            if (m.link.active() && !m.settled) m.d.accept();
            if (machine_->returns_credit(m.key, m.link_id)) ++credit[m.key];
        }
        for (const auto& [key, count] : credit) {
            auto link = s->links.find(parts.at(key).link);
            if (link != s->links.end()) link->second.add_credit(static_cast<int>(count));
        }
        pump->wake();
    }
    return true;
}

asio::awaitable<bool> eventhub_source::settle_inflight(session* s) {
    while (inflight_ && !inflight_->done)
        co_await wait_until(steady::now() + std::chrono::seconds(1));
    co_return !inflight_ || finish_commit(s);
}

}  // namespace glasswatch::io
