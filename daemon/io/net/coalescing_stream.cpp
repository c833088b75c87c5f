#include "io/net/coalescing_stream.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <utility>
#include <vector>

namespace glasswatch::io {

namespace asio = boost::asio;
using error_code = boost::system::error_code;

namespace {

// Boost 1.81's any_completion_handler move assignment recurses without end (it copies from an
// lvalue through the converting constructor); moves go through the move constructor instead.
template <class H>
void park(H& slot, H&& h) {
    H(std::move(h)).swap(slot);
}

}  // namespace

struct coalescing_stream::state : std::enable_shared_from_this<state> {
    state(next_layer_type&& n, std::size_t read_capacity, std::size_t write_capacity)
        : next(std::move(n)),
          rbuf(new char[std::max<std::size_t>(read_capacity, 1)]),  // no RSS until used
          wbuf(new char[std::max<std::size_t>(write_capacity, 1)]),
          rcap(std::max<std::size_t>(read_capacity, 1)),
          wcap(std::max<std::size_t>(write_capacity, 1)) {}

    next_layer_type next;
    std::unique_ptr<char[]> rbuf, wbuf;
    std::size_t rcap, wcap;
    std::size_t rbegin = 0, rend = 0;  // unread bytes of rbuf
    std::size_t wlen = 0;              // unsent bytes of wbuf, from its start
    bool socket_reading = false, socket_writing = false;
    error_code write_error;  // sticky: once a send failed, every later write fails too

    // A read waiting for the socket, a write waiting for room, flushes waiting for wlen == 0.
    io_handler read_h;
    asio::mutable_buffer read_into;
    io_handler write_h;
    asio::const_buffer write_from;
    std::vector<flush_handler> flush_waiters;
    counters c;

    void complete_later(io_handler h, error_code ec, std::size_t n) {
        // Never from inside the initiating function (asio's rule for async operations).
        asio::post(next.get_executor(),
                   [h = std::move(h), ec, n]() mutable { std::move(h)(ec, n); });
    }
    void complete_later(flush_handler h, error_code ec) {
        asio::post(next.get_executor(), [h = std::move(h), ec]() mutable { std::move(h)(ec); });
    }

    std::size_t take_read(asio::mutable_buffer into) {
        const std::size_t k = std::min(into.size(), rend - rbegin);
        std::memcpy(into.data(), rbuf.get() + rbegin, k);
        rbegin += k;
        return k;
    }
    std::size_t put_write(asio::const_buffer from) {
        const std::size_t k = std::min(from.size(), wcap - wlen);
        std::memcpy(wbuf.get() + wlen, from.data(), k);
        wlen += k;
        return k;
    }

    void read_socket() {
        socket_reading = true;
        ++c.socket_reads;
        next.async_read_some(asio::buffer(rbuf.get(), rcap),
                             [self = shared_from_this()](const error_code& ec, std::size_t n) {
                                 self->on_socket_read(ec, n);
                             });
    }
    void on_socket_read(const error_code& ec, std::size_t n) {
        socket_reading = false;
        c.bytes_read += n;
        rbegin = 0;
        rend = n;
        io_handler h = std::move(read_h);
        if (!h) return;
        if (n == 0) {
            std::move(h)(ec ? ec : asio::error::eof, 0);
            return;
        }
        const std::size_t k = take_read(read_into);
        std::move(h)(error_code(), k);  // bytes first; an error shows on the next read
    }

    void send() {
        if (socket_writing || wlen == 0) return;
        socket_writing = true;
        ++c.socket_writes;
        const std::size_t len = wlen;
        asio::async_write(next, asio::buffer(wbuf.get(), len),
                          [self = shared_from_this(), len](const error_code& ec, std::size_t n) {
                              self->on_sent(ec, n, len);
                          });
    }
    void on_sent(const error_code& ec, std::size_t n, std::size_t len) {
        socket_writing = false;
        c.bytes_written += n;
        if (ec) {
            write_error = ec;
            wlen = 0;
            if (io_handler h = std::move(write_h)) std::move(h)(ec, 0);
            finish_flushes(ec);
            return;
        }
        // Writes may have appended behind the bytes in flight; they move to the front.
        std::memmove(wbuf.get(), wbuf.get() + len, wlen - len);
        wlen -= len;
        if (write_h) {
            io_handler h = std::move(write_h);
            const std::size_t k = put_write(write_from);
            std::move(h)(error_code(), k);
        }
        if (wlen == 0)
            finish_flushes(error_code());
        else if (!flush_waiters.empty() || read_h || wlen == wcap)
            send();
    }
    void finish_flushes(const error_code& ec) {
        auto waiters = std::move(flush_waiters);
        flush_waiters.clear();
        for (auto& w : waiters)
            std::move(w)(ec);
    }
};

coalescing_stream::coalescing_stream(next_layer_type&& next, std::size_t read_capacity,
                                     std::size_t write_capacity)
    : st_(std::make_shared<state>(std::move(next), read_capacity, write_capacity)) {}

coalescing_stream::coalescing_stream(coalescing_stream&&) noexcept = default;
coalescing_stream::~coalescing_stream() = default;

coalescing_stream::executor_type coalescing_stream::get_executor() noexcept {
    return st_->next.get_executor();
}

coalescing_stream::next_layer_type& coalescing_stream::next_layer() noexcept {
    return st_->next;
}

coalescing_stream::counters coalescing_stream::stats() const noexcept {
    return st_->c;
}

void coalescing_stream::start_read(asio::mutable_buffer into, io_handler h) {
    state& s = *st_;
    if (into.size() == 0) {  // asio::ssl's way of posting its own completion
        s.complete_later(std::move(h), error_code(), 0);
        return;
    }
    if (s.rend > s.rbegin) {
        const std::size_t k = s.take_read(into);
        s.complete_later(std::move(h), error_code(), k);
        return;
    }
    // About to wait for the peer: whatever it may be waiting for goes out first.
    s.send();
    park(s.read_h, std::move(h));
    s.read_into = into;
    if (!s.socket_reading) s.read_socket();
}

void coalescing_stream::start_write(asio::const_buffer from, io_handler h) {
    state& s = *st_;
    if (s.write_error) {
        s.complete_later(std::move(h), s.write_error, 0);
        return;
    }
    if (from.size() == 0) {
        s.complete_later(std::move(h), error_code(), 0);
        return;
    }
    if (s.wlen < s.wcap) {
        const std::size_t k = s.put_write(from);
        if (s.wlen == s.wcap) s.send();  // full: start sending while the engine goes on
        s.complete_later(std::move(h), error_code(), k);
        return;
    }
    // Full and the send under way: the write resumes when it completes.
    park(s.write_h, std::move(h));
    s.write_from = from;
    s.send();
}

void coalescing_stream::start_flush(flush_handler h) {
    state& s = *st_;
    if (s.write_error) {
        s.complete_later(std::move(h), s.write_error);
        return;
    }
    if (s.wlen == 0 && !s.socket_writing) {
        s.complete_later(std::move(h), error_code());
        return;
    }
    s.flush_waiters.push_back(std::move(h));
    s.send();
}

}  // namespace glasswatch::io
