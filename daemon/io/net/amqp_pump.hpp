// Drives a Qpid Proton `connection_driver` (a sans-I/O AMQP engine) from Boost.Asio.
//
// Why not proton::container: the container runs its own proactor thread and its own TLS stack
// and has no WebSocket transport. The driver has no I/O at all, so one Asio loop (the daemon's
// main thread) moves bytes for every transport we need — plain TCP (the development emulator),
// TLS (AMQPS 5671, OpenSSL via asio::ssl with the same verification as the HTTPS client) and
// AMQP over WebSockets (Beast websocket over TLS, binary messages, subprotocol AMQPWSB10) — and
// the AMQP state is touched by exactly one thread.
//
// The loop, in one sentence: bytes read from the stream are copied into driver.read_buffer();
// after every read, write completion, tick deadline or wake() the pump calls driver.tick() and
// driver.dispatch() (which runs the messaging_handler), then copies driver.write_buffer() out
// and writes it. Own buffers on both sides: dispatch() may move the driver's buffers while an
// asynchronous read or write is pending.
//
// Lifetime: the pump is owned by shared_ptr; every pending operation holds a reference. It
// owns the stream and the handler (declared before the driver so the driver goes first).
// finish() runs once: the socket is closed and on_finished(why) is posted (never called from
// inside dispatch()). Thread: the executor's thread only (the daemon's main thread).
#pragma once

#include <proton/io/connection_driver.hpp>
#include <proton/messaging_handler.hpp>

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream_fwd.hpp>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>

#include "io/net/coalescing_stream.hpp"

namespace glasswatch::io {

// A connected byte stream with its handshakes done (TCP, TLS or WebSocket).
class byte_stream {
public:
    using handler = std::function<void(const boost::system::error_code&, std::size_t)>;
    virtual ~byte_stream() = default;
    virtual void async_read_some(boost::asio::mutable_buffer b, handler h) = 0;
    virtual void async_write(boost::asio::const_buffer b, handler h) = 0;
    virtual void close() = 0;  // abrupt; pending operations complete with an error
};

template <class T>
struct is_websocket : std::false_type {};
template <class Next, bool Deflate>
struct is_websocket<boost::beast::websocket::stream<Next, Deflate>> : std::true_type {};

// TLS over a coalescing_stream: the records of one write leave in one flush.
using coalesced_tls_stream = boost::asio::ssl::stream<coalescing_stream>;

// Any Beast/Asio stream whose lowest layer is a beast::tcp_stream.
template <class S>
class stream_of final : public byte_stream {
public:
    explicit stream_of(S&& s) : s_(std::move(s)) {}
    S& get() { return s_; }
    void async_read_some(boost::asio::mutable_buffer b, handler h) override {
        s_.async_read_some(b, std::move(h));
    }
    void async_write(boost::asio::const_buffer b, handler h) override {
        // One WebSocket binary message per write; AMQP frames may span messages (AMQPWSB10).
        if constexpr (is_websocket<S>::value)
            s_.async_write(b, std::move(h));
        else if constexpr (std::is_same_v<S, coalesced_tls_stream>)
            boost::asio::async_write(
                s_, b,
                [this, h = std::move(h)](const boost::system::error_code& ec,
                                         std::size_t n) mutable {
                    if (ec) return h(ec, n);
                    // `this` outlives the write: the caller's handler owns the stream's owner.
                    s_.next_layer().async_flush(
                        [h = std::move(h), n](const boost::system::error_code& fec) mutable {
                            h(fec, n);
                        });
                });
        else
            boost::asio::async_write(s_, b, std::move(h));
    }
    void close() override {
        auto& low = boost::beast::get_lowest_layer(s_);
        boost::system::error_code ec;
        low.socket().shutdown(boost::asio::socket_base::shutdown_both, ec);
        low.close();
    }

private:
    S s_;
};

template <class S>
std::unique_ptr<byte_stream> make_byte_stream(S&& s) {
    return std::make_unique<stream_of<std::decay_t<S>>>(std::forward<S>(s));
}

class amqp_pump : public std::enable_shared_from_this<amqp_pump> {
public:
    amqp_pump(boost::asio::any_io_executor ex, std::unique_ptr<byte_stream> stream,
              std::unique_ptr<proton::messaging_handler> handler, std::string container_id);
    ~amqp_pump();
    amqp_pump(const amqp_pump&) = delete;
    amqp_pump& operator=(const amqp_pump&) = delete;

    proton::io::connection_driver& driver() noexcept { return driver_; }
    proton::messaging_handler* handler() noexcept { return handler_.get(); }

    // Starts reading and processing. Call after driver().connect() / driver().accept().
    void start(std::function<void(const std::string& why)> on_finished);
    // Runs the engine after the application changed AMQP state outside a handler callback
    // (settled deliveries, added credit, sent a request): dispatch + flush + re-arm the tick.
    void wake();
    // Called after each completed socket write, before the engine runs again: a sender that
    // feeds the engine a little at a time (rather than all its credit) tops up here.
    void on_written(std::function<void()> f) { on_written_ = std::move(f); }
    // Ends the connection at once (as if the network dropped it).
    void abort(const std::string& why);
    bool finished() const noexcept { return done_; }
    // Stops moving bytes and running the engine while the socket stays open: a peer that hangs
    // (fault injection in the lab; the other side's idle timeout must notice).
    void freeze() noexcept { frozen_ = true; }

    std::uint64_t bytes_in() const noexcept { return bytes_in_; }
    std::uint64_t bytes_out() const noexcept { return bytes_out_; }

private:
    void read_more();
    void on_read(const boost::system::error_code& ec, std::size_t n);
    void flush();
    void arm_tick();
    void finish(const std::string& why);

    boost::asio::any_io_executor ex_;
    std::unique_ptr<byte_stream> stream_;
    std::unique_ptr<proton::messaging_handler> handler_;  // outlives driver_ (declared first)
    proton::io::connection_driver driver_;
    boost::asio::steady_timer tick_timer_;
    std::function<void(const std::string&)> on_finished_;
    std::function<void()> on_written_;
    std::array<char, 64 * 1024> rbuf_{};
    std::string wbuf_;
    bool reading_ = false, writing_ = false, done_ = false, in_wake_ = false, frozen_ = false;
    std::string transport_error_;
    std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

}  // namespace glasswatch::io
