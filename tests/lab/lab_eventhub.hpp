// The lab's Event Hubs emulator: an AMQP 1.0 broker that behaves like the parts of Azure Event
// Hubs a consumer touches (reference/eventhub.md §5 and §7), for the component tests, the e2e
// tests and the demo.
//
//   - listeners on loopback: AMQPS (TLS), AMQP over WebSockets (TLS + AMQPWSB10 at
//     /$servicebus/websocket) and, optionally, plain AMQP (the UseDevelopmentEmulator form);
//     the same connection_driver-on-Asio pump as the daemon (io/net/amqp_pump.hpp), server side;
//   - SASL ANONYMOUS, then $cbs put-token: the SAS token's signature, key name, expiry and
//     audience are verified against the configured rule (core::verify_sas_token); links to a hub
//     are refused (amqp:unauthorized-access) until a valid token for it was put;
//   - $management READ for the hub (partition ids) and each partition (sequence numbers,
//     offsets, enqueued time);
//   - N partitions holding the published bodies with offsets (byte positions, as strings),
//     sequence numbers and enqueued times; receivers attach to
//     <hub>/ConsumerGroups/<group>/Partitions/<id> with the selector filter (offset, sequence
//     number or enqueued time; > or >=; '-1' and '@latest'); deliveries carry x-opt-offset,
//     x-opt-sequence-number and x-opt-enqueued-time and respect link credit;
//   - epoch receivers (com.microsoft:epoch): a newer one steals the link (amqp:link:stolen);
//   - link idle timeout: a link with nothing delivered for link_idle_timeout is detached
//     (amqp:link:detach-forced), as the service does after 30 min;
//   - faults (C++ or the lab control API): drop every connection, refuse tokens, detach links,
//     steal links, stall a partition (keeps accepting events, delivers nothing), answer the next
//     attaches with com.microsoft:server-busy; and the edges of the real service: retention
//     (truncate a partition: a reader behind it jumps silently to the oldest event left), a
//     re-created hub (argument-out-of-range past its end), another receiver holding a partition
//     with a higher epoch for N seconds, CBS tokens expiring on live links
//     (amqp:unauthorized-access), SASL as Azure offers it (MSSBCBS PLAIN ANONYMOUS EXTERNAL).
//
// Thread: everything runs on the io_context's thread; call the methods from that thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace glasswatch::lab {

struct eventhub_options {
    std::vector<std::string> hubs{"insights-logs-entra"};
    int partitions = 2;
    std::string key_name = "ListenOnly";
    std::string key;                // the SAS key (required)
    std::string cert_pem, key_pem;  // server certificate for the TLS listeners
    bool amqps = true, websocket = true, plain = false;
    std::string bind = "127.0.0.1";
    std::chrono::milliseconds link_idle_timeout{0};  // 0 = never detach idle links
    std::function<void(const std::string&)> log;     // one line per notable broker event
};

// One published event as the broker keeps it.
struct eventhub_event {
    std::int64_t sequence_number = 0;
    std::string offset;
    std::int64_t enqueued_ms = 0;
    std::string body;
};

class eventhub_emulator {
public:
    eventhub_emulator(boost::asio::io_context& ctx, eventhub_options opts);
    ~eventhub_emulator();
    eventhub_emulator(const eventhub_emulator&) = delete;
    eventhub_emulator& operator=(const eventhub_emulator&) = delete;

    std::uint16_t amqps_port() const noexcept;
    std::uint16_t websocket_port() const noexcept;
    std::uint16_t plain_port() const noexcept;
    const eventhub_options& options() const noexcept;

    // Appends a body to a partition (-1 = round robin) of the first hub (or `hub`), stamped
    // with `enqueued_ms` (0 = now), and delivers it to attached receivers with credit.
    eventhub_event publish(std::string body, int partition = -1, std::int64_t enqueued_ms = 0,
                           const std::string& hub = {});
    std::vector<eventhub_event> events(int partition, const std::string& hub = {}) const;

    // Faults.
    void drop_connections();
    void freeze_connections();  // stop answering (and heartbeating) on every open connection
    void refuse_tokens(bool refuse);
    void detach_links(const std::string& condition = "amqp:link:detach-forced");
    void stall(int partition, bool stalled);
    void busy_attaches(int count);  // the next `count` partition attaches get server-busy
    // Credit stall: the partition links attached now get nothing more, whatever credit the
    // consumer gives (as if the broker lost their flow state); a re-attached link is served.
    void starve_links();

    // The control API: {"drop":true, "freeze":true, "refuse_tokens":bool, "detach":true,
    // "steal":true, "stall_partition":N, "stall":bool, "busy":N,
    // "publish":{"body":"...","partition":N}}.
    nlohmann::json control(const nlohmann::json& request);
    // Counters and what the broker saw (filters as received, token verdicts, ...).
    nlohmann::json stats() const;

    void stop();

    struct impl;

private:
    std::shared_ptr<impl> impl_;
};

// The lab's Graph-shaped record as a diagnostic-settings record (reference §4.2): category
// from the sign-in type or AuditLogs, `properties` = the record. `event_type` is the Graph
// signInEventTypes value ("interactiveUser", ...) or "" for audits.
nlohmann::json to_diagnostic_record(const nlohmann::json& graph_record,
                                    const std::string& event_type, const std::string& tenant_id);
// {"records":[...]} around the given records.
std::string diagnostic_body(const std::vector<nlohmann::json>& records);

}  // namespace glasswatch::lab
