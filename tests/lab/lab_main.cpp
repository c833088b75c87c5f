// glasswatch-lab: the simulated tenant as a program, for the demo and the e2e tests.
//
//   glasswatch-lab --dir DIR [--scenario demo|quiet] [--port N] [--control-port N]
//                  [--sink-port N] [--token-ttl S] [--rate R] [--delay-s S] [--throttle N]
//                  [--seed N]
//
// Serves the token endpoint and Graph over HTTPS on --port, the alert-sink receivers over HTTPS
// on --sink-port and the /lab/ control API over plain HTTP on --control-port, all on loopback.
// The Event Hubs emulator (lab_eventhub.hpp) listens on two more loopback ports (AMQPS and AMQP
// over WebSockets) and carries every event of the lab in diagnostic-settings form once it
// becomes visible, so the demo runs on either source; its faults are at
// POST /lab/eventhub/faults, its counters at GET /lab/eventhub/stats; POST
// /lab/eventhub/publish_padded {"body":"{...}","bytes":N,"partition":P} publishes a JSON object
// grown to N bytes with a "padding" member (huge messages the control body limit would refuse).
// Writes what a client needs into DIR (CA, client secret, client certificate + key) and
// DIR/lab.json last, atomically, so a reader that sees lab.json can rely on everything else
// being there.
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "lab/lab_eventhub.hpp"
#include "lab/lab_graph.hpp"
#include "lab/lab_posture.hpp"
#include "lab/lab_sinks.hpp"
#include "support/https_server.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using glasswatch::lab::lab_options;
using glasswatch::lab::lab_tenant;
using glasswatch::lab::sink_receivers;
using glasswatch::test::https_server;
using glasswatch::test::server_request;
using glasswatch::test::server_response;
using nlohmann::json;

struct args {
    std::string dir;
    std::string scenario = "quiet";
    int port = 0, control_port = 0, sink_port = 0;
    int token_ttl_s = 3599;
    double rate = 2.0;
    double delay_s = -1;  // < 0: keep the lab's default range
    int throttle = 5;
    std::uint64_t seed = 1;
    std::string eventhub_backlog;  // NDJSON file: one Event Hub body per line, published at start
    int eventhub_partitions = 2;
};

[[noreturn]] void usage(const std::string& why) {
    std::cerr
        << "glasswatch-lab: " << why << "\n"
        << "usage: glasswatch-lab --dir DIR [--scenario demo|quiet] [--port N] [--control-port N]\n"
           "                      [--sink-port N]\n"
        << "                      [--token-ttl S] [--rate R] [--delay-s S] [--throttle N] [--seed "
           "N]\n"
        << "                      [--eventhub-partitions N] [--eventhub-backlog FILE]\n"
           "  --eventhub-backlog FILE  publish every line of FILE (an Event Hub message body, as\n"
           "                           tests/bench/gen_stream.py writes them) before the lab is\n"
           "                           ready, round robin over partitions, enqueued an hour ago\n";
    std::exit(2);
}

args parse_args(int argc, char** argv) {
    args a;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        if (k == "-h" || k == "--help")
            usage("a simulated Entra ID tenant (token endpoint + Graph audit logs)");
        if (i + 1 >= argc) usage("missing value for " + k);
        const std::string v = argv[++i];
        try {
            std::size_t used = 0;
            auto whole = [&](auto parsed) {
                if (used != v.size()) throw std::invalid_argument(v);
                return parsed;
            };
            if (k == "--dir")
                a.dir = v;
            else if (k == "--scenario")
                a.scenario = v;
            else if (k == "--port")
                a.port = whole(std::stoi(v, &used));
            else if (k == "--control-port")
                a.control_port = whole(std::stoi(v, &used));
            else if (k == "--sink-port")
                a.sink_port = whole(std::stoi(v, &used));
            else if (k == "--token-ttl")
                a.token_ttl_s = whole(std::stoi(v, &used));
            else if (k == "--rate")
                a.rate = whole(std::stod(v, &used));
            else if (k == "--delay-s")
                a.delay_s = whole(std::stod(v, &used));
            else if (k == "--throttle")
                a.throttle = whole(std::stoi(v, &used));
            else if (k == "--seed")
                a.seed = whole(std::stoull(v, &used));
            else if (k == "--eventhub-backlog")
                a.eventhub_backlog = v;
            else if (k == "--eventhub-partitions")
                a.eventhub_partitions = whole(std::stoi(v, &used));
            else
                usage("unknown option " + k);
        } catch (const std::logic_error&) {
            usage("bad value for " + k + ": " + v);
        }
    }
    if (a.dir.empty()) usage("--dir is required");
    if (a.scenario != "demo" && a.scenario != "quiet") usage("--scenario must be demo or quiet");
    if (a.port < 0 || a.port > 65535 || a.control_port < 0 || a.control_port > 65535 ||
        a.sink_port < 0 || a.sink_port > 65535)
        usage("bad port");
    if (a.token_ttl_s < 1 || a.rate < 0 || a.throttle < 0) usage("values must not be negative");
    if (a.eventhub_partitions < 1 || a.eventhub_partitions > 32)
        usage("--eventhub-partitions must be 1..32");
    return a;
}

std::int64_t wall_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// RFC 7231 IMF-fixdate, the Date header Graph sends with every answer (the daemon anchors its
// poll windows on it, not on its own clock).
std::string http_date(std::int64_t us) {
    const std::time_t t = static_cast<std::time_t>(us / 1000000);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return buf;
}

// Writes a file with the given mode (the mode is enforced even if the file existed).
void write_file(const fs::path& path, const std::string& data, mode_t mode) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(errno));
    bool ok = ::fchmod(fd, mode) == 0;
    std::size_t off = 0;
    while (ok && off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) off += static_cast<std::size_t>(n);
    }
    ok = ::fsync(fd) == 0 && ok;
    ok = ::close(fd) == 0 && ok;
    if (!ok)
        throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(errno));
}

std::string random_secret() {
    // Shaped like an Entra ID client secret: 40 characters, '~' in the fourth place.
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.";
    unsigned char bytes[40];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
    std::string s;
    for (unsigned char b : bytes)
        s += alphabet[b % (sizeof alphabet - 1)];
    s[3] = '~';
    return s;
}

// A SAS key shaped like the portal's: 32 random bytes, base64.
std::string random_sas_key() {
    static constexpr char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char bytes[33];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
    std::string s;
    for (std::size_t i = 0; i < sizeof bytes; i += 3) {
        const unsigned v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
        for (int k = 3; k >= 0; --k)
            s += b64[(v >> (6 * k)) & 63];
    }
    return s;
}

// Lab events waiting for their visibility time before they go to the event hub.
struct pending_diag {
    std::int64_t visible_us = 0;
    nlohmann::json record;
};

struct client_cert {
    std::string cert_pem, key_pem;
};

// A self-signed RSA-2048 client certificate: what an operator uploads to the app registration.
client_cert make_client_cert() {
    auto fail = [](const char* what) -> client_cert {
        throw std::runtime_error(std::string("client cert: ") + what);
    };
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_RSA_gen(2048), &EVP_PKEY_free);
    if (!key) return fail("RSA key generation");
    std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), &X509_free);
    if (!x) return fail("X509_new");
    unsigned char serial[8];
    RAND_bytes(serial, sizeof serial);
    std::uint64_t sn = 0;
    for (unsigned char b : serial)
        sn = (sn << 8) | b;
    X509_set_version(x.get(), 2);
    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x.get()), sn >> 1);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), 60L * 60 * 24 * 365);
    X509_set_pubkey(x.get(), key.get());
    X509_NAME* name = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("glasswatch-lab-client"), -1,
                               -1, 0);
    X509_set_issuer_name(x.get(), name);
    if (X509_sign(x.get(), key.get(), EVP_sha256()) <= 0) return fail("X509_sign");
    auto to_pem = [](auto write) {
        std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
        if (!bio || write(bio.get()) != 1) throw std::runtime_error("client cert: PEM encoding");
        char* data = nullptr;
        long len = BIO_get_mem_data(bio.get(), &data);
        return std::string(data, static_cast<std::size_t>(len));
    };
    client_cert c;
    c.cert_pem = to_pem([&](BIO* b) { return PEM_write_bio_X509(b, x.get()); });
    c.key_pem = to_pem([&](BIO* b) {
        return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    });
    return c;
}

server_response not_found(const std::string& what) {
    server_response r;
    r.status = 404;
    r.body = json{{"error", what}}.dump();
    return r;
}

bool is_control_path(const std::string& path) {
    return path == "/lab" || path.rfind("/lab/", 0) == 0;
}

std::string path_only(const server_request& req) {
    return req.target.substr(0, req.target.find('?'));
}

// Publishes every lab event that became visible as one diagnostic-settings message (Azure
// Monitor batches the same way, reference §4.1).
void publish_visible(std::vector<pending_diag>& queue, glasswatch::lab::eventhub_emulator& hub) {
    const std::int64_t now = wall_us();
    std::vector<nlohmann::json> due;
    std::erase_if(queue, [&](pending_diag& p) {
        if (p.visible_us > now) return false;
        due.push_back(std::move(p.record));
        return true;
    });
    if (!due.empty()) hub.publish(glasswatch::lab::diagnostic_body(due));
}

void arm_ticker(asio::steady_timer& timer, lab_tenant& lab, std::vector<pending_diag>& queue,
                glasswatch::lab::eventhub_emulator& hub) {
    timer.expires_after(std::chrono::milliseconds(200));
    timer.async_wait([&timer, &lab, &queue, &hub](const boost::system::error_code& ec) {
        if (ec) return;  // cancelled at shutdown
        lab.tick(wall_us());
        publish_visible(queue, hub);
        arm_ticker(timer, lab, queue, hub);
    });
}

}  // namespace

namespace {
// A backlog for catch-up runs: the bodies are in the partitions before lab.json appears.
void publish_backlog(glasswatch::lab::eventhub_emulator& hub, const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read --eventhub-backlog " + file);
    const std::int64_t hour_ago_ms = wall_us() / 1000 - 3600 * 1000;
    std::size_t n = 0, bytes = 0;
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        bytes += line.size();
        hub.publish(std::move(line), -1, hour_ago_ms + static_cast<std::int64_t>(n++));
    }
    std::cerr << "glasswatch-lab: published a backlog of " << n << " bodies (" << bytes
              << " bytes) from " << file << std::endl;
}
}  // namespace

int main(int argc, char** argv) {
    const args a = parse_args(argc, argv);
    try {
        fs::create_directories(a.dir);
        const fs::path dir = fs::absolute(a.dir);

        const auto pki = glasswatch::test::test_pki::generate({"127.0.0.1", "localhost"});
        const client_cert cc = make_client_cert();
        const std::string secret = random_secret();

        lab_options o;
        o.client_secret = secret;
        o.client_certificates_pem = {cc.cert_pem};
        o.scenario = a.scenario;
        o.rate_per_s = a.rate;
        if (a.delay_s >= 0) o.ingestion_delay_min_s = o.ingestion_delay_max_s = a.delay_s;
        o.token_ttl_s = a.token_ttl_s;
        o.throttle_limit = a.throttle;
        o.seed = a.seed;
        o.log = [](const std::string& line) { std::cerr << line << std::endl; };
        std::vector<pending_diag> diag_queue;
        o.on_event = [&diag_queue, tenant = o.tenant_id](const json& record,
                                                         const std::string& event_type,
                                                         std::int64_t visible_us) {
            diag_queue.push_back(
                {visible_us, glasswatch::lab::to_diagnostic_record(record, event_type, tenant)});
        };
        lab_tenant lab(o);
        sink_receivers sinks;

        asio::io_context ctx;
        asio::signal_set signals(ctx, SIGINT, SIGTERM);

        glasswatch::lab::eventhub_options eo;
        eo.key = random_sas_key();
        eo.cert_pem = pki.server_cert_pem;
        eo.key_pem = pki.server_key_pem;
        eo.log = [](const std::string& line) { std::cerr << line << std::endl; };
        eo.partitions = a.eventhub_partitions;
        glasswatch::lab::eventhub_emulator hub(ctx, eo);
        if (!a.eventhub_backlog.empty()) publish_backlog(hub, a.eventhub_backlog);

        https_server::options tls;
        tls.tls = true;
        tls.cert_pem = pki.server_cert_pem;
        tls.key_pem = pki.server_key_pem;
        tls.port = static_cast<std::uint16_t>(a.port);
        // The TLS port is what the daemon talks to; the control API is never reachable there.
        https_server graph_server(ctx, tls, [&](const server_request& req) {
            const std::string path = path_only(req);
            if (is_control_path(path)) return not_found("the control API is on the control port");
            const std::int64_t now = wall_us();
            server_response res = lab.handle(req, now);
            res.headers.emplace_back("date", http_date(now));
            return res;
        });
        // The alert receivers have a port of their own, so a TLS fault on them ("bad TLS")
        // leaves the tenant side working, as when only the paging path is broken.
        https_server::options sink_tls = tls;
        sink_tls.port = static_cast<std::uint16_t>(a.sink_port);
        https_server sink_server(ctx, sink_tls, [&](const server_request& req) {
            const std::string path = path_only(req);
            if (is_control_path(path) || !sink_receivers::owns(path))
                return not_found("only the alert receivers are served here");
            return sinks.handle(req, wall_us());
        });
        https_server::options plain;
        plain.tls = false;
        plain.port = static_cast<std::uint16_t>(a.control_port);
        https_server control_server(ctx, plain, [&](const server_request& req) {
            const std::string path = path_only(req);
            if (!is_control_path(path)) return not_found("only /lab/ is served here");
            if (path == "/lab/eventhub/faults" && req.method == "POST") {
                json body = json::parse(req.body, nullptr, false);
                server_response r;
                r.body = hub.control(body).dump();
                if (body.is_discarded() || r.body.find("\"error\"") != std::string::npos)
                    r.status = 400;
                return r;
            }
            if (path == "/lab/eventhub/publish_padded" && req.method == "POST") {
                json spec = json::parse(req.body, nullptr, false);
                server_response r;
                std::string body = spec.is_object() ? spec.value("body", std::string()) : "";
                const auto bytes = spec.is_object() ? spec.value("bytes", std::size_t{0}) : 0;
                if (body.size() < 2 || body.back() != '}' || bytes > (512u << 20)) {
                    r.status = 400;
                    r.body = json{{"error", "expected {\"body\":\"{...}\",\"bytes\":N}"}}.dump();
                    return r;
                }
                body.pop_back();
                const std::size_t pad = bytes > body.size() + 14 ? bytes - body.size() - 14 : 0;
                body += ",\"padding\":\"" + std::string(pad, 'x') + "\"}";
                auto e = hub.publish(std::move(body), spec.value("partition", -1));
                r.body = json{{"sequence_number", e.sequence_number}, {"offset", e.offset}}.dump();
                return r;
            }
            if (path == "/lab/eventhub/stats") {
                server_response r;
                r.body = hub.stats().dump();
                return r;
            }
            if (sink_receivers::owns(path)) {
                auto res = sinks.handle(req, wall_us());
                sink_server.set_tls_fault(sinks.tls_fault());
                return res;
            }
            return lab.handle(req, wall_us());
        });

        const std::string graph_url = "https://127.0.0.1:" + std::to_string(graph_server.port());
        const std::string control_url = "http://127.0.0.1:" + std::to_string(control_server.port());
        const std::string sink_url = "https://127.0.0.1:" + std::to_string(sink_server.port());
        write_file(dir / "ca.pem", pki.ca_cert_pem, 0644);
        write_file(dir / "client-secret", secret + "\n", 0600);
        write_file(dir / "client-cert.pem", cc.cert_pem, 0644);
        write_file(dir / "client-key.pem", cc.key_pem, 0600);
        // The Event Hub connection string: Listen rule, the hub as EntityPath. The Endpoint
        // names the AMQPS port (the emulator convention, reference §7).
        const std::string eh_ns = "127.0.0.1";
        write_file(dir / "eventhub-connection-string",
                   "Endpoint=sb://" + eh_ns + ":" + std::to_string(hub.amqps_port()) +
                       "/;SharedAccessKeyName=" + eo.key_name + ";SharedAccessKey=" + eo.key +
                       ";EntityPath=" + eo.hubs.front() + "\n",
                   0600);
        const auto& so = sinks.options();
        json info = {{"graph_url", graph_url},
                     {"authority_url", graph_url},
                     {"control_url", control_url},
                     {"tenant_id", o.tenant_id},
                     {"tenant_domain", o.tenant_domain},
                     {"client_id", o.client_id},
                     {"ca_file", (dir / "ca.pem").string()},
                     {"client_secret_file", (dir / "client-secret").string()},
                     {"client_certificate_file", (dir / "client-cert.pem").string()},
                     {"client_key_file", (dir / "client-key.pem").string()},
                     {"bg1", std::string(glasswatch::lab::ids::bg1)},
                     {"bg1_upn", std::string(glasswatch::lab::ids::bg1_upn)},
                     {"bg2", std::string(glasswatch::lab::ids::bg2)},
                     {"bg2_upn", std::string(glasswatch::lab::ids::bg2_upn)},
                     {"admin", std::string(glasswatch::lab::ids::admin)},
                     {"bg_group", std::string(glasswatch::lab::posture_ids::bg_group)},
                     {"ca_policies",
                      {{"require_mfa", std::string(glasswatch::lab::posture_ids::ca_require_mfa)},
                       {"block_legacy", std::string(glasswatch::lab::posture_ids::ca_block_legacy)},
                       {"report_only", std::string(glasswatch::lab::posture_ids::ca_report_only)},
                       {"disabled", std::string(glasswatch::lab::posture_ids::ca_disabled)}}},
                     {"scenario", a.scenario},
                     {"eventhub",
                      {{"namespace", eh_ns},
                       {"hub", eo.hubs.front()},
                       {"partitions", eo.partitions},
                       {"amqps_port", hub.amqps_port()},
                       {"websocket_port", hub.websocket_port()},
                       {"connection_string_file", (dir / "eventhub-connection-string").string()}}},
                     {"sinks",
                      {{"pagerduty_url", sink_url + "/v2/enqueue"},
                       {"pagerduty_routing_key", so.pagerduty_routing_key},
                       {"twilio_url", sink_url},
                       {"twilio_account_sid", so.twilio_account_sid},
                       {"twilio_auth_token", so.twilio_auth_token},
                       {"webhook_url", sink_url + "/hooks/glasswatch"},
                       {"webhook_secret", so.webhook_secret}}},
                     {"pid", static_cast<long>(::getpid())}};
        // lab.json last and atomically: its presence means the lab is ready.
        write_file(dir / "lab.json.tmp", info.dump(2) + "\n", 0644);
        fs::rename(dir / "lab.json.tmp", dir / "lab.json");

        asio::steady_timer ticker(ctx);
        signals.async_wait([&](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            std::cerr << "glasswatch-lab: signal " << sig << ", stopping" << std::endl;
            ticker.cancel();
            hub.stop();
            graph_server.stop();
            sink_server.stop();
            control_server.stop();
            ctx.stop();
        });
        lab.tick(wall_us());
        arm_ticker(ticker, lab, diag_queue, hub);
        std::cerr << "glasswatch-lab: scenario " << a.scenario << ", graph " << graph_url
                  << ", control " << control_url << ", dir " << dir.string() << std::endl;
        ctx.run();
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "glasswatch-lab: " << e.what() << std::endl;
        return 1;
    }
}
