#include "lab/lab_eventhub.hpp"

#include <proton/codec.h>
#include <proton/delivery.h>
#include <proton/link.h>

#include <proton/annotation_key.hpp>
#include <proton/binary.hpp>
#include <proton/codec/decoder.hpp>
#include <proton/codec/map.hpp>
#include <proton/codec/vector.hpp>
#include <proton/connection.hpp>
#include <proton/connection_options.hpp>
#include <proton/delivery.hpp>
#include <proton/error_condition.hpp>
#include <proton/message.hpp>
#include <proton/message_id.hpp>
#include <proton/receiver.hpp>
#include <proton/receiver_options.hpp>
#include <proton/sender.hpp>
#include <proton/sender_options.hpp>
#include <proton/session.hpp>
#include <proton/source.hpp>
#include <proton/source_options.hpp>
#include <proton/target.hpp>
#include <proton/target_options.hpp>
#include <proton/timestamp.hpp>
#include <proton/tracker.hpp>
#include <proton/transport.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <optional>

#include "core/protocol/eventhub.hpp"
#include "io/net/amqp_pump.hpp"

namespace glasswatch::lab {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using steady = std::chrono::steady_clock;

namespace {

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The C handle of a sender (the C++ API cannot send bytes that are already encoded).
struct sender_handle : proton::sender {
    explicit sender_handle(const proton::sender& l) : proton::sender(l) {}
    pn_link_t* raw() const { return pn_object(); }
};

struct partition_state {
    std::vector<eventhub_event> log;
    // Each event as the AMQP message sent to consumers (annotations and data section), encoded
    // once when it is published, as a broker stores it: a catch-up benchmark then measures the
    // consumer, not the emulator re-encoding every message for every reader.
    std::vector<std::string> encoded;
    std::int64_t next_offset = 0;
    // Sequence numbers are contiguous per partition; retention (truncate) removes the oldest
    // events, so the log starts at begin_sequence and the next event gets next_sequence.
    std::int64_t begin_sequence = 0, next_sequence = 0;
    std::int64_t last_enqueued_ms = 0;  // of the newest event ever published (kept by truncate)
    bool stalled = false;
    // Another receiver holds the partition with a higher epoch until held_until (hold()).
    std::optional<std::int64_t> held_epoch;
    steady::time_point held_until{};
    bool held() const { return held_epoch && steady::now() < held_until; }
};

struct hub_state {
    std::vector<partition_state> parts;
    int round_robin = 0;
    std::int64_t created_ms = 0;
};

struct broker_conn;

struct subscriber {
    proton::sender link;
    broker_conn* conn = nullptr;
    std::string hub, group;
    int partition = 0;
    std::size_t next = 0;   // index into the partition log
    std::uint64_t tag = 0;  // delivery tags, unique on the link
    std::optional<std::int64_t> epoch;
    steady::time_point last_activity = steady::now();
    bool starved = false;  // credit stall fault: never served again (see starve_links)
};

// Index of the first event the selector lets through.
std::size_t start_index(const partition_state& p, const std::optional<core::start_position>& pos) {
    using kind = core::start_position::kind;
    if (!pos || pos->what == kind::latest) return p.log.size();
    if (pos->what == kind::start_of_stream) return 0;
    for (std::size_t i = 0; i < p.log.size(); ++i) {
        const auto& e = p.log[i];
        bool pass = false;
        switch (pos->what) {
            case kind::sequence_number:
                pass = pos->inclusive ? e.sequence_number >= pos->sequence_number
                                      : e.sequence_number > pos->sequence_number;
                break;
            case kind::offset: {
                std::int64_t want = 0;
                try {
                    want = std::stoll(pos->offset);
                } catch (const std::exception&) {
                    return p.log.size();
                }
                const std::int64_t have = std::stoll(e.offset);
                pass = pos->inclusive ? have >= want : have > want;
                break;
            }
            case kind::enqueued_time:
                pass = pos->inclusive ? e.enqueued_ms >= pos->enqueued_ms
                                      : e.enqueued_ms > pos->enqueued_ms;
                break;
            default:
                break;
        }
        if (pass) return i;
    }
    return p.log.size();
}

// The selector expression out of a source filter map, or "" when there is none.
std::string selector_of(const proton::source::filter_map& fm) {
    proton::value v = fm.get(proton::symbol("apache.org:selector-filter:string"));
    if (v.empty()) v = fm.get(proton::symbol("selector"));
    if (v.empty()) return {};
    try {
        proton::codec::decoder d(v);
        proton::codec::start st;
        d >> st;  // described: descriptor (symbol or ulong 0x468C00000004), then the string
        proton::value descriptor;
        d >> descriptor;
        std::string expr;
        d >> expr;
        return expr;
    } catch (const std::exception&) {
        return "<undecodable>";
    }
}

}  // namespace

struct eventhub_emulator::impl : std::enable_shared_from_this<impl> {
    impl(asio::io_context& c, eventhub_options o)
        : ctx(c),
          opts(std::move(o)),
          tls(ssl::context::tls_server),
          idle_timer(std::make_unique<asio::steady_timer>(c)) {
        if (opts.partitions < 1) opts.partitions = 1;
        for (const auto& h : opts.hubs) {
            hub_state hs;
            hs.parts.resize(static_cast<std::size_t>(opts.partitions));
            hs.created_ms = wall_ms();
            hubs[h] = std::move(hs);
        }
        if (opts.amqps || opts.websocket) {
            tls.use_certificate_chain(asio::buffer(opts.cert_pem));
            tls.use_private_key(asio::buffer(opts.key_pem), ssl::context::pem);
        }
    }

    asio::io_context& ctx;
    eventhub_options opts;
    ssl::context tls;
    std::map<std::string, hub_state> hubs;
    std::unique_ptr<tcp::acceptor> amqps, ws, plain;
    std::uint16_t amqps_port = 0, ws_port = 0, plain_port = 0;
    std::vector<std::weak_ptr<io::amqp_pump>> pumps;
    // A frozen connection has no operation pending that would keep it alive: held here until
    // stop(), so its socket stays open and silent (what the peer's idle timeout must detect).
    std::vector<std::shared_ptr<io::amqp_pump>> frozen;
    std::vector<subscriber> subs;
    // io objects are released by stop(): this impl may outlive the io_context (connections'
    // handlers hold it), and an io object must not.
    std::unique_ptr<asio::steady_timer> idle_timer;
    bool refuse = false, stopped = false;
    int busy = 0;
    // SASL as Azure does it (reference §5.2): the mechanisms offered on every listener, served by
    // a hand-rolled SASL layer (Debian's Proton cannot serve PLAIN). PLAIN with the key name and
    // key authorises the whole connection (no CBS); ANONYMOUS needs put-token.
    std::string sasl_mechanisms = "MSSBCBS PLAIN ANONYMOUS EXTERNAL";
    // Tokens put before the last expire_tokens() no longer count (as if they had expired).
    std::uint64_t token_generation = 0;
    std::uint64_t sasl_plain = 0, sasl_anonymous = 0, sasl_refused = 0, tokens_expired = 0,
                  out_of_range = 0;
    // stats
    std::uint64_t connections = 0, tokens_ok = 0, tokens_refused = 0, attaches = 0,
                  attaches_refused = 0, deliveries = 0, detached = 0, stolen = 0, mgmt_reads = 0;
    // Deliveries sent but not yet accepted by the consumer, and the most there ever were: what
    // the consumer's credit bounds.
    std::int64_t unaccepted = 0, max_unaccepted = 0;
    std::int64_t accepted = 0;  // deliveries the consumer accepted (durably committed)
    std::deque<json> filters;   // the last attaches: address + expression + epoch
    std::deque<std::string> verdicts;
    std::deque<std::string> hostnames;

    void log(const std::string& line) {
        if (opts.log) opts.log("eventhub-emulator: " + line);
    }

    hub_state* hub(const std::string& name) {
        auto it = hubs.find(name);
        return it == hubs.end() ? nullptr : &it->second;
    }

    // ---- listeners ----
    std::unique_ptr<tcp::acceptor> listen() {
        auto a = std::make_unique<tcp::acceptor>(ctx);
        tcp::endpoint ep(asio::ip::make_address(opts.bind), 0);
        a->open(ep.protocol());
        a->set_option(asio::socket_base::reuse_address(true));
        a->bind(ep);
        a->listen();
        return a;
    }

    void start() {
        if (opts.amqps) amqps = listen();
        if (opts.websocket) ws = listen();
        if (opts.plain) plain = listen();
        if (amqps) amqps_port = amqps->local_endpoint().port();
        if (ws) ws_port = ws->local_endpoint().port();
        if (plain) plain_port = plain->local_endpoint().port();
        if (amqps) accept_loop(*amqps, 0);
        if (ws) accept_loop(*ws, 1);
        if (plain) accept_loop(*plain, 2);
        arm_idle();
    }

    void accept_loop(tcp::acceptor& a, int kind) {
        auto self = shared_from_this();
        a.async_accept([self, &a, kind](const boost::system::error_code& ec, tcp::socket s) {
            if (ec || self->stopped) return;
            auto on_done = [](std::exception_ptr) {};  // failures end that connection only
            asio::co_spawn(self->ctx, serve(self, std::move(s), kind), std::move(on_done));
            self->accept_loop(a, kind);
        });
    }

    static asio::awaitable<void> serve(std::shared_ptr<impl> self, tcp::socket s, int kind) {
        beast::error_code ec;
        beast::tcp_stream t(std::move(s));
        if (kind == 2) {
            self->serve_sasl(io::make_byte_stream(std::move(t)));
            co_return;
        }
        if (kind == 0) {
            // AMQPS the way the daemon does it: large reads, one send per write.
            io::coalesced_tls_stream tls_s(io::coalescing_stream(std::move(t)), self->tls);
            tls_s.next_layer().next_layer().expires_after(std::chrono::seconds(10));
            co_await tls_s.async_handshake(ssl::stream_base::server,
                                           asio::redirect_error(asio::use_awaitable, ec));
            if (!ec)  // the tickets a TLS 1.3 server sends after the handshake
                co_await tls_s.next_layer().async_flush(
                    asio::redirect_error(asio::use_awaitable, ec));
            tls_s.next_layer().next_layer().expires_never();
            if (!ec) self->serve_sasl(io::make_byte_stream(std::move(tls_s)));
            co_return;
        }
        beast::ssl_stream<beast::tcp_stream> tls_s(std::move(t), self->tls);
        tls_s.next_layer().expires_after(std::chrono::seconds(10));
        co_await tls_s.async_handshake(ssl::stream_base::server,
                                       asio::redirect_error(asio::use_awaitable, ec));
        tls_s.next_layer().expires_never();
        if (ec) co_return;
        // WebSocket: the upgrade must ask for AMQPWSB10 at /$servicebus/websocket.
        beast::flat_buffer buf;
        http::request<http::string_body> req;
        tls_s.next_layer().expires_after(std::chrono::seconds(10));
        co_await http::async_read(tls_s, buf, req, asio::redirect_error(asio::use_awaitable, ec));
        tls_s.next_layer().expires_never();
        if (ec) co_return;
        const std::string target(req.target());
        const std::string protos(req[http::field::sec_websocket_protocol]);
        if (!websocket::is_upgrade(req) || target.rfind("/$servicebus/websocket", 0) != 0 ||
            protos.find("AMQPWSB10") == std::string::npos) {
            self->log("refused a WebSocket upgrade to " + target.substr(0, 80));
            http::response<http::string_body> res{http::status::bad_request, req.version()};
            res.body() = "expected an AMQPWSB10 upgrade at /$servicebus/websocket";
            res.prepare_payload();
            co_await http::async_write(tls_s, res, asio::redirect_error(asio::use_awaitable, ec));
            co_return;
        }
        websocket::stream<beast::ssl_stream<beast::tcp_stream>> wss(std::move(tls_s));
        auto decorate = [](websocket::response_type& res) {
            res.set(http::field::sec_websocket_protocol, "AMQPWSB10");
        };
        wss.set_option(websocket::stream_base::decorator(std::move(decorate)));
        wss.binary(true);
        co_await wss.async_accept(req, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        self->serve_sasl(io::make_byte_stream(std::move(wss)));
    }

    // The SASL layer (hand-rolled, reference §5.2), then AMQP on Proton without SASL.
    void serve_sasl(std::unique_ptr<io::byte_stream> stream);
    // `already_read`: bytes the SASL layer read past its last frame (Proton gets them first);
    // `plain`: the connection authenticated with SASL PLAIN (no CBS needed).
    void run_amqp(std::unique_ptr<io::byte_stream> stream, std::string already_read,
                  bool sasl_plain_ok);

    // ---- retention, re-creation, other owners ----
    void truncate(const std::string& hub_name, int partition, std::int64_t keep_from);
    void recreate(const std::string& hub_name);
    void hold(const std::string& hub_name, int partition, std::int64_t epoch,
              std::chrono::milliseconds how_long);
    void expire_tokens();

    // ---- idle links ----
    void arm_idle() {
        if (!idle_timer) return;
        idle_timer->expires_after(std::chrono::milliseconds(50));
        std::weak_ptr<impl> w = shared_from_this();
        idle_timer->async_wait([w](const boost::system::error_code& ec) {
            auto self = w.lock();
            if (ec || !self || self->stopped) return;
            self->check_idle();
            self->arm_idle();
        });
    }
    void check_idle();

    // ---- delivery ----
    void deliver(subscriber& s);
    void wake(broker_conn* c);
    void close_sub(subscriber& s, const std::string& cond, const std::string& why);
    void remove_subs(broker_conn* c) {
        std::erase_if(subs, [c](const subscriber& s) { return s.conn == c; });
    }
};

namespace {

// The broker side of one AMQP connection.
struct broker_conn final : proton::messaging_handler {
    explicit broker_conn(std::shared_ptr<eventhub_emulator::impl> i) : em(std::move(i)) {}
    ~broker_conn() override;  // forgets this connection's subscribers
    std::shared_ptr<eventhub_emulator::impl> em;
    std::weak_ptr<io::amqp_pump> pump;
    // Message bytes handed to Proton; what the pump has not written yet is still queued there.
    std::uint64_t handed = 0;
    bool output_backed_up() {
        constexpr std::uint64_t limit = 4u << 20;
        const auto p = pump.lock();
        if (!p) return false;
        handed = std::max(handed, p->bytes_out());  // frames and replies are written bytes too
        return handed > p->bytes_out() + limit;
    }
    void handing(std::size_t bytes) {
        // A huge message (the max_message_size tests send 50 MB) must not hold back the other
        // partitions of the connection while it is written: it counts as at most 1 MB here.
        handed += std::min<std::uint64_t>(bytes, 1u << 20);
    }
    std::map<std::string, proton::sender> replies;  // reply-to address -> our sender
    // hub -> token expiry (unix s) and the emulator's token generation when it was put
    std::map<std::string, std::pair<std::int64_t, std::uint64_t>> authorized;
    bool sasl_plain = false;  // SASL PLAIN with the rule's key: the whole connection may listen

    bool is_authorized(const std::string& hub) const {
        if (sasl_plain) return true;
        auto it = authorized.find(hub);
        return it != authorized.end() && it->second.first > wall_ms() / 1000 &&
               it->second.second == em->token_generation;
    }

    void on_connection_open(proton::connection& c) override {
        em->hostnames.push_back(c.virtual_host());
        if (em->hostnames.size() > 20) em->hostnames.pop_front();
        c.open();
    }
    void on_session_open(proton::session& s) override { s.open(); }

    void on_receiver_open(proton::receiver& r) override {
        // The client's request senders ($cbs, $management).
        proton::target_options to;
        to.address(r.target().address());
        proton::receiver_options ro;
        ro.target(to).credit_window(50);
        r.open(ro);
    }

    void on_sender_open(proton::sender& s) override {
        const std::string addr = s.source().address();
        if (addr == "$cbs" || addr == "$management") {
            replies[s.target().address()] = s;
            proton::source_options so;
            so.address(addr);
            proton::sender_options opt;
            opt.source(so);
            s.open(opt);
            return;
        }
        attach(s, addr);
    }

    void refuse(proton::sender& s, const std::string& addr, const std::string& cond,
                const std::string& why) {
        ++em->attaches_refused;
        em->log("refused attach " + addr + ": " + cond);
        // A broker sends its own attach before the detach that carries the error.
        proton::source_options so;
        so.address("");
        proton::sender_options opt;
        opt.source(so);
        s.open(opt);
        s.close(proton::error_condition(cond, why));
    }

    void attach(proton::sender& s, const std::string& addr) {
        ++em->attaches;
        auto ref = core::parse_partition_address(addr);
        hub_state* h = ref ? em->hub(ref->hub) : nullptr;
        int part = -1;
        if (ref) {
            try {
                part = std::stoi(ref->partition);
            } catch (const std::exception&) {
                part = -1;
            }
        }
        if (!h || part < 0 || part >= static_cast<int>(h->parts.size())) {
            refuse(s, addr, "amqp:not-found", "The messaging entity could not be found");
            return;
        }
        if (!is_authorized(ref->hub)) {
            refuse(s, addr, "amqp:unauthorized-access", "Unauthorized access: put a token first");
            return;
        }
        if (em->busy > 0) {
            --em->busy;
            refuse(s, addr, "com.microsoft:server-busy", "The server is busy. Retry later");
            return;
        }
        const proton::source src = s.source();  // filters() refers into it
        const proton::source::filter_map fm = src.filters();
        const std::string expr = selector_of(fm);
        std::optional<core::start_position> pos;
        if (!expr.empty()) {
            pos = core::parse_selector_expression(expr);
            if (!pos) {
                refuse(s, addr, "com.microsoft:argument-error", "bad selector filter");
                return;
            }
        }
        std::optional<std::int64_t> epoch;
        const auto props = s.properties();
        if (auto it = props.find(proton::symbol("com.microsoft:epoch")); it != props.end()) {
            try {
                epoch = proton::coerce<std::int64_t>(it->second);
            } catch (const std::exception&) {
                epoch.reset();
            }
        }
        auto& ps = h->parts[static_cast<std::size_t>(part)];
        // A sequence number past the partition's end (the checkpoint of a hub that was deleted
        // and created again) is refused, as the service does; the client must decide.
        const std::int64_t last = ps.next_sequence - 1;
        if (pos && pos->what == core::start_position::kind::sequence_number &&
            pos->sequence_number > last + (pos->inclusive ? 1 : 0)) {
            ++em->out_of_range;
            refuse(s, addr, "com.microsoft:argument-out-of-range",
                   "The supplied sequence number '" + std::to_string(pos->sequence_number) +
                       "' is invalid. The last sequence number in the system is '" +
                       std::to_string(last) + "'. TrackingId:" + tracking_id() +
                       ", SystemTracker:" + addr + ", Timestamp:" + std::to_string(wall_ms()));
            return;
        }
        // Another owner with a higher epoch holds the partition (hold()).
        if (ps.held()) {
            if (!epoch || *epoch < *ps.held_epoch) {
                const std::string other = std::to_string(*ps.held_epoch);
                refuse(s, addr, "amqp:link:stolen",
                       !epoch
                           ? "At least one receiver for the endpoint is created with epoch of '" +
                                 other +
                                 "', and so non-epoch receiver is not allowed. Either "
                                 "reconnect with a higher epoch, or make sure all epoch "
                                 "receivers are closed or disconnected. TrackingId:" +
                                 tracking_id() + ", SystemTracker:" + addr
                           : "Receiver 'nil' with a higher epoch '" + other +
                                 "' already exists. Receiver 'nil' with epoch " +
                                 std::to_string(*epoch) +
                                 " cannot be created. Make sure you are creating receiver "
                                 "with increasing epoch value to ensure connectivity, or "
                                 "ensure all old epoch receivers are closed or "
                                 "disconnected. TrackingId:" +
                                 tracking_id() + ", SystemTracker:" + addr);
                return;
            }
            ps.held_epoch.reset();  // ours is at least as high: the other owner is detached
        }
        // Epoch rules: a higher-or-equal epoch takes the partition over from the older link.
        if (epoch) {
            for (auto& other : em->subs) {
                if (other.hub != ref->hub || other.partition != part || other.group != ref->group)
                    continue;
                if (other.epoch && *other.epoch > *epoch) {
                    refuse(s, addr, "amqp:link:stolen", "a receiver with a higher epoch exists");
                    return;
                }
            }
            for (auto& other : em->subs) {
                if (other.hub == ref->hub && other.partition == part && other.group == ref->group &&
                    other.link.active()) {
                    ++em->stolen;
                    em->close_sub(other, "amqp:link:stolen",
                                  "New receiver with higher epoch was created");
                }
            }
        }
        json f = {{"address", addr}, {"expression", expr}};
        if (epoch) f["epoch"] = *epoch;
        em->filters.push_back(f);
        if (em->filters.size() > 100) em->filters.pop_front();
        proton::source_options so;
        so.address(addr).filters(fm);  // the selector echoed in our attach
        proton::sender_options opt;
        opt.source(so);
        s.open(opt);
        subscriber sub;
        sub.link = s;
        sub.conn = this;
        sub.hub = ref->hub;
        sub.group = ref->group;
        sub.partition = part;
        sub.next = start_index(h->parts[static_cast<std::size_t>(part)], pos);
        sub.epoch = epoch;
        em->subs.push_back(sub);
        em->log("attach " + addr + (expr.empty() ? "" : " where " + expr));
        em->deliver(em->subs.back());
    }

    static std::string tracking_id() {
        static std::uint64_t n = 0;
        char b[64];
        std::snprintf(b, sizeof b, "%08llx-lab_G%llu", static_cast<unsigned long long>(wall_ms()),
                      static_cast<unsigned long long>(++n));
        return b;
    }

    void reply(const proton::message& req, int status, const std::string& description,
               const proton::value& body = proton::value()) {
        auto it = replies.find(req.reply_to());
        if (it == replies.end()) return;  // no reply link: nowhere to answer
        proton::message r;
        r.to(req.reply_to());
        r.correlation_id(req.id());
        r.properties().put("status-code", static_cast<std::int32_t>(status));
        r.properties().put("status-description", description);
        if (!body.empty()) r.body(body);
        it->second.send(r);
    }

    static std::string prop(const proton::message& m, const std::string& k) {
        const proton::scalar v = m.properties().get(k);
        if (v.type() != proton::STRING) return {};
        return proton::get<std::string>(v);
    }

    void on_message(proton::delivery& d, proton::message& m) override {
        const std::string node = d.receiver().target().address();
        d.accept();
        if (node == "$cbs") {
            put_token(m);
        } else if (node == "$management") {
            management(m);
        }
    }

    void put_token(const proton::message& m) {
        const std::string audience = prop(m, "name");
        std::string token;
        if (m.body().type() == proton::STRING) token = proton::get<std::string>(m.body());
        if (prop(m, "operation") != "put-token" ||
            prop(m, "type") != "servicebus.windows.net:sastoken") {
            reply(m, 400, "expected operation put-token with a SAS token");
            return;
        }
        // The hub is the first path segment after the host of the audience.
        std::string hub;
        if (auto p = audience.find("://"); p != std::string::npos) {
            auto slash = audience.find('/', p + 3);
            if (slash != std::string::npos) {
                hub = audience.substr(slash + 1);
                hub = hub.substr(0, hub.find('/'));
            }
        }
        core::sas_verdict v = core::verify_sas_token(token, audience, em->opts.key_name,
                                                     em->opts.key, wall_ms() / 1000);
        if (v == core::sas_verdict::ok && em->hub(hub) == nullptr)
            v = core::sas_verdict::wrong_audience;
        std::string verdict(core::to_string(v));
        if (v == core::sas_verdict::ok && em->refuse) verdict = "refused by fault injection";
        em->verdicts.push_back(verdict);
        if (em->verdicts.size() > 50) em->verdicts.pop_front();
        if (v != core::sas_verdict::ok || em->refuse) {
            ++em->tokens_refused;
            em->log("put-token refused: " + verdict);
            reply(m, 401, "Unauthorized: " + verdict);
            return;
        }
        ++em->tokens_ok;
        authorized[hub] = {core::parse_sas_token(token)->expiry, em->token_generation};
        reply(m, 202, "Accepted");
    }

    void management(const proton::message& m) {
        ++em->mgmt_reads;
        const std::string hub_name = prop(m, "name"), type = prop(m, "type");
        if (prop(m, "operation") != "READ") {
            reply(m, 400, "unsupported operation");
            return;
        }
        hub_state* h = em->hub(hub_name);
        if (!h) {
            reply(m, 404, "The messaging entity could not be found");
            return;
        }
        if (!is_authorized(hub_name)) {
            reply(m, 401, "Unauthorized: put a token for the hub first");
            return;
        }
        std::map<std::string, proton::value> body;
        body["name"] = hub_name;
        if (type == "com.microsoft:eventhub") {
            std::vector<std::string> ids;
            for (std::size_t i = 0; i < h->parts.size(); ++i)
                ids.push_back(std::to_string(i));
            body["type"] = type;
            body["created_at"] = proton::timestamp(h->created_ms);
            body["partition_count"] = static_cast<std::int32_t>(ids.size());
            body["partition_ids"] = ids;
        } else if (type == "com.microsoft:partition") {
            int part = -1;
            try {
                part = std::stoi(prop(m, "partition"));
            } catch (const std::exception&) {
                part = -1;
            }
            if (part < 0 || part >= static_cast<int>(h->parts.size())) {
                reply(m, 404, "no such partition");
                return;
            }
            const auto& p = h->parts[static_cast<std::size_t>(part)];
            body["type"] = type;
            body["partition"] = std::to_string(part);
            // After retention removed everything the partition is empty but keeps its last
            // sequence number; the next event gets last + 1 (= begin).
            body["begin_sequence_number"] = p.begin_sequence;
            body["last_enqueued_sequence_number"] = p.next_sequence - 1;
            body["last_enqueued_offset"] = p.log.empty() ? std::string("-1") : p.log.back().offset;
            body["last_enqueued_time_utc"] = proton::timestamp(p.last_enqueued_ms);
            body["is_partition_empty"] = p.log.empty();
        } else {
            reply(m, 400, "unsupported type");
            return;
        }
        reply(m, 200, "OK", proton::value(body));
    }

    void on_tracker_accept(proton::tracker& t) override {
        if (t.sender().source().address().find("/Partitions/") != std::string::npos) {
            --em->unaccepted;
            ++em->accepted;
        }
    }

    void on_sendable(proton::sender& s) override {
        for (auto& sub : em->subs)
            if (sub.link == s) em->deliver(sub);
    }
    void on_sender_close(proton::sender& s) override {
        std::erase_if(em->subs, [&s](const subscriber& x) { return x.link == s; });
    }
    void on_connection_close(proton::connection&) override { em->remove_subs(this); }
    void on_transport_close(proton::transport&) override { em->remove_subs(this); }
    void on_transport_error(proton::transport&) override { em->remove_subs(this); }
    void on_error(const proton::error_condition&) override {}
};

broker_conn::~broker_conn() {
    em->remove_subs(this);
}

// Bytes already read (by the SASL layer) are served first, then the stream's own.
class prefixed_stream final : public io::byte_stream {
public:
    prefixed_stream(asio::any_io_executor ex, std::unique_ptr<io::byte_stream> inner,
                    std::string head)
        : ex_(std::move(ex)), inner_(std::move(inner)), head_(std::move(head)) {}
    void async_read_some(asio::mutable_buffer b, handler h) override {
        if (head_.empty()) return inner_->async_read_some(b, std::move(h));
        const std::size_t n = std::min(b.size(), head_.size());
        std::memcpy(b.data(), head_.data(), n);
        head_.erase(0, n);
        asio::post(ex_, [h = std::move(h), n] { h(boost::system::error_code{}, n); });
    }
    void async_write(asio::const_buffer b, handler h) override {
        inner_->async_write(b, std::move(h));
    }
    void close() override { inner_->close(); }

private:
    asio::any_io_executor ex_;
    std::unique_ptr<io::byte_stream> inner_;
    std::string head_;
};

// One SASL frame (AMQP 1.0 §5.3): 8-byte header (size, doff 2, type 1, channel 0) + body.
std::string sasl_frame(pn_data_t* body) {
    std::string out(8, '\0');
    char buf[2048];
    const ssize_t n = pn_data_encode(body, buf, sizeof buf);
    if (n < 0) return {};
    const auto size = static_cast<std::uint32_t>(8 + n);
    out[0] = static_cast<char>(size >> 24);
    out[1] = static_cast<char>(size >> 16);
    out[2] = static_cast<char>(size >> 8);
    out[3] = static_cast<char>(size);
    out[4] = 2;
    out[5] = 1;
    out.append(buf, static_cast<std::size_t>(n));
    return out;
}

using data_ptr = std::unique_ptr<pn_data_t, decltype(&pn_data_free)>;

std::string mechanisms_frame(const std::string& mechanisms) {
    data_ptr d(pn_data(16), &pn_data_free);
    pn_data_put_described(d.get());
    pn_data_enter(d.get());
    pn_data_put_ulong(d.get(), 0x40);  // sasl-mechanisms
    pn_data_put_list(d.get());
    pn_data_enter(d.get());
    pn_data_put_array(d.get(), false, PN_SYMBOL);
    pn_data_enter(d.get());
    std::size_t at = 0;
    while (at < mechanisms.size()) {
        std::size_t sp = mechanisms.find(' ', at);
        if (sp == std::string::npos) sp = mechanisms.size();
        if (sp > at) pn_data_put_symbol(d.get(), pn_bytes(sp - at, mechanisms.data() + at));
        at = sp + 1;
    }
    pn_data_exit(d.get());
    pn_data_exit(d.get());
    pn_data_exit(d.get());
    return sasl_frame(d.get());
}

std::string outcome_frame(std::uint8_t code) {
    data_ptr d(pn_data(16), &pn_data_free);
    pn_data_put_described(d.get());
    pn_data_enter(d.get());
    pn_data_put_ulong(d.get(), 0x44);  // sasl-outcome
    pn_data_put_list(d.get());
    pn_data_enter(d.get());
    pn_data_put_ubyte(d.get(), code);  // 0 ok, 1 auth
    pn_data_exit(d.get());
    pn_data_exit(d.get());
    return sasl_frame(d.get());
}

// The server side of the SASL exchange on one connection; hands the stream to Proton after it.
struct sasl_server : std::enable_shared_from_this<sasl_server> {
    sasl_server(std::shared_ptr<eventhub_emulator::impl> i, std::unique_ptr<io::byte_stream> s)
        : em(std::move(i)), stream(std::move(s)) {}
    std::shared_ptr<eventhub_emulator::impl> em;
    std::unique_ptr<io::byte_stream> stream;
    std::string in, out;
    std::array<char, 4096> buf{};
    bool header_done = false;

    void read() {
        auto self = shared_from_this();
        stream->async_read_some(asio::buffer(buf),
                                [self](const boost::system::error_code& ec, std::size_t n) {
                                    if (ec || self->em->stopped) return;
                                    self->in.append(self->buf.data(), n);
                                    self->step();
                                });
    }
    void write(std::string bytes, std::function<void()> then) {
        out = std::move(bytes);
        auto self = shared_from_this();
        stream->async_write(
            asio::buffer(out),
            [self, then = std::move(then)](const boost::system::error_code& ec, std::size_t) {
                if (ec) return self->stream->close();
                then();
            });
    }
    void step() {
        static const std::string sasl_header("AMQP\x03\x01\x00\x00", 8),
            amqp_header("AMQP\x00\x01\x00\x00", 8);
        if (!header_done) {
            if (in.size() < 8) return read();
            if (in.compare(0, 8, amqp_header) == 0) {
                // No SASL layer at all (the JS SDK with a SharedAccessSignature): CBS only.
                em->run_amqp(std::move(stream), std::move(in), false);
                return;
            }
            if (in.compare(0, 8, sasl_header) != 0) return stream->close();
            in.erase(0, 8);
            header_done = true;
            auto self = shared_from_this();
            write(sasl_header + mechanisms_frame(em->sasl_mechanisms), [self] { self->step(); });
            return;
        }
        if (in.size() < 8) return read();
        const std::uint32_t size = (std::uint32_t(std::uint8_t(in[0])) << 24) |
                                   (std::uint32_t(std::uint8_t(in[1])) << 16) |
                                   (std::uint32_t(std::uint8_t(in[2])) << 8) |
                                   std::uint32_t(std::uint8_t(in[3]));
        if (size < 8 || size > 65536) return stream->close();
        if (in.size() < size) return read();
        const std::size_t doff = static_cast<std::size_t>(std::uint8_t(in[4])) * 4;
        const std::string body = size > doff ? in.substr(doff, size - doff) : std::string();
        in.erase(0, size);
        if (body.empty()) return step();  // an empty frame
        std::string mech, response;
        data_ptr d(pn_data(16), &pn_data_free);
        if (pn_data_decode(d.get(), body.data(), body.size()) > 0) {
            pn_data_t* p = d.get();
            pn_data_rewind(p);
            if (pn_data_next(p) && pn_data_type(p) == PN_DESCRIBED) {
                pn_data_enter(p);
                if (pn_data_next(p) && pn_data_type(p) == PN_ULONG &&
                    pn_data_get_ulong(p) == 0x41 && pn_data_next(p) && pn_data_type(p) == PN_LIST) {
                    pn_data_enter(p);
                    if (pn_data_next(p) && pn_data_type(p) == PN_SYMBOL) {
                        const pn_bytes_t b = pn_data_get_symbol(p);
                        mech.assign(b.start, b.size);
                    }
                    if (pn_data_next(p) && pn_data_type(p) == PN_BINARY) {
                        const pn_bytes_t b = pn_data_get_binary(p);
                        response.assign(b.start, b.size);
                    }
                }
            }
        }
        const bool offered =
            (" " + em->sasl_mechanisms + " ").find(" " + mech + " ") != std::string::npos;
        bool ok = false, plain = false;
        if (offered && mech == "ANONYMOUS") ok = true;
        if (offered && mech == "PLAIN") {
            // authzid NUL authcid NUL password: the rule's name and its key.
            const auto a = response.find('\0');
            const auto b = a == std::string::npos ? a : response.find('\0', a + 1);
            ok = b != std::string::npos && response.substr(a + 1, b - a - 1) == em->opts.key_name &&
                 response.substr(b + 1) == em->opts.key;
            plain = ok;
        }
        if (plain) ++em->sasl_plain;
        if (ok && !plain) ++em->sasl_anonymous;
        if (!ok) {
            ++em->sasl_refused;
            em->log("SASL " + (mech.empty() ? std::string("(no mechanism)") : mech) + " refused");
        }
        auto self = shared_from_this();
        write(outcome_frame(ok ? 0 : 1), [self, ok, plain] {
            if (!ok) return self->stream->close();
            self->em->run_amqp(std::move(self->stream), std::move(self->in), plain);
        });
    }
};

}  // namespace

void eventhub_emulator::impl::serve_sasl(std::unique_ptr<io::byte_stream> stream) {
    if (stopped) return;
    std::make_shared<sasl_server>(shared_from_this(), std::move(stream))->step();
}

void eventhub_emulator::impl::truncate(const std::string& hub_name, int partition,
                                       std::int64_t keep_from) {
    hub_state* h = hub(hub_name);
    if (!h || partition < 0 || partition >= static_cast<int>(h->parts.size())) return;
    auto& p = h->parts[static_cast<std::size_t>(partition)];
    keep_from = std::min(keep_from, p.next_sequence);
    if (keep_from <= p.begin_sequence) return;
    const auto n = static_cast<std::size_t>(keep_from - p.begin_sequence);
    p.log.erase(p.log.begin(), p.log.begin() + static_cast<std::ptrdiff_t>(n));
    p.encoded.erase(p.encoded.begin(), p.encoded.begin() + static_cast<std::ptrdiff_t>(n));
    p.begin_sequence = keep_from;
    log("retention: " + hub_name + "/" + std::to_string(partition) + " now begins at sequence " +
        std::to_string(keep_from));
    // A reader behind the new beginning silently continues at it, as the service does.
    for (auto& s : subs)
        if (s.hub == hub_name && s.partition == partition) s.next = s.next > n ? s.next - n : 0;
}

void eventhub_emulator::impl::recreate(const std::string& hub_name) {
    hub_state* h = hub(hub_name);
    if (!h) return;
    log("hub " + hub_name + " deleted and created again");
    for (auto& s : subs)
        if (s.hub == hub_name)
            close_sub(s, "amqp:not-found",
                      "The messaging entity '" + hub_name + "' could not be found.");
    for (auto& p : h->parts)
        p = partition_state{};
    h->created_ms = wall_ms();
}

void eventhub_emulator::impl::hold(const std::string& hub_name, int partition, std::int64_t epoch,
                                   std::chrono::milliseconds how_long) {
    hub_state* h = hub(hub_name);
    if (!h || partition < 0 || partition >= static_cast<int>(h->parts.size())) return;
    auto& p = h->parts[static_cast<std::size_t>(partition)];
    p.held_epoch = epoch;
    p.held_until = steady::now() + how_long;
    log("another receiver (epoch " + std::to_string(epoch) + ") holds " + hub_name + "/" +
        std::to_string(partition));
    for (auto& s : subs) {
        if (s.hub != hub_name || s.partition != partition || !s.link.active()) continue;
        ++stolen;
        close_sub(s, "amqp:link:stolen",
                  "New receiver 'nil' with higher epoch of '" + std::to_string(epoch) +
                      "' is created hence current receiver 'nil' with epoch '" +
                      (s.epoch ? std::to_string(*s.epoch) : std::string("null")) +
                      "' is getting disconnected. If you are recreating the receiver, make sure "
                      "a higher epoch is used. TrackingId:" +
                      broker_conn::tracking_id() + ", SystemTracker:" + hub_name +
                      ", Timestamp:" + std::to_string(wall_ms()));
    }
}

void eventhub_emulator::impl::expire_tokens() {
    ++token_generation;
    log("every CBS token expires now");
    // check_idle() detaches the links whose token is gone; at once here.
    check_idle();
}

void eventhub_emulator::impl::run_amqp(std::unique_ptr<io::byte_stream> stream,
                                       std::string already_read, bool sasl_plain_ok) {
    if (stopped) return;
    ++connections;
    auto h = std::make_unique<broker_conn>(shared_from_this());
    broker_conn* hp = h.get();
    hp->sasl_plain = sasl_plain_ok;
    if (!already_read.empty())
        stream = std::make_unique<prefixed_stream>(ctx.get_executor(), std::move(stream),
                                                   std::move(already_read));
    auto pump = std::make_shared<io::amqp_pump>(ctx.get_executor(), std::move(stream), std::move(h),
                                                "eventhub-emulator");
    hp->pump = pump;
    proton::connection_options co;
    co.handler(*hp);
    co.sasl_enabled(false);  // done by serve_sasl (Debian's Proton has no SASL PLAIN server)
    pump->driver().accept(co);
    std::weak_ptr<impl> wi = shared_from_this();
    pump->on_written([wi, hp] {
        if (auto self = wi.lock())
            for (auto& sub : self->subs)
                if (sub.conn == hp) self->deliver(sub);
    });
    std::erase_if(pumps, [](const std::weak_ptr<io::amqp_pump>& w) { return w.expired(); });
    pumps.push_back(pump);
    std::weak_ptr<impl> w = shared_from_this();
    pump->start([w, hp](const std::string&) {
        if (auto self = w.lock()) self->remove_subs(hp);
    });
}

void eventhub_emulator::impl::deliver(subscriber& s) {
    hub_state* h = hub(s.hub);
    if (!h || !s.link.active()) return;
    auto& p = h->parts[static_cast<std::size_t>(s.partition)];
    if (p.stalled || s.starved) return;
    pn_link_t* link = sender_handle(s.link).raw();
    // A few MB at a time, topped up after every socket write (run_amqp), like a broker that
    // streams from its log: handing Proton all the credit at once (300 x 100 KB per link)
    // grows its frame buffer without end, and the page faults cost more than the encryption.
    while (s.link.credit() > 0 && s.next < p.log.size() && !s.conn->output_backed_up()) {
        // What proton::sender::send does, with the bytes encoded at publish time.
        const std::string& bytes = p.encoded[s.next++];
        const std::uint64_t tag = ++s.tag;
        pn_delivery(link, pn_dtag(reinterpret_cast<const char*>(&tag), sizeof tag));
        pn_link_send(link, bytes.data(), bytes.size());
        s.conn->handing(bytes.size());
        pn_link_advance(link);
        ++deliveries;
        max_unaccepted = std::max(max_unaccepted, ++unaccepted);
        s.last_activity = steady::now();
    }
}

void eventhub_emulator::impl::wake(broker_conn* c) {
    // Posted, never nested: the caller may be inside another connection's dispatch().
    std::weak_ptr<io::amqp_pump> w = c->pump;
    asio::post(ctx, [w] {
        if (auto p = w.lock()) p->wake();
    });
}

void eventhub_emulator::impl::close_sub(subscriber& s, const std::string& cond,
                                        const std::string& why) {
    if (!s.link.active()) return;
    log("detach " + s.hub + "/" + std::to_string(s.partition) + ": " + cond);
    s.link.close(proton::error_condition(cond, why));
    wake(s.conn);
}

void eventhub_emulator::impl::check_idle() {
    const auto now = steady::now();
    // When a token expires the service closes that entity's links (reference §5.2).
    for (auto& s : subs) {
        if (s.link.active() && s.conn && !s.conn->is_authorized(s.hub)) {
            ++tokens_expired;
            close_sub(s, "amqp:unauthorized-access",
                      "ExpiredToken: The token is expired. Expiration time: '" +
                          std::to_string(wall_ms() / 1000) + "'. TrackingId:" +
                          broker_conn::tracking_id() + ", SystemTracker:" + s.hub);
        }
    }
    if (opts.link_idle_timeout.count() <= 0) return;
    for (auto& s : subs) {
        if (s.link.active() && now - s.last_activity > opts.link_idle_timeout) {
            ++detached;
            close_sub(s, "amqp:link:detach-forced",
                      "AmqpEventHubConsumer.IdleTimerExpired: Idle timeout");
        }
    }
}

// ---- the public face ----------------------------------------------------------------------------

eventhub_emulator::eventhub_emulator(asio::io_context& ctx, eventhub_options opts)
    : impl_(std::make_shared<impl>(ctx, std::move(opts))) {
    impl_->start();
}

eventhub_emulator::~eventhub_emulator() {
    stop();
}

std::uint16_t eventhub_emulator::amqps_port() const noexcept {
    return impl_->amqps_port;
}
std::uint16_t eventhub_emulator::websocket_port() const noexcept {
    return impl_->ws_port;
}
std::uint16_t eventhub_emulator::plain_port() const noexcept {
    return impl_->plain_port;
}
const eventhub_options& eventhub_emulator::options() const noexcept {
    return impl_->opts;
}

eventhub_event eventhub_emulator::publish(std::string body, int partition, std::int64_t enqueued_ms,
                                          const std::string& hub) {
    const std::string name = hub.empty() ? impl_->opts.hubs.front() : hub;
    hub_state* h = impl_->hub(name);
    if (!h) return {};
    const int n = static_cast<int>(h->parts.size());
    if (partition < 0 || partition >= n) partition = h->round_robin++ % n;
    auto& p = h->parts[static_cast<std::size_t>(partition)];
    eventhub_event e;
    e.sequence_number = p.next_sequence++;
    e.offset = std::to_string(p.next_offset);
    p.next_offset += static_cast<std::int64_t>(body.size()) + 64;  // a header's worth of bytes
    e.enqueued_ms = enqueued_ms != 0 ? enqueued_ms : wall_ms();
    p.last_enqueued_ms = e.enqueued_ms;
    e.body = std::move(body);
    proton::message m;
    m.body(proton::binary(e.body.begin(), e.body.end()));
    auto& ann = m.message_annotations();
    ann.put(proton::annotation_key(proton::symbol("x-opt-offset")), e.offset);
    ann.put(proton::annotation_key(proton::symbol("x-opt-sequence-number")), e.sequence_number);
    ann.put(proton::annotation_key(proton::symbol("x-opt-enqueued-time")),
            proton::timestamp(e.enqueued_ms));
    std::vector<char> bytes;
    m.encode(bytes);
    p.encoded.emplace_back(bytes.begin(), bytes.end());
    p.log.push_back(e);
    for (auto& s : impl_->subs) {
        if (s.hub == name && s.partition == partition) {
            impl_->deliver(s);
            impl_->wake(s.conn);
        }
    }
    return e;
}

std::vector<eventhub_event> eventhub_emulator::events(int partition, const std::string& hub) const {
    const hub_state* h = impl_->hub(hub.empty() ? impl_->opts.hubs.front() : hub);
    if (!h || partition < 0 || partition >= static_cast<int>(h->parts.size())) return {};
    return h->parts[static_cast<std::size_t>(partition)].log;
}

void eventhub_emulator::drop_connections() {
    impl_->log("dropping every connection");
    for (auto& w : impl_->pumps)
        if (auto p = w.lock()) p->abort("dropped by fault injection");
}

void eventhub_emulator::freeze_connections() {
    impl_->log("freezing every connection");
    for (auto& w : impl_->pumps)
        if (auto p = w.lock()) {
            p->freeze();
            impl_->frozen.push_back(p);
        }
}

void eventhub_emulator::refuse_tokens(bool refuse) {
    impl_->refuse = refuse;
}

void eventhub_emulator::detach_links(const std::string& condition) {
    for (auto& s : impl_->subs) {
        if (condition == "amqp:link:stolen")
            ++impl_->stolen;
        else
            ++impl_->detached;
        impl_->close_sub(s, condition, "detached by fault injection");
    }
}

void eventhub_emulator::stall(int partition, bool stalled) {
    for (auto& [name, h] : impl_->hubs) {
        if (partition < 0 || partition >= static_cast<int>(h.parts.size())) continue;
        h.parts[static_cast<std::size_t>(partition)].stalled = stalled;
    }
    if (!stalled) {
        for (auto& s : impl_->subs) {
            impl_->deliver(s);
            impl_->wake(s.conn);
        }
    }
}

void eventhub_emulator::starve_links() {
    impl_->log("credit stall on every attached partition link");
    for (auto& s : impl_->subs)
        s.starved = true;
}

void eventhub_emulator::busy_attaches(int count) {
    impl_->busy = count;
}

json eventhub_emulator::control(const json& req) {
    if (!req.is_object()) return {{"error", "expected a JSON object"}};
    // Also, the faults that make a consumer lose events or a partition (issue 16):
    //   {"truncate":{"partition":N,"before":SEQ}}   retention: events below SEQ are gone
    //   {"recreate":true}                            the hub deleted and created again (empty)
    //   {"hold":{"partition":N,"epoch":E,"seconds":S}}  another receiver with epoch E takes
    //                                                the partition for S seconds
    //   {"expire_tokens":true}                       every CBS token expires now (links close)
    //   {"sasl_mechanisms":"MSSBCBS ANONYMOUS"}      what SASL offers from the next connection
    // "hub" names the hub for truncate/recreate/hold (default: the first).
    static const std::vector<std::string> known = {
        "drop", "freeze",  "refuse_tokens", "detach",   "steal", "stall",         "stall_partition",
        "busy", "publish", "truncate",      "recreate", "hold",  "expire_tokens", "sasl_mechanisms",
        "hub"};
    for (const auto& [k, v] : req.items()) {
        if (std::find(known.begin(), known.end(), k) == known.end())
            return {{"error", "unknown key " + k}};
    }
    json out = json::object();
    if (req.contains("refuse_tokens")) refuse_tokens(req["refuse_tokens"].get<bool>());
    if (req.contains("busy")) busy_attaches(req["busy"].get<int>());
    if (req.contains("stall")) stall(req.value("stall_partition", 0), req["stall"].get<bool>());
    if (req.value("detach", false)) detach_links("amqp:link:detach-forced");
    if (req.value("steal", false)) detach_links("amqp:link:stolen");
    if (req.value("drop", false)) drop_connections();
    if (req.value("freeze", false)) freeze_connections();
    const std::string hub_name = req.value("hub", impl_->opts.hubs.front());
    if (req.contains("truncate")) {
        const json& t = req["truncate"];
        impl_->truncate(hub_name, t.value("partition", 0), t.value("before", std::int64_t{0}));
    }
    if (req.value("recreate", false)) impl_->recreate(hub_name);
    if (req.contains("hold")) {
        const json& t = req["hold"];
        impl_->hold(
            hub_name, t.value("partition", 0), t.value("epoch", std::int64_t{1}),
            std::chrono::milliseconds(static_cast<std::int64_t>(t.value("seconds", 5.0) * 1000)));
    }
    if (req.value("expire_tokens", false)) impl_->expire_tokens();
    if (req.contains("sasl_mechanisms"))
        impl_->sasl_mechanisms = req["sasl_mechanisms"].get<std::string>();
    if (req.contains("publish")) {
        const json& p = req["publish"];
        // When the broker starts handing the event to the attached receivers: the start of
        // the alert-latency measurement (tests/bench/bench_daemon.py), on the lab's wall clock.
        const auto published_at_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count();
        auto e = publish(p.value("body", std::string()), p.value("partition", -1));
        out["sequence_number"] = e.sequence_number;
        out["offset"] = e.offset;
        out["published_at_us"] = published_at_us;
    }
    out["ok"] = true;
    return out;
}

json eventhub_emulator::stats() const {
    const impl& i = *impl_;
    json parts = json::array();
    for (const auto& [name, h] : i.hubs) {
        for (std::size_t p = 0; p < h.parts.size(); ++p)
            parts.push_back({{"hub", name},
                             {"partition", p},
                             {"events", h.parts[p].log.size()},
                             {"begin_sequence", h.parts[p].begin_sequence},
                             {"held", h.parts[p].held()},
                             {"stalled", h.parts[p].stalled}});
    }
    std::size_t attached = 0;
    for (const auto& s : i.subs)
        attached += s.link.active() ? 1 : 0;
    return {
        {"connections", i.connections},
        {"tokens_accepted", i.tokens_ok},
        {"tokens_refused", i.tokens_refused},
        {"attaches", i.attaches},
        {"attaches_refused", i.attaches_refused},
        {"receivers_attached", attached},
        {"deliveries", i.deliveries},
        {"detached", i.detached},
        {"stolen", i.stolen},
        {"management_reads", i.mgmt_reads},
        {"sasl_plain", i.sasl_plain},
        {"sasl_anonymous", i.sasl_anonymous},
        {"sasl_refused", i.sasl_refused},
        {"tokens_expired", i.tokens_expired},
        {"out_of_range", i.out_of_range},
        {"max_unaccepted", i.max_unaccepted},
        {"accepted", i.accepted},
        {"filters", json(std::vector<json>(i.filters.begin(), i.filters.end()))},
        {"token_verdicts", json(std::vector<std::string>(i.verdicts.begin(), i.verdicts.end()))},
        {"hostnames", json(std::vector<std::string>(i.hostnames.begin(), i.hostnames.end()))},
        {"partitions", parts}};
}

void eventhub_emulator::stop() {
    if (impl_->stopped) return;
    impl_->stopped = true;
    boost::system::error_code ec;
    for (auto* a : {impl_->amqps.get(), impl_->ws.get(), impl_->plain.get()})
        if (a) a->close(ec);
    impl_->idle_timer->cancel();
    for (auto& w : impl_->pumps)
        if (auto p = w.lock()) p->abort("emulator stopped");
    impl_->frozen.clear();
    impl_->subs.clear();
    // Released now, not when the last connection lets go of impl: that may happen after the
    // io_context is gone, and an io object must not outlive it.
    impl_->amqps.reset();
    impl_->ws.reset();
    impl_->plain.reset();
    impl_->idle_timer.reset();
}

// ---- diagnostic-settings form -------------------------------------------------------------------

json to_diagnostic_record(const json& r, const std::string& event_type,
                          const std::string& tenant_id) {
    std::string category = "AuditLogs";
    if (event_type == "interactiveUser") category = "SignInLogs";
    if (event_type == "nonInteractiveUser") category = "NonInteractiveUserSignInLogs";
    if (event_type == "servicePrincipal") category = "ServicePrincipalSignInLogs";
    if (event_type == "managedIdentity") category = "ManagedIdentitySignInLogs";
    const bool audit = category == "AuditLogs";
    auto str = [&r](const char* k) {
        auto it = r.find(k);
        return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    json d = {{"time", str(audit ? "activityDateTime" : "createdDateTime")},
              {"resourceId", "/tenants/" + tenant_id + "/providers/Microsoft.aadiam"},
              {"operationName", audit ? str("activityDisplayName") : "Sign-in activity"},
              {"operationVersion", "1.0"},
              {"category", category},
              {"tenantId", tenant_id},
              {"resultSignature", "None"},
              {"durationMs", 0},
              {"correlationId", str("correlationId")},
              {"Level", 4},
              {"properties", r}};
    if (!audit) {
        int code = 0;
        if (r.contains("status") && r["status"].is_object())
            code = r["status"].value("errorCode", 0);
        d["resultType"] = std::to_string(code);
        d["callerIpAddress"] = str("ipAddress");
        d["identity"] = str("userDisplayName");
        if (r.contains("location") && r["location"].is_object())
            d["location"] = r["location"].value("countryOrRegion", "");
    }
    return d;
}

std::string diagnostic_body(const std::vector<json>& records) {
    json body = {{"records", records}};
    return body.dump();
}

}  // namespace glasswatch::lab
