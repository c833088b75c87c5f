#include "lab/lab_eventhub.hpp"

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
#include <deque>
#include <map>
#include <optional>

#include "core/eventhub.hpp"
#include "io/amqp_pump.hpp"

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
    bool stalled = false;
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
            self->run_amqp(io::make_byte_stream(std::move(t)));
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
            if (!ec) self->run_amqp(io::make_byte_stream(std::move(tls_s)));
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
        self->run_amqp(io::make_byte_stream(std::move(wss)));
    }

    void run_amqp(std::unique_ptr<io::byte_stream> stream);

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
    std::map<std::string, proton::sender> replies;   // reply-to address -> our sender
    std::map<std::string, std::int64_t> authorized;  // hub -> token expiry (unix s)

    bool is_authorized(const std::string& hub) const {
        auto it = authorized.find(hub);
        return it != authorized.end() && it->second > wall_ms() / 1000;
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
        authorized[hub] = core::parse_sas_token(token)->expiry;
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
            body["begin_sequence_number"] = std::int64_t{0};
            body["last_enqueued_sequence_number"] =
                p.log.empty() ? std::int64_t{-1} : p.log.back().sequence_number;
            body["last_enqueued_offset"] = p.log.empty() ? std::string("-1") : p.log.back().offset;
            body["last_enqueued_time_utc"] =
                proton::timestamp(p.log.empty() ? 0 : p.log.back().enqueued_ms);
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

}  // namespace

void eventhub_emulator::impl::run_amqp(std::unique_ptr<io::byte_stream> stream) {
    if (stopped) return;
    ++connections;
    auto h = std::make_unique<broker_conn>(shared_from_this());
    broker_conn* hp = h.get();
    auto pump = std::make_shared<io::amqp_pump>(ctx.get_executor(), std::move(stream), std::move(h),
                                                "eventhub-emulator");
    hp->pump = pump;
    proton::connection_options co;
    co.handler(*hp);
    co.sasl_enabled(true);
    co.sasl_allowed_mechs("ANONYMOUS");  // Debian's Proton has no SASL PLAIN server
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
    if (opts.link_idle_timeout.count() <= 0) return;
    const auto now = steady::now();
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
    e.sequence_number = static_cast<std::int64_t>(p.log.size());
    e.offset = std::to_string(p.next_offset);
    p.next_offset += static_cast<std::int64_t>(body.size()) + 64;  // a header's worth of bytes
    e.enqueued_ms = enqueued_ms != 0 ? enqueued_ms : wall_ms();
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
    static const std::vector<std::string> known = {"drop",   "freeze", "refuse_tokens",   "detach",
                                                   "steal",  "stall",  "stall_partition", "busy",
                                                   "publish"};
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
