#include "io/eventhub_message.hpp"

#include <proton/annotation_key.hpp>
#include <proton/binary.hpp>
#include <proton/error.hpp>
#include <proton/scalar.hpp>
#include <proton/symbol.hpp>
#include <proton/timestamp.hpp>

#include <exception>

namespace glasswatch::io {

std::optional<std::int64_t> amqp_int(const proton::value& v) {
    if (v.empty()) return std::nullopt;
    try {
        switch (v.type()) {
            case proton::LONG:
            case proton::INT:
            case proton::SHORT:
            case proton::BYTE:
            case proton::ULONG:
            case proton::UINT:
            case proton::USHORT:
            case proton::UBYTE:
                return proton::coerce<std::int64_t>(v);
            case proton::STRING: {
                const std::string s = proton::get<std::string>(v);
                std::size_t used = 0;
                const long long n = std::stoll(s, &used);
                if (used == s.size()) return n;
                return std::nullopt;
            }
            default:
                return std::nullopt;
        }
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

eventhub_message read_eventhub_message(const proton::message& m) {
    eventhub_message out;
    try {
        const auto& ann = m.message_annotations();
        out.pos.sequence_number =
            amqp_int(ann.get(proton::annotation_key(proton::symbol("x-opt-sequence-number"))));
        const proton::value off = ann.get(proton::annotation_key(proton::symbol("x-opt-offset")));
        if (!off.empty()) {
            if (off.type() == proton::STRING)
                out.pos.offset = proton::get<std::string>(off);
            else if (auto n = amqp_int(off))
                out.pos.offset = std::to_string(*n);  // some brokers send an integer
        }
        const proton::value t =
            ann.get(proton::annotation_key(proton::symbol("x-opt-enqueued-time")));
        if (!t.empty() && t.type() == proton::TIMESTAMP)
            out.pos.enqueued_ms = proton::get<proton::timestamp>(t).milliseconds();
        const proton::value pk =
            ann.get(proton::annotation_key(proton::symbol("x-opt-partition-key")));
        if (!pk.empty() && pk.type() == proton::STRING)
            out.pos.partition_key = proton::get<std::string>(pk);
    } catch (const proton::error&) {
        // Proton decodes the message-annotations section on first use and throws when it is not
        // a map. Such a message keeps no position (as one without a sequence number) but its body
        // is still read and its delivery settled: thrown from the handler, it would be dropped
        // uncounted and its link credit never returned.
        out.pos = {};
    }
    const proton::value& body = m.body();
    if (body.type() == proton::BINARY) {
        const auto bin = proton::get<proton::binary>(body);
        // One memcpy: bodies are up to 1 MB and a catch-up moves gigabytes of them.
        out.body.assign(reinterpret_cast<const char*>(bin.data()), bin.size());
        out.body_ok = true;
    } else if (body.type() == proton::STRING) {
        out.body = proton::get<std::string>(body);
        out.body_ok = true;
    }
    return out;
}

}  // namespace glasswatch::io
