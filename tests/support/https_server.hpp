// An in-process HTTP/1.1 server (TLS or plain) for component tests and the lab.
// Requests are handed to a handler function on the server's io_context thread; the response
// can ask for faults the way real services misbehave (hang, reset, delay, drop after accept).
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace glasswatch::test {

using header_list = std::vector<std::pair<std::string, std::string>>;

struct server_request {
    std::string method;
    std::string target;   // path + query as received
    header_list headers;  // names lower-cased
    std::string body;
    std::string header(std::string_view name) const;
    // Path without the query, and a decoded query parameter ("" when absent).
    std::string path() const;
    std::string query_param(std::string_view name) const;
};

struct server_response {
    int status = 200;
    header_list headers;
    std::string body;
    std::string content_type = "application/json";
    enum class fault {
        none,
        hang,                // accept the request, never answer (client deadline must fire)
        reset,               // close the TCP connection without a response
        drop_after_headers,  // send the status line and headers, then close mid-body
    } what = fault::none;
    std::chrono::milliseconds delay{0};  // answer after this long
    bool close = false;                  // send Connection: close and close afterwards
};

using request_handler = std::function<server_response(const server_request&)>;

// A throwaway PKI: a CA and a server certificate signed by it (RSA 2048, SHA-256), generated
// in memory with OpenSSL. `sans` become subjectAltName entries (IP addresses or DNS names).
struct test_pki {
    std::string ca_cert_pem, ca_key_pem, server_cert_pem, server_key_pem;
    static test_pki generate(const std::vector<std::string>& sans = {"127.0.0.1", "localhost"},
                             const std::string& common_name = "glasswatch-lab");
    // Writes ca_cert_pem to `path` (for a client's ca_file).
    void write_ca(const std::string& path) const;
};

class https_server {
public:
    struct options {
        bool tls = true;
        std::string cert_pem, key_pem;  // required when tls
        std::string bind = "127.0.0.1";
        std::uint16_t port = 0;  // 0 = ephemeral
        std::size_t max_body_bytes = 8u << 20;
    };
    https_server(boost::asio::io_context& ctx, options opts, request_handler handler);
    ~https_server();
    std::uint16_t port() const noexcept;
    void stop();
    std::uint64_t connections_accepted() const noexcept;

    // TLS faults for new connections (a TLS server only): a certificate no client trusts (an
    // interception proxy, a wrong deployment), or a peer that does not speak TLS at all.
    enum class tls_fault { none, untrusted_certificate, not_tls };
    void set_tls_fault(tls_fault f);

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

// A minimal HTTP CONNECT proxy on loopback: tunnels bytes, records the CONNECT targets it saw,
// and can be told to refuse (407/403) for tests.
class connect_proxy {
public:
    explicit connect_proxy(boost::asio::io_context& ctx, int refuse_status = 0);
    ~connect_proxy();
    std::uint16_t port() const noexcept;
    std::vector<std::string> targets() const;  // "host:port" per CONNECT
    void stop();

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace glasswatch::test
