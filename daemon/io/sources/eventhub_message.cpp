#include "io/sources/eventhub_message.hpp"

#include <proton/codec.h>
#include <proton/codec/decoder.hpp>

#include <proton/annotation_key.hpp>
#include <proton/binary.hpp>
#include <proton/error.hpp>
#include <proton/scalar.hpp>
#include <proton/symbol.hpp>
#include <proton/timestamp.hpp>

#include <exception>
#include <memory>
#include <string_view>

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

namespace {

// The C data of a decoded value, reached the way the C++ codec itself does (a decoder shares
// the value's pn_data_t): pn_data_get_binary points into the decoded message, no copy.
struct body_view : proton::codec::decoder {
    explicit body_view(const proton::value& v) : proton::codec::decoder(v) {}
    std::optional<std::string_view> binary() const {
        pn_data_t* d = pn_object();
        if (d == nullptr) return std::nullopt;
        pn_data_rewind(d);
        if (!pn_data_next(d) || pn_data_type(d) != PN_BINARY) return std::nullopt;
        const pn_bytes_t b = pn_data_get_binary(d);
        return std::string_view(b.start, b.size);
    }
};

}  // namespace

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
        // One memcpy straight from the decoded message: bodies are up to 1 MB and a catch-up
        // moves gigabytes of them, and proton::get<proton::binary> copies byte by byte
        // (1.6 GB/s against 30 GB/s here, measured with Proton 0.37).
        body_view view(body);
        if (auto bytes = view.binary()) {
            out.body.assign(bytes->data(), bytes->size());
        } else {
            const auto bin = proton::get<proton::binary>(body);
            out.body.assign(reinterpret_cast<const char*>(bin.data()), bin.size());
        }
        out.body_ok = true;
    } else if (body.type() == proton::STRING) {
        out.body = proton::get<std::string>(body);
        out.body_ok = true;
    }
    return out;
}

std::optional<std::vector<std::string>> sasl_offered_mechanisms(std::string_view head) {
    static constexpr std::string_view sasl_header("AMQP\x03\x01\x00\x00", 8);
    if (head.size() < 16 || head.substr(0, 8) != sasl_header) return std::nullopt;
    head.remove_prefix(8);
    const std::uint32_t size = (std::uint32_t(std::uint8_t(head[0])) << 24) |
                               (std::uint32_t(std::uint8_t(head[1])) << 16) |
                               (std::uint32_t(std::uint8_t(head[2])) << 8) |
                               std::uint32_t(std::uint8_t(head[3]));
    const std::size_t doff = std::size_t(std::uint8_t(head[4])) * 4;
    if (size < 8 || doff < 8 || doff > size || head.size() < size || head[5] != 1)
        return std::nullopt;
    const std::string_view body = head.substr(doff, size - doff);
    std::unique_ptr<pn_data_t, decltype(&pn_data_free)> data(pn_data(16), &pn_data_free);
    pn_data_t* d = data.get();
    if (pn_data_decode(d, body.data(), body.size()) <= 0) return std::nullopt;
    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_DESCRIBED) return std::nullopt;
    pn_data_enter(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_ULONG || pn_data_get_ulong(d) != 0x40)
        return std::nullopt;
    if (!pn_data_next(d) || pn_data_type(d) != PN_LIST) return std::nullopt;
    pn_data_enter(d);
    std::vector<std::string> out;
    if (!pn_data_next(d)) return out;
    auto symbol = [&out, d] {
        const pn_bytes_t b = pn_data_get_symbol(d);
        out.emplace_back(b.start, b.size);
    };
    if (pn_data_type(d) == PN_SYMBOL) {
        symbol();
    } else if (pn_data_type(d) == PN_ARRAY && pn_data_get_array_type(d) == PN_SYMBOL) {
        pn_data_enter(d);
        while (pn_data_next(d))
            symbol();
    }
    return out;
}

}  // namespace glasswatch::io
