#include "io/sources/eventhub_source.hpp"

#include <proton/codec.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/link.h>
#include <spdlog/spdlog.h>
#include <proton/annotation_key.hpp>
#include <proton/binary.hpp>
#include <proton/codec/encoder.hpp>
#include <proton/codec/map.hpp>
#include <proton/codec/vector.hpp>
#include <proton/connection.hpp>
#include <proton/connection_options.hpp>
#include <proton/delivery.hpp>
#include <proton/duration.hpp>
#include <proton/error_condition.hpp>
#include <proton/link.hpp>
#include <proton/message.hpp>
#include <proton/message_id.hpp>
#include <proton/receiver.hpp>
#include <proton/receiver_options.hpp>
#include <proton/scalar.hpp>
#include <proton/sender.hpp>
#include <proton/source.hpp>
#include <proton/source_options.hpp>
#include <proton/symbol.hpp>
#include <proton/target_options.hpp>
#include <proton/timestamp.hpp>
#include <proton/transport.hpp>
#include <proton/value.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <nlohmann/json.hpp>

#include "core/base/crypto.hpp"
#include "core/detection/matcher.hpp"
#include "io/base/secrets.hpp"
#include "io/net/net_dial.hpp"
#include "io/sources/eventhub_message.hpp"

namespace glasswatch::io {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

std::int64_t now_unix_s() {
    return wall_now() / 1000000;
}

std::string condition_text(const proton::error_condition& e) {
    if (!e) return {};
    std::string t = e.name();
    if (!e.description().empty()) t += ": " + e.description().substr(0, 200);
    return t;
}

// Proton C handle of a link: the C++ API has no max-message-size and no view of a delivery
// that is still arriving.
struct link_handle : proton::link {
    explicit link_handle(const proton::link& l) : proton::link(l) {}
    pn_link_t* raw() const { return pn_object(); }
};

// The x-opt-* annotations of a message from its first bytes (header, delivery-annotations and
// message-annotations come before the body): enough to checkpoint past a message refused
// unread. Fields stay empty when they are not within `head`.
core::message_position position_from_head(std::string_view head) {
    core::message_position pos;
    std::unique_ptr<pn_data_t, decltype(&pn_data_free)> data(pn_data(16), &pn_data_free);
    std::size_t at = 0;
    while (at < head.size()) {
        pn_data_clear(data.get());
        const ssize_t n = pn_data_decode(data.get(), head.data() + at, head.size() - at);
        if (n <= 0) break;  // truncated or not AMQP
        at += static_cast<std::size_t>(n);
        pn_data_t* d = data.get();
        pn_data_rewind(d);
        if (!pn_data_next(d) || pn_data_type(d) != PN_DESCRIBED) break;
        pn_data_enter(d);
        if (!pn_data_next(d) || pn_data_type(d) != PN_ULONG) break;
        const std::uint64_t section = pn_data_get_ulong(d);
        if (section >= 0x73) break;  // properties and later: the annotations are behind us
        if (section != 0x72 || !pn_data_next(d) || pn_data_type(d) != PN_MAP) continue;
        pn_data_enter(d);
        while (pn_data_next(d)) {
            std::string key;
            if (pn_data_type(d) == PN_SYMBOL) {
                const pn_bytes_t b = pn_data_get_symbol(d);
                key.assign(b.start, b.size);
            }
            if (!pn_data_next(d)) break;
            const pn_type_t t = pn_data_type(d);
            if (key == "x-opt-sequence-number" && t == PN_LONG)
                pos.sequence_number = pn_data_get_long(d);
            if (key == "x-opt-sequence-number" && t == PN_INT)
                pos.sequence_number = pn_data_get_int(d);
            if (key == "x-opt-offset" && t == PN_STRING) {
                const pn_bytes_t b = pn_data_get_string(d);
                pos.offset = std::string(b.start, b.size);
            }
            if (key == "x-opt-offset" && t == PN_LONG)
                pos.offset = std::to_string(pn_data_get_long(d));
            if (key == "x-opt-enqueued-time" && t == PN_TIMESTAMP)
                pos.enqueued_ms = pn_data_get_timestamp(d);
        }
        break;
    }
    return pos;
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

std::string_view to_string(connection_phase p) noexcept {
    switch (p) {
        case connection_phase::idle:
            return "idle";
        case connection_phase::connecting:
            return "connecting";
        case connection_phase::tls:
            return "tls";
        case connection_phase::ws_upgrade:
            return "ws_upgrade";
        case connection_phase::amqp_open:
            return "amqp_open";
        case connection_phase::cbs_auth:
            return "cbs_auth";
        case connection_phase::management:
            return "management";
        case connection_phase::receivers:
            return "receivers";
        case connection_phase::running:
            return "running";
        case connection_phase::backoff:
            return "backoff";
        case connection_phase::stopped:
            return "stopped";
    }
    return "?";
}

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

// ---- the messaging handler of one connection --------------------------------------------------

struct eventhub_source::session final : proton::messaging_handler {
    struct pending_message {
        std::string key;  // checkpoint key
        std::string hub, partition;
        core::message_position pos;
        std::string body;  // the message body; the first bytes only when too_large
        bool body_ok = false;
        bool too_large = false;  // refused for its size: body not read (counted, fails closed)
        bool settled = false;    // already settled (rejected) when it was refused
        std::uint64_t size = 0;  // bytes seen (at least this many when too_large)
        proton::delivery d;
        proton::receiver link;  // the link it came on (credit goes back only to a live one)
        std::optional<core::sequence_gap> gap;  // events lost just before this one
    };
    struct request_link {
        proton::sender tx;
        proton::receiver rx;
        bool tx_open = false, rx_open = false;
        std::deque<proton::message> queue;
        std::string reply_to;
    };
    // One partition's receiver link: its own small state machine inside the connection, so a
    // link that is stolen, detached or refused affects this partition only.
    //
    //   info ─► attaching ─► receiving ─► (detached) ─► backoff ─► info ─► ...
    //                                         └─ unauthorized ─► token ─► info ─► ...
    //
    //   info       $management READ com.microsoft:partition (begin/last sequence numbers): the
    //              attach rule (core::plan_attach) needs them;
    //   attaching  the receiver attach is out, resuming after `after`;
    //   receiving  attached, credit given;
    //   backoff    until retry_at (jittered, per class, capped by the partition back-off cap);
    //   token      waiting for a new CBS token (the old one expired or was revoked).
    enum class link_state { info, attaching, receiving, backoff, token };
    struct partition_link {
        std::string key, hub, id;
        link_state state = link_state::info;
        proton::receiver link;
        std::optional<core::partition_info> info;
        // The last event read on this connection (or committed before it): where a re-attach
        // resumes, so the open batch is not read twice.
        std::optional<core::eventhub_checkpoint> after;
        std::int64_t expect_next = -1, last_read_ms = 0;  // the gap check (core::observe_delivery)
        // After a reset (checkpoint past the end): where reading restarts until the first
        // delivery, so a re-attach before it does not fall back to the lookback.
        std::optional<std::int64_t> restart_at;
        int failures_in_row = 0;
        bool tried = false;             // its first attach is answered (or failed)
        steady::time_point retry_at{};  // backoff
        steady::time_point asked_at{};  // info / attaching: answered within phase_timeout
        core::micros down_since = 0;    // wall clock; 0 while receiving
        core::amqp_error_class last_class = core::amqp_error_class::transient;
        std::string last_error;
        std::uint64_t attaches = 0;
    };

    explicit session(eventhub_source& s) : src(s) {}

    eventhub_source& src;
    request_link cbs, mgmt;
    std::map<std::uint64_t, std::string> inflight;  // message id -> what it asked
    std::uint64_t next_id = 1;
    std::size_t tokens_waiting = 0, hubs_waiting = 0;
    std::map<std::string, std::vector<std::string>> partitions;  // hub -> partition ids
    std::map<std::string, partition_link> parts;                 // checkpoint key -> link
    std::deque<pending_message> pending;
    std::int64_t token_expiry = 0, token_issued = 0;
    steady::time_point tokens_sent_at{};  // while tokens_waiting: answered within phase_timeout
    bool running = false;                 // every partition had its first attach answered
    proton::connection connection;
    std::string sasl_head;  // the connection's first bytes (SASL header + mechanisms)

    // ---- requests ($cbs and $management share the request/response pattern) ----

    void open_request_link(request_link& l, const std::string& node, const std::string& reply) {
        l.reply_to = reply;
        l.tx = connection.open_sender(node);
        proton::target_options to;
        to.address(reply);
        proton::receiver_options ro;
        ro.target(to).credit_window(10);
        l.rx = connection.open_receiver(node, ro);
    }

    void request(request_link& l, proton::message m, const std::string& what) {
        const std::uint64_t id = next_id++;
        m.id(proton::message_id(id));
        m.reply_to(l.reply_to);
        inflight[id] = what;
        l.queue.push_back(std::move(m));
        flush(l);
    }

    void flush(request_link& l) {
        // Requests go only once the reply link is attached, so no answer can be lost.
        if (!l.tx_open || !l.rx_open) return;
        while (!l.queue.empty() && l.tx.credit() > 0) {
            l.tx.send(l.queue.front());
            l.queue.pop_front();
        }
    }

    void put_tokens() {
        if (src.tuning_.sasl_plain || tokens_waiting > 0) return;  // one put per hub in flight
        token_issued = now_unix_s();
        token_expiry = token_issued + src.tuning_.token_ttl.count();
        for (const auto& hub : src.hubs_) {
            const std::string audience = core::eventhub_audience(src.conn_, hub);
            std::string token = src.conn_.signature;
            if (token.empty())
                token =
                    core::make_sas_token(audience, src.conn_.key_name, src.conn_.key, token_expiry);
            proton::message m;
            m.to("$cbs");
            m.properties().put("operation", std::string("put-token"));
            m.properties().put("type", std::string("servicebus.windows.net:sastoken"));
            m.properties().put("name", audience);
            m.body(token);
            ++tokens_waiting;
            tokens_sent_at = steady::now();
            ++src.health_.token_puts;
            request(cbs, std::move(m), "token:" + hub);
        }
    }

    void read_hubs() {
        for (const auto& hub : src.hubs_) {
            proton::message m;
            m.to("$management");
            m.properties().put("operation", std::string("READ"));
            m.properties().put("type", std::string("com.microsoft:eventhub"));
            m.properties().put("name", hub);
            ++hubs_waiting;
            request(mgmt, std::move(m), "hub:" + hub);
        }
    }

    void read_partition(const std::string& hub, const std::string& p) {
        proton::message m;
        m.to("$management");
        m.properties().put("operation", std::string("READ"));
        m.properties().put("type", std::string("com.microsoft:partition"));
        m.properties().put("name", hub);
        m.properties().put("partition", p);
        request(mgmt, std::move(m), "partition:" + hub + "\n" + p);
    }

    // A partition (re)starts: runtime info first; attach() follows the answer.
    void ask_info(partition_link& pl) {
        pl.state = link_state::info;
        pl.asked_at = steady::now();
        read_partition(pl.hub, pl.id);
    }

    // The periodic READ of every partition (the stuck rule, the lag).
    void read_partitions() {
        for (const auto& [key, pl] : parts)
            read_partition(pl.hub, pl.id);
    }

    // Every partition of every hub: runtime info first, then the attach (attach()).
    void start_partitions() {
        src.set_phase(connection_phase::receivers);
        for (const auto& [hub, ids] : partitions) {
            for (const auto& p : ids) {
                const std::string key = core::eventhub_checkpoint_key(hub, p);
                partition_link& pl = parts[key];
                pl.key = key;
                pl.hub = hub;
                pl.id = p;
                if (auto it = src.committed_.find(key); it != src.committed_.end())
                    pl.after = it->second;
                src.partition_health(hub, p);
                ask_info(pl);
            }
        }
        if (parts.empty())
            src.fail("the event hub reported no partitions", core::amqp_error_class::fatal);
    }

    void attach(partition_link& pl) {
        const auto& ec = src.ec_;
        core::attach_plan plan =
            core::plan_attach(pl.after, pl.info, wall_now(), ec.start_lookback);
        if (plan.lost) {
            src.raise_gap(pl.hub, pl.id, *plan.lost);
            if (plan.lost->why == core::sequence_gap::cause::reset) {
                pl.restart_at = plan.lost->resumed_at;
                pl.after.reset();
            } else {
                pl.after = core::eventhub_checkpoint{plan.expect_next - 1, "", 0};
            }
        } else if (pl.restart_at && !pl.after) {
            plan.from = core::start_position{};
            plan.from.what = core::start_position::kind::sequence_number;
            plan.from.sequence_number = *pl.restart_at;
            plan.from.inclusive = true;
            plan.expect_next = *pl.restart_at;
            plan.last_read_ms = 0;
        }
        pl.expect_next = plan.expect_next;
        pl.last_read_ms = plan.last_read_ms;
        // The selector filter: a described string (reference §5.4).
        proton::value filter;
        {
            proton::codec::encoder e(filter);
            e << proton::codec::start::described()
              << proton::symbol("apache.org:selector-filter:string")
              << core::selector_expression(plan.from) << proton::codec::finish();
        }
        proton::source::filter_map fm;
        fm.put(proton::symbol("apache.org:selector-filter:string"), filter);
        const std::string address = core::partition_address(pl.hub, ec.consumer_group, pl.id);
        proton::source_options so;
        so.address(address).filters(fm);
        std::map<proton::symbol, proton::value> props;
        if (ec.epoch) props[proton::symbol("com.microsoft:epoch")] = *ec.epoch;
        proton::receiver_options ro;
        // Credit is explicit (window 0): it is given back only after a commit. A re-attach
        // gets a link name of its own (the old link may still be closing).
        ro.source(so).credit_window(0).auto_accept(false).properties(props).name(
            pl.attaches == 0 ? address : address + "#" + std::to_string(pl.attaches));
        ++pl.attaches;
        pl.link = connection.open_receiver(address, ro);
        pl.state = link_state::attaching;
        pl.asked_at = steady::now();
        // Advertised on the attach: a conforming service never sends more (reference
        // §5: Event Hubs caps events at 1 MB); refuse_oversized() handles one that does.
        pn_link_set_max_message_size(link_handle(pl.link).raw(), src.ec_.max_message_size);
        spdlog::debug("eventhub: {} from {}", address, core::selector_expression(plan.from));
    }

    partition_link* part_of(const proton::link& l) {
        for (auto& [key, pl] : parts)
            if (pl.link == l) return &pl;
        return nullptr;
    }

    // Leaves the phase `receivers` once every partition's first attach was answered: a
    // partition another owner holds must not keep the others from running.
    void check_running() {
        if (running) return;
        for (const auto& [key, pl] : parts)
            if (!pl.tried) return;
        running = true;
        src.set_phase(connection_phase::running);
        ++src.health_.connects;
        src.failures_in_row_ = 0;
        std::size_t up = 0;
        for (const auto& [key, pl] : parts)
            up += pl.state == link_state::receiving ? 1 : 0;
        spdlog::info("eventhub: receiving from {} of {} partition(s) of {} hub(s)", up,
                     parts.size(), partitions.size());
    }

    // A partition link failed (refused attach, detach, READ failure): this partition only.
    void partition_failed(partition_link& pl, core::amqp_error_class cls, const std::string& why) {
        auto& ph = src.partition_health(pl.hub, pl.id);
        ph.attached = false;
        ph.stuck = false;          // its failure is reported instead, and
        src.stuck_.erase(pl.key);  // its stuck clock starts again once it is read again
        pl.tried = true;
        pl.last_class = cls;
        pl.last_error = why;
        ++pl.failures_in_row;
        if (pl.down_since == 0) pl.down_since = wall_now();
        if (cls == core::amqp_error_class::unauthorized && !src.tuning_.sasl_plain) {
            // The token expired or was revoked: put a new one, then attach again at once.
            pl.state = link_state::token;
            if (pl.failures_in_row <= 1) {
                spdlog::info("eventhub: partition {} of {}: {}; renewing the token", pl.id, pl.hub,
                             why);
                put_tokens();
                check_running();
                return;
            }
            // Refused again right after a new token: back off like any other failure.
        }
        const auto delay = src.partition_backoff(cls, pl.failures_in_row);
        pl.state = link_state::backoff;
        pl.retry_at = steady::now() + delay;
        spdlog::warn("eventhub: partition {} of {}: {} ({}); attaching again in {}", pl.id, pl.hub,
                     why, core::to_string(cls), core::format_duration(delay.count()));
        check_running();
        src.notify();
    }

    // Partitions whose back-off is over start again (with a READ); a READ or an attach left
    // unanswered for phase_timeout fails its partition. Returns when to look again.
    steady::time_point retry_due(steady::time_point now, bool& started) {
        steady::time_point next = steady::time_point::max();
        const auto limit = std::chrono::duration_cast<steady::duration>(src.tuning_.phase_timeout);
        for (auto& [key, pl] : parts) {
            if (pl.state == link_state::info || pl.state == link_state::attaching) {
                if (now - pl.asked_at < limit) {
                    next = std::min(next, pl.asked_at + limit);
                    continue;
                }
                const bool attaching = pl.state == link_state::attaching;
                if (attaching) pl.link.close();
                started = true;
                partition_failed(pl, core::amqp_error_class::transient,
                                 std::string(attaching ? "attach" : "$management READ") +
                                     " not answered within " +
                                     std::to_string(src.tuning_.phase_timeout.count()) + " ms");
            }
            if (pl.state != link_state::backoff) continue;
            if (pl.retry_at <= now) {
                started = true;
                ask_info(pl);
                next = std::min(next, pl.asked_at + limit);
            } else {
                next = std::min(next, pl.retry_at);
            }
        }
        return next;
    }

    // ---- proton callbacks ----

    void on_connection_open(proton::connection& c) override {
        connection = c;
        if (src.tuning_.sasl_plain) {
            // SASL PLAIN authorised the whole connection: no CBS.
            src.set_phase(connection_phase::management);
            open_request_link(mgmt, "$management", "glasswatch-mgmt");
            read_hubs();
        } else {
            src.set_phase(connection_phase::cbs_auth);
            open_request_link(cbs, "$cbs", "glasswatch-cbs");
            put_tokens();
        }
    }

    void on_sender_open(proton::sender& s) override {
        if (s == cbs.tx) cbs.tx_open = true;
        if (s == mgmt.tx) mgmt.tx_open = true;
        flush(cbs);
        flush(mgmt);
    }

    void on_sendable(proton::sender& s) override {
        if (s == cbs.tx) flush(cbs);
        if (s == mgmt.tx) flush(mgmt);
    }

    void on_receiver_open(proton::receiver& r) override {
        if (r == cbs.rx) {
            cbs.rx_open = true;
            flush(cbs);
            return;
        }
        if (r == mgmt.rx) {
            mgmt.rx_open = true;
            flush(mgmt);
            return;
        }
        // A refused attach comes back with no source and is detached with an error next.
        if (r.source().address().empty()) return;
        partition_link* pl = part_of(r);
        if (!pl) return;
        r.add_credit(src.ec_.credit);
        if (pl->failures_in_row > 0) {
            ++src.health_.reattaches;
            spdlog::info("eventhub: partition {} of {} attached again", pl->id, pl->hub);
        }
        src.partition_health(pl->hub, pl->id).attached = true;
        pl->state = link_state::receiving;
        pl->tried = true;
        pl->failures_in_row = 0;
        pl->down_since = 0;
        pl->last_error.clear();
        check_running();
        src.notify();
    }

    void on_message(proton::delivery& d, proton::message& m) override {
        proton::receiver r = d.receiver();
        if (r == cbs.rx || r == mgmt.rx) {
            d.accept();
            on_reply(m);
            return;
        }
        partition_link* pl = part_of(r);
        if (!pl) return;
        pending_message pm;
        pm.d = d;
        pm.link = r;
        pm.key = pl->key;
        pm.hub = pl->hub;
        pm.partition = pl->id;
        eventhub_message em = read_eventhub_message(m);
        pm.pos = std::move(em.pos);
        pm.body = std::move(em.body);
        pm.body_ok = em.body_ok;
        pm.size = pm.body.size();
        if (pm.size > src.ec_.max_message_size) {
            // Arrived whole within one read (one frame): refused all the same.
            pm.too_large = true;
            pm.body.resize(head_bytes);
        }
        note_position(*pl, pm);
        pending.push_back(std::move(pm));
        src.health_.max_uncommitted =
            std::max(src.health_.max_uncommitted, pending.size() + src.uncommitted());
        src.notify();
    }

    // The gap check and the re-attach position, for every delivery (refused ones too).
    void note_position(partition_link& pl, pending_message& pm) {
        pm.gap = core::observe_delivery(pl.expect_next, pl.last_read_ms, pm.pos);
        if (!core::usable(pm.pos)) return;
        pl.restart_at.reset();
        if (!pl.after) pl.after = core::eventhub_checkpoint{};
        core::advance(*pl.after, pm.pos);
    }

    static constexpr std::size_t head_bytes = 64 * 1024;  // kept of a refused message

    // A partition delivery still arriving that is already larger than max_message_size is
    // refused before more of it is buffered: its first bytes are read (for its position and as
    // evidence), it is settled as rejected (amqp:link:message-size-exceeded), and Proton drops
    // the rest of its frames unread. It then goes through the batch like any message, so the
    // checkpoint moves past it and its credit comes back. Returns whether one was refused.
    bool refuse_oversized() {
        bool refused = false;
        for (auto& [key, pl] : parts) {
            if (pl.state != link_state::receiving) continue;
            pn_link_t* l = link_handle(pl.link).raw();
            pn_delivery_t* d = l ? pn_link_current(l) : nullptr;
            if (!d || !pn_delivery_partial(d) || pn_delivery_pending(d) <= src.ec_.max_message_size)
                continue;
            pending_message pm;
            pm.key = key;
            pm.hub = pl.hub;
            pm.partition = pl.id;
            pm.link = pl.link;
            pm.too_large = true;
            pm.settled = true;
            pm.size = pn_delivery_pending(d);
            pm.body.resize(head_bytes);
            const ssize_t n = pn_link_recv(l, pm.body.data(), pm.body.size());
            pm.body.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
            pm.pos = position_from_head(pm.body);
            pn_condition_t* c = pn_disposition_condition(pn_delivery_local(d));
            pn_condition_set_name(c, "amqp:link:message-size-exceeded");
            pn_condition_set_description(c, "larger than the receiver's max-message-size");
            pn_delivery_update(d, PN_REJECTED);
            pn_delivery_settle(d);
            note_position(pl, pm);
            pending.push_back(std::move(pm));
            refused = true;
        }
        if (refused) src.notify();
        return refused;
    }

    void on_reply(proton::message& m) {
        std::uint64_t id = 0;
        try {
            id = proton::coerce<std::uint64_t>(m.correlation_id());
        } catch (const std::exception&) {
            return;  // not an answer to anything we asked
        }
        auto it = inflight.find(id);
        if (it == inflight.end()) return;
        const std::string what = it->second;
        inflight.erase(it);
        std::int64_t status = 0;
        std::string description;
        try {
            status = proton::coerce<std::int64_t>(m.properties().get("status-code"));
            const proton::scalar d = m.properties().get("status-description");
            if (d.type() == proton::STRING) description = proton::get<std::string>(d);
        } catch (const std::exception&) {
            status = 0;
        }
        const bool ok = status >= 200 && status < 300;
        if (what.rfind("token:", 0) == 0) {
            if (tokens_waiting > 0) --tokens_waiting;
            if (!ok) {
                ++src.health_.auth_refused;
                src.fail("put-token for " + what.substr(6) + " refused: status " +
                             std::to_string(status) + " " + description.substr(0, 120),
                         core::amqp_error_class::fatal);
                return;
            }
            if (tokens_waiting != 0) return;
            if (src.health_.phase == connection_phase::cbs_auth) {
                src.set_phase(connection_phase::management);
                open_request_link(mgmt, "$management", "glasswatch-mgmt");
                read_hubs();
                return;
            }
            // A renewed token: the partitions that waited for it start again.
            for (auto& [key, pl] : parts)
                if (pl.state == link_state::token) ask_info(pl);
            return;
        }
        if (what.rfind("partition:", 0) == 0) {
            const auto nl = what.find('\n');
            const std::string hub = what.substr(10, nl - 10), p = what.substr(nl + 1);
            auto pit = parts.find(core::eventhub_checkpoint_key(hub, p));
            if (pit == parts.end()) return;
            partition_link& pl = pit->second;
            std::map<std::string, proton::value> info;
            bool readable = ok;
            if (ok) {
                try {
                    proton::get(m.body(), info);
                } catch (const std::exception&) {
                    readable = false;
                }
            }
            if (!readable) {
                if (pl.state != link_state::info) return;  // a periodic READ: next time
                const auto cls = status == 401 ? core::amqp_error_class::unauthorized
                                               : core::amqp_error_class::transient;
                partition_failed(pl, cls,
                                 "$management READ of the partition failed: status " +
                                     std::to_string(status) + " " + description.substr(0, 120));
                return;
            }
            core::partition_info pi;
            pi.begin_sequence = amqp_int(info["begin_sequence_number"]).value_or(0);
            pi.last_sequence = amqp_int(info["last_enqueued_sequence_number"]).value_or(-1);
            try {
                const proton::value& t = info["last_enqueued_time_utc"];
                if (t.type() == proton::TIMESTAMP)
                    pi.last_enqueued_ms = proton::get<proton::timestamp>(t).milliseconds();
                const proton::value& e = info["is_partition_empty"];
                if (e.type() == proton::BOOLEAN) pi.empty = proton::get<bool>(e);
            } catch (const std::exception&) {
            }
            pl.info = pi;
            src.on_partition_info(hub, p, pi.last_sequence);
            if (pl.state == link_state::info) attach(pl);
            return;
        }
        if (!ok) {
            src.fail("$management READ (" + what.substr(0, what.find('\n')) + ") failed: status " +
                         std::to_string(status) + " " + description.substr(0, 120),
                     status == 401 || status == 404 ? core::amqp_error_class::fatal
                                                    : core::amqp_error_class::transient);
            return;
        }
        std::map<std::string, proton::value> info;
        try {
            proton::get(m.body(), info);
        } catch (const std::exception&) {
            src.fail("$management answered with an unreadable body",
                     core::amqp_error_class::transient);
            return;
        }
        if (what.rfind("hub:", 0) == 0) {
            const std::string hub = what.substr(4);
            std::vector<std::string> ids;
            try {
                proton::get(info["partition_ids"], ids);
            } catch (const std::exception&) {
                ids.clear();
            }
            partitions[hub] = ids;
            if (hubs_waiting > 0 && --hubs_waiting == 0 &&
                src.health_.phase == connection_phase::management)
                start_partitions();
            return;
        }
    }

    void link_failed(proton::link& l, const char* what) {
        const proton::error_condition e = l.error();
        const auto cls =
            e ? core::classify_amqp_error(e.name()) : core::amqp_error_class::transient;
        if (cls == core::amqp_error_class::stolen) ++src.health_.stolen;
        if (cls == core::amqp_error_class::busy) ++src.health_.busy;
        if (!e || e.name() == "amqp:link:detach-forced") ++src.health_.detached;
        if (partition_link* pl = part_of(l); pl != nullptr) {
            // A partition link: this partition only.
            ++src.health_.partition_failures;
            std::string why;
            if (cls == core::amqp_error_class::stolen) {
                const auto other = core::stolen_by_epoch(e.description());
                why = "held by another receiver" +
                      (other ? " (epoch " + std::to_string(*other) + ")" : std::string()) + ": " +
                      condition_text(e);
            } else {
                why = e ? "detached: " + condition_text(e) : "detached by the service";
            }
            partition_failed(*pl, cls, why);
            return;
        }
        if (e)
            src.fail(std::string(what) + " " + l.name() + " detached: " + condition_text(e), cls);
        else
            src.fail(std::string(what) + " " + l.name() + " detached by the service",
                     core::amqp_error_class::transient);
    }
    void on_receiver_close(proton::receiver& r) override { link_failed(r, "receiver"); }
    void on_sender_close(proton::sender& s) override { link_failed(s, "sender"); }
    void on_receiver_error(proton::receiver&) override {}  // reported by on_receiver_close
    void on_sender_error(proton::sender&) override {}
    void on_connection_error(proton::connection& c) override {
        const auto e = c.error();
        src.fail("connection closed by the service: " + condition_text(e),
                 core::classify_amqp_error(e.name()));
    }
    void on_connection_close(proton::connection& c) override {
        if (!c.error())
            src.fail("connection closed by the service", core::amqp_error_class::transient);
    }
    void on_transport_error(proton::transport& t) override {
        std::string text = condition_text(t.error());
        if (text.rfind("amqp:connection:framing-error: transport: ", 0) == 0)
            text = text.substr(42);
        if (text.empty()) text = "transport failed";
        if (src.health_.phase == connection_phase::amqp_open) text += sasl_words();
        // SASL refused the credentials: an operator must act (the long back-off), unlike a
        // transport that merely failed.
        const bool refused = t.error().name() == "amqp:unauthorized-access";
        if (refused) ++src.health_.auth_refused;
        src.fail(text, refused ? core::amqp_error_class::fatal : core::amqp_error_class::transient);
    }
    void on_error(const proton::error_condition& e) override {
        src.fail(condition_text(e), core::amqp_error_class::transient);
    }

    // What SASL offered, for an error in amqp_open: "; SASL: the server offers [...]".
    std::string sasl_words() const {
        const auto offered = sasl_offered_mechanisms(sasl_head);
        std::string list;
        if (offered)
            for (const auto& m : *offered)
                list += (list.empty() ? "" : " ") + m;
        const std::string ours = src.tuning_.sasl_plain ? "PLAIN" : "ANONYMOUS";
        if (!offered) return "; SASL: the server sent no mechanisms (glasswatch uses " + ours + ")";
        return "; SASL: the server offers [" + list + "], glasswatch uses " + ours +
               " (sources.eventhub.sasl = \"" + (src.tuning_.sasl_plain ? "plain" : "anonymous") +
               "\")";
    }
    // Called as the first bytes arrive: a server that does not offer our mechanism is an error
    // at once (Proton would wait without a word).
    void on_head(std::string_view bytes) {
        if (sasl_head.size() < 1024) sasl_head.append(bytes.substr(0, 1024 - sasl_head.size()));
        const auto offered = sasl_offered_mechanisms(sasl_head);
        if (!offered || checked_mechanisms) return;
        checked_mechanisms = true;
        const std::string ours = src.tuning_.sasl_plain ? "PLAIN" : "ANONYMOUS";
        if (std::find(offered->begin(), offered->end(), ours) == offered->end())
            src.fail("SASL cannot start" + sasl_words(), core::amqp_error_class::fatal);
    }
    bool checked_mechanisms = false;
};

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
        if (!err.empty()) error_ = "eventhub: " + err;
    }
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

void eventhub_source::set_phase(connection_phase p) {
    if (health_.phase == p) return;
    health_.phase = p;
    spdlog::debug("eventhub: {}", to_string(p));
    notify();  // the driver loop re-arms the phase deadline
}

void eventhub_source::fail(const std::string& error, core::amqp_error_class cls) {
    if (failure_) return;  // the first cause of a connection's end is the one that counts
    failure_ = cls;
    failure_text_ = error;
    notify();
}

eventhub_partition_health& eventhub_source::partition_health(const std::string& hub,
                                                             const std::string& p) {
    for (auto& ph : health_.partitions)
        if (ph.hub == hub && ph.partition == p) return ph;
    eventhub_partition_health ph;
    ph.hub = hub;
    ph.partition = p;
    if (auto it = committed_.find(core::eventhub_checkpoint_key(hub, p)); it != committed_.end())
        ph.committed_sequence = it->second.sequence_number;
    health_.partitions.push_back(ph);
    return health_.partitions.back();
}

void eventhub_source::on_partition_info(const std::string& hub, const std::string& p,
                                        std::int64_t last_enqueued) {
    auto& ph = partition_health(hub, p);
    ph.last_enqueued_sequence = last_enqueued;
    health_.common.last_success = wall_now();
    const std::string key = core::eventhub_checkpoint_key(hub, p);
    auto it = stuck_.find(key);
    if (it == stuck_.end())
        it = stuck_.emplace(key, core::stuck_detector(tuning_.stuck_after.count() * 1000)).first;
    // Not attached (held by another owner, backing off, not yet attached): that is reported as
    // what it is; the stuck rule looks at attached partitions only.
    if (!ph.attached) return;
    const bool was = ph.stuck;
    ph.stuck = it->second.observe(ph.committed_sequence, last_enqueued, wall_now());
    if (ph.stuck && !was) {
        spdlog::warn(
            "eventhub: partition {} of {} is stuck: committed sequence {} while the service has "
            "events up to {}",
            p, hub, ph.committed_sequence, last_enqueued);
        // Once per episode, reconnect: fresh links get fresh credit, which is all a consumer
        // can do about a broker that stopped honouring the credit it holds (a lost flow).
        fail("partition " + p + " of " + hub + " is stuck; reconnecting to attach it again",
             core::amqp_error_class::transient);
    }
    if (!ph.stuck && was) spdlog::info("eventhub: partition {} of {} moves again", p, hub);
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

std::chrono::milliseconds eventhub_source::partition_backoff(core::amqp_error_class cls,
                                                             int failures_in_row) {
    core::backoff_policy bp;
    bp.initial = tuning_.backoff_initial;
    bp.max = std::min(tuning_.partition_backoff_max, tuning_.backoff_max);
    auto d = core::backoff_delay(bp, std::max(failures_in_row, 1), rt_.jitter());
    if (cls == core::amqp_error_class::busy) d = std::max(d, tuning_.busy_min);
    if (cls == core::amqp_error_class::fatal) d = std::max(d, bp.max);
    return d;
}

void eventhub_source::update_partition_health(session* s) {
    // A partition counts as failing once it is held by another owner, refused for a reason an
    // operator must fix, or its first re-attach failed too (an idle detach that re-attaches at
    // once is not an outage). The source fails since the earliest such partition went down.
    core::micros since = 0;
    std::string why;
    for (const auto& [key, pl] : s->parts) {
        if (pl.state == session::link_state::receiving || pl.down_since == 0) continue;
        const bool counts = pl.failures_in_row >= 2 ||
                            pl.last_class == core::amqp_error_class::stolen ||
                            pl.last_class == core::amqp_error_class::fatal;
        if (!counts) continue;
        if (since == 0 || pl.down_since < since) {
            since = pl.down_since;
            why = "partition " + pl.id + " of " + pl.hub + " not read since " +
                  core::format_iso8601(pl.down_since, false) + ": " + pl.last_error;
        }
    }
    if (since != 0 && health_.common.failing_since == 0) spdlog::warn("eventhub: {}", why);
    if (since == 0 && health_.common.failing_since != 0)
        spdlog::info("eventhub: every partition is read again");
    health_.common.failing_since = since;
    health_.common.last_error = why;
}

std::chrono::milliseconds eventhub_source::next_backoff() {
    core::backoff_policy bp;
    bp.initial = tuning_.backoff_initial;
    bp.max = tuning_.backoff_max;
    auto d = core::backoff_delay(bp, std::max(failures_in_row_, 1), rt_.jitter());
    if (failure_ == core::amqp_error_class::busy) d = std::max(d, tuning_.busy_min);
    if (failure_ == core::amqp_error_class::fatal || failure_ == core::amqp_error_class::stolen ||
        failure_ == core::amqp_error_class::unauthorized)
        d = std::max(d, std::min(tuning_.long_backoff, tuning_.backoff_max * 4));
    return d;
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
                committed_[c.source] = *cp;
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
        failure_.reset();
        failure_text_.clear();
        drop_requested_ = false;
        co_await connect_once();
        if (stopping_) break;
        ++health_.failures;
        ++failures_in_row_;
        if (health_.common.failing_since == 0) health_.common.failing_since = wall_now();
        health_.common.last_error = failure_text_;
        const auto delay = next_backoff();
        spdlog::warn("eventhub: {} ({}); reconnecting in {}", failure_text_,
                     core::to_string(failure_.value_or(core::amqp_error_class::transient)),
                     core::format_duration(delay.count()));
        set_phase(connection_phase::backoff);
        const auto until = steady::now() + delay;
        while (!stopping_ && steady::now() < until)
            co_await wait_until(until);
    }
    set_phase(connection_phase::stopped);
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
    set_phase(connection_phase::connecting);
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
        if (ph == "tls") set_phase(connection_phase::tls);
        if (ph == "websocket") set_phase(connection_phase::ws_upgrade);
    };
    dial_result dr = co_await dial(ex, std::move(o), std::move(on_phase));
    if (!dr.stream) {
        if (dr.timed_out) ++health_.phase_timeouts;
        fail(dr.error, core::amqp_error_class::transient);
        co_return;
    }
    if (stopping_) co_return;

    set_phase(connection_phase::amqp_open);
    auto owned = std::make_unique<session>(*this);
    session* s = owned.get();
    std::function<void()> after_read = [this, s] {
        // Only while `s` is the live session (a read of an old connection may still complete).
        if (session_ != s || !s->refuse_oversized()) return;
        if (auto p = pump_.lock(); p && !p->finished()) p->wake();  // the disposition goes out
    };
    std::function<void(std::string_view)> on_head = [this, s](std::string_view bytes) {
        if (session_ == s && health_.phase == connection_phase::amqp_open) s->on_head(bytes);
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

    // Renewed at 90% of the lifetime, counted from a whole second before the token was made
    // (its expiry is in whole seconds): a 2 s token renews after 0.9 s, not after it expired.
    const auto token_period =
        std::max<steady::duration>(std::chrono::duration_cast<steady::duration>(
                                       (tuning_.token_ttl - std::chrono::seconds(1)) * 9 / 10),
                                   std::chrono::milliseconds(500));
    connection_phase seen = connection_phase::idle;
    auto deadline = steady::now() + tuning_.phase_timeout;
    auto renew_at = steady::now() + token_period;
    auto manage_at = steady::now() + tuning_.management_interval;
    bool store_refused = false;
    while (!stopping_ && !drop_requested_ && !failure_ && finished->empty()) {
        const auto now = steady::now();
        if (health_.phase != seen) {
            seen = health_.phase;
            deadline = now + tuning_.phase_timeout;
            if (seen == connection_phase::running) {
                if (health_.common.failing_since != 0) spdlog::info("eventhub: recovered");
                health_.common.failing_since = 0;
                health_.common.last_error.clear();
                health_.common.last_success = wall_now();
            }
        }
        const bool running = seen == connection_phase::running;
        if (!running && now >= deadline) {
            ++health_.phase_timeouts;
            fail("no progress in phase " + std::string(to_string(seen)) + " within " +
                     std::to_string(tuning_.phase_timeout.count()) + " ms" +
                     (seen == connection_phase::amqp_open ? s->sasl_words() : std::string()),
                 core::amqp_error_class::transient);
            break;
        }
        // Partitions whose own back-off is over attach again; the source's health follows the
        // partitions while the connection runs.
        steady::time_point retry = steady::time_point::max();
        if (running) {
            bool started = false;
            retry = s->retry_due(now, started);
            if (started) pump->wake();
            update_partition_health(s);
            const auto put_limit =
                std::chrono::duration_cast<steady::duration>(tuning_.phase_timeout);
            if (s->tokens_waiting > 0 && now - s->tokens_sent_at >= put_limit) {
                fail("put-token not answered within " +
                         std::to_string(tuning_.phase_timeout.count()) + " ms",
                     core::amqp_error_class::transient);
                break;
            }
            if (s->tokens_waiting > 0) retry = std::min(retry, s->tokens_sent_at + put_limit);
        }
        // Timed duties first: a backlog that never lets the batches run dry must not starve
        // the token renewal.
        if (running && !tuning_.sasl_plain && now >= renew_at) {
            s->put_tokens();  // the same links, before the old token expires
            pump->wake();
            renew_at = now + token_period;
        }
        if (running && now >= manage_at) {
            s->read_partitions();
            pump->wake();
            manage_at = now + tuning_.management_interval;
        }
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
        co_await wait_until(running ? std::min(std::min(renew_at, manage_at), retry) : deadline);
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
    for (const auto& [key, cp] : b->advance) {
        committed_[key] = cp;
        if (auto* sess = session_; sess != nullptr) {
            if (auto it = sess->parts.find(key); it != sess->parts.end())
                partition_health(it->second.hub, it->second.id).committed_sequence =
                    cp.sequence_number;
        }
    }
    // Durable: only now accept the deliveries and give the credit back (bounded memory).
    auto pump = pump_.lock();
    if (pump && !pump->finished() && session_ == s) {
        std::map<std::string, std::uint32_t> credit;
        for (auto& m : b->messages) {
            if (m.link.active() && !m.settled) m.d.accept();
            // Credit goes back only to the link the message came on while it is still the
            // partition's live link: a re-attached link got its own credit.
            auto it = s->parts.find(m.key);
            if (it != s->parts.end() && it->second.link == m.link &&
                it->second.state == session::link_state::receiving)
                ++credit[m.key];
        }
        for (const auto& [key, count] : credit)
            s->parts[key].link.add_credit(count);
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
