// The Proton side of one Event Hub connection: a thin driver of core::eventhub_session.
//
// It translates Proton's callbacks into the machine's events (the open, request replies,
// partition links attached or closed, deliveries) and the machine's actions into Proton calls
// (request links, put-token and READ messages, receiver links with their selector filter and
// max-message-size, credit, close). What it decides itself is only how bytes and AMQP values
// look: message ids and correlation, the reply body's decoding, a delivery still arriving that
// the machine says is too large. Private to io/sources (eventhub_source.cpp and
// eventhub_session_driver.cpp). Thread: the daemon's main thread only.
#pragma once

#include <proton/connection.hpp>
#include <proton/delivery.hpp>
#include <proton/message.hpp>
#include <proton/messaging_handler.hpp>
#include <proton/receiver.hpp>
#include <proton/sender.hpp>

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/protocol/eventhub_session.hpp"
#include "io/sources/eventhub_source.hpp"

namespace glasswatch::io {

// Now, on both clocks (the machine's time).
core::eventhub_clock eventhub_now();

struct eventhub_source::session final : proton::messaging_handler {
    using machine_type = core::eventhub_session;

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
        proton::receiver link;                  // the link it came on
        machine_type::link_id link_id = 0;      // ... as the machine knows it (credit goes back
                                                // only to a partition's live link)
        std::optional<core::sequence_gap> gap;  // events lost just before this one
    };
    // $cbs and $management share the request/response pattern.
    struct request_link {
        proton::sender tx;
        proton::receiver rx;
        bool tx_open = false, rx_open = false;
        std::deque<proton::message> queue;
        std::string reply_to;
    };

    explicit session(eventhub_source& s) : src(s), machine(*s.machine_) {}

    eventhub_source& src;
    machine_type& machine;
    request_link cbs, mgmt;
    // The partition links opened on this connection, by the machine's id, until they close.
    std::map<machine_type::link_id, proton::receiver> links;
    std::deque<pending_message> pending;
    proton::connection connection;
    std::string sasl_head;  // the connection's first bytes (SASL header + mechanisms)

    static constexpr std::size_t head_bytes = 64 * 1024;  // kept of a refused message

    // Only the live connection's session feeds the machine (an aborted one may still run a
    // last dispatch).
    bool live() const noexcept { return src.session_ == this; }
    void perform(machine_type::actions acts) { src.perform(this, std::move(acts)); }
    machine_type::link_id link_of(const proton::link& l) const;

    // ---- actions ----
    void open_request_link(request_link& l, const std::string& node, const std::string& reply);
    void request(request_link& l, proton::message m, machine_type::request_id id);
    void flush(request_link& l);
    void attach(const machine_type::attach_partition& a);

    // ---- Proton callbacks ----
    void on_connection_open(proton::connection& c) override;
    void on_sender_open(proton::sender& s) override;
    void on_sendable(proton::sender& s) override;
    void on_receiver_open(proton::receiver& r) override;
    void on_message(proton::delivery& d, proton::message& m) override;
    void on_reply(proton::message& m);
    void link_failed(proton::link& l, const char* what);
    void on_receiver_close(proton::receiver& r) override { link_failed(r, "receiver"); }
    void on_sender_close(proton::sender& s) override { link_failed(s, "sender"); }
    void on_receiver_error(proton::receiver&) override {}  // reported by on_receiver_close
    void on_sender_error(proton::sender&) override {}
    void on_connection_error(proton::connection& c) override;
    void on_connection_close(proton::connection& c) override;
    void on_transport_error(proton::transport& t) override;
    void on_error(const proton::error_condition& e) override;

    // A partition delivery still arriving that is already larger than max_message_size is
    // refused before more of it is buffered: its first bytes are read (for its position and as
    // evidence), it is settled as rejected (amqp:link:message-size-exceeded), and Proton drops
    // the rest of its frames unread. It then goes through the batch like any message, so the
    // checkpoint moves past it and its credit comes back. Returns whether one was refused.
    bool refuse_oversized();
    // The connection's first bytes as they arrive: the mechanisms SASL offers.
    void on_head(std::string_view bytes);
};

}  // namespace glasswatch::io
