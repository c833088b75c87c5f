#include "io/sources/eventhub_session_driver.hpp"

#include <proton/codec.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/link.h>
#include <spdlog/spdlog.h>
#include <proton/annotation_key.hpp>
#include <proton/codec/encoder.hpp>
#include <proton/codec/map.hpp>
#include <proton/codec/vector.hpp>
#include <proton/error_condition.hpp>
#include <proton/link.hpp>
#include <proton/message_id.hpp>
#include <proton/receiver_options.hpp>
#include <proton/scalar.hpp>
#include <proton/source.hpp>
#include <proton/source_options.hpp>
#include <proton/symbol.hpp>
#include <proton/target_options.hpp>
#include <proton/timestamp.hpp>
#include <proton/transport.hpp>
#include <proton/value.hpp>

#include <type_traits>

#include "io/sources/eventhub_message.hpp"

namespace glasswatch::io {

using steady = std::chrono::steady_clock;

namespace {

// Proton C handle of a link: the C++ API has no max-message-size and no view of a delivery
// that is still arriving.
struct link_handle : proton::link {
    explicit link_handle(const proton::link& l) : proton::link(l) {}
    pn_link_t* raw() const { return pn_object(); }
};

core::amqp_condition condition_of(const proton::error_condition& e) {
    if (!e) return {};
    return {e.name(), e.description()};
}

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

// A $cbs or $management answer as the machine reads it. The READ bodies are decoded whatever
// was asked (a put-token answer has no map body, which is all the machine needs to know).
core::eventhub_reply read_reply(proton::message& m) {
    core::eventhub_reply r;
    try {
        r.status = proton::coerce<std::int64_t>(m.properties().get("status-code"));
        const proton::scalar d = m.properties().get("status-description");
        if (d.type() == proton::STRING) r.description = proton::get<std::string>(d);
    } catch (const std::exception&) {
        r.status = 0;
    }
    std::map<std::string, proton::value> info;
    try {
        proton::get(m.body(), info);
    } catch (const std::exception&) {
        return r;
    }
    auto& body = r.body.emplace();
    try {
        proton::get(info["partition_ids"], body.partition_ids);
    } catch (const std::exception&) {
        body.partition_ids.clear();
    }
    core::partition_info& pi = body.partition;
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
    return r;
}

proton::message management_read(const std::string& type, const std::string& hub) {
    proton::message m;
    m.to("$management");
    m.properties().put("operation", std::string("READ"));
    m.properties().put("type", type);
    m.properties().put("name", hub);
    return m;
}

}  // namespace

core::eventhub_clock eventhub_now() {
    const auto since_boot = steady::now().time_since_epoch();
    return {std::chrono::duration_cast<std::chrono::microseconds>(since_boot).count(), wall_now()};
}

// ---- actions ----------------------------------------------------------------------------------

void eventhub_source::session::open_request_link(request_link& l, const std::string& node,
                                                 const std::string& reply) {
    l.reply_to = reply;
    l.tx = connection.open_sender(node);
    proton::target_options to;
    to.address(reply);
    proton::receiver_options ro;
    ro.target(to).credit_window(10);
    l.rx = connection.open_receiver(node, ro);
}

void eventhub_source::session::request(request_link& l, proton::message m,
                                       machine_type::request_id id) {
    m.id(proton::message_id(id));
    m.reply_to(l.reply_to);
    l.queue.push_back(std::move(m));
    flush(l);
}

void eventhub_source::session::flush(request_link& l) {
    // Requests go only once the reply link is attached, so no answer can be lost.
    if (!l.tx_open || !l.rx_open) return;
    while (!l.queue.empty() && l.tx.credit() > 0) {
        l.tx.send(l.queue.front());
        l.queue.pop_front();
    }
}

void eventhub_source::session::attach(const machine_type::attach_partition& a) {
    // The selector filter: a described string (reference §5.4).
    proton::value filter;
    {
        proton::codec::encoder e(filter);
        e << proton::codec::start::described()
          << proton::symbol("apache.org:selector-filter:string") << a.selector
          << proton::codec::finish();
    }
    proton::source::filter_map fm;
    fm.put(proton::symbol("apache.org:selector-filter:string"), filter);
    proton::source_options so;
    so.address(a.address).filters(fm);
    std::map<proton::symbol, proton::value> props;
    if (a.epoch) props[proton::symbol("com.microsoft:epoch")] = *a.epoch;
    proton::receiver_options ro;
    // Credit is explicit (window 0): it is given back only after a commit.
    ro.source(so).credit_window(0).auto_accept(false).properties(props).name(a.name);
    proton::receiver r = connection.open_receiver(a.address, ro);
    links[a.link] = r;
    // Advertised on the attach: a conforming service never sends more (reference §5: Event
    // Hubs caps events at 1 MB); refuse_oversized() handles one that does.
    pn_link_set_max_message_size(link_handle(r).raw(), a.max_message_size);
    spdlog::debug("eventhub: {} from {}", a.address, a.selector);
}

eventhub_source::session::machine_type::link_id eventhub_source::session::link_of(
    const proton::link& l) const {
    for (const auto& [id, r] : links)
        if (r == l) return id;
    return 0;
}

void eventhub_source::perform(session* s, core::eventhub_session::actions acts) {
    using machine = core::eventhub_session;
    const bool any = !acts.empty();
    for (auto& act : acts) {
        if (auto* a = std::get_if<machine::open_request_link>(&act)) {
            if (s)
                s->open_request_link(a->node == machine::request_node::cbs ? s->cbs : s->mgmt,
                                     a->address, a->reply_to);
        } else if (auto* t = std::get_if<machine::put_token>(&act)) {
            if (!s) continue;
            std::string token = conn_.signature;
            if (token.empty())
                token =
                    core::make_sas_token(t->audience, conn_.key_name, conn_.key, t->expiry_unix_s);
            proton::message m;
            m.to("$cbs");
            m.properties().put("operation", std::string("put-token"));
            m.properties().put("type", std::string("servicebus.windows.net:sastoken"));
            m.properties().put("name", t->audience);
            m.body(token);
            s->request(s->cbs, std::move(m), t->id);
        } else if (auto* h = std::get_if<machine::read_hub>(&act)) {
            if (s) s->request(s->mgmt, management_read("com.microsoft:eventhub", h->hub), h->id);
        } else if (auto* p = std::get_if<machine::read_partition>(&act)) {
            if (!s) continue;
            proton::message m = management_read("com.microsoft:partition", p->hub);
            m.properties().put("partition", p->partition);
            s->request(s->mgmt, std::move(m), p->id);
        } else if (auto* at = std::get_if<machine::attach_partition>(&act)) {
            if (s) s->attach(*at);
        } else if (auto* c = std::get_if<machine::give_credit>(&act)) {
            if (!s) continue;
            if (auto it = s->links.find(c->link); it != s->links.end())
                it->second.add_credit(static_cast<int>(c->count));
        } else if (auto* cl = std::get_if<machine::close_link>(&act)) {
            if (!s) continue;
            if (auto it = s->links.find(cl->link); it != s->links.end()) it->second.close();
        } else if (auto* r = std::get_if<machine::now_running>(&act)) {
            spdlog::info("eventhub: receiving from {} of {} partition(s) of {} hub(s)",
                         r->receiving, r->partitions, r->hubs);
            if (health_.common.failing_since != 0) spdlog::info("eventhub: recovered");
            health_.common.failing_since = 0;
            health_.common.last_error.clear();
            health_.common.last_success = wall_now();
        } else if (std::get_if<machine::fail_connection>(&act)) {
            // Recorded by the machine; the connection's loop sees it (notify below).
        } else if (auto* g = std::get_if<machine::events_lost>(&act)) {
            raise_gap(g->hub, g->partition, g->gap);
        } else if (auto* ps = std::get_if<machine::partition_started>(&act)) {
            partition_health(ps->hub, ps->partition);
        } else if (auto* pa = std::get_if<machine::partition_attached>(&act)) {
            partition_health(pa->hub, pa->partition).attached = true;
            if (pa->again)
                spdlog::info("eventhub: partition {} of {} attached again", pa->partition, pa->hub);
        } else if (auto* pf = std::get_if<machine::partition_failed>(&act)) {
            auto& ph = partition_health(pf->hub, pf->partition);
            ph.attached = false;
            ph.stuck = false;  // its failure is reported instead
            if (!pf->retry_in)
                spdlog::info("eventhub: partition {} of {}: {}; renewing the token", pf->partition,
                             pf->hub, pf->why);
            else
                spdlog::warn("eventhub: partition {} of {}: {} ({}); attaching again in {}",
                             pf->partition, pf->hub, pf->why, core::to_string(pf->cls),
                             core::format_duration(pf->retry_in->count()));
        } else if (auto* pr = std::get_if<machine::partition_read>(&act)) {
            partition_health(pr->hub, pr->partition).last_enqueued_sequence = pr->last_enqueued;
            health_.common.last_success = wall_now();
        } else if (auto* st = std::get_if<machine::partition_stuck>(&act)) {
            partition_health(st->hub, st->partition).stuck = true;
            spdlog::warn(
                "eventhub: partition {} of {} is stuck: committed sequence {} while the service "
                "has events up to {}",
                st->partition, st->hub, st->committed, st->last_enqueued);
        } else if (auto* mv = std::get_if<machine::partition_moves>(&act)) {
            partition_health(mv->hub, mv->partition).stuck = false;
            spdlog::info("eventhub: partition {} of {} moves again", mv->partition, mv->hub);
        }
    }
    if (any) notify();
    sync_health();
}

void eventhub_source::sync_health() {
    const auto& c = machine_->counters();
    health_.connects = c.connects;
    health_.failures = c.failures;
    health_.auth_refused = c.auth_refused;
    health_.detached = c.detached;
    health_.stolen = c.stolen;
    health_.busy = c.busy;
    health_.phase_timeouts = c.phase_timeouts;
    health_.token_puts = c.token_puts;
    health_.partition_failures = c.partition_failures;
    health_.reattaches = c.reattaches;
    if (health_.phase != machine_->phase()) {
        health_.phase = machine_->phase();
        spdlog::debug("eventhub: {}", core::to_string(health_.phase));
        notify();  // the driver loop re-arms the phase deadline
    }
}

void eventhub_source::update_partition_health() {
    const auto outage = machine_->partition_outage();
    const core::micros since = outage ? outage->since : 0;
    if (since != 0 && health_.common.failing_since == 0) spdlog::warn("eventhub: {}", outage->why);
    if (since == 0 && health_.common.failing_since != 0)
        spdlog::info("eventhub: every partition is read again");
    health_.common.failing_since = since;
    health_.common.last_error = outage ? outage->why : std::string();
}

// ---- Proton callbacks -------------------------------------------------------------------------

void eventhub_source::session::on_connection_open(proton::connection& c) {
    connection = c;
    if (live()) perform(machine.on_connection_open(eventhub_now()));
}

void eventhub_source::session::on_sender_open(proton::sender& s) {
    if (s == cbs.tx) cbs.tx_open = true;
    if (s == mgmt.tx) mgmt.tx_open = true;
    flush(cbs);
    flush(mgmt);
}

void eventhub_source::session::on_sendable(proton::sender& s) {
    if (s == cbs.tx) flush(cbs);
    if (s == mgmt.tx) flush(mgmt);
}

void eventhub_source::session::on_receiver_open(proton::receiver& r) {
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
    if (r.source().address().empty() || !live()) return;
    if (const auto id = link_of(r); id != 0)
        perform(machine.on_partition_attached(id, eventhub_now()));
}

void eventhub_source::session::on_message(proton::delivery& d, proton::message& m) {
    proton::receiver r = d.receiver();
    if (r == cbs.rx || r == mgmt.rx) {
        d.accept();
        on_reply(m);
        return;
    }
    const auto id = link_of(r);
    if (id == 0 || !live()) return;
    eventhub_message em = read_eventhub_message(m);
    const auto note = machine.on_delivery(id, em.pos);
    if (!note.partition) return;  // not a partition's current link
    pending_message pm;
    pm.d = d;
    pm.link = r;
    pm.link_id = id;
    pm.key = note.partition->key;
    pm.hub = note.partition->hub;
    pm.partition = note.partition->id;
    pm.pos = std::move(em.pos);
    pm.body = std::move(em.body);
    pm.body_ok = em.body_ok;
    pm.size = pm.body.size();
    pm.gap = note.gap;
    if (machine.too_large(pm.size)) {
        // Arrived whole within one read (one frame): refused all the same.
        pm.too_large = true;
        pm.body.resize(head_bytes);
    }
    pending.push_back(std::move(pm));
    src.health_.max_uncommitted =
        std::max(src.health_.max_uncommitted, pending.size() + src.uncommitted());
    src.notify();
}

bool eventhub_source::session::refuse_oversized() {
    bool refused = false;
    for (const auto& [key, pl] : machine.partitions()) {
        if (pl.state != machine_type::link_state::receiving) continue;
        auto it = links.find(pl.link);
        if (it == links.end()) continue;
        pn_link_t* l = link_handle(it->second).raw();
        pn_delivery_t* d = l ? pn_link_current(l) : nullptr;
        if (!d || !pn_delivery_partial(d) || !machine.too_large(pn_delivery_pending(d))) continue;
        pending_message pm;
        pm.key = key;
        pm.hub = pl.hub;
        pm.partition = pl.id;
        pm.link = it->second;
        pm.link_id = pl.link;
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
        pm.gap = machine.on_delivery(pl.link, pm.pos).gap;
        pending.push_back(std::move(pm));
        refused = true;
    }
    if (refused) src.notify();
    return refused;
}

void eventhub_source::session::on_reply(proton::message& m) {
    std::uint64_t id = 0;
    try {
        id = proton::coerce<std::uint64_t>(m.correlation_id());
    } catch (const std::exception&) {
        return;  // not an answer to anything we asked
    }
    if (!live()) return;
    const core::eventhub_reply reply = read_reply(m);
    perform(machine.on_reply(id, reply, eventhub_now()));
}

void eventhub_source::session::link_failed(proton::link& l, const char* what) {
    if (!live()) return;
    const auto id = link_of(l);
    const std::string label = std::string(what) + " " + l.name();
    perform(machine.on_link_closed(id, label, condition_of(l.error()), eventhub_now()));
    if (id != 0) links.erase(id);  // closed: the machine attaches a new link if any
}

void eventhub_source::session::on_connection_error(proton::connection& c) {
    if (live()) perform(machine.on_connection_error(condition_of(c.error())));
}

void eventhub_source::session::on_connection_close(proton::connection& c) {
    if (live() && !c.error()) perform(machine.on_connection_closed());
}

void eventhub_source::session::on_transport_error(proton::transport& t) {
    if (live()) perform(machine.on_transport_error(condition_of(t.error())));
}

void eventhub_source::session::on_error(const proton::error_condition& e) {
    if (live()) perform(machine.on_error(condition_of(e)));
}

void eventhub_source::session::on_head(std::string_view bytes) {
    if (sasl_head.size() < 1024) sasl_head.append(bytes.substr(0, 1024 - sasl_head.size()));
    perform(machine.on_sasl_offered(sasl_offered_mechanisms(sasl_head)));
}

}  // namespace glasswatch::io
