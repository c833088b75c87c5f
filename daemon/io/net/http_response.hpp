// One HTTP/1.1 response as the HTTPS client reads it: the Beast parser with the client's limits,
// the interim-response rule and the finished response. No I/O here: https_client drives these
// over its TLS stream, and the fuzzer (tests/fuzz) drives the very same set-up over raw bytes.
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace glasswatch::io {

using header_list = std::vector<std::pair<std::string, std::string>>;

struct http_response {
    int status = 0;
    header_list headers;  // names lower-cased
    std::string body;
    // First header with this (case-insensitive) name, or "".
    std::string header(std::string_view name) const;
};

// Graph and the token endpoint answer with a few KiB of headers; anything near this is hostile.
inline constexpr std::uint32_t max_response_header_bytes = 64 * 1024;
// Interim 1xx responses (103 Early Hints) are skipped; a server sending more is broken.
inline constexpr int max_interim_responses = 4;

using response_parser = boost::beast::http::response_parser<boost::beast::http::string_body>;

// Sets the limits of one response read: the header block, the body (`max_body_bytes`), and no
// body at all for the answer to a HEAD request.
void limit_response_parser(response_parser& p, std::size_t max_body_bytes, bool head_request);

// After a read that ended with `ec`: servers often drop TLS without close_notify after an
// EOF-delimited body; such a response is complete if its framing says so, and `ec` becomes the
// parser's verdict on the end of stream.
void accept_truncated_end(response_parser& p, boost::beast::error_code& ec);

// Whether the response just read (the `interim_count`-th after the request, from 0) ends the
// exchange: anything but a 1xx, a 101 (the connection changes protocol), or one interim too many.
bool is_final_response(unsigned status, int interim_count) noexcept;

// The finished response: status, header names lower-cased, the body moved out of the parser.
http_response take_response(response_parser& p);

}  // namespace glasswatch::io
