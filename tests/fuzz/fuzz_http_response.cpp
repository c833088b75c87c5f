// HTTPS client response handling: arbitrary bytes as what a server sends back, read by the Beast
// parser set up exactly as https_client sets it up (io/net/http_response.hpp: header and body
// limits, HEAD, interim 1xx responses, a TLS stream cut after an EOF-delimited body), then what the
// callers do with a response: Retry-After and back-off (Graph poller, sinks) and the body
// classifiers of the token endpoint, the sinks and the posture checks.
//
// Input: one options byte, then the bytes from the server. Options: bit 0 = the request was a
// HEAD; bit 1 = the stream ends in a TLS truncation instead of a clean EOF; bit 2 = the sinks'
// 1 MiB body limit instead of the client default; bits 3-7 = read size (how TCP split the bytes).
#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/alerting/posture.hpp"
#include "core/alerting/sink_payloads.hpp"
#include "core/base/backoff.hpp"
#include "core/protocol/oauth.hpp"
#include "fuzz/fuzz_common.hpp"
#include "io/net/http_response.hpp"
#include "io/net/https_client.hpp"

using namespace glasswatch;
namespace beast = boost::beast;
namespace asio = boost::asio;

namespace {

// A SyncReadStream over the input: `chunk` bytes per read, then `end` for ever after.
class byte_stream {
public:
    byte_stream(std::string_view bytes, std::size_t chunk, beast::error_code end)
        : rest_(bytes), chunk_(chunk), end_(end) {}

    template <class MutableBufferSequence>
    std::size_t read_some(const MutableBufferSequence& buffers, beast::error_code& ec) {
        if (rest_.empty()) {
            ec = end_;
            return 0;
        }
        ec = {};
        const std::size_t want = std::min({rest_.size(), chunk_, asio::buffer_size(buffers)});
        const std::size_t n = asio::buffer_copy(buffers, asio::buffer(rest_.data(), want));
        rest_.remove_prefix(n);
        return n;
    }
    template <class MutableBufferSequence>
    std::size_t read_some(const MutableBufferSequence& buffers) {
        beast::error_code ec;
        const std::size_t n = read_some(buffers, ec);
        if (ec) throw beast::system_error(ec);
        return n;
    }

private:
    std::string_view rest_;
    std::size_t chunk_;
    beast::error_code end_;
};

// What the daemon does with a response it got.
void handle(const io::http_response& res) {
    const auto retry_after = core::parse_retry_after(res.header("retry-after"), fuzz::fuzz_now);
    (void)core::backoff_delay(core::backoff_policy{}, 3, 0.5, retry_after);
    (void)core::classify_token_response(res.status, res.body);
    (void)core::classify_pagerduty(res.status, res.body);
    (void)core::classify_twilio_create(res.status, res.body);
    (void)core::parse_twilio_message(res.body);
    (void)core::twilio_find_sent(res.body, "glasswatch: CRITICAL sign-in", fuzz::fuzz_now);
    (void)core::classify_webhook(res.status, res.body);
    namespace posture = core::posture;
    std::string next, error;
    posture::user_info user;
    (void)posture::parse_user(res.body, user, error);
    std::vector<posture::role_assignment> roles;
    (void)posture::parse_role_page(res.body, roles, next, error);
    std::vector<std::string> members;
    (void)posture::parse_members_page(res.body, members, next, error);
    std::vector<posture::ca_policy> policies;
    (void)posture::parse_ca_page(res.body, policies, next, error);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const unsigned options = data[0];
    const bool head = (options & 1u) != 0;
    const beast::error_code end = (options & 2u)
                                      ? beast::error_code(asio::ssl::error::stream_truncated)
                                      : beast::error_code(asio::error::eof);
    const std::size_t max_body =
        (options & 4u) ? std::size_t{1} << 20 : io::https_client_options{}.max_body_bytes;
    const std::size_t chunk = 1 + (options >> 3) * 61;  // 1 .. 1892 bytes per read
    byte_stream stream(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1), chunk,
                       end);

    // The read loop of https_client's exchange(), over the same buffer type.
    beast::flat_buffer buffer;
    std::optional<io::response_parser> parser;
    beast::error_code ec;
    for (int interim = 0;; ++interim) {
        parser.emplace();
        io::limit_response_parser(*parser, max_body, head);
        beast::http::read(stream, buffer, *parser, ec);
        io::accept_truncated_end(*parser, ec);
        if (ec) break;
        if (io::is_final_response(parser->get().result_int(), interim)) break;
    }
    if (ec) return 0;  // the client reports read / body_too_large / timeout: no response
    handle(io::take_response(*parser));
    return 0;
}
