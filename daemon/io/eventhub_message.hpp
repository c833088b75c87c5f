// What the Event Hub source keeps of one received AMQP message: its position annotations and
// its body bytes (reference/eventhub.md §4.1, §5.6). No I/O: the source calls this from its
// Proton handler, and the fuzzer (tests/fuzz) calls it on messages decoded from raw bytes.
#pragma once

#include <proton/message.hpp>
#include <proton/value.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "core/eventhub.hpp"

namespace glasswatch::io {

struct eventhub_message {
    core::message_position pos;  // x-opt-sequence-number, -offset, -enqueued-time, -partition-key
    std::string body;            // the JSON text, untrimmed
    bool body_ok = false;  // false: neither a data section nor a string value (counted, skipped)
};

eventhub_message read_eventhub_message(const proton::message& m);

// An integer from any AMQP integer type or a decimal string (brokers differ); nullopt otherwise.
std::optional<std::int64_t> amqp_int(const proton::value& v);

}  // namespace glasswatch::io
