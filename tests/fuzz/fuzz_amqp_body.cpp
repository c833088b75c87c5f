// Event Hub messages: arbitrary bytes as an AMQP 1.0 message (the sections of one transfer),
// decoded by Proton as the receiver link decodes a delivery, then what the Event Hub source does
// with it (io/sources/eventhub_message.hpp: position annotations, body from a data section or a
// string value; core: trim, pipeline with the diagnostic hint, the checkpoint it would commit).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include <proton/error.hpp>
#include <proton/message.hpp>

#include "core/protocol/eventhub.hpp"
#include "fuzz/fuzz_common.hpp"
#include "io/sources/eventhub_message.hpp"

using namespace glasswatch;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    proton::message m;
    try {
        m.decode(std::vector<char>(data, data + size));
    } catch (const proton::error&) {
        return 0;  // Proton's connection driver turns this into a connection error
    }
    const io::eventhub_message em = io::read_eventhub_message(m);
    if (em.body_ok) {
        core::body_origin origin;
        origin.source = "eventhub";
        origin.hint = core::record_hint::diagnostic;
        (void)fuzz::exercise_body(core::trim_body(em.body), origin);
    }
    if (core::usable(em.pos)) {
        core::eventhub_checkpoint cp;
        core::advance(cp, em.pos);
        const auto restored = core::decode_checkpoint(core::encode_checkpoint(cp));
        if (!restored || restored->sequence_number != cp.sequence_number)
            fuzz::contract_broken("the committed checkpoint does not restore its sequence number",
                                  em.pos.offset.value_or(""));
    }
    return 0;
}
