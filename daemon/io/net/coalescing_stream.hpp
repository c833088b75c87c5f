// A layer between a TLS engine and its TCP stream that turns record-sized I/O into large I/O.
//
// Why: asio::ssl moves one TLS record (at most 17 KB) per socket operation, in both directions.
// Draining an Event Hub backlog at hundreds of MB/s that is ~20 000 recv() calls a second, each
// with its epoll round and its loopback/NIC softirq work, and the same again in send() on the
// other side — more CPU than the decryption itself. Underneath the engine, this layer
//   - reads: one recv() of up to `read_capacity` bytes, then serves the engine's 17 KB reads
//     from memory;
//   - writes: copies the engine's records into a buffer and sends them together when flush()
//     is called (after a whole application write was encrypted), when the buffer is full, or
//     before a read has to wait for the socket.
// The last rule keeps every exchange live without the engine knowing about the buffering: a
// handshake (ClientHello, then wait for the reply), a TLS 1.3 KeyUpdate answered while reading,
// a close_notify before waiting for the peer's — each write is on the wire before its writer
// waits for an answer. One exchange ends with a write and no read: a TLS 1.3 client's handshake
// (its Finished); the caller flushes after the handshake.
//
// The engine (asio::ssl::stream) issues at most one read and one write at a time on its next
// layer; this layer relies on that. Thread: the executor's thread only. Deadlines: those of the
// beast::tcp_stream below apply to each socket operation.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace glasswatch::io {

class coalescing_stream {
public:
    using next_layer_type = boost::beast::tcp_stream;
    using lowest_layer_type = next_layer_type::socket_type;
    using executor_type = next_layer_type::executor_type;
    using io_handler =
        boost::asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;
    using flush_handler = boost::asio::any_completion_handler<void(boost::system::error_code)>;

    static constexpr std::size_t default_capacity = 256 * 1024;

    explicit coalescing_stream(next_layer_type&& next, std::size_t read_capacity = default_capacity,
                               std::size_t write_capacity = default_capacity);
    coalescing_stream(coalescing_stream&&) noexcept;
    ~coalescing_stream();

    executor_type get_executor() noexcept;
    next_layer_type& next_layer() noexcept;
    lowest_layer_type& lowest_layer() noexcept { return next_layer().socket(); }

    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, boost::asio::mutable_buffer into) {
                start_read(into, io_handler(std::move(handler)));
            },
            token, first_buffer(buffers));
    }

    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, boost::asio::const_buffer from) {
                start_write(from, io_handler(std::move(handler)));
            },
            token, first_buffer(buffers));
    }

    // Sends everything written so far; completes when it is all on the socket.
    template <class Token>
    auto async_flush(Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
            [this](auto handler) { start_flush(flush_handler(std::move(handler))); }, token);
    }

    // Counters for tests and metrics: socket operations against the bytes they moved.
    struct counters {
        std::uint64_t socket_reads = 0, socket_writes = 0, bytes_read = 0, bytes_written = 0;
    };
    counters stats() const noexcept;

private:
    struct state;

    template <class Seq>
    static auto first_buffer(const Seq& seq) {
        // read_some/write_some may move fewer bytes than asked: the first non-empty buffer is
        // enough (the TLS engine always passes exactly one).
        using buffer_type =
            std::conditional_t<boost::asio::is_mutable_buffer_sequence<Seq>::value,
                               boost::asio::mutable_buffer, boost::asio::const_buffer>;
        for (auto it = boost::asio::buffer_sequence_begin(seq);
             it != boost::asio::buffer_sequence_end(seq); ++it)
            if (buffer_type(*it).size() != 0) return buffer_type(*it);
        return buffer_type();
    }

    void start_read(boost::asio::mutable_buffer into, io_handler h);
    void start_write(boost::asio::const_buffer from, io_handler h);
    void start_flush(flush_handler h);

    // The TCP stream and both buffers, shared with the callbacks of pending socket operations:
    // a move of this object (asio::ssl::stream is built by moving its next layer in) never
    // leaves them dangling.
    std::shared_ptr<state> st_;
};

}  // namespace glasswatch::io
