// What the Event Hub source keeps of one received AMQP message: its position annotations and
// its body bytes (reference/eventhub.md §4.1, §5.6). No I/O: the source calls this from its
// Proton handler, and the fuzzer (tests/fuzz) calls it on messages decoded from raw bytes.
#pragma once

#include <proton/message.hpp>
#include <proton/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/protocol/eventhub.hpp"

namespace glasswatch::io {

struct eventhub_message {
    core::message_position pos;  // x-opt-sequence-number, -offset, -enqueued-time, -partition-key
    std::string body;            // the JSON text, untrimmed
    bool body_ok = false;  // false: neither a data section nor a string value (counted, skipped)
};

eventhub_message read_eventhub_message(const proton::message& m);

// An integer from any AMQP integer type or a decimal string (brokers differ); nullopt otherwise.
std::optional<std::int64_t> amqp_int(const proton::value& v);

// The mechanisms a server offers in its sasl-mechanisms frame, read from the first bytes it sent
// ("AMQP" 3 1 0 0, then the frame): nullopt until that frame is complete, or when the bytes are
// not a SASL exchange. Proton does not say what was offered when it refuses every mechanism.
std::optional<std::vector<std::string>> sasl_offered_mechanisms(std::string_view head);

}  // namespace glasswatch::io
