#include "io/net/http_response.hpp"

#include <boost/asio/ssl/error.hpp>
#include <boost/beast/http/error.hpp>

#include "core/base/json_text.hpp"

namespace glasswatch::io {

namespace http = boost::beast::http;

std::string http_response::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (core::iequals_ascii(k, name)) return v;
    return {};
}

void limit_response_parser(response_parser& p, std::size_t max_body_bytes, bool head_request) {
    p.header_limit(max_response_header_bytes);
    p.body_limit(max_body_bytes);
    if (head_request) p.skip(true);
}

void accept_truncated_end(response_parser& p, boost::beast::error_code& ec) {
    if (ec != boost::asio::ssl::error::stream_truncated || !p.is_header_done()) return;
    boost::beast::error_code eof_ec;
    p.put_eof(eof_ec);
    ec = eof_ec;
}

bool is_final_response(unsigned status, int interim_count) noexcept {
    return status < 100 || status >= 200 || status == 101 || interim_count >= max_interim_responses;
}

http_response take_response(response_parser& p) {
    auto& res = p.get();
    http_response out;
    out.status = static_cast<int>(res.result_int());
    for (const auto& f : res)
        out.headers.emplace_back(core::to_lower_ascii(f.name_string()), std::string(f.value()));
    out.body = std::move(res.body());
    return out;
}

}  // namespace glasswatch::io
